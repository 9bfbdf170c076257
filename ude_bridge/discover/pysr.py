"""Symbolic regression through PySR (genetic programming in Julia), imported lazily.

`pysr_arguments` maps our keywords to ``pysr.PySRRegressor``'s and checks them without
Julia, so bad options fail at once; `pysr_fit` runs the search. Without PySR/juliacall the
call fails before any work with a message naming what to install: ``pip install
"ude-bridge[julia]"`` (juliapkg then fetches Julia on first use).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from ..codegen.parse import check_expression
from ..errors import InputError

__all__ = ["BINARY_OPERATORS", "UNARY_OPERATORS", "PySRResult", "pysr_arguments", "pysr_fit"]

#: Binary operators PySR may use whose results our code generators can print (PySR turns
#: ``max``, ``min`` and ``relu`` into ``Piecewise``, which they cannot).
BINARY_OPERATORS = ("+", "-", "*", "/", "^")
#: Unary operators PySR may use whose sympy forms our code generators can print.
UNARY_OPERATORS = (
    "neg", "square", "cube", "exp", "log", "log2", "log10", "sqrt", "abs", "sign", "inv",
    "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos", "atan", "asinh", "acosh",
    "atanh",
)  # fmt: skip


def _operators(value: Any, known: tuple[str, ...], name: str, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    ops = [str(v) for v in value]
    for op in ops:
        if op not in known:
            raise InputError(
                f"{where}: {name} {op!r} cannot be turned into torch/Julia code by ude_bridge; "
                f"use any of {', '.join(known)}."
            )
    return ops


def pysr_arguments(
    *,
    binary_operators: Sequence[str] = ("+", "-", "*"),
    unary_operators: Sequence[str] = (),
    maxsize: int = 20,
    maxdepth: int | None = None,
    populations: int = 15,
    population_size: int = 33,
    niterations: int = 40,
    timeout: float | None = None,
    parsimony: float = 0.0032,
    model_selection: str = "best",
    seed: int | None = 0,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check our PySR keywords and return the ``PySRRegressor(**kwargs)`` they mean.

    Args:
        binary_operators: e.g. ``("+", "-", "*", "/")`` (see `BINARY_OPERATORS`).
        unary_operators: e.g. ``("exp", "sin")`` (see `UNARY_OPERATORS`).
        maxsize: the largest expression complexity (node count), >= 7 in PySR.
        maxdepth: the deepest expression tree (None: no limit beyond ``maxsize``).
        populations, population_size: the island model's size.
        niterations: search iterations.
        timeout: the time budget in seconds (PySR's ``timeout_in_seconds``).
        parsimony: the complexity penalty of the search.
        model_selection: ``"best"`` (PySR's accuracy/complexity trade-off), ``"accuracy"``
            or ``"score"``.
        seed: a seed makes the search deterministic (serial, one thread); None: parallel.
        extra: any other ``PySRRegressor`` keyword, passed through unchanged.

    Raises:
        InputError: an operator the code generators cannot print, or a bad number.
    """
    where = "discover(method='pysr')"
    for name, value, low in (
        ("maxsize", maxsize, 7),
        ("populations", populations, 1),
        ("population_size", population_size, 2),
        ("niterations", niterations, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InputError(f"{where}: {name} must be an integer >= {low}; got {value!r}.")
    if maxdepth is not None and (not isinstance(maxdepth, int) or maxdepth < 1):
        raise InputError(f"{where}: maxdepth must be None or an integer >= 1; got {maxdepth!r}.")
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
        raise InputError(f"{where}: timeout must be None or seconds > 0; got {timeout!r}.")
    if model_selection not in ("best", "accuracy", "score"):
        raise InputError(
            f"{where}: model_selection must be 'best', 'accuracy' or 'score'; got "
            f"{model_selection!r}."
        )
    binary = _operators(binary_operators, BINARY_OPERATORS, "binary operator", where)
    if not binary:
        raise InputError(f"{where}: binary_operators must not be empty; use e.g. ['+', '*'].")
    kwargs: dict[str, Any] = {
        "binary_operators": binary,
        "unary_operators": _operators(unary_operators, UNARY_OPERATORS, "unary operator", where),
        "maxsize": maxsize,
        "populations": populations,
        "population_size": population_size,
        "niterations": niterations,
        "parsimony": float(parsimony),
        "model_selection": model_selection,
        "progress": False,
        "verbosity": 0,
        "temp_equation_file": True,
    }
    if maxdepth is not None:
        kwargs["maxdepth"] = maxdepth
    if timeout is not None:
        kwargs["timeout_in_seconds"] = float(timeout)
    if seed is not None:
        kwargs.update(random_state=int(seed), deterministic=True, parallelism="serial")
    kwargs.update(dict(extra or {}))
    return kwargs


@dataclass(frozen=True)
class PySRResult:
    """One output's search: the chosen expression and PySR's hall of fame.

    Attributes:
        expression: the chosen expression over our symbols.
        front: ``(complexity, loss, expression)`` for every hall-of-fame entry.
    """

    expression: sympy.Expr
    front: tuple[tuple[int, float, sympy.Expr], ...]


def _ours(expr: Any, variables: Sequence[sympy.Symbol], where: str) -> sympy.Expr:
    """A PySR sympy expression over our symbols, checked to be printable."""
    table = {str(v): v for v in variables}
    expr = sympy.sympify(expr)
    return check_expression(expr, table, where=where)


def pysr_fit(
    x: np.ndarray, y: np.ndarray, variables: Sequence[sympy.Symbol], kwargs: Mapping[str, Any]
) -> PySRResult:
    """Run ``PySRRegressor(**kwargs).fit(x, y)`` and read back its expressions.

    Args:
        x: ``(N, m)`` inputs in ``variables`` order. y: ``(N,)`` targets.
        variables: the input symbols (their names become PySR's ``variable_names``).
        kwargs: from `pysr_arguments`.

    Raises:
        BackendUnavailableError: PySR or juliacall is not installed, or Julia cannot start.
    """
    from ..backends.julia_runtime import import_pysr

    where = "discover(method='pysr')"
    pysr = import_pysr(where)
    model = pysr.PySRRegressor(**dict(kwargs))
    model.fit(np.asarray(x), np.asarray(y), variable_names=[str(v) for v in variables])
    frame = model.equations_
    front = tuple(
        (int(row["complexity"]), float(row["loss"]), _ours(row["sympy_format"], variables, where))
        for _, row in frame.iterrows()
    )
    return PySRResult(_ours(model.sympy(), variables, where), front)
