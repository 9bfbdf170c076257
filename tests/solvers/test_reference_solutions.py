"""Every adaptive method against closed forms and published reference values (float64)."""

from __future__ import annotations

import math

import pytest
import torch

import ude_bridge as ub
from tests.helpers import ADAPTIVE_METHODS, LV_T3, LV_U0, lotka_volterra

#: per-method tolerance: tight, but not so tight that a 2nd-order method takes 1e6 steps
TOL = {"Heun": 1e-7, "Midpoint": 1e-7, "BS3": 1e-9}


def tol_for(method):
    return TOL.get(method, 1e-10)


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_lotka_volterra_at_t3_matches_the_published_reference(method):
    prob = ub.ODEProblem(lotka_volterra, LV_U0, (0.0, 3.0))
    tol = tol_for(method)
    sol = ub.solve(prob, method, saveat=[3.0], rtol=tol, atol=tol)
    assert sol.success, sol.message
    # global error ~ tolerance times the problem's error growth (~10 on this orbit);
    # the reference itself has 12 digits
    err = (sol.u[-1] - torch.tensor(LV_T3, dtype=torch.float64)).abs().max().item()
    assert err < max(200 * tol, 2e-11)


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_exponential_decay_matches_the_closed_form(method):
    lam = torch.tensor([-0.5, -2.0, 1.0], dtype=torch.float64)
    prob = ub.ODEProblem(lambda t, u, p: lam * u, [1.0, 2.0, 0.5], (0.0, 2.0))
    tol = tol_for(method)
    ts = torch.linspace(0, 2, 9, dtype=torch.float64)
    sol = ub.solve(prob, method, saveat=ts, rtol=tol, atol=tol)
    exact = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64) * torch.exp(ts[:, None] * lam)
    assert torch.allclose(sol.u, exact, rtol=100 * tol, atol=100 * tol)
    assert torch.equal(sol.t, ts)


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_harmonic_oscillator_matches_cos_and_sin(method):
    w = 2.0

    def f(t, u, p):
        return torch.stack([u[..., 1], -(w**2) * u[..., 0]], -1)

    prob = ub.ODEProblem(f, [1.0, 0.0], (0.0, 5.0))
    tol = tol_for(method)
    ts = torch.linspace(0, 5, 11, dtype=torch.float64)
    sol = ub.solve(prob, method, saveat=ts, rtol=tol, atol=tol)
    exact = torch.stack([torch.cos(w * ts), -w * torch.sin(w * ts)], -1)
    assert (sol.u - exact).abs().max() < 500 * tol


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_linear_system_matches_the_matrix_exponential(method):
    g = torch.Generator().manual_seed(3)
    A = torch.randn(4, 4, generator=g, dtype=torch.float64) * 0.5
    u0 = torch.randn(4, generator=g, dtype=torch.float64)
    prob = ub.ODEProblem(lambda t, u, p: u @ A.T, u0, (0.0, 1.5))
    tol = tol_for(method)
    sol = ub.solve(prob, method, saveat=[0.5, 1.5], rtol=tol, atol=tol)
    for t, u in zip(sol.t.tolist(), sol.u, strict=True):
        exact = torch.linalg.matrix_exp(A * t) @ u0
        assert (u - exact).abs().max() < 200 * tol


def test_lotka_volterra_agrees_with_scipy_dop853_at_tight_tolerance():
    scipy_integrate = pytest.importorskip("scipy.integrate")
    import numpy as np

    def f_np(t, u):
        x, y = u
        return [1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y]

    ref = scipy_integrate.solve_ivp(f_np, (0, 3), LV_U0, method="DOP853", rtol=1e-13, atol=1e-13).y[
        :, -1
    ]
    assert np.allclose(ref, LV_T3, atol=1e-11)
    assert math.isfinite(ref[0])
