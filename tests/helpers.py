"""Shared test data: the methods every numerical test runs over, and shared problems."""

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


def rober(t, u, p=None):
    """Robertson's chemical kinetics (ROBER; Mazzia & Magherini test set). Rates
    ``(k1, k2, k3) = (0.04, 3e7, 1e4)``, or from ``p``: ``(3,)``, or ``(B, 3)`` per trajectory."""
    k1, k2, k3 = (0.04, 3e7, 1e4) if p is None else (p[..., 0:1], p[..., 1:2], p[..., 2:3])
    y1, y2, y3 = u[..., 0:1], u[..., 1:2], u[..., 2:3]
    r1, r2, r3 = k1 * y1, k2 * y2 * y2, k3 * y2 * y3
    return torch.cat([-r1 + r3, r1 - r2 - r3, r2], -1)
