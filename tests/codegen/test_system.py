"""SymbolicSystem and NetworkSpec: plain data, the documented parameter layout."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from ude_bridge.codegen.system import (
    NetworkSpec,
    SymbolicSystem,
    softplus,
    softplus_inverse,
)

x, y, t, a, b, U1, U2 = sympy.symbols("x y t a b U1 U2")


def _net(rng: np.random.Generator, name: str = "NN", outputs=(U1, U2)) -> NetworkSpec:
    sizes = (2, 3, len(outputs))
    weights = tuple(
        (rng.normal(size=(o, i)), rng.normal(size=o))
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    )
    return NetworkSpec(name, (x, y), outputs, weights, "tanh", 0.0, 1.0, 1.0)


def test_layout_lists_params_then_each_layer_w_then_b():
    rng = np.random.default_rng(0)
    net = _net(rng)
    sys_ = SymbolicSystem((x, y), t, (a, b), (1.0, 2.0), (a * x + U1, -b * y + U2), (net,))
    slots = sys_.layout()
    assert [s.name for s in slots] == ["a", "b", "NN.W0", "NN.b0", "NN.W1", "NN.b1"]
    assert [s.offset for s in slots] == [0, 1, 2, 8, 11, 17]
    assert sys_.n_parameters == 19 == slots[-1].offset + slots[-1].size


def test_flat_parameters_are_row_major_weights_after_stored_values():
    rng = np.random.default_rng(1)
    net = _net(rng)
    sys_ = SymbolicSystem(
        (x, y), t, (a, b), (1.5, 2.0), (a * x + U1, -b * y + U2), (net,), positive={"a"}
    )
    flat = sys_.flat_parameters()
    assert flat[0] == pytest.approx(softplus_inverse(1.5))
    assert flat[1] == 2.0
    W0, b0 = net.weights[0]
    np.testing.assert_array_equal(flat[2:8], W0.reshape(-1))
    np.testing.assert_array_equal(flat[2:8].reshape(3, 2), W0)
    np.testing.assert_array_equal(flat[8:11], b0)


def test_softplus_inverse_round_trips_small_and_large_values():
    for v in (1e-8, 0.3, 1.0, 50.0, 700.0):
        assert softplus(softplus_inverse(v)) == pytest.approx(v, rel=1e-12)
    with pytest.raises(ValueError):
        softplus_inverse(0.0)


def test_network_spec_arrays_are_read_only_copies():
    W = np.ones((2, 2))
    net = NetworkSpec("N", (x, y), (U1, U2), ((W, np.zeros(2)),), "relu", 0, 1, 1)
    W[0, 0] = 5.0
    assert net.weights[0][0][0, 0] == 1.0
    with pytest.raises(ValueError):
        net.weights[0][0][0, 0] = 3.0


def test_network_spec_rejects_inconsistent_shapes_and_unknown_activation():
    with pytest.raises(ValueError, match="layer 0"):
        NetworkSpec("N", (x, y), (U1,), ((np.ones((3, 3)), np.zeros(3)),), "tanh", 0, 1, 1)
    with pytest.raises(ValueError, match="last layer"):
        NetworkSpec("N", (x, y), (U1,), ((np.ones((3, 2)), np.zeros(3)),), "tanh", 0, 1, 1)
    with pytest.raises(ValueError, match="activation"):
        NetworkSpec("N", (x, y), (U1,), ((np.ones((1, 2)), np.zeros(1)),), "swish", 0, 1, 1)


def test_network_spec_evaluate_applies_scaling_and_hidden_activations_only():
    W0, b0 = np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([0.5, 0.0])
    W1, b1 = np.array([[1.0, -1.0]]), np.array([0.25])
    net = NetworkSpec("N", (x, y), (U1,), ((W0, b0), (W1, b1)), "rbf", [1.0, 0.0], [2.0, 1.0], 3.0)
    xin = np.array([3.0, 0.5])
    h = (xin - [1.0, 0.0]) / [2.0, 1.0]
    h = np.exp(-((W0 @ h + b0) ** 2))
    expected = (W1 @ h + b1) * 3.0
    np.testing.assert_allclose(net.evaluate(xin), expected, rtol=1e-15)


def test_system_requires_one_equation_per_state():
    with pytest.raises(ValueError, match="one equation per state"):
        SymbolicSystem((x, y), t, (), (), (x,))


def test_substituted_equations_put_in_parameter_values():
    sys_ = SymbolicSystem((x,), t, (a,), (2.5,), (a * x,))
    assert sys_.substituted_equations()[0] == sympy.Float(2.5) * x
