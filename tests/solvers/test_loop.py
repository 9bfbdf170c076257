"""The loop, white-box: save points, time direction, stats and retcodes."""

from __future__ import annotations

import math

import pytest
import torch

import ude_bridge as ub
from tests.helpers import LV_U0, lotka_volterra


def _prob(tspan=(0.0, 3.0), u0=LV_U0):
    return ub.ODEProblem(lotka_volterra, u0, tspan)


def test_saveat_is_interpolated_not_stepped_onto():
    ts = torch.linspace(0, 3, 101, dtype=torch.float64)
    sol = ub.solve(_prob(), saveat=ts)
    assert torch.equal(sol.t, ts)
    # far fewer steps than save points: the values come from the dense output
    assert sol.stats["naccept"] < 60
    ref = ub.solve(_prob(), "Vern9", saveat=ts, rtol=1e-12, atol=1e-12)
    assert (sol.u - ref.u).abs().max() < 1e-4


def test_saveat_as_a_spacing_includes_both_ends():
    sol = ub.solve(_prob((0.0, 1.0)), saveat=0.25)
    assert sol.t.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert torch.allclose(sol.u[0], torch.tensor(LV_U0, dtype=torch.float64))


def test_without_saveat_every_step_is_saved_and_dense_output_works_anywhere():
    sol = ub.solve(_prob(), rtol=1e-8, atol=1e-8)
    assert sol.t[0] == 0.0 and sol.t[-1] == 3.0
    assert sol.u.shape == (sol.t.shape[0], 2)
    assert len(sol.t) == sol.stats["naccept"] + 1
    mid = sol(torch.tensor([1.234, 2.5]))
    ref = ub.solve(_prob(), "Vern9", saveat=[1.234, 2.5], rtol=1e-12, atol=1e-12).u
    assert (mid - ref).abs().max() < 1e-6
    assert sol(3.0).shape == (2,)


def test_dense_output_outside_tspan_is_an_input_error():
    sol = ub.solve(_prob())
    with pytest.raises(ub.InputError, match="inside tspan"):
        sol(3.5)


def test_backward_in_time_returns_to_the_initial_condition():
    fwd = ub.solve(_prob(), saveat=[3.0], rtol=1e-10, atol=1e-10)
    back = ub.solve(_prob((3.0, 0.0), fwd.u[-1]), saveat=[3.0, 1.5, 0.0], rtol=1e-10, atol=1e-10)
    assert back.success
    assert torch.allclose(back.u[-1], torch.tensor(LV_U0, dtype=torch.float64), atol=1e-7)
    assert back.t.tolist() == [3.0, 1.5, 0.0]


def test_stats_count_steps_and_evaluations_consistently():
    sol = ub.solve(_prob(), "Tsit5", saveat=[3.0])
    s = sol.stats
    assert s["nsteps"] == s["naccept"] + s["nreject"]
    # FSAL: 6 new stages per step, plus the first evaluation and the initial-step probe
    assert s["nfev"] == 6 * s["nsteps"] + 2


def test_max_steps_stops_with_maxiters_and_the_time_reached():
    sol = ub.solve(_prob(), saveat=[1.0, 3.0], max_steps=5)
    assert not sol.success and sol.retcode == "MaxIters"
    assert "max_steps=5" in sol.message
    assert 0 < sol.t_reached < 3.0
    with pytest.raises(ub.SolveError, match="MaxIters") as info:
        ub.solve(_prob(), saveat=[3.0], max_steps=5, throw=True)
    assert info.value.solution is not None


def test_a_finite_time_blow_up_is_reported_not_raised():
    prob = ub.ODEProblem(lambda t, u, p: u**2, [1.0], (0.0, 2.0))
    sol = ub.solve(prob, saveat=[0.5, 2.0])
    assert not sol.success
    assert sol.retcode in ("Unstable", "DtLessThanMin")
    assert 0.9 < sol.t_reached < 1.001  # the singularity is at t = 1
    assert math.isclose(sol.u[0, 0].item(), 2.0, rel_tol=1e-5)
    assert math.isnan(sol.u[1, 0].item())


def test_nan_in_the_vector_field_is_unstable_for_fixed_steps():
    prob = ub.ODEProblem(lambda t, u, p: torch.where(t > 0.5, u * math.nan, -u), [1.0], (0, 1))
    sol = ub.solve(prob, "RK4", dt=0.1, saveat=[1.0])
    assert sol.retcode == "Unstable"


def test_dtmin_stops_with_dtlessthanmin():
    prob = ub.ODEProblem(lambda t, u, p: -1000 * (u - torch.cos(t)), [0.0], (0.0, 1.0))
    sol = ub.solve(prob, "Tsit5", saveat=[1.0], rtol=1e-12, atol=1e-12, dtmin=0.01)
    assert sol.retcode == "DtLessThanMin"
    assert "dtmin=0.01" in sol.message


def test_stage_times_are_t_plus_c_times_h():
    from ude_bridge.solvers.methods.basic import RK4

    seen = []

    def f(t, u, p):
        seen.append(float(t))
        return torch.zeros_like(u)

    ub.solve(ub.ODEProblem(f, [1.0], (0.0, 0.5)), "RK4", dt=0.5, saveat=[0.5])
    assert seen[:4] == [0.5 * float(c) for c in RK4.c]


def test_float32_state_keeps_float32_and_time_stays_float64():
    seen = []

    def f(t, u, p):
        seen.append(t.dtype)
        return -u

    sol = ub.solve(ub.ODEProblem(f, torch.ones(2, dtype=torch.float32), (0, 1)), saveat=[1.0])
    assert sol.u.dtype == torch.float32
    assert sol.t.dtype == torch.float64
    assert set(seen) == {torch.float64}
    assert abs(sol.u[-1, 0].item() - math.exp(-1)) < 1e-5
