"""The interpolating continuous adjoint: gradients through stiff solves.

The backsolve adjoint (`ude_bridge.solvers.sensitivity`) integrates $u$ backwards with the
adjoint. For a stiff problem that is hopeless: a mode that decays like $e^{\\lambda t}$,
$\\lambda \\ll 0$, forwards grows like $e^{|\\lambda| t}$ backwards (Robertson's problem:
$e^{120}$ over its last save interval). As SciMLSensitivity's ``InterpolatingAdjoint`` and
CVODES's adjoint module do, this one takes $u(t)$ from the forward solve's dense output
(`ude_bridge.solvers.forward_dense`) and integrates backwards, from $t_{T-1}$ to $t_0$, only

$$ \\dot a = -J(t)^\\top a, \\qquad \\dot g = -f_p(t)^\\top a, \\qquad
   J(t) = \\frac{\\partial f}{\\partial u}\\big(t, u(t)\\big),\\;
   f_p(t) = \\frac{\\partial f}{\\partial p}\\big(t, u(t)\\big), $$

from $a(t_{T-1}) = \\partial L/\\partial u(t_{T-1})$, $g(t_{T-1}) = 0$, adding
$\\partial L/\\partial u(t_k)$ to $a$ at every save time; then $a(t_0) = \\partial L/\\partial u_0$
and $g(t_0) = \\partial L/\\partial p$. The system is linear in $a$ and exactly as stiff as the
forward problem (its eigenvalues are those of $-J^\\top$ run backwards in time), so it is
integrated by a Rosenbrock method: Rodas5P whatever the forward method (measured: against
the forward's own Rosenbrock23 or Rodas4, it takes 2-9x less time for the same or better
accuracy, since the adjoint restarts a fast transient at every save time).

**The Jacobian of the adjoint system.** With respect to $z = (a, g)$ it is

$$ J_z = \\begin{pmatrix} -J^\\top & 0 \\\\ -f_p^\\top & 0 \\end{pmatrix}, \\qquad
   W = I - h\\gamma J_z = \\begin{pmatrix} I + h\\gamma J^\\top & 0 \\\\
   h\\gamma f_p^\\top & I \\end{pmatrix}, $$

built from $J$ alone (``problem.jac`` when given, else `ude_bridge.solvers.jacobians`: the
complex step or autograd), never by differentiating the vector-Jacobian products again.
$W$ is block lower triangular: a stage solve is an $n \\times n$ solve for $a$, and
$x_g = r_g - h\\gamma f_p^\\top x_a$ for $g$. Every $g$-part of a Rosenbrock step is linear in
the stage values, so with $\\beta = (I - \\gamma C)^{-\\top} m$ (the transformed tableau) the
step's whole update of $g$ is

$$ g_1 - g = -\\sum_i f_p(t_i)^\\top \\big(h\\gamma\\beta_i a_i\\big)
   - \\big(f_p(t + \\delta) - f_p(t)\\big)^\\top \\frac{h^2 (\\beta\\cdot\\gamma d)}{\\delta} a
   - f_p(t)^\\top\\, h\\gamma \\sum_i \\beta_i x_{a,i} , $$

($a_i$ the stage values, $t_i = t + c_i h$, the second term the time derivative by a
difference, the last the $W$ coupling): one evaluation of ``f`` on all the step's points
at once (``f`` is vectorised over leading dimensions; checked once, else one evaluation
per point) and one reverse pass, whatever the number of parameters; a second reverse pass
with the weights $(I - \\gamma C)^{-\\top}(m - \\hat m)$ gives the error estimate of $g$.
The $a$-part is $-J(t_i)^\\top a_i$ from the Jacobians at the distinct nodes (Rodas5P: five
per step, the one at $t + h$ serving the next step's $W$ too); when $J$ would cost $n$
reverse passes (the ``"rows"`` mode) it is one vector-Jacobian product per stage instead.

**Step-size control** uses the larger of the RMS error norms of $a$ and of $g$. A seminorm
on $a$ alone (Kidger, Chen & Lyons 2021, "Hey, that's not an ODE") is not enough here:
$g$ integrates $f_p(t, u(t))$, and a fast transient of $u$ that $a$ is smooth across (the
stiff start of the forward solve) is then stepped over; measured on a stiff linear problem
($\\lambda = -200$), 2 % error in $\\partial L/\\partial p$, and 1e-10 with $g$ controlled.

**Memory.** The full dense output of the forward solve (see `forward_dense`), or with
``sensealg="InterpolatingAdjoint(checkpointing=true)"`` only $u$ at the save times, the
dense output being recomputed one save interval at a time (a second forward solve; memory
$O(T n)$ plus one interval).

A batch ``(B, n)`` is one backward solve: the Jacobians are ``(B, n, n)``, each row's $u(t)$
comes from its own forward steps, and one step size serves the batch (the largest row
error decides); parameter gradients sum over the rows (or stay per row for per-trajectory
parameters, as autograd gives them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils import _pytree as pytree

from ..errors import SolveError
from .controllers import PIController
from .forward_dense import ForwardDense
from .jacobians import JacobianState, jacobian, jacobian_batch
from .rosenbrock import Rosenbrock, _Solver
from .sensitivity import generated_vjp

__all__ = ["BackwardOptions", "interpolating_adjoint_solve"]

F64 = torch.float64


@dataclass(frozen=True)
class BackwardOptions:
    """Settings of the backward (adjoint) solve.

    Args:
        method: the Rosenbrock method object that integrates the adjoint.
        rtol, atol: tolerances of the error control on $a$ and $g$ (the forward solve's).
        max_steps: backward steps allowed per save interval (as for the backsolve); more
            raise `SolveError`.
        dtmin: smallest step allowed.
        jac: the user's ``jac(t, u, p)``, or None (autograd / complex step).
    """

    method: Rosenbrock
    rtol: float = 1e-6
    atol: Any = 1e-6
    max_steps: int = 100_000
    dtmin: float = 0.0
    jac: Callable | None = None
    controller: PIController = field(default_factory=PIController)


def interpolating_adjoint_solve(
    solve_forward: Callable[[torch.Tensor, Any], tuple[torch.Tensor, ForwardDense | None, bool]],
    dense_interval: Callable[[torch.Tensor, Any, int], ForwardDense] | None,
    f: Callable,
    u0: torch.Tensor,
    params: Any,
    ts: torch.Tensor,
    options: BackwardOptions,
) -> torch.Tensor:
    """``u`` at the save times ``ts`` with gradients by the interpolating adjoint.

    Args:
        solve_forward: ``(u0, params) -> (u, dense, success)``: ``u`` ``(T, n)`` or
            ``(B, T, n)`` at ``ts``, the forward solution as a `ForwardDense` (None with
            checkpointing), and whether the solve succeeded; called without autograd.
        dense_interval: with checkpointing, ``(u_start, params, k) -> dense`` over
            ``[ts[k-1], ts[k]]`` from the stored ``u_start = u(ts[k-1])``; else None.
        f: the vector field ``f(t, u, p)``.
        u0, params: what gradients flow to (the tensors in ``params`` that require grad).
        ts: float64 save times ``(T,)``, ``ts[0]`` the start of the solve.
        options: the backward solve's settings.

    Returns:
        ``u`` as ``solve_forward`` gives it, differentiable w.r.t. ``u0`` and ``params``.
        After a failed forward solve the gradients are NaN (the loss is NaN too).

    Raises:
        SolveError: (in the backward pass) the backward solve needed more than
        ``max_steps`` steps in one save interval, or its step size underflowed.
    """
    leaves, spec = pytree.tree_flatten(params)
    idx = [i for i, x in enumerate(leaves) if isinstance(x, torch.Tensor) and x.requires_grad]
    grad_leaves = [leaves[i] for i in idx]
    setup = (solve_forward, dense_interval, f, spec, leaves, idx, ts, options)
    return _InterpolatingAdjoint.apply(setup, u0, *grad_leaves)


class _InterpolatingAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, setup, u0, *grad_leaves):
        solve_forward, _, _, spec, leaves, _, _, _ = setup
        with torch.no_grad():
            u, dense, ok = solve_forward(u0, pytree.tree_unflatten(leaves, spec))
        ctx.setup, ctx.dense, ctx.failed = setup, dense, not ok
        ctx.save_for_backward(u, u0, *grad_leaves)
        return u

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_u):
        u, u0, *grad_leaves = ctx.saved_tensors
        _, dense_interval, f, spec, leaves, idx, ts, options = ctx.setup
        detached = [x.detach() for x in grad_leaves]
        if ctx.failed:  # the forward solve stopped early: its loss is NaN, and so is this
            return (None, *(torch.full_like(x, math.nan) for x in (u0.detach(), *detached)))
        leaves = list(leaves)
        batched = u.dim() == 3
        U, G = (u.transpose(0, 1), grad_u.transpose(0, 1)) if batched else (u, grad_u)
        ps = [x.detach().requires_grad_(True) for x in detached]
        for j, i in enumerate(idx):
            leaves[i] = ps[j]
        p_req = pytree.tree_unflatten(leaves, spec)
        for j, i in enumerate(idx):
            leaves[i] = detached[j]
        p_det = pytree.tree_unflatten(leaves, spec)
        vjp = generated_vjp(f, spec, len(leaves), idx)
        field = _AdjointField(f, p_req, ps, p_det, U[0].shape, batched, options.jac, vjp, idx)
        back = _Backward(field, options, U.dtype)
        a = G[-1].reshape(-1).to(U.dtype)
        g = torch.zeros(field.P, dtype=U.dtype, device=U.device)
        h = None
        for k in range(U.shape[0] - 1, 0, -1):
            if dense_interval is not None:  # checkpointing: this interval's dense output
                with torch.no_grad():
                    field.set_dense(dense_interval(U[k - 1], p_det, k))
            else:
                field.set_dense(ctx.dense)
            a, g, h = back.interval(a, g, float(ts[k]), float(ts[k - 1]), h)
            a = a + G[k - 1].reshape(-1)
        grad_u0 = a.view(u0.shape).to(u0.dtype)
        out_p, offset = [], 0
        for x in detached:
            out_p.append(g[offset : offset + x.numel()].view_as(x).to(x.dtype))
            offset += x.numel()
        return (None, grad_u0, *out_p)


class _AdjointField:
    """The adjoint's right-hand side, flat: $F_a(t, a) = -J(t)^\\top a$ for the step, and
    $\\sum_k f_p(t_k)^\\top c_k$ for the parameter part (see the module docstring).

    ``u(t)`` comes from the forward dense output, cached per time (stages share nodes, and
    a step's end is the next one's start); so are the Jacobians. ``P``: the number of
    parameter entries that get gradients.
    """

    def __init__(self, f, p_req, ps, p_det, shape, batched: bool, jac, vjp, idx) -> None:
        self.f, self.p_req, self.ps, self.p_det = f, p_req, ps, p_det
        self.shape, self.batched, self.jac = shape, batched, jac
        self.P = sum(x.numel() for x in ps)
        self.dense: ForwardDense | None = None
        self._u: dict[float, torch.Tensor] = {}
        self._J: dict[float, torch.Tensor] = {}
        self.jstate = JacobianState()
        #: a model's generated ``vjp(t, u, p, v)`` (`sensitivity.generated_vjp`), or None;
        #: ``idx``: the positions in ``p`` that get gradients
        self.vjp: Callable | None = vjp
        self.idx: list[int] = idx
        #: ``jac`` is a model's generated Jacobian, vectorised over leading axes
        make_jac = getattr(f, "make_jac", None)
        self.stack_jac = jac is not None and make_jac is not None and make_jac() is jac
        #: f evaluated on stacked points gives each point's value (checked on first use)
        self.stacked: bool | None = None

    def set_dense(self, dense: ForwardDense) -> None:
        """Use ``dense`` for $u(t)$ from now on (a new save interval may bring a new one)."""
        if dense is not self.dense:
            self.dense = dense
            self._u.clear()
            self._J.clear()

    def forget(self, keep: float) -> None:
        """Drop cached values except those at time ``keep`` (the next step's start)."""
        for cache in (self._u, self._J):
            if len(cache) > 1:
                kept = cache.get(keep)
                cache.clear()
                if kept is not None:
                    cache[keep] = kept

    def t_arg(self, t: float, like: torch.Tensor) -> torch.Tensor:
        """``t`` as ``f`` takes it: a 0-d float64 tensor, or ``(B, 1)`` for a batch."""
        if self.batched:
            return torch.full((self.shape[0], 1), t, dtype=F64, device=like.device)
        return torch.scalar_tensor(t, dtype=F64, device=like.device)

    def u(self, t: float) -> torch.Tensor:
        """$u(t)$ from the forward dense output."""
        u = self._u.get(t)
        if u is None:
            u = self._u[t] = self.dense(t).detach()
        return u

    def jacobian(self, t: float) -> torch.Tensor:
        """$J = \\partial f/\\partial u$ at $(t, u(t))$: ``(n, n)`` or ``(B, n, n)``."""
        J = self._J.get(t)
        if J is not None:
            return J
        u = self.u(t)
        tt = self.t_arg(t, u)
        with torch.no_grad():
            if self.batched:
                # f0 is read only while the mode is chosen and by differences (else unused)
                f0 = self.f(tt, u, self.p_det) if self.jstate.mode in (None, "fd") else u
                J, _ = jacobian_batch(self.f, self.p_det, tt, u, f0, self.jstate, self.jac)
            else:
                J, _, _ = jacobian(self.f, self.p_det, t, u, None, self.jstate, self.jac, False)
        J = self._J[t] = J.detach()
        return J

    def prefetch(self, times: list[float]) -> None:
        """Cache $J$ at ``times`` (a step's stage nodes) by one call of a model's generated
        Jacobian on the stacked points: it is vectorised over leading axes, and $u(t)$ is
        known in advance from the forward dense output (one call instead of ~7)."""
        if self.jstate.mode != "user" or not self.stack_jac:
            return
        todo = [t for t in dict.fromkeys(times) if t not in self._J]
        if len(todo) < 2:
            return
        U, tt = self._stacked_points(todo)
        with torch.no_grad():
            Js = self.jac(tt, U, self.p_det).detach()
        for t, J in zip(todo, Js.unbind(0), strict=True):
            self._J[t] = J

    def Fa(self, t: float, a: torch.Tensor) -> torch.Tensor:
        """$-J(t)^\\top a$ ``(N,)``: by the Jacobian, or one reverse pass when $J$ is dear."""
        if self.jstate.mode == "rows":  # J would cost n reverse passes: one VJP instead
            u = self.u(t)
            with torch.enable_grad():
                uu = u.detach().requires_grad_(True)
                fu = self.f(self.t_arg(t, u), uu, self.p_det)
                (gu,) = torch.autograd.grad(fu, uu, a.view(self.shape), allow_unused=True)
            return torch.zeros_like(a) if gu is None else gu.reshape(-1).neg()
        J = self.jacobian(t)
        if self.batched:
            B, n = self.shape
            return torch.bmm(a.view(B, 1, n), J).view(-1).neg()
        return torch.mv(J.t(), a).neg()

    def pullback_p(self, times: list[float], cots: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """$\\sum_k f_p(t_k)^\\top c_k$ ``(P,)`` at the points $(t_k, u(t_k))$, for each set
        of cotangents ``cots[j]`` (one value per point): ``f`` evaluated once per point."""
        if self.vjp is not None:
            return self._pullback_generated(times, cots)
        if self.stacked is not False:
            try:
                return self._pullback_stacked(times, cots)
            except (RuntimeError, TypeError, ValueError, IndexError):
                self.stacked = False
        outs = [cots[0][0].new_zeros(self.P) for _ in cots]
        for k, t in enumerate(times):
            u = self.u(t)
            with torch.enable_grad():
                fu = self.f(self.t_arg(t, u), u, self.p_req)
                for j, cs in enumerate(cots):
                    gr = torch.autograd.grad(
                        fu,
                        self.ps,
                        cs[k].view(self.shape),
                        allow_unused=True,
                        retain_graph=j < len(cots) - 1,
                    )
                    outs[j] += self._flat(gr, cs[k])
        return outs

    def _stacked_points(self, times: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
        """``u`` at ``times`` stacked on a new leading axis, and ``t`` shaped to match:
        ``(M, 1)`` (``(M, B, 1)`` for a batch)."""
        M = len(times)
        U = torch.stack([self.u(t) for t in times])
        tt = torch.tensor(times, dtype=F64, device=U.device)
        tt = tt.view(M, 1, 1).expand(M, self.shape[0], 1) if self.batched else tt.view(M, 1)
        return U, tt

    def _pullback_generated(self, times: list[float], cots: list[list[torch.Tensor]]):
        """`pullback_p` by the generated vjp: one straight-line call per set of cotangents on
        the stacked points (it sums the parameter cotangents over its leading axes)."""
        U, tt = self._stacked_points(times)
        outs = []
        for cs in cots:
            _, _, gp = self.vjp(tt, U, self.p_det, torch.stack(cs).view_as(U))
            parts = [gp[i].reshape(-1).to(U.dtype) for i in self.idx]
            outs.append(torch.cat(parts) if parts else U.new_zeros(0))
        return outs

    def _pullback_stacked(self, times: list[float], cots: list[list[torch.Tensor]]):
        """One evaluation of ``f`` on the ``M`` points stacked along a new leading axis, one
        reverse pass per set; ``t`` is ``(M, 1)`` (``(M, B, 1)`` for a batch)."""
        U, tt = self._stacked_points(times)
        with torch.enable_grad():
            out = self.f(tt, U, self.p_req)
            if not isinstance(out, torch.Tensor) or out.shape != U.shape:
                raise ValueError("f is not vectorised over a leading axis")
            if self.stacked is None:  # first use: each row must be f at its own point
                with torch.no_grad():
                    ref = torch.stack(
                        [self.f(self.t_arg(t, U), U[k], self.p_det) for k, t in enumerate(times)]
                    )
                tol = max(1e-9, 100 * torch.finfo(ref.dtype).eps)
                scale = float(ref.abs().max()) + 1e-300
                if not torch.allclose(out.detach(), ref, rtol=tol, atol=tol * scale):
                    raise ValueError("f's rows on stacked points differ from f at each point")
                self.stacked = True
            outs = []
            for j, cs in enumerate(cots):
                gr = torch.autograd.grad(
                    out,
                    self.ps,
                    torch.stack(cs).view_as(U),
                    allow_unused=True,
                    retain_graph=j < len(cots) - 1,
                )
                outs.append(self._flat(gr, cs[0]))
        return outs

    def _flat(self, grads, like: torch.Tensor) -> torch.Tensor:
        parts = []
        for gr, x in zip(grads, self.ps, strict=True):
            if gr is None:  # f does not use this tensor
                gr = like.new_zeros(x.numel())
            parts.append(gr.reshape(-1).to(like.dtype))
        return torch.cat(parts) if parts else like.new_zeros(0)


class _Backward:
    """A Rosenbrock method applied to the adjoint system with the block solves of the
    module docstring, and the loop over one save interval."""

    def __init__(self, field: _AdjointField, options: BackwardOptions, dtype) -> None:
        self.F, self.opts = field, options
        m = options.method
        self.m = m
        self.s, self.gamma = m.s, m.gamma
        # (I - gamma C)^{-T} w for w = m (the solution) and m - m_hat (the error): the
        # weights of the stages' g-parts in g1 - g and in g's error estimate
        GC = torch.zeros(m.s, m.s, dtype=F64)
        for i in range(m.s):
            GC[i, :i] = m.gcvec[i].to(F64).cpu()
        lhs = (torch.eye(m.s, dtype=F64) - GC).t()

        def weights(w: torch.Tensor) -> tuple[list[float], float, torch.Tensor]:
            b = torch.linalg.solve_triangular(lhs, w.to(F64).cpu().view(-1, 1), upper=True)
            b = b.view(-1)
            bgd = float(sum(x * y for x, y in zip(b.tolist(), m.gd, strict=True)))
            return b.tolist(), bgd, b.to(dtype=dtype, device=m.m.device)

        self.w_sol, self.w_err = weights(m.m), weights(m.e)
        self.nsteps = 0
        self.eps = math.sqrt(torch.finfo(dtype).eps)

    def _norm(self, err: torch.Tensor, a: torch.Tensor, a1: torch.Tensor) -> float:
        o = self.opts
        with torch.no_grad():
            sc = torch.maximum(a.abs(), a1.abs()).mul_(o.rtol).view(self.F.shape).add_(o.atol)
            q = (err.view(self.F.shape) / sc).square()
            if self.F.batched:  # the largest row RMS: every trajectory gets its tolerance
                return float(q.mean(-1).max().sqrt())
            return float(q.mean().sqrt())

    def _norm_g(self, err: torch.Tensor, g: torch.Tensor, dg: torch.Tensor) -> float:
        o = self.opts
        atol = float(o.atol.min()) if isinstance(o.atol, torch.Tensor) else o.atol
        with torch.no_grad():
            sc = torch.maximum(g.abs(), (g + dg).abs()).mul_(o.rtol).add_(atol)
            return float((err / sc).square().mean().sqrt())

    def _ft(self, t: float, h: float, a: torch.Tensor, k1: torch.Tensor):
        """$\\partial F_a/\\partial t$ at $(t, a)$ by a forward difference towards the step
        (inside the forward solve's range): ``(F_t, dt)``."""
        dt = self.eps * max(abs(t), abs(h), 1e-300)
        dt = (t + math.copysign(dt, h)) - t
        return (self.F.Fa(t + dt, a) - k1) / dt, dt

    def step(self, t: float, h: float, a: torch.Tensor, k1: torch.Tensor, ft):
        """One step of size ``h`` (signed) from ``(t, a)``: ``(a1, err, stage values A,
        stage solutions Ua)``, from which `g_parts` gives $g_1 - g$ and its error estimate."""
        m, F = self.m, self.F
        Fat = ft[0]
        hg = h * self.gamma
        J = F.jacobian(t)
        F.prefetch([t + m.c[i] * h for i in range(1, self.s)])
        eye = F.jstate.eye
        solver = _Solver(torch.add(eye, J.mT, alpha=hg), eye)  # W_a = I + h gamma J^T
        if F.batched:

            def solve(r: torch.Tensor) -> torch.Tensor:
                return solver.batch(r.view(F.shape)).reshape(-1)
        else:
            solve = solver
        s = self.s
        Ua = a.new_empty(s, a.numel())
        A = a.new_empty(s, a.numel())
        A[0] = a
        h2 = h * h
        ai = a
        for i in range(s):
            if i:
                ai = torch.addmv(a, Ua[:i].t(), m.avec[i])
                A[i] = ai
                fa = F.Fa(t + m.c[i] * h, ai)
                ra = torch.addmv(fa, Ua[:i].t(), m.gcvec[i], beta=hg)
            else:
                ra = k1 * hg
            if m.gd[i] != 0.0:
                ra = ra.add(Fat, alpha=m.gd[i] * h2)
            Ua[i] = solve(ra)
        a1 = ai if m.fsal else torch.addmv(a, Ua.t(), m.m)
        return a1, torch.mv(Ua.t(), m.e), A, Ua

    def g_parts(self, t: float, h: float, A: torch.Tensor, Ua: torch.Tensor, dt: float):
        """``(g_1 - g, error estimate of g)`` of a step: the module docstring's formula with
        the weights $\\beta$ for $g_1$, and $(I - \\gamma C)^{-\\top}(m - \\hat m)$ for the
        error."""
        F, m = self.F, self.m
        hg = h * self.gamma
        nodes = [t + m.c[i] * h for i in range(self.s)]
        times = list(dict.fromkeys([*nodes, t + dt]))
        sets = []
        for beta, beta_gd, beta_t in (self.w_sol, self.w_err):
            cots = {x: None for x in times}
            for i, ti in enumerate(nodes):
                c = A[i] * (hg * beta[i])
                cots[ti] = c if cots[ti] is None else cots[ti] + c
            ct = (h * h * beta_gd / dt) * A[0]
            cots[t] = cots[t] - ct + torch.mv(Ua.t(), beta_t) * hg
            cots[t + dt] = ct if cots[t + dt] is None else cots[t + dt] + ct
            sets.append([cots[x] for x in times])
        dg, err = F.pullback_p(times, sets)
        return dg.neg(), err.neg()

    def interval(self, a: torch.Tensor, g: torch.Tensor, ta: float, tb: float, h: float | None):
        """Integrate $(a, g)$ from ``ta`` to ``tb``; returns ``(a, g, h_next)``."""
        F, o = self.F, self.opts
        d = 1.0 if tb > ta else -1.0
        span = abs(tb - ta)
        if h is None:  # the forward step there: the adjoint has the same time scales
            h = F.dense.step_size(ta)
        h = min(h, span)
        ctrl = o.controller
        errold = ctrl.qoldinit
        t, tau = ta, 0.0
        k1 = F.Fa(t, a)
        ft = None
        h_next = h
        steps = 0
        while span - tau > 1e-14 * max(1.0, span):
            if steps >= o.max_steps:
                raise SolveError(
                    f"solve: the adjoint's backward solve took max_steps={o.max_steps} steps "
                    f"between save times {ta} and {tb} and reached t={t}; raise max_steps."
                )
            last = tau + h >= span * (1 - 1e-12) or span - (tau + h) < 1e-10 * h
            hs = span - tau if last else h
            hd = d * hs
            if ft is None:  # kept when a rejected step is retried from the same point
                ft = self._ft(t, hd, a, k1)
            a1, err, A, Ua = self.step(t, hd, a, k1, ft)
            self.nsteps += 1
            steps += 1
            en = self._norm(err, a, a1)
            if F.P:  # g is error-controlled too: u(t) may have features a does not see
                dg, err_g = self.g_parts(t, hd, A, Ua, ft[1])
                en = max(en, self._norm_g(err_g, g, dg))
            accept, h_next, errold = ctrl.propose(en, errold, hs, self.m.error_order)
            if not accept:
                h = h_next
                if h < o.dtmin or h < 1e-14 * max(1.0, abs(t)):
                    raise SolveError(
                        f"solve: the adjoint's backward solve failed at t={t}: the step size "
                        f"fell to {h:.3g} (error norm {en:.3g})."
                    )
                continue
            if F.P:
                g = g + dg
            tau = span if last else tau + hs
            t = tb if last else t + hd  # t + h: the last stages' node, whose J is cached
            a = a1
            ft = None
            if last:
                break
            F.forget(t)
            k1 = F.Fa(t, a)
            h = min(h_next, span)
        return a, g, h_next
