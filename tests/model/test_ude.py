"""UDE: the model API (call, problem, sympy/LaTeX views, state_dict, replace, parts)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch
from torch import nn

from ude_bridge.model import MLP, UDE, Network
from ude_bridge.problem import ODEProblem

LV_EQUATIONS = {"x": "alpha*x + U1", "y": "-delta*y + U2"}


def lv_ude(**kw):
    """The UDE paper's Lotka-Volterra example: known alpha*x, -delta*y; U from 2->32->32->2."""
    net = MLP(["x", "y"], ["U1", "U2"], hidden=(32, 32), activation="tanh", seed=0)
    return UDE(LV_EQUATIONS, params={"alpha": 1.3, "delta": 1.8}, network=net, **kw)


def hand_written_lv_ude(model, t, u):
    alpha, delta = model.parameters_dict().values()
    U = model.networks[0](u)
    return torch.stack([alpha * u[..., 0] + U[..., 0], -delta * u[..., 1] + U[..., 1]], -1)


def test_model_call_equals_the_hand_written_right_hand_side():
    model = lv_ude()
    u = torch.rand(6, 2, dtype=torch.float64)
    torch.testing.assert_close(model(0.0, u), hand_written_lv_ude(model, 0.0, u))
    torch.testing.assert_close(model(0.0, u[0]), hand_written_lv_ude(model, 0.0, u[0]))


def test_problem_holds_the_functional_rhs_and_the_model_tensors():
    model = lv_ude()
    prob = model.problem([0.44, 4.6], (0.0, 1.0))
    assert isinstance(prob, ODEProblem)
    assert prob.f is model.rhs
    assert all(a is b for a, b in zip(prob.params, model.param_tensors(), strict=True))
    assert prob.params[0] is model.params["alpha"]
    assert prob.u0.dtype == torch.float64
    u = torch.rand(3, 2, dtype=torch.float64)
    torch.testing.assert_close(prob.f(torch.tensor(0.0), u, prob.params), model(0.0, u))


def test_gradients_flow_from_the_functional_rhs_to_the_model_parameters():
    model = lv_ude(positive=("alpha",))
    prob = model.problem(torch.ones(2, dtype=torch.float64), (0.0, 1.0))
    out = prob.f(torch.tensor(0.0, dtype=torch.float64), prob.u0, prob.params).sum()
    out.backward()
    assert model.params["alpha"].grad is not None
    assert model.params["delta"].grad is not None
    assert all(p.grad is not None for p in model.networks[0].parameters())


def test_gradients_with_respect_to_the_parameter_tuple_match_autograd_grad():
    model = lv_ude()
    p = model.param_tensors()
    u = torch.rand(4, 2, dtype=torch.float64)
    grads = torch.autograd.grad(model.rhs(torch.tensor(0.0), u, p).sum(), p)
    assert len(grads) == len(p) == 2 + 6
    assert grads[0].shape == () and grads[2].shape == (32, 2)


def test_positive_parameters_are_stored_raw_and_reported_as_values():
    model = lv_ude(positive=("alpha",))
    assert model.parameters_dict()["alpha"] == pytest.approx(1.3, rel=1e-14)
    assert float(model.params["alpha"].detach()) == pytest.approx(np.log(np.expm1(1.3)), rel=1e-14)
    with torch.no_grad():
        model.params["alpha"].fill_(-50.0)
    assert model.parameters_dict()["alpha"] > 0


def test_fixed_parameters_are_buffers_not_trainable():
    model = lv_ude(fixed=("delta",))
    names = {n for n, _ in model.named_parameters()}
    assert "params.alpha" in names and not any("delta" in n for n in names)
    assert "fixed_params.delta" in dict(model.named_buffers())
    assert model.param_tensors()[1] is model.fixed_params.delta


def test_to_sympy_uses_current_values_and_networks_as_functions():
    model = lv_ude()
    x, y = sympy.symbols("x y")
    U1, U2 = sympy.Function("U1"), sympy.Function("U2")
    eqs = model.to_sympy()
    assert eqs["x"] == sympy.Float(1.3) * x + U1(x, y)
    assert eqs["y"] == -sympy.Float(1.8) * y + U2(x, y)
    assert model.to_sympy(values=False)["x"] == sympy.Symbol("alpha") * x + U1(x, y)


def test_to_latex_writes_one_aligned_line_per_state():
    tex = lv_ude().to_latex(values=False)
    assert tex.startswith("\\begin{aligned}") and tex.endswith("\\end{aligned}")
    assert "\\frac{dx}{dt} &= \\alpha x + U_{1}{\\left(x,y \\right)}" in tex
    assert tex.count("&=") == 2


def test_state_dict_round_trip_restores_the_same_function():
    model = lv_ude(positive=("alpha",), fixed=("delta",))
    with torch.no_grad():
        model.params["alpha"].add_(0.3)
        model.networks[0].layers[1].weight.mul_(1.7)
        model.networks[0].set_input_range([0.0, 0.0], [5.0, 5.0])
    other = lv_ude(positive=("alpha",), fixed=("delta",))
    u = torch.rand(5, 2, dtype=torch.float64)
    assert not torch.allclose(other(0.0, u), model(0.0, u))
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other(0.0, u), model(0.0, u), rtol=0, atol=0)


def test_changing_input_scaling_in_place_regenerates_the_function():
    model = lv_ude()
    u = torch.rand(5, 2, dtype=torch.float64) * 4
    before = model(0.0, u)
    model.scale_inputs_from(torch.zeros(5), u)
    assert "_c[0]" in model.rhs.source
    net = model.networks[0]
    U = net(u)
    expected = torch.stack([1.3 * u[:, 0] + U[:, 0], -1.8 * u[:, 1] + U[:, 1]], -1)
    torch.testing.assert_close(model(0.0, u), expected)
    assert not torch.allclose(before, expected)


def test_replace_substitutes_a_network_output_and_keeps_the_rest():
    model = lv_ude()
    new = model.replace(U1="-0.9*x*y")
    x, y = sympy.symbols("x y")
    assert new.to_sympy()["x"] == sympy.Float(1.3) * x - sympy.Float(0.9) * x * y
    assert "U2" in str(new.to_sympy()["y"])
    u = torch.rand(4, 2, dtype=torch.float64)
    U = model.networks[0](u)
    torch.testing.assert_close(new(0.0, u)[:, 1], -1.8 * u[:, 1] + U[:, 1])
    assert new.networks[0] is not model.networks[0]


def test_replacing_every_output_drops_the_network_and_may_add_parameters():
    model = lv_ude()
    new = model.replace({"U1": "-beta*x*y"}, U2="gamma*x*y", params={"beta": 0.9, "gamma": 0.8})
    assert len(new.networks) == 0
    assert new.parameters_dict() == pytest.approx(
        {"alpha": 1.3, "delta": 1.8, "beta": 0.9, "gamma": 0.8}
    )
    assert len(new.param_tensors()) == 4


def test_known_and_network_parts_add_up_along_a_trajectory():
    model = lv_ude()
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    u = torch.rand(11, 2, dtype=torch.float64)
    known = model.known_part(t, u)
    torch.testing.assert_close(known, torch.stack([1.3 * u[:, 0], -1.8 * u[:, 1]], -1))
    torch.testing.assert_close(known + model.network_part(t, u), model(t, u))
    outs = model.network_outputs(t, u)
    torch.testing.assert_close(outs["U1"], model.networks[0](u)[:, 0])
    assert outs["U2"].shape == (11,)


def test_system_exports_current_values_weights_and_layout():
    model = lv_ude(positive=("alpha",))
    system = model.system()
    assert [str(s) for s in system.states] == ["x", "y"]
    assert system.param_values == pytest.approx((1.3, 1.8))
    assert system.positive == {"alpha"}
    flat = torch.cat([p.detach().reshape(-1) for p in model.param_tensors()])
    np.testing.assert_allclose(system.flat_parameters(), flat.numpy(), rtol=1e-15)


def test_float32_models_work_end_to_end():
    model = lv_ude(dtype=torch.float32)
    assert model.dtype == torch.float32
    out = model(0.0, torch.rand(3, 2))
    assert out.dtype == torch.float32
    model64 = lv_ude()
    model64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    u = torch.rand(3, 2)
    torch.testing.assert_close(
        model(0.0, u).double(), model64(0.0, u.double()), rtol=1e-5, atol=1e-5
    )
    model.double()
    assert model(0.0, u.double()).dtype == torch.float64


def test_time_dependent_equations_with_callable_and_data_inputs():
    model = UDE(
        {"x": "-k*x + F + G*t"},
        params={"k": 0.5},
        inputs={"F": torch.sin, "G": ([0.0, 1.0, 2.0], [0.0, 10.0, 0.0])},
    )
    u = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    t = torch.tensor([[0.0], [0.5], [1.5]], dtype=torch.float64)
    G = torch.tensor([0.0, 5.0, 5.0], dtype=torch.float64)
    expected = -0.5 * u[:, 0] + torch.sin(t[:, 0]) + G * t[:, 0]
    torch.testing.assert_close(model(t, u)[:, 0], expected)
    assert model.system().input_data[1] is not None and model.system().input_data[0] is None
    # beyond the data the input stays at its end value
    torch.testing.assert_close(
        model(5.0, torch.zeros(1, dtype=torch.float64)),
        torch.tensor(
            [torch.sin(torch.tensor(5.0, dtype=torch.float64)).item()], dtype=torch.float64
        ),
    )


def test_several_networks_and_expression_inputs():
    a = MLP(["x*y"], ["U1"], hidden=(4,), seed=1, name="interaction")
    b = MLP(["t", "y"], ["U2"], hidden=(4,), seed=2, activation="rbf")
    model = UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2*y"},
        params={"alpha": 1.3, "delta": 1.8},
        network=[a, b],
    )
    u = torch.rand(5, 2, dtype=torch.float64)
    t = torch.linspace(0, 1, 5, dtype=torch.float64)[:, None]
    U1 = a((u[:, 0] * u[:, 1])[:, None])[:, 0]
    U2 = b(torch.stack([t[:, 0], u[:, 1]], -1))[:, 0]
    expected = torch.stack([1.3 * u[:, 0] + U1, -1.8 * u[:, 1] + U2 * u[:, 1]], -1)
    torch.testing.assert_close(model(t, u), expected)
    assert [n.name for n in model.system().networks] == ["interaction", "NN2"]


def test_a_users_own_module_can_be_a_network():
    module = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    model = UDE(
        LV_EQUATIONS,
        params={"alpha": 1.3, "delta": 1.8},
        network=Network(module, inputs=["x", "y"], outputs=["U1", "U2"]),
    )
    u = torch.rand(4, 2, dtype=torch.float64)
    U = module(u)
    expected = torch.stack([1.3 * u[:, 0] + U[:, 0], -1.8 * u[:, 1] + U[:, 1]], -1)
    torch.testing.assert_close(model(0.0, u), expected)
    p = tuple(t.detach().clone().requires_grad_() for t in model.param_tensors())
    grads = torch.autograd.grad(model.rhs(torch.tensor(0.0), u, p).sum(), p)
    assert grads[2].shape == (8, 2)
    assert model.system().networks[0].kind == "module"


def test_the_functional_rhs_works_under_torch_func_jacobians():
    model = UDE(
        {"x": "alpha*x - beta*x*y", "y": "delta*x*y - gamma*y"},
        params={"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8},
    )
    p = model.param_tensors()
    u = torch.tensor([[1.0, 2.0], [0.5, 0.3]], dtype=torch.float64)
    t = torch.zeros(2, 1, dtype=torch.float64)
    jac = torch.func.vmap(torch.func.jacrev(lambda t, u: model.rhs(t, u, p), argnums=1))(t, u)
    x, y = u[:, 0], u[:, 1]
    expected = torch.stack(
        [
            torch.stack([1.3 - 0.9 * y, -0.9 * x], -1),
            torch.stack([1.8 * y, 1.8 * x - 0.8], -1),
        ],
        -2,
    )
    torch.testing.assert_close(jac, expected)


@pytest.mark.gpu
def test_a_model_with_scaling_and_data_inputs_runs_on_cuda():
    net = MLP(["x", "F"], ["U1"], hidden=(8,), input_range=(0.0, 2.0), output_scale=0.5)
    model = UDE(
        {"x": "-k*x + U1", "y": "F*x"},
        params={"k": 0.3},
        network=net,
        inputs={"F": ([0.0, 1.0, 2.0], [1.0, 3.0, 2.0])},
        positive=("k",),
    )
    u = torch.rand(16, 2, dtype=torch.float64)
    t = torch.linspace(0, 2, 16, dtype=torch.float64)[:, None]
    expected = model(t, u)
    model.to("cuda")
    got = model(t.cuda(), u.cuda())
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_model_without_parameters_keeps_its_dtype(dtype):
    model = UDE({"x": "-50*(x - cos(t))", "y": "x - y"}, dtype=dtype)
    assert model.param_tensors() == ()
    assert model.dtype == dtype and model.problem([0.5, 0.0], (0.0, 1.0)).u0.dtype == dtype
