"""`ODESolution`: what every backend's solve returns.

Shapes: ``t`` is ``(T,)``; ``u`` is ``(T, n)`` for one trajectory, ``(B, T, n)`` for a batch.
Retcodes reuse DifferentialEquations.jl's names; the message says what happened and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import InputError

__all__ = ["RETCODES", "ODESolution"]

#: Retcode -> message template. ``Success`` is the only successful code.
RETCODES: dict[str, str] = {
    "Success": "Success: the solve reached the end of tspan.",
    "MaxIters": (
        "MaxIters: the solver took max_steps={max_steps} steps and stopped at t={t}; "
        "increase max_steps, loosen the tolerances, or try a stiff method such as 'Rodas5P'."
    ),
    "DtLessThanMin": (
        "DtLessThanMin: step size fell below dtmin={dtmin} at t={t}; the problem may be "
        "stiff, try method='Rodas5P'."
    ),
    "Unstable": (
        "Unstable: the state became non-finite (NaN or inf) at t={t}; the solution blows "
        "up or the step is too large, try tighter tolerances or a stiff method."
    ),
    "ConvergenceFailure": (
        "ConvergenceFailure: the linear solve of an implicit method failed at t={t}."
    ),
}


@dataclass(eq=False)
class ODESolution:
    """The solution of an `ODEProblem`.

    Attributes:
        t: save times, ``(T,)`` float64 tensor.
        u: states at ``t``: ``(T, n)`` or ``(B, T, n)``.
        stats: ``nfev, nsteps, naccept, nreject`` (+ ``njac, nlinsolve`` for stiff methods).
            For a batch, counts are per step of the batch (all trajectories together).
        retcode: ``"Success"`` or one of `RETCODES`; for a batch, the worst one.
        message: a sentence saying what happened (and what to do on failure).
        t_reached: the time each trajectory reached: a float, or a ``(B,)`` tensor.
        method: name of the method used; ``backend`` the backend's name.
        retcodes: for a batch, the retcode of each trajectory.
    """

    t: torch.Tensor
    u: torch.Tensor
    stats: dict[str, int]
    retcode: str = "Success"
    message: str = RETCODES["Success"]
    t_reached: Any = None
    method: str = ""
    backend: str = "torch"
    retcodes: list[str] | None = None
    interpolant: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)
    tspan: tuple[float, float] | None = None

    @property
    def success(self) -> bool:
        """True when the solve reached the end of ``tspan``."""
        return self.retcode == "Success"

    def __call__(self, t: Any) -> torch.Tensor:
        """Dense output: the state at time(s) ``t`` inside ``tspan``.

        Args:
            t: a number or a 1-D sequence/tensor of times.

        Returns:
            ``(n,)`` / ``(B, n)`` for a scalar ``t``; ``(T, n)`` / ``(B, T, n)`` otherwise.

        Raises:
            InputError: a time outside ``tspan``, or a solution without dense output.
        """
        if self.interpolant is None:
            raise InputError(
                "ODESolution(t): this solution has no dense output; solve with dense=True "
                "(the default when saveat is not given)."
            )
        scalar = not isinstance(t, (list, tuple, torch.Tensor)) or (
            isinstance(t, torch.Tensor) and t.dim() == 0
        )
        tt = torch.as_tensor(t, dtype=torch.float64).reshape(-1).cpu()
        if self.tspan is not None:
            lo, hi = sorted(self.tspan)
            span = abs(hi - lo)
            bad = (tt < lo - 1e-12 * span) | (tt > hi + 1e-12 * span)
            if bool(bad.any()):
                first = float(tt[bad][0])
                raise InputError(
                    f"ODESolution(t): t must lie inside tspan={self.tspan}; got t={first!r}."
                )
        out = self.interpolant(tt)
        if scalar:
            out = out.select(-2, 0)
        return out

    def __repr__(self) -> str:
        return (
            f"ODESolution(retcode={self.retcode!r}, method={self.method!r}, "
            f"t shape={tuple(self.t.shape)}, u shape={tuple(self.u.shape)}, stats={self.stats})"
        )
