"""Gradients of a solve: the continuous adjoint with checkpoints (``sensealg="adjoint"``).

``sensealg="backprop"`` needs nothing here: autograd records the steps. The adjoint instead
solves, backwards from $t_{T-1}$ to $t_0$, the augmented system (Pontryagin; Chen et al.
2018, "Neural ordinary differential equations")

$$ \\dot u = f(t, u, p), \\qquad
   \\dot a = -a^\\top \\frac{\\partial f}{\\partial u}, \\qquad
   \\dot g = -a^\\top \\frac{\\partial f}{\\partial p}, $$

with $a(t_{T-1}) = \\partial L/\\partial u(t_{T-1})$, adding $\\partial L/\\partial u(t_k)$ to $a$
at every save time and $g(t_0) = \\partial L/\\partial p$, $a(t_0) = \\partial L/\\partial u_0$.
Between save times it is a *checkpointed backsolve*: $u$ restarts from the forward solution
stored at each save time, so the backward solve never drifts from the forward trajectory by
more than one interval, and memory is $O(T)$, independent of the number of steps. The
vector-Jacobian products $a^\\top \\partial f/\\partial(u, p)$ come from ``f.make_vjp()``
where ``f`` has one (a model's generated right-hand side: straight-line code,
`ude_bridge.codegen.to_torch_derivatives`), else from one reverse pass of autograd through ``f``
per evaluation.

A batch ``(B, n)`` with shared parameters is solved backwards as one flat system (all
trajectories on the same save grid), so parameter gradients sum over trajectories.

Re-integrating $u$ backwards is unstable for stiff problems (a decaying mode grows like
$e^{|\\lambda| t}$ backwards); those get the interpolating adjoint,
`ude_bridge.solvers.interpolating_adjoint`, which takes $u(t)$ from the forward dense
output instead. `ADJOINTS` maps the ``sensealg`` names to the two.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import _pytree as pytree

__all__ = ["ADJOINTS", "adjoint_solve"]

#: ``sensealg`` name -> which continuous adjoint. SciMLSensitivity's names choose one;
#: ``"adjoint"`` is the interpolating adjoint for stiff methods (Rosenbrock, composites) and
#: the backsolve for explicit ones, where it is as accurate, stores no steps and measured
#: faster (Lotka-Volterra with Tsit5: 0.37 s against 0.58 s; a UDE with an MLP: 0.68 s
#: against 1.34 s). With a stiff method the backsolve fails outright on Robertson's problem
#: and took 16 s against 0.7 s on a stiff UDE.
ADJOINTS: dict[str, str] = {
    "adjoint": "auto",
    "InterpolatingAdjoint": "interpolating",
    "InterpolatingAdjoint(checkpointing=true)": "checkpointed",
    "BacksolveAdjoint": "backsolve",
}


def _grad_leaves(f: Any, params: Any) -> tuple[list[torch.Tensor], Any, list[int]]:
    leaves, spec = pytree.tree_flatten(params)
    idx = [i for i, x in enumerate(leaves) if isinstance(x, torch.Tensor) and x.requires_grad]
    return leaves, spec, idx


def adjoint_solve(
    solve_forward: Callable[[torch.Tensor, Any], torch.Tensor],
    solve_backward: Callable[[Callable, torch.Tensor, float, float], torch.Tensor],
    f: Callable,
    u0: torch.Tensor,
    params: Any,
    ts: torch.Tensor,
) -> torch.Tensor:
    """``u`` at save times ``ts`` with gradients by the checkpointed continuous adjoint.

    Args:
        solve_forward: ``(u0, params) -> u`` of shape ``(T, n)`` or ``(B, T, n)`` (called
            without autograd).
        solve_backward: ``(g, z0, ta, tb) -> z(tb)``: solves ``z' = g(t, z)`` for a flat
            state ``z`` from ``ta`` to ``tb`` (``tb < ta`` for a forward problem).
        f: the vector field ``f(t, u, p)``.
        u0, params: what gradients flow to (tensors in ``params`` that require grad).
        ts: float64 save times ``(T,)``; ``ts[0]`` may differ from the start ``t0`` only if
            the caller integrates from ``ts[0]``.
    """
    leaves, spec, idx = _grad_leaves(f, params)
    grad_leaves = [leaves[i] for i in idx]
    return _Adjoint.apply(solve_forward, solve_backward, f, spec, leaves, idx, ts, u0, *grad_leaves)


class _Adjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, solve_forward, solve_backward, f, spec, leaves, idx, ts, u0, *grad_leaves):
        with torch.no_grad():
            u = solve_forward(u0, pytree.tree_unflatten(leaves, spec))
        ctx.solve_backward = solve_backward
        ctx.f, ctx.spec, ctx.leaves, ctx.idx, ctx.ts = f, spec, leaves, idx, ts
        ctx.save_for_backward(u, u0, *grad_leaves)
        return u

    @staticmethod
    def backward(ctx, grad_u):
        u, u0, *grad_leaves = ctx.saved_tensors
        f, spec, idx, ts = ctx.f, ctx.spec, ctx.idx, ctx.ts
        leaves = list(ctx.leaves)
        batched = u.dim() == 3
        if batched:  # (B, T, n) -> (T, B, n): the save axis first
            U, G = u.transpose(0, 1), grad_u.transpose(0, 1)
        else:
            U, G = u, grad_u
        shape = U.shape[1:]
        m = U[0].numel()
        detached = [x.detach() for x in grad_leaves]
        sizes = [x.numel() for x in detached]
        P = sum(sizes)
        for j, i in enumerate(idx):
            leaves[i] = detached[j]

        vjp = generated_vjp(f, spec, len(leaves), idx)
        if vjp is not None:
            # f.make_vjp() (generated for models: `ude_bridge.codegen.to_torch_derivatives`) gives f
            # and both products as straight-line code, ~2x cheaper than recording f and
            # running autograd's reverse pass
            aug = _generated_aug(vjp, pytree.tree_unflatten(leaves, spec), idx, shape, m, U.dtype)
        else:
            aug = _autograd_aug(f, leaves, spec, idx, detached, shape, m)

        a = G[-1].reshape(-1)
        g = torch.zeros(P, dtype=U.dtype, device=U.device)
        T = U.shape[0]
        for k in range(T - 1, 0, -1):
            z0 = torch.cat([U[k].reshape(-1), a, g])
            z = ctx.solve_backward(aug, z0, float(ts[k]), float(ts[k - 1]))
            a = z[m : 2 * m] + G[k - 1].reshape(-1)
            g = z[2 * m :]
        grad_u0 = a.view(shape)
        if batched:
            grad_u0 = grad_u0.reshape(u0.shape)
        out_p = []
        offset = 0
        for x, size in zip(detached, sizes, strict=True):
            out_p.append(g[offset : offset + size].view_as(x).to(x.dtype))
            offset += size
        return (None, None, None, None, None, None, None, grad_u0.to(u0.dtype), *out_p)


def generated_vjp(f: Any, spec: Any, n_leaves: int, idx: list[int]) -> Callable | None:
    """``f.make_vjp()`` (a model's generated ``vjp(t, u, p, v)``) where it serves these
    parameters: a flat tuple of leaves, each one that needs a gradient covered; else None."""
    make_vjp = getattr(f, "make_vjp", None)
    vjp = make_vjp() if make_vjp is not None else None
    if vjp is None or not _flat(spec, n_leaves):
        return None
    return None if getattr(vjp, "without_grad", frozenset()).intersection(idx) else vjp


def _flat(spec: Any, n_leaves: int) -> bool:
    """Whether ``params`` is a flat tuple or list of its leaves (the generated vjp's layout)."""
    return (
        spec.type in (tuple, list)
        and spec.num_children == n_leaves
        and all(child.is_leaf() for child in spec.children())
    )


def _generated_aug(
    vjp: Callable, p: Any, idx: list[int], shape: torch.Size, m: int, dtype: torch.dtype
) -> Callable:
    """The augmented field $(f, -a^\\top f_u, -a^\\top f_p)$ from the generated ``vjp``.

    What the call needs beyond ``vjp`` is settled here, once: for one 1-D trajectory the
    slices of ``z`` go to ``vjp`` as they are (no views, no flattening of its vectors);
    only the cotangents of parameters that are not vectors are flattened; a cast to the
    state's ``dtype`` only when some parameter has another dtype. Measured on the LV UDE
    (a 2-32-32-2 MLP): ~150 us a call against ~180 us when all that was done per call,
    ~10 % of the adjoint's backward pass."""
    one_d = len(shape) == 1
    flatten = [(i, p[i].dim() != 1) for i in idx]
    cast = any(p[i].dtype != dtype for i in idx)

    def aug(t: torch.Tensor, z: torch.Tensor, _p: Any) -> torch.Tensor:
        u, a = z[:m], torch.neg(z[m : 2 * m])
        if one_d:
            fu, gu, gp = vjp(t, u, p, a)
        else:
            fu, gu, gp = vjp(t, u.view(shape), p, a.view(shape))
            fu, gu = fu.reshape(-1), gu.reshape(-1)
        parts = [fu, gu]
        parts += [gp[i].reshape(-1) if reshape else gp[i] for i, reshape in flatten]
        if cast:
            parts = [x.to(dtype) for x in parts]
        return torch.cat(parts)

    return aug


def _autograd_aug(
    f: Callable, leaves: list, spec: Any, idx: list[int], detached: list, shape, m: int
) -> Callable:
    """The augmented field by one recorded pass of ``f`` and one reverse pass of autograd."""
    # parameter leaves made once: autograd.grad w.r.t. them works on every call
    leaves = list(leaves)
    ps = [x.detach().requires_grad_(True) for x in detached]
    for j, i in enumerate(idx):
        leaves[i] = ps[j]
    p_tree = pytree.tree_unflatten(leaves, spec)

    def aug(t: torch.Tensor, z: torch.Tensor, _p: Any) -> torch.Tensor:
        a = z[m : 2 * m].view(shape)
        with torch.enable_grad():
            uu = z[:m].detach().view(shape).requires_grad_(True)
            fu = f(t, uu, p_tree)
            grads = torch.autograd.grad(fu, [uu, *ps], -a, allow_unused=True)
        parts = [fu.detach().reshape(-1), grads[0].reshape(-1)]
        for g, x in zip(grads[1:], ps, strict=True):
            if g is None:  # f does not use this tensor
                g = torch.zeros(x.numel(), dtype=z.dtype, device=z.device)
            parts.append(g.reshape(-1).to(z.dtype))
        return torch.cat(parts)

    return aug
