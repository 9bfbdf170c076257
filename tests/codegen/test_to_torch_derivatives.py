"""The generated vector-Jacobian product equals autograd's, for every supported model form.

Reference: one recorded pass of the generated right-hand side and ``torch.autograd.grad``
with the same cotangent. Both evaluate the same float64 formulas in a different order, so
they agree to a few ulps.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch

import ude_bridge as ub
from tests.codegen.test_to_torch import (
    MODELS,
    make_system,
    net_params,
    random_states,
)
from tests.codegen.test_to_torch import mlp_spec as _mlp_spec
from ude_bridge.codegen.parse import parse_expression
from ude_bridge.codegen.system import ACTIVATIONS, NetworkSpec
from ude_bridge.codegen.to_torch import torch_rhs
from ude_bridge.codegen.to_torch_derivatives import torch_jac, torch_vjp

TOL = {"rtol": 1e-12, "atol": 1e-12}


def mlp_spec(inputs, outputs, sizes, activation, **scaling):
    """`mlp_spec` of test_to_torch with inputs parsed and outputs as symbols."""
    table = {n: sympy.Symbol(n) for n in ("x", "y", "z", "t")}
    ins = [parse_expression(e, table, where="test") for e in inputs]
    outs = [sympy.Symbol(o) for o in outputs]
    return _mlp_spec(ins, outs, sizes, activation, **scaling)


def scaled_net(activation):
    """An MLP on expressions of states and time, with input shift/scale and output scale."""
    return mlp_spec(
        ["x*y", "sin(t)", "z"],
        ["U1", "U2"],
        (3, 4, 2),
        activation,
        shift=np.array([0.5, 0.0, -1.0]),
        scale=np.array([2.0, 0.5, 3.0]),
        out=np.array([0.1, 4.0]),
    )


def reference(f, t, u, p, v):
    """``(f, v^T df/du, v^T df/dp)`` by autograd (None where f does not use an entry)."""
    uu = u.detach().clone().requires_grad_(True)
    ps = [x.detach().clone().requires_grad_(True) for x in p]
    out = f(t, uu, tuple(ps))
    grads = torch.autograd.grad(out, [uu, *ps], v, allow_unused=True)
    gu = torch.zeros_like(u) if grads[0] is None else grads[0]
    return out.detach(), gu, grads[1:]


def assert_matches(system, shape, *, t=0.37, dtype=torch.float64, tol=TOL, seed=0):
    f, vjp = torch_rhs(system), torch_vjp(system)
    assert vjp is not None
    u = torch.tensor(random_states(system, shape, seed=seed), dtype=dtype)
    v = torch.tensor(np.random.default_rng(seed + 1).normal(size=u.shape), dtype=dtype)
    p = net_params(system, dtype)
    tt = torch.tensor(t, dtype=torch.float64)
    f_ref, gu_ref, gp_ref = reference(f, tt, u, p, v)
    f_got, gu_got, gp_got = vjp(tt, u, p, v)
    torch.testing.assert_close(f_got, f_ref, **tol)
    torch.testing.assert_close(gu_got, gu_ref, **tol)
    assert len(gp_got) == len(p)
    for k, (got, want) in enumerate(zip(gp_got, gp_ref, strict=True)):
        if k in vjp.without_grad:
            assert got is None
            continue
        want = torch.zeros_like(p[k]) if want is None else want
        assert got.shape == p[k].shape, k
        torch.testing.assert_close(got, want, **tol)


@pytest.mark.parametrize("name", [n for n in MODELS if n != "many_functions"])
@pytest.mark.parametrize("shape", [(), (7,), (3, 4)])
def test_known_physics_matches_autograd(name, shape):
    assert_matches(MODELS[name], shape)


def test_a_derivative_without_torch_translation_gives_none():
    # d max(y, 0.5)/dy is a Heaviside step: no generated code, callers use autograd
    assert torch_vjp(MODELS["many_functions"]) is None


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(), (5,)])
def test_mlp_of_every_activation_matches_autograd(activation, shape):
    net = mlp_spec(["x", "y"], ["U1", "U2"], (2, 6, 5, 2), activation)
    system = make_system(
        ["x", "y"],
        {"a": 1.3, "d": 1.8},
        {"x": "a*x + U1", "y": "-d*y + x*U2"},
        networks=[net],
    )
    assert_matches(system, shape)


@pytest.mark.parametrize("shape", [(), (6,), (2, 3)])
def test_expression_inputs_scaling_and_nonlinear_use_of_outputs(shape):
    # inputs that are expressions of states and time, input shift/scale, output scale,
    # an output used nonlinearly and one used in two equations, a positive parameter
    net = scaled_net("tanh")
    system = make_system(
        ["x", "y", "z"],
        {"k": 0.7, "c": 2.0},
        {"x": "-k*x + U1^2", "y": "exp(-U2)*y - c*x", "z": "U1*U2 + sin(z)"},
        networks=[net],
        positive=["k"],
    )
    assert_matches(system, shape)


def test_network_on_time_only_and_a_second_unused_network():
    used = mlp_spec(["t"], ["U1"], (1, 4, 1), "sigmoid")
    unused = NetworkSpec(
        "NN2",
        (sympy.Symbol("x"),),
        (sympy.Symbol("U9"),),
        ((np.ones((3, 1)), np.zeros(3)), (np.ones((1, 3)), np.zeros(1))),
        "tanh",
        0.0,
        1.0,
        1.0,
    )
    system = make_system(["x"], {"a": 0.5}, {"x": "-a*x + U1"}, networks=[used, unused])
    vjp = torch_vjp(system)
    p = net_params(system)
    u, v = torch.tensor([0.8], dtype=torch.float64), torch.tensor([1.5], dtype=torch.float64)
    _, _, gp = vjp(0.2, u, p, v)
    assert all(torch.count_nonzero(g) == 0 for g in gp[-4:])  # NN2's W0, b0, W1, b1
    assert_matches(system, (4,))


def test_batched_time_and_forcing_inputs():
    system = make_system(
        ["x", "y"],
        {"a": 0.4},
        {"x": "-a*x*F + t", "y": "F*y - x"},
        inputs=["F"],
    )
    forcing = [lambda t: torch.cos(t)]
    f = torch_rhs(system, inputs=forcing)
    vjp = torch_vjp(system, inputs=forcing)
    u = torch.tensor(random_states(system, (5,)))
    v = torch.ones_like(u)
    ts = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)[:, None]
    f_ref, gu_ref, gp_ref = reference(f, ts, u, net_params(system), v)
    f_got, gu_got, gp_got = vjp(ts, u, net_params(system), v)
    torch.testing.assert_close(f_got, f_ref, **TOL)
    torch.testing.assert_close(gu_got, gu_ref, **TOL)
    torch.testing.assert_close(gp_got[0], gp_ref[0], **TOL)


def test_float32():
    net = mlp_spec(["x", "y"], ["U1", "U2"], (2, 8, 2), "gelu")
    system = make_system(["x", "y"], {"a": 1.0}, {"x": "a*x + U1", "y": "U2"}, networks=[net])
    assert_matches(system, (3,), dtype=torch.float32, tol={"rtol": 1e-5, "atol": 1e-5})


def test_fixed_parameters_get_no_cotangent_and_module_networks_none():
    model = ub.UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        fixed=("delta",),
        network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(4,), seed=0),
    )
    vjp = model.rhs.make_vjp()
    assert vjp.without_grad == {1}
    assert model.rhs.make_vjp() is vjp  # generated once
    module = torch.nn.Sequential(torch.nn.Linear(2, 2, dtype=torch.float64))
    opaque = ub.UDE(
        {"x": "U1", "y": "U2"},
        network=ub.Network(module, inputs=["x", "y"], outputs=["U1", "U2"]),
    )
    assert opaque.rhs.make_vjp() is None
    assert opaque.rhs.make_jac() is None


def test_a_model_with_a_module_network_falls_back_to_autograd_in_stiff_solves_and_adjoints():
    torch.manual_seed(0)
    module = torch.nn.Sequential(
        torch.nn.Linear(2, 4, dtype=torch.float64),
        torch.nn.Tanh(),
        torch.nn.Linear(4, 2, dtype=torch.float64),
    )
    model = ub.UDE(
        {"x": "-k*x + U1", "y": "k*x - 50*y + U2"},
        params={"k": 5.0},
        network=ub.Network(module, inputs=["x", "y"], outputs=["U1", "U2"]),
    )
    ts = torch.linspace(0.0, 1.0, 6, dtype=torch.float64)
    grads = {}
    for sensealg in ("backprop", "adjoint"):
        model.zero_grad()
        sol = ub.solve(
            model.problem([1.0, 0.5], (0.0, 1.0)),
            "Rodas5P",
            saveat=ts,
            rtol=1e-9,
            atol=1e-12,
            sensealg=sensealg,
        )
        assert sol.success
        (sol.u**2).sum().backward()
        grads[sensealg] = [p.grad.clone() for p in model.param_tensors() if p.requires_grad]
    for a, b in zip(grads["adjoint"], grads["backprop"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)


def _lv_ude(seed=0):
    return ub.UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        positive=("delta",),
        network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(8, 8), activation="tanh", seed=seed),
    )


def _gradients(model, f, sensealg):
    model.zero_grad()
    ts = torch.linspace(0.0, 2.0, 11, dtype=torch.float64)
    u0 = torch.tensor([0.44249296, 4.6280594], dtype=torch.float64, requires_grad=True)
    prob = ub.ODEProblem(f, u0, (0.0, 2.0), params=model.param_tensors())
    sol = ub.solve(prob, "Tsit5", saveat=ts, rtol=1e-9, atol=1e-9, sensealg=sensealg)
    (sol.u**2).sum().backward()
    return [u0.grad] + [p.grad.clone() for p in model.param_tensors() if p.requires_grad]


def test_adjoint_with_the_generated_vjp_uses_no_autograd_and_matches(monkeypatch):
    model = _lv_ude()
    backprop = _gradients(model, model.rhs, "backprop")
    autograd_adjoint = _gradients(model, lambda t, u, p: model.rhs(t, u, p), "adjoint")

    def forbidden(*args, **kwargs):
        raise AssertionError("the generated vjp should make autograd.grad unnecessary")

    monkeypatch.setattr(torch.autograd, "grad", forbidden)
    generated = _gradients(model, model.rhs, "adjoint")
    for g, a, b in zip(generated, autograd_adjoint, backprop, strict=True):
        torch.testing.assert_close(g, a, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(g, b, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------ Jacobian
def jacobian_reference(f, t, u, p):
    """``(..., n, n)`` by autograd, row by row."""
    uu = u.detach().clone().requires_grad_(True)
    out = f(t, uu, p)
    if not out.requires_grad:  # f does not depend on u
        return torch.zeros(*u.shape, u.shape[-1], dtype=u.dtype)
    rows = [
        torch.autograd.grad(out[..., i].sum(), uu, retain_graph=True, allow_unused=True)[0]
        for i in range(u.shape[-1])
    ]
    rows = [torch.zeros_like(u) if r is None else r for r in rows]
    return torch.stack(rows, -2)


def assert_jacobian_matches(system, shape, *, inputs=(), dtype=torch.float64, tol=TOL):
    f, jac = torch_rhs(system, inputs=inputs), torch_jac(system, inputs=inputs)
    assert jac is not None
    u = torch.tensor(random_states(system, shape), dtype=dtype)
    p = net_params(system, dtype)
    t = torch.tensor(0.37, dtype=torch.float64)
    got = jac(t, u, p)
    assert got.shape == (*shape, system.n_states, system.n_states)
    torch.testing.assert_close(got, jacobian_reference(f, t, u, p), **tol)


@pytest.mark.parametrize("name", [n for n in MODELS if n != "many_functions"])
@pytest.mark.parametrize("shape", [(), (7,), (3, 4)])
def test_jacobian_of_known_physics_matches_autograd(name, shape):
    assert_jacobian_matches(MODELS[name], shape)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(), (5,)])
def test_jacobian_with_an_mlp_of_every_activation(activation, shape):
    net = mlp_spec(["x", "y"], ["U1", "U2"], (2, 6, 5, 2), activation)
    system = make_system(
        ["x", "y"], {"a": 1.3, "d": 1.8}, {"x": "a*x + U1", "y": "-d*y + U2"}, networks=[net]
    )
    assert_jacobian_matches(system, shape)


@pytest.mark.parametrize("shape", [(), (6,), (2, 3)])
def test_jacobian_with_expression_inputs_scaling_and_nonlinear_outputs(shape):
    net = scaled_net("softplus")
    reordered = mlp_spec(["y", "x"], ["U3"], (2, 3, 1), "tanh")
    system = make_system(
        ["x", "y", "z"],
        {"k": 0.7, "c": 2.0},
        {"x": "-k*x + U1^2", "y": "exp(-U2)*y - c*x + U3", "z": "U1*U2 + sin(z)"},
        networks=[net, reordered],
        positive=["k"],
    )
    assert_jacobian_matches(system, shape)


def test_jacobian_with_forcing_and_a_mismatched_output_count():
    # one output feeding two equations with constant coefficients: dg/dU = [[2], [-1]]
    net = mlp_spec(["x", "y"], ["U1"], (2, 5, 1), "gelu")
    system = make_system(
        ["x", "y"],
        {"a": 0.4},
        {"x": "-a*x*F + 2*U1", "y": "F*y - U1"},
        networks=[net],
        inputs=["F"],
    )
    assert_jacobian_matches(system, (4,), inputs=[lambda t: torch.cos(t)])


def test_jacobian_float32_and_unsupported_forms():
    net = mlp_spec(["x", "y"], ["U1", "U2"], (2, 8, 2), "tanh")
    system = make_system(["x", "y"], {"a": 1.0}, {"x": "a*x + U1", "y": "U2"}, networks=[net])
    assert_jacobian_matches(system, (3,), dtype=torch.float32, tol={"rtol": 1e-5, "atol": 1e-5})
    assert torch_jac(MODELS["many_functions"]) is None


def _stiff_ude():
    return ub.UDE(
        {"x": "-k1*x + U1", "y": "k1*x - k2*y + U2"},
        params={"k1": 50.0, "k2": 1000.0},
        positive=("k2",),
        network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(6,), activation="tanh", seed=1),
    )


@pytest.mark.parametrize("method", ["Rodas5P", "Rosenbrock23"])
def test_stiff_solve_of_a_model_uses_its_generated_jacobian(method, monkeypatch):
    model = _stiff_ude()
    rhs = model.rhs
    jac = rhs.make_jac()
    calls = []

    def counting(t, u, p):
        calls.append(1)
        return jac(t, u, p)

    monkeypatch.setattr(rhs, "make_jac", lambda: counting)
    ts = torch.linspace(0.0, 1.0, 6, dtype=torch.float64)

    def run(f):
        prob = ub.ODEProblem(f, [1.0, 0.0], (0.0, 1.0), params=model.param_tensors())
        sol = ub.solve(prob, method, saveat=ts, rtol=1e-8, atol=1e-10)
        (sol.u**2).sum().backward()
        grads = [p.grad.clone() for p in model.param_tensors() if p.requires_grad]
        model.zero_grad()
        return sol, grads

    generated, g_generated = run(rhs)
    assert len(calls) == generated.stats["njac"] > 0
    autograd, g_autograd = run(lambda t, u, p: rhs(t, u, p))  # no make_jac: autograd
    torch.testing.assert_close(generated.u, autograd.u, rtol=1e-9, atol=1e-14)
    for a, b in zip(g_generated, g_autograd, strict=True):  # backprop through the stiff steps
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("batch", [False, True])
def test_the_interpolating_adjoint_uses_the_generated_derivatives_and_matches(batch, monkeypatch):
    model = _stiff_ude()
    rhs = model.rhs
    jac, vjp = rhs.make_jac(), rhs.make_vjp()
    calls = {"jac": 0, "vjp": 0}

    def counting(name, fn):
        def wrapped(*args):
            calls[name] += 1
            return fn(*args)

        wrapped.without_grad = getattr(fn, "without_grad", frozenset())
        return wrapped

    counted = {"jac": counting("jac", jac), "vjp": counting("vjp", vjp)}
    monkeypatch.setattr(rhs, "make_jac", lambda: counted["jac"])
    monkeypatch.setattr(rhs, "make_vjp", lambda: counted["vjp"])
    u0 = torch.tensor([[1.0, 0.0], [0.5, 0.2]] if batch else [1.0, 0.0], dtype=torch.float64)
    ts = torch.linspace(0.0, 1.0, 6, dtype=torch.float64)

    def gradients(f):
        prob = ub.ODEProblem(f, u0, (0.0, 1.0), params=model.param_tensors())
        sol = ub.solve(prob, "Rodas5P", saveat=ts, rtol=1e-8, atol=1e-10, sensealg="adjoint")
        (sol.u**2).sum().backward()
        grads = [p.grad.clone() for p in model.param_tensors() if p.requires_grad]
        model.zero_grad()
        return grads

    generated = gradients(rhs)
    assert calls["vjp"] > 0 and calls["jac"] > 0
    by_autograd = gradients(lambda t, u, p: rhs(t, u, p))  # no make_jac / make_vjp
    for a, b in zip(generated, by_autograd, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-12)
