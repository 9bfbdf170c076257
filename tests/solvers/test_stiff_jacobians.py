"""How the stiff methods get their Jacobians (`ude_bridge.solvers.jacobians`): the mode
chosen for each kind of ``f``, and that every mode gives the exact Jacobian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ude_bridge.solvers.jacobians import JacobianState, jacobian, jacobian_batch, time_derivative

F64 = torch.float64
Y = torch.tensor([0.7, 2e-5, 0.3], dtype=F64)


def rober(t, u, p):
    y1, y2, y3 = u.unbind(-1)
    return torch.stack(
        [-0.04 * y1 + 1e4 * y2 * y3, 0.04 * y1 - 3e7 * y2 * y2 - 1e4 * y2 * y3, 3e7 * y2 * y2], -1
    )


def rober_exact_jacobian(u):
    y1, y2, y3 = u.tolist()
    return torch.tensor(
        [
            [-0.04, 1e4 * y3, 1e4 * y2],
            [0.04, -1e4 * y3 - 6e7 * y2, -1e4 * y2],
            [0.0, 6e7 * y2, 0.0],
        ],
        dtype=F64,
    )


def with_abs(t, u, p):  # |u| is not analytic: the complex step would be silently wrong
    return -u.abs() * u


def with_relu(t, u, p):  # relu refuses complex input
    return -torch.relu(u) * u + torch.sin(u)


def indexes_rows(t, u, p):  # not vectorised: indexes u[0] (wrong on copies of u)
    return torch.stack([-u[0] * u[1], u[0] - u[2], u[1] * u[2]])


def through_numpy(t, u, p):  # autograd cannot see through numpy
    x = u.detach().numpy()
    return torch.from_numpy(
        np.stack([-x[..., 0] * x[..., 1], x[..., 0] - x[..., 2], x[..., 1] * x[..., 2]], -1)
    )


def detaches(t, u, p):  # autograd cannot see through; neither can the complex step
    x = u.detach().real if u.is_complex() else u.detach()
    return torch.stack([-x[..., 0] * x[..., 1], x[..., 0] - x[..., 2], x[..., 1] * x[..., 2]], -1)


def first(f, y=Y, t=0.0):
    state = JacobianState()
    f0 = f(torch.scalar_tensor(t, dtype=F64), y, None)
    J, _, _ = jacobian(f, None, t, y, f0, state)
    return J, state


def central_differences(f, y, t=0.0):
    tt = torch.scalar_tensor(t, dtype=F64)
    cols = []
    for j in range(y.shape[-1]):
        d = 1e-6 * max(1.0, abs(float(y[j])))
        e = torch.zeros_like(y)
        e[j] = d
        cols.append((f(tt, y + e, None) - f(tt, y - e, None)) / (2 * d))
    return torch.stack(cols, -1)


@pytest.mark.parametrize(
    ("f", "mode"),
    [
        (rober, "complex"),
        (with_abs, "copies"),
        (with_relu, "copies"),
        (indexes_rows, "rows"),
        (through_numpy, "complex"),
        (detaches, "fd"),
    ],
)
def test_each_kind_of_f_gets_the_cheapest_mode_that_is_right(f, mode):
    J, state = first(f)
    assert state.mode == mode
    # every mode agrees with central differences (the fd mode only to ~1e-7)
    ref = central_differences(f, Y)
    assert torch.allclose(J, ref, rtol=1e-6, atol=1e-6 * float(ref.abs().max()))


def test_the_complex_step_jacobian_is_exact_to_round_off_on_a_stiff_system():
    J, state = first(rober)
    assert state.mode == "complex" and state.autonomous
    # exact: no cancellation, unlike differences (entries span 1e-2 .. 1e3)
    assert torch.allclose(J, rober_exact_jacobian(Y), rtol=1e-14, atol=1e-14)
    # and later calls (the cached mode) also return f(t, y) itself, for free
    J2, fy, nfev = jacobian(rober, None, 1.0, Y * 1.1, None, state)
    assert nfev == 1
    assert torch.allclose(fy, rober(None, Y * 1.1, None), rtol=1e-15, atol=0)


def test_a_batch_gets_per_trajectory_jacobians_with_per_trajectory_parameters():
    def f(t, u, p):
        return -p * u * u + torch.sin(t) * u.flip(-1)

    y = torch.tensor([[0.5, 1.0], [2.0, -1.0], [0.1, 0.2]], dtype=F64)
    p = torch.tensor([[1.0], [3.0], [0.5]], dtype=F64)
    t = torch.tensor([[0.1], [0.2], [0.3]], dtype=F64)
    state = JacobianState()
    J, _ = jacobian_batch(f, p, t, y, f(t, y, p), state)
    assert state.mode == "complex" and state.autonomous is False
    for b in range(3):
        ref = torch.diag(-2 * p[b, 0] * y[b]) + torch.sin(t[b, 0]) * torch.tensor(
            [[0.0, 1.0], [1.0, 0.0]], dtype=F64
        )
        assert torch.allclose(J[b], ref, rtol=1e-13, atol=1e-15)


def test_the_time_derivative_is_computed_only_when_f_depends_on_t():
    def forced(t, u, p):
        return -50.0 * (u - torch.cos(t))

    J, state = first(forced, torch.tensor([1.0], dtype=F64), t=0.3)
    assert state.autonomous is False
    f0 = forced(torch.scalar_tensor(0.3, dtype=F64), torch.tensor([1.0], dtype=F64), None)
    ft = time_derivative(forced, None, 0.3, 0.01, torch.tensor([1.0], dtype=F64), f0, state)
    # forward difference: relative error ~sqrt(eps)
    assert abs(ft.item() - (-50.0 * torch.sin(torch.tensor(0.3)).item())) < 1e-5
    _, state = first(rober)
    assert time_derivative(rober, None, 0.3, 0.01, Y, rober(None, Y, None), state) is None


def test_jacobians_keep_their_graph_for_gradients_through_the_solve():
    k = torch.tensor(3.0, dtype=F64, requires_grad=True)

    def f(t, u, p):
        return -p * u**3

    y = torch.tensor([0.5, 2.0], dtype=F64, requires_grad=True)
    state = JacobianState()
    J, _, _ = jacobian(f, k, 0.0, y, f(None, y, k), state)
    assert state.mode == "complex"
    # d/dk trace(J) = -3 sum y^2 ; d/dy trace(J) = -6 k y
    gk, gy = torch.autograd.grad(J.diagonal().sum(), (k, y))
    assert torch.allclose(gk, -3 * (y.detach() ** 2).sum(), rtol=1e-13)
    assert torch.allclose(gy, -6 * k.detach() * y.detach(), rtol=1e-13)
