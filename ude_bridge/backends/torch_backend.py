"""The torch backend: an adapter over the native engine in `ude_bridge.solvers`."""

from __future__ import annotations

from functools import lru_cache

import torch

from ..errors import InputError
from ..problem import ODEProblem
from ..solution import ODESolution
from ..solvers.batch_loop import integrate_batch
from ..solvers.explicit import ExplicitRK
from ..solvers.loop import LoopOptions, integrate
from ..solvers.registry import FIXED_STEP, explicit_tableau, method_names
from .base import SolveOptions

__all__ = ["TorchBackend", "explicit_method"]


@lru_cache(maxsize=64)
def explicit_method(name: str, dtype: torch.dtype, device: torch.device) -> ExplicitRK:
    """The engine's method object for (name, dtype, device); built once, then cached."""
    return ExplicitRK(explicit_tableau(name), dtype, device)


class TorchBackend:
    """The native, differentiable, batched PyTorch engine (always available)."""

    name = "torch"

    def is_available(self) -> bool:
        return True

    def unavailable_reason(self) -> str:
        return ""

    def methods(self) -> tuple[str, ...]:
        return method_names()

    def solve(self, problem: ODEProblem, method: str, options: SolveOptions) -> ODESolution:
        tab = explicit_tableau(method)
        adaptive = options["adaptive"]
        if adaptive is None:
            adaptive = options["dt"] is None
        if adaptive and not tab.adaptive:
            raise InputError(
                f"solve: method {method!r} is fixed-step (no error estimate); pass dt=..., "
                "or choose an adaptive method such as 'Tsit5'. "
                f"Fixed-step: {', '.join(FIXED_STEP)}."
            )
        if not adaptive and options["dt"] is None:
            raise InputError("solve: adaptive=False needs a step size; pass dt=... (got dt=None).")
        u0 = problem.u0
        m = explicit_method(method, u0.dtype, u0.device)
        atol = options["atol"]
        if isinstance(atol, torch.Tensor):
            atol = atol.to(dtype=u0.dtype, device=u0.device)
        opts = LoopOptions(
            rtol=options["rtol"],
            atol=atol,
            dt=options["dt"],
            adaptive=adaptive,
            max_steps=options["max_steps"],
            dtmin=options["dtmin"],
            dense=options["dense"] and not problem.batched,
        )
        t0, t1 = problem.tspan
        loop = integrate_batch if problem.batched else integrate
        res = loop(m, problem.f, problem.params, u0, t0, t1, options["saveat"], opts)
        return ODESolution(
            t=res.t,
            u=res.u,
            stats=res.stats,
            retcode=res.retcode,
            message=res.message,
            t_reached=res.t_reached,
            method=method,
            backend=self.name,
            retcodes=res.retcodes,
            interpolant=res.interpolant,
            tspan=problem.tspan,
        )
