"""``AutoTsit5(Rosenbrock23)``: stiffness detection and switching both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ude_bridge as ub
from tests.helpers import rober
from ude_bridge.errors import UnknownMethodError
from ude_bridge.solvers.auto_switch import AutoTsit5, stability_boundary
from ude_bridge.solvers.methods.basic import EULER, RK4
from ude_bridge.solvers.methods.tsit5 import TSIT5

F64 = torch.float64
scipy_integrate = pytest.importorskip("scipy.integrate")


def rober_np(t, y):
    return [
        -0.04 * y[0] + 1e4 * y[1] * y[2],
        0.04 * y[0] - 1e4 * y[1] * y[2] - 3e7 * y[1] ** 2,
        3e7 * y[1] ** 2,
    ]


MU = 100.0


def vdp(t, u, p):
    x, y = u.unbind(-1)
    return torch.stack([y, MU * (1 - x * x) * y - x], -1)


def vdp_np(t, u):
    return [u[1], MU * (1 - u[0] ** 2) * u[1] - u[0]]


def lotka_volterra(t, u, p):
    x, y = u.unbind(-1)
    return torch.stack([1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y], -1)


def rober_jac_np(t, y):
    return [
        [-0.04, 1e4 * y[2], 1e4 * y[1]],
        [0.04, -1e4 * y[2] - 6e7 * y[1], -1e4 * y[1]],
        [0.0, 6e7 * y[1], 0.0],
    ]


def vdp_jac_np(t, u):
    return [[0.0, 1.0], [-2 * MU * u[0] * u[1] - 1, MU * (1 - u[0] ** 2)]]


def reference(f, y0, T, ts):
    # scipy's LSODA (ODEPACK, compiled) at 1e-12 with the exact Jacobian: fast, and it
    # agrees with Radau at 1e-12 (the Bari test set's reference code) to ~1e-9 here
    jac, atol = (rober_jac_np, 1e-16) if f is rober_np else (vdp_jac_np, 1e-14)
    s = scipy_integrate.solve_ivp(
        f, (0, T), y0, method="LSODA", rtol=1e-12, atol=atol, t_eval=ts, jac=jac
    )
    return torch.as_tensor(s.y.T)


def test_the_stability_boundaries_of_explicit_methods_are_the_known_ones():
    # real stability intervals: Euler 2, RK4 2.785 (Hairer & Wanner II, Fig. IV.2.1)
    def bound(tab):
        return stability_boundary(
            tuple(tuple(float(x) for x in r) for r in tab.a), tuple(float(x) for x in tab.b)
        )

    assert abs(bound(EULER) - 2.0) < 1e-9
    assert abs(bound(RK4) - 2.785293563) < 1e-6
    assert 3.3 < bound(TSIT5) < 3.7


def test_a_non_stiff_problem_never_switches_and_equals_tsit5():
    prob = ub.ODEProblem(lotka_volterra, [0.44249296, 4.6280594], (0.0, 10.0))
    auto = ub.solve(prob, "AutoTsit5(Rosenbrock23)", rtol=1e-8, atol=1e-8)
    tsit = ub.solve(prob, "Tsit5", rtol=1e-8, atol=1e-8)
    assert auto.stats["nswitch"] == 0 and "njac" not in auto.stats
    assert torch.equal(auto.u, tsit.u) and torch.equal(auto.t, tsit.t)


@pytest.mark.parametrize("stiff", ["Rosenbrock23", "Rodas5P"])
def test_robertson_switches_to_the_stiff_method_and_matches_reference(stiff):
    ts = [1.0, 100.0, 1e4]
    prob = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1e4))
    sol = ub.solve(prob, f"AutoTsit5({stiff})", saveat=ts, rtol=1e-6, atol=1e-10)
    assert sol.success and sol.stats["nswitch"] >= 1 and sol.stats["njac"] > 0
    # far fewer steps than Tsit5 alone needs (stability-bound: ~h |lambda| < 3.5)
    assert sol.stats["nsteps"] < 1500
    ref = reference(rober_np, [1.0, 0.0, 0.0], 1e4, ts)
    # rtol 1e-6: a few 1e-5 relative in every component, y2 included
    assert ((sol.u - ref) / ref).abs().max() < 1e-4


def test_van_der_pol_switches_both_ways_and_matches_reference():
    ts = np.linspace(0, 200, 5)
    prob = ub.ODEProblem(vdp, [2.0, 0.0], (0.0, 200.0))
    sol = ub.solve(prob, "AutoTsit5(Rosenbrock23)", saveat=ts, rtol=1e-5, atol=1e-7)
    # slow stiff phases and fast explicit jumps: several switches, in both directions
    assert sol.success and sol.stats["nswitch"] >= 4
    ref = reference(vdp_np, [2.0, 0.0], 200.0, ts)
    # measured 3e-6 at rtol 1e-5
    assert (sol.u[:, 0] - ref[:, 0]).abs().max() < 1e-4


def test_the_dense_output_stays_accurate_across_switches():
    prob = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 100.0))
    sol = ub.solve(prob, "AutoTsit5(Rosenbrock23)", rtol=1e-7, atol=1e-11)
    assert sol.stats["nswitch"] >= 1
    tq = np.geomspace(1e-3, 99.0, 25)
    ref = reference(rober_np, [1.0, 0.0, 0.0], 100.0, tq)
    # interpolants: Tsit5 4th order, Rosenbrock23 2nd order
    assert ((sol(torch.as_tensor(tq)) - ref) / ref).abs().max() < 1e-3


def test_an_auto_switch_object_carries_its_settings_and_is_its_name():
    m = AutoTsit5("Rodas5P", maxstiffstep=10**6)
    assert m == "AutoTsit5(Rodas5P)" and repr(m) == "AutoTsit5('Rodas5P')"
    prob = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1.0))
    never = ub.solve(prob, m, rtol=1e-6, atol=1e-10, max_steps=10**5)
    assert never.stats["nswitch"] == 0  # the explicit method all the way
    eager = ub.solve(prob, AutoTsit5("Rodas5P", maxstiffstep=1), rtol=1e-6, atol=1e-10)
    assert eager.stats["nswitch"] >= 1 and eager.stats["nsteps"] < never.stats["nsteps"]
    with pytest.raises(UnknownMethodError, match="unknown stiff method 'Rodas9'"):
        AutoTsit5("Rodas9")


def test_a_batch_switches_as_a_whole_and_every_trajectory_is_accurate():
    u0 = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.0, 0.5], [0.9, 1e-5, 0.1]], dtype=F64)
    ts = [10.0, 1000.0]
    sol = ub.solve(
        ub.ODEProblem(rober, u0, (0.0, 1000.0)),
        "AutoTsit5(Rosenbrock23)",
        saveat=ts,
        rtol=1e-6,
        atol=1e-10,
    )
    assert sol.success and sol.stats["nswitch"] >= 1
    for b in range(3):
        ref = reference(rober_np, u0[b].tolist(), 1000.0, ts)
        assert ((sol.u[b] - ref) / ref).abs().max() < 1e-4, b
