"""The checkpointed continuous adjoint agrees with backprop, finite differences and closed forms."""

from __future__ import annotations

import math

import pytest
import torch

import ude_bridge as ub


def _lv(t, u, p):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([p[0] * x - p[1] * x * y, p[2] * x * y - p[3] * y], -1)


TS = torch.linspace(0, 3, 16, dtype=torch.float64)


def _grads(sensealg, u0, p, weights, method="Tsit5"):
    u0 = u0.clone().requires_grad_(True)
    p = p.clone().requires_grad_(True)
    sol = ub.solve(
        ub.ODEProblem(_lv, u0, (0, 3), p),
        method,
        saveat=TS,
        rtol=1e-10,
        atol=1e-10,
        sensealg=sensealg,
    )
    loss = (sol.u * weights).sum()
    return torch.autograd.grad(loss, (u0, p))


@pytest.mark.parametrize("batched", [False, True])
def test_adjoint_gradients_equal_backprop_gradients_at_tight_tolerance(batched):
    u0 = torch.tensor([0.44249296, 4.6280594], dtype=torch.float64)
    if batched:
        u0 = u0 * torch.tensor([[1.0], [0.8], [1.2]], dtype=torch.float64)
    p = torch.tensor([1.3, 0.9, 0.8, 1.8], dtype=torch.float64)
    w = torch.randn(*((3,) if batched else ()), 16, 2, dtype=torch.float64)
    bp = _grads("backprop", u0, p, w)
    adj = _grads("adjoint", u0, p, w)
    for a, b in zip(adj, bp, strict=True):
        # the bound: relative error <= 1e-4 at tight tolerance (measured ~1e-10)
        assert ((a - b).abs().max() / b.abs().max()) < 1e-6


def test_adjoint_gradient_equals_central_finite_differences():
    u0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    p = torch.tensor([1.3, 0.9, 0.8, 1.8], dtype=torch.float64)
    w = torch.randn(16, 2, dtype=torch.float64)
    _, gp = _grads("adjoint", u0, p, w)

    def loss(pp):
        sol = ub.solve(ub.ODEProblem(_lv, u0, (0, 3), pp), saveat=TS, rtol=1e-12, atol=1e-12)
        return float((sol.u * w).sum())

    eps = 1e-6
    for i in range(4):
        e = torch.zeros(4, dtype=torch.float64)
        e[i] = eps
        fd = (loss(p + e) - loss(p - e)) / (2 * eps)
        # central differences: truncation ~eps^2, round-off ~1e-12/eps
        assert abs(fd - gp[i].item()) < 1e-5 * max(1.0, abs(fd))


def test_adjoint_passes_gradcheck():
    def fn(u0, p):
        prob = ub.ODEProblem(_lv, u0, (0.0, 1.0), p)
        return ub.solve(prob, saveat=[0.0, 0.5, 1.0], rtol=1e-10, atol=1e-10, sensealg="adjoint").u

    u0 = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([1.3, 0.9, 0.8, 1.8], dtype=torch.float64, requires_grad=True)
    # the adjoint is a different discretisation of the same gradient: agreement to the
    # solve tolerance, not to round-off
    assert torch.autograd.gradcheck(fn, (u0, p), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_adjoint_of_a_linear_decay_equals_the_closed_form():
    # u(1) = u0 exp(-k): d/dk = -u0 exp(-k), d/du0 = exp(-k)
    k = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    u0 = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    prob = ub.ODEProblem(lambda t, u, p: -p * u, u0, (0.0, 1.0), k)
    sol = ub.solve(prob, saveat=[1.0], rtol=1e-10, atol=1e-10, sensealg="adjoint")
    gk, gu = torch.autograd.grad(sol.u[-1, 0], (k, u0))
    assert abs(gk.item() + 2.0 * torch.exp(-k).item()) < 1e-8
    assert abs(gu.item() - torch.exp(-k).item()) < 1e-8


def test_adjoint_needs_saveat():
    u0 = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    prob = ub.ODEProblem(lambda t, u, p: -u, u0, (0.0, 1.0))
    with pytest.raises(ub.InputError, match="saveat is required"):
        ub.solve(prob, sensealg="adjoint")


def test_adjoint_reaches_parameters_a_model_uses_through_a_dict():
    p = {"k": torch.tensor(0.5, dtype=torch.float64, requires_grad=True)}
    prob = ub.ODEProblem(lambda t, u, p: -p["k"] * u, [1.0], (0.0, 2.0), p)
    sol = ub.solve(prob, saveat=[1.0, 2.0], rtol=1e-10, atol=1e-10, sensealg="adjoint")
    (g,) = torch.autograd.grad(sol.u[-1, 0], (p["k"],))
    assert abs(g.item() + 2.0 * math.exp(-1.0)) < 1e-8
