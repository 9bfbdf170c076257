"""The method protocol: what the loops (`loop.integrate`, `batch_loop.integrate_batch`) call.

A method object is built once per (name, dtype, device) and cached; per-solve state lives in
the *stages object* it returns from ``stages``. A new family (explicit RK, Rosenbrock, ...)
is a new class with these members, never a new branch in the loop.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

__all__ = ["AbstractMethod", "AbstractStages", "Kept", "horner_slots"]


class AbstractStages(Protocol):
    """Per-solve buffers of a method. ``k1`` is the current first stage (valid after a
    rejected step); ``counts`` holds extra statistics (``njac``, ``nlinsolve``) that the loop
    adds to ``sol.stats``."""

    counts: dict[str, int]

    @property
    def k1(self) -> torch.Tensor: ...


class AbstractMethod(Protocol):
    """One integration method.

    Attributes:
        name: DifferentialEquations.jl name. order: order of the propagated solution.
        error_order: order of the error estimate plus one (the controller's $k$).
        adaptive: has an error estimate. fsal: the last stage is the next first one.
        s: main stages (``nfev`` per step is ``s - 1`` plus one when not FSAL).
        S: main + interpolation-only stages. has_extra: ``S > s``. stiff: implicit method.
    """

    name: str
    order: int
    error_order: int
    adaptive: bool
    fsal: bool
    s: int
    S: int
    stiff: bool

    @property
    def has_extra(self) -> bool: ...

    def stages(self, k1: torch.Tensor, fresh: bool, st: Any = None) -> AbstractStages:
        """Buffers for the next step holding ``k1``; new ones when ``fresh`` (autograd or
        dense output keeps every step's), else ``st`` reused."""
        ...

    def step(self, f: Any, p: Any, t: float, h: float, y: torch.Tensor, st: Any):
        """One step of one trajectory ``(n,)`` with Python-float ``t``, signed ``h``.
        Returns ``(y1, err)`` with ``err`` the local error estimate (None if not adaptive)."""
        ...

    def step_batch(self, f: Any, p: Any, t: torch.Tensor, h: torch.Tensor, y: torch.Tensor, st):
        """One step of a batch ``(B, n)``; ``t`` float64 ``(B, 1)``, ``h`` ``(B, 1)``."""
        ...

    def next_k1(self, st: Any, have_extra: bool) -> torch.Tensor | None:
        """The next step's first stage when this step computed it, else None."""
        ...

    def extra(self, f: Any, p: Any, t: Any, h: Any, y: torch.Tensor, st: Any) -> None:
        """Evaluate interpolation-only stages (only called when ``has_extra``)."""
        ...

    def dense(self, theta: list[float], h: float, y: torch.Tensor, y1: torch.Tensor, st):
        """``(M, n)`` dense output at ``theta`` (fractions of the step) of one trajectory."""
        ...

    def dense_slots(self, theta: torch.Tensor, h: torch.Tensor, y, y1, st) -> torch.Tensor:
        """``(M, B, n)`` dense output of a batch at float64 ``theta`` ``(M, B)``: ``M``
        fractions of each row's step (``h`` is ``(B, 1)``)."""
        ...

    def keep(self, st: Any) -> torch.Tensor:
        """What whole-solve dense output keeps of an accepted step (passed back to ``dense``
        as an object with attribute ``K``)."""
        ...


class Kept:
    """A kept step as ``dense``/``dense_slots`` read it: an object whose ``K`` holds what the
    method's ``keep`` returned (its stages)."""

    __slots__ = ("K",)

    def __init__(self, K: Any) -> None:
        self.K = K


def horner_slots(C: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Polynomial dense output of a batch at ``M`` points per row, shared by the families.

    $u_{m,r} = y_r + \\sum_{q=1}^{Q} \\theta_{m,r}^q c_{q-1,r}$ by Horner's rule.

    Args:
        C: ``(Q, B, n)`` per-row coefficients; cheapest as a view of a ``(Q, n, B)``
            contiguous tensor (``C.transpose(1, 2)`` contiguous), else copied to one.
        y: ``(B, n)`` the states at the start of the step.
        theta: float64 ``(M, B)`` fractions of each row's step.

    Returns:
        ``(M, B, n)``, the view of a ``(M, n, B)`` contiguous tensor (``.transpose(1, 2)``
        of the result is contiguous: the batch loop scatters it in that order).

    The work runs component-major, on ``(M, n, B)``: ``theta`` ``(M, 1, B)`` broadcasts
    over the middle axis and every inner loop runs over the ``B`` rows, contiguous. In the
    row-major ``(M, B, n)`` layout a ``(M, B, 1)`` factor broadcasts over the short last
    axis, an inner loop of length ``n`` per row, ~10x slower for ``n = 2``; spreading
    ``theta`` over ``n`` first (as this did before) doubled the work on ``theta``.
    Transposing ``C`` costs one pass over ``(Q, B, n)``, ``M`` times smaller. Without
    autograd the Horner steps write into one buffer (each ``(M, n, B)`` temporary is
    megabytes for large batches, and memory traffic is what this costs).
    """
    Q, B, n = C.shape
    M = theta.shape[0]
    Ct = C.transpose(1, 2)
    if not Ct.is_contiguous():
        Ct = Ct.contiguous()
    yt = y.t().contiguous()
    th = theta.to(y.dtype).view(M, 1, B)
    if Q == 1:
        return torch.addcmul(yt, th, Ct[0]).transpose(1, 2)
    if torch.is_grad_enabled() and (C.requires_grad or y.requires_grad or th.requires_grad):
        acc = Ct[Q - 1]
        for q in range(Q - 2, -1, -1):
            acc = torch.addcmul(Ct[q], th, acc)
        return torch.addcmul(yt, th, acc).transpose(1, 2)
    acc = torch.addcmul(Ct[Q - 2], th, Ct[Q - 1])
    for q in range(Q - 3, -1, -1):
        torch.addcmul(Ct[q], th, acc, out=acc)
    return torch.addcmul(yt, th, acc, out=acc).transpose(1, 2)
