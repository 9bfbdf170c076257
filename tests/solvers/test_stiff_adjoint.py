"""Gradients of stiff solves: ``sensealg="adjoint"`` with a stiff method is the
interpolating adjoint (u(t) from the forward dense output, the adjoint alone integrated
backwards by Rodas5P), checked against backprop, finite differences and gradcheck."""

from __future__ import annotations

import pytest
import torch

import ude_bridge as ub
from tests.helpers import rober

F64 = torch.float64


def mildly_stiff(t, u, p):
    # eigenvalues ~ -k0 and -30 at the start: stiff enough for Tsit5 to be stability-bound
    x, y = u[..., 0:1], u[..., 1:2]
    return torch.cat([-p[0] * x + p[1] * y * y, p[0] * x - 30.0 * y], -1)


TS = torch.linspace(0, 1, 6, dtype=F64)
W = torch.randn(6, 2, dtype=F64, generator=torch.Generator().manual_seed(0))


def grads(method, sensealg, k0=20.0, u0=(1.0, 0.5)):
    k = torch.tensor([k0, 1.5], dtype=F64, requires_grad=True)
    u0 = torch.tensor(u0, dtype=F64, requires_grad=True)
    prob = ub.ODEProblem(mildly_stiff, u0, (0.0, 1.0), k)
    sol = ub.solve(prob, method, saveat=TS, rtol=1e-8, atol=1e-10, sensealg=sensealg)
    return torch.cat(torch.autograd.grad((sol.u * W).sum(), (u0, k)))


@pytest.mark.parametrize("method", ["Rodas5P", "AutoTsit5(Rosenbrock23)"])
def test_the_adjoint_with_a_stiff_backward_pass_equals_backprop(method):
    bp = grads(method, "backprop")
    adj = grads(method, "adjoint")
    # both are accurate to ~the tolerance; they differ by discretisation only (~1e-7)
    assert ((adj - bp).abs() / bp.abs().max()).max() < 1e-5


def test_the_adjoint_gradient_of_a_stiff_solve_equals_central_finite_differences():
    adj = grads("Rodas5P", "adjoint")
    with torch.no_grad():
        d = 1e-5
        k0 = 20.0
        plus = grads_free(k0 + d)
        minus = grads_free(k0 - d)
    fd = (plus - minus) / (2 * d)
    # dL/dk0 is the third gradient entry (after u0's two)
    assert abs(adj[2].item() - fd) < 1e-5 * max(1.0, abs(fd))


def grads_free(k0):
    prob = ub.ODEProblem(mildly_stiff, [1.0, 0.5], (0.0, 1.0), torch.tensor([k0, 1.5], dtype=F64))
    sol = ub.solve(prob, "Rodas5P", saveat=TS, rtol=1e-10, atol=1e-12)
    return float((sol.u * W).sum())


def rober_y3(k1: float) -> float:
    k = torch.tensor([k1, 3e7, 1e4], dtype=F64)
    prob = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1.0), k)
    return float(ub.solve(prob, "Rodas5P", saveat=[1.0], rtol=1e-12, atol=1e-16).u[-1, 2])


@pytest.fixture(scope="module")
def rober_fd():
    # central differences on a tight solve: truncation ~d^2 and round-off ~1e-14/d, both
    # ~1e-9 relative here (measured: agrees with backprop to 6e-10)
    d = 1e-6
    return (rober_y3(0.04 + d) - rober_y3(0.04 - d)) / (2 * d)


@pytest.mark.parametrize(
    ("method", "rtol"),
    [
        ("Rodas5P", 1e-8),
        pytest.param("Rodas4", 1e-8, marks=pytest.mark.slow),
        pytest.param("Rosenbrock23", 1e-6, marks=pytest.mark.slow),
    ],
)
def test_the_adjoint_gradient_of_robertson_equals_central_finite_differences(
    method, rtol, rober_fd
):
    # the backsolve re-integrates u backwards, which grows like exp(|lambda| t) for the
    # stiff decaying modes (exp(120) over [0.988, 1]) and never finishes; the
    # interpolating adjoint takes u(t) from the forward dense output instead
    k = torch.tensor([0.04, 3e7, 1e4], dtype=F64, requires_grad=True)
    prob = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1.0), k)
    sol = ub.solve(
        prob, method, saveat=[1.0], rtol=rtol, atol=rtol * 1e-4, sensealg="adjoint", max_steps=2000
    )
    (g,) = torch.autograd.grad(sol.u[-1, 2], k)
    # the bound; measured 2e-10 (Rodas5P), 6e-10 (Rodas4), 7e-8 (Rosenbrock23)
    assert abs(g[0].item() - rober_fd) < 1e-4 * abs(rober_fd)


@pytest.mark.parametrize(
    "sensealg",
    ["InterpolatingAdjoint", "InterpolatingAdjoint(checkpointing=true)", "BacksolveAdjoint"],
)
def test_every_continuous_adjoint_of_a_mildly_stiff_solve_equals_backprop(sensealg):
    bp = grads("Rodas5P", "backprop")
    adj = grads("Rodas5P", sensealg)
    # different discretisations of one gradient, each accurate to ~the tolerance (1e-8);
    # measured ~1e-10
    assert ((adj - bp).abs() / bp.abs().max()).max() < 1e-6


def test_the_interpolating_adjoint_of_a_batch_equals_backprop_with_per_trajectory_rates():
    def decay(t, u, p):  # per-trajectory stiff rates p["k"] (B, 1), a shared coupling
        x, y = u[..., 0:1], u[..., 1:2]
        return torch.cat([-p["k"] * x + p["q"] * y, p["k"] * x - 50.0 * y * (1 + 0.1 * x)], -1)

    def g(sensealg):
        k = torch.tensor([[10.0], [40.0], [80.0]], dtype=F64, requires_grad=True)
        q = torch.tensor(0.7, dtype=F64, requires_grad=True)
        u0 = torch.tensor([[1.0, 0.0], [0.5, 0.5], [2.0, 0.1]], dtype=F64, requires_grad=True)
        prob = ub.ODEProblem(decay, u0, (0.0, 0.5), {"k": k, "q": q})
        sol = ub.solve(
            prob, "Rodas5P", saveat=[0.1, 0.3, 0.5], rtol=1e-8, atol=1e-10, sensealg=sensealg
        )
        w = torch.linspace(-1, 1, sol.u.numel(), dtype=F64).view_as(sol.u)
        gs = torch.autograd.grad((sol.u * w).sum(), (u0, k, q))
        return torch.cat([x.reshape(-1) for x in gs])

    bp, adj = g("backprop"), g("adjoint")
    # one step size serves the batch backwards; every row is held to the tolerance
    assert ((adj - bp).abs() / bp.abs().max()).max() < 1e-6


def test_the_interpolating_adjoint_passes_gradcheck_on_a_stiff_non_autonomous_problem():
    def f(t, u, p):  # eigenvalues ~ -1 and -p[0] (stiff), coupled through cos(t)
        x, y = u[..., 0:1], u[..., 1:2]
        return torch.cat([-x + p[1] * y, -p[0] * (y - torch.cos(t) * x)], -1)

    def fn(u0, p):
        prob = ub.ODEProblem(f, u0, (0.0, 1.0), p)
        sol = ub.solve(
            prob, "Rodas5P", saveat=[0.5, 1.0], rtol=1e-9, atol=1e-11, sensealg="adjoint"
        )
        return sol.u

    u0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    p = torch.tensor([200.0, 0.3], dtype=F64, requires_grad=True)
    # the adjoint is another discretisation of the same gradient: agreement to the solve
    # tolerance, not to round-off; fast mode (one random projection) keeps the differenced
    # outputs well above the solve's error (du(0.5)/dy0 ~ 1e-3 alone is not)
    assert torch.autograd.gradcheck(fn, (u0, p), eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_the_adjoint_system_gets_its_jacobian_from_the_problem_jac():
    calls = []

    def jac(t, u, p):
        calls.append(float(t))
        y = u[1]
        return torch.stack(
            [torch.stack([-p[0], 2 * p[1] * y]), torch.stack([p[0], torch.full_like(y, -30.0)])]
        )

    k = torch.tensor([20.0, 1.5], dtype=F64, requires_grad=True)
    prob = ub.ODEProblem(mildly_stiff, [1.0, 0.5], (0.0, 1.0), k, jac=jac)
    sol = ub.solve(prob, "Rodas5P", saveat=TS, rtol=1e-8, atol=1e-10, sensealg="adjoint")
    forward_calls = len(calls)
    (g,) = torch.autograd.grad((sol.u * W).sum(), k)
    # the backward steps build W and -J^T a from jac (t runs backwards from t1)
    assert len(calls) > forward_calls and calls[forward_calls] == 1.0
    bp = grads("Rodas5P", "backprop")[2:]
    assert ((g - bp).abs() / bp.abs().max()).max() < 1e-6


def test_a_failed_forward_solve_gives_nan_gradients_not_an_error():
    k = torch.tensor([0.04, 3e7, 1e4], dtype=F64, requires_grad=True)
    prob = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1.0), k)
    sol = ub.solve(
        prob, "Rodas5P", saveat=[1.0], rtol=1e-8, atol=1e-12, sensealg="adjoint", max_steps=5
    )
    assert not sol.success
    (g,) = torch.autograd.grad(sol.u[-1, 2], k)
    assert torch.isnan(g).all()


def test_an_f_that_is_not_vectorised_gets_the_same_gradients_one_point_at_a_time():
    def f(t, u, p):  # indexes u[0]: neither stacked points nor copies of u work
        return torch.stack([-p[0] * u[0] + p[1] * u[1] ** 2, p[0] * u[0] - p[2] * u[1]])

    def g(sensealg):
        p = torch.tensor([20.0, 1.5, 30.0], dtype=F64, requires_grad=True)
        u0 = torch.tensor([1.0, 0.5], dtype=F64, requires_grad=True)
        prob = ub.ODEProblem(f, u0, (0.0, 1.0), p)
        sol = ub.solve(prob, "Rodas5P", saveat=TS, rtol=1e-6, atol=1e-8, sensealg=sensealg)
        return torch.cat(torch.autograd.grad((sol.u * W).sum(), (u0, p)))

    bp, adj = g("backprop"), g("adjoint")
    # measured 1.4e-8 (the fallback is exact, only slower: ~7x backprop here)
    assert ((adj - bp).abs() / bp.abs().max()).max() < 1e-6
