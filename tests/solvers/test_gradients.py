"""Gradients through the solver (sensealg="backprop")."""

from __future__ import annotations

import pytest
import torch

import ude_bridge as ub


def _lv(t, u, p):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([p[0] * x - p[1] * x * y, p[2] * x * y - p[3] * y], -1)


@pytest.mark.parametrize("method", ["Tsit5", "DP5", "BS3", "Vern7", "Vern9"])
def test_gradcheck_through_an_adaptive_solve(method):
    def fn(u0, p):
        prob = ub.ODEProblem(_lv, u0, (0.0, 1.0), p)
        return ub.solve(prob, method, saveat=[0.5, 1.0], rtol=1e-8, atol=1e-8).u

    u0 = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([1.3, 0.9, 0.8, 1.8], dtype=torch.float64, requires_grad=True)
    # adaptive step choices are piecewise constant in the inputs, so finite differences
    # see the same steps for eps=1e-6; gradcheck compares to its default 1e-5/1e-3
    assert torch.autograd.gradcheck(fn, (u0, p), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradcheck_through_a_batched_solve():
    def fn(u0, p):
        prob = ub.ODEProblem(_lv, u0, (0.0, 1.0), p)
        return ub.solve(prob, "Tsit5", saveat=[0.3, 1.0], rtol=1e-8, atol=1e-8).u

    u0 = torch.tensor([[1.0, 2.0], [0.5, 1.0]], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([1.3, 0.9, 0.8, 1.8], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (u0, p), eps=1e-6, atol=1e-5, rtol=1e-3)


def test_gradient_of_a_linear_ode_equals_the_closed_form():
    # u' = -k u, u(1) = u0 exp(-k): d/dk = -u0 exp(-k)
    k = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    prob = ub.ODEProblem(lambda t, u, p: -p * u, [2.0], (0.0, 1.0), k)
    u1 = ub.solve(prob, "Tsit5", saveat=[1.0], rtol=1e-10, atol=1e-10).u[-1, 0]
    (g,) = torch.autograd.grad(u1, k)
    assert abs(g.item() - (-2.0 * torch.exp(-k).item())) < 1e-8


def test_gradcheck_through_fixed_steps():
    def fn(u0):
        prob = ub.ODEProblem(lambda t, u, p: torch.sin(u) - 0.1 * t * u, u0, (0.0, 1.0))
        return ub.solve(prob, "RK4", dt=0.1, saveat=[0.25, 1.0]).u

    u0 = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (u0,))
