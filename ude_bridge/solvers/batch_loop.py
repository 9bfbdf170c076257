"""The integration loop for a batch ``(B, n)``: one step size and error norm per trajectory.

torchode's approach: each trajectory keeps its own ``t``, ``h`` and controller state, so a
batch gives every trajectory the accuracy it would get alone. The batch advances in lock
step (one stage evaluation of ``f`` on the whole batch); a trajectory whose step is rejected
or that has finished keeps its state (masked with ``torch.where``). Control is tensors of
shape ``(B,)``; the host synchronises once per step (the rows still active, failed and
accepted, and the window of save points the step covers, in one transfer). Every active
row has taken every step so far, so the step limit is a Python count; inactive rows step
by ``h = 0``. Measured on 16384 Lotka-Volterra rows (one CPU thread), ``f`` is ~1/4 of
the solve; the rest is this bookkeeping, the save points (`_save_slots`, `_SaveIndex`) and
the stage combinations (`ude_bridge.solvers.explicit`), every operation on ``(B, n)`` or
larger costing tens of microseconds.
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
    # the mean of squares over the state axis as one matrix product: a reduction over a
    # short last axis (n = 2) is ~2x slower
    mean_n = torch.full((n, 1), 1.0 / n, dtype=dtype, device=device)
    taus_sink = torch.cat([taus, taus[-1:]])  # the sink slot T reads the last save time
    save_index = _SaveIndex(taus, span)
    # column T: a sink for slots past the last save point; not zeroed: every slot before a
    # row's next save index is written, and those after it are set to NaN at the end. (A
    # time-major (T + 1, n, B) store, where rows at one save index land side by side, was
    # measured no faster, and its (B, T, n) view is awkward for what the user does next.)
    out = y0.new_empty(B, T + 1, n)
    # the flat offset of (component, row) at save index 0 in `out`, component-major like
    # the dense output (`horner_slots`), and slot numbers
    base = torch.add(
        torch.arange(n, device=device).view(-1, 1),
        torch.arange(B, device=device).view(1, -1),
        alpha=(T + 1) * n,
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
    nsteps = naccept = nreject = 0
    nactive = B
    fresh = k1.requires_grad or y0.requires_grad
    st = None
    hmin = max(opts.dtmin, 1e-14 * max(1.0, abs(t0), abs(t1)))
    # t and h as f reads them: the same tensors when the solve starts at 0 and runs forwards
    plain = t0 == 0.0 and d == 1.0
    run = B > 0
    have_extra = False
    while run:
        # a row's last step ends exactly at t1. Inactive rows get hs = 0: finished ones have
        # span - tau = 0, failed ones h = 0 (set below). A row with span - tau < 1e-10 h
        # (the old second test) has tau + h > span, so the one comparison covers it
        last = tau + h >= span * (1 - 1e-12)
        hs = torch.where(last, span - tau, h)
        hd = hs if (d == 1.0 and dtype == f64) else (d * hs).to(dtype)
        st = method.stages(k1, fresh, st)
        y1, err = method.step_batch(f, p, tcur, hd, y, st)
        nfev += method.s - 1
        nsteps += 1
        if adaptive:
            sc = torch.maximum(y.detach().abs(), y1.detach().abs()).mul_(opts.rtol).add_(opts.atol)
            r = err.detach().div_(sc)
            en = torch.mm(r * r, mean_n).sqrt_()
            if en.dtype != f64:
                en = en.to(f64)
            # error_order is read per step: a composite method may switch members
            acc, h_next, errold_new = ctrl.propose_batch(en, errold, hs, method.error_order)
            h_new = h_next.clamp_(max=span)
        else:
            en = y1
            acc = torch.isfinite(y1).all(dim=-1, keepdim=True)
            h_new, errold_new = h, errold
        acc = acc & active
        rej = active & ~acc
        tau_new = torch.where(acc, torch.where(last, span, tau + hs), tau)
        # save points covered by the accepted steps (a rejected row's tau, hence its count,
        # is unchanged)
        jnew = save_index(tau_new.view(-1) * (1 + 1e-14))
        count = jnew - jb  # save points each row's step covers (0 if rejected)
        # a rejected row whose next step would be below hmin fails (its error non-finite:
        # Unstable; else DtLessThanMin). Without error control, a non-finite step fails
        failed = rej & (h_new < hmin) if adaptive else rej
        active_new = active & ~failed & (tau_new < span * (1 - 1e-14))
        # one transfer: the most save points a row's step covers, the accepted, failed and
        # still active rows, and how many rows cover each number of points (`_slot_split`)
        hist = torch.bincount(count.clamp(max=_HIST), minlength=_HIST + 1)
        head = torch.stack([count.max(), acc.sum(), failed.sum(), active_new.sum()])
        sync = torch.cat([head, hist]).tolist()
        M, nacc, nfail, nactive_new = sync[:4]
        naccept += nacc
        nreject += nactive - nacc
        if M > 0:
            have_extra = False
            if method.has_extra:
                method.extra(f, p, tcur, hd, y, st)
                nfev += method.S - method.s
                have_extra = True
            M1 = _slot_split(M, sync[4:], B)
            _save_slots(method, out, M1, jb, tau, hs, hd, y, st, taus_sink, base, slots)
            if M1 < M:
                # the few rows whose step covers more than M1 points: their remaining
                # slots, on those rows only (index_select: ~2x faster than x[rows])
                rows = torch.nonzero(count > M1).view(-1)
                _save_slots(
                    method,
                    out,
                    M - M1,
                    jb.index_select(0, rows).add_(M1),
                    tau.index_select(0, rows),
                    hs.index_select(0, rows),
                    hd.index_select(0, rows),
                    y.index_select(0, rows),
                    Kept(_rows_of(st.K, B, rows)),
                    taus_sink,
                    base.index_select(1, rows),
                    slots,
                )
        jb = jnew
        # the row mask spread over the state axis once: torch.where broadcasting a (B, 1)
        # mask over n = 2 is ~3x slower than on (B, n) operands
        accx = acc.expand(B, n).contiguous()
        y = torch.where(accx, y1, y)
        tau = tau_new
        tcur = tau if plain else t0 + d * tau
        knext = method.next_k1(st, M > 0 and have_extra)
        if knext is not None and method.fsal:
            k1 = torch.where(accx, knext.view(B, n), k1)
        else:
            # rows whose step was rejected keep (t, y), so re-evaluating f gives their k1
            k1 = f(tcur, y, p)
            nfev += 1
        errold = errold_new
        if nfail:
            nonfinite = ~torch.isfinite(en).all(dim=-1, keepdim=True)
            code = torch.where(failed, torch.where(nonfinite, 3, 2), code)
        # every active row has taken every step so far: the step limit is one count
        if nsteps >= opts.max_steps:
            code = torch.where(active & (tau < span), 1, code)
            active_new = active_new & (code == 0)
            nactive_new = int(active_new.sum())
        active, nactive = active_new, nactive_new
        # failed rows step by 0 from now on (see `hs`)
        h = torch.where(active, h_new, 0.0) if nfail or nsteps >= opts.max_steps else h_new
        run = nactive > 0
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


def _rows_of(K: torch.Tensor, B: int, rows: torch.Tensor) -> torch.Tensor:
    """The columns of stages ``K`` ``(S, B*n)`` that belong to ``rows``: ``(S, R*n)``."""
    S = K.shape[0]
    return K.view(S, B, -1).index_select(1, rows).view(S, -1)


class _SaveIndex:
    """``x -> `` the number of save times ``<= x`` (``torch.searchsorted(taus, x, right=True)``)
    for ``x`` in ``[0, span]``, by a lookup table: ~6x faster than the binary search
    (0.65 ms for 16384 rows on one CPU thread, as much as an evaluation of ``f``).

    Buckets of width ``w`` at most a quarter of the smallest gap between save times: for
    ``x`` in bucket ``g`` (rounded either way by one), ``lo[g]``, the save times below
    ``(g - 1) w``, is the count or one less (at most one save time lies within ``3 w``),
    and one comparison settles it. Save times closer than ``span / 2**14`` (or repeated)
    fall back to the binary search.
    """

    def __init__(self, taus: torch.Tensor, span: float) -> None:
        self.taus = taus
        T = taus.shape[0]
        gap = float((taus[1:] - taus[:-1]).min()) if T > 1 else span
        self.lut = None
        if span > 0 and gap > 0 and span / gap < 2**14:
            G = int(math.ceil(4 * span / gap)) + 2
            self.inv_w = G / span
            edges = (torch.arange(G + 3, dtype=taus.dtype, device=taus.device) - 1) / self.inv_w
            self.G = G + 2
            self.lut = torch.searchsorted(taus, edges, right=False)  # save times < edge
            self.pad = torch.cat([taus, taus.new_full((1,), math.inf)])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.lut is None:
            return torch.searchsorted(self.taus, x, right=True)
        g = x.mul(self.inv_w).clamp_(0.0, self.G).long()
        j = self.lut.index_select(0, g)
        return j.add_(self.pad.index_select(0, j) <= x)


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


def _save_slots(method, out, M, jb, tau, hs, hd, y, st, taus_sink, base, slots) -> None:
    """Write the dense output of this step at the next ``M`` save points of every row.

    Row ``b`` gets slots ``m < M`` at save index ``jb + m`` (the spare column ``T`` of
    ``out`` once past the last save point). Slots the row's step does not cover (a rejected
    step, or fewer than ``M`` points crossed) receive values extrapolated from this step; a
    later step that covers them overwrites them, in step order, and points no step covers
    are set to NaN at the end. So no per-row mask or count is needed here.

    ``theta`` and the save indices are ``(M, B)``, one per row and slot; the values come
    back component-major (``(M, n, B)`` in memory, see `horner_slots`) and are scattered in
    that order, with the flat index ``base + n * jx`` (``base`` ``(n, B)``). Spreading the
    row scalars over the ``n`` components first, as this did before, doubled the work on
    indices and ``theta``: ~25 % of this function for ``n = 2``. ``theta`` is clamped to
    ``[0, 1]``: an idle row (``hs = 0``) or a far slot must not make inf (whose zero
    gradient would still be NaN).
    """
    B, n = y.shape
    T = taus_sink.shape[0] - 1
    jx = (jb.view(1, B) + slots[:M]).clamp_(max=T)  # (M, B) save index
    theta = taus_sink.index_select(0, jx.view(-1)).view(M, B)
    theta = theta.sub_(tau.view(1, B)).mul_((1.0 / hs.clamp_min(1e-300)).view(1, B))
    theta = theta.clamp_(0.0, 1.0)
    vals = method.dense_slots(theta, hd, y, y, st).transpose(1, 2)  # (M, n, B)
    if not vals.is_contiguous():
        vals = vals.contiguous()
    # one scatter_ of single elements (index_copy_ of rows of n values costs ~6x more for
    # small n)
    idx = torch.add(base.view(1, n, B), jx.view(M, 1, B), alpha=n)
    out.view(-1).scatter_(0, idx.view(-1), vals.view(-1))
