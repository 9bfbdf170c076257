"""`ODEProblem`: an initial value problem, validated and normalised once.

$$ \\frac{du}{dt} = f(t, u, p), \\qquad u(t_0) = u_0, \\qquad t \\in [t_0, t_1]. $$

Shapes: ``u0`` is ``(n,)`` for one trajectory or ``(B, n)`` for a batch of ``B``
trajectories. ``f(t, u, p)`` must be vectorised over the leading dimension and return a
tensor of the same shape as ``u``. In a batched solve each trajectory keeps its own time,
so ``t`` reaches ``f`` as a ``(B, 1)`` tensor (broadcasting against ``u``); in an
unbatched solve it is a 0-dimensional float64 tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ._checks import check_finite, fmt_shape
from .errors import InputError

__all__ = ["ODEProblem", "VectorField"]

VectorField = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


def _as_state(u0: Any, where: str) -> torch.Tensor:
    if isinstance(u0, torch.Tensor):
        t = u0
        if not (t.is_floating_point()):
            t = t.to(torch.get_default_dtype() if t.dtype != torch.float64 else torch.float64)
    else:
        try:
            import numpy as np

            arr = np.asarray(u0)
        except Exception as exc:  # pragma: no cover - numpy refuses only exotic input
            raise InputError(f"{where}: u0 must be array-like; got {type(u0).__name__}.") from exc
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
        ):
            raise InputError(
                f"{where}: u0 must be numeric; got an array of dtype {arr.dtype} from {u0!r}."
            )
        dtype = torch.float32 if arr.dtype == np.float32 else torch.float64
        t = torch.as_tensor(arr, dtype=dtype)
    if t.dim() not in (1, 2) or t.shape[-1] == 0 or t.numel() == 0:
        raise InputError(
            f"{where}: u0 must have shape (n,) or (B, n) with n >= 1; found shape "
            f"{fmt_shape(t.shape)}."
        )
    check_finite(t, name="u0", where=where)
    return t


def _check_params(params: Any, where: str) -> None:
    if params is None:
        return
    leaves: list[Any]
    if isinstance(params, dict):
        leaves = list(params.values())
    elif isinstance(params, (list, tuple)):
        leaves = list(params)
    else:
        leaves = [params]
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, (torch.Tensor, float, int)):
            check_finite(leaf, name="params" if len(leaves) == 1 else f"params[{i!r}]", where=where)


def _as_tspan(tspan: Any, where: str) -> tuple[float, float]:
    try:
        values = [float(x) for x in tspan]
    except (TypeError, ValueError):
        raise InputError(
            f"{where}: tspan must be a pair (t0, t1) of numbers; got {tspan!r}."
        ) from None
    if len(values) != 2:
        raise InputError(f"{where}: tspan must be a pair (t0, t1); got {len(values)} values.")
    t0, t1 = values
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise InputError(f"{where}: tspan must be finite; got tspan={tuple(values)}.")
    if t0 == t1:
        raise InputError(f"{where}: tspan must have t0 != t1; got tspan=({t0}, {t1}).")
    return t0, t1


@dataclass(frozen=True, eq=False)
class ODEProblem:
    """An initial value problem $u' = f(t, u, p)$, $u(t_0) = u_0$.

    Args:
        f: the vector field ``f(t, u, p) -> du/dt``, vectorised over the leading batch
            dimension of ``u``; must return the shape of ``u``.
        u0: initial state, ``(n,)`` or ``(B, n)``; lists and numpy arrays are converted
            (float64 unless given as float32).
        tspan: ``(t0, t1)``. ``t1 < t0`` integrates backwards in time.
        params: anything ``f`` takes as ``p`` (a tensor, a ``(B, k)`` tensor of
            per-trajectory parameters, a dict of tensors, ...). Tensors that require grad
            receive gradients through the solve.
        jac: optional Jacobian ``jac(t, u, p) -> (..., n, n)`` used by stiff methods.

    Raises:
        InputError: ``f`` not callable, ``u0`` of the wrong shape or non-finite, ``tspan``
            not a pair of distinct finite numbers, non-finite parameter values.
    """

    f: VectorField
    u0: torch.Tensor
    tspan: tuple[float, float]
    params: Any = None
    jac: Callable[..., torch.Tensor] | None = field(default=None)

    def __init__(
        self,
        f: VectorField,
        u0: Any,
        tspan: Sequence[float],
        params: Any = None,
        *,
        jac: Callable[..., torch.Tensor] | None = None,
    ) -> None:
        where = "ODEProblem"
        if not callable(f):
            raise InputError(f"{where}: f must be callable as f(t, u, p); got {type(f).__name__}.")
        if jac is not None and not callable(jac):
            raise InputError(f"{where}: jac must be callable or None; got {type(jac).__name__}.")
        object.__setattr__(self, "f", f)
        object.__setattr__(self, "u0", _as_state(u0, where))
        object.__setattr__(self, "tspan", _as_tspan(tspan, where))
        _check_params(params, where)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "jac", jac)

    @property
    def batched(self) -> bool:
        """Whether ``u0`` holds a batch ``(B, n)``."""
        return self.u0.dim() == 2

    @property
    def n(self) -> int:
        """Number of states."""
        return int(self.u0.shape[-1])

    def remake(self, **changes: Any) -> ODEProblem:
        """A copy with some of ``f, u0, tspan, params, jac`` replaced (validated again)."""
        kw = {k: getattr(self, k) for k in ("f", "u0", "tspan", "params", "jac")}
        kw.update(changes)
        return ODEProblem(kw["f"], kw["u0"], kw["tspan"], kw["params"], jac=kw["jac"])

    def __repr__(self) -> str:
        return (
            f"ODEProblem(f={getattr(self.f, '__name__', type(self.f).__name__)}, "
            f"u0 shape={fmt_shape(self.u0.shape)} {self.u0.dtype}, tspan={self.tspan})"
        )
