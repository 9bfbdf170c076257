"""Rosenbrock tableaus as frozen, self-checking data.

An $s$-stage Rosenbrock method for $y' = f(t, y)$ with Jacobian $J = \\partial f/\\partial y$
and time derivative $f_t$ takes a step of size $h$ from $(t, y)$ by solving $s$ *linear*
systems with one matrix, in Hairer & Wanner's transformed form (the one RODAS and
DifferentialEquations.jl use; *Solving ODEs II*, Sec. IV.7, eq. (7.25)):

$$ (I - h\\gamma J)\\, u_i = h\\gamma\\, f\\Big(t + c_i h,\\; y + \\sum_{j<i} a_{ij} u_j\\Big)
   + \\gamma \\sum_{j<i} C_{ij} u_j + \\gamma\\, d_i\\, h^2 f_t , $$

$$ y_1 = y + \\sum_i m_i u_i, \\qquad \\hat e = \\sum_i (m_i - \\hat m_i)\\, u_i . $$

(This is eq. (7.25) multiplied by $h\\gamma$, so that $h = 0$ gives $u = 0$ instead of a
division by zero.) The transformed coefficients come from the classical ones
$(\\alpha_{ij}, \\gamma_{ij}, b_i)$, with $\\Gamma = (\\gamma_{ij})$ lower triangular and
$\\gamma_{ii} = \\gamma$, as $a = \\alpha\\Gamma^{-1}$,
$C = \\mathrm{diag}(\\gamma^{-1}) - \\Gamma^{-1}$, $m = b\\,\\Gamma^{-1}$; the nodes are
$c_i = \\sum_j \\alpha_{ij}$ and $d_i = \\sum_j \\gamma_{ij}$.

Dense output (the form of RODAS and of Steinebach's Rodas5P), with $R$ rows $H_r$:

$$ y(t + \\theta h) = (1 - \\theta)\\, y + \\theta\\Big(y_1 + (1 - \\theta)\\big(H_1 u
   + \\theta (H_2 u + \\theta (H_3 u + \\dots))\\big)\\Big). $$

``RosenbrockTableau.__post_init__`` recovers $\\Gamma$, $\\alpha$, $b$ and $\\hat b$ from the
transformed data and checks the invariants ($\\sum_j \\alpha_{ij} = c_i$,
$\\sum_j \\gamma_{ij} = d_i$, $\\sum b = \\sum \\hat b = 1$); it derives FSAL rather than
being told: a method is FSAL when its last stage evaluates $f$ at $(t + h, y_1)$.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["RosenbrockTableau", "RosenbrockTensors"]

Rows = tuple[tuple[float, ...], ...]


def _lower_inverse(L: list[list[float]]) -> list[list[float]]:
    """Inverse of a lower-triangular matrix by forward substitution (float64, no numpy)."""
    s = len(L)
    inv = [[0.0] * s for _ in range(s)]
    for j in range(s):
        inv[j][j] = 1.0 / L[j][j]
        for i in range(j + 1, s):
            acc = sum(L[i][k] * inv[k][j] for k in range(j, i))
            inv[i][j] = -acc / L[i][i]
    return inv


def _matmul(A: list[list[float]], B: list[list[float]]) -> list[list[float]]:
    return [[sum(a * B[k][j] for k, a in enumerate(row)) for j in range(len(B[0]))] for row in A]


def _vecmat(v: list[float], B: list[list[float]]) -> list[float]:
    return [sum(v[k] * B[k][j] for k in range(len(v))) for j in range(len(B[0]))]


def _close(x: float, y: float, tol: float, scale: float = 1.0) -> bool:
    return abs(x - y) <= tol * max(1.0, abs(x), abs(y), scale)


@dataclass(frozen=True)
class RosenbrockTableau:
    """Coefficients of a Rosenbrock method in transformed form (see the module docstring).

    Args:
        name: the DifferentialEquations.jl name (``"Rodas5P"``).
        order: order of $y_1$ (with the exact Jacobian).
        embedded_order: order of the embedded solution $y + \\sum \\hat m_i u_i$.
        gamma: the diagonal $\\gamma$ of $\\Gamma$.
        a: strictly lower rows; ``a[i]`` has ``i`` entries (``a[0] == ()``).
        C: strictly lower rows, like ``a``.
        c: nodes $c_i$, length ``s``.
        d: time-derivative weights $d_i = \\sum_j \\gamma_{ij}$, length ``s``.
        m: weights of $y_1$; m_embedded: weights of the embedded solution.
        H: dense-output rows (each of length ``s``); empty for none.
        dense_order: order of the continuous extension.
        atol_check: relative tolerance of the invariant checks (published decimals).
    """

    name: str
    order: int
    embedded_order: int
    gamma: float
    a: Rows
    C: Rows
    c: tuple[float, ...]
    d: tuple[float, ...]
    m: tuple[float, ...]
    m_embedded: tuple[float, ...]
    H: Rows = ()
    dense_order: int = 1
    atol_check: float = 1e-12
    #: the classical coefficients, derived: Gamma (with its diagonal), alpha, b, b_embedded
    Gamma: Rows = field(init=False, repr=False)
    alpha: Rows = field(init=False, repr=False)
    b: tuple[float, ...] = field(init=False, repr=False)
    b_embedded: tuple[float, ...] = field(init=False, repr=False)
    fsal: bool = field(init=False)

    def __post_init__(self) -> None:
        s = len(self.m)
        nm = self.name
        assert len(self.a) == s and len(self.C) == s, f"{nm}: a, C and m lengths differ"
        assert len(self.c) == s and len(self.d) == s, f"{nm}: c, d and m lengths differ"
        assert len(self.m_embedded) == s, f"{nm}: m_embedded has the wrong length"
        for i in range(s):
            assert len(self.a[i]) == i and len(self.C[i]) == i, f"{nm}: row {i} needs {i} entries"
        for r, row in enumerate(self.H):
            assert len(row) == s, f"{nm}: dense row {r} needs {s} entries"
        assert self.gamma > 0, f"{nm}: gamma must be positive"
        g = float(self.gamma)
        # Gamma^{-1} = diag(1/gamma) - C, so Gamma is the inverse of that lower matrix
        Ginv = [[0.0] * s for _ in range(s)]
        for i in range(s):
            Ginv[i][i] = 1.0 / g
            for j in range(i):
                Ginv[i][j] = -float(self.C[i][j])
        Gamma = _lower_inverse(Ginv)
        A = [[float(self.a[i][j]) if j < i else 0.0 for j in range(s)] for i in range(s)]
        alpha = _matmul(A, Gamma)
        b = _vecmat([float(x) for x in self.m], Gamma)
        bh = _vecmat([float(x) for x in self.m_embedded], Gamma)
        tol = self.atol_check
        for i in range(s):
            # the sums cancel terms as large as |a_ij gamma_jk|: scale the tolerance by them
            scale = sum(abs(A[i][k] * Gamma[k][j]) for k in range(s) for j in range(s))
            assert _close(sum(alpha[i]), float(self.c[i]), tol, scale), (
                f"{nm}: row {i} of alpha sums to {sum(alpha[i])}, c[{i}]={self.c[i]}"
            )
            gscale = sum(abs(x) for x in Gamma[i])
            assert _close(sum(Gamma[i]), float(self.d[i]), tol, gscale), (
                f"{nm}: row {i} of Gamma sums to {sum(Gamma[i])}, d[{i}]={self.d[i]}"
            )
        bscale = sum(abs(float(x)) for x in self.m) * max(abs(x) for r in Gamma for x in r)
        assert _close(sum(b), 1.0, tol, bscale), f"{nm}: sum(b) = {sum(b)} != 1"
        assert _close(sum(bh), 1.0, tol, bscale), f"{nm}: sum(b_embedded) = {sum(bh)} != 1"
        # FSAL: the last stage's argument is y1 itself, at t + h
        last = [float(x) for x in self.a[-1]] + [0.0]
        fsal = (
            float(self.c[-1]) == 1.0
            and all(_close(x, float(y), tol) for x, y in zip(last, self.m, strict=True))
            and float(self.m[-1]) == 0.0
        )
        object.__setattr__(self, "Gamma", tuple(tuple(r) for r in Gamma))
        object.__setattr__(self, "alpha", tuple(tuple(r) for r in alpha))
        object.__setattr__(self, "b", tuple(b))
        object.__setattr__(self, "b_embedded", tuple(bh))
        object.__setattr__(self, "fsal", bool(fsal))

    @property
    def stages(self) -> int:
        """Number of stages $s$ (one linear solve each)."""
        return len(self.m)

    @property
    def beta(self) -> Rows:
        """$\\beta = \\alpha + \\Gamma$ (lower triangular, diagonal $\\gamma$): the weights
        of the order conditions on nodes with one child."""
        s = self.stages
        return tuple(tuple(self.alpha[i][j] + self.Gamma[i][j] for j in range(s)) for i in range(s))

    def dense_matrix(self) -> list[list[float]]:
        """``D[i][q-1]``: coefficient of $\\theta^q$ in the weight $b_i(\\theta)$ of $u_i$.

        Expanding the dense formula, $y(\\theta) = y + \\sum_i b_i(\\theta) u_i$ with
        $b_i(\\theta) = \\theta m_i + \\sum_r (\\theta^{r+1} - \\theta^{r+2}) H_{r,i}$.
        """
        s, R = self.stages, len(self.H)
        Q = R + 1 if R else 1
        D = [[0.0] * Q for _ in range(s)]
        for i in range(s):
            D[i][0] = float(self.m[i])
            for r in range(R):
                h = float(self.H[r][i])
                D[i][r] += h  # theta^{r+1}
                if r + 1 < Q:
                    D[i][r + 1] -= h  # theta^{r+2}
        return D

    def tensors(self, dtype: torch.dtype, device: torch.device | str) -> RosenbrockTensors:
        """Cast once per method object: stage rows as tensors, scalars as Python floats."""
        s = self.stages
        g = float(self.gamma)
        cast = {"dtype": dtype, "device": device}
        A = torch.zeros(s, s, dtype=torch.float64)
        GC = torch.zeros(s, s, dtype=torch.float64)
        for i in range(s):
            for j in range(i):
                A[i, j] = float(self.a[i][j])
                GC[i, j] = g * float(self.C[i][j])
        m = torch.tensor([float(x) for x in self.m], dtype=torch.float64)
        e = m - torch.tensor([float(x) for x in self.m_embedded], dtype=torch.float64)
        D = torch.tensor(self.dense_matrix(), dtype=torch.float64)
        return RosenbrockTensors(
            A=A.to(**cast),
            GC=GC.to(**cast),
            m=m.to(**cast),
            e=e.to(**cast),
            D=D.to(**cast),
            c=[float(x) for x in self.c],
            gd=[g * float(x) for x in self.d],
            gamma=g,
        )


@dataclass(frozen=True)
class RosenbrockTensors:
    """A Rosenbrock tableau cast to one dtype/device (see `RosenbrockTableau.tensors`).

    ``A`` holds $a$, ``GC`` holds $\\gamma C$ (both ``(s, s)``, strictly lower), ``m`` and
    ``e`` $= m - \\hat m$ are ``(s,)``, ``D`` is the ``(s, Q)`` dense matrix; ``c``,
    ``gd`` $= \\gamma d$ and ``gamma`` are floats.
    """

    A: torch.Tensor
    GC: torch.Tensor
    m: torch.Tensor
    e: torch.Tensor
    D: torch.Tensor
    c: list[float]
    gd: list[float]
    gamma: float
