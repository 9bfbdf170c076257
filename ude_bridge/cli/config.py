"""Model files (TOML): what a ``ub.UDE(...)`` call, its data and its training hold, as text.

```toml
[model]
equations = { x = "alpha*x + U1", y = "-delta*y + U2" }
params = { alpha = 1.3, delta = 1.8 }
fixed = ["alpha", "delta"]

[network.NN1]
inputs = ["x", "y"]
outputs = ["U1", "U2"]
hidden = [16]

[data]
path = "lv.csv"          # relative to the model file

[fit]
optimizers = [["adam", 0.05, 100], ["lbfgs", 100]]

[discover]
library = { polynomial = 2 }
```

`load_config` reads and checks a file and returns the *resolved* configuration: every
table and key present, defaults filled in, paths absolute. Every problem is an `ConfigError`
(an `InputError`) whose one-line message names the file, the table, the key and, where it
can be found, the line: a malformed file, an unknown key (with the nearest valid key), a
value of the wrong type. `dump_config` writes a resolved configuration back as TOML, so a
run folder's ``config.toml`` can be loaded again. Turning a configuration into objects (the
model, the data, keyword arguments) is `ude_bridge.cli.build`'s job.
"""

from __future__ import annotations

import copy
import difflib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from ..discover.discover import PYSR_OPTIONS, SINDY_OPTIONS
from ..errors import InputError

__all__ = [
    "DEFAULTS",
    "ConfigError",
    "dump_config",
    "load_config",
    "relative_paths",
    "resolve_config",
]


class ConfigError(InputError):
    """A model file that cannot be used: malformed, unknown key, wrong type or value."""


# ------------------------------------------------------------------------------ the schema
# Each key: (checker, default). A default of ``REQUIRED`` must be given; ``None`` is "absent".
REQUIRED = object()

# the [discover] keys are ``discover``'s own option names (one list, never out of step)
_SINDY_KEYS = tuple(SINDY_OPTIONS)
_PYSR_KEYS = PYSR_OPTIONS


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _num_table(v: Any) -> bool:
    return isinstance(v, dict) and all(_is_num(x) for x in v.values())


def _str_table(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())


def _equations(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and bool(v)
        and all(isinstance(x, (str, int, float)) for x in v.values())
    )


def _u0(v: Any) -> bool:
    return _num_table(v) or (isinstance(v, list) and all(_is_num(x) for x in v))


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(x) and x > 0 for x in v)


def _range(v: Any) -> bool:
    if v in ("data", "none"):
        return True
    return isinstance(v, list) and all(
        isinstance(p, list) and len(p) == 2 and all(_is_num(x) for x in p) for p in v
    )


def _optimizers(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(s, list) and s for s in v)


def _library(v: Any) -> bool:
    return isinstance(v, dict)


def _pos(v: Any) -> bool:
    return _is_num(v) and v > 0


def _pos_int(v: Any) -> bool:
    return _is_int(v) and v > 0


def _nonneg_int(v: Any) -> bool:
    return _is_int(v) and v >= 0


def _nonneg(v: Any) -> bool:
    return _is_num(v) and v >= 0


def _any(v: Any) -> bool:
    return True


#: (checker, default, what the checker wants: for the error message)
SCHEMA: dict[str, dict[str, tuple[Callable[[Any], bool], Any, str]]] = {
    "model": {
        "equations": (_equations, REQUIRED, 'a table {state = "expression"}'),
        "states": (_str_list, None, "a list of state names"),
        "params": (_num_table, {}, "a table {name = number}"),
        "fixed": (_str_list, [], "a list of parameter names"),
        "positive": (_str_list, [], "a list of parameter names"),
        "time": (_is_str, "t", "a name"),
        "u0": (_u0, None, "a table {state = number} or a list of numbers"),
        "dtype": (lambda v: v in ("float64", "float32"), "float64", "'float64' or 'float32'"),
    },
    "network": {
        "inputs": (_str_list, REQUIRED, "a list of names or expressions"),
        "outputs": (_str_list, REQUIRED, "a list of names"),
        "hidden": (_int_list, [32, 32], "a list of positive integers"),
        "activation": (_is_str, "tanh", "an activation name"),
        "seed": (_is_int, 0, "an integer"),
        "input_range": (_range, "data", "'data', 'none' or a list of [lo, hi] pairs"),
    },
    "data": {
        "path": (_is_str, None, "a path to a CSV file"),
        "time": (_is_str, "t", "a column name"),
        "states": (_str_list, None, "a list of column names"),
        "columns": (_str_table, {}, 'a table {state = "column"}'),
        "trajectory": (_is_str, None, "a column name"),
    },
    "fit": {
        "method": (_is_str, "Tsit5", "a method name such as 'Tsit5'"),
        "rtol": (_pos, 1e-6, "a number > 0"),
        "atol": (_pos, 1e-6, "a number > 0"),
        "sensealg": (_is_str, "backprop", "'backprop' or 'adjoint'"),
        "optimizers": (
            _optimizers,
            [["adam", 0.01, 500], ["lbfgs", 100]],
            'a list of stages like ["adam", 0.01, 500] or ["lbfgs", 100]',
        ),
        "seed": (_is_int, 0, "an integer"),
        "pretrain": (_nonneg_int, 0, "an integer >= 0 (iterations)"),
        "checkpoint_every": (_pos_int, 25, "an integer > 0"),
        "learn_u0": (_is_bool, False, "true or false"),
        "normalize": (_is_bool, True, "true or false"),
        "l2": (_nonneg, 0.0, "a number >= 0"),
        "shooting": (_pos_int, None, "an integer >= 1 (segments)"),
        "continuity": (_nonneg, 10.0, "a number >= 0"),
        "validation": (lambda v: _is_num(v) and 0 < v < 1, None, "a fraction in (0, 1)"),
        "patience": (_pos_int, None, "an integer > 0"),
        "lr_schedule": (lambda v: v in ("cosine", "none"), "none", "'cosine' or 'none'"),
        "clip_grad": (_pos, None, "a number > 0"),
        "max_steps": (_pos_int, 10_000, "an integer > 0"),
        "backend": (lambda v: v in ("torch", "julia"), "torch", "'torch' or 'julia'"),
    },
    "discover": {
        "method": (lambda v: v in ("sindy", "pysr"), "sindy", "'sindy' or 'pysr'"),
        "library": (_library, {"polynomial": 3}, "a table such as { polynomial = 3 }"),
        "outputs": (_str_list, None, "a list of network outputs"),
        "points": (_pos_int, None, "an integer > 0"),
        "box": (_nonneg_int, 0, "an integer >= 0"),
        "along": (lambda v: v in ("fit", "data"), "fit", "'fit' or 'data'"),
        "seed": (_is_int, 0, "an integer"),
        "refit": (_nonneg_int, 100, "an integer >= 0 (L-BFGS iterations; 0: no refit)"),
        "optimizers": (_str_list, None, 'a list of SINDy optimizers, e.g. ["stlsq", "ssr"]'),
        "criterion": (lambda v: v in ("bic", "aic", "cv"), None, "'bic', 'aic' or 'cv'"),
        "tolerance": (_nonneg, None, "a number >= 0"),
        "n_folds": (_pos_int, None, "an integer > 1"),
        "ensemble": (_nonneg_int, None, "an integer >= 0"),
        "n_thresholds": (_pos_int, None, "an integer > 0"),
        "select": (
            lambda v: v in ("auto", "trajectory", "samples"),
            None,
            "'auto', 'trajectory' or 'samples'",
        ),
        "trajectory_tolerance": (_nonneg, None, "a number >= 0"),
        **{k: (_any, None, "a value PySR accepts") for k in _PYSR_KEYS},
    },
    "report": {
        "forecast": (_is_num, None, "a time (number) to forecast to"),
        "truth": (_is_str, None, "a path to a CSV file of true trajectories"),
        "true_terms": (_str_table, {}, 'a table {output = "expression"}'),
    },
}

LIBRARY_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "polynomial": (_nonneg_int, "an integer >= 0 (the degree)"),
    "fourier": (_pos_int, "an integer > 0 (frequencies)"),
    "terms": (_str_list, 'a list of expressions such as ["sin(x)", "x*y"]'),
    "variables": (_str_list, "a list of names"),
    "include_bias": (_is_bool, "true or false"),
    "interaction_only": (_is_bool, "true or false"),
}

TABLES = tuple(SCHEMA)

#: The defaults of every table, for documentation and `resolve_config`.
DEFAULTS: dict[str, dict[str, Any]] = {
    table: {k: v for k, (_, v, _w) in keys.items() if v is not REQUIRED}
    for table, keys in SCHEMA.items()
    if table != "network"
}


# ------------------------------------------------------------------------------ loading
def _where(path: Path | None) -> str:
    return str(path) if path is not None else "model file"


def _nearest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    if close:
        return f" Did you mean {close[0]!r}?"
    return f" Valid keys: {', '.join(known)}."


def _line_of(text: str | None, table: str, key: str | None = None) -> int | None:
    """The line (1-based) where ``key`` is set in ``[table]`` (or the table header), if found."""
    if text is None:
        return None
    current = ""
    header_line = None
    parent, _, child = table.partition(".")
    key_re = re.compile(rf"^\s*(\"?){re.escape(key)}\1\s*=") if key else None
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip() if "#" in raw and '"' not in raw else raw.strip()
        m = re.match(r"^\[\s*([^\[\]]+?)\s*\]$", line)
        if m:
            current = m.group(1).replace('"', "").replace(" ", "")
            if current == table:
                header_line = i
            continue
        if key_re is None:
            continue
        if current == table and key_re.match(line):
            return i
        # dotted form inside the parent table: ``network.NN1.hidden = ...``
        if (
            child
            and current == parent
            and re.match(rf"^\s*{re.escape(child)}\s*\.\s*{re.escape(key)}\s*=", line)
        ):
            return i
        if child and current == parent and re.match(rf"^\s*{re.escape(child)}\s*=\s*\{{", line):
            if re.search(rf"[{{,]\s*{re.escape(key)}\s*=", line):
                return i
        if not current and re.match(rf"^\s*{re.escape(table)}\s*\.\s*{re.escape(key)}\s*=", line):
            return i
    return header_line


def _at(text: str | None, table: str, key: str | None = None) -> str:
    line = _line_of(text, table, key)
    return f" (line {line})" if line else ""


def _fail(
    path: Path | None, text: str | None, table: str, key: str | None, msg: str
) -> ConfigError:
    label = f"[{table}]" + (f" {key}" if key else "")
    return ConfigError(f"{_where(path)}{_at(text, table, key)}: {label}: {msg}")


def _check_table(
    values: Any,
    table: str,
    schema: dict[str, tuple[Callable[[Any], bool], Any, str]],
    path: Path | None,
    text: str | None,
) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise _fail(path, text, table, None, f"must be a table; got {type(values).__name__}.")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in schema:
            raise ConfigError(
                f"{_where(path)}{_at(text, table, key)}: [{table}]: unknown key {key!r}."
                + _nearest(key, list(schema))
            )
        check, _default, wanted = schema[key]
        if not check(value):
            raise _fail(path, text, table, key, f"must be {wanted}; got {value!r}.")
        out[key] = value
    for key, (_check, default, wanted) in schema.items():
        if key in out:
            continue
        if default is REQUIRED:
            raise _fail(path, text, table, None, f"missing key {key!r} ({wanted}).")
        out[key] = copy.deepcopy(default)
    return {key: out[key] for key in schema}  # in the schema's order


def resolve_config(
    raw: Mapping[str, Any], *, path: Path | None = None, text: str | None = None
) -> dict[str, Any]:
    """Check a parsed model file and fill in every default.

    Args:
        raw: the parsed TOML (a dict of tables).
        path: the file, for messages and to resolve relative paths.
        text: the file's text, to find line numbers for messages.

    Returns:
        ``{"model", "network": {name: {...}}, "data", "fit", "discover", "report"}``, with
        relative paths made absolute (against the file's folder).

    Raises:
        ConfigError: an unknown table or key (with the nearest valid one), a missing key, a
            value of the wrong type.
    """
    for table in raw:
        if table not in TABLES:
            raise ConfigError(
                f"{_where(path)}{_at(text, table)}: unknown table [{table}]."
                + _nearest(table, list(TABLES)).replace("Valid keys", "Valid tables")
            )
    if "model" not in raw:
        raise ConfigError(
            f"{_where(path)}: missing table [model]; a model file needs at least "
            '[model] equations = { x = "..." }.'
        )
    cfg: dict[str, Any] = {}
    for table in TABLES:
        if table == "network":
            nets = raw.get("network", {})
            if not isinstance(nets, dict):
                raise _fail(path, text, "network", None, "must hold tables [network.NAME].")
            cfg["network"] = {}
            for name, net in nets.items():
                if not isinstance(net, dict):
                    raise _fail(
                        path,
                        text,
                        "network",
                        None,
                        f"{name!r} must be a table [network.{name}] with inputs, outputs, "
                        f"hidden, activation; got {net!r}.",
                    )
                cfg["network"][name] = _check_table(
                    net, f"network.{name}", SCHEMA["network"], path, text
                )
            continue
        cfg[table] = _check_table(raw.get(table, {}), table, SCHEMA[table], path, text)
    # the library table has its own keys
    lib = cfg["discover"]["library"]
    for key, value in lib.items():
        if key not in LIBRARY_KEYS:
            raise ConfigError(
                f"{_where(path)}{_at(text, 'discover', 'library')}: [discover] library: "
                f"unknown key {key!r}." + _nearest(key, list(LIBRARY_KEYS))
            )
        check, wanted = LIBRARY_KEYS[key]
        if not check(value):
            raise _fail(
                path, text, "discover", "library", f"{key} must be {wanted}; got {value!r}."
            )
    if not any(k in lib for k in ("polynomial", "fourier", "terms")):
        raise _fail(
            path,
            text,
            "discover",
            "library",
            "needs at least one of polynomial (degree), fourier (frequencies) or terms "
            "(expressions), e.g. { polynomial = 3 }.",
        )
    for k, stage in enumerate(cfg["fit"]["optimizers"]):
        ok = (
            isinstance(stage[0], str)
            and all(_is_num(x) for x in stage[1:])
            and len(stage) in (2, 3)
            and _is_int(stage[-1])
        )
        if not ok:
            raise _fail(
                path,
                text,
                "fit",
                "optimizers",
                f'stage {k + 1} must be ["name", lr, iterations] or ["lbfgs", iterations]; '
                f"got {stage!r}.",
            )
    base = path.parent if path is not None else Path.cwd()
    for table, key in (("data", "path"), ("report", "truth")):
        value = cfg[table][key]
        if value is not None:
            cfg[table][key] = str((base / os.path.expanduser(value)).resolve())
    return cfg


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read, check and resolve a model file (see `resolve_config`).

    Raises:
        ConfigError: the file is missing, unreadable, malformed TOML (with the line), or
            fails `resolve_config`.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such file.")
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder; expected a model file (.toml).")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot be read ({exc}).") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            where = f" (line {m.group(1)}, column {m.group(2)})"
            msg = msg[: m.start()].strip()
        else:
            where = ""
        raise ConfigError(f"{p}{where}: malformed TOML: {msg}.") from None
    cfg = resolve_config(raw, path=p.resolve(), text=text)
    cfg["_source"] = {"path": str(p.resolve()), "text": text}
    return cfg


# ------------------------------------------------------------------------------ writing
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def dump_config(cfg: Mapping[str, Any], header: str | None = None) -> str:
    """A resolved configuration as TOML text (absent values left out); loads back the same."""
    lines = [f"# {line}" for line in (header or "").splitlines()]
    for table in TABLES:
        if table == "network":
            for name, net in cfg.get("network", {}).items():
                lines += ["", f"[network.{_toml_key(name)}]"]
                lines += [f"{k} = {_toml_value(v)}" for k, v in net.items() if v is not None]
            continue
        values = cfg.get(table)
        if values is None:
            continue
        lines += ["", f"[{table}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines).lstrip("\n") + "\n"


def relative_paths(cfg: Mapping[str, Any], folder: str | os.PathLike) -> dict[str, Any]:
    """A copy of ``cfg`` with the data and truth paths relative to ``folder`` where inside it."""
    out = {k: copy.deepcopy(v) for k, v in cfg.items() if not k.startswith("_")}
    folder = Path(folder).resolve()
    for table, key in (("data", "path"), ("report", "truth")):
        value = out.get(table, {}).get(key)
        if value:
            try:
                out[table][key] = str(Path(value).resolve().relative_to(folder))
            except ValueError:
                pass
    return out
