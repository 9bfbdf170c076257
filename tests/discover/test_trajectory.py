"""Candidates simulated against the data: batched rows, short refits, the step budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ude_bridge.discover.trajectory import (
    physical_parameters,
    refine_options,
    refined_losses,
    step_budget,
    trajectory_loss,
)

from .systems import LV, lv_paper_data, lv_ude

# U1 = a*x*y + b*x**2, U2 = c*x*y: candidates differ only in the values of a, b, c
UNION = {"U1": "a*x*y + b*x**2", "U2": "c*x*y"}


def _union():
    return lv_ude().replace(UNION, params={"a": 0.0, "b": 0.0, "c": 0.0})


def _rows(model, rows):
    names, stored = physical_parameters(model)
    values = stored[None].repeat(len(rows), 1)
    for i, row in enumerate(rows):
        for name, value in row.items():
            values[i, names.index(name)] = value
    free = torch.zeros(values.shape, dtype=torch.bool)
    free[:, [names.index(k) for k in ("a", "b", "c")]] = True
    return values, free


def test_rows_of_one_batched_solve_equal_separate_solves():
    data = lv_paper_data(0.01)
    model = _union()
    rows = [{"a": -0.9, "c": 0.8}, {"a": -0.8, "b": 0.05, "c": 0.85}, {"a": -1.0, "c": 0.7}]
    values, free = _rows(model, rows)
    batched = refined_losses(model, data, data.first_observed(), {}, values, free, iterations=0)
    for row, loss in zip(rows, batched, strict=True):
        alone = lv_ude().replace(
            {"U1": f"{row['a']}*x*y + {row.get('b', 0.0)}*x**2", "U2": f"{row['c']}*x*y"}
        )
        # same solver, same tolerances: only the batching differs
        assert loss == pytest.approx(trajectory_loss(alone, data), rel=1e-6)


def test_a_short_refit_recovers_coefficients_started_off_the_truth():
    data = lv_paper_data(0.0)
    model = _union()
    values, free = _rows(model, [{"a": -0.8, "c": 0.9}])
    free[0, physical_parameters(model)[0].index("b")] = False  # b held at 0: the true support
    u0 = data.first_observed() * 1.02  # initial states a little off too
    settings = refine_options({})
    start = refined_losses(model, data, u0, settings, values, free, iterations=0)
    end = refined_losses(model, data, u0, settings, values, free, iterations=4)
    # Gauss-Newton on a model that is exact for the data: the misfit falls to the solver's
    # error (rtol 1e-8), from the percent-level misfit of 10 % wrong coefficients
    assert start[0] > 1e-4
    assert end[0] < 1e-10


def test_a_candidate_that_blows_up_fails_alone_within_its_step_budget():
    data = lv_paper_data(0.0)
    model = _union()
    values, free = _rows(model, [{"a": -LV["beta"], "c": LV["gamma"]}, {"a": -0.9, "b": 50.0}])
    budget = step_budget(lv_ude(), data, data.first_observed(), refine_options({}))
    losses = refined_losses(
        model, data, data.first_observed(), {}, values, free, iterations=1, max_steps=budget
    )
    assert losses[0] < 1e-10  # the truth, noise-free
    assert np.isinf(losses[1])  # x' ~ 50 x^2 leaves any bound before t = 3


def test_trajectory_loss_leaves_the_model_as_it_was():
    data = lv_paper_data(0.01)
    model = lv_ude().replace({"U1": "a*x*y", "U2": "c*x*y"}, params={"a": -0.8, "c": 0.9})
    before = model.parameters_dict()
    refined = trajectory_loss(model, data, refine=3, params=["a", "c"])
    assert refined < trajectory_loss(model, data)
    assert model.parameters_dict() == before
