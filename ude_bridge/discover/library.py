"""Term libraries for sparse regression, written as sympy (`ub.library`).

A library is an ordered tuple of candidate terms $\\theta_j(v)$ over named variables
$v = (v_1, \\dots, v_m)$ (network inputs: states, time or forcing inputs). Sparse regression
looks for an output $U(v) \\approx \\sum_j \\xi_j \\theta_j(v)$ with few nonzero $\\xi_j$.
Each term *is* its name (a sympy expression), and the library evaluates all of them at once
through the torch code generator (`ude_bridge.codegen.to_torch`), so the numbers and the
names cannot drift apart.

Libraries combine: ``a + b`` concatenates the terms (duplicates dropped) and ``a * b`` takes
every product of a term of ``a`` with a term of ``b``.

Example:
    >>> import ude_bridge as ub
    >>> lib = ub.library.polynomial(["x", "y"], degree=2)
    >>> lib.names
    ('1', 'x', 'y', 'x**2', 'x*y', 'y**2')
    >>> (ub.library.polynomial(["x"], 1, include_bias=False) * ub.library.fourier(["y"], 1)).names
    ('x*sin(y)', 'x*cos(y)')
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import sympy

from ..codegen.parse import CONSTANTS, FUNCTIONS, check_expression, check_name, parse_expression
from ..codegen.system import SymbolicSystem
from ..errors import InputError

__all__ = ["Library", "custom", "fourier", "polynomial"]


def _variables(variables: Any, *, where: str) -> tuple[sympy.Symbol, ...]:
    if isinstance(variables, (str, sympy.Symbol)):
        variables = [variables]
    try:
        items = list(variables)
    except TypeError:
        raise InputError(
            f"{where}: variables must be a list of names such as ['x', 'y']; got "
            f"{type(variables).__name__}."
        ) from None
    if not items:
        raise InputError(f"{where}: variables must not be empty. Name them, e.g. ['x', 'y'].")
    names = [check_name(str(v), where=where, what="variable") for v in items]
    dup = [n for n in names if names.count(n) > 1]
    if dup:
        raise InputError(f"{where}: variable {dup[0]!r} is given twice; list each name once.")
    return tuple(sympy.Symbol(n) for n in names)


def _count(value: Any, *, name: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{where}: {name} must be an integer >= {minimum}; got {name}={value!r}.")
    return int(value)


class Library:
    """An ordered set of candidate terms, each a sympy expression over ``variables``.

    Args:
        variables: the variable symbols (or names), in the column order `evaluate` expects.
        terms: the terms; symbol-free terms (``1``) are constants.

    Raises:
        InputError: no terms, a term using a symbol that is not a variable, duplicate terms
            (after simplification), or a function the code generators cannot print.

    Attributes:
        variables: ``(m,)`` sympy symbols.
        terms: ``(k,)`` sympy expressions.
    """

    def __init__(self, variables: Sequence[Any], terms: Iterable[Any]) -> None:
        where = "library"
        self.variables = _variables(variables, where=where)
        table = {str(v): v for v in self.variables}
        parsed = []
        for term in terms:
            expr = parse_expression(term, table, where=f"{where}: term {str(term)!r}")
            if expr == 0:
                raise InputError(f"{where}: the term {term!r} is zero; drop it.")
            parsed.append(sympy.expand(expr) if expr.is_polynomial() else expr)
        if not parsed:
            raise InputError(
                f"{where}: the library has no terms. Give at least one, e.g. "
                "ub.library.polynomial(['x', 'y'], degree=2)."
            )
        dup = [e for e in parsed if parsed.count(e) > 1]
        if dup:
            raise InputError(
                f"{where}: the term {dup[0]} appears twice; each term must be listed once."
            )
        self.terms: tuple[sympy.Expr, ...] = tuple(parsed)
        self._fn: Any = None

    # ----------------------------------------------------------------------- container
    @property
    def names(self) -> tuple[str, ...]:
        """The terms as strings, e.g. ``('1', 'x', 'x*y')``."""
        return tuple(str(e) for e in self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    def __iter__(self):
        return iter(self.terms)

    def __getitem__(self, index: int) -> sympy.Expr:
        return self.terms[index]

    def __repr__(self) -> str:
        shown = ", ".join(self.names[:8]) + (", ..." if len(self) > 8 else "")
        return f"Library({len(self)} terms over {', '.join(map(str, self.variables))}: {shown})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Library) and (self.variables, self.terms) == (
            other.variables,
            other.terms,
        )

    def __hash__(self) -> int:
        return hash((self.variables, self.terms))

    def _merged_variables(self, other: Library) -> tuple[sympy.Symbol, ...]:
        return self.variables + tuple(v for v in other.variables if v not in self.variables)

    def __add__(self, other: Library) -> Library:
        """The terms of ``self`` then those of ``other`` not already present."""
        if not isinstance(other, Library):
            return NotImplemented
        terms = list(self.terms) + [e for e in other.terms if e not in self.terms]
        return Library(self._merged_variables(other), terms)

    def __mul__(self, other: Library) -> Library:
        """Every product $\\theta_i \\phi_j$ (first occurrence kept, in row-major order)."""
        if not isinstance(other, Library):
            return NotImplemented
        terms: list[sympy.Expr] = []
        for a, b in itertools.product(self.terms, other.terms):
            e = sympy.expand(a * b) if (a * b).is_polynomial() else a * b
            if e not in terms:
                terms.append(e)
        return Library(self._merged_variables(other), terms)

    # ----------------------------------------------------------------------- evaluation
    def _function(self) -> Any:
        if self._fn is None:
            from ..codegen.to_torch import torch_rhs

            # The code generator builds f(t, u) -> (..., n) with one equation per state, so
            # pad the shorter of variables / terms; the padding never reaches the caller.
            m, k = len(self.variables), len(self.terms)
            pads = tuple(sympy.Dummy(f"pad{i}") for i in range(max(0, k - m)))
            system = SymbolicSystem(
                states=self.variables + pads,
                time=sympy.Dummy("time"),
                params=(),
                param_values=(),
                equations=self.terms + (sympy.Integer(0),) * max(0, m - k),
            )
            self._fn = (torch_rhs(system), len(pads))
        return self._fn

    def evaluate(self, values: Any) -> Any:
        """Every term at every point: $\\Theta_{ij} = \\theta_j(v^{(i)})$.

        Args:
            values: ``(N, m)`` array or tensor with columns in `variables` order, or a
                mapping ``{name: (N,) array}`` holding every variable.

        Returns:
            ``(N, k)``: a torch tensor for tensor input, else a float64 numpy array.

        Raises:
            InputError: a wrong shape or a missing variable.
        """
        import torch

        where = "Library.evaluate"
        if isinstance(values, Mapping):
            missing = [str(v) for v in self.variables if str(v) not in values]
            if missing:
                raise InputError(
                    f"{where}: values must hold every variable "
                    f"({', '.join(map(str, self.variables))}); {missing[0]!r} is missing."
                )
            cols = [values[str(v)] for v in self.variables]
            if all(isinstance(c, torch.Tensor) for c in cols):
                values = torch.stack([c.reshape(-1) for c in cols], dim=-1)
            else:
                values = np.stack([np.asarray(c, dtype=np.float64).reshape(-1) for c in cols], -1)
        as_numpy = not isinstance(values, torch.Tensor)
        x = torch.as_tensor(np.asarray(values, dtype=np.float64)) if as_numpy else values
        if x.dim() != 2 or x.shape[1] != len(self.variables):
            raise InputError(
                f"{where}: values must have shape (N, {len(self.variables)}) with columns "
                f"{', '.join(map(str, self.variables))}; got shape {tuple(x.shape)}."
            )
        fn, n_pad = self._function()
        if n_pad:
            x = torch.cat([x, x.new_zeros(x.shape[0], n_pad)], dim=-1)
        out = fn(x.new_zeros(()), x, ())[..., : len(self.terms)]
        return out.detach().cpu().numpy() if as_numpy else out

    def to_latex(self) -> str:
        """The terms as a LaTeX list, ``[1, x, x y, ...]``."""
        return "\\left[" + ",\\ ".join(sympy.latex(e) for e in self.terms) + "\\right]"


def polynomial(
    variables: Sequence[str],
    degree: int = 3,
    include_bias: bool = True,
    *,
    interaction_only: bool = False,
) -> Library:
    """Every monomial $\\prod_i v_i^{a_i}$ with $1 \\le \\sum_i a_i \\le$ ``degree``.

    Ordered by total degree, then lexicographically (``1, x, y, x**2, x*y, y**2, ...``).

    Args:
        variables: names, e.g. ``["x", "y"]``.
        degree: the largest total degree, >= 0.
        include_bias: add the constant term ``1``.
        interaction_only: only products of distinct variables (no powers above 1).

    Raises:
        InputError: bad names, a negative degree, or no term at all (degree 0 without bias).
    """
    where = "library.polynomial"
    syms = _variables(variables, where=where)
    degree = _count(degree, name="degree", where=where, minimum=0)
    terms: list[sympy.Expr] = [sympy.Integer(1)] if include_bias else []
    for d in range(1, degree + 1):
        combos = (
            itertools.combinations(syms, d)
            if interaction_only
            else itertools.combinations_with_replacement(syms, d)
        )
        terms += [sympy.Mul(*c) for c in combos]
    if not terms:
        raise InputError(
            f"{where}: degree=0 with include_bias=False leaves no term. Use degree >= 1."
        )
    return Library(syms, terms)


def fourier(variables: Sequence[str], n: int = 1) -> Library:
    """$\\sin(k v)$ and $\\cos(k v)$ for every variable $v$ and $k = 1, \\dots, n$.

    Ordered by variable, then frequency, sine before cosine.

    Raises:
        InputError: bad names or ``n < 1``.
    """
    where = "library.fourier"
    syms = _variables(variables, where=where)
    n = _count(n, name="n", where=where, minimum=1)
    terms = [f(k * v) for v in syms for k in range(1, n + 1) for f in (sympy.sin, sympy.cos)]
    return Library(syms, terms)


def _names_in(text: str, where: str) -> list[str]:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise InputError(
            f"{where}: {text!r} does not parse. Write it in Python/sympy syntax, e.g. 'sin(x)'."
        ) from None
    found = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)]
    return [n for n in found if n not in FUNCTIONS and n not in CONSTANTS]


def custom(terms: Sequence[Any], variables: Sequence[str] | None = None) -> Library:
    """A library of the given terms, e.g. ``custom(["sin(x)", "x*y", "exp(-y)"])``.

    Args:
        terms: strings (parsed safely, see `ude_bridge.codegen.parse`) or sympy expressions.
        variables: the variable names in column order; default: the names the terms use,
            in order of first appearance.

    Raises:
        InputError: no terms, a term that does not parse, or (with ``variables``) a term
            using another name.
    """
    where = "library.custom"
    if isinstance(terms, (str, sympy.Basic)):
        terms = [terms]
    terms = list(terms)
    if not terms:
        raise InputError(
            f"{where}: the library has no terms. Give at least one, e.g. ['sin(x)', 'x*y']."
        )
    if variables is None:
        found: list[str] = []
        for term in terms:
            if isinstance(term, str):
                names = _names_in(term, where)
            elif isinstance(term, sympy.Basic):
                names = sorted(str(s) for s in term.free_symbols)
            else:
                names = []
            found += [n for n in names if n not in found]
        if not found:
            raise InputError(
                f"{where}: the terms use no variable; give variables=[...] or terms such as "
                "'sin(x)'."
            )
        variables = found
    syms = _variables(variables, where=where)
    table = {str(v): v for v in syms}
    checked = [
        check_expression(sympy.sympify(t), table, where=f"{where}: term {str(t)!r}")
        if isinstance(t, sympy.Basic)
        else t
        for t in terms
    ]
    return Library(syms, checked)
