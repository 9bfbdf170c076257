"""The lean (numpy) path of the Rosenbrock step: a small trajectory on the CPU without a
graph. It must give the torch path's solution, leave what ``f`` received untouched, and warn
nothing where torch is silent."""

from __future__ import annotations

import warnings

import pytest
import torch

import ude_bridge as ub
from tests.helpers import rober
from ude_bridge.solvers.methods.rosenbrock_tableaus import STIFF_TABLEAUS
from ude_bridge.solvers.rosenbrock import Rosenbrock

STIFF = tuple(STIFF_TABLEAUS)


def forced(t, u, p):
    """A mildly stiff, non-autonomous system (the step then uses $f_t$)."""
    x, y = u[..., 0:1], u[..., 1:2]
    return torch.cat([-50.0 * (x - torch.cos(t)), x - y], -1)


def forced_jac(t, u, p):
    return torch.tensor([[-50.0, 0.0], [1.0, -1.0]], dtype=u.dtype)


def _count_lean(monkeypatch) -> list[int]:
    calls = [0]
    lean = Rosenbrock._step_np

    def counted(self, *args):
        calls[0] += 1
        return lean(self, *args)

    monkeypatch.setattr(Rosenbrock, "_step_np", counted)
    return calls


@pytest.mark.parametrize("method", STIFF)
@pytest.mark.parametrize("jac", [None, forced_jac], ids=["own-jacobian", "user-jacobian"])
def test_the_lean_path_gives_the_torch_paths_solution(method, jac, monkeypatch):
    calls = _count_lean(monkeypatch)
    u0 = torch.tensor([0.5, 0.0], dtype=torch.float64)
    prob = ub.ODEProblem(forced, u0, (0.0, 2.0), jac=jac)
    ts = torch.linspace(0.0, 2.0, 9, dtype=torch.float64)
    lean = ub.solve(prob, method, saveat=ts, rtol=1e-7, atol=1e-9)
    assert calls[0] == lean.stats["nsteps"]
    # the same solve with a graph takes the torch path
    calls[0] = 0
    prob_g = ub.ODEProblem(forced, u0.clone().requires_grad_(), (0.0, 2.0), jac=jac)
    graph = ub.solve(prob_g, method, saveat=ts, rtol=1e-7, atol=1e-9)
    assert calls[0] == 0
    assert lean.stats["nsteps"] == graph.stats["nsteps"]
    # as close as the two paths of the original code: f_t is a forward difference in t,
    # whose O(sqrt(eps)) error enters through h^2 f_t and differs with the rounding of y
    assert torch.allclose(lean.u, graph.u.detach(), rtol=1e-8, atol=1e-9)


def test_what_f_received_is_never_written_afterwards():
    seen = []

    def f(t, u, p):
        seen.append((t, u, t.clone(), u.clone()))
        return rober(t, u, p)

    ub.solve(ub.ODEProblem(f, [1.0, 0.0, 0.0], (0.0, 10.0)), "Rodas5P", rtol=1e-6, atol=1e-10)
    assert len(seen) > 50
    for t, u, t_copy, u_copy in seen:
        assert torch.equal(t, t_copy) and torch.equal(u, u_copy)


@pytest.mark.parametrize("method", STIFF)
def test_a_failed_float32_step_warns_nothing_from_numpy(method):
    u0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.warns(UserWarning, match="stiff problems at tight tolerance"):
            sol = ub.solve(ub.ODEProblem(rober, u0, (0.0, 1.0)), method, rtol=1e-7, atol=1e-9)
    assert sol.u.dtype == torch.float32
