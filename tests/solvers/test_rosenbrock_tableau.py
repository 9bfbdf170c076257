"""Data tests for the Rosenbrock tableaus (``Rosenbrock23``, ``Rodas4``, ``Rodas5P``).

The data are stored in transformed form ($a$, $C$, $m$, $\\hat m$, $H$); `RosenbrockTableau`
recovers the classical $\\alpha$, $\\Gamma$ (diagonal $\\gamma$), $b$ and $\\hat b$. With
$\\beta = \\alpha + \\Gamma$ (diagonal included), the order conditions of a Rosenbrock method
for the exact Jacobian are those of Runge-Kutta methods with one change in the elementary
weights (Hairer & Wanner, *Solving ODEs II*, Sec. IV.7, Table 7.1 written with the full
$\\beta$): a node with exactly one child is weighted by $\\beta$, a node with several children
by $\\alpha$,

$$ \\Phi_j(\\bullet) = 1, \\quad
   \\Phi_j([u]) = \\sum_k \\beta_{jk} \\Phi_k(u), \\quad
   \\Phi_j([u_1, \\dots, u_m]) = \\prod_i \\sum_k \\alpha_{jk} \\Phi_k(u_i) \\;(m \\ge 2), $$

and $\\sum_j b_j \\Phi_j(t) = 1/\\gamma(t)$ (e.g. $\\sum b_j \\beta'_j = 1/2 - \\gamma$ with
$\\beta'_j$ the off-diagonal row sum, Table 7.1's first condition). The continuous extension
satisfies $\\sum_j b_j(\\theta) \\Phi_j(t) = \\theta^{\\rho(t)}/\\gamma(t)$ up to its order. Checks
are in float64 with a tolerance relative to the sum of |terms|: the coefficients carry 16
published digits and the largest terms reach ~300 (Rodas5P's $C$), so sums keep ~1e-13.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.solvers.test_tableau import density, trees
from ude_bridge.solvers.methods.rosenbrock_tableaus import STIFF_TABLEAUS
from ude_bridge.solvers.registry import STIFF
from ude_bridge.solvers.rosenbrock_tableau import RosenbrockTableau

TABS = [pytest.param(t, id=name) for name, t in STIFF_TABLEAUS.items()]

#: float64 residuals measured: <= 2e-14 (Rodas5P); genuine violations >= 4e-3
TOL = 1e-12


class RosenbrockWeights:
    """$\\Phi_j(t)$ for every stage, by the rule in the module docstring."""

    def __init__(self, tab: RosenbrockTableau) -> None:
        self.alpha = np.array(tab.alpha)
        self.beta = np.array(tab.beta)
        self.s = tab.stages
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, t: tuple) -> tuple[np.ndarray, np.ndarray]:
        """(Phi, |Phi| built from |coefficients|) for tree ``t``."""
        if t not in self._cache:
            if not t:
                v = np.ones(self.s)
                m = np.ones(self.s)
            elif len(t) == 1:
                pu, mu = self(t[0])
                v, m = self.beta @ pu, np.abs(self.beta) @ mu
            else:
                v, m = np.ones(self.s), np.ones(self.s)
                for u in t:
                    pu, mu = self(u)
                    v, m = v * (self.alpha @ pu), m * (np.abs(self.alpha) @ mu)
            self._cache[t] = (v, m)
        return self._cache[t]


def worst(weights, Phi: RosenbrockWeights, p: int, theta: float = 1.0) -> float:
    """Largest normalised residual over the trees of order ``p``."""
    w = np.asarray(weights, dtype=float)
    out = 0.0
    for t in trees(p):
        phi, mag = Phi(t)
        target = theta**p / density(t)
        scale = float(np.abs(w) @ mag) + abs(target)
        out = max(out, abs(float(w @ phi) - target) / scale)
    return out


def dense_weights(tab: RosenbrockTableau, theta: float) -> np.ndarray:
    """Classical weights $b_j(\\theta) = \\sum_i b^u_i(\\theta)\\,\\Gamma_{ij}$ (interpolant)."""
    D = np.array(tab.dense_matrix())
    bu = D @ np.array([theta**q for q in range(1, D.shape[1] + 1)])
    return bu @ np.array(tab.Gamma)


def stability(tab: RosenbrockTableau, z: complex) -> complex:
    """$R(z) = 1 + z\\, b^T (I - z\\beta)^{-1} \\mathbb{1}$: one step of $y' = \\lambda y$."""
    beta = np.array(tab.beta, dtype=complex)
    s = tab.stages
    x = np.linalg.solve(np.eye(s) - z * beta, np.ones(s))
    return 1.0 + z * (np.array(tab.b) @ x)


@pytest.mark.parametrize("tab", TABS)
def test_rows_of_alpha_sum_to_the_nodes_and_rows_of_gamma_to_d(tab):
    alpha, Gamma = np.array(tab.alpha), np.array(tab.Gamma)
    assert np.allclose(alpha.sum(1), tab.c, rtol=0, atol=1e-12)
    assert np.allclose(Gamma.sum(1), tab.d, rtol=0, atol=1e-12)
    # Gamma is lower triangular with gamma on the diagonal (a single LU per step)
    assert np.allclose(np.diag(Gamma), tab.gamma, rtol=1e-15)
    assert np.allclose(np.triu(Gamma, 1), 0.0)


@pytest.mark.parametrize("tab", TABS)
def test_weights_and_embedded_weights_sum_to_one(tab):
    assert abs(sum(tab.b) - 1) < 1e-13
    assert abs(sum(tab.b_embedded) - 1) < 1e-13


@pytest.mark.parametrize("tab", TABS)
def test_weights_satisfy_every_order_condition_up_to_the_claimed_order(tab):
    Phi = RosenbrockWeights(tab)
    for p in range(1, tab.order + 1):
        assert worst(tab.b, Phi, p) < TOL, (tab.name, p)


@pytest.mark.parametrize("tab", TABS)
def test_weights_miss_some_order_condition_of_the_next_order(tab):
    assert worst(tab.b, RosenbrockWeights(tab), tab.order + 1) > 1e-4


@pytest.mark.parametrize("tab", TABS)
def test_embedded_weights_have_exactly_the_embedded_order(tab):
    Phi = RosenbrockWeights(tab)
    for p in range(1, tab.embedded_order + 1):
        assert worst(tab.b_embedded, Phi, p) < TOL, (tab.name, p)
    assert worst(tab.b_embedded, Phi, tab.embedded_order + 1) > 1e-4


@pytest.mark.parametrize("tab", TABS)
def test_continuous_extension_satisfies_the_order_conditions_in_theta(tab):
    Phi = RosenbrockWeights(tab)
    for theta in (0.1, 0.37, 0.5, 0.81):
        w = dense_weights(tab, theta)
        for p in range(1, tab.dense_order + 1):
            assert worst(w, Phi, p, theta) < 1e-11, (tab.name, theta, p)


@pytest.mark.parametrize("tab", TABS)
def test_continuous_extension_ends_at_y1_and_misses_the_next_order(tab):
    assert np.allclose(dense_weights(tab, 1.0), tab.b, atol=1e-12)
    assert np.allclose(dense_weights(tab, 0.0), 0.0)
    Phi = RosenbrockWeights(tab)
    assert (
        max(worst(dense_weights(tab, th), Phi, tab.dense_order + 1, th) for th in (0.3, 0.7)) > 1e-5
    )


@pytest.mark.parametrize("tab", TABS)
def test_every_method_is_l_stable(tab):
    # A-stable: |R| <= 1 on the imaginary axis (the maximum principle does the rest, since
    # R has its poles at 1/gamma > 0); L-stable: R(z) -> 0 as z -> -inf
    for y in np.logspace(-3, 6, 200):
        assert abs(stability(tab, 1j * y)) <= 1 + 1e-12, (tab.name, y)
    for x in -np.logspace(-3, 8, 200):
        assert abs(stability(tab, x)) <= 1 + 1e-12, (tab.name, x)
    assert abs(stability(tab, -1e12)) < 1e-6


def test_rodas_methods_are_stiffly_accurate_and_rosenbrock23_is_fsal():
    # stiffly accurate: the last row of beta is b, so y1 is the last stage's solution
    for name in ("Rodas4", "Rodas5P"):
        tab = STIFF_TABLEAUS[name]
        assert np.allclose(np.array(tab.beta)[-1], tab.b, atol=1e-12)
        assert not tab.fsal
    # Rosenbrock23 evaluates its last stage at (t + h, y1), the next step's first stage
    assert STIFF_TABLEAUS["Rosenbrock23"].fsal


def test_rosenbrock23_matches_shampine_and_reichelt_classical_coefficients():
    # the paper's method: alpha_21 = 1/2, alpha_32 = 1, gamma_21 = -d, gamma_31 = d(e32 - 2),
    # gamma_32 = -e32 d, b = (0, 1, 0), error (k1 - 2 k2 + k3)/6
    d, e32 = 1 / (2 + np.sqrt(2)), 6 + np.sqrt(2)
    tab = STIFF_TABLEAUS["Rosenbrock23"]
    assert np.allclose(tab.alpha, [[0, 0, 0], [0.5, 0, 0], [0, 1, 0]], atol=1e-15)
    G = [[d, 0, 0], [-d, d, 0], [d * (e32 - 2), -e32 * d, d]]
    assert np.allclose(tab.Gamma, G, atol=1e-14)
    assert np.allclose(tab.b, [0, 1, 0], atol=1e-15)
    assert np.allclose(np.array(tab.b_embedded) - tab.b, [1 / 6, -1 / 3, 1 / 6], atol=1e-14)


def test_a_mistyped_coefficient_is_refused_on_construction():
    tab = STIFF_TABLEAUS["Rodas4"]
    a = list(tab.a)
    a[2] = (a[2][0] * (1 + 1e-9), a[2][1])
    with pytest.raises(AssertionError, match="row 2 of alpha"):
        dataclasses.replace(tab, a=tuple(a))
    with pytest.raises(AssertionError, match="Gamma sums"):
        dataclasses.replace(tab, d=(*tab.d[:2], tab.d[2] + 1e-6, *tab.d[3:]))
    with pytest.raises(AssertionError, match="sum\\(b\\)"):
        # (m_1 enters sum(b) through gamma; the last stage's row of Gamma sums to d_6 = 0)
        dataclasses.replace(tab, m=(tab.m[0] + 1e-6, *tab.m[1:]))


def test_every_registered_stiff_method_is_covered_here():
    assert set(STIFF) == set(STIFF_TABLEAUS)
