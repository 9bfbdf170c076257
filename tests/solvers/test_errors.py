"""Bad input: one clear `InputError` per case, raised before any compute."""

from __future__ import annotations

import math

import pytest
import torch

import ude_bridge as ub
from tests.helpers import LV_U0, lotka_volterra


def _prob(**kw):
    args = {"f": lotka_volterra, "u0": LV_U0, "tspan": (0.0, 1.0)}
    args.update(kw)
    return ub.ODEProblem(args["f"], args["u0"], args["tspan"], args.get("params"))


def test_nan_in_u0_names_the_index_and_shape():
    u0 = torch.ones(8, 2)
    u0[3, 1] = math.nan
    with pytest.raises(
        ub.InputError, match=r"u0 must be finite; found NaN at index \(3, 1\).*\(8, 2\)"
    ):
        _prob(u0=u0)


def test_inf_in_params_is_refused():
    with pytest.raises(ub.InputError, match="params must be finite; found inf"):
        _prob(params=torch.tensor([1.0, math.inf]))


def test_empty_tspan_is_refused():
    with pytest.raises(ub.InputError, match=r"t0 != t1; got tspan=\(2.0, 2.0\)"):
        _prob(tspan=(2.0, 2.0))


def test_tspan_that_is_not_a_pair_is_refused():
    with pytest.raises(ub.InputError, match="tspan must be a pair"):
        _prob(tspan=(0.0, 1.0, 2.0))


def test_u0_of_rank_three_is_refused():
    with pytest.raises(ub.InputError, match=r"u0 must have shape \(n,\) or \(B, n\)"):
        _prob(u0=torch.ones(2, 2, 2))


def test_non_callable_f_is_refused():
    with pytest.raises(ub.InputError, match="f must be callable"):
        _prob(f=3)


def test_unsorted_saveat_is_refused():
    with pytest.raises(
        ub.InputError, match=r"saveat must be strictly increasing; found saveat\[1\]"
    ):
        ub.solve(_prob(), saveat=[0.0, 0.5, 0.2])


def test_saveat_outside_tspan_is_refused():
    with pytest.raises(ub.InputError, match=r"saveat must lie inside tspan=\(0.0, 1.0\)"):
        ub.solve(_prob(), saveat=[0.5, 1.5])


def test_unknown_method_suggests_the_right_spelling_and_lists_the_known_ones():
    with pytest.raises(
        ub.UnknownMethodError,
        match=r"unknown method 'tsit5'.*Did you mean 'Tsit5'\?.*Available: Euler",
    ):
        ub.solve(_prob(), "tsit5")


def test_unknown_backend_is_refused():
    with pytest.raises(ub.InputError, match=r"unknown backend 'numpy'"):
        ub.solve(_prob(), backend="numpy")


@pytest.mark.parametrize("name", ["rtol", "atol"])
@pytest.mark.parametrize("value", [0.0, -1e-6, math.nan])
def test_non_positive_tolerances_are_refused(name, value):
    with pytest.raises(ub.InputError, match=f"{name} must be finite and > 0"):
        ub.solve(_prob(), **{name: value})


def test_f_returning_the_wrong_shape_is_named():
    with pytest.raises(ub.InputError, match=r"must return the shape of u, \(2,\); got \(3,\)"):
        ub.solve(_prob(f=lambda t, u, p: torch.ones(3, dtype=u.dtype)))


def test_fixed_step_method_without_dt_says_to_pass_dt():
    with pytest.raises(ub.InputError, match="'RK4' is fixed-step.*pass dt"):
        ub.solve(_prob(), "RK4")


def test_scipy_refuses_tensors_that_require_grad():
    u0 = torch.tensor(LV_U0, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ub.InputError, match="scipy cannot differentiate; use backend='torch'"):
        ub.solve(_prob(u0=u0), backend="scipy")


def test_problem_that_is_not_an_odeproblem_is_refused():
    with pytest.raises(ub.InputError, match="problem must be an ODEProblem"):
        ub.solve((lotka_volterra, LV_U0))


def test_errors_are_value_errors_for_callers_that_catch_those():
    assert issubclass(ub.InputError, ValueError)
    assert issubclass(ub.UnknownMethodError, ub.InputError)
    assert issubclass(ub.BackendUnavailableError, RuntimeError)
