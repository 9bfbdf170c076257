"""`SymbolicSystem` -> straight-line numpy functions of one state: $f$, $\\partial f/\\partial u$
and $\\partial f/\\partial t$, for the stiff methods' lean step on small systems.

A stiff solve of a small system (Robertson's kinetics: 3 states) spends most of its time in
the right-hand side's per-operation dispatch, ~3 us per torch operation on a 3-vector,
about 10 operations per evaluation, 8 evaluations per Rosenbrock step. The same equations
on numpy scalars cost ~0.1 us per operation. So for an equation model (no networks, no
forcing inputs: the known physics only), the generator also writes

- ``f(t, u, p) -> list`` of the $n$ values $g_i(t, u, \\theta)$,
- ``jac(t, u, p) -> list`` of $n$ rows, $\\partial g_i/\\partial u_j$ by sympy,
- ``ft(t, u, p) -> list``, $\\partial g_i/\\partial t$ by sympy (None when no equation
  uses $t$),

where ``u`` is a 1-D numpy array (unpacked into numpy scalars of its dtype), ``t`` a
number and ``p`` the physical parameter *values* as numpy scalars (see `NumpyField.bind`:
softplus already applied to positive ones). Arithmetic on numpy scalars follows IEEE as
torch does: an overflow or a log of a negative number gives inf or NaN (and a rejected
step), never an exception, and float32 states keep float32 arithmetic (numpy >= 2).

The text is written here from sympy trees (after ``sympy.cse``) by the table-driven printer
of `ude_bridge.codegen.to_torch` with numpy's names; no user text is ever executed.

Example:
    >>> field = numpy_field(system)            # doctest: +SKIP
    >>> pv = field.bind(model.param_tensors(), np.float64)  # doctest: +SKIP
    >>> field.f(0.0, np.array([1.0, 0.0, 0.0]), pv)          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import linecache
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from ..errors import InputError
from .system import SymbolicSystem
from .to_torch import _fold_numbers, _ident, _Printer

__all__ = ["NumpyField", "numpy_field", "numpy_source"]

_NP_UNARY: dict[type, str] = {
    sympy.exp: "_np.exp",
    sympy.log: "_np.log",
    sympy.sin: "_np.sin",
    sympy.cos: "_np.cos",
    sympy.tan: "_np.tan",
    sympy.asin: "_np.arcsin",
    sympy.acos: "_np.arccos",
    sympy.atan: "_np.arctan",
    sympy.sinh: "_np.sinh",
    sympy.cosh: "_np.cosh",
    sympy.tanh: "_np.tanh",
    sympy.asinh: "_np.arcsinh",
    sympy.acosh: "_np.arccosh",
    sympy.atanh: "_np.arctanh",
    sympy.Abs: "_np.abs",
    sympy.sign: "_np.sign",
}


class _NumpyPrinter(_Printer):
    """`_Printer` with numpy's names (every operand is a numpy scalar or a float)."""

    UNARY = _NP_UNARY
    POW = {2.0: "_np.square", 0.5: "_np.sqrt", -1.0: "_np.reciprocal"}
    POWER = "_np.power({}, {})"
    NAME = "numpy"

    def _minmax(self, e: sympy.Expr) -> str:
        fn = "_np.maximum" if e.func is sympy.Max else "_np.minimum"
        code = self(e.args[0])
        for other in e.args[1:]:
            code = f"{fn}({code}, {self(other)})"
        return code

    def _atan2(self, y: sympy.Expr, x: sympy.Expr) -> str:
        return f"_np.arctan2({self(y)}, {self(x)})"

    def __call__(self, e: sympy.Expr) -> str:
        # the derivative of max and min: H(x) with H(0) = 1/2 unless sympy says otherwise
        # (torch's autograd splits a tie in halves too)
        if e.func is sympy.Heaviside:
            h0 = float(e.args[1]) if len(e.args) > 1 else 0.5
            return f"_np.heaviside({self(e.args[0])}, {h0!r})"
        return super().__call__(e)


@dataclass(frozen=True)
class NumpyField:
    """The generated functions of one system (see the module docstring) and what `bind`
    needs to turn the model's parameter tensors into their values."""

    f: Callable[[Any, np.ndarray, tuple], list]
    jac: Callable[[Any, np.ndarray, tuple], list]
    ft: Callable[[Any, np.ndarray, tuple], list] | None
    positive: tuple[bool, ...]
    source: str

    def bind(self, p: Any, dtype: Any) -> tuple | None:
        """The parameter values for ``p``, the tuple of 0-dim tensors the torch right-hand
        side takes (raw values for positive parameters: softplus is applied here, by torch,
        as the torch code does), as numpy scalars of ``dtype``; None when ``p`` is not
        such a tuple (the caller then keeps the torch function). The values are copies:
        only a solve that records no graph may use them."""
        import torch

        n = len(self.positive)
        if n == 0 and (p is None or (isinstance(p, (tuple, list)) and not p)):
            return ()
        if not isinstance(p, (tuple, list)) or len(p) != n:
            return None
        cast = np.dtype(dtype).type
        values = []
        for v, pos in zip(p, self.positive, strict=True):
            if not isinstance(v, torch.Tensor) or v.numel() != 1:
                return None
            if pos:
                with torch.no_grad():
                    v = torch.nn.functional.softplus(v)
            values.append(cast(v.item()))
        return tuple(values)


def _function(
    name: str, exprs: Sequence[sympy.Expr], system: SymbolicSystem, shape: tuple[int, ...]
) -> list[str]:
    """Source lines of ``def name(t, u, p)`` returning ``exprs`` as a list (of rows when
    ``shape`` has two axes)."""
    names: dict[sympy.Symbol, str] = {system.time: "t"}
    names.update({s: _ident("s", i, s) for i, s in enumerate(system.states)})
    names.update({s: _ident("p", i, s) for i, s in enumerate(system.params)})
    exprs = [_fold_numbers(e) for e in exprs]
    reps, reduced = sympy.cse(exprs, symbols=sympy.numbered_symbols("_e", cls=sympy.Dummy))
    for k, (sym, _) in enumerate(reps):
        names[sym] = f"_e{k}"
    pr = _NumpyPrinter(names)
    used = set().union(*(e.free_symbols for e in reduced), *(e.free_symbols for _, e in reps))
    body = [f"def {name}(t, u, p):"]
    if system.params:
        unpack = [names[s] if s in used else "_" for s in system.params]
        body.append(f"    {', '.join(unpack)}, = p")
    if used & set(system.states):
        body.append(f"    {', '.join(names[s] if s in used else '_' for s in system.states)}, = u")
    if system.time in used:
        body.append("    t = u.dtype.type(t)  # numpy scalar arithmetic: IEEE, no exceptions")
    body += [f"    {names[sym]} = {pr(expr)}" for sym, expr in reps]
    values = [pr(e) for e in reduced]
    if len(shape) == 2:
        rows = [values[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]
        body.append(f"    return [{', '.join('[' + ', '.join(r) + ']' for r in rows)}]")
    else:
        body.append(f"    return [{', '.join(values)}]")
    return body


def numpy_source(system: SymbolicSystem) -> str | None:
    """The source defining ``f``, ``jac`` and ``ft`` (``ft = None`` for an autonomous
    system), or None for a system with networks or forcing inputs.

    Raises:
        InputError: an expression with no numpy translation.
    """
    if system.networks or system.inputs or system.output_symbols:
        return None
    states, eqs = list(system.states), list(system.equations)
    n = len(states)
    # differentiate over the reals (d|x|/dx = sign(x), not an expression in re and im);
    # d sign(x)/dx is 0 almost everywhere, as autograd has it, not a DiracDelta
    real = {x: sympy.Dummy(x.name, real=True) for e in eqs for x in e.free_symbols}
    back = {r: x for x, r in real.items()}

    def diff(e: sympy.Expr, wrt: sympy.Symbol) -> sympy.Expr:
        d = sympy.diff(e.xreplace(real), real.get(wrt, wrt)).xreplace(back)
        return d.replace(sympy.DiracDelta, lambda *_: sympy.S.Zero)

    lines = _function("f", eqs, system, (n,)) + [""]
    lines += _function("jac", [diff(e, s) for e in eqs for s in states], system, (n, n))
    lines.append("")
    if any(system.time in e.free_symbols for e in eqs):
        lines += _function("ft", [diff(e, system.time) for e in eqs], system, (n,))
    else:
        lines.append("ft = None")
    return "\n".join(lines) + "\n"


def numpy_field(system: SymbolicSystem) -> NumpyField | None:
    """Compile `numpy_source`: the `NumpyField` of ``system``, or None where there is none
    (networks, inputs, or a function numpy cannot print)."""
    try:
        source = numpy_source(system)
    except InputError:
        return None
    if source is None:
        return None
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<ude_bridge generated numpy field {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"_np": np}
    exec(compile(source, filename, "exec"), namespace)  # our own generated text only
    positive = tuple(str(s) in system.positive for s in system.params)
    return NumpyField(namespace["f"], namespace["jac"], namespace["ft"], positive, source)
