"""The steps the commands run inside a run folder: fit, discover (+ refit), forecast.

Each step reads what it needs from the run folder, writes what it made into it and records
a summary in ``run.json``; the report (`ude_bridge.cli.report`) is then rebuilt from the
folder. ``ude-bridge demo`` runs the three steps in a row; ``ude-bridge fit`` runs the first
(and the forecast), ``ude-bridge discover RUN_DIR`` the others.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .build import _source, build_model, discover_kwargs, fit_kwargs, initial_state, load_data
from .config import ConfigError, _fail, dump_config, relative_paths
from .runs import RunFolder

__all__ = [
    "discover_step",
    "fit_step",
    "forecast_step",
    "pretrain_networks",
    "set_input_ranges",
]

Say = Callable[[str], None]


def _quiet(msg: str) -> None:
    pass


def say_stderr(msg: str) -> None:
    """Print a status line on stderr (stdout is kept for results)."""
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ checks
def check_config(cfg: Mapping[str, Any], data_path: str | None = None) -> tuple[Any, Any]:
    """Everything that can be checked before any compute: the model, ``[model] u0``, the
    data and its columns, the discovery library and options, ``[report] true_terms``.

    Returns:
        ``(model, data)``.

    Raises:
        ConfigError / InputError: the first problem found, as one line.
    """
    model = build_model(cfg)
    u0 = initial_state(cfg, model)
    data = load_data(cfg, data_path)
    path, text = _source(cfg)
    states = [str(s) for s in model.system().states]
    extra = [s for s in data.states if s not in states]
    if extra:
        raise _fail(
            path,
            text,
            "data",
            "states",
            f"column {extra[0]!r} is not a state of the model (states: {', '.join(states)}); "
            'map it with [data] columns = { state = "column" } or leave it out.',
        )
    hidden = [s for s in states if s not in data.states]
    if hidden and u0 is None and not cfg["fit"]["learn_u0"]:
        raise _fail(
            path,
            text,
            "data",
            None,
            f"state {hidden[0]!r} is not in the data, so its initial value is unknown; set "
            "[model] u0 = { ... } or [fit] learn_u0 = true.",
        )
    if len(model.networks):
        discover_kwargs(cfg, model)
        parse_true_terms(cfg, model)
    t_end = cfg["report"]["forecast"]
    last = max(float(t[-1]) for t in data.t)
    if t_end is not None and t_end <= last:
        raise _fail(
            path,
            text,
            "report",
            "forecast",
            f"must lie beyond the end of the data (t = {last:g}); got {t_end:g}.",
        )
    return model, data


# ------------------------------------------------------------------------------ fit
def set_input_ranges(model: Any, data: Any, cfg: Mapping[str, Any]) -> list[str]:
    """Scale each network's inputs as ``[network.NAME] input_range`` says.

    ``"data"`` maps the range the inputs take over the data to ``[-1, 1]`` (needs every
    state observed; skipped otherwise), ``"none"`` leaves them unscaled, explicit pairs are
    set in the constructor already.

    Returns:
        Notes on what was skipped (for the status output).
    """
    import torch

    notes: list[str] = []
    wanted = {name: net["input_range"] for name, net in cfg["network"].items()}
    if "data" not in wanted.values():
        return notes
    states = [str(s) for s in model.system().states]
    if any(s not in data.states for s in states):
        missing = next(s for s in states if s not in data.states)
        notes.append(
            f"note: state {missing!r} is not observed, so network inputs keep a unit scale "
            "(set [network.NAME] input_range = [[lo, hi], ...] to scale them)"
        )
        return notes
    cols = [data.states.index(s) for s in states]
    t = torch.cat([x for x in data.t])
    u = torch.cat([x[:, cols] for x in data.u])
    keep = ~torch.isnan(u).any(dim=1)
    if int(keep.sum()) < 2:
        return notes
    kept = {}
    for net, name in zip(model.networks, model._net_names, strict=True):
        if wanted.get(name) != "data":
            kept[name] = (net.input_shift.clone(), net.input_scale.clone())
    model.scale_inputs_from(t[keep], u[keep])
    with torch.no_grad():
        for net, name in zip(model.networks, model._net_names, strict=True):
            if name in kept:
                net.input_shift.copy_(kept[name][0])
                net.input_scale.copy_(kept[name][1])
    return notes


def pretrain_networks(model: Any, data: Any, iterations: int, *, seed: int = 0) -> float | None:
    """Collocation pre-training: fit the networks to derivatives estimated from the data.

    The derivatives $\\dot u$ are estimated by smoothing splines and the network outputs
    recovered point by point from $\\dot u = g_0(t, u) + A(t, u) U$ (see
    `ude_bridge.discover.sampling.sample_derivatives`); the networks are then trained on
    these targets by L-BFGS (``iterations`` of them), with no ODE solve, which is cheap.
    It starts the trajectory fit close to a good solution (Roesch et al. 2021,
    "Collocation based training of neural ordinary differential equations").

    Returns:
        The final (normalised) pre-training loss, or None where it does not apply (a state
        that is not observed, equations not affine in the outputs, too few points).
    """
    import torch

    from ..discover.sampling import sample_derivatives
    from ..errors import InputError

    if iterations <= 0 or not len(model.networks):
        return None
    try:
        samples = sample_derivatives(data, model)
    except InputError:
        return None
    states = [str(s) for s in model.system().states]
    names = [str(o) for outs in model._net_outputs for o in outs]
    t = torch.as_tensor(samples.variables[str(model.system().time)], dtype=torch.float64)
    u = torch.stack([torch.as_tensor(samples.variables[s], dtype=model.dtype) for s in states], -1)
    target = torch.stack(
        [torch.as_tensor(samples.outputs[o], dtype=model.dtype) for o in names], -1
    )
    scale = target.std(dim=0).clamp_min(1e-8)
    weights = [w for net in model.networks for w in net.weight_tensors()]
    torch.manual_seed(seed)
    # full batch and smooth: L-BFGS gets in 60 iterations below what Adam reaches in 500
    opt = torch.optim.LBFGS(
        weights,
        lr=1.0,
        max_iter=iterations,
        history_size=20,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def loss_fn() -> torch.Tensor:
        out = model.network_outputs(t, u)
        pred = torch.stack([out[o] for o in names], -1)
        return (((pred - target) / scale) ** 2).mean()

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        loss = float(loss_fn())
    return loss if math.isfinite(loss) else None


def write_history(run: RunFolder, history: list[dict[str, Any]]) -> None:
    """``history.csv``: one row per iteration."""
    keys = ["iteration", "stage", "optimizer", "loss", "val_loss", "time", "failed"]
    lines = [",".join(keys)]
    for h in history:
        cells = []
        for k in keys:
            v = h.get(k)
            cells.append("" if v is None else (repr(v) if isinstance(v, float) else str(v)))
        lines.append(",".join(cells))
    run.write_text("history.csv", "\n".join(lines) + "\n")


def _fmt_config(cfg: Mapping[str, Any], run: RunFolder, data_info: Mapping[str, Any]) -> str:
    resolved = relative_paths(cfg, run.path)
    if data_info.get("copy"):
        resolved["data"]["path"] = data_info["copy"]
    src = (cfg.get("_source") or {}).get("path")
    header = "Resolved model file of this run (every default filled in)."
    if src:
        header += f"\nFrom: {src}"
    return dump_config(resolved, header=header)


def fit_step(
    cfg: Mapping[str, Any],
    run: RunFolder,
    *,
    data_path: str | None = None,
    resume: bool = False,
    progress: bool = True,
    say: Say = _quiet,
) -> Any:
    """Fit the model of ``cfg`` to its data inside ``run``; returns the `FitResult`.

    Writes ``config.toml``, ``data.csv`` (or its hash), ``checkpoint.pt`` (during the fit),
    ``fit.pt``, ``history.csv`` and records the fit in ``run.json``.
    """
    from ..train import fit

    model = build_model(cfg)
    data = load_data(cfg, data_path)
    source = data_path if data_path is not None else cfg["data"]["path"]
    data_info = run.store_data(source)
    run.write_text("config.toml", _fmt_config(cfg, run, data_info))
    run.save_record(
        model_file=(cfg.get("_source") or {}).get("path"),
        status="fitting",
        states=[str(s) for s in model.system().states],
    )
    for note in set_input_ranges(model, data, cfg):
        say(note)
    kwargs = fit_kwargs(cfg)
    u0 = initial_state(cfg, model)
    if u0 is not None and not kwargs["learn_u0"]:
        kwargs["u0"] = u0
    pre = None
    has_checkpoint = (run / "checkpoint.pt").exists()
    if cfg["fit"]["pretrain"] and not (resume and has_checkpoint):
        t0 = time.perf_counter()
        pre = pretrain_networks(model, data, cfg["fit"]["pretrain"], seed=cfg["fit"]["seed"])
        if pre is None:
            say(
                "note: [fit] pretrain skipped (needs every state observed and equations affine "
                "in the network outputs)"
            )
        else:
            say(
                f"pre-trained the networks on derivative estimates in "
                f"{time.perf_counter() - t0:.1f} s (loss {pre:.3g})"
            )
    iters = sum(int(s[-1]) for s in kwargs["optimizers"])
    say(
        f"fitting {iters} iterations"
        + (" (resuming from checkpoint.pt)" if resume and has_checkpoint else "")
        + f"; Ctrl-C saves a checkpoint in {run.path}"
    )
    t0 = time.perf_counter()
    result = fit(model, data, checkpoint=str(run.path), progress=progress, **kwargs)
    seconds = time.perf_counter() - t0
    result.save(run / "fit.pt")
    write_history(run, result.history)
    run.save_record(
        status="fitted",
        fit={
            "loss": result.loss,
            "iterations": len(result.history),
            "seconds": seconds,
            "total_seconds": result.history[-1]["time"] if result.history else seconds,
            "failures": result.failures,
            "optimizers": [list(s) for s in kwargs["optimizers"]],
            "pretrain_loss": pre,
            "params": result.model.parameters_dict(),
            "method": kwargs["method"],
            "sensealg": kwargs["sensealg"],
        },
    )
    from .report import plot_fit, plot_loss

    plot_fit(result, run / "fit.png")
    plot_loss(result.history, run / "loss.png")
    return result


# ------------------------------------------------------------------------------ discover
def parse_true_terms(cfg: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """``[report] true_terms`` as sympy, over the model's states, time and inputs.

    Raises:
        ConfigError: an output that is not a network output, or an expression that does not
            parse or uses another name.
    """

    from ..codegen.parse import parse_expression
    from ..errors import InputError

    system = model.system()
    table = {str(s): s for s in (*system.states, system.time, *system.inputs)}
    outputs = [str(o) for outs in model._net_outputs for o in outs]
    out = {}
    for name, text in cfg["report"]["true_terms"].items():
        if name not in outputs:
            raise ConfigError(
                f"[report] true_terms: {name!r} is not a network output; outputs are "
                f"{', '.join(outputs)}."
            )
        try:
            out[name] = parse_expression(text, table, where=f"[report] true_terms: {name}")
        except InputError as exc:
            raise ConfigError(str(exc).strip().splitlines()[0]) from None
    return out


def _num(expr: Any, digits: int = 4) -> str:
    import sympy

    e = sympy.sympify(expr)
    return str(e.xreplace({f: sympy.Float(f, digits) for f in e.atoms(sympy.Float)}))


def discover_step(
    cfg: Mapping[str, Any],
    run: RunFolder,
    *,
    progress: bool = False,
    say: Say = _quiet,
) -> tuple[Any, Any]:
    """Discover equations for the networks of the run's fit, then refit their coefficients.

    Writes ``equations.json``, ``equations.tex``, ``refit.pt`` (when ``[discover] refit``
    > 0) and ``networks.png``; returns ``(discovery, refit result or None)``.
    """

    from ..discover import discover
    from ..train import load

    result = load(run / "fit.pt")
    if not len(result.model.networks):
        raise ConfigError(
            f"{run.path}: the model has no networks, so there is nothing to discover."
        )
    kwargs = discover_kwargs(cfg, result.model)
    t0 = time.perf_counter()
    found = discover(result, **kwargs)
    t_disc = time.perf_counter() - t0
    say(f"discovered {len(found.expressions)} expression(s) in {t_disc:.1f} s")
    refit = None
    t_refit = 0.0
    n_refit = cfg["discover"]["refit"]
    if n_refit:
        t0 = time.perf_counter()
        refit = found.refit(
            result.data,
            optimizers=[("lbfgs", n_refit)],
            progress=progress,
            seed=cfg["fit"]["seed"],
        )
        t_refit = time.perf_counter() - t0
        refit.save(run / "refit.pt")
        say(f"refitted the coefficients in {t_refit:.1f} s (loss {refit.loss:.3g})")
    true_terms = parse_true_terms(cfg, result.model)
    out = found.as_dict()
    out["model"] = {k: str(v) for k, v in found.model.to_sympy().items()}
    if refit is not None:
        out["refit"] = {
            "loss": refit.loss,
            "expressions": {k: str(v) for k, v in (found.refit_expressions or {}).items()},
            "model": {k: str(v) for k, v in refit.model.to_sympy().items()},
            "params": refit.model.parameters_dict(),
        }
    if true_terms:
        out["true"] = {k: str(v) for k, v in true_terms.items()}
    import json

    run.write_text("equations.json", json.dumps(out, indent=2, default=str) + "\n")
    tex = ["% equations discovered by ude-bridge", "% network outputs", found.to_latex()]
    tex += ["% the model with the discovered terms", found.model.to_latex()]
    if refit is not None:
        tex += ["% after the refit", refit.model.to_latex()]
    run.write_text("equations.tex", "\n".join(tex) + "\n")
    rows = {}
    for name, row in found.table.items():
        rows[name] = {
            "found": _num(row.expression),
            "refit": _num(found.refit_expressions[name])
            if found.refit_expressions and name in found.refit_expressions
            else None,
            "true": str(true_terms[name]) if name in true_terms else None,
            "error": row.error,
            "terms": row.complexity,
        }
    run.save_record(
        status="discovered",
        discover={
            "method": found.method,
            "seconds": t_disc,
            "library": cfg["discover"]["library"],
            "expressions": rows,
        },
        refit=None
        if refit is None
        else {
            "loss": refit.loss,
            "seconds": t_refit,
            "iterations": len(refit.history),
            "params": refit.model.parameters_dict(),
        },
    )
    from .report import plot_networks

    plot_networks(result, found, run / "networks.png", true_terms=true_terms)
    return found, refit


# ------------------------------------------------------------------------------ forecast
def _predict(result: Any, t: np.ndarray, trajectory: int) -> np.ndarray:
    """The result's prediction at ``t``, NaN where the solve could not reach."""
    import torch

    from ..errors import UdeBridgeError

    out = np.full((len(t), len(result.model.system().states)), np.nan)
    try:
        u = result.predict(torch.as_tensor(t), trajectory=trajectory).cpu().numpy()
    except (UdeBridgeError, RuntimeError):
        return out
    n = min(len(u), len(t))
    out[:n] = u[:n]
    out[~np.isfinite(out)] = np.nan
    return out


def forecast_step(cfg: Mapping[str, Any], run: RunFolder, *, say: Say = _quiet) -> dict | None:
    """Forecast every trajectory to ``[report] forecast`` with the fitted UDE (and the refit
    discovered model where there is one); compare with ``[report] truth`` where given.

    Writes ``forecast.csv`` and ``forecast.png``; returns the errors (or None when
    ``[report] forecast`` is not set).
    """
    from ..data import Trajectories
    from ..train import load

    t_end = cfg["report"]["forecast"]
    if t_end is None:
        return None
    fitted = load(run / "fit.pt")
    refit = load(run / "refit.pt") if (run / "refit.pt").exists() else None
    data = fitted.data
    states = [str(s) for s in fitted.model.system().states]
    truth = None
    truth_path = cfg["report"]["truth"]
    if truth_path is not None:
        if not Path(truth_path).exists():
            raise ConfigError(f"{truth_path}: no such file ([report] truth).")
        d = cfg["data"]
        header = [c for c in _read_header(truth_path)]
        cols = [dict(d["columns"]).get(s, s) for s in states]
        cols = [c for c in cols if c in header]
        truth = Trajectories.from_csv(
            truth_path, time=d["time"], states=cols, trajectory=d["trajectory"]
        )
    models = {"neural UDE": fitted}
    if refit is not None:
        models["discovered model"] = refit
    rows = []
    curves = []
    errors: dict[str, list[float]] = {k: [] for k in models}
    for r in range(data.n_trajectories):
        t0 = float(data.t[r][0])
        t1 = float(data.t[r][-1])
        if t_end <= t1:
            raise ConfigError(
                f"[report] forecast = {t_end} must lie beyond the end of the data (t = {t1})."
            )
        t = np.linspace(t0, t_end, 301)
        preds = {k: _predict(m, t, r) for k, m in models.items()}
        true = None
        if truth is not None and r < truth.n_trajectories:
            tt = truth.t[r].cpu().numpy()
            tu = truth.u[r].cpu().numpy()
            true = np.full((len(t), len(states)), np.nan)
            for j, s in enumerate(states):
                if s in truth.states or dict(cfg["data"]["columns"]).get(s) in truth.states:
                    col = truth.states.index(s if s in truth.states else cfg["data"]["columns"][s])
                    true[:, j] = np.interp(t, tt, tu[:, col], left=np.nan, right=np.nan)
            window = t > t1
            for k, p in preds.items():
                diff = (p[window] - true[window]) ** 2
                errors[k].append(
                    float(np.sqrt(np.nanmean(diff))) if np.isfinite(diff).any() else math.nan
                )
        for i, ti in enumerate(t):
            row = [str(data.names[r]), repr(float(ti))]
            for k in models:
                row += ["" if math.isnan(v) else repr(float(v)) for v in preds[k][i]]
            if true is not None:
                row += ["" if math.isnan(v) else repr(float(v)) for v in true[i]]
            rows.append(row)
        curves.append({"t": t, "t_train": t1, "preds": preds, "true": true, "name": data.names[r]})
    header = ["trajectory", "t"]
    for k in models:
        tag = "ude" if k == "neural UDE" else "discovered"
        header += [f"{s}_{tag}" for s in states]
    if truth is not None:
        header += [f"{s}_true" for s in states]
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    run.write_text("forecast.csv", buf.getvalue())
    summary = {
        "to": t_end,
        "rms_error": {
            k: (float(np.nanmean(v)) if v and np.isfinite(v).any() else None)
            for k, v in errors.items()
        }
        if truth is not None
        else None,
    }
    run.save_record(forecast=summary)
    from .report import plot_forecast

    plot_forecast(data, curves, states, run / "forecast.png")
    return summary


def _read_header(path: str) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [c.strip() for c in next(csv.reader(fh), [])]
