"""Shared test data: the list of methods every numerical test runs over."""

from __future__ import annotations

import torch

from ude_bridge.solvers.registry import EXPLICIT, FIXED_STEP

ALL_METHODS = tuple(EXPLICIT)
ADAPTIVE_METHODS = tuple(m for m in ALL_METHODS if m not in FIXED_STEP)
#: claimed order of each method's propagated solution
ORDER = {
    "Euler": 1,
    "Midpoint": 2,
    "Heun": 2,
    "RK4": 4,
    "BS3": 3,
    "DP5": 5,
    "Tsit5": 5,
    "Vern7": 7,
    "Vern9": 9,
}


def lotka_volterra(t, u, p=None):
    """The UDE paper's Lotka-Volterra system: (1.3, 0.9, 0.8, 1.8)."""
    x, y = u[..., 0], u[..., 1]
    return torch.stack([1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y], -1)


LV_U0 = (0.44249296, 4.6280594)
#: published reference at t = 3 (issue 3; also matches scipy DOP853 at rtol 1e-13)
LV_T3 = (1.606351205698, 0.067606042572)
