"""The scipy backend: `scipy.integrate.solve_ivp` as a reference solver.

Method names map to the closest scipy scheme (stated, not hidden):

| ude_bridge (DiffEq.jl) name | scipy method |
|---|---|
| DP5, Tsit5 | RK45 (Dormand-Prince 5(4)) |
| BS3 | RK23 (Bogacki-Shampine 3(2)) |
| Vern7, Vern9 | DOP853 (Dormand-Prince 8(5,3)) |
| Rosenbrock23, Rodas4, Rodas5P, RadauIIA5 | Radau |
| FBDF, QNDF | BDF |
| AutoTsit5(Rosenbrock23), LSODA | LSODA |

scipy cannot differentiate: a problem whose ``u0`` or ``params`` require grad is refused
(outside `torch.no_grad`, where nobody asks for gradients).
A batch ``(B, n)`` is solved one trajectory after another.

An equation model's right-hand side with generated numpy code (``f.make_numpy()``,
`ude_bridge.codegen.to_numpy`: no networks, no inputs) is evaluated by that code, and its
sympy Jacobian goes to the implicit methods (unless ``problem.jac`` is given): no torch
call per evaluation, and no Jacobian by differences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..problem import ODEProblem
from ..solution import RETCODES, ODESolution
from .base import SolveOptions

__all__ = ["SCIPY_METHODS", "ScipyBackend"]

SCIPY_METHODS: dict[str, str] = {
    "DP5": "RK45",
    "Tsit5": "RK45",
    "BS3": "RK23",
    "Vern7": "DOP853",
    "Vern9": "DOP853",
    "Rosenbrock23": "Radau",
    "Rodas4": "Radau",
    "Rodas5P": "Radau",
    "RadauIIA5": "Radau",
    "FBDF": "BDF",
    "QNDF": "BDF",
    "AutoTsit5(Rosenbrock23)": "LSODA",
    "LSODA": "LSODA",
}


def _requires_grad(x: Any) -> bool:
    if isinstance(x, torch.Tensor):
        return x.requires_grad
    if isinstance(x, dict):
        return any(_requires_grad(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return any(_requires_grad(v) for v in x)
    return False


def _numpy_field(problem: ODEProblem) -> tuple[Any, tuple]:
    """``(field, parameter values)`` of an equation model's generated numpy code for this
    problem (float64), or ``(None, ())``."""
    make = getattr(problem.f, "make_numpy", None)
    field = make() if make is not None else None
    pv = field.bind(problem.params, np.float64) if field is not None else None
    return (field, pv) if pv is not None else (None, ())


class ScipyBackend:
    """Reference backend over `scipy.integrate.solve_ivp`."""

    name = "scipy"

    def is_available(self) -> bool:
        return True

    def unavailable_reason(self) -> str:
        return ""

    def methods(self) -> tuple[str, ...]:
        return tuple(SCIPY_METHODS)

    def solve(self, problem: ODEProblem, method: str, options: SolveOptions) -> ODESolution:
        from scipy.integrate import solve_ivp

        if torch.is_grad_enabled() and (
            _requires_grad(problem.u0) or _requires_grad(problem.params)
        ):
            raise InputError(
                "solve(backend='scipy'): u0 or params require grad, but scipy cannot "
                "differentiate; use backend='torch' (or solve under torch.no_grad())."
            )
        if options["dt"] is not None and options["adaptive"] is False:
            raise InputError(
                "solve(backend='scipy'): scipy has no fixed-step methods; drop dt/adaptive=False "
                "or use backend='torch'."
            )
        if problem.batched and options["saveat"] is None:
            raise InputError(
                "solve(backend='scipy'): a batch needs saveat (its trajectories take "
                "different steps); pass saveat=..."
            )
        u0 = problem.u0.detach()
        dtype, device = u0.dtype, u0.device
        f, p = problem.f, problem.params
        y0s = u0.reshape(-1, u0.shape[-1]).cpu().numpy().astype(np.float64)
        saveat = options["saveat"]
        t_eval = None if saveat is None else saveat.numpy()
        atol = options["atol"]
        if isinstance(atol, torch.Tensor):
            atol = atol.detach().cpu().numpy()
        kw: dict[str, Any] = {"rtol": options["rtol"], "atol": atol}
        if options["dtmin"]:
            kw["min_step"] = options["dtmin"]
        sm = SCIPY_METHODS[method]
        field, pv = _numpy_field(problem)
        fun_field = None
        if field is not None:

            def fun_field(t: float, y: np.ndarray) -> np.ndarray:
                return np.array(field.f(t, y, pv), dtype=np.float64)

        if field is not None and sm in ("Radau", "BDF", "LSODA") and problem.jac is None:

            def jac_field(t: float, y: np.ndarray) -> np.ndarray:
                return np.array(field.jac(t, y, pv), dtype=np.float64)

            kw["jac"] = jac_field
        elif sm in ("Radau", "BDF", "LSODA") and problem.jac is not None:
            jac = problem.jac

            def jac_np(t: float, y: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    yt = torch.as_tensor(y, dtype=dtype, device=device)
                    return jac(torch.scalar_tensor(t, dtype=torch.float64), yt, p).cpu().numpy()

            kw["jac"] = jac_np
        us, sols, stats = [], [], {"nfev": 0, "nsteps": 0, "naccept": 0, "nreject": 0}
        code, t_reached = "Success", problem.tspan[1]
        for b, y0 in enumerate(y0s):
            pb = p
            if problem.batched and isinstance(p, torch.Tensor) and p.dim() == 2:
                pb = p[b]

            def fun_torch(t: float, y: np.ndarray, pb: Any = pb) -> np.ndarray:
                with torch.no_grad():
                    yt = torch.as_tensor(y, dtype=dtype, device=device)
                    out = f(torch.scalar_tensor(t, dtype=torch.float64), yt, pb)
                return out.detach().cpu().numpy().astype(np.float64)

            fun = fun_torch if fun_field is None else fun_field
            r = solve_ivp(fun, problem.tspan, y0, method=sm, t_eval=t_eval, dense_output=True, **kw)
            stats["nfev"] += int(r.nfev)
            nst = len(r.sol.ts) - 1 if r.sol is not None else len(r.t) - 1
            stats["nsteps"] += nst
            stats["naccept"] += nst
            if "njac" not in stats and sm in ("Radau", "BDF", "LSODA"):
                stats["njac"], stats["nlinsolve"] = 0, 0
            if "njac" in stats:
                stats["njac"] += int(r.njev)
                stats["nlinsolve"] += int(r.nlu)
            if r.status != 0:
                code, t_reached = (
                    "Unstable" if "nan" in r.message.lower() else "DtLessThanMin",
                    float(r.t[-1]) if len(r.t) else problem.tspan[0],
                )
            ys = r.y.T
            if t_eval is not None and ys.shape[0] < len(t_eval):
                pad = np.full((len(t_eval) - ys.shape[0], ys.shape[1]), np.nan)
                ys = np.concatenate([ys, pad], 0)
            us.append(ys)
            sols.append(r.sol)
        t_out = torch.as_tensor(t_eval if t_eval is not None else r.t, dtype=torch.float64)
        if problem.batched:
            u = torch.as_tensor(np.stack(us), dtype=dtype, device=device)
        else:
            u = torch.as_tensor(us[0], dtype=dtype, device=device)

        def interpolant(tq: torch.Tensor) -> torch.Tensor:
            vals = [s(tq.numpy()).T for s in sols if s is not None]
            arr = np.stack(vals) if problem.batched else vals[0]
            return torch.as_tensor(arr, dtype=dtype, device=device)

        message = RETCODES[code].format(t=t_reached, max_steps="-", dtmin=options["dtmin"])
        return ODESolution(
            t=t_out,
            u=u,
            stats=stats,
            retcode=code,
            message=message,
            t_reached=t_reached,
            method=f"{method} (scipy {sm})",
            backend=self.name,
            interpolant=interpolant,
            tspan=problem.tspan,
        )
