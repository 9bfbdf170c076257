"""`solve`: validate, resolve the method and backend, and hand the problem to the backend."""

from __future__ import annotations

import importlib
import math
from typing import Any, Literal

import numpy as np
import torch

from ._checks import check_finite, check_positive, did_you_mean
from .errors import InputError, UnknownMethodError
from .problem import ODEProblem
from .solution import ODESolution

__all__ = ["BACKENDS", "get_backend", "solve"]

#: backend name -> "module:class" (imported on first use, so julia stays lazy)
BACKENDS: dict[str, str] = {
    "torch": "ude_bridge.backends.torch_backend:TorchBackend",
    "scipy": "ude_bridge.backends.scipy_backend:ScipyBackend",
    "julia": "ude_bridge.backends.julia_backend:JuliaBackend",
}

SENSEALGS = (
    "backprop",
    "adjoint",
    "InterpolatingAdjoint",
    "InterpolatingAdjoint(checkpointing=true)",
    "BacksolveAdjoint",
)


def get_backend(name: str, *, where: str = "solve") -> Any:
    """The backend object called ``name`` (raises `InputError` for an unknown name)."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise InputError(
            f"{where}: unknown backend {name!r}."
            + did_you_mean(str(name), list(BACKENDS), what="backend")
        )
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def _saveat(saveat: Any, tspan: tuple[float, float]) -> torch.Tensor | None:
    if saveat is None:
        return None
    t0, t1 = tspan
    d = 1.0 if t1 > t0 else -1.0
    if isinstance(saveat, (int, float)) and not isinstance(saveat, bool):
        step = float(saveat)
        if not math.isfinite(step) or step <= 0:
            raise InputError(f"solve: saveat as a spacing must be > 0; got saveat={saveat!r}.")
        k = int(math.floor(abs(t1 - t0) / step + 1e-9))
        ts = t0 + d * step * np.arange(k + 1)
        if abs(ts[-1] - t1) > 1e-9 * max(1.0, abs(t1)):
            ts = np.append(ts, t1)
        return torch.as_tensor(ts, dtype=torch.float64)
    if isinstance(saveat, torch.Tensor):
        arr = saveat.detach().cpu().to(torch.float64).numpy()
    else:
        try:
            arr = np.asarray(saveat, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError(f"solve: saveat must be numbers; got {saveat!r}.") from None
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise InputError("solve: saveat must hold at least one time; got an empty sequence.")
    check_finite(arr, name="saveat", where="solve")
    diffs = np.diff(arr) * d
    if (diffs <= 0).any():
        i = int(np.nonzero(diffs <= 0)[0][0])
        word = "increasing" if d > 0 else "decreasing (tspan runs backwards)"
        raise InputError(
            f"solve: saveat must be strictly {word}; found saveat[{i}]={arr[i]!r} then "
            f"saveat[{i + 1}]={arr[i + 1]!r}."
        )
    lo, hi = min(t0, t1), max(t0, t1)
    slack = 1e-12 * max(1.0, abs(t0), abs(t1))
    outside = (arr < lo - slack) | (arr > hi + slack)
    if outside.any():
        i = int(np.nonzero(outside)[0][0])
        raise InputError(
            f"solve: saveat must lie inside tspan={tspan}; found saveat[{i}]={arr[i]!r}."
        )
    return torch.as_tensor(np.clip(arr, lo, hi), dtype=torch.float64)


def solve(
    problem: ODEProblem,
    method: str = "Tsit5",
    *,
    saveat: Any = None,
    rtol: float = 1e-6,
    atol: float | torch.Tensor = 1e-6,
    dt: float | None = None,
    adaptive: bool | None = None,
    max_steps: int = 100_000,
    dtmin: float = 0.0,
    dense: bool | None = None,
    backend: Literal["torch", "scipy", "julia"] = "torch",
    sensealg: str = "backprop",
    throw: bool = False,
) -> ODESolution:
    """Solve an initial value problem $u' = f(t, u, p)$, $u(t_0) = u_0$ on ``tspan``.

    **Main arguments:**

    Args:
        problem: the `ODEProblem`.
        method: a method name as in DifferentialEquations.jl: ``Euler``, ``Midpoint``,
            ``Heun``, ``RK4`` (fixed step, ``dt`` required for Euler/RK4), ``BS3``, ``DP5``,
            ``Tsit5`` (default), ``Vern7``, ``Vern9``.
        saveat: times at which to save ``(T,)``, or a spacing (``0.1`` saves every 0.1 from
            ``t0``, plus ``t1``). Values are interpolated from the method's dense output, not
            stepped onto. None saves every accepted step (one trajectory) or ``(t0, t1)``
            (a batch).
        rtol, atol: relative and absolute tolerances of the per-trajectory RMS error norm
            $\\|e_i / (atol + rtol \\max(|y_i|, |y_{1,i}|))\\|_{RMS} \\le 1$. ``atol`` may be a
            ``(n,)`` tensor.
        backend: ``"torch"`` (native, differentiable), ``"scipy"`` (reference,
            `scipy.integrate.solve_ivp`), ``"julia"`` (DifferentialEquations.jl).

    **Other arguments:**

    Args:
        dt: the step for fixed-step solves (and the first step of adaptive ones).
        adaptive: False forces fixed steps of ``dt``; default: adaptive unless ``dt`` given.
        max_steps: steps allowed before stopping with retcode ``MaxIters``.
        dtmin: smallest step allowed before retcode ``DtLessThanMin``.
        dense: keep what ``sol(t)`` needs (default: True when ``saveat`` is None).
        sensealg: how gradients flow: ``"backprop"`` records autograd through the steps;
            ``"adjoint"`` solves the continuous adjoint backwards (needs ``saveat``): for
            explicit methods as ``"BacksolveAdjoint"`` (re-integrates ``u`` backwards from
            the save times; memory independent of the number of steps), for stiff ones as
            ``"InterpolatingAdjoint"`` (``u(t)`` from the stored forward dense output, the
            adjoint by a Rosenbrock method; ``"InterpolatingAdjoint(checkpointing=true)"``
            stores ``u`` at the save times only and re-solves one interval at a time).
        throw: raise `SolveError` instead of returning ``success=False``.

    Returns:
        `ODESolution` with ``t (T,)``, ``u (T, n)`` or ``(B, T, n)``, ``stats``, ``retcode``.

    Raises:
        InputError: any invalid argument (before any compute). UnknownMethodError: unknown
        method. BackendUnavailableError: the backend is not installed. SolveError: with
        ``throw=True``, a solve that stopped early.

    Example:
        >>> prob = ODEProblem(lambda t, u, p: -u, [1.0], (0.0, 1.0))
        >>> float(solve(prob, saveat=[1.0]).u[-1, 0])  # doctest: +ELLIPSIS
        0.3678...
    """
    where = "solve"
    if not isinstance(problem, ODEProblem):
        raise InputError(
            f"{where}: problem must be an ODEProblem; got {type(problem).__name__}. "
            "Build one with ub.ODEProblem(f, u0, tspan, params)."
        )
    be = get_backend(backend)
    if not isinstance(method, str):
        raise InputError(f"{where}: method must be a method name (str); got {method!r}.")
    if method not in be.methods():
        raise UnknownMethodError(
            f"{where}: unknown method {method!r} for backend {backend!r}."
            + did_you_mean(method, be.methods(), what="method").replace(
                "Known methods", "Available"
            )
        )
    check_positive(rtol, name="rtol", where=where)
    if isinstance(atol, torch.Tensor):
        check_finite(atol, name="atol", where=where)
        if bool((atol <= 0).any()) or atol.shape not in ((), (problem.n,)):
            raise InputError(
                f"{where}: atol must be > 0, a number or a ({problem.n},) tensor; got shape "
                f"{tuple(atol.shape)} with min {float(atol.min())}."
            )
    else:
        check_positive(atol, name="atol", where=where)
        atol = float(atol)
    if dt is not None:
        check_positive(dt, name="dt", where=where)
        dt = float(dt)
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
        raise InputError(f"{where}: max_steps must be an integer >= 1; got {max_steps!r}.")
    check_positive(dtmin, name="dtmin", where=where, allow_zero=True)
    if sensealg not in SENSEALGS:
        raise InputError(
            f"{where}: unknown sensealg {sensealg!r}."
            + did_you_mean(sensealg, SENSEALGS, what="sensealg")
        )
    ts = _saveat(saveat, problem.tspan)
    if dense is None:
        dense = saveat is None
    if not be.is_available():
        from .errors import BackendUnavailableError

        raise BackendUnavailableError(f"{where}: {be.unavailable_reason()}")
    options = {
        "saveat": ts,
        "rtol": float(rtol),
        "atol": atol,
        "dt": dt,
        "adaptive": adaptive,
        "max_steps": max_steps,
        "dtmin": float(dtmin),
        "dense": bool(dense),
        "throw": throw,
        "sensealg": sensealg,
    }
    sol = be.solve(problem, method, options)
    if throw and not sol.success:
        from .errors import SolveError

        raise SolveError(f"{where}: {sol.message}", sol)
    return sol
