"""The scipy backend agrees with the torch engine to the tolerance."""

from __future__ import annotations

import pytest
import torch

import ude_bridge as ub
from tests.helpers import LV_U0, lotka_volterra
from ude_bridge.backends.scipy_backend import SCIPY_METHODS


@pytest.mark.parametrize("method", ["Tsit5", "DP5", "BS3", "Vern7"])
def test_scipy_backend_agrees_with_torch_to_the_tolerance(method):
    prob = ub.ODEProblem(lotka_volterra, LV_U0, (0.0, 3.0))
    ts = torch.linspace(0, 3, 11, dtype=torch.float64)
    a = ub.solve(prob, method, saveat=ts, rtol=1e-9, atol=1e-9, backend="scipy")
    b = ub.solve(prob, method, saveat=ts, rtol=1e-9, atol=1e-9)
    assert a.success and a.backend == "scipy"
    assert isinstance(a, ub.ODESolution) and a.u.shape == b.u.shape
    assert (a.u - b.u).abs().max() < 1e-6
    assert SCIPY_METHODS[method] in a.method


def test_scipy_backend_solves_a_batch_one_trajectory_at_a_time():
    u0 = torch.tensor([LV_U0, (1.0, 1.0)], dtype=torch.float64)
    sol = ub.solve(ub.ODEProblem(lotka_volterra, u0, (0, 2)), saveat=[1.0, 2.0], backend="scipy")
    ref = ub.solve(ub.ODEProblem(lotka_volterra, u0, (0, 2)), saveat=[1.0, 2.0])
    assert sol.u.shape == (2, 2, 2)
    assert (sol.u - ref.u).abs().max() < 1e-4


def test_scipy_dense_output_is_callable():
    sol = ub.solve(
        ub.ODEProblem(lotka_volterra, LV_U0, (0, 3)), backend="scipy", rtol=1e-9, atol=1e-9
    )
    ref = ub.solve(
        ub.ODEProblem(lotka_volterra, LV_U0, (0, 3)), saveat=[1.5], rtol=1e-10, atol=1e-10
    )
    assert (sol(1.5) - ref.u[0]).abs().max() < 1e-6
