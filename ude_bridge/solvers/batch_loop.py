"""The integration loop for a batch ``(B, n)``: one step size and error norm per trajectory.

torchode's approach: each trajectory keeps its own ``t``, ``h`` and controller state, so a
batch gives every trajectory the accuracy it would get alone. The batch advances in lock
step (one stage evaluation of ``f`` on the whole batch); a trajectory whose step is rejected
or that has finished keeps its state (masked with ``torch.where``). Control is tensors of
shape ``(B,)``; the host synchronises once per step (``any(active)`` and the window of save
points the step covers, in one transfer).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..solution import RETCODES
from .controllers import initial_step_batch
from .loop import LoopOptions, LoopResult

__all__ = ["integrate_batch"]

_CODES = ("Success", "MaxIters", "DtLessThanMin", "Unstable")


def integrate_batch(
    method: Any,
    f: Any,
    p: Any,
    y0: torch.Tensor,
    t0: float,
    t1: float,
    saveat: torch.Tensor | None,
    opts: LoopOptions,
) -> LoopResult:
    """Integrate ``y0`` of shape ``(B, n)`` from ``t0`` to ``t1``; ``t`` reaches f as ``(B, 1)``.

    ``saveat`` (float64 ``(T,)``) defaults to ``(t0, t1)``. Returns ``u`` of shape ``(B, T, n)``.
    """
    B, n = y0.shape
    d = 1.0 if t1 > t0 else -1.0
    span = abs(t1 - t0)
    dtype, device = y0.dtype, y0.device
    f64 = torch.float64
    if saveat is None:
        saveat = torch.tensor([t0, t1], dtype=f64)
    taus = ((saveat - t0) * d).to(device)
    T = taus.shape[0]
    ones_n = torch.ones(n, 1, dtype=dtype, device=device)
    taus_sink = torch.cat([taus, taus[-1:]])  # the sink slot T reads the last save time
    out = y0.new_zeros(B, T + 1, n)  # column T: a sink for unused save slots
    rows_b = torch.arange(B, device=device).view(1, -1)
    cols_n = torch.arange(n, device=device).view(1, -1)
    # save points at t0 itself
    j0 = int((taus <= 0).sum())
    if j0:
        out[:, :j0] = y0[:, None, :]
    jb = torch.full((B,), j0, dtype=torch.long, device=device)  # next save index per row

    tau = torch.zeros(B, 1, dtype=f64, device=device)
    tcur = tau + t0
    y = y0
    k1 = f(tcur, y, p)
    if k1.shape != y0.shape:
        from ..errors import InputError

        raise InputError(
            f"solve: f(t, u, p) must return the shape of u, {tuple(y0.shape)}; "
            f"got {tuple(k1.shape)}."
        )
    nfev = 1
    adaptive = opts.adaptive and method.adaptive
    if opts.dt is not None:
        h = torch.full((B, 1), abs(opts.dt), dtype=f64, device=device)
    else:
        h = initial_step_batch(
            f, p, tcur, y.detach(), k1.detach(), method.order, opts.rtol, opts.atol, d, span
        ).abs()
        nfev += 1
    h = h.clamp(max=span)
    ctrl = opts.controller
    errold = torch.full((B, 1), ctrl.qoldinit, dtype=f64, device=device)
    active = torch.ones(B, 1, dtype=torch.bool, device=device)
    code = torch.zeros(B, 1, dtype=torch.long, device=device)
    steps_b = torch.zeros(B, 1, dtype=torch.long, device=device)
    nsteps = naccept = nreject = 0
    fresh = k1.requires_grad or y0.requires_grad
    st = None
    tiny = 1e-14 * max(1.0, abs(t0), abs(t1))
    run = bool(active.any())
    have_extra = False
    while run:
        remaining = span - tau
        last = (tau + h >= span * (1 - 1e-12)) | (remaining < 1e-10 * h)
        hs = torch.where(last, remaining, h)
        hs = torch.where(active, hs, torch.zeros_like(hs))
        hd = (d * hs).to(dtype) if dtype != f64 else d * hs
        st = method.stages(k1, fresh, st)
        y1, err = method.step_batch(f, p, tcur, hd, y, st)
        nfev += method.s - 1
        nsteps += 1
        if adaptive:
            sc = torch.maximum(y.detach().abs(), y1.detach().abs()).mul_(opts.rtol).add_(opts.atol)
            # the row norms as one matrix product: a reduction over a short last axis
            # (n = 2) is ~2x slower
            r = err.detach().div_(sc)
            en = torch.mm(r * r, ones_n).sqrt_()
            en = (en / math.sqrt(n)).to(f64)
            # error_order is read per step: a composite method may switch members
            acc, h_next, errold_new = ctrl.propose_batch(
                en, errold, hs.clamp_min(1e-300), method.error_order
            )
            nonfinite = ~torch.isfinite(en)
        else:
            en = None
            finite = torch.isfinite(y1).all(dim=-1, keepdim=True)
            acc, h_next, errold_new = finite, h, errold
            nonfinite = ~finite
        acc = acc & active
        rej = active & ~acc
        tau_new = torch.where(acc, torch.where(last, torch.full_like(tau, span), tau + hs), tau)
        # save points covered by the accepted steps
        jnew = torch.searchsorted(taus, tau_new.view(-1) * (1 + 1e-14), right=True)
        jnew = torch.where(acc.view(-1), jnew, jb)
        count = jnew - jb  # save points each row's step covers (0 if rejected)
        M, nacc, nrej = torch.stack([count.max(), acc.sum(), rej.sum()]).tolist()
        naccept += int(nacc)
        nreject += int(nrej)
        if M > 0:
            have_extra = False
            if method.has_extra:
                method.extra(f, p, tcur, hd, y, st)
                nfev += method.S - method.s
                have_extra = True
            # slots m < M of every row: save index jb + m where m < count, else the spare
            # column T (a sink); evaluated by broadcasting, written by one scatter_ of single
            # elements (index_copy_ of rows of n values costs ~6x more for small n)
            slot = torch.arange(M, device=device).view(-1, 1)  # (M, 1)
            jj = jb.view(1, -1) + slot  # (M, B)
            jj = torch.where(slot < count.view(1, -1), jj, T)
            # clamped: a sink slot (or an idle row, hs = 0) must not make inf (whose
            # zero gradient would still be NaN)
            theta = (taus_sink[jj] - tau.view(1, -1)) / hs.view(1, -1).clamp_min(1e-300)
            vals = method.dense_slots(theta.clamp_(0.0, 1.0), hd, y, y1, st)  # (M, B, n)
            flat = ((rows_b * (T + 1) + jj).view(-1, 1) * n + cols_n).view(-1)
            out.view(-1).scatter_(0, flat, vals.reshape(-1))
        jb = jnew
        y = torch.where(acc, y1, y)
        tau = tau_new
        tcur = t0 + d * tau
        knext = method.next_k1(st, M > 0 and have_extra)
        if knext is not None and method.fsal:
            k1 = torch.where(acc, knext.view(B, n), k1)
        else:
            # rows whose step was rejected keep (t, y), so re-evaluating f gives their k1
            k1 = f(tcur, y, p)
            nfev += 1
        steps_b = steps_b + active.long()
        if adaptive:
            h = torch.where(active, h_next.clamp(max=span), h)
            errold = errold_new
        failed = rej & (h < max(opts.dtmin, tiny))
        code = torch.where(failed, torch.where(nonfinite, 3, 2), code)
        if not adaptive:
            code = torch.where(active & nonfinite, 3, code)
        code = torch.where(active & (steps_b >= opts.max_steps) & (tau < span), 1, code)
        active = active & (code == 0) & (tau < span * (1 - 1e-14))
        run = bool(active.any())
    out = out[:, :T]
    codes = [_CODES[c] for c in code.view(-1).tolist()]
    worst = max(codes, key=lambda c: _CODES.index(c))
    t_reached = (t0 + d * tau).view(-1)
    if worst != "Success":
        # save points beyond where a trajectory stopped are NaN
        missing = torch.arange(T, device=device).view(1, -1) >= jb.view(-1, 1)
        out = torch.where(missing.unsqueeze(-1), torch.full_like(out, math.nan), out)
        bad = codes.index(worst)
        message = RETCODES[worst].format(
            t=float(t_reached[bad]), max_steps=opts.max_steps, dtmin=opts.dtmin
        )
        message = f"trajectory {bad}: {message}"
    else:
        message = RETCODES["Success"]
    stats = {"nfev": nfev, "nsteps": nsteps, "naccept": naccept, "nreject": nreject}
    if st is not None:
        for key, v in st.counts.items():
            stats[key] = stats.get(key, 0) + v
    return LoopResult(saveat, out, worst, message, t_reached, stats, None, codes)
