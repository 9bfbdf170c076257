"""The forward solution as a function of time, kept for the interpolating adjoint.

`DenseRecorder` wraps any method object (explicit RK, Rosenbrock, an auto-switching
composite) and follows the method protocol (`ude_bridge.solvers.method`), so the ordinary
loops (`loop.integrate`, `batch_loop.integrate_batch`) run it unchanged while it keeps what
the method's own dense output needs of every accepted step: the start ``t``, the signed step
``h``, the state ``y`` (and ``y1``) and the stages ``K``. `ForwardDense` then evaluates

$$ u(t) = y_k + \\sum_i b_i(\\theta)\\, K_{k,i}, \\qquad \\theta = (t - t_k)/h_k , $$

on the step $k$ that covers $t$, with the method's continuous extension (order 4 for
Rodas5P, 3 for Rodas4, 2 for Rosenbrock23, 4 for Tsit5).

**Memory.** A trajectory keeps $(S + 2)\\,n$ numbers per accepted step ($S$ stages plus
$y$ and $y_1$; $S + 1$ for a batch, per row and per attempted step): Robertson's problem
with Rodas5P at ``rtol = 1e-8`` is 65 steps, ~16 kB. That is the right trade for the
small, stiff systems UDEs are made of; a large semi-discretised PDE ($n = 10^4$, $10^4$
steps) would need gigabytes, and is what the checkpointed variant is for
(``sensealg="InterpolatingAdjoint(checkpointing=true)"``: keep only $u$ at the save times
and re-solve one save interval at a time, at the price of a second forward solve).

**Batches.** The batch loop takes every row's step in lock step and decides acceptance per
row after the step, so the recorder keeps every attempted step and learns afterwards which
rows accepted it: row $b$ accepted iteration $i$ exactly when its time moved on before the
next iteration (or before the end, for the last one).
"""

from __future__ import annotations

import bisect
from typing import Any

import torch

from .method import Kept

__all__ = ["DenseRecorder", "ForwardDense", "SingleDense"]

F64 = torch.float64


def _split(kept: Any) -> tuple[int | None, torch.Tensor]:
    """``(member, K)``: a composite keeps ``(which, K)``, a plain method ``K``."""
    if isinstance(kept, tuple):
        return int(kept[0]), kept[1]
    return None, kept


class DenseRecorder:
    """A method object that records the dense output of the steps the loop accepts.

    Every attribute not defined here is the wrapped method's (read on each access, so a
    composite's ``s``, ``fsal``, ... follow its active member).

    Args:
        method: the method object of the solve.
        keep_graph: keep the batch stages' autograd graph (``sol(t)`` of a batch solve that
            autograd records); the adjoint needs values only.
    """

    def __init__(self, method: Any, keep_graph: bool = False) -> None:
        self._method = method
        self._keep_graph = keep_graph
        #: one trajectory: ``(t, h, y, y1, kept)`` of every accepted step, in order
        self.steps: list[tuple[float, float, torch.Tensor, torch.Tensor, Any]] = []
        #: a batch: ``(t (B, 1), h (B, 1), y (B, n), member, K)`` of every attempted step
        self.attempts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any, Any]] = []
        self._last: tuple[float, float, torch.Tensor, torch.Tensor] | None = None
        #: evaluations of ``f`` for interpolation-only stages made here (not by the loop)
        self.extra_nfev = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._method, name)

    # one trajectory: the loop runs with ``dense=True`` and calls `keep` on accepted steps
    def step(self, f: Any, p: Any, t: float, h: float, y: torch.Tensor, st: Any):
        """The wrapped step; remembers its ``(t, h, y, y1)`` for `keep`."""
        y1, err = self._method.step(f, p, t, h, y, st)
        self._last = (t, h, y, y1)
        return y1, err

    def keep(self, st: Any) -> Any:
        """The wrapped ``keep``, recording the accepted step."""
        kept = self._method.keep(st)
        assert self._last is not None, "keep() before step()"
        self.steps.append((*self._last, kept))
        return kept

    # a batch: every attempt is recorded (``keep`` copies a reused stage buffer)
    def step_batch(self, f: Any, p: Any, t: torch.Tensor, h: torch.Tensor, y, st: Any):
        """The wrapped batch step; records the attempt (acceptance is settled later)."""
        y1, err = self._method.step_batch(f, p, t, h, y, st)
        m = self._method
        if m.has_extra:  # interpolation-only stages, which the loop fills only at save points
            m.extra(f, p, t, h, y, st)
            self.extra_nfev += m.S - m.s
        which, K = _split(m.keep(st))
        self.attempts.append((t, h, y, which, K if self._keep_graph else K.detach()))
        return y1, err

    def solution(self, t0: float, t1: float, shape: torch.Size, t_reached: Any) -> ForwardDense:
        """The recorded solution as a `ForwardDense` (``t_reached``: the loop's end time(s))."""
        if self.attempts:
            return _BatchDense(self._method, self.attempts, t0, t1, t_reached)
        return SingleDense(self._method, self.steps, t0, t1, shape)


class ForwardDense:
    """``u(t)`` of a recorded forward solve: ``(n,)`` or ``(B, n)``, by the method's dense
    output. ``step_size(t)``: the size of the forward step covering ``t`` (smallest over a
    batch), a good first step for a solve of the adjoint there."""

    def __call__(self, t: float) -> torch.Tensor:
        raise NotImplementedError

    def step_size(self, t: float) -> float:
        raise NotImplementedError


class SingleDense(ForwardDense):
    """One trajectory's dense output from its accepted steps ``(t, h, y, y1, kept)``: the
    adjoint's ``u(t)`` and, through `ude_bridge.solvers.loop`, ``sol(t)``."""

    def __init__(self, method: Any, steps: list, t0: float, t1: float, shape) -> None:
        self.method, self.steps, self.shape = method, steps, shape
        self.d = 1.0 if t1 >= t0 else -1.0
        self.keys = [self.d * s[0] for s in steps]

    def _index(self, t: float) -> int:
        i = bisect.bisect_right(self.keys, self.d * t) - 1
        return min(max(i, 0), len(self.steps) - 1)

    def __call__(self, t: float, clamp: bool = False) -> torch.Tensor:
        """``u(t)``; ``theta`` is within round-off of [0, 1] inside the solve, and
        ``clamp`` pins it there (``sol(t)`` at the ends of ``tspan``)."""
        ts, h, y, y1, kept = self.steps[self._index(t)]
        theta = (t - ts) / h
        if clamp:
            theta = min(max(theta, 0.0), 1.0)
        return self.method.dense([theta], h, y, y1, Kept(kept)).view(self.shape)

    def step_size(self, t: float) -> float:
        return abs(self.steps[self._index(t)][1])


class _BatchDense(ForwardDense):
    def __init__(self, method: Any, attempts: list, t0: float, t1: float, t_reached) -> None:
        self.method = method
        self.d = d = 1.0 if t1 >= t0 else -1.0
        T = torch.cat([a[0].view(1, -1) for a in attempts]).to(F64)  # (N, B)
        H = torch.cat([a[1].view(1, -1) for a in attempts])  # (N, B), state dtype
        N, B = T.shape
        ends = torch.as_tensor(t_reached, dtype=F64, device=T.device).reshape(1, B)
        nxt = torch.cat([T[1:], ends])
        acc = (nxt != T) & (H != 0)  # (N, B): row b accepted iteration i
        counts = acc.sum(0)  # (B,)
        width = max(int(counts.max()), 1)
        # per row, the accepted iterations in order; padded with the row's last one
        order = torch.argsort((~acc).to(torch.int8), dim=0, stable=True)  # accepted first
        rows = order[:width].t().contiguous()  # (B, width)
        last = (counts - 1).clamp_min(0).view(B, 1)
        slot = torch.arange(width, device=T.device).view(1, -1)
        rows = torch.where(slot < counts.view(B, 1), rows, rows.gather(1, last))
        keys = d * T.t().gather(1, rows)
        self.keys = torch.where(slot < counts.view(B, 1), keys, torch.inf).contiguous()
        self.last = last
        self.rows = rows
        self.T, self.H = T, H
        self.Y = torch.stack([a[2] for a in attempts])  # (N, B, n)
        Smax = max(a[4].shape[0] for a in attempts)
        n = self.Y.shape[-1]
        K = self.Y.new_zeros(N, Smax, B, n)
        for i, a in enumerate(attempts):
            K[i, : a[4].shape[0]] = a[4].view(-1, B, n)
        self.K = K
        self.which = [a[3] for a in attempts]
        self.ar = torch.arange(B, device=T.device)
        self.B, self.n = B, n

    def _iters(self, t: float) -> torch.Tensor:
        q = torch.full((self.B, 1), self.d * t, dtype=F64, device=self.keys.device)
        pos = torch.searchsorted(self.keys, q, right=True) - 1
        pos = torch.minimum(pos.clamp_min(0), self.last)
        return self.rows.gather(1, pos).view(-1)  # (B,) iteration per row

    def __call__(self, t: float) -> torch.Tensor:
        it = self._iters(t)
        ar = self.ar
        y = self.Y[it, ar]  # (B, n)
        h = self.H[it, ar].view(-1, 1)
        theta = ((t - self.T[it, ar]) / h.view(-1).to(F64)).view(1, -1)  # (1, B)
        K = self.K[it, :, ar]  # (B, Smax, n)
        K = K.transpose(0, 1).reshape(K.shape[1], -1)  # (Smax, B*n)
        members = {self.which[i] for i in it.tolist()}
        out = None
        for w in members:
            m = self.method if w is None else self.method.methods[w]
            # (B, n) from a component-major buffer (see `horner_slots`): made contiguous
            val = m.dense_slots(theta, h, y, y, Kept(K[: m.S]))[0].contiguous()
            if out is None:
                out = val
            else:  # rows whose step was taken by another member of a composite
                mine = torch.tensor([self.which[i] == w for i in it.tolist()], device=y.device)
                out = torch.where(mine.view(-1, 1), val, out)
        return out

    def step_size(self, t: float) -> float:
        it = self._iters(t)
        return float(self.H[it, self.ar].abs().min())
