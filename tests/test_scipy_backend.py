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


class _Counted:
    """A model's right-hand side that counts its torch calls (its generated code kept)."""

    def __init__(self, rhs) -> None:
        self.rhs, self.calls = rhs, 0
        self.make_numpy = rhs.make_numpy

    def __call__(self, t, u, p):
        self.calls += 1
        return self.rhs(t, u, p)


@pytest.mark.parametrize("method", ["Tsit5", "Rodas5P", "FBDF", "AutoTsit5(Rosenbrock23)"])
def test_an_equation_model_runs_its_generated_numpy_code_under_scipy(method):
    rates = {"k1": 0.04, "k2": 3e7, "k3": 1e4}
    eqs = {"y1": "-k1*y1 + k3*y2*y3", "y2": "k1*y1 - k2*y2^2 - k3*y2*y3", "y3": "k2*y2^2"}
    model = ub.UDE(eqs, params=rates, positive=["k2"])
    T = 1.0 if method == "Tsit5" else 1e3
    f = _Counted(model.rhs)
    with torch.no_grad():
        prob = ub.ODEProblem(f, [1.0, 0.0, 0.0], (0.0, T), model.param_tensors())
        kw = {"saveat": [T], "rtol": 1e-8, "atol": 1e-12}
        a = ub.solve(prob, method, backend="scipy", **kw)
        b = ub.solve(model.problem([1.0, 0.0, 0.0], (0.0, T)), "Rodas5P", **kw)
    assert a.success and f.calls == 0
    assert torch.allclose(a.u, b.u, rtol=1e-5, atol=1e-12)
    if method != "Tsit5":  # the implicit methods got the sympy Jacobian: no differences
        assert a.stats["njac"] > 0 and a.stats["nfev"] < 20 * a.stats["nsteps"]
