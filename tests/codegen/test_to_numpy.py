"""The generated numpy functions of an equation model (`ude_bridge.codegen.to_numpy`) equal
the generated torch right-hand side and autograd's derivatives of it, follow IEEE without
raising, keep float32, and exist only where they can (no networks, no inputs)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ude_bridge as ub
from tests.codegen.test_to_torch import MODELS, make_system, params_of, random_states, ude_system
from ude_bridge.codegen.to_numpy import numpy_field, numpy_source
from ude_bridge.codegen.to_torch import torch_rhs

TOL = {"rtol": 1e-12, "atol": 1e-12}
T = 0.37


def _values(system, dtype=np.float64):
    field = numpy_field(system)
    assert field is not None
    pv = field.bind(params_of(system), dtype)
    return field, pv


@pytest.mark.parametrize("name", list(MODELS))
def test_f_equals_the_torch_right_hand_side(name):
    system = MODELS[name]
    field, pv = _values(system)
    rhs = torch_rhs(system)
    for u in random_states(system, (4,), seed=1):
        got = np.array(field.f(T, u, pv), dtype=np.float64)
        want = rhs(torch.tensor(T, dtype=torch.float64), torch.tensor(u), params_of(system))
        np.testing.assert_allclose(got, want.numpy(), **TOL)


def _autograd(system, u):
    """Autograd's ``df/du`` and ``df/dt`` of the torch right-hand side at ``(T, u)``."""
    rhs = torch_rhs(system)
    p = params_of(system)
    uu = torch.tensor(u)
    tt = torch.tensor(T, dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda x: rhs(tt, x, p), uu)
    ft = torch.autograd.functional.jacobian(lambda s: rhs(s, uu, p), tt)
    return J.numpy(), ft.numpy()


@pytest.mark.parametrize("name", list(MODELS))
def test_jac_and_ft_equal_autograd(name):
    system = MODELS[name]
    field, pv = _values(system)
    for u in random_states(system, (3,), seed=2):
        J_ad, ft_ad = _autograd(system, u)
        J = np.array(field.jac(T, u, pv), dtype=np.float64)
        assert J.shape == (system.n_states, system.n_states)
        np.testing.assert_allclose(J, J_ad, rtol=1e-10, atol=1e-12)
        uses_t = any(system.time in e.free_symbols for e in system.equations)
        assert (field.ft is not None) == uses_t
        if uses_t:
            np.testing.assert_allclose(np.array(field.ft(T, u, pv), float), ft_ad, 1e-10, 1e-12)
        else:
            assert not np.any(ft_ad)


def test_positive_parameters_get_torchs_softplus():
    system = make_system(["x"], {"k": 0.5, "c": 30.0}, {"x": "-k*x + c"}, positive=["k", "c"])
    field, pv = _values(system)
    raw = params_of(system)
    assert pv == tuple(float(torch.nn.functional.softplus(r)) for r in raw)
    assert pv[0] == pytest.approx(0.5, rel=1e-12) and pv[1] == pytest.approx(30.0, rel=1e-12)
    assert field.f(0.0, np.array([2.0]), pv) == [pytest.approx(-1.0 + 30.0, rel=1e-12)]


def test_float32_states_keep_float32_arithmetic():
    system = MODELS["exp_tanh_abs"]
    field, pv = _values(system, np.float32)
    assert all(type(v) is np.float32 for v in pv)
    u = random_states(system, ()).astype(np.float32)
    values = field.f(T, u, pv)
    assert all(type(v) is np.float32 for v in values)
    want = torch_rhs(system)(T, torch.tensor(u), params_of(system, torch.float32))
    np.testing.assert_allclose(np.array(values), want.numpy(), rtol=1e-6)
    # entries that are not literal numbers are float32 too
    J = [v for row in field.jac(T, u, pv) for v in row if not isinstance(v, float)]
    assert J and all(type(v) is np.float32 for v in J)


def test_ieee_results_instead_of_exceptions():
    """What torch gives inf or NaN for must not raise (a failed stage rejects the step)."""
    system = make_system(
        ["x", "y"], {"k": 1.0}, {"x": "log(x) + k/y", "y": "x^1.5 + exp(1000*y) + sqrt(x)"}
    )
    field, pv = _values(system)
    u = np.array([-1.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = np.array(field.f(0.0, u, pv), dtype=np.float64)
        want = torch_rhs(system)(0.0, torch.tensor(u), params_of(system)).numpy()
        J = np.array(field.jac(0.0, u, pv), dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got).all() and not np.isfinite(J).all()


def test_the_source_is_numpy_only_and_has_no_user_text():
    src = numpy_source(MODELS["many_functions"])
    assert "torch" not in src and "_np." in src
    assert src.count("def ") == 2 and "ft = None" in src  # f, jac; no t in the equations
    assert numpy_source(MODELS["exp_tanh_abs"]).count("def ") == 3  # f, jac, ft


def test_no_field_for_networks_or_inputs():
    assert numpy_field(ude_system("tanh")) is None
    forced = make_system(["x"], {"k": 1.0}, {"x": "-k*x + F"}, inputs=["F"])
    assert numpy_field(forced) is None


def test_bind_refuses_what_is_not_the_models_parameter_tuple():
    field = numpy_field(MODELS["lotka_volterra"])
    p = params_of(MODELS["lotka_volterra"])
    assert field.bind(p[:3], np.float64) is None
    assert field.bind(torch.stack(p), np.float64) is None
    assert field.bind((*p[:3], torch.ones(2)), np.float64) is None
    assert field.bind(p, np.float64) == (1.3, 0.9, 0.8, 1.8)


def test_a_models_rhs_offers_its_field_once():
    model = ub.UDE({"x": "-k*x"}, params={"k": 2.0})
    assert model.rhs.make_numpy() is model.rhs.make_numpy()
    assert model.rhs.make_numpy().f(0.0, np.array([1.5]), (np.float64(2.0),)) == [-3.0]
    with_net = ub.UDE(
        {"x": "-k*x + U1"}, params={"k": 2.0}, network=ub.MLP(["x"], ["U1"], hidden=(4,))
    )
    assert with_net.rhs.make_numpy() is None
