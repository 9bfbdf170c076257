"""Sample points: network outputs along fitted trajectories, and the derivative route."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ude_bridge as ub
from ude_bridge.discover import Samples
from ude_bridge.discover.sampling import sample_derivatives, sample_network

from .systems import LV, hand_result, lv_data, lv_ude


def test_network_samples_follow_the_fitted_trajectories_densely():
    result = hand_result()
    samples = sample_network(result, points=150)
    t = samples.variables["t"]
    # 150 evenly spread times plus the 21 data times (some coincide)
    assert 150 <= samples.n <= 171 and samples.source == "network"
    assert set(samples.outputs) == {"U1", "U2"} and set(samples.variables) == {"x", "y", "t"}
    x, y = samples.variables["x"], samples.variables["y"]
    np.testing.assert_allclose(samples.outputs["U1"], -LV["beta"] * x * y, rtol=1e-12)
    truth = result.predict(torch.as_tensor(t)).numpy()
    np.testing.assert_allclose(np.stack([x, y], 1), truth, rtol=1e-10)
    assert samples.n_effective == 42  # 21 times x 2 observed states


def test_box_points_lie_in_the_box_of_the_fitted_states():
    samples = sample_network(hand_result(), points=50, box=30, seed=1)
    box = samples.groups == 1
    assert box.sum() == 30
    for name in ("x", "y"):
        inside, along = samples.variables[name][box], samples.variables[name][~box]
        assert inside.min() >= along.min() and inside.max() <= along.max()


def test_sampling_along_the_data_uses_the_observed_states():
    result = hand_result(noise=0.01)
    samples = sample_network(result, along="data")
    assert samples.n == 21
    np.testing.assert_array_equal(samples.variables["x"], result.data.u[0][:, 0].numpy())


@pytest.mark.parametrize("method", ["spline", "savgol", "fd"])
def test_derivatives_from_data_recover_the_network_outputs_of_an_affine_model(method):
    data = lv_data(n=201)
    samples = sample_derivatives(data, lv_ude(), method=method)
    x, y = samples.variables["x"], samples.variables["y"]
    inner = slice(5, -5)  # finite differences and splines are least accurate at the ends
    err = samples.outputs["U1"][inner] + LV["beta"] * x[inner] * y[inner]
    # dt = 0.025 on noise-free data: every method is accurate to well under 1 % of |U1|
    assert np.sqrt(np.mean(err**2)) < 0.01 * np.sqrt(np.mean(samples.outputs["U1"] ** 2))


def test_derivatives_without_a_model_are_keyed_by_state():
    samples = sample_derivatives(lv_data(n=101), None)
    assert set(samples.outputs) == {"x", "y"} and samples.source == "derivative"


def test_a_model_not_affine_in_its_outputs_cannot_use_the_derivative_route():
    model = ub.UDE({"x": "x*U1**2", "y": "-y"}, network=ub.MLP(["x", "y"], ["U1"], hidden=(4,)))
    with pytest.raises(ub.InputError, match="not affine in the network outputs"):
        sample_derivatives(lv_data(n=31), model)


def test_the_derivative_route_refuses_unknown_methods_and_short_trajectories():
    with pytest.raises(ub.InputError, match="derivative must be one of spline"):
        sample_derivatives(lv_data(n=31), None, method="magic")
    with pytest.raises(ub.InputError, match="at least 5 are needed"):
        sample_derivatives(lv_data(n=4), None)


def test_samples_refuse_arrays_of_different_lengths_and_non_finite_values():
    with pytest.raises(ub.InputError, match="same length"):
        Samples.from_arrays({"x": np.ones(5)}, {"U1": np.ones(4)})
    with pytest.raises(ub.InputError, match="NaN or inf"):
        Samples.from_arrays({"x": [1.0, np.nan]}, {"U1": [1.0, 2.0]})
