"""The integration loop for one trajectory: method <-> controller <-> saveat.

Control lives outside the step, in Python floats: one host synchronisation per step (the
error norm). Save points are filled from the step's dense output, for every requested time
the accepted step covers, in one vectorised evaluation. Times are float64 whatever the
state's dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..solution import RETCODES
from .controllers import PIController, initial_step
from .explicit import ExplicitRK, dense_eval, extra_stages, rk_step

__all__ = ["LoopOptions", "LoopResult", "integrate"]


@dataclass(frozen=True)
class LoopOptions:
    """Validated options of one solve (see `ude_bridge.solve`)."""

    rtol: float = 1e-6
    atol: Any = 1e-6
    dt: float | None = None
    adaptive: bool = True
    max_steps: int = 100_000
    dtmin: float = 0.0
    dense: bool = False
    controller: PIController = field(default_factory=PIController)


@dataclass
class LoopResult:
    """What the loop hands back to the backend."""

    t: torch.Tensor  # (T,) float64
    u: torch.Tensor  # (T, *shape) or (B, T, n)
    retcode: str
    message: str
    t_reached: Any
    stats: dict[str, int]
    interpolant: Any = None
    retcodes: list[str] | None = None


def _message(code: str, **kw: Any) -> str:
    return RETCODES[code].format(**kw)


def integrate(
    method: ExplicitRK,
    f: Any,
    p: Any,
    y0: torch.Tensor,
    t0: float,
    t1: float,
    saveat: torch.Tensor | None,
    opts: LoopOptions,
) -> LoopResult:
    """Integrate one trajectory ``y0`` (any shape) from ``t0`` to ``t1``.

    ``saveat`` is a float64 ``(T,)`` tensor inside ``[t0, t1]`` (ordered along the direction
    of integration), or None to save at every accepted step.
    """
    d = 1.0 if t1 > t0 else -1.0
    span = abs(t1 - t0)
    shape = y0.shape
    N = y0.numel()
    dtype, device = y0.dtype, y0.device
    fresh = torch.is_grad_enabled() or opts.dense
    K = torch.empty(method.S, N, dtype=dtype, device=device)
    tq = torch.scalar_tensor(t0, dtype=torch.float64)
    y = y0
    k1 = f(tq, y, p)
    if k1.shape != shape:
        from ..errors import InputError

        raise InputError(
            f"solve: f(t, u, p) must return the shape of u, {tuple(shape)}; got {tuple(k1.shape)}."
        )
    nfev, nsteps, naccept, nreject = 1, 0, 0, 0
    adaptive = opts.adaptive and method.adaptive
    if opts.dt is not None:
        h = opts.dt
    else:
        h = initial_step(
            f, p, t0, y.detach(), k1.detach(), method.order, opts.rtol, opts.atol, d, span
        )
        nfev += 1
    h = min(abs(h), span)
    k = method.error_order
    ctrl = opts.controller
    errold = ctrl.qoldinit

    # save points, in the coordinate tau = d * (t - t0), increasing
    every_step = saveat is None
    if every_step:
        ts_list: list[float] = [t0]
        us: list[torch.Tensor] = [y0.reshape(1, -1)]
    else:
        taus = (saveat - t0) * d
        taus_dev = taus.to(device)
        T = taus.shape[0]
        j = 0
        while j < T and float(taus[j]) <= 0.0:
            j += 1
        us = [y0.reshape(1, -1).expand(j, N)] if j else []
    steps: list[tuple[float, float, torch.Tensor, torch.Tensor]] = []

    t = t0
    tau = 0.0
    code = "Success"
    while span - tau > 1e-14 * max(1.0, span):
        if nsteps >= opts.max_steps:
            code = "MaxIters"
            break
        last = tau + h >= span * (1 - 1e-12) or span - (tau + h) < 1e-10 * h
        hs = span - tau if last else h
        hd = d * hs
        if fresh:
            K = torch.empty(method.S, N, dtype=dtype, device=device)
        y1, err, K = rk_step(method, f, p, tq, hd, y, k1, K)
        nfev += method.s - 1
        nsteps += 1
        if adaptive:
            # control sees no gradients: detached, so autograd records nothing here
            sc = torch.maximum(y.detach().abs(), y1.detach().abs()).mul_(opts.rtol).add_(opts.atol)
            en = float(torch.linalg.vector_norm(err.detach().div_(sc))) / math.sqrt(N)
            accept, h_next, errold = ctrl.propose(en, errold, hs, k)
            nonfinite = not math.isfinite(en)
        else:
            accept, h_next = True, h
            if not bool(torch.isfinite(y1).all()):
                code = "Unstable"
                break
        if not accept:
            nreject += 1
            h = h_next
            if h < opts.dtmin or h < 1e-14 * max(1.0, abs(t)):
                code = "Unstable" if nonfinite else "DtLessThanMin"
                break
            continue
        naccept += 1
        tau_new = span if last else tau + hs
        t_new = t1 if last else t0 + d * tau_new
        have_extra = False
        if every_step:
            ts_list.append(t_new)
            us.append(y1.reshape(1, -1))
        else:
            j1 = j
            while j1 < T and float(taus[j1]) <= tau_new * (1 + 1e-14):
                j1 += 1
            if j1 > j:
                if method.S > method.s:
                    K = extra_stages(method, f, p, tq, hd, y, K)
                    nfev += method.S - method.s
                    have_extra = True
                theta = (taus_dev[j:j1] - tau) / hs
                us.append(dense_eval(method, theta, hd, y, K))
                j = j1
        if opts.dense:
            if not have_extra and method.S > method.s:
                K = extra_stages(method, f, p, tq, hd, y, K)
                nfev += method.S - method.s
                have_extra = True
            steps.append((t, hd, y.reshape(-1), K))
        t, tau, y = t_new, tau_new, y1
        tq = torch.scalar_tensor(t, dtype=torch.float64)
        if method.fsal:
            k1 = K[method.s - 1].view(shape)
            if not fresh:
                k1 = k1.clone()
        elif have_extra and method.extra0_is_next_k1:
            k1 = K[method.s].view(shape)
            if not fresh:
                k1 = k1.clone()
        else:
            k1 = f(tq, y, p)
            nfev += 1
        if adaptive:
            h = min(h_next, span)
        if opts.dtmin and h < opts.dtmin and not last:
            code = "DtLessThanMin"
            break

    stats = {"nfev": nfev, "nsteps": nsteps, "naccept": naccept, "nreject": nreject}
    if every_step:
        t_out = torch.tensor(ts_list, dtype=torch.float64)
    else:
        t_out = saveat
        if code != "Success":
            # keep only the save points reached; the rest are NaN (the solve stopped)
            got = sum(int(x.shape[0]) for x in us)
            if got < T:
                us.append(torch.full((T - got, N), math.nan, dtype=dtype, device=device))
    u = torch.cat(us, 0).view(-1, *shape) if us else y0.new_empty((0, *shape))
    message = _message(code, t=t, max_steps=opts.max_steps, dtmin=opts.dtmin)
    interp = _make_interpolant(method, steps, shape, t0, t1, y0) if opts.dense else None
    return LoopResult(t_out, u, code, message, t, stats, interp)


def _make_interpolant(method: ExplicitRK, steps, shape, t0: float, t1: float, y0):
    if not steps:
        return None
    starts = torch.tensor([s[0] for s in steps], dtype=torch.float64)
    hs = torch.tensor([s[1] for s in steps], dtype=torch.float64)
    Y = torch.stack([s[2] for s in steps])  # (S, N)
    Ks = torch.stack([s[3] for s in steps])  # (S, stages, N)
    d = 1.0 if t1 > t0 else -1.0
    powers = torch.arange(1, method.Q + 1, dtype=torch.float64)
    DT = method.DT.to(torch.float64).cpu()

    def interpolant(tq: torch.Tensor) -> torch.Tensor:
        idx = torch.searchsorted(starts * d, tq * d, right=True) - 1
        idx = idx.clamp(0, len(steps) - 1)
        theta = ((tq - starts[idx]) / hs[idx]).clamp(0.0, 1.0)
        bt = (theta.view(-1, 1).pow(powers) @ DT).to(Y.dtype).to(Y.device)
        dev_idx = idx.to(Y.device)
        h = hs[idx].to(Y.dtype).to(Y.device)
        vals = Y[dev_idx] + h[:, None] * torch.einsum("ms,msn->mn", bt, Ks[dev_idx])
        return vals.view(-1, *shape)

    return interpolant
