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
from .method import Kept

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
    # column T: a sink for slots past the last save point; not zeroed: every slot before a
    # row's next save index is written, and those after it are set to NaN at the end
    out = y0.new_empty(B, T + 1, n)
    # save slots are handled on the flat (B*n) axis, each row's values spread over its n
    # columns: the flat offset of (row, save index 0, component) in `out`, and slot numbers
    base = (
        (torch.arange(B, device=device).view(-1, 1) * ((T + 1) * n))
        .add(torch.arange(n, device=device).view(1, -1))
        .view(1, -1)
    )
    slots = torch.arange(T + 1, device=device).view(-1, 1)
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
        # one transfer: the most save points a row's step covers, the accepted and
        # rejected rows, and how many rows cover each number of points (`_slot_split`)
        hist = torch.bincount(count.clamp(max=_HIST), minlength=_HIST + 1)
        sync = torch.cat([torch.stack([count.max(), acc.sum(), rej.sum()]), hist]).tolist()
        M, nacc, nrej = sync[:3]
        naccept += int(nacc)
        nreject += int(nrej)
        if M > 0:
            have_extra = False
            if method.has_extra:
                method.extra(f, p, tcur, hd, y, st)
                nfev += method.S - method.s
                have_extra = True
            M1 = _slot_split(M, sync[3:], B)
            _save_slots(method, out, M1, jb, tau, hs, hd, y, y1, st, taus_sink, base, slots)
            if M1 < M:
                # the few rows whose step covers more than M1 points: their remaining
                # slots, on those rows only
                rows = torch.nonzero(count > M1).view(-1)
                cols = (rows.view(-1, 1) * n + torch.arange(n, device=device)).view(-1)
                _save_slots(
                    method,
                    out,
                    M - M1,
                    jb[rows] + M1,
                    tau[rows],
                    hs[rows],
                    hd[rows],
                    y[rows],
                    y1[rows],
                    Kept(st.K.index_select(1, cols)),
                    taus_sink,
                    base.index_select(1, cols),
                    slots,
                )
        jb = jnew
        # the row mask spread over the state axis once: torch.where broadcasting a (B, 1)
        # mask over n = 2 is ~3x slower than on (B, n) operands
        accx = acc.expand(B, n).contiguous()
        y = torch.where(accx, y1, y)
        tau = tau_new
        tcur = t0 + d * tau
        knext = method.next_k1(st, M > 0 and have_extra)
        if knext is not None and method.fsal:
            k1 = torch.where(accx, knext.view(B, n), k1)
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
    worst_code, jb_min = torch.stack([code.max(), jb.min()]).tolist()
    worst = _CODES[worst_code]
    # one string per row: built from the device only when some row failed (a million-row
    # list comprehension costs ~45 ms, as much as the solve itself on a GPU)
    codes = [worst] * B if worst == "Success" else [_CODES[c] for c in code.view(-1).tolist()]
    t_reached = (t0 + d * tau).view(-1)
    if jb_min < T:
        # save points beyond where a trajectory stopped are NaN (the slots there may hold
        # values extrapolated by the last steps, see `_save_slots`)
        missing = torch.arange(T, device=device).view(1, -1) >= jb.view(-1, 1)
        out = torch.where(missing.unsqueeze(-1), torch.full_like(out, math.nan), out)
    if worst != "Success":
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


#: histogram bins of the save points covered per row (`_slot_split`); more count as this
_HIST = 32
#: the fixed cost of the second pass of `_save_slots` (index gathers, ~15 dispatches), in
#: row-slots; a row in that pass also costs its gathered stages, ~2 row-slots
_SPLIT_FIXED, _SPLIT_ROW = 4096, 2


def _slot_split(M: int, hist: list[int], B: int) -> int:
    """How many slots ``M1 <= M`` to evaluate on every row; rows covering more points get
    the rest in a second pass. Rows cover ~7 points on average but the busiest ~12 in the
    16384-row Lotka-Volterra benchmark: one pass of ``M`` slots wastes ~45 % of its work.
    Minimises ``M1 * B + (M - M1 + 2) * R(M1) + fixed`` with ``R(m)`` the rows covering
    more than ``m`` points (``hist[k]``: rows covering ``k``, the last bin all beyond)."""
    best, M1 = M * B, M
    above = B - hist[0]  # rows covering more than m points, m = 0, 1, ...
    for m in range(1, min(M, len(hist) - 1)):
        above -= hist[m]
        cost = m * B + (M - m + _SPLIT_ROW) * above + _SPLIT_FIXED
        if cost < best:
            best, M1 = cost, m
    return M1


def _save_slots(method, out, M, jb, tau, hs, hd, y, y1, st, taus_sink, base, slots) -> None:
    """Write the dense output of this step at the next ``M`` save points of every row.

    Row ``b`` gets slots ``m < M`` at save index ``jb + m`` (the spare column ``T`` of
    ``out`` once past the last save point). Slots the row's step does not cover (a rejected
    step, or fewer than ``M`` points crossed) receive values extrapolated from this step; a
    later step that covers them overwrites them, in step order, and points no step covers
    are set to NaN at the end. So no per-row mask or count is needed here.

    Everything runs on ``(M, B*n)`` operands, each row's scalars spread over its ``n``
    columns first (``(B*n,)``, cheap): broadcasting ``(M, B, 1)`` over a short state axis,
    or spreading ``(M, B)`` theta afterwards, each cost about as much as the interpolant
    itself for ``n = 2``. ``theta`` is clamped to ``[0, 1]``: an idle row (``hs = 0``) or
    a far slot must not make inf (whose zero gradient would still be NaN).
    """
    B, n = y.shape
    T = taus_sink.shape[0] - 1

    def spread(v: torch.Tensor) -> torch.Tensor:  # (B, 1) -> (1, B*n)
        return v.expand(B, n).reshape(1, -1)

    jx = (spread(jb.view(B, 1)) + slots[:M]).clamp_(max=T)  # (M, B*n) save index
    theta = taus_sink.index_select(0, jx.view(-1)).view(M, B * n)
    theta = theta.sub_(spread(tau)).mul_(spread(1.0 / hs.clamp_min(1e-300))).clamp_(0.0, 1.0)
    if theta.dtype != y.dtype:
        theta = theta.to(y.dtype)
    vals = method.dense_slots(theta.view(M, B, n), hd, y, y1, st)  # (M, B, n)
    # one scatter_ of single elements (index_copy_ of rows of n values costs ~6x more for
    # small n); the flat index is `base + n * jx`
    out.view(-1).scatter_(0, torch.add(base, jx, alpha=n).view(-1), vals.reshape(-1))
