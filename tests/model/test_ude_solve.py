"""The LV UDE from the paper solves with every explicit method of the torch engine."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from scipy.integrate import solve_ivp

from ude_bridge.model import MLP, UDE

from ..helpers import ALL_METHODS

solve_module = importlib.util.find_spec("ude_bridge.solve")
pytestmark = pytest.mark.skipif(solve_module is None, reason="ude_bridge.solve not written yet")

U0 = [0.44249296, 4.6280594]
TS = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
FIXED_DT = 0.01
#: error of each method at dt=0.01 (fixed) or rtol=atol=1e-8 (adaptive) on t in [0, 1],
#: with a margin of ~10x over what was measured
TOLERANCE = {"Euler": 5e-2, "Midpoint": 1e-3, "Heun": 1e-3}


def lv_ude():
    net = MLP(["x", "y"], ["U1", "U2"], hidden=(32, 32), activation="tanh", seed=0)
    return UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        network=net,
    )


def _method_available(method):
    from ude_bridge.solvers.registry import EXPLICIT

    module = EXPLICIT[method][0]
    return importlib.util.find_spec(f"ude_bridge.solvers.methods.{module}") is not None


@pytest.fixture(scope="module")
def reference():
    model = lv_ude()

    def f(t, u):
        with torch.no_grad():
            return model(t, torch.tensor(u)).numpy()

    sol = solve_ivp(f, (0.0, 1.0), U0, method="DOP853", t_eval=TS.numpy(), rtol=1e-12, atol=1e-12)
    return torch.tensor(sol.y.T)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_lv_ude_solves_with_every_explicit_method(method, reference):
    from ude_bridge.solve import solve

    if not _method_available(method):
        pytest.skip(f"{method} is not implemented yet")
    model = lv_ude()
    fixed = method in ("Euler", "Midpoint", "Heun", "RK4")
    kw = {"dt": FIXED_DT} if fixed else {"rtol": 1e-8, "atol": 1e-8}
    sol = solve(model.problem(U0, (0.0, 1.0)), method, saveat=TS, **kw)
    assert sol.success
    assert sol.u.shape == (11, 2)
    tol = TOLERANCE.get(method, 1e-5)
    torch.testing.assert_close(sol.u.detach(), reference, rtol=tol, atol=tol)


def test_batched_lv_ude_solve_and_gradients_reach_the_parameters():
    from ude_bridge.solve import solve

    model = lv_ude()
    u0 = torch.tensor([U0, [1.0, 1.0], [2.0, 0.5]], dtype=torch.float64)
    sol = solve(model.problem(u0, (0.0, 1.0)), "Tsit5", saveat=TS)
    assert sol.u.shape == (3, 11, 2)
    sol.u.square().mean().backward()
    assert model.params["alpha"].grad is not None
    assert model.networks[0].layers[0].weight.grad.abs().sum() > 0
