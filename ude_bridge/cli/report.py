"""Plots (PNG) and the run report: ``report.md`` and a self-contained ``report.html``.

The report is a view of the run folder: `write_report` reads ``run.json``,
``config.toml``, ``equations.json`` and the PNGs present and renders the same blocks as
Markdown (images linked) and as HTML (images embedded as base64, no external file).
matplotlib is imported here only, with the ``Agg`` backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text

__all__ = [
    "plot_fit",
    "plot_forecast",
    "plot_loss",
    "plot_networks",
    "write_report",
]

_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> None:
    plt = _plt()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------------ plots
def plot_fit(result: Any, path: str | Path, *, max_trajectories: int = 6) -> None:
    """Data (markers) against the fitted model (lines), one panel per state."""
    import torch

    plt = _plt()
    data = result.data
    states = [str(s) for s in result.model.system().states]
    n = len(states)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 2.3 * n + 0.6), sharex=True, squeeze=False)
    R = min(data.n_trajectories, max_trajectories)
    for r in range(R):
        t = data.t[r].cpu().numpy()
        tt = np.linspace(float(t[0]), float(t[-1]), 200)
        try:
            pred = result.predict(torch.as_tensor(tt), trajectory=r).cpu().numpy()
        except Exception:  # a fit that cannot be solved is still plotted (data only)
            pred = np.full((len(tt), n), np.nan)
        color = _COLORS[r % len(_COLORS)]
        label = f" ({data.names[r]})" if data.n_trajectories > 1 else ""
        for j, s in enumerate(states):
            ax = axes[j, 0]
            if len(pred) == len(tt):
                ax.plot(tt, pred[:, j], "-", color=color, lw=1.8, label=f"fit{label}")
            if s in data.states:
                k = data.states.index(s)
                ax.plot(
                    t,
                    data.u[r][:, k].cpu().numpy(),
                    "o",
                    color=color,
                    ms=3.5,
                    mfc="white",
                    label=f"data{label}",
                )
    for j, s in enumerate(states):
        ax = axes[j, 0]
        ax.set_ylabel(s)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7, ncol=2 if R > 1 else 1, loc="best")
    axes[-1, 0].set_xlabel("t")
    axes[0, 0].set_title(f"data vs fit (loss {result.loss:.3g})")
    _save(fig, path)


def plot_loss(history: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """The training loss per iteration (log scale), one colour per optimiser stage."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    stages: dict[int, list[Mapping[str, Any]]] = {}
    for h in history:
        stages.setdefault(int(h["stage"]), []).append(h)
    for k, (stage, rows) in enumerate(sorted(stages.items())):
        its = [h["iteration"] for h in rows]
        loss = [h["loss"] if h["loss"] is not None else math.nan for h in rows]
        ax.semilogy(
            its,
            loss,
            "-",
            color=_COLORS[k % len(_COLORS)],
            label=f"stage {stage + 1}: {rows[0]['optimizer']}",
        )
    vals = [(h["iteration"], h["val_loss"]) for h in history if h.get("val_loss") is not None]
    if vals:
        ax.semilogy(*zip(*vals, strict=True), "k--", label="validation")
    if not history:
        ax.text(0.5, 0.5, "no iterations", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (normalised MSE)")
    ax.set_title("training loss")
    ax.grid(alpha=0.3, which="both")
    if history:
        ax.legend(fontsize=8)
    _save(fig, path)


def plot_networks(
    result: Any,
    found: Any,
    path: str | Path,
    *,
    true_terms: Mapping[str, Any] | None = None,
    max_trajectories: int = 3,
) -> None:
    """Each network output along the fitted trajectories against the discovered expression
    (and the true term where known), one panel per output."""
    import sympy
    import torch

    plt = _plt()
    model = result.model
    system = model.system()
    states = [str(s) for s in system.states]
    outputs = list(found.expressions)
    n = len(outputs)
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 2.4 * n + 0.6), sharex=True, squeeze=False)
    data = result.data
    true_terms = dict(true_terms or {})
    for r in range(min(data.n_trajectories, max_trajectories)):
        t = data.t[r].cpu().numpy()
        tt = np.linspace(float(t[0]), float(t[-1]), 200)
        try:
            u = result.predict(torch.as_tensor(tt), trajectory=r)
        except Exception:
            continue
        if u.shape[0] != len(tt):
            continue
        with torch.no_grad():
            nets = model.network_outputs(torch.as_tensor(tt), u)
        env = {s: u[:, j].cpu().numpy() for j, s in enumerate(states)}
        env[str(system.time)] = tt
        color = _COLORS[r % len(_COLORS)]
        first = r == 0
        for i, out in enumerate(outputs):
            ax = axes[i, 0]
            ax.plot(
                tt,
                nets[out].cpu().numpy(),
                "-",
                color=color,
                lw=2.2,
                alpha=0.55,
                label="network" if first else None,
            )
            for expr, style, label in (
                (found.expressions[out], "--", "discovered"),
                (
                    (found.refit_expressions or {}).get(out),
                    "-.",
                    "discovered, refit",
                ),
                (true_terms.get(out), ":", "true"),
            ):
                if expr is None:
                    continue
                expr = sympy.sympify(expr)
                syms = sorted(expr.free_symbols, key=str)
                fn = sympy.lambdify(syms, expr, modules="numpy", dummify=True)
                vals = np.broadcast_to(
                    np.asarray(fn(*(env[str(s)] for s in syms)), dtype=float), tt.shape
                )
                ax.plot(
                    tt,
                    vals,
                    style,
                    color="black" if label == "true" else color,
                    lw=1.3,
                    label=label if first else None,
                )
    for i, out in enumerate(outputs):
        ax = axes[i, 0]
        ax.set_ylabel(out)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    axes[-1, 0].set_xlabel("t (along the fitted trajectories)")
    axes[0, 0].set_title("network output vs discovered expression")
    _save(fig, path)


def plot_forecast(
    data: Any,
    curves: Sequence[Mapping[str, Any]],
    states: Sequence[str],
    path: str | Path,
    *,
    max_trajectories: int = 3,
) -> None:
    """Forecasts beyond the training window against the truth, a panel per state and
    trajectory; the training window is shaded."""
    plt = _plt()
    curves = list(curves)[:max_trajectories]
    n, m = len(states), len(curves)
    fig, axes = plt.subplots(
        n, m, figsize=(3.9 * m + 1.2, 2.4 * n + 0.6), sharex="col", squeeze=False
    )
    styles = {"neural UDE": ("-", "#1f77b4"), "discovered model": ("--", "#d62728")}
    for c, curve in enumerate(curves):
        t = curve["t"]
        r = c
        obs_t = data.t[r].cpu().numpy()
        for j, s in enumerate(states):
            ax = axes[j, c]
            ax.axvspan(float(t[0]), curve["t_train"], color="0.92", zorder=0)
            if curve["true"] is not None:
                ax.plot(t, curve["true"][:, j], "-", color="black", lw=1.0, label="truth")
            for name, pred in curve["preds"].items():
                style, color = styles.get(name, ("-", "#2ca02c"))
                ax.plot(t, pred[:, j], style, color=color, lw=1.6, label=name)
            if s in data.states:
                k = data.states.index(s)
                ax.plot(
                    obs_t,
                    data.u[r][:, k].cpu().numpy(),
                    "o",
                    color="0.35",
                    ms=2.8,
                    label="training data",
                )
            finite = [
                np.asarray(v)[:, j]
                for v in [curve["true"], *curve["preds"].values()]
                if v is not None
            ]
            vals = np.concatenate([f[np.isfinite(f)] for f in finite]) if finite else []
            if len(vals):  # keep a diverging forecast from squashing the other curves
                lo, hi = np.percentile(vals, 1), np.percentile(vals, 99)
                pad = 0.15 * (hi - lo or 1.0)
                ax.set_ylim(lo - pad, hi + pad)
            if c == 0:
                ax.set_ylabel(s)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_title(f"trajectory {curve['name']}" if m > 1 else "forecast vs truth")
            if j == n - 1:
                ax.set_xlabel("t (shaded: training window)")
    axes[0, 0].legend(fontsize=7, loc="best")
    _save(fig, path)


# ------------------------------------------------------------------------------ report
_PLOTS = (
    ("fit.png", "Data vs fit", "Markers: the data; lines: the fitted model."),
    ("loss.png", "Training loss", "One colour per optimiser stage."),
    (
        "networks.png",
        "Network output vs discovered expression",
        "Thick: the trained network along the fitted trajectories; dashed: the expression "
        "SINDy found; dash-dot: after the refit; dotted: the true term (where known).",
    ),
    (
        "forecast.png",
        "Forecast vs truth",
        "Beyond the shaded training window: the fitted UDE and the discovered model.",
    ),
)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.{digits}g}"
    return str(v)


class _Doc:
    """Blocks rendered as Markdown and as HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, Any]] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(header), [[_fmt(c) for c in r] for r in rows])))

    def image(self, path: Path, title: str, caption: str) -> None:
        self.blocks.append(("img", (path, title, caption)))

    def markdown(self) -> str:
        out = []
        for kind, value in self.blocks:
            if kind == "h":
                out.append("#" * value[0] + " " + value[1])
            elif kind == "p":
                out.append(value)
            elif kind == "code":
                out.append("```\n" + value.rstrip("\n") + "\n```")
            elif kind == "table":
                header, rows = value
                lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
                out.append("\n".join(lines))
            elif kind == "img":
                path, title, caption = value
                out.append(f"![{title}]({path.name})\n\n*{caption}*")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        esc = html.escape
        body = []
        for kind, value in self.blocks:
            if kind == "h":
                body.append(f"<h{value[0]}>{esc(value[1])}</h{value[0]}>")
            elif kind == "p":
                body.append(f"<p>{_inline(value)}</p>")
            elif kind == "code":
                body.append(f"<pre>{esc(value)}</pre>")
            elif kind == "table":
                header, rows = value
                head = "".join(f"<th>{esc(c)}</th>" for c in header)
                trs = "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows
                )
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "img":
                path, caption_title, caption = value
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img alt="{esc(caption_title)}" '
                    f'src="data:image/png;base64,{data}"><figcaption>{esc(caption)}'
                    "</figcaption></figure>"
                )
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body)
            + "\n</body></html>\n"
        )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "color:#222;line-height:1.45}table{border-collapse:collapse;margin:0.5rem 0}"
    "th,td{border:1px solid #ccc;padding:0.25rem 0.6rem;text-align:left;font-size:0.92rem}"
    "th{background:#f3f3f3}pre{background:#f6f6f6;padding:0.6rem;overflow-x:auto}"
    "code{background:#f3f3f3;padding:0 0.2rem}img{max-width:100%}"
    "figure{margin:1rem 0}figcaption{color:#555;font-size:0.9rem}"
)


def _inline(text: str) -> str:
    """Escape, then turn Markdown `code` and **bold** spans into HTML."""
    parts = html.escape(text).split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part))
    return "".join(out)


def _config_text(run: Path) -> str | None:
    p = run / "config.toml"
    return p.read_text() if p.exists() else None


def _plot(doc: _Doc, run: Path, name: str) -> None:
    for file, plot_title, caption in _PLOTS:
        if file == name and (run / file).exists():
            doc.image(run / file, plot_title, caption)


def write_report(run_path: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` from what the run folder holds.

    Returns:
        The two paths.
    """
    run = Path(run_path)
    record = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    eqs = None
    if (run / "equations.json").exists():
        eqs = json.loads((run / "equations.json").read_text())
    doc = _Doc()
    title = f"ude-bridge run {run.name}"
    doc.h(1, title)
    demo = record.get("demo")
    if demo:
        doc.p(f"Built-in example: **{demo['title']}**. {demo['description']}")
    rows = [["folder", f"`{run}`"]]
    if record.get("command"):
        rows.append(["command", f"`{record['command']}`"])
    if record.get("created"):
        rows.append(["created", record["created"]])
    rows.append(["ude_bridge", record.get("version", "")])
    if record.get("model_file"):
        rows.append(["model file", f"`{record['model_file']}`"])
    data = record.get("data") or {}
    if data:
        where = f"copied to `{data['copy']}`" if data.get("copy") else "not copied (large)"
        rows.append(
            ["data", f"`{data.get('source')}` ({where}; SHA-256 `{data.get('sha256', '')[:16]}…`)"]
        )
    fit = record.get("fit") or {}
    if fit:
        rows.append(["final loss", _fmt(fit.get("loss"))])
    if record.get("seconds") is not None:
        rows.append(["time", f"{record['seconds']:.1f} s"])
    doc.table(["run", ""], rows)

    doc.h(2, "Model")
    states = record.get("states") or []
    model_eqs = _model_equations(run)
    if model_eqs:
        doc.code("\n".join(f"d{k}/dt = {v}" for k, v in model_eqs.items()))
    if demo and demo.get("true_equations"):
        truth = ", ".join(f"{k} = {v}" for k, v in demo["true_params"].items())
        doc.p("The data come from (" + truth + "):")
        doc.code("\n".join(f"d{k}/dt = {v}" for k, v in demo["true_equations"].items()))
        doc.p(f"Noise: {100 * demo['noise']:g} % of each state's mean magnitude.")
    elif states:
        doc.p("States: " + ", ".join(f"`{s}`" for s in states) + ".")

    if fit:
        doc.h(2, "Fit")
        stages = "; ".join(
            f"{s[0]}: {s[-1]} iterations" + (f" at lr {s[1]}" if len(s) == 3 else "")
            for s in fit.get("optimizers", [])
        )
        pre = (
            f"The networks were first pre-trained on derivative estimates (collocation; loss "
            f"{_fmt(fit['pretrain_loss'], 3)}). "
            if fit.get("pretrain_loss") is not None
            else ""
        )
        doc.p(
            f"{pre}Final loss **{_fmt(fit.get('loss'))}** (normalised MSE) after "
            f"{fit.get('iterations')} iterations ({stages}) in "
            f"{_fmt(fit.get('total_seconds'), 3)} s; method `{fit.get('method')}`, sensealg "
            f"`{fit.get('sensealg')}`; iterations with a failed solve: {fit.get('failures', 0)}."
        )
        params = fit.get("params") or {}
        if params:
            refit_params = (record.get("refit") or {}).get("params") or {}
            header = ["parameter", "fitted"] + (["after refit"] if refit_params else [])
            body = [
                [f"`{k}`", v] + ([refit_params.get(k)] if refit_params else [])
                for k, v in params.items()
            ]
            body += [[f"`{k}`", "–", v] for k, v in refit_params.items() if k not in params]
            doc.table(header, body)
        _plot(doc, run, "fit.png")
        _plot(doc, run, "loss.png")

    disc = record.get("discover") or {}
    if disc:
        doc.h(2, "Discovered equations")
        doc.p(
            f"Method `{disc.get('method')}` with library `{json.dumps(disc.get('library'))}` "
            f"({_fmt(disc.get('seconds'), 3)} s). Error: normalised RMS error on held-out "
            "samples; terms: the number of terms."
        )
        expressions = disc.get("expressions") or {}
        has_true = any(v.get("true") for v in expressions.values())
        has_refit = any(v.get("refit") for v in expressions.values())
        header = ["output", "found"] + (["after refit"] if has_refit else [])
        header += (["true"] if has_true else []) + ["error", "terms"]
        body = []
        for name, v in expressions.items():
            row = [f"`{name}`", f"`{v['found']}`"]
            if has_refit:
                row.append(f"`{v['refit']}`" if v.get("refit") else "–")
            if has_true:
                row.append(f"`{v['true']}`" if v.get("true") else "–")
            body.append(row + [v.get("error"), v.get("terms")])
        doc.table(header, body)
        if eqs:
            final = (eqs.get("refit") or {}).get("model") or eqs.get("model") or {}
            if final:
                after = " (after the refit):" if eqs.get("refit") else ":"
                doc.p("The model with the discovered terms" + after)
                doc.code("\n".join(f"d{k}/dt = {v}" for k, v in final.items()))
        refit = record.get("refit") or {}
        if refit:
            doc.p(
                f"Refit: loss {_fmt(refit.get('loss'))} after {refit.get('iterations')} "
                f"L-BFGS iterations ({_fmt(refit.get('seconds'), 3)} s)."
            )
        _plot(doc, run, "networks.png")

    forecast = record.get("forecast") or {}
    if forecast:
        doc.h(2, "Forecast")
        doc.p(f"Every trajectory solved from its fitted initial state to t = {forecast.get('to')}.")
        errs = forecast.get("rms_error")
        if errs:
            doc.table(
                ["model", "RMS error vs truth beyond the training window"],
                [[k, v] for k, v in errs.items()],
            )
        _plot(doc, run, "forecast.png")

    config = _config_text(run)
    if config:
        doc.h(2, "Configuration")
        doc.p(
            "The resolved model file, `config.toml` (every default filled in; "
            f"`ude-bridge fit {run / 'config.toml'} --out NEW_RUN` runs it again):"
        )
        doc.code(config)
    doc.h(2, "Files")
    files = sorted(p.name for p in run.iterdir() if p.is_file() and not p.name.startswith("."))
    names = set(files) | {"report.md", "report.html"}
    doc.p(", ".join(f"`{f}`" for f in sorted(names)))
    md = run / "report.md"
    atomic_write_text(md, doc.markdown(), where="report")
    page = run / "report.html"
    atomic_write_text(page, doc.html(title), where="report")
    return md, page


def _model_equations(run: Path) -> dict[str, str]:
    """``{state: equation}`` from the run's ``config.toml`` (empty when there is none)."""
    p = run / "config.toml"
    if not p.exists():
        return {}
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return {
            str(k): str(v) for k, v in tomllib.loads(p.read_text())["model"]["equations"].items()
        }
    except (KeyError, ValueError):
        return {}
