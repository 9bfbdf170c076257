"""From a resolved configuration (`ude_bridge.cli.config`) to objects: the model, the
initial state, the data, and the keyword arguments of `fit` and `discover`.

Errors keep the configuration's form: a `ConfigError` whose one-line message names the
file, the table, the key and, where it can be found, the line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from .config import _PYSR_KEYS, _SINDY_KEYS, ConfigError, _at, _fail, _line_of, _nearest, _where

__all__ = [
    "build_library",
    "build_model",
    "discover_kwargs",
    "fit_kwargs",
    "initial_state",
    "load_data",
]


def _source(cfg: Mapping[str, Any]) -> tuple[Path | None, str | None]:
    src = cfg.get("_source") or {}
    return (Path(src["path"]) if src.get("path") else None), src.get("text")


def _first_line(msg: str) -> str:
    return msg.strip().splitlines()[0] if msg.strip() else msg


def build_model(cfg: Mapping[str, Any]) -> Any:
    """The `UDE` a resolved configuration describes (networks at their initial weights).

    Raises:
        ConfigError: the model itself is invalid (an equation error, an unknown symbol...):
            the model's own message, prefixed with the file and the line where found.
    """
    import torch

    from ..model import MLP, UDE

    path, text = _source(cfg)
    m = cfg["model"]
    dtype = getattr(torch, m["dtype"])
    try:
        nets = [
            MLP(
                net["inputs"],
                net["outputs"],
                hidden=tuple(net["hidden"]),
                activation=net["activation"],
                seed=net["seed"],
                name=name,
                dtype=dtype,
                **(
                    {"input_range": [tuple(p) for p in net["input_range"]]}
                    if isinstance(net["input_range"], list)
                    else {}
                ),
            )
            for name, net in cfg["network"].items()
        ]
    except InputError as exc:
        name = next(iter(cfg["network"]), "")
        raise ConfigError(
            f"{_where(path)}{_at(text, f'network.{name}')}: [network]: {_first_line(str(exc))}"
        ) from None
    try:
        model = UDE(
            {str(k): v for k, v in m["equations"].items()},
            params={k: float(v) for k, v in m["params"].items()},
            fixed=m["fixed"],
            network=nets or None,
            positive=m["positive"],
            states=m["states"],
            time=m["time"],
            dtype=dtype,
        )
    except InputError as exc:
        msg = _first_line(str(exc))
        found = re.search(r"equation for '(\w+)'", msg)
        key = found.group(1) if found else "equations"
        line = _line_of(text, "model.equations", key) or _line_of(text, "model", key)
        if line is None:
            line = _line_of(text, "model", "equations")
        at = f" (line {line})" if line else ""
        raise ConfigError(f"{_where(path)}{at}: [model]: {msg}") from None
    return model


def initial_state(cfg: Mapping[str, Any], model: Any) -> list[float] | None:
    """``[model] u0`` in the model's state order, or None when not given."""
    path, text = _source(cfg)
    u0 = cfg["model"]["u0"]
    if u0 is None:
        return None
    states = [str(s) for s in model.system().states]
    if isinstance(u0, dict):
        missing = [s for s in states if s not in u0]
        extra = [k for k in u0 if k not in states]
        if extra:
            raise _fail(
                path,
                text,
                "model",
                "u0",
                f"{extra[0]!r} is not a state."
                + _nearest(extra[0], states).replace("Valid keys", "States"),
            )
        if missing:
            raise _fail(path, text, "model", "u0", f"no value for state {missing[0]!r}.")
        return [float(u0[s]) for s in states]
    if len(u0) != len(states):
        raise _fail(
            path,
            text,
            "model",
            "u0",
            f"needs {len(states)} values (states {', '.join(states)}); got {len(u0)}.",
        )
    return [float(x) for x in u0]


def load_data(cfg: Mapping[str, Any], path: str | os.PathLike | None = None) -> Any:
    """The `Trajectories` of ``[data]`` (or of ``path``, e.g. ``--data``), states renamed to
    the model's names.

    Raises:
        ConfigError: no data path given. InputError: from `Trajectories.from_csv` (a missing
            file or column, a bad cell), with the line of the CSV.
    """
    from ..data import Trajectories

    src_path, text = _source(cfg)
    d = cfg["data"]
    csv_path = path if path is not None else d["path"]
    if csv_path is None:
        raise ConfigError(
            f'{_where(src_path)}: [data] has no path; set [data] path = "data.csv" or pass '
            "--data data.csv."
        )
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise ConfigError(f"{csv_path}: no such data file.")
    model_states = list(cfg["model"]["states"] or cfg["model"]["equations"])
    columns = dict(d["columns"])
    for state in columns:
        if state not in model_states:
            raise _fail(
                src_path,
                text,
                "data",
                "columns",
                f"{state!r} is not a state."
                + _nearest(state, model_states).replace("Valid keys", "States"),
            )
    if d["states"] is not None:
        states = list(d["states"])
    else:
        states = None  # every numeric column but the time and trajectory; filtered below
    names = columns  # state -> column
    if states is None:
        header = _csv_header(csv_path)
        wanted = [names.get(s, s) for s in model_states]
        states = [c for c in wanted if c in header]
        if not states:
            missing = wanted[0]
            raise ConfigError(
                f"{csv_path}: no column for any state of the model; missing column "
                f"{missing!r}." + _nearest(missing, header).replace("Valid keys", "Columns")
            )
    data = Trajectories.from_csv(
        csv_path, time=d["time"], states=states, trajectory=d["trajectory"]
    )
    inverse = {col: state for state, col in names.items()}
    renamed = [inverse.get(c, c) for c in data.states]
    if renamed != list(data.states):
        data = Trajectories(list(data.t), list(data.u), states=renamed, names=list(data.names))
    return data


def _csv_header(path: Path) -> list[str]:
    import csv

    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}).") from None


def fit_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of `ub.fit` from ``[fit]`` (checkpointing is the caller's)."""
    f = cfg["fit"]
    return {
        "method": f["method"],
        "rtol": f["rtol"],
        "atol": f["atol"],
        "sensealg": f["sensealg"],
        "optimizers": [tuple(s) for s in f["optimizers"]],
        "seed": f["seed"],
        "learn_u0": f["learn_u0"],
        "normalize": f["normalize"],
        "l2": f["l2"],
        "shooting": f["shooting"],
        "continuity": f["continuity"],
        "validation": f["validation"],
        "patience": f["patience"],
        "lr_schedule": None if f["lr_schedule"] == "none" else f["lr_schedule"],
        "clip_grad": f["clip_grad"],
        "max_steps": f["max_steps"],
        "backend": f["backend"],
        "checkpoint_every": f["checkpoint_every"],
    }


def build_library(spec: Mapping[str, Any], variables: list[str]) -> Any:
    """The term library ``[discover] library`` describes, over ``variables`` by default.

    ``polynomial = d`` (degree), ``fourier = n`` (frequencies) and ``terms = [...]`` (custom
    expressions) are added together; ``variables`` overrides the variables of the
    polynomial and Fourier parts.
    """
    from ..discover import library

    names = list(spec.get("variables") or variables)
    parts = []
    if "polynomial" in spec:
        parts.append(
            library.polynomial(
                names,
                degree=spec["polynomial"],
                include_bias=spec.get("include_bias", True),
                interaction_only=spec.get("interaction_only", False),
            )
        )
    if "fourier" in spec:
        parts.append(library.fourier(names, spec["fourier"]))
    if "terms" in spec:
        parts.append(library.custom(spec["terms"]))
    lib = parts[0]
    for part in parts[1:]:
        lib = lib + part
    return lib


def discover_kwargs(cfg: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """Keyword arguments of `ub.discover` from ``[discover]`` (the library built per output
    over the inputs of the network that produces it, unless ``variables`` is given)."""
    import sympy

    path, text = _source(cfg)
    d = cfg["discover"]
    spec = d["library"]
    system = model.system()
    libraries = {}
    for net in system.networks:
        used = set().union(*(sympy.sympify(e).free_symbols for e in net.inputs))
        order = [str(s) for s in (*system.states, system.time, *system.inputs) if s in used]
        variables = [v for v in order if v != str(system.time)] or order
        try:
            lib = build_library(spec, variables)
        except InputError as exc:
            raise _fail(path, text, "discover", "library", _first_line(str(exc))) from None
        for out in net.outputs:
            libraries[str(out)] = lib
    if d["outputs"] is not None:
        libraries = {k: v for k, v in libraries.items() if k in d["outputs"]}
    options = _SINDY_KEYS if d["method"] == "sindy" else _PYSR_KEYS
    other = _PYSR_KEYS if d["method"] == "sindy" else _SINDY_KEYS
    for key in other:
        if d.get(key) is not None and key not in options:
            raise _fail(
                path,
                text,
                "discover",
                key,
                f"is an option of method={'pysr' if d['method'] == 'sindy' else 'sindy'!r}, "
                f"not of method={d['method']!r}.",
            )
    kwargs: dict[str, Any] = {
        "method": d["method"],
        "library": libraries if d["method"] == "sindy" else None,
        "outputs": d["outputs"],
        "points": d["points"],
        "box": d["box"],
        "along": d["along"],
        "seed": d["seed"],
    }
    for key in options:
        if d.get(key) is not None:
            kwargs[key] = tuple(d[key]) if key == "optimizers" else d[key]
    return kwargs
