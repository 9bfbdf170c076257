"""Every bad UDE input fails at construction with a ude_bridge error naming the culprit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ude_bridge.errors import InputError, UdeBridgeError, UnknownSymbolError
from ude_bridge.model import MLP, UDE

PARAMS = {"alpha": 1.3, "delta": 1.8}


def net(inputs=("x", "y"), outputs=("U1", "U2"), **kw):
    return MLP(list(inputs), list(outputs), hidden=(4,), **kw)


def test_an_undeclared_symbol_is_named_with_the_nearest_declared_name():
    with pytest.raises(
        UnknownSymbolError, match=r"equation for 'x'.*'alpah'.*Did you mean 'alpha'"
    ):
        UDE({"x": "alpah*x + U1", "y": "-delta*y + U2"}, PARAMS, network=net())


def test_a_state_with_no_equation_is_named():
    with pytest.raises(InputError, match="state 'z' has no equation"):
        UDE({"x": "alpha*x", "y": "-delta*y"}, PARAMS, states=["x", "y", "z"])


def test_an_equation_for_a_non_state_is_named():
    with pytest.raises(InputError, match="'w', which is not a state"):
        UDE({"x": "alpha*x", "w": "-delta*x"}, PARAMS, states=["x"])


def test_an_empty_equation_is_named():
    with pytest.raises(InputError, match="equation for 'y'.*empty"):
        UDE({"x": "alpha*x", "y": ""}, PARAMS)


def test_a_network_output_used_in_no_equation_is_named():
    with pytest.raises(InputError, match="output 'U2' of network 'NN1' is used in no equation"):
        UDE({"x": "alpha*x + U1", "y": "-delta*y"}, PARAMS, network=net())


def test_a_network_input_that_is_a_parameter_is_named():
    with pytest.raises(InputError, match="input 'alpha' of network 'NN1'.*parameter 'alpha'"):
        UDE({"x": "alpha*x + U1", "y": "-delta*y + U2"}, PARAMS, network=net(("x", "alpha")))


def test_a_network_input_that_is_another_output_is_named():
    with pytest.raises(InputError, match="input 'U1\\*x'.*'U1'"):
        UDE({"x": "alpha*x + U1", "y": "-delta*y + U2"}, PARAMS, network=net(("U1*x", "y")))


def test_an_undeclared_network_input_is_named_with_a_suggestion():
    with pytest.raises(UnknownSymbolError, match="'yy'.*Did you mean 'y'"):
        UDE({"x": "alpha*x + U1", "y": "-delta*y + U2"}, PARAMS, network=net(("x", "yy")))


@pytest.mark.parametrize(
    ("params", "outputs", "match"),
    [
        (
            {"x": 1.0, "delta": 1.8},
            ("U1", "U2"),
            "duplicate name 'x': declared as state and as parameter",
        ),
        ({"alpha": 1.3, "delta": 1.8}, ("U1", "alpha"), "duplicate name 'alpha'"),
        ({"alpha": 1.3, "t": 1.8}, ("U1", "U2"), "duplicate name 't'"),
        ({"alpha": 1.3, "delta": 1.8}, ("x", "U2"), "duplicate name 'x'"),
    ],
)
def test_duplicate_names_are_named(params, outputs, match):
    eqs = {"x": "x + U1", "y": f"y + {outputs[1]}"}
    with pytest.raises(InputError, match=match):
        UDE(eqs, params, network=net(outputs=outputs))


def test_two_networks_with_the_same_output_are_refused():
    with pytest.raises(InputError, match="duplicate name 'U1'"):
        UDE({"x": "U1", "y": "-y"}, {}, network=[net(outputs=["U1"]), net(outputs=["U1"])])


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_parameter_value_is_named(value):
    with pytest.raises(InputError, match="parameter 'delta' must be finite"):
        UDE({"x": "alpha*x", "y": "-delta*y"}, {"alpha": 1.3, "delta": value})


def test_a_non_numeric_parameter_value_is_named():
    with pytest.raises(InputError, match="parameter 'delta' must be a number"):
        UDE({"x": "alpha*x", "y": "-delta*y"}, {"alpha": 1.3, "delta": "fast"})


def test_a_positive_parameter_with_a_non_positive_value_is_named():
    with pytest.raises(InputError, match="'alpha' is declared positive"):
        UDE({"x": "alpha*x"}, {"alpha": -1.0}, positive=("alpha",))


def test_fixed_or_positive_names_must_be_parameters():
    with pytest.raises(UnknownSymbolError, match="'delat'.*Did you mean 'delta'"):
        UDE({"x": "alpha*x", "y": "-delta*y"}, PARAMS, fixed=("delat",))


def test_an_equation_that_does_not_parse_shows_the_string_and_position():
    with pytest.raises(
        InputError, match=r"equation for 'y'.*'-delta\*\*\*y' does not parse at position"
    ):
        UDE({"x": "alpha*x", "y": "-delta***y"}, PARAMS)


def test_python_code_in_an_equation_is_refused():
    with pytest.raises(InputError, match="equation for 'x'"):
        UDE({"x": "__import__('os').system('x')"}, {})


def test_reserved_names_are_refused():
    with pytest.raises(InputError, match="'lambda' is reserved"):
        UDE({"x": "x"}, {"lambda": 1.0})
    with pytest.raises(InputError, match="'exp' is reserved"):
        UDE({"exp": "1"}, {})


def test_a_bare_torch_module_must_be_wrapped_in_network():
    with pytest.raises(InputError, match="ub.Network"):
        UDE({"x": "U1"}, {}, network=nn.Linear(1, 1))


def test_bad_forcing_input_data_is_named():
    with pytest.raises(InputError, match="input 'F'.*strictly increasing"):
        UDE({"x": "F"}, {}, inputs={"F": ([0.0, 2.0, 1.0], [1.0, 2.0, 3.0])})
    with pytest.raises(InputError, match="input 'F'.*callable"):
        UDE({"x": "F"}, {}, inputs={"F": 3.0})


def test_replace_names_an_unknown_output():
    model = UDE({"x": "alpha*x + U1", "y": "-delta*y + U2"}, PARAMS, network=net())
    with pytest.raises(
        UnknownSymbolError, match="'U3' is not a network output.*Known network outputs: U1, U2"
    ):
        model.replace(U3="x")
    with pytest.raises(UnknownSymbolError, match="'beta'"):
        model.replace(U1="beta*x*y")


def test_problem_checks_the_state_dimension():
    model = UDE({"x": "alpha*x", "y": "-delta*y"}, PARAMS)
    with pytest.raises(InputError, match="n=2"):
        model.problem(torch.ones(3), (0.0, 1.0))


def test_all_errors_are_ude_bridge_errors():
    assert issubclass(UnknownSymbolError, UdeBridgeError)
    assert issubclass(InputError, ValueError)
