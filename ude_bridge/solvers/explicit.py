"""One explicit Runge-Kutta step for any `ButcherTableau`, as a function of tensors.

The step is pure: ``(t, h, y, k1) -> (y1, err, K)`` with the tableau as constants, static
shapes and no Python control flow on tensor values, so it can run eagerly, be compiled or be
differentiated. Stage combinations are one matrix product on the stacked stages
(``K`` has shape ``(S, N)`` with ``N = y.numel()``), not a Python sum of scaled tensors.

Two flavours of ``h``: a Python float (one trajectory, control in Python floats) or a
``(B, 1)`` tensor (a batch, each trajectory with its own step).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .tableau import ButcherTableau, TableauTensors

__all__ = ["ExplicitRK", "dense_eval", "extra_stages", "rk_step"]

Field = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


class ExplicitRK:
    """An explicit Runge-Kutta method ready for one dtype/device.

    Attributes:
        tableau: the method's data (with a Hermite interpolant filled in if it had none).
        tt: the tableau as tensors; ``rows[i]`` is ``A[i:i+1, :i]`` (a ``(1, i)`` view).
        extra0_is_next_k1: the first extra stage is $f(t+h, y_1)$, the next step's first stage.
    """

    def __init__(self, tableau: ButcherTableau, dtype: torch.dtype, device: torch.device) -> None:
        if tableau.dense is None:
            tableau = tableau.with_hermite()
        self.tableau = tableau
        self.tt: TableauTensors = tableau.tensors(dtype, device)
        A = self.tt.A
        self.rows = [A[i : i + 1, :i] for i in range(A.shape[0])]
        self.b = self.tt.b.view(1, -1)
        self.e = None if self.tt.e is None else self.tt.e.view(1, -1)
        self.s = tableau.stages
        self.S = A.shape[0]
        self.fsal = tableau.fsal
        self.order = tableau.order
        self.adaptive = tableau.adaptive
        self.error_order = (
            min(tableau.order, tableau.embedded_order or tableau.order) + 1
            if tableau.adaptive
            else tableau.order + 1
        )
        self.extra0_is_next_k1 = bool(
            tableau.extra_a
            and tableau.extra_c[0] == 1
            and list(self.tt.a_rows[self.s][: self.s]) == [float(x) for x in tableau.b]
        )
        D = self.tt.D
        self.Q = D.shape[1]
        self.DT = D.t().contiguous()  # (Q, S)


def rk_step(
    m: ExplicitRK,
    f: Field,
    p: Any,
    t: torch.Tensor,
    h: float | torch.Tensor,
    y: torch.Tensor,
    k1: torch.Tensor,
    K: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Take one step of method ``m``.

    Args:
        t: the step's start time (0-dim float64, or ``(B, 1)``).
        h: the step (a float, or ``(B, 1)`` tensor of the state's dtype).
        y: the state, any shape ``(..., n)``; ``k1 = f(t, y, p)``.
        K: a ``(S, N)`` buffer for the stages (``N = y.numel()``); overwritten.

    Returns:
        ``y1``, the error estimate $h\\sum (b_i - \\hat b_i) k_i$ (None without an embedded
        method), and ``K`` holding the ``s`` main stages.
    """
    shape = y.shape
    yf = y.reshape(1, -1)
    K[0] = k1.reshape(-1)
    scalar = not isinstance(h, torch.Tensor)
    hf = h if scalar else h.expand(shape).reshape(1, -1)
    c = m.tt.c
    yi = y
    for i in range(1, m.s):
        if scalar:
            yi = torch.addmm(yf, m.rows[i], K[:i], alpha=h).view(shape)
            ti = t + c[i] * h
        else:
            yi = torch.addcmul(yf, hf, torch.mm(m.rows[i], K[:i])).view(shape)
            ti = t + c[i] * h.to(t.dtype)
        K[i] = f(ti, yi, p).reshape(-1)
    if m.fsal:
        y1 = yi  # the last stage is evaluated at y1 itself
    elif scalar:
        y1 = torch.addmm(yf, m.b, K[: m.s], alpha=h).view(shape)
    else:
        y1 = torch.addcmul(yf, hf, torch.mm(m.b, K[: m.s])).view(shape)
    err = None
    if m.e is not None:
        if scalar:
            err = torch.mm(m.e, K[: m.s]).mul_(h).view(shape)
        else:
            err = torch.mm(m.e, K[: m.s]).mul_(hf).view(shape)
    return y1, err, K


def extra_stages(
    m: ExplicitRK,
    f: Field,
    p: Any,
    t: torch.Tensor,
    h: float | torch.Tensor,
    y: torch.Tensor,
    K: torch.Tensor,
) -> torch.Tensor:
    """Evaluate the extra (interpolation-only) stages into ``K[s:]``; returns ``K``."""
    shape = y.shape
    yf = y.reshape(1, -1)
    scalar = not isinstance(h, torch.Tensor)
    hf = h if scalar else h.expand(shape).reshape(1, -1)
    for i in range(m.s, m.S):
        if scalar:
            yi = torch.addmm(yf, m.rows[i], K[:i], alpha=h).view(shape)
            ti = t + m.tt.c[i] * h
        else:
            yi = torch.addcmul(yf, hf, torch.mm(m.rows[i], K[:i])).view(shape)
            ti = t + m.tt.c[i] * h.to(t.dtype)
        K[i] = f(ti, yi, p).reshape(-1)
    return K


def dense_eval(m: ExplicitRK, theta: torch.Tensor, h: float, y: torch.Tensor, K: torch.Tensor):
    """The interpolant at ``theta`` (``(M,)``, in [0, 1]) inside one step of one trajectory.

    Returns ``(M, N)``: $y + h \\sum_i b_i(\\theta) k_i$ with all ``S`` stages of ``K``.
    """
    powers = torch.arange(1, m.Q + 1, dtype=theta.dtype, device=theta.device)
    bt = torch.mm(theta.view(-1, 1).pow(powers), m.DT.to(theta.dtype)).to(K.dtype)
    yf = y.reshape(1, -1).expand(theta.shape[0], -1)
    return torch.addmm(yf, bt, K, alpha=h)
