"""Measured convergence order of every method (fixed steps, exact solution by expm)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ude_bridge as ub
from tests.helpers import ALL_METHODS, ORDER

A = torch.tensor([[-0.3, 1.0], [-1.0, -0.3]], dtype=torch.float64)
U0 = torch.tensor([1.0, 0.5], dtype=torch.float64)
T = 4.0


def _exact(t):
    return torch.linalg.matrix_exp(A * t) @ U0


def _slope(hs, errs):
    # fit over the asymptotic range: errors above ~1e3 * eps * |u| (the round-off floor)
    pts = [(h, e) for h, e in zip(hs, errs, strict=True) if e > 1e-12]
    pts = pts[-4:]
    assert len(pts) >= 2, f"too few points above the round-off floor: {errs}"
    x = np.log([h for h, _ in pts])
    y = np.log([e for _, e in pts])
    return float(np.polyfit(x, y, 1)[0])


def _nonlinear(t, u, p):
    # the LV system: no closed form, so the reference is a Vern9 solve at 1e-13
    x, y = u[..., 0], u[..., 1]
    return torch.stack([1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y], -1)


def _steps_for(method):
    p = ORDER[method]
    # fewer, larger steps for high orders so the errors stay above round-off
    base = {1: 64, 2: 32, 3: 16, 4: 16, 5: 8, 7: 6, 9: 5}[p]
    return [base * 2**k for k in range(5)] if p < 7 else [base + 2 * k for k in range(0, 10, 2)]


@pytest.mark.parametrize("method", ALL_METHODS)
def test_measured_order_on_a_linear_system_is_the_claimed_order(method):
    prob = ub.ODEProblem(lambda t, u, p: u @ A.T, U0, (0.0, T))
    hs, errs = [], []
    for n in _steps_for(method):
        sol = ub.solve(prob, method, dt=T / n, adaptive=False, saveat=[T])
        hs.append(T / n)
        errs.append((sol.u[-1] - _exact(T)).abs().max().item())
    order = _slope(hs, errs)
    # within 0.3 of the claimed order (the bound); high orders may look higher
    # in the pre-asymptotic range, never lower
    assert order > ORDER[method] - 0.3, (order, errs)
    assert order < ORDER[method] + (0.3 if ORDER[method] < 7 else 1.5), (order, errs)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_measured_order_on_lotka_volterra_is_the_claimed_order(method):
    u0 = (0.44249296, 4.6280594)
    high = ORDER[method] >= 7
    Tn = 3.0 if high else 1.0  # high orders need a longer span to stay above round-off
    prob = ub.ODEProblem(_nonlinear, u0, (0.0, Tn))
    ref = ub.solve(prob, "Vern9", rtol=1e-14, atol=1e-14, saveat=[Tn]).u[-1]
    hs, errs = [], []
    steps = [12, 16, 20, 24, 28] if high else [4 * x for x in _steps_for(method)]
    for n in steps:
        sol = ub.solve(prob, method, dt=Tn / n, adaptive=False, saveat=[Tn])
        hs.append(Tn / n)
        errs.append((sol.u[-1] - ref).abs().max().item())
    order = _slope(hs, errs)
    assert order > ORDER[method] - 0.3, (order, errs)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_dense_output_error_decreases_at_the_interpolant_order(method):
    # midpoints of every step: the interpolant's own error, not the step's
    from ude_bridge.backends.torch_backend import explicit_method

    m = explicit_method(method, torch.float64, torch.device("cpu"))
    expected = min(ORDER[method], (m.tableau.dense_order or 3) + 1)
    prob = ub.ODEProblem(lambda t, u, p: u @ A.T, U0, (0.0, T))
    hs, errs = [], []
    for n in _steps_for(method)[:4]:
        h = T / n
        mids = torch.arange(n, dtype=torch.float64) * h + 0.5 * h
        sol = ub.solve(prob, method, dt=h, adaptive=False, saveat=mids)
        exact = torch.stack([_exact(float(t)) for t in mids])
        hs.append(h)
        errs.append((sol.u - exact).abs().max().item())
    order = _slope(hs, errs)
    assert order > expected - 0.3, (order, expected, errs)


def test_hermite_dense_output_reproduces_a_cubic_exactly():
    # u' = 3t^2 - 2t + 1 has the cubic solution t^3 - t^2 + t; Hermite is exact on cubics
    prob = ub.ODEProblem(lambda t, u, p: (3 * t**2 - 2 * t + 1) * torch.ones_like(u), [0.0], (0, 2))
    ts = torch.linspace(0, 2, 13, dtype=torch.float64)
    sol = ub.solve(prob, "RK4", dt=0.5, saveat=ts, dense=True)
    exact = ts**3 - ts**2 + ts
    assert torch.allclose(sol.u[:, 0], exact, atol=1e-13)
    assert math.isclose(float(sol(1.3)[0]), 1.3**3 - 1.3**2 + 1.3, abs_tol=1e-13)
