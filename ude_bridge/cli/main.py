"""``ude-bridge``: the command line (argparse subcommands).

```
ude-bridge demo [--system lv|pendulum|sir] [--quick]   the whole pipeline, built-in system
ude-bridge fit model.toml [--data data.csv] [--out runs/NAME] [--resume] [--force]
ude-bridge discover RUN_DIR                             networks -> equations, refit, forecast
ude-bridge solve model.toml --tspan 0 10 --saveat 0.1 [--backend torch|scipy|julia] --out a.csv
ude-bridge info [--julia]                               backends, versions, where Julia is
```

Errors are one line on stderr, ``ude-bridge: error: ...``: exit code 2 for bad input (a
missing file, a malformed model file, an unknown key, a missing column, an equation error,
an unavailable backend), 1 for a failure at run time, 130 for Ctrl-C (the fit's checkpoint
is saved and the line says how to resume). ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main"]

PROG = "ude-bridge"


class _Interrupted(Exception):
    """Ctrl-C, with what to tell the user."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _fmt(text: str) -> str:
    return text.strip("\n")


_EPILOGS = {
    "main": """
examples:
  ude-bridge demo                       # the Lotka-Volterra UDE, end to end (about a minute)
  ude-bridge demo --system sir --quick  # a quick run of another built-in system
  ude-bridge fit examples/lotka_volterra_ude.toml --out runs/lv
  ude-bridge discover runs/lv
  ude-bridge solve runs/lv --tspan 0 10 --saveat 0.1 --out lv.csv
  ude-bridge info
""",
    "demo": """
example:
  ude-bridge demo --system lv --out runs/demo-lv
  ude-bridge demo --system pendulum --quick   # a smoke run in seconds

Generates noisy data from the true system, fits the UDE (progress bar), discovers the
network terms with SINDy, refits their coefficients, forecasts beyond the training window and
compares with the truth. Everything lands in the run folder (report.html to start with).
""",
    "fit": """
example:
  ude-bridge fit examples/lotka_volterra_ude.toml --out runs/lv
  ude-bridge fit model.toml --data other.csv --out runs/lv2 --force
  ude-bridge fit model.toml --out runs/lv --resume   # continue an interrupted fit

Writes runs/NAME/: config.toml, data.csv, checkpoint.pt, fit.pt, history.csv, fit.png,
loss.png, report.md, report.html. An existing run folder is never overwritten without
--force; Ctrl-C saves the checkpoint.
""",
    "discover": """
example:
  ude-bridge discover runs/lv
  ude-bridge discover runs/lv --refit 0      # no refit of the coefficients

Replaces each network output of the fitted model by an equation ([discover] in the run's
config.toml: method, library), refits the coefficients against the data, and writes
equations.json, equations.tex, networks.png (and forecast.png with [report] forecast).
""",
    "solve": """
example:
  ude-bridge solve examples/lotka_volterra_ude.toml --tspan 0 10 --saveat 0.1 --out sol.csv
  ude-bridge solve runs/lv --tspan 0 10 --saveat 0.1 --backend scipy   # the trained model
  ude-bridge solve model.toml --tspan 0 5 --u0 1.0 2.0 --method Rodas5P

MODEL is a model file (networks at their initial weights) or a run folder (the refit
discovered model if there is one, else the fitted UDE). The CSV has columns t, <states>.
""",
    "info": """
example:
  ude-bridge info
  ude-bridge info --julia    # also start Julia and report the versions it runs
""",
}


def _common(top: bool) -> argparse.ArgumentParser:
    # The options are accepted before and after the command; after it, they must not
    # overwrite a value given before it, hence SUPPRESS as the subcommands' default.
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show the full traceback of an error",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None if top else argparse.SUPPRESS,
        metavar="N",
        help="torch CPU threads (default 1: the small tensors of a UDE gain nothing from more, "
        "and lose much on a busy machine)",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ude-bridge`` (every subcommand)."""
    from . import demo as demo_mod

    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog=PROG,
        description="Universal differential equations: fit, discover, solve.",
        epilog=_fmt(_EPILOGS["main"]),
        formatter_class=formatter,
        parents=[_common(True)],
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"ude_bridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    common = _common(False)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_fmt(_EPILOGS[name]),
            formatter_class=formatter,
            parents=[common],
        )

    p = add("demo", "run the whole pipeline on a built-in system")
    p.add_argument(
        "--system",
        default="lv",
        help=f"built-in system: {', '.join(demo_mod.SYSTEMS)} (default lv)",
    )
    p.add_argument("--quick", action="store_true", help="a tiny budget (a smoke run, ~10 s)")
    p.add_argument("--out", help="run folder (default runs/demo-SYSTEM-TIMESTAMP)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run folder")
    p.add_argument("--seed", type=int, default=0, help="seed of noise and training (default 0)")
    p.add_argument("--noise", type=float, help="noise as a fraction of the mean (default 0.01)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("fit", "fit a model file's UDE to its data, into a run folder")
    p.add_argument("model", help="the model file (TOML)")
    p.add_argument("--data", help="the data CSV (default: [data] path of the model file)")
    p.add_argument("--out", help="run folder (default runs/TIMESTAMP)")
    p.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")
    p.add_argument("--force", action="store_true", help="overwrite an existing run folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("discover", "turn a fitted run's networks into equations")
    p.add_argument("run", help="the run folder of a finished fit")
    p.add_argument("--method", choices=("sindy", "pysr"), help="override [discover] method")
    p.add_argument("--refit", type=int, metavar="N", help="L-BFGS iterations of the refit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = add("solve", "solve a model file's (or a run's) equations and write a CSV")
    p.add_argument("model", help="a model file (TOML) or a run folder")
    p.add_argument(
        "--tspan", nargs=2, type=float, required=True, metavar=("T0", "T1"), help="time span"
    )
    p.add_argument("--saveat", type=float, metavar="DT", help="save every DT (default: every step)")
    p.add_argument(
        "--backend", choices=("torch", "scipy", "julia"), default="torch", help="(default torch)"
    )
    p.add_argument("--method", default=None, help="solver method (default [fit] method, Tsit5)")
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (1e-6)")
    p.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (1e-6)")
    p.add_argument("--u0", nargs="+", type=float, help="initial state, one value per state")
    p.add_argument("--out", help="output CSV (default: print to stdout)")

    p = add("info", "show the backends, versions and where Julia comes from")
    p.add_argument("--julia", action="store_true", help="start Julia and ask it for versions")
    return parser


# ------------------------------------------------------------------------------ helpers
def _use_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU threads (``--threads``, else ``$UDE_BRIDGE_THREADS``, else 1).

    Called by each command once its input is read, so that reading a bad model file never
    needs torch.
    """
    threads = getattr(args, "threads", None)
    if threads is None:
        text = os.environ.get("UDE_BRIDGE_THREADS", "") or "1"
        try:
            threads = int(text)
        except ValueError:
            from .config import ConfigError

            raise ConfigError(f"UDE_BRIDGE_THREADS must be an integer; got {text!r}.") from None
    import torch

    torch.set_num_threads(max(1, threads))


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _command_line(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in [PROG, *argv])


def _record_start(run: Any, argv: Sequence[str], **extra: Any) -> None:
    import datetime as _dt

    from .. import __version__

    run.save_record(
        command=_command_line(argv),
        created=_dt.datetime.now().isoformat(timespec="seconds"),
        version=__version__,
        **extra,
    )


def _interrupted(run: Any, model_file: str | None) -> _Interrupted:
    ck = run / "checkpoint.pt"
    if ck.exists():
        target = model_file or str(run / "config.toml")
        return _Interrupted(
            f"interrupted; the checkpoint is saved in {ck}. Resume with: "
            f"{PROG} fit {shlex.quote(str(target))} --out {shlex.quote(str(run.path))} --resume"
        )
    return _Interrupted("interrupted before the first checkpoint; nothing to resume.")


def _short(expr: Any, digits: int = 3) -> str:
    import sympy

    e = sympy.sympify(expr)
    return str(e.xreplace({f: sympy.Float(f, digits) for f in e.atoms(sympy.Float)}))


def _equation_lines(found: Any, true_terms: dict[str, Any] | None = None) -> list[str]:
    """``U1 = -0.9*x*y   refit -0.904*x*y   true -0.9*x*y``, columns aligned."""
    rows = []
    for name, expr in found.expressions.items():
        refit = (found.refit_expressions or {}).get(name)
        true = (true_terms or {}).get(name)
        rows.append(
            [
                f"{name} = {_short(expr)}",
                f"refit {_short(refit, 4)}" if refit is not None else "",
                f"true {true}" if true is not None else "",
            ]
        )
    widths = [max(len(r[k]) for r in rows) for k in range(3)] if rows else [0, 0, 0]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


# ------------------------------------------------------------------------------ commands
def cmd_demo(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .config import ConfigError, resolve_config
    from .demo import generate_data, make_config, resolve_system
    from .pipeline import discover_step, fit_step, forecast_step
    from .report import write_report
    from .runs import prepare_run, timestamp

    start = time.perf_counter()
    system = resolve_system(args.system)
    _use_threads(args)
    if args.noise is not None and not (0 <= args.noise < 1):
        raise ConfigError(f"demo: --noise must be a fraction in [0, 1); got {args.noise}.")
    out = args.out or str(Path("runs") / f"demo-{system.key}-{timestamp()}")
    run = prepare_run(out, force=args.force)
    made = generate_data(system, run.path, noise=args.noise, seed=args.seed)
    _record_start(
        run,
        argv,
        demo={
            "system": system.key,
            "title": system.title,
            "description": system.description,
            "true_equations": system.true_equations,
            "true_params": system.true_params,
            "noise": made["noise"],
            "quick": args.quick,
        },
    )
    cfg = resolve_config(make_config(system, run.path, quick=args.quick, seed=args.seed))
    net = cfg["network"]["NN1"]
    sizes = "-".join(str(k) for k in [len(net["inputs"]), *net["hidden"], len(net["outputs"])])
    print(f"{PROG} demo: {system.title}" + (" (--quick)" if args.quick else ""), flush=True)
    _say(f"run folder {run.path}")
    try:
        result = fit_step(cfg, run, progress=not args.no_progress, say=_say)
    except KeyboardInterrupt:
        raise _interrupted(run, None) from None
    found, refit = discover_step(cfg, run, say=_say)
    fc = forecast_step(cfg, run, say=_say)
    seconds = time.perf_counter() - start
    run.save_record(status="done", seconds=seconds)
    write_report(run.path)

    fit_rec = run.record["fit"]
    pad = " " * 12
    lines = [
        f"  data      {len(system.u0)} trajectories x {made['points']} points, t in [0, "
        f"{system.t1:g}], noise {100 * made['noise']:g} % of the mean",
        "  model     "
        + ", ".join(f"d{k}/dt = {v}" for k, v in system.equations.items())
        + f"   ({', '.join(net['outputs'])}: a {sizes} {net['activation']} network)",
        f"  fit       loss {result.loss:.3g} after {fit_rec['iterations']} iterations "
        f"({fit_rec['seconds']:.1f} s)"
        + ("; networks pre-trained on derivative estimates" if fit_rec["pretrain_loss"] else ""),
    ]
    library = next(iter(found.libraries.values()))
    lines.append(f"  discover  SINDy, {len(library.names)} terms: {', '.join(library.names)}")
    for k, text in enumerate(_equation_lines(found, dict(system.true_terms))):
        lines.append(("  found     " if k == 0 else pad[:-1] + " ") + text)
    if refit is not None:
        lines.append(f"  refit     loss {refit.loss:.3g} ({run.record['refit']['seconds']:.1f} s)")
    if fc and fc.get("rms_error"):
        errs = ", ".join(
            f"{v:.3g} ({k})" if v is not None else f"failed ({k})"
            for k, v in fc["rms_error"].items()
        )
        lines.append(
            f"  forecast  t in ({system.t1:g}, {system.forecast:g}], RMS error vs truth: {errs}"
        )
    lines += [
        f"  time      {seconds:.1f} s",
        f"  run       {run.path}   (report: {run.path / 'report.html'})",
    ]
    print("\n".join(lines))
    return 0


def cmd_fit(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .config import ConfigError, load_config
    from .pipeline import fit_step, forecast_step
    from .report import write_report
    from .runs import latest_run, prepare_run

    if args.resume and args.force:
        raise ConfigError("fit: --resume and --force contradict each other; give one.")
    cfg = load_config(args.model)
    _use_threads(args)
    if args.data is not None and not Path(args.data).exists():
        raise ConfigError(f"{args.data}: no such data file (--data).")
    out = args.out
    if args.resume and out is None:
        found = latest_run(args.model)
        if found is None:
            raise ConfigError(
                f"fit --resume: no run of {args.model} under runs/; pass --out RUN_DIR."
            )
        out = str(found)
    # check everything before creating a run folder, so bad input leaves nothing behind
    from .pipeline import check_config

    check_config(cfg, args.data)
    run = prepare_run(out, force=args.force, resume=args.resume)
    start = time.perf_counter()
    if not args.resume or not run.record.get("created"):
        _record_start(run, argv)
    _say(f"run folder {run.path}")
    try:
        result = fit_step(
            cfg,
            run,
            data_path=args.data,
            resume=args.resume,
            progress=not args.no_progress,
            say=_say,
        )
    except KeyboardInterrupt:
        raise _interrupted(run, args.model) from None
    forecast_step(cfg, run, say=_say)
    seconds = time.perf_counter() - start
    run.save_record(seconds=seconds)
    write_report(run.path)
    rec = run.record["fit"]
    print(f"fit: loss {result.loss:.4g} after {rec['iterations']} iterations ({seconds:.1f} s)")
    params = rec.get("params") or {}
    if params:
        print("  " + ", ".join(f"{k} = {v:.4g}" for k, v in params.items()))
    print(f"run folder: {run.path}")
    if len(result.model.networks):
        print(f"next: {PROG} discover {shlex.quote(str(run.path))}")
    return 0


def cmd_discover(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from .config import load_config
    from .pipeline import discover_step, forecast_step
    from .report import write_report
    from .runs import open_run

    run = open_run(args.run, need="fit.pt")
    cfg = load_config(run / "config.toml")
    _use_threads(args)
    if args.method is not None:
        cfg["discover"]["method"] = args.method
    if args.refit is not None:
        if args.refit < 0:
            from .config import ConfigError

            raise ConfigError(f"discover: --refit must be >= 0; got {args.refit}.")
        cfg["discover"]["refit"] = args.refit
        if args.refit == 0 and (run / "refit.pt").exists():
            (run / "refit.pt").unlink()
    start = time.perf_counter()
    found, refit = discover_step(cfg, run, progress=not args.no_progress, say=_say)
    forecast_step(cfg, run, say=_say)
    run.save_record(discover_seconds=time.perf_counter() - start)
    write_report(run.path)
    true_terms = dict(cfg["report"]["true_terms"]) or None
    print(f"discover ({found.method}): {len(found.expressions)} expression(s)")
    for line in _equation_lines(found, true_terms):
        print("  " + line)
    if refit is not None:
        print(f"refit loss {refit.loss:.4g}")
    print(f"wrote {run / 'equations.json'}, {run / 'equations.tex'}, {run / 'report.html'}")
    return 0


def _solve_source(path: Path) -> tuple[Any, list[float] | None, str, dict[str, Any] | None]:
    """-> (model, default u0, description, cfg)."""
    from .build import build_model, initial_state
    from .config import load_config

    if path.is_dir():
        from ..train import load
        from .runs import open_run

        run = open_run(path, need="fit.pt")
        which = "refit.pt" if (run / "refit.pt").exists() else "fit.pt"
        result = load(run / which)
        u0 = [float(x) for x in result.u0[0]]
        cfg = load_config(run / "config.toml") if (run / "config.toml").exists() else None
        return result.model, u0, f"{which} of {path}", cfg
    cfg = load_config(path)
    model = build_model(cfg)
    u0 = initial_state(cfg, model)
    if u0 is None and cfg["data"]["path"] and Path(cfg["data"]["path"]).exists():
        from .build import load_data

        data = load_data(cfg)
        states = [str(s) for s in model.system().states]
        if all(s in data.states for s in states):
            first = data.u[0][0]
            u0 = [float(first[data.states.index(s)]) for s in states]
            if any(v != v for v in u0):
                u0 = None
    return model, u0, str(path), cfg


def cmd_solve(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import csv

    import torch

    from ..problem import ODEProblem
    from ..solve import solve
    from .config import ConfigError

    path = Path(args.model)
    if not path.exists():
        raise ConfigError(f"{path}: no such model file or run folder.")
    _use_threads(args)
    model, u0, what, cfg = _solve_source(path)
    states = [str(s) for s in model.system().states]
    if args.u0 is not None:
        if len(args.u0) != len(states):
            raise ConfigError(
                f"solve: --u0 needs {len(states)} values (states {', '.join(states)}); got "
                f"{len(args.u0)}."
            )
        u0 = list(args.u0)
    if u0 is None:
        raise ConfigError(
            f"solve: no initial state for {what}; pass --u0 with {len(states)} values "
            f"({', '.join(states)}) or set [model] u0 in the model file."
        )
    t0, t1 = args.tspan
    method = args.method or (cfg["fit"]["method"] if cfg else "Tsit5")
    params = tuple(p.detach() for p in model.param_tensors())
    prob = ODEProblem(model.rhs, torch.tensor(u0, dtype=model.dtype), (t0, t1), params)
    with torch.no_grad():
        sol = solve(
            prob,
            method,
            saveat=args.saveat,
            rtol=args.rtol,
            atol=args.atol,
            backend=args.backend,
        )
    t = sol.t.detach().cpu().numpy() if hasattr(sol.t, "detach") else sol.t
    u = sol.u.detach().cpu().numpy() if hasattr(sol.u, "detach") else sol.u
    rows = [["t", *states]] + [
        [repr(float(ti)), *(repr(float(v)) for v in ui)] for ti, ui in zip(t, u, strict=False)
    ]
    if args.out:
        from .._io import atomic_write

        atomic_write(
            Path(args.out),
            lambda fh: csv.writer(fh, lineterminator="\n").writerows(rows),
            where="ude-bridge solve",
            make_folder=True,
        )
    else:
        csv.writer(sys.stdout, lineterminator="\n").writerows(rows)
    if not sol.success:
        from ..errors import SolveError

        kept = f"; the {len(t)} rows up to there are in {args.out}" if args.out else ""
        raise SolveError(f"solve: the solver stopped early: {sol.message}{kept}")
    if args.out:
        _say(f"solved {what} with {method} on {args.backend}: {len(t)} rows -> {args.out}")
    if not path.is_dir() and len(model.networks):
        _say(
            f"note: {path} has networks, solved at their initial (untrained) weights; solve a "
            "run folder (ude-bridge solve runs/NAME ...) for the trained model"
        )
    return 0


def cmd_info(args: argparse.Namespace, argv: Sequence[str]) -> int:
    import platform

    from .. import __version__
    from ..backends.julia_runtime import format_info, info

    _use_threads(args)

    print(f"ude_bridge {__version__} (Python {platform.python_version()}, {sys.executable})")
    print(format_info(info(start_julia=args.julia)))
    try:
        from ..solvers.registry import method_names

        print("torch engine methods: " + ", ".join(method_names()))
    except ImportError:  # pragma: no cover - the registry is part of the engine
        pass
    return 0


COMMANDS = {
    "demo": cmd_demo,
    "fit": cmd_fit,
    "discover": cmd_discover,
    "solve": cmd_solve,
    "info": cmd_info,
}


# ------------------------------------------------------------------------------ entry point
def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def _error(msg: str) -> None:
    sys.stderr.write(f"{PROG}: error: {msg}\n")
    sys.stderr.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ude-bridge`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = bool(getattr(args, "debug", False))
    from ..errors import InputError, SolveError, UdeBridgeError

    try:
        return COMMANDS[args.command](args, argv)
    except _Interrupted as exc:
        if debug:
            raise
        _error(str(exc))
        return 130
    except KeyboardInterrupt:
        if debug:
            raise
        _error("interrupted.")
        return 130
    except (InputError, UdeBridgeError) as exc:
        if debug:
            raise
        _error(_one_line(str(exc)))
        return 1 if isinstance(exc, SolveError) else 2
    except Exception as exc:  # noqa: BLE001 - the one place every failure becomes one line
        if debug:
            raise
        if isinstance(exc.__context__, KeyboardInterrupt):
            _error("interrupted.")
            return 130
        _error(f"{type(exc).__name__}: {_one_line(str(exc))} (run with --debug for the traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
