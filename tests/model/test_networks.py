"""MLP and Network: shapes, activations, seeded initialisation, scaling, custom modules."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
import torch
from torch import nn

from ude_bridge.codegen.system import ACTIVATIONS
from ude_bridge.errors import InputError
from ude_bridge.model import MLP, Network


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mlp_maps_inputs_to_outputs_with_every_activation(activation):
    net = MLP(["x", "y"], ["U1", "U2", "U3"], hidden=(5, 4), activation=activation)
    x = torch.rand(7, 2, dtype=torch.float64)
    assert net(x).shape == (7, 3)
    assert net(x[0]).shape == (3,)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mlp_forward_equals_its_numpy_spec(activation):
    net = MLP(
        ["x", "y"],
        ["U1"],
        hidden=(6,),
        activation=activation,
        input_range=(0, 4),
        output_scale=2.5,
        seed=3,
    )
    spec = net.spec(sympy.symbols("x y"), (sympy.Symbol("U1"),), "NN")
    x = torch.rand(9, 2, dtype=torch.float64) * 4
    np.testing.assert_allclose(net(x).detach().numpy(), spec.evaluate(x.numpy()), rtol=1e-13)


def test_mlp_initialisation_is_seeded_and_independent_of_the_global_rng():
    torch.manual_seed(123)
    a = MLP(["x"], ["U"], hidden=(8, 8), seed=7)
    torch.manual_seed(456)
    b = MLP(["x"], ["U"], hidden=(8, 8), seed=7)
    c = MLP(["x"], ["U"], hidden=(8, 8), seed=8)
    for ta, tb in zip(a.weight_tensors(), b.weight_tensors(), strict=True):
        torch.testing.assert_close(ta, tb, rtol=0, atol=0)
    assert not torch.equal(a.weight_tensors()[0], c.weight_tensors()[0])


def test_mlp_weights_are_glorot_uniform_and_biases_zero():
    net = MLP(["x", "y"], ["U"], hidden=(50,), seed=0)
    W0, b0 = (w.detach() for w in net.weight_tensors()[:2])
    bound = np.sqrt(6 / (2 + 50))
    assert float(W0.abs().max()) <= bound
    assert float(W0.abs().max()) > 0.8 * bound
    assert torch.all(b0 == 0)


def test_input_range_maps_to_minus_one_one():
    net = MLP(["x", "y"], ["U"], hidden=(3,), input_range=[(0.0, 10.0), (-2.0, 2.0)])
    torch.testing.assert_close(net.input_shift, torch.tensor([5.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(net.input_scale, torch.tensor([5.0, 2.0], dtype=torch.float64))
    net.set_input_range([0.0, 0.0], [2.0, 4.0])
    torch.testing.assert_close(net.input_shift, torch.tensor([1.0, 2.0], dtype=torch.float64))


def test_empty_hidden_is_a_linear_map():
    net = MLP(["x"], ["U"], hidden=(), activation="tanh")
    assert len(net.layers) == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"activation": "tahn"}, "Did you mean 'tanh'"),
        ({"hidden": (0, 3)}, "hidden"),
        ({"hidden": (2.5,)}, "hidden"),
        ({"input_range": (1.0, 1.0)}, "lo < hi"),
        ({"input_scale": 0.0}, "nonzero"),
        ({"input_shift": float("nan")}, "finite"),
        ({"output_scale": [1.0, 2.0, 3.0]}, "output_scale"),
        ({"input_range": (0, 1), "input_shift": 1.0}, "either"),
    ],
)
def test_bad_mlp_arguments_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        MLP(["x", "y"], ["U1", "U2"], **kwargs)


def test_mlp_needs_inputs_and_outputs():
    with pytest.raises(InputError, match="inputs"):
        MLP([], ["U"])
    with pytest.raises(InputError, match="outputs"):
        MLP(["x"], [])


class _Quadratic(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor([[1.0, -2.0]], dtype=torch.float64))

    def forward(self, x):
        return (x * x) @ self.a.T


def test_network_wraps_a_module_and_calls_it_with_given_weights():
    net = Network(_Quadratic(), inputs=["x", "y"], outputs=["U"])
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    torch.testing.assert_close(net(x), torch.tensor([[-7.0]], dtype=torch.float64))
    other = (torch.tensor([[3.0, 1.0]], dtype=torch.float64),)
    torch.testing.assert_close(net.call_with(x, other), torch.tensor([[7.0]], dtype=torch.float64))
    spec = net.spec(sympy.symbols("x y"), (sympy.Symbol("U"),), "Q")
    assert spec.kind == "module" and spec.module_parameter_names == ("a",)


def test_network_checks_that_the_module_maps_inputs_to_outputs():
    with pytest.raises(InputError, match=r"map shape \(3, 2\) to \(3, 2\)"):
        Network(_Quadratic(), inputs=["x", "y"], outputs=["U1", "U2"])
    with pytest.raises(InputError, match="accept a tensor"):
        Network(_Quadratic(), inputs=["x", "y", "z"], outputs=["U"])
    with pytest.raises(InputError, match="torch.nn.Module"):
        Network(lambda x: x, inputs=["x"], outputs=["U"])
