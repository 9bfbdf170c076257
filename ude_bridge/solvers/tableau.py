"""Butcher tableaus as frozen, self-checking data.

An explicit Runge-Kutta method with $s$ stages takes a step of size $h$ from $(t, y)$:

$$ k_i = f\\Big(t + c_i h,\\; y + h \\sum_{j<i} a_{ij} k_j\\Big), \\qquad
   y_1 = y + h \\sum_i b_i k_i, \\qquad
   \\hat e = h \\sum_i (b_i - \\hat b_i) k_i , $$

where $\\hat b$ are the weights of the embedded lower-order solution, so $\\hat e$ estimates
the local error. Dense output (a continuous extension) evaluates inside the step

$$ y(t + \\theta h) = y + h \\sum_i b_i(\\theta)\\, k_i, \\qquad
   b_i(\\theta) = \\sum_{q=1}^{Q} d_{iq}\\, \\theta^q , $$

where the sum may include *extra stages* $k_{s+1}, \\dots$ evaluated only when the
interpolant is needed (Vern7's interpolant, or the end-point derivative $f(t+h, y_1)$ of a
Hermite cubic for a method that is not FSAL).

``ButcherTableau.__post_init__`` checks the invariants (rows of ``a`` sum to ``c``,
$\\sum b = 1$, $\\sum \\hat b = 1$, dense weights at $\\theta = 1$ equal $b$) and derives
FSAL rather than being told: a method is FSAL when $c_s = 1$ and the last row of ``a``
equals ``b``, so its last stage is $f(t+h, y_1)$ and becomes the next step's first stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import torch

__all__ = ["ButcherTableau", "Coefficient", "hermite_dense"]

Coefficient = Fraction | int | float
Rows = tuple[tuple[Coefficient, ...], ...]


def _f(x: Coefficient) -> float:
    return float(x)


def _close(x: Coefficient, y: Coefficient, tol: float = 1e-13) -> bool:
    if isinstance(x, (Fraction, int)) and isinstance(y, (Fraction, int)):
        return Fraction(x) == Fraction(y)
    return abs(float(x) - float(y)) <= tol * max(1.0, abs(float(x)), abs(float(y)))


def _sum(values) -> Coefficient:
    values = list(values)
    if all(isinstance(v, (Fraction, int)) for v in values):
        return sum((Fraction(v) for v in values), Fraction(0))
    return sum(float(v) for v in values)


@dataclass(frozen=True)
class ButcherTableau:
    """Coefficients of an explicit Runge-Kutta method (float64 on use, exact when published so).

    Args:
        name: the DifferentialEquations.jl name (``"Tsit5"``).
        order: order of ``b``.
        a: strictly lower-triangular rows; ``a[i]`` has ``i`` entries (``a[0] == ()``).
        b: weights of the propagated solution, length ``s``.
        c: nodes, length ``s``.
        b_embedded: weights of the embedded solution (None for fixed-step methods).
        embedded_order: order of ``b_embedded``.
        dense: ``dense[i][q-1]`` is the coefficient of $\\theta^q$ in $b_i(\\theta)$, for every
            main and extra stage. None means "use a Hermite cubic" (see `hermite_dense`).
        dense_order: order of the continuous extension.
        extra_a, extra_c: rows and nodes of extra stages used only by ``dense``; extra row
            ``j`` has ``s + j`` entries.
        atol_check: tolerance for the invariant checks when coefficients are decimals.
    """

    name: str
    order: int
    a: Rows
    b: tuple[Coefficient, ...]
    c: tuple[Coefficient, ...]
    b_embedded: tuple[Coefficient, ...] | None = None
    embedded_order: int | None = None
    dense: Rows | None = None
    dense_order: int | None = None
    extra_a: Rows = ()
    extra_c: tuple[Coefficient, ...] = ()
    atol_check: float = 1e-13
    fsal: bool = field(init=False)

    def __post_init__(self) -> None:
        s = len(self.b)
        assert len(self.c) == s and len(self.a) == s, f"{self.name}: a, b, c lengths differ"
        rows = tuple(self.a) + tuple(self.extra_a)
        nodes = tuple(self.c) + tuple(self.extra_c)
        for i, row in enumerate(rows):
            assert len(row) == i, f"{self.name}: row {i} of a must have {i} entries"
            if i:
                assert _close(_sum(row), nodes[i], self.atol_check), (
                    f"{self.name}: row {i} of a sums to {float(_sum(row))}, c[{i}]={nodes[i]}"
                )
        assert _close(_sum(self.b), 1, self.atol_check), f"{self.name}: sum(b) != 1"
        if self.b_embedded is not None:
            assert len(self.b_embedded) == s, f"{self.name}: b_embedded has wrong length"
            assert _close(_sum(self.b_embedded), 1, self.atol_check), (
                f"{self.name}: sum(b_embedded) != 1"
            )
        if self.dense is not None:
            assert len(self.dense) == len(rows), f"{self.name}: dense needs one row per stage"
            for i, row in enumerate(self.dense):
                want = self.b[i] if i < s else 0
                assert _close(_sum(row), want, 1e3 * self.atol_check), (
                    f"{self.name}: dense weight {i} at theta=1 is {float(_sum(row))}, want {want}"
                )
        fsal = (
            _close(self.c[-1], 1)
            and all(_close(x, y) for x, y in zip(self.a[-1], self.b[:-1], strict=True))
            and _close(self.b[-1], 0)
        )
        object.__setattr__(self, "fsal", bool(fsal))

    @property
    def stages(self) -> int:
        """Number of main stages $s$."""
        return len(self.b)

    @property
    def adaptive(self) -> bool:
        """Whether the method has an embedded error estimate."""
        return self.b_embedded is not None

    def with_hermite(self) -> ButcherTableau:
        """This tableau with a Hermite cubic as dense output (see `hermite_dense`)."""
        dense, extra_a, extra_c = hermite_dense(self)
        return ButcherTableau(
            name=self.name,
            order=self.order,
            a=self.a,
            b=self.b,
            c=self.c,
            b_embedded=self.b_embedded,
            embedded_order=self.embedded_order,
            dense=dense,
            dense_order=min(3, self.order),
            extra_a=extra_a,
            extra_c=extra_c,
            atol_check=self.atol_check,
        )

    def tensors(self, dtype: torch.dtype, device: torch.device | str) -> TableauTensors:
        """Cast once per solve: ``A`` (S x S, all stages), ``b``, ``e`` = b - b_embedded, ``D``."""
        rows = tuple(self.a) + tuple(self.extra_a)
        S = len(rows)
        A = torch.zeros(S, S, dtype=torch.float64)
        for i, row in enumerate(rows):
            for j, x in enumerate(row):
                A[i, j] = _f(x)
        b = torch.tensor([_f(x) for x in self.b], dtype=torch.float64)
        e = None
        if self.b_embedded is not None:
            e = torch.tensor(
                [_f(x) - _f(y) for x, y in zip(self.b, self.b_embedded, strict=True)],
                dtype=torch.float64,
            )
        D = None
        if self.dense is not None:
            Q = max(len(r) for r in self.dense)
            D = torch.zeros(S, Q, dtype=torch.float64)
            for i, row in enumerate(self.dense):
                for q, x in enumerate(row):
                    D[i, q] = _f(x)
        cast = {"dtype": dtype, "device": device}
        return TableauTensors(
            A=A.to(**cast),
            b=b.to(**cast),
            e=None if e is None else e.to(**cast),
            D=None if D is None else D.to(**cast),
            c=[_f(x) for x in tuple(self.c) + tuple(self.extra_c)],
            a_rows=[[_f(x) for x in row] for row in rows],
        )


@dataclass(frozen=True)
class TableauTensors:
    """A tableau cast to one dtype/device (see `ButcherTableau.tensors`)."""

    A: torch.Tensor
    b: torch.Tensor
    e: torch.Tensor | None
    D: torch.Tensor | None
    c: list[float]
    a_rows: list[list[float]]


def hermite_dense(tab: ButcherTableau) -> tuple[Rows, Rows, tuple[Coefficient, ...]]:
    """Dense coefficients of the cubic Hermite interpolant through $(y_0, f_0)$, $(y_1, f_1)$.

    With $y_1 = y_0 + h\\sum b_i k_i$, $f_0 = k_1$ and $f_1 = f(t+h, y_1)$ the cubic is

    $$ y(\\theta) = y_0 + h\\Big[(3\\theta^2 - 2\\theta^3)\\sum_i b_i k_i
       + (\\theta - 2\\theta^2 + \\theta^3) f_0 + (\\theta^3 - \\theta^2) f_1\\Big]. $$

    For an FSAL method $f_1$ is the last stage; otherwise it becomes one extra stage with
    row ``b`` and node 1. Third order accurate (the interpolant error is $O(h^4)$).
    """
    s = tab.stages
    dense: list[list[Coefficient]] = []
    for i in range(s):
        bi = Fraction(tab.b[i]) if isinstance(tab.b[i], (Fraction, int)) else float(tab.b[i])
        row = [0 * bi, 3 * bi, -2 * bi]
        if i == 0:
            row = [row[0] + 1, row[1] - 2, row[2] + 1]
        dense.append(row)
    if tab.fsal:
        dense[s - 1] = [dense[s - 1][0], dense[s - 1][1] - 1, dense[s - 1][2] + 1]
        return tuple(tuple(r) for r in dense), (), ()
    dense.append([0, -1, 1])
    return tuple(tuple(r) for r in dense), (tuple(tab.b),), (1,)
