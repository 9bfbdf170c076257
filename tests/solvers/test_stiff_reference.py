"""Stiff methods against published reference solutions, and a gradient through a stiff solve.

Problems and reference values: F. Mazzia and C. Magherini, *Test Set for Initial Value
Problem Solvers*, release 2.4 (2008), University of Bari, https://archimede.uniba.it/~testset/
(problems ROBER, HIRES, VDPOL, OREGO; the references were computed there with RADAU5 or
MEBDFI at tolerances of 1e-12 or tighter). Every run is float64; the bound is the issue's:
relative error <= 1e-4 in every component, each method at an appropriate tolerance --
rtol = 1e-8 for Rodas4 and Rodas5P (the issue's), looser where Rosenbrock23, a second-order
method, would need 1e4-1e5 steps (measured errors in the table below).
"""

from __future__ import annotations

import pytest
import torch

import ude_bridge as ub
from tests.helpers import rober

F64 = torch.float64


def hires(t, u, p):
    """HIRES: 'High Irradiance RESponse' of photomorphogenesis (Schäfer, 1975), 8 species."""
    y1, y2, y3, y4, y5, y6, y7, y8 = u.unbind(-1)
    r = 280.0 * y6 * y8
    return torch.stack(
        [
            -1.71 * y1 + 0.43 * y2 + 8.32 * y3 + 0.0007,
            1.71 * y1 - 8.75 * y2,
            -10.03 * y3 + 0.43 * y4 + 0.035 * y5,
            8.32 * y2 + 1.71 * y3 - 1.12 * y4,
            -1.745 * y5 + 0.43 * y6 + 0.43 * y7,
            -r + 0.69 * y4 + 1.71 * y5 - 0.43 * y6 + 0.69 * y7,
            r - 1.81 * y7,
            -r + 1.81 * y7,
        ],
        -1,
    )


def vdpol(t, u, p):
    """VDPOL: Van der Pol in the test set's scaled form, eps = 1e-6 (mu = 1e3 in time 1/mu)."""
    y1, y2 = u.unbind(-1)
    return torch.stack([y2, ((1 - y1 * y1) * y2 - y1) * 1e6], -1)


def orego(t, u, p):
    """OREGO: the Oregonator, Belousov-Zhabotinskii reaction (Field & Noyes, 1974)."""
    y1, y2, y3 = u.unbind(-1)
    return torch.stack(
        [
            77.27 * (y2 + y1 * (1 - 8.375e-6 * y1 - y2)),
            (y3 - (1 + y1) * y2) / 77.27,
            0.161 * (y1 - y3),
        ],
        -1,
    )


#: name -> (f, u0, t_end, reference u(t_end), atol); ROBER's y2 ~ 8e-14 at t = 1e11 needs
#: an absolute tolerance far below it for a relative error of 1e-4
PROBLEMS = {
    "ROBER": (
        rober,
        [1.0, 0.0, 0.0],
        1e11,
        [2.083340149701255e-08, 8.333360770334713e-14, 0.9999999791665050],
        1e-20,
    ),
    "HIRES": (
        hires,
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057],
        321.8122,
        [
            7.371312573325668e-4,
            1.442485726316185e-4,
            5.888729740967575e-5,
            1.175651343283149e-3,
            2.386356198831331e-3,
            6.238968252742796e-3,
            2.849998395185769e-3,
            2.850001604814231e-3,
        ],
        None,
    ),
    "VDPOL": (vdpol, [2.0, 0.0], 2.0, [1.706167732170483, -0.8928097010247975], None),
    "OREGO": (
        orego,
        [1.0, 2.0, 3.0],
        360.0,
        [1.000814870318523, 1228.178521549917, 132.0554942846706],
        None,
    ),
}

slow = pytest.mark.slow
# (problem, method, rtol, marks): measured relative errors (one thread, ~busy machine time)
CASES = [
    ("ROBER", "Rodas5P", 1e-8, ()),  # 9.2e-8, 1.2 s
    ("HIRES", "Rodas5P", 1e-8, ()),  # 8.9e-7, 0.5 s
    ("VDPOL", "Rodas5P", 1e-8, ()),  # 1.1e-8, 2 s
    ("OREGO", "Rodas5P", 1e-8, (slow,)),  # 2.2e-9, 4 s
    ("ROBER", "Rodas4", 1e-8, (slow,)),  # 3.0e-9, 3 s
    ("HIRES", "Rodas4", 1e-8, ()),  # 1.5e-6, 0.7 s
    ("VDPOL", "Rodas4", 1e-8, (slow,)),  # 1.2e-9, 5 s
    ("OREGO", "Rodas4", 1e-8, (slow,)),  # 2.2e-8, 6 s
    ("ROBER", "Rosenbrock23", 1e-6, (slow,)),  # 3.5e-5, 6 s
    ("HIRES", "Rosenbrock23", 1e-8, ()),  # 2.7e-5, 1.6 s
    ("VDPOL", "Rosenbrock23", 1e-6, (slow,)),  # 3.4e-5, 4 s
    ("OREGO", "Rosenbrock23", 1e-7, (slow,)),  # 6.9e-5, 22 s
]


@pytest.mark.parametrize(
    ("name", "method", "rtol"),
    [pytest.param(*c[:3], marks=c[3], id=f"{c[0]}-{c[1]}") for c in CASES],
)
def test_stiff_methods_match_the_mazzia_magherini_reference_solutions(name, method, rtol):
    f, u0, t_end, ref, atol = PROBLEMS[name]
    prob = ub.ODEProblem(f, u0, (0.0, t_end))
    sol = ub.solve(prob, method, saveat=[t_end], rtol=rtol, atol=atol or rtol, max_steps=10**6)
    assert sol.success, sol.message
    ref = torch.tensor(ref, dtype=F64)
    rel = ((sol.u[-1] - ref) / ref).abs().max().item()
    assert rel <= 1e-4, rel


def _rober_y3_at_1(k):
    prob = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1.0), k)
    return ub.solve(prob, "Rodas5P", saveat=[1.0], rtol=1e-9, atol=1e-14).u[-1, 2]


def test_gradient_of_rober_y3_at_t1_wrt_k1_matches_finite_differences():
    k = torch.tensor([0.04, 3e7, 1e4], dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(_rober_y3_at_1(k), k)
    with torch.no_grad():
        d = 1e-4 * 0.04  # central differences: truncation ~d^2, solver noise ~1e-9/d
        e = torch.tensor([d, 0.0, 0.0], dtype=F64)
        fd = (_rober_y3_at_1(k + e) - _rober_y3_at_1(k - e)) / (2 * d)
    # the bound, 1e-4 relative (measured ~1e-10)
    assert abs(g[0].item() - fd.item()) <= 1e-4 * abs(fd.item())
    assert 0.76 < g[0].item() < 0.77  # y3(1) grows with k1: d y3 / d k1 = 0.76626...
