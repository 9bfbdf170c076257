"""Jacobians $J = \\partial f/\\partial u$ and time derivatives $f_t$ for the stiff methods.

Per-op dispatch (a few microseconds per tiny tensor op) dominates the small systems stiff
problems usually are, so the cheapest *exact* way is chosen once per solve, on its first
Jacobian, and then kept:

1. ``"user"``: ``problem.jac(t, u, p)``, hand-written or generated symbolically.
2. ``"complex"``: the complex step (Squire & Trapp, *SIAM Review* 40(1), 1998; Martins,
   Sturdza & Alonso, *ACM TOMS* 29(3), 2003). One evaluation of ``f`` on the ``n`` complex
   copies $u + i\\varepsilon e_j$ gives $J e_j = \\mathrm{Im} f(u + i\\varepsilon e_j)/\\varepsilon$
   with no cancellation (exact to round-off for $\\varepsilon = 10^{-30}$) and $f(u)$ itself as
   the real part. It needs ``f`` to be built from analytic operations, so it is used only
   when it agrees with autograd on the first Jacobian (``abs``, comparisons, ``clamp``,
   ``relu`` or networks with real weights fail that check or raise, and autograd is kept).
   Measured on Robertson's problem: ~2 evaluations of ``f``, against ~7 for autograd.
3. ``"copies"``: reverse-mode autograd, one forward pass on ``n`` copies of ``u`` (``f`` is
   vectorised over leading dimensions; checked: every row must equal $f(u)$) and one
   backward pass with the identity as output gradients.
4. ``"rows"``: one forward pass and ``n`` backward passes (a batch with per-trajectory
   parameters, or an ``f`` that is not vectorised).
5. ``"fd"``: forward differences, when autograd cannot see through ``f`` (numpy inside).

A batch ``(B, n)`` uses ``"user"``, ``"complex"`` (``n`` evaluations on the batch),
``"rows"`` or ``"fd"``. The time derivative $f_t$ is a forward difference in $t$, computed
only when autograd finds a path from ``t`` to the output of ``f`` (checked once per solve);
it enters the step through $h^2 f_t$, so its $O(\\sqrt{\\varepsilon})$ error is harmless.

Gradients: every mode is differentiable (complex autograd for the complex step,
``create_graph=True`` for reverse mode), so backprop through a stiff solve is exact for
the discrete scheme.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..errors import InputError

__all__ = ["JacobianState", "jacobian", "jacobian_batch", "time_derivative"]

Field = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
F64 = torch.float64
#: complex-step size: Im f(u + i eps e_j) = eps J e_j + O(eps^3); tiny, never near round-off
_CS_EPS = {torch.float64: 1e-30, torch.float32: 1e-15}
#: the complex step must agree with the reference Jacobian to this (relative to max |J|)
_CS_AGREE_AD, _CS_AGREE_FD = 1e-8, 1e-5


class JacobianState:
    """Per-solve Jacobian state: the mode, whether ``f`` depends on ``t``, the last ``J``.

    ``t``, ``y``, ``J``, ``ft`` cache the last Jacobian (``y`` by identity: the loops pass
    back the very tensor a step returned), so a retried step reuses it.
    """

    __slots__ = (
        "mode",
        "autonomous",
        "t",
        "y",
        "J",
        "ft",
        "eye",
        "ieps",
        "inv_eps",
        "inference",
        "inference_mode",
    )

    def __init__(self) -> None:
        self.mode: str | None = None
        self.autonomous: bool | None = None
        self.t: Any = None
        self.y: Any = None
        self.J: Any = None
        self.ft: Any = None
        self.eye: Any = None  # (n, n) identity in the state dtype
        self.ieps: Any = None  # (n, n) i * eps * identity, complex
        self.inv_eps = 1.0
        #: whether ``f`` gives the same result under `torch.inference_mode` (probed once by
        #: the Rosenbrock step; None: not probed yet)
        self.inference: bool | None = None
        #: the mode's context manager, reused by every step (half the cost of a new one)
        self.inference_mode = torch.inference_mode()


class _Unsupported(Exception):
    """f cannot be differentiated this way; try the next way."""


_FAILURES = (_Unsupported, RuntimeError, TypeError, ValueError, IndexError, AttributeError)


def _setup(state: JacobianState, y: torch.Tensor) -> None:
    if state.eye is None:
        n = y.shape[-1]
        state.eye = torch.eye(n, dtype=y.dtype, device=y.device)
        cdtype = torch.complex128 if y.dtype == F64 else torch.complex64
        eps = _CS_EPS.get(y.dtype, 1e-15)
        state.ieps = torch.eye(n, dtype=cdtype, device=y.device) * (1j * eps)
        state.inv_eps = 1.0 / eps


def _depends_on_t(out: torch.Tensor, tt: torch.Tensor) -> bool:
    if not out.requires_grad:
        return False
    (g,) = torch.autograd.grad(out.sum(), tt, retain_graph=True, allow_unused=True)
    return g is not None


def _leaf_or_path(y: torch.Tensor, graph: bool) -> torch.Tensor:
    """``y`` itself when its graph must be kept, else a detached leaf requiring grad."""
    if graph and y.requires_grad:
        return y
    return y.detach().requires_grad_()


def _check_rows(out: Any, f0: torch.Tensor | None, n: int) -> None:
    """``f`` evaluated on ``n`` copies of ``u`` must give ``n`` rows equal to $f(u)$ (it is
    vectorised over leading dimensions; one that indexes ``u[0]`` is not)."""
    if not isinstance(out, torch.Tensor) or out.shape != (n, n):
        raise _Unsupported
    if f0 is not None:
        re = out.detach().real if out.is_complex() else out.detach()
        f0 = f0.detach()
        # batched rows may round differently; the complex step adds O(eps^2) to real parts
        rtol = max(1e-9, 100 * torch.finfo(f0.dtype).eps)
        atol = rtol * 1e-3 * float(f0.abs().max()) + 1e-30
        if not torch.allclose(re, f0.expand(n, n), rtol, atol):
            raise _Unsupported


def _ad_copies(f: Field, p: Any, tt, y: torch.Tensor, eye, graph: bool, f0):
    """$J$ ``(n, n)`` from one forward pass on ``n`` copies of ``y`` and one backward pass."""
    n = y.shape[-1]
    Y = _leaf_or_path(y, graph).expand(n, n)
    out = f(tt, Y, p)
    _check_rows(out, f0, n)
    if not out.requires_grad:
        raise _Unsupported
    (J,) = torch.autograd.grad(out, Y, eye, create_graph=graph, retain_graph=True)
    return J, out


def _ad_rows(f: Field, p: Any, tt, y: torch.Tensor, eye, graph: bool):
    """$J$ ``(..., n, n)`` from one forward pass and ``n`` backward passes (one per row):
    row ``k`` of every trajectory's Jacobian is the gradient of $\\sum_b f_k(u_b)$."""
    n = y.shape[-1]
    yl = _leaf_or_path(y, graph)
    out = f(tt, yl, p)
    if not isinstance(out, torch.Tensor) or out.shape != y.shape or not out.requires_grad:
        raise _Unsupported
    rows = []
    for k in range(n):
        go = eye[k].expand_as(out)
        (g,) = torch.autograd.grad(out, yl, go, create_graph=graph, retain_graph=True)
        rows.append(g)
    return torch.stack(rows, -2), out


def _complex_copies(f: Field, p: Any, tt, y: torch.Tensor, state: JacobianState, f0):
    """$J$ ``(n, n)`` and $f(u)$ ``(n,)`` (the real part of the first row) from one complex
    evaluation."""
    n = y.shape[-1]
    out = f(tt, state.ieps + y, p)  # (n, n) complex: row j is u + i eps e_j
    if not isinstance(out, torch.Tensor) or not out.is_complex():
        raise _Unsupported
    if f0 is not None:
        _check_rows(out, f0, n)
    elif out.shape != (n, n):
        raise _Unsupported
    if out.requires_grad or not out.is_cpu:
        return out.imag.t() * state.inv_eps, out.real[0]
    # no graph, on the CPU: the same arithmetic in numpy, a quarter of the per-call cost
    # of the torch ops at this size (the solve makes one such call per step)
    try:
        o = out.numpy()
    except RuntimeError:  # a conjugate or negative bit set
        o = out.resolve_conj().resolve_neg().numpy()
    return torch.from_numpy(o.imag.T * state.inv_eps), torch.from_numpy(o.real[0])


def _complex_columns(f: Field, p: Any, tt, y: torch.Tensor, state: JacobianState):
    """$J$ ``(B, n, n)`` of a batch: one complex evaluation per column."""
    n = y.shape[-1]
    yc = y.to(state.ieps.dtype)
    cols = []
    for j in range(n):
        out = f(tt, yc + state.ieps[j], p)
        if not isinstance(out, torch.Tensor) or not out.is_complex() or out.shape != y.shape:
            raise _Unsupported
        cols.append(out.imag)
    return torch.stack(cols, -1) * state.inv_eps


def _fd(f: Field, p: Any, tt, y: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
    """Forward-difference $J$ ``(..., n, n)``, one evaluation per column (last resort)."""
    n = y.shape[-1]
    eps = math.sqrt(torch.finfo(y.dtype).eps)
    cols = []
    for j in range(n):
        dy = eps * y[..., j : j + 1].abs().clamp_min(1.0)
        yj = torch.cat([y[..., :j], y[..., j : j + 1] + dy, y[..., j + 1 :]], -1)
        dy = yj[..., j : j + 1] - y[..., j : j + 1]
        cols.append((f(tt, yj, p) - f0) / dy)
    return torch.stack(cols, -1)


def _prefer_complex(
    complex_jac: Callable[[], torch.Tensor], ref: torch.Tensor, ref_mode: str
) -> tuple[torch.Tensor, str, bool]:
    """Try the complex step against the reference Jacobian ``ref`` (autograd or differences):
    where they agree, the complex step becomes the mode (and, over differences, the
    Jacobian). Returns ``(J, mode, whether the complex evaluation ran)``."""
    try:
        Jc = complex_jac()
    except _FAILURES:
        return ref, ref_mode, False
    if _agree(Jc, ref, _CS_AGREE_AD if ref_mode != "fd" else _CS_AGREE_FD):
        return (Jc if ref_mode == "fd" else ref), "complex", True
    return ref, ref_mode, True


def _agree(J: torch.Tensor, ref: torch.Tensor, tol: float) -> bool:
    J, ref = J.detach(), ref.detach()
    tol = max(tol, 1e4 * torch.finfo(ref.dtype).eps)  # float32: ~1e-3
    if J.shape != ref.shape or not bool(torch.isfinite(J).all()):
        return False
    scale = ref.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(1e-300)
    return bool(((J - ref).abs() <= tol * scale).all())


def _check_user(J: Any, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(J, torch.Tensor) or tuple(J.shape) != shape:
        got = tuple(J.shape) if isinstance(J, torch.Tensor) else type(J).__name__
        raise InputError(f"solve: jac(t, u, p) must return a tensor of shape {shape}; got {got}.")
    return J


def _user_autonomy(f: Field, p: Any, tt: torch.Tensor, y: torch.Tensor, state) -> None:
    if state.autonomous is None:
        with torch.enable_grad():
            ttg = tt.detach().clone().requires_grad_()
            try:
                state.autonomous = not _depends_on_t(f(ttg, y.detach(), p), ttg)
            except _FAILURES:
                state.autonomous = False


def jacobian(
    f: Field,
    p: Any,
    t: float,
    y: torch.Tensor,
    f0: torch.Tensor | None,
    state: JacobianState,
    jac: Callable | None = None,
    graph: bool | None = None,
    tt: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """$J$ at ``(t, y)`` for one trajectory ``y`` ``(n,)`` (see the module docstring).

    Args:
        f0: $f(t, y)$ if known (needed on the first call, to choose the mode).
        state: per-solve state; its ``mode`` and ``autonomous`` are settled on first use.
        jac: the user's ``jac(t, u, p)``, or None.
        graph: keep the graph of $J$ (backprop); default: ``y`` or ``f0`` requires grad.
        tt: ``t`` as a float64 0-d tensor, when the caller has one (saves building it).

    Returns:
        ``(J, fy, nfev)``: the ``(n, n)`` Jacobian; $f(t, y)$ when the mode computed it on
        the way (``"complex"``, ``"copies"``), else None; the evaluations of ``f`` it cost.
    """
    n = y.shape[-1]
    if graph is None:
        graph = torch.is_grad_enabled() and (
            y.requires_grad or (f0 is not None and f0.requires_grad)
        )
    _setup(state, y)
    if tt is None:
        tt = torch.scalar_tensor(t, dtype=F64)
    if jac is not None:
        _user_autonomy(f, p, tt, y, state)
        state.mode = "user"
        return _check_user(jac(tt, y, p), (n, n)), None, 0
    mode = state.mode
    if mode == "complex":
        J, fy = _complex_copies(f, p, tt, y, state, None)
        return J, fy, 1
    if mode in ("copies", "rows"):
        with torch.enable_grad():
            if mode == "copies":
                J, out = _ad_copies(f, p, tt, y, state.eye, graph, None)
            else:
                J, out = _ad_rows(f, p, tt, y, state.eye, graph)
        if not graph:
            J, out = J.detach(), out.detach()
        return J, (out[0] if mode == "copies" else None), 1
    if mode == "fd":
        if f0 is None:
            return _fd(f, p, tt, y, f(tt, y, p)), None, n + 1
        return _fd(f, p, tt, y, f0), None, n
    return _choose(f, p, tt, y, f0, state, graph)


def _choose(f: Field, p: Any, tt, y: torch.Tensor, f0, state: JacobianState, graph: bool):
    """The first Jacobian of a solve: try every mode, keep the cheapest that is right."""
    n = y.shape[-1]
    if f0 is None:
        f0 = f(tt, y, p)
    nfev = 0
    ref, ref_mode, fy = None, None, None
    with torch.enable_grad():
        ttg = tt.clone().requires_grad_()
        for mode, fn in (("copies", _ad_copies), ("rows", _ad_rows)):
            try:
                args = (f, p, ttg, y, state.eye, graph) + ((f0,) if mode == "copies" else ())
                ref, out = fn(*args)
            except _FAILURES:
                nfev += 1
                continue
            nfev += 1
            state.autonomous = not _depends_on_t(out, ttg)
            ref_mode, fy = mode, (out[0] if mode == "copies" else None)
            break
    if ref is None:
        state.autonomous = False  # no autograd path: assume f depends on t
        ref, ref_mode = _fd(f, p, tt, y, f0), "fd"
        nfev += n
    ref, ref_mode, _ = _prefer_complex(
        lambda: _complex_copies(f, p, tt, y, state, f0)[0], ref, ref_mode
    )
    nfev += 1  # one complex evaluation, or the one that failed
    state.mode = ref_mode
    if not graph:
        ref = ref.detach()
        fy = None if fy is None else fy.detach()
    return ref, fy, nfev


def jacobian_batch(
    f: Field,
    p: Any,
    t: torch.Tensor,
    y: torch.Tensor,
    f0: torch.Tensor,
    state: JacobianState,
    jac: Callable | None = None,
) -> tuple[torch.Tensor, int]:
    """`jacobian` for a batch: ``y`` ``(B, n)``, ``t`` ``(B, 1)``; ``(J (B, n, n), nfev)``."""
    B, n = y.shape
    graph = torch.is_grad_enabled() and (y.requires_grad or f0.requires_grad)
    _setup(state, y)
    if jac is not None:
        _user_autonomy(f, p, t, y, state)
        state.mode = "user"
        return _check_user(jac(t, y, p), (B, n, n)), 0
    mode = state.mode
    if mode == "complex":
        return _complex_columns(f, p, t, y, state), n
    if mode == "rows":
        with torch.enable_grad():
            J, _ = _ad_rows(f, p, t, y, state.eye, graph)
        return (J if graph else J.detach()), 1
    if mode == "fd":
        return _fd(f, p, t, y, f0), n
    # the first Jacobian of the solve: choose
    nfev = 1
    ref, ref_mode = None, "rows"
    with torch.enable_grad():
        ttg = t.detach().clone().requires_grad_()
        try:
            ref, out = _ad_rows(f, p, ttg, y, state.eye, graph)
            state.autonomous = not _depends_on_t(out, ttg)
        except _FAILURES:
            ref = None
    if ref is None:
        state.autonomous = False
        ref, ref_mode = _fd(f, p, t, y, f0), "fd"
        nfev += n
    ref, ref_mode, ran = _prefer_complex(lambda: _complex_columns(f, p, t, y, state), ref, ref_mode)
    nfev += n if ran else 1  # one complex evaluation per column, or the one that failed
    state.mode = ref_mode
    return (ref if graph else ref.detach()), nfev


def time_derivative(f: Field, p: Any, t, h, y: torch.Tensor, f0: torch.Tensor, state):
    """$f_t$ at ``(t, y)`` by a forward difference in $t$; None when f does not use t.

    ``t`` and ``h`` are floats (one trajectory) or ``(B, 1)`` tensors (a batch).
    """
    if state.autonomous:
        return None
    eps = math.sqrt(torch.finfo(y.dtype).eps)
    if isinstance(t, torch.Tensor):
        dt = eps * torch.maximum(t.abs(), h.abs().to(F64)).clamp_min(1e-300)
        dt = (t + dt) - t
        return (f(t + dt, y, p) - f0) / dt.to(y.dtype)
    dt = eps * max(abs(t), abs(h), 1e-300)
    dt = (t + dt) - t
    return (f(torch.scalar_tensor(t + dt, dtype=F64), y, p) - f0) / dt
