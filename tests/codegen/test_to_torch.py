"""Generated torch code agrees with sympy.lambdify, batched and not, with gradients."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ude_bridge.codegen.parse import parse_expression
from ude_bridge.codegen.system import NetworkSpec, SymbolicSystem
from ude_bridge.codegen.to_torch import torch_rhs
from ude_bridge.errors import InputError

# 1e-12: the generated code and lambdify evaluate the same float64 formulas, possibly in a
# different order, so they differ only by a few ulps of O(1..100) values.
RTOL = ATOL = 1e-12


def make_system(states, params, equations, networks=(), inputs=(), positive=()):
    """A SymbolicSystem from strings: states/params/inputs names, {state: text}."""
    names = [*states, "t", *params, *inputs] + [str(o) for n in networks for o in n.outputs]
    table = {n: sympy.Symbol(n) for n in names}
    eqs = tuple(parse_expression(equations[s], table, where="test") for s in states)
    return SymbolicSystem(
        states=tuple(table[s] for s in states),
        time=table["t"],
        params=tuple(table[p] for p in params),
        param_values=tuple(params.values()),
        equations=eqs,
        networks=tuple(networks),
        inputs=tuple(table[i] for i in inputs),
        positive=frozenset(positive),
    )


MODELS = {
    "lotka_volterra": make_system(
        ["x", "y"],
        {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8},
        {"x": "alpha*x - beta*x*y", "y": "delta*x*y - gamma*y"},
    ),
    "sir": make_system(
        ["S", "I", "R"],
        {"beta": 0.3, "gamma": 0.1, "N": 1000.0},
        {"S": "-beta*S*I/N", "I": "beta*S*I/N - gamma*I", "R": "gamma*I"},
    ),
    "pendulum": make_system(
        ["theta", "omega"],
        {"g": 9.81, "L": 1.5, "b": 0.2},
        {"theta": "omega", "omega": "-g/L*sin(theta) - b*omega"},
    ),
    "exp_tanh_abs": make_system(
        ["x", "y"],
        {"a": 0.7, "c": 1.1},
        {"x": "exp(-a*x)*tanh(y) - abs(x - y)^1.5", "y": "sqrt(abs(x) + 1) - log(1 + x^2) + c*t"},
    ),
    "many_functions": make_system(
        ["x", "y", "z"],
        {"k": 2.0},
        {
            "x": "sigmoid(x) + max(y, 0.5) - min(x, z) + atan2(y, 2.0) + cosh(z/3)",
            "y": "sign(x)*y^-2 + 1/(x^2 + 1) + pow(k, y) - 2^z + exp(2)",
            "z": "-x*y*z/k + atan(x) + asinh(y) + 3",
        },
    ),
    "constant_and_time_only": make_system(
        ["x", "y", "z"],
        {"k": 2.0},
        {"x": "0", "y": "k*sin(t)", "z": "-k"},
    ),
}


def lambdified(system):
    args = [*system.states, system.time, *system.params]
    return sympy.lambdify(args, list(system.equations), modules="numpy")


def params_of(system, dtype=torch.float64):
    return tuple(torch.tensor(v, dtype=dtype) for v in system.stored_values())


def random_states(system, shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 2.0, size=(*shape, system.n_states))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("batch", [(), (7,), (3, 4)])
def test_generated_rhs_equals_lambdify_on_random_states(name, batch):
    system = MODELS[name]
    f = torch_rhs(system)
    u = random_states(system, batch)
    t = 0.37
    reference = lambdified(system)(*np.moveaxis(u, -1, 0), t, *system.param_values)
    reference = np.stack(np.broadcast_arrays(*reference, u[..., 0]), axis=-1)[..., :-1]
    got = f(torch.tensor(t, dtype=torch.float64), torch.tensor(u), params_of(system))
    assert got.shape == u.shape
    np.testing.assert_allclose(got.numpy(), reference, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["exp_tanh_abs", "constant_and_time_only"])
def test_batched_time_of_shape_b1_gives_each_trajectory_its_own_time(name):
    system = MODELS[name]
    f = torch_rhs(system)
    u = torch.tensor(random_states(system, (5,)))
    ts = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    batched = f(ts[:, None], u, params_of(system))
    for i in range(5):
        one = f(ts[i], u[i], params_of(system))
        torch.testing.assert_close(batched[i], one, rtol=RTOL, atol=ATOL)


def test_time_may_be_a_python_number_or_a_0_dim_tensor():
    system = MODELS["exp_tanh_abs"]
    f = torch_rhs(system)
    u = torch.tensor(random_states(system, (3,)))
    p = params_of(system)
    torch.testing.assert_close(f(0.5, u, p), f(torch.tensor(0.5, dtype=torch.float64), u, p))


@pytest.mark.parametrize("name", list(MODELS))
def test_float32_states_give_float32_derivatives(name):
    system = MODELS[name]
    f = torch_rhs(system)
    u64 = torch.tensor(random_states(system, (4,)))
    out32 = f(
        torch.tensor(0.37, dtype=torch.float64), u64.float(), params_of(system, torch.float32)
    )
    out64 = f(torch.tensor(0.37, dtype=torch.float64), u64, params_of(system))
    assert out32.dtype == torch.float32
    # float32 round-off on values of size <= ~100
    torch.testing.assert_close(out32.double(), out64, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["lotka_volterra", "sir", "pendulum", "exp_tanh_abs"])
def test_gradients_with_respect_to_parameters_pass_gradcheck(name):
    system = MODELS[name]
    f = torch_rhs(system)
    u = torch.tensor(random_states(system, (3,)), requires_grad=True)
    p = tuple(x.requires_grad_() for x in params_of(system))
    t = torch.tensor(0.3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda u, *p: f(t, u, p), (u, *p))


def test_generated_source_has_no_loop_and_one_stack():
    f = torch_rhs(MODELS["sir"])
    assert "for " not in f.source.split("def rhs")[1]
    assert f.source.count("torch.stack(") == 1
    assert "unbind" in f.source


def test_common_subexpressions_are_computed_once():
    f = torch_rhs(MODELS["lotka_volterra"])
    body = f.source.split("def rhs")[1]
    assert body.count("s0_x*s1_y") == 1


def test_positive_parameters_go_through_softplus():
    system = make_system(["x"], {"k": 2.0}, {"x": "-k*x"}, positive=["k"])
    f = torch_rhs(system)
    raw = torch.tensor(system.stored_values()[0], dtype=torch.float64)
    out = f(0.0, torch.tensor([3.0], dtype=torch.float64), (raw,))
    torch.testing.assert_close(out, torch.tensor([-6.0], dtype=torch.float64))


# ------------------------------------------------------------------ networks
def mlp_spec(inputs, outputs, sizes, activation, seed=0, **scaling):
    rng = np.random.default_rng(seed)
    weights = tuple(
        (rng.normal(size=(o, i)) / np.sqrt(i), rng.normal(size=o) * 0.1)
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    )
    return NetworkSpec(
        "NN",
        tuple(inputs),
        tuple(outputs),
        weights,
        activation,
        scaling.get("shift", 0.0),
        scaling.get("scale", 1.0),
        scaling.get("out", 1.0),
    )


def network_reference(system, u, t):
    """du/dt from numpy: NetworkSpec.evaluate + lambdify of the equations."""
    outs = {}
    for net in system.networks:
        fin = sympy.lambdify([*system.states, system.time], list(net.inputs), "numpy")
        cols = np.broadcast_arrays(*fin(*np.moveaxis(u, -1, 0), t), u[..., 0])[:-1]
        y = net.evaluate(np.stack(cols, axis=-1))
        outs.update({o: y[..., k] for k, o in enumerate(net.outputs)})
    args = [*system.states, system.time, *system.params, *outs]
    g = sympy.lambdify(args, list(system.equations), "numpy")
    vals = g(*np.moveaxis(u, -1, 0), t, *system.param_values, *outs.values())
    return np.stack(np.broadcast_arrays(*vals, u[..., 0])[:-1], axis=-1)


def ude_system(activation, inputs=("x", "y"), **scaling):
    x, y, t = sympy.symbols("x y t")
    table = {"x": x, "y": y, "t": t}
    ins = [parse_expression(s, table, where="test") for s in inputs]
    net = mlp_spec(ins, sympy.symbols("U1 U2"), (len(ins), 8, 8, 2), activation, **scaling)
    return make_system(
        ["x", "y"],
        {"alpha": 1.3, "delta": 1.8},
        {"x": "alpha*x + U1", "y": "-delta*y + U2*x"},
        networks=[net],
    )


def net_params(system, dtype=torch.float64):
    weights = [torch.tensor(a, dtype=dtype) for n in system.networks for a in n.arrays()]
    return params_of(system, dtype) + tuple(weights)


@pytest.mark.parametrize(
    "activation", ["tanh", "relu", "gelu", "softplus", "sigmoid", "silu", "rbf"]
)
@pytest.mark.parametrize("batch", [(), (6,)])
def test_networks_in_generated_code_equal_the_numpy_definition(activation, batch):
    system = ude_system(activation)
    u = random_states(system, batch)
    got = torch_rhs(system)(0.2, torch.tensor(u), net_params(system))
    np.testing.assert_allclose(got.numpy(), network_reference(system, u, 0.2), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("inputs", [("y", "x"), ("x*y", "t"), ("x", "sin(t)")])
def test_network_inputs_may_be_expressions_of_states_and_time_with_scaling(inputs):
    system = ude_system("tanh", inputs, shift=[0.5, -0.2], scale=[2.0, 0.5], out=[3.0, 0.1])
    for batch in [(), (5,)]:
        u = random_states(system, batch, seed=3)
        got = torch_rhs(system)(0.4, torch.tensor(u), net_params(system))
        np.testing.assert_allclose(
            got.numpy(), network_reference(system, u, 0.4), rtol=RTOL, atol=ATOL
        )


def test_network_input_that_is_all_states_uses_u_without_stacking():
    f = torch_rhs(ude_system("tanh"))
    assert "_h = u\n" in f.source


def test_gradients_with_respect_to_network_weights_pass_gradcheck():
    system = ude_system("rbf", ("x*y", "t"), shift=[0.5, -0.2], scale=[2.0, 0.5], out=[3.0, 0.1])
    f = torch_rhs(system)
    u = torch.tensor(random_states(system, (4,)), requires_grad=True)
    p = tuple(x.requires_grad_() for x in net_params(system))
    t = torch.linspace(0, 1, 4, dtype=torch.float64)[:, None]
    assert torch.autograd.gradcheck(lambda u, *p: f(t, u, p), (u, *p))


def test_known_part_sets_networks_to_zero_and_outputs_part_returns_them():
    system = ude_system("tanh")
    u = torch.tensor(random_states(system, (5,)))
    p = net_params(system)
    known = torch_rhs(system, part="known")(0.0, u, p)
    torch.testing.assert_close(known, torch.stack([1.3 * u[:, 0], -1.8 * u[:, 1]], -1))
    outputs = torch_rhs(system, part="outputs")(0.0, u, p)
    y = system.networks[0].evaluate(u.numpy())
    np.testing.assert_allclose(outputs.numpy(), y, rtol=RTOL, atol=ATOL)
    assert "_F.linear" not in torch_rhs(system, part="known").source


def test_forcing_inputs_are_called_with_time():
    system = make_system(["x"], {"k": 0.5}, {"x": "-k*x + F"}, inputs=["F"])
    f = torch_rhs(system, inputs=[lambda t: torch.cos(t)])
    u = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    t = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    out = f(t, u, params_of(system))
    expected = -0.5 * u[:, 0] + torch.cos(t[:, 0])
    torch.testing.assert_close(out[:, 0], expected)


def test_wrong_number_of_forcing_callables_is_refused():
    system = make_system(["x"], {"k": 0.5}, {"x": "-k*x + F"}, inputs=["F"])
    with pytest.raises(InputError, match="one callable per input"):
        torch_rhs(system)


# ------------------------------------------------------------------ property test
X, Y, K = sympy.symbols("x y k")
_leaf = st.sampled_from([X, Y, K, sympy.Integer(2), sympy.Rational(1, 3), sympy.Float(0.75)])


def _extend(children):
    unary = st.sampled_from([sympy.sin, sympy.tanh, sympy.Abs, lambda e: sympy.exp(-e * e)])
    return st.one_of(
        st.tuples(children, children).map(lambda ab: ab[0] + ab[1]),
        st.tuples(children, children).map(lambda ab: ab[0] - ab[1]),
        st.tuples(children, children).map(lambda ab: ab[0] * ab[1]),
        st.tuples(children, children).map(lambda ab: ab[0] / (1 + ab[1] ** 2)),
        st.tuples(children, st.sampled_from([2, 3, -1])).map(lambda ab: (1 + ab[0] ** 2) ** ab[1]),
        st.tuples(unary, children).map(lambda fe: fe[0](fe[1])),
        children.map(lambda e: sympy.sqrt(1 + e**2)),
    )


expressions = st.recursive(_leaf, _extend, max_leaves=10)


# derandomized: the same 40 expressions every run (CI must not flake on a rare draw)
@settings(max_examples=40, deadline=None, database=None, derandomize=True)
@given(e1=expressions, e2=expressions)
def test_random_expressions_agree_with_lambdify(e1, e2):
    system = SymbolicSystem((X, Y), sympy.Symbol("t"), (K,), (1.7,), (e1, e2))
    f = torch_rhs(system)
    u = random_states(system, (6,), seed=1) - 1.0
    ref = sympy.lambdify([X, Y, K], [e1, e2], "numpy")(u[:, 0], u[:, 1], 1.7)
    ref = np.stack(np.broadcast_arrays(*ref, u[:, 0])[:-1], axis=-1)
    got = f(0.0, torch.tensor(u), (torch.tensor(1.7, dtype=torch.float64),)).numpy()
    # a few ulps on intermediate values up to ~1e6 for nested powers
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=1e-11)
