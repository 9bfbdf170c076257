"""The Rosenbrock methods of the torch engine: order, dense output, Jacobians, batches,
gradients, dtypes and messages (float64 unless a test says otherwise)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import ude_bridge as ub
from tests.helpers import rober
from ude_bridge.errors import InputError, UnknownMethodError
from ude_bridge.solvers.methods.rosenbrock_tableaus import STIFF_TABLEAUS

STIFF = tuple(STIFF_TABLEAUS)


#: the methods, with the slowest cases (order 2 at tight tolerance, graphs) marked slow
SLOW_R23 = [pytest.param(m, marks=pytest.mark.slow) if m == "Rosenbrock23" else m for m in STIFF]
SLOW_R23_R4 = [pytest.param(m, marks=pytest.mark.slow) if m != "Rodas5P" else m for m in STIFF]
ORDER = {name: tab.order for name, tab in STIFF_TABLEAUS.items()}
DENSE_ORDER = {name: tab.dense_order for name, tab in STIFF_TABLEAUS.items()}

# A mildly stiff linear system: eigenvalues -1 +- 2i and -40 (stiffness ratio ~40)
A = torch.tensor([[-1.0, 2.0, 0.0], [-2.0, -1.0, 1.0], [0.0, 0.0, -40.0]], dtype=torch.float64)
U0 = torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)


def linear(t, u, p):
    return u @ A.T


def exact(t):
    return torch.linalg.matrix_exp(A * t) @ U0


def slope(hs, errs, floor=1e-12):
    """Least-squares slope of log(err) against log(h) above the round-off floor."""
    pts = [(h, e) for h, e in zip(hs, errs, strict=True) if e > floor]
    assert len(pts) >= 3, f"too few points above the round-off floor: {errs}"
    return float(np.polyfit(np.log([h for h, _ in pts]), np.log([e for _, e in pts]), 1)[0])


def rober_jac(t, u, p):
    y2, y3 = u[..., 1], u[..., 2]
    z = torch.zeros_like(y2)
    rows = [
        [z - 0.04, 1e4 * y3, 1e4 * y2],
        [z + 0.04, -1e4 * y3 - 6e7 * y2, -1e4 * y2],
        [z, 6e7 * y2, z],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


# ---------------------------------------------------------------------------------------
# Convergence order
# ---------------------------------------------------------------------------------------


def _steps(method):
    # fewer, larger steps for high orders so the errors stay above round-off
    return {2: [32, 64, 128, 256, 512], 4: [16, 24, 32, 48, 64], 5: [12, 16, 24, 32, 48]}[
        ORDER[method]
    ]


def ustar(t):
    return torch.stack([torch.cos(t), torch.sin(2 * t), 1 / (1 + t * t)], -1)


def dustar(t):
    return torch.stack([-torch.sin(t), 2 * torch.cos(2 * t), -2 * t / (1 + t * t) ** 2], -1)


def forced(t, u, p):
    """u' = A u + g(t) with g chosen so that u*(t) solves it: u = u* + exp(At)(u0 - u*(0))."""
    return u @ A.T + dustar(t) - ustar(t) @ A.T


def forced_exact(T):
    T = torch.tensor(T, dtype=torch.float64)
    t0 = torch.tensor(0.0, dtype=torch.float64)
    return ustar(T) + torch.linalg.matrix_exp(A * T) @ (U0 - ustar(t0))


@pytest.mark.parametrize("method", STIFF)
def test_measured_order_on_a_mildly_stiff_forced_linear_system_is_the_claimed_order(method):
    # linear in u, forced in t: every elementary differential of order <= 6 appears
    # (through t), so the classical order shows; measured 2.00, 4.05, 5.06
    T = 2.0
    prob = ub.ODEProblem(forced, U0, (0.0, T))
    hs, errs = [], []
    for n in _steps(method):
        sol = ub.solve(prob, method, dt=T / n, adaptive=False, saveat=[T])
        hs.append(T / n)
        errs.append((sol.u[-1] - forced_exact(T)).abs().max().item())
    # within 0.3 of the claimed order (the bound)
    assert abs(slope(hs, errs) - ORDER[method]) < 0.3, (slope(hs, errs), errs)


@pytest.mark.parametrize("method", STIFF)
def test_measured_order_on_a_constant_linear_system_is_at_least_the_claimed_order(method):
    # u' = A u only sees R(hA): Rodas5P's stability function matches exp to order 6
    # (sum b beta^5 1 = 1/720; see the tableau tests), so it measures ~5.8 here
    T = 2.0
    prob = ub.ODEProblem(linear, U0, (0.0, T))
    hs, errs = [], []
    for n in _steps(method):
        sol = ub.solve(prob, method, dt=T / n, adaptive=False, saveat=[T])
        hs.append(T / n)
        errs.append((sol.u[-1] - exact(T)).abs().max().item())
    order = slope(hs, errs)
    assert ORDER[method] - 0.3 < order < ORDER[method] + 1.3, (order, errs)


@pytest.mark.parametrize("method", STIFF)
def test_dense_output_has_the_local_order_of_its_continuous_extension(method):
    # one step from 0 to h of a smooth non-stiff rotation, read at theta = 0.37: the
    # interpolant's local error is O(h^(q+1)) (in the stiff regime it is bounded instead)
    R = torch.tensor([[-0.5, 2.0], [-2.0, -0.5]], dtype=torch.float64)
    v0 = torch.tensor([1.0, 0.3], dtype=torch.float64)
    hs, errs = [], []
    for h in (0.4, 0.2, 0.1, 0.05):
        prob = ub.ODEProblem(lambda t, u, p: u @ R.T, v0, (0.0, h))
        sol = ub.solve(prob, method, dt=h, adaptive=False, saveat=[0.37 * h])
        hs.append(h)
        errs.append((sol.u[0] - torch.linalg.matrix_exp(R * 0.37 * h) @ v0).abs().max().item())
    assert slope(hs, errs, floor=1e-14) > DENSE_ORDER[method] + 1 - 0.3, errs


@pytest.mark.parametrize("method", STIFF)
def test_a_stiff_non_autonomous_problem_reaches_the_tolerance(method):
    # u' = -lam (u - cos t) - sin t, u(0) = 2: u = cos t + exp(-lam t); f_t enters every stage
    lam, T = 500.0, 2.0

    def f(t, u, p):
        return -lam * (u - torch.cos(t)) - torch.sin(t)

    tol = 1e-6 if method == "Rosenbrock23" else 1e-8  # order 2: tight tolerances are slow
    sol = ub.solve(
        ub.ODEProblem(f, [2.0], (0.0, T)), method, saveat=[0.5, T], rtol=tol, atol=tol * 1e-2
    )
    exact_u = [math.cos(t) + math.exp(-lam * t) for t in (0.5, T)]
    # global error within 10x the tolerance
    assert (sol.u[:, 0] - torch.tensor(exact_u, dtype=torch.float64)).abs().max() < 10 * tol


@pytest.mark.parametrize("method", STIFF)
def test_adaptive_solves_meet_the_tolerance_on_the_linear_system(method):
    ts = torch.linspace(0, 2, 9, dtype=torch.float64)
    prob = ub.ODEProblem(linear, U0, (0.0, 2.0))
    sol = ub.solve(prob, method, saveat=ts, rtol=1e-8, atol=1e-10)
    ref = torch.stack([exact(t) for t in ts])
    # a global error within ~100x the tolerance (the save points are interpolated)
    assert (sol.u - ref).abs().max() < 100 * 1e-8
    assert torch.equal(sol.t, ts)


@pytest.mark.parametrize("method", STIFF)
def test_whole_solve_dense_output_matches_the_exact_solution(method):
    prob = ub.ODEProblem(linear, U0, (0.0, 2.0))
    sol = ub.solve(prob, method, rtol=1e-8, atol=1e-10)
    tq = torch.linspace(0.01, 1.99, 23, dtype=torch.float64)
    ref = torch.stack([exact(t) for t in tq])
    # the interpolants are of order 2-4: looser than the step ends
    assert (sol(tq) - ref).abs().max() < {2: 1e-5, 3: 1e-6, 4: 1e-6}[DENSE_ORDER[method]]


@pytest.mark.parametrize("method", STIFF)
def test_a_stiff_problem_solved_backwards_in_time_matches_the_closed_form(method):
    # u' = lam (u - sin t) + cos t decays as t decreases: stiff and stable from t=1 to t=0;
    # u = sin t + (u1 - sin 1) exp(lam (t - 1))
    lam, u1 = 200.0, 3.0

    def f(t, u, p):
        return lam * (u - torch.sin(t)) + torch.cos(t)

    sol = ub.solve(
        ub.ODEProblem(f, [u1], (1.0, 0.0)), method, saveat=[0.99, 0.5, 0.0], rtol=1e-8, atol=1e-10
    )
    exact_u = [math.sin(t) + (u1 - math.sin(1.0)) * math.exp(lam * (t - 1)) for t in sol.t]
    assert sol.success
    # inside the boundary layer (t = 0.99) the order-2 method's global error is ~100 rtol
    bound = 5e-6 if method == "Rosenbrock23" else 1e-6
    assert (sol.u[:, 0] - torch.tensor(exact_u, dtype=torch.float64)).abs().max() < bound


# ---------------------------------------------------------------------------------------
# Jacobians
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", STIFF)
def test_a_user_jacobian_gives_the_autograd_solution(method):
    auto = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 40.0))
    user = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 40.0), jac=rober_jac)
    a = ub.solve(auto, method, saveat=[40.0], rtol=1e-6, atol=1e-10)
    b = ub.solve(user, method, saveat=[40.0], rtol=1e-6, atol=1e-10)
    # the same steps; the Jacobians differ in round-off only
    assert a.stats["nsteps"] == b.stats["nsteps"]
    assert torch.allclose(a.u, b.u, rtol=1e-10, atol=1e-16)


def test_an_f_that_is_not_vectorised_falls_back_to_one_backward_pass_per_row():
    def scalar_style(t, u, p):  # indexes u[0]: wrong on copies of u, right on u
        return torch.stack(
            [
                -0.04 * u[0] + 1e4 * u[1] * u[2],
                0.04 * u[0] - 3e7 * u[1] ** 2 - 1e4 * u[1] * u[2],
                3e7 * u[1] ** 2,
            ]
        )

    a = ub.solve(ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 40.0)), "Rodas5P", saveat=[40.0])
    b = ub.solve(
        ub.ODEProblem(scalar_style, [1.0, 0.0, 0.0], (0.0, 40.0)), "Rodas5P", saveat=[40.0]
    )
    assert torch.allclose(a.u, b.u, rtol=1e-10, atol=1e-16)


def test_an_f_autograd_cannot_see_through_falls_back_to_finite_differences():
    def through_numpy(t, u, p):
        x = u.detach().numpy()
        out = np.stack(
            [
                -0.04 * x[..., 0] + 1e4 * x[..., 1] * x[..., 2],
                0.04 * x[..., 0] - 3e7 * x[..., 1] ** 2 - 1e4 * x[..., 1] * x[..., 2],
                3e7 * x[..., 1] ** 2,
            ],
            -1,
        )
        return torch.from_numpy(out)

    a = ub.solve(
        ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 40.0)),
        "Rodas5P",
        saveat=[40.0],
        rtol=1e-7,
        atol=1e-12,
    )
    b = ub.solve(
        ub.ODEProblem(through_numpy, [1.0, 0.0, 0.0], (0.0, 40.0)),
        "Rodas5P",
        saveat=[40.0],
        rtol=1e-7,
        atol=1e-12,
    )
    assert b.success
    # a difference-quotient Jacobian (relative error ~1e-8) changes the result slightly
    assert ((a.u - b.u).abs() / a.u.abs().clamp_min(1e-12)).max() < 1e-5


def test_the_jacobian_is_reused_after_a_rejected_step_and_counted():
    sol = ub.solve(
        ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1e5)),
        "Rodas5P",
        saveat=[1e5],
        rtol=1e-6,
        atol=1e-10,
    )
    st = sol.stats
    assert st["nreject"] > 0
    # one Jacobian per accepted step (+1 built for the step after the last); none for retries
    assert st["njac"] == st["naccept"] + 1
    assert st["nlinsolve"] == 8 * st["nsteps"]


def test_a_jacobian_of_the_wrong_shape_is_reported():
    prob = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1.0), jac=lambda t, u, p: torch.eye(2))
    with pytest.raises(InputError, match=r"jac\(t, u, p\) must return a tensor of shape \(3, 3\)"):
        ub.solve(prob, "Rodas4")


def test_a_solve_without_a_graph_hands_back_ordinary_tensors():
    # the stages may run under torch.inference_mode; nothing the user gets may be an
    # inference tensor (those refuse in-place updates and autograd outside the mode)
    sol = ub.solve(
        ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 10.0)),
        "Rodas5P",
        saveat=[1.0, 10.0],
        dense=True,
    )
    for out in (sol.u, sol(torch.tensor([0.5, 5.0], dtype=torch.float64))):
        assert not out.is_inference()
        out.add_(1.0)  # in place: fails on an inference tensor
        assert out.clone().requires_grad_().sum().requires_grad


def test_an_f_that_calls_autograd_itself_still_works():
    # a stiff damped oscillator whose force is -dV/dq computed by autograd inside f (as in
    # Hamiltonian models): f cannot run under inference mode, and the solve must notice
    k, c = 500.0, 40.0

    def by_autograd(t, u, p):
        with torch.enable_grad():
            q = u[..., :1].detach().requires_grad_(True)
            (dv,) = torch.autograd.grad((0.5 * k * q**2).sum(), q)
        return torch.cat([u[..., 1:], -dv - c * u[..., 1:]], -1)

    def closed_form(t, u, p):
        return torch.cat([u[..., 1:], -k * u[..., :1] - c * u[..., 1:]], -1)

    ts = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
    got, want = (
        ub.solve(ub.ODEProblem(fn, [1.0, 0.0], (0.0, 1.0)), "Rodas5P", saveat=ts, rtol=1e-8)
        for fn in (by_autograd, closed_form)
    )
    assert got.success
    # the first f gets a finite-difference Jacobian, the second an exact one: they agree
    # to the tolerance (atol 1e-6 by default), not to round-off
    torch.testing.assert_close(got.u, want.u, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", SLOW_R23)
def test_a_batch_with_per_trajectory_rates_equals_separate_solves(method):
    rates = torch.tensor([[0.04, 3e7, 1e4], [0.1, 1e7, 3e3], [0.02, 5e7, 2e4]], dtype=torch.float64)
    u0 = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.0, 0.1], [1.0, 0.0, 0.0]], dtype=torch.float64)
    ts = [1.0, 10.0, 100.0]
    batch = ub.solve(
        ub.ODEProblem(rober, u0, (0.0, 100.0), rates), method, saveat=ts, rtol=1e-7, atol=1e-11
    )
    assert batch.success and batch.u.shape == (3, 3, 3)
    for b in range(3):
        one = ub.solve(
            ub.ODEProblem(rober, u0[b], (0.0, 100.0), rates[b]),
            method,
            saveat=ts,
            rtol=1e-7,
            atol=1e-11,
        )
        # each trajectory takes its own steps: equal up to the order of the tolerance
        assert torch.allclose(batch.u[b], one.u, rtol=1e-5, atol=1e-10), b


def test_a_batch_with_a_user_jacobian_equals_the_autograd_batch():
    u0 = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5]], dtype=torch.float64)
    a = ub.solve(ub.ODEProblem(rober, u0, (0.0, 100.0)), "Rodas4", rtol=1e-7, atol=1e-11)
    b = ub.solve(
        ub.ODEProblem(rober, u0, (0.0, 100.0), jac=rober_jac), "Rodas4", rtol=1e-7, atol=1e-11
    )
    assert torch.allclose(a.u, b.u, rtol=1e-10, atol=1e-16)
    assert b.stats["njac"] == b.stats["nsteps"]


def test_a_non_autonomous_batch_gets_the_time_derivative_per_trajectory():
    lam = torch.tensor([[5.0], [50.0]], dtype=torch.float64)

    def f(t, u, p):
        return -p * (u - torch.cos(t)) - torch.sin(t)

    sol = ub.solve(
        ub.ODEProblem(f, [[2.0], [2.0]], (0.0, 1.0), lam),
        "Rodas5P",
        saveat=[1.0],
        rtol=1e-9,
        atol=1e-12,
    )
    exact_u = math.cos(1.0) + torch.exp(-lam[:, 0])
    assert (sol.u[:, -1, 0] - exact_u).abs().max() < 1e-7


# ---------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", SLOW_R23_R4)
def test_gradcheck_through_a_stiff_adaptive_solve(method):
    def fn(u0, k):
        def f(t, u, p):
            x, y = u[..., 0:1], u[..., 1:2]
            return torch.cat([-p[0] * x + p[1] * y * y, p[0] * x - 30.0 * y], -1)

        prob = ub.ODEProblem(f, u0, (0.0, T), k)
        return ub.solve(prob, method, saveat=[0.1, T], rtol=1e-7, atol=1e-9).u

    # the step sizes are not differentiated, so the tolerance must be tight for the
    # discrete gradient to match finite differences; Rosenbrock23 (order 2) on a short span
    T = 0.2 if method == "Rosenbrock23" else 0.5
    u0 = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
    k = torch.tensor([20.0, 1.5], dtype=torch.float64, requires_grad=True)
    # the steps are piecewise constant in the inputs: finite differences with eps=1e-6 see
    # the same steps, so the discrete gradient is checked exactly
    assert torch.autograd.gradcheck(fn, (u0, k), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_through_a_stiff_batch_and_a_user_jacobian():
    def fn(u0):
        prob = ub.ODEProblem(rober, u0, (0.0, 1.0), jac=rober_jac)
        return ub.solve(prob, "Rodas4", saveat=[1.0], rtol=1e-7, atol=1e-10).u

    u0 = torch.tensor([[1.0, 0.0, 0.0], [0.8, 1e-5, 0.2]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (u0,), eps=1e-7, atol=1e-5, rtol=1e-3)


# ---------------------------------------------------------------------------------------
# dtypes, names and messages
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", STIFF)
def test_float32_solves_warn_at_tight_tolerance_and_stay_close_to_float64(method):
    u0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float32)
    with pytest.warns(UserWarning, match="stiff problems at tight tolerance need float64"):
        ub.solve(ub.ODEProblem(rober, u0, (0.0, 1.0)), method, rtol=1e-7, atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s32 = ub.solve(
            ub.ODEProblem(rober, u0, (0.0, 100.0)), method, saveat=[100.0], rtol=1e-4, atol=1e-8
        )
    s64 = ub.solve(
        ub.ODEProblem(rober, u0.double(), (0.0, 100.0)),
        method,
        saveat=[100.0],
        rtol=1e-6,
        atol=1e-10,
    )
    assert s32.u.dtype == torch.float32 and s32.success
    # float32 at rtol 1e-4: a few 1e-4 relative on the large components
    assert torch.allclose(s32.u.double(), s64.u, rtol=2e-3, atol=1e-6)


def test_stiff_methods_are_listed_and_misspellings_get_a_suggestion():
    names = ub.backends.torch_backend.TorchBackend().methods()
    for name in ("Rosenbrock23", "Rodas4", "Rodas5P", "AutoTsit5(Rosenbrock23)"):
        assert name in names
    with pytest.raises(UnknownMethodError, match="Did you mean 'Rodas5P'"):
        ub.solve(ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1.0)), "rodas5p")


def test_stats_report_jacobians_and_linear_solves():
    sol = ub.solve(ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 10.0)), "Rosenbrock23")
    st = sol.stats
    assert st["nlinsolve"] == 3 * st["nsteps"]
    assert 0 < st["njac"] <= st["nsteps"]
    # FSAL: two new evaluations per step, plus the Jacobian passes and the first stage
    assert st["nfev"] >= 2 * st["nsteps"]
