"""The integration loop for one trajectory: method <-> controller <-> saveat.

Control lives outside the step, in Python floats: one host synchronisation per step (the
error norm). Save points are filled from the step's dense output, for every requested time
the accepted step covers, in one vectorised evaluation. Times are float64 whatever the
state's dtype.

For a small state on the CPU without a graph (up to `SMALL_NORM` components) the error norm
is computed on Python floats (`_small_norm`): three ``tolist`` calls and a loop cost ~2 us,
the seven torch operations of the general norm ~25 us, per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..solution import RETCODES
from .controllers import PIController, initial_step
from .forward_dense import SingleDense

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
    #: measure the error on the first ``norm_size`` components only (a seminorm: the
    #: adjoint's parameter-gradient quadrature needs no step control; Kidger et al. 2021)
    norm_size: int | None = None


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
    h_next: float | None = None  # the step the controller proposed last (to continue)


def _message(code: str, **kw: Any) -> str:
    return RETCODES[code].format(**kw)


#: the largest state whose error norm is computed on Python floats (measured: ~0.1 us per
#: component against ~25 us for the torch operations, break-even near 200 components)
SMALL_NORM = 64


def _small_norm(y: torch.Tensor, y1: torch.Tensor, err: torch.Tensor, rtol: float, atol: list):
    """The RMS norm of ``err`` scaled by $\\mathrm{rtol}\\max(|y|, |y_1|) + \\mathrm{atol}$,
    on Python floats (float64), over the ``len(atol)`` first components of 1-D tensors.

    $\\sqrt{\\sum_k q_k^2}$ overflows where the torch norm does (a huge error is not finite
    in either)."""
    acc = 0.0
    # a seminorm measures the first len(atol) components only (the adjoint's backward state
    # is ~1000 long, its norm 2 x n): only those are converted
    k = len(atol)
    if y.shape[0] > k:
        y, y1, err = y[:k], y1[:k], err[:k]
    for a, b, e, at in zip(y.tolist(), y1.tolist(), err.tolist(), atol, strict=True):
        q = e / (rtol * max(abs(a), abs(b)) + at)
        acc += q * q
    return math.sqrt(acc / len(atol))


def _norm(y: torch.Tensor, y1: torch.Tensor, err: torch.Tensor, opts: LoopOptions, N: int):
    """The RMS norm of ``err`` scaled by $\\mathrm{rtol}\\max(|y|, |y_1|) + \\mathrm{atol}$
    (over the first ``opts.norm_size`` components when set), by torch operations."""
    # control sees no gradients: autograd records nothing here
    with torch.no_grad():
        if opts.norm_size is None:
            sc = torch.maximum(y.abs(), y1.abs()).mul_(opts.rtol).add_(opts.atol)
            return float(torch.linalg.vector_norm(torch.div(err, sc))) / math.sqrt(N)
        k_ = opts.norm_size
        sc = torch.maximum(y[:k_].abs(), y1[:k_].abs()).mul_(opts.rtol).add_(opts.atol)
        return float(torch.linalg.vector_norm(err[:k_] / sc)) / math.sqrt(k_)


def integrate(
    method: Any,
    f: Any,
    p: Any,
    y0: torch.Tensor,
    t0: float,
    t1: float,
    saveat: torch.Tensor | None,
    opts: LoopOptions,
) -> LoopResult:
    """Integrate one trajectory ``y0`` ``(n,)`` from ``t0`` to ``t1`` with ``method``.

    ``method`` follows the protocol of `ude_bridge.solvers.method`. ``saveat`` is a float64
    ``(T,)`` tensor inside ``[t0, t1]`` (ordered along the direction of integration), or
    None to save at every accepted step.
    """
    d = 1.0 if t1 > t0 else -1.0
    span = abs(t1 - t0)
    shape = y0.shape
    N = y0.numel()
    dtype, device = y0.dtype, y0.device
    y = y0
    k1 = f(torch.scalar_tensor(t0, dtype=torch.float64), y, p)
    if k1.shape != shape:
        from ..errors import InputError

        raise InputError(
            f"solve: f(t, u, p) must return the shape of u, {tuple(shape)}; got {tuple(k1.shape)}."
        )
    # a stage buffer is reused across steps unless autograd records the steps (then each
    # step's stages must survive for the backward pass); dense output copies what it keeps
    fresh = k1.requires_grad or y0.requires_grad
    st = None
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
    ctrl = opts.controller
    errold = ctrl.qoldinit
    # the error norm on Python floats (see `_small_norm`): a small 1-D state on the CPU, no
    # graph; atol then as one float per component measured
    nn = N if opts.norm_size is None else opts.norm_size
    small_atol = None
    if (
        not fresh
        and y0.dim() == 1
        and device.type == "cpu"
        and dtype.is_floating_point
        and nn <= SMALL_NORM
    ):
        at = opts.atol
        small_atol = at.reshape(-1).tolist() if isinstance(at, torch.Tensor) else [float(at)]
        small_atol = (small_atol * nn if len(small_atol) == 1 else small_atol)[:nn]

    # save points, in the coordinate tau = d * (t - t0), increasing
    every_step = saveat is None
    if every_step:
        ts_list: list[float] = [t0]
        us: list[torch.Tensor] = [y0.reshape(1, -1)]
    else:
        taus_list = ((saveat - t0) * d).tolist()
        T = len(taus_list)
        j = 0
        while j < T and taus_list[j] <= 0.0:
            j += 1
        us = [y0.reshape(1, -1).expand(j, N)] if j else []
    steps: list[tuple[float, float, torch.Tensor, torch.Tensor]] = []

    t = t0
    tau = 0.0
    code = "Success"
    nonfinite = False
    while span - tau > 1e-14 * max(1.0, span):
        if nsteps >= opts.max_steps:
            code = "MaxIters"
            break
        last = tau + h >= span * (1 - 1e-12) or span - (tau + h) < 1e-10 * h
        hs = span - tau if last else h
        hd = d * hs
        st = method.stages(k1, fresh, st)
        y1, err = method.step(f, p, t, hd, y, st)
        nfev += method.s - 1
        nsteps += 1
        if adaptive:
            if small_atol is not None:
                en = _small_norm(y, y1, err, opts.rtol, small_atol)
            else:
                en = _norm(y, y1, err, opts, N)
            # error_order is read per step: a composite method may switch members
            accept, h_next, errold = ctrl.propose(en, errold, hs, method.error_order)
            nonfinite = not math.isfinite(en)
        else:
            accept, h_next = True, h
            if not bool(torch.isfinite(y1).all()):
                code = "Unstable"
                break
        if not accept:
            nreject += 1
            h = h_next
            # the rejected step may have overwritten the row k1 viewed; row 0 holds a copy
            k1 = st.k1.view(shape)
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
            while j1 < T and taus_list[j1] <= tau_new * (1 + 1e-14):
                j1 += 1
            if j1 > j:
                if method.has_extra:
                    method.extra(f, p, t, hd, y, st)
                    nfev += method.S - method.s
                    have_extra = True
                theta = [(x - tau) / hs for x in taus_list[j:j1]]
                us.append(method.dense(theta, hd, y, y1, st))
                j = j1
        if opts.dense:
            if not have_extra and method.has_extra:
                method.extra(f, p, t, hd, y, st)
                nfev += method.S - method.s
                have_extra = True
            steps.append((t, hd, y.reshape(-1), y1.reshape(-1), method.keep(st)))
        t, tau, y = t_new, tau_new, y1
        # the next first stage, when the step computed it (a view into the buffer, copied
        # into row 0 at the start of the next step)
        k1 = method.next_k1(st, have_extra)
        if k1 is None:
            k1 = f(torch.scalar_tensor(t, dtype=torch.float64), y, p)
            nfev += 1
        elif k1.shape != shape:  # a row of a stage buffer, for a state of several axes
            k1 = k1.view(shape)
        if adaptive:
            if last and hs < h and h_next >= hs:
                # a final step cut short to land on t1 says nothing against the step the
                # controller chose: a continuing solve (the adjoint's next save interval)
                # starts from that one, not from the cut step grown by at most qmax
                h_next = max(h_next, h)
            h = min(h_next, span)
        if opts.dtmin and h < opts.dtmin and not last:
            code = "DtLessThanMin"
            break

    stats = {"nfev": nfev, "nsteps": nsteps, "naccept": naccept, "nreject": nreject}
    if st is not None:
        for key, v in st.counts.items():
            stats[key] = stats.get(key, 0) + v
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
    interp = _make_interpolant(method, steps, shape, t0, t1) if opts.dense else None
    return LoopResult(t_out, u, code, message, t, stats, interp, h_next=h)


def _make_interpolant(method: Any, steps, shape, t0: float, t1: float):
    """Dense output over the whole solve from the kept steps (start, h, y, y1, stages)."""
    if not steps:
        return None
    dense = SingleDense(method, steps, t0, t1, shape)

    def interpolant(tq: torch.Tensor) -> torch.Tensor:
        return torch.stack([dense(t, clamp=True) for t in tq.tolist()])

    return interpolant
