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


# ---- an equation model's generated numpy functions (`ude_bridge.codegen.to_numpy`) ------
ROBER_EQUATIONS = {"y1": "-k1*y1 + k3*y2*y3", "y2": "k1*y1 - k2*y2^2 - k3*y2*y3", "y3": "k2*y2^2"}
ROBER_RATES = {"k1": 0.04, "k2": 3e7, "k3": 1e4}


class _Counted:
    """A model's right-hand side that counts its (torch) calls; with ``numpy=False`` it
    hides the generated numpy functions, so the solve takes the torch lean path."""

    def __init__(self, rhs, numpy: bool = True) -> None:
        self.rhs, self.calls = rhs, 0
        self.make_jac = rhs.make_jac
        if numpy:
            self.make_numpy = rhs.make_numpy

    def __call__(self, t, u, p):
        self.calls += 1
        return self.rhs(t, u, p)


def _rober_model(**kw) -> ub.UDE:
    return ub.UDE(ROBER_EQUATIONS, params=ROBER_RATES, **kw)


@pytest.mark.parametrize("method", STIFF)
def test_an_equation_model_steps_without_calling_torch_and_gives_the_same_solution(method):
    model = _rober_model(fixed=list(ROBER_RATES))
    ts = torch.logspace(-3, 3, 7, dtype=torch.float64)
    sols, fs = [], []
    for numpy in (True, False):
        f = _Counted(model.rhs, numpy)
        prob = ub.ODEProblem(f, [1.0, 0.0, 0.0], (0.0, 1e3), model.param_tensors())
        prob = prob.remake(jac=model.rhs.make_jac())
        sols.append(ub.solve(prob, method, saveat=ts, rtol=1e-7, atol=1e-11))
        fs.append(f)
    fast, slow_ = sols
    assert fast.success and fast.stats["nsteps"] > 30
    # the numpy functions did the stages, Jacobians and next first stages: torch f ran
    # only for the initial stage and the initial step size
    assert fs[0].calls <= 2 < fast.stats["nsteps"] < fs[1].calls
    for key in ("nsteps", "naccept", "nfev", "njac"):
        assert fast.stats[key] == slow_.stats[key], key
    # the same formulas (sympy's, cse'd alike) in numpy and in torch: equal to round-off
    assert torch.allclose(fast.u, slow_.u, rtol=1e-12, atol=1e-20)


def test_a_non_autonomous_model_uses_its_exact_time_derivative():
    model = ub.UDE({"x": "-50*(x - cos(t))", "y": "x - y"})
    u0, ts = [0.5, 0.0], torch.linspace(0.0, 2.0, 9, dtype=torch.float64)
    fast = ub.solve(model.problem(u0, (0.0, 2.0)), "Rodas5P", saveat=ts, rtol=1e-8, atol=1e-10)
    f = _Counted(model.rhs, numpy=False)
    prob = ub.ODEProblem(f, u0, (0.0, 2.0), model.param_tensors(), jac=model.rhs.make_jac())
    slow_ = ub.solve(prob, "Rodas5P", saveat=ts, rtol=1e-8, atol=1e-10)
    # the torch path's f_t is a forward difference, O(sqrt(eps)) through h^2 f_t
    assert torch.allclose(fast.u, slow_.u, rtol=1e-7, atol=1e-9)
    # and both against the exact solution of x' = -50 (x - cos t)
    t = ts
    c = 50.0 / (50.0**2 + 1.0)
    x = 50.0 * c * torch.cos(t) + c * torch.sin(t) + (0.5 - 50.0 * c) * torch.exp(-50.0 * t)
    assert torch.allclose(fast.u[:, 0], x, rtol=1e-6, atol=1e-8)


def test_a_users_own_jacobian_keeps_the_torch_function():
    model = _rober_model(fixed=list(ROBER_RATES))
    f = _Counted(model.rhs)

    def jac(t, u, p):
        return model.rhs.make_jac()(t, u, p)

    prob = ub.ODEProblem(f, [1.0, 0.0, 0.0], (0.0, 10.0), model.param_tensors(), jac=jac)
    sol = ub.solve(prob, "Rodas5P", rtol=1e-6, atol=1e-10)
    assert f.calls > sol.stats["nsteps"]


def test_learnable_and_positive_parameters_reach_the_numpy_functions():
    """A model with learnable (and softplus-stored) rates, solved without a graph, equals
    the same model with the rates fixed; with a graph it differentiates (the torch path)."""
    learn = _rober_model(positive=["k2"])
    fixed = _rober_model(fixed=list(ROBER_RATES))
    kw = {"saveat": [1.0, 100.0], "rtol": 1e-8, "atol": 1e-12}
    with torch.no_grad():
        a = ub.solve(learn.problem([1.0, 0.0, 0.0], (0.0, 100.0)), "Rodas5P", **kw)
    b = ub.solve(fixed.problem([1.0, 0.0, 0.0], (0.0, 100.0)), "Rodas5P", **kw)
    assert torch.allclose(a.u, b.u, rtol=1e-9, atol=1e-16)
    g = ub.solve(learn.problem([1.0, 0.0, 0.0], (0.0, 100.0)), "Rodas5P", **kw)
    (grad,) = torch.autograd.grad(g.u[-1, 2], learn.params["k1"])
    assert torch.isfinite(grad) and grad != 0
    assert torch.allclose(g.u.detach(), b.u, rtol=1e-7, atol=1e-14)


def test_an_equation_model_of_rober_matches_the_reference_at_1e11():
    model = _rober_model(fixed=list(ROBER_RATES))
    prob = model.problem([1.0, 0.0, 0.0], (0.0, 1e11))
    sol = ub.solve(prob, "Rodas5P", saveat=[1e11], rtol=1e-8, atol=1e-20, max_steps=10**6)
    ref = [2.083340149701255e-08, 8.333360770334713e-14, 0.9999999791665050]
    ref = torch.tensor(ref, dtype=torch.float64)
    rel = ((sol.u[-1] - ref) / ref).abs().max().item()
    assert sol.success and rel <= 1e-4, rel


def test_the_generated_path_rejects_what_the_torch_path_rejects_and_warns_nothing():
    """x' = -k sinh(x) from x = 8: trial steps overshoot into huge sinh values; numpy
    scalars must behave as torch does there (IEEE, rejected steps), without warnings."""
    model = ub.UDE({"x": "-k*sinh(x)"}, params={"k": 1e3}, fixed=["k"])
    kw = {"saveat": [0.01, 1.0], "rtol": 1e-6, "atol": 1e-9}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast = ub.solve(model.problem([8.0], (0.0, 1.0)), "Rodas5P", **kw)
    f = _Counted(model.rhs, numpy=False)
    prob = ub.ODEProblem(f, [8.0], (0.0, 1.0), model.param_tensors(), jac=model.rhs.make_jac())
    slow_ = ub.solve(prob, "Rodas5P", **kw)
    assert fast.success and fast.stats["nreject"] > 0
    assert fast.stats == slow_.stats
    assert torch.allclose(fast.u, slow_.u, rtol=1e-12, atol=1e-30)
