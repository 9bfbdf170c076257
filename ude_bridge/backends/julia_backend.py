"""The Julia backend: DifferentialEquations.jl through juliacall.

Nothing here starts Julia at import time: juliacall is imported on the first solve (or
the first call that needs Julia), and everything that only *describes* the backend
(`JuliaBackend.methods`, `is_available`, `info`, the error messages) works without it.

How a solve runs: the problem's ``f`` must come from a ude_bridge model, i.e. carry a
`SymbolicSystem` (``f.system``, a `SymbolicSystem` or a zero-argument callable returning
one, on ``f`` or on the object ``f`` is bound to). `ude_bridge.codegen.to_julia` turns
it into Julia source, ``julia/UDEBridge.jl`` compiles it once per distinct source, and
OrdinaryDiffEq integrates it with no Python in the inner loop. A plain Python ``f`` is
refused with a clear error rather than called back from Julia on every step: a Python
callback per right-hand side evaluation would be slower than the torch engine.

Arrays: ``u0`` and ``p`` are handed over as numpy views and copied once into Julia
vectors (small, and read many times by the solver); solutions come back without a copy,
Julia's column-major ``(n, T)`` / ``(n, T, B)`` being C-ordered ``(T, n)`` /
``(B, T, n)`` as numpy and torch see it.

Names: methods are DifferentialEquations.jl's (``JULIA_METHODS``); ``rtol, atol,
max_steps, dtmin`` become ``reltol, abstol, maxiters, dtmin``; sensealg names map as in
``SENSEALGS``. ``f(t, u, p)`` becomes Julia's ``f!(du, u, p, t)`` in the generated code.

Starting Julia, loading ``UDEBridge.jl`` and saying what to install when Julia is absent
is `ude_bridge.backends.julia_runtime`'s job; its public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .._checks import did_you_mean
from ..codegen.system import SymbolicSystem
from ..codegen.to_julia import JuliaCode, to_julia
from ..errors import BackendUnavailableError, InputError, SolveError
from ..problem import ODEProblem
from ..solution import RETCODES, ODESolution
from . import julia_runtime as runtime
from .base import SolveOptions
from .julia_runtime import (
    INSTALL_HINT,
    JuliaImportOrderWarning,
    format_info,
    import_pysr,
    info,
    is_available,
    julia_source_path,
    pysr_available,
    require_julia,
    require_pysr,
    udebridge,
    unavailable_reason,
)

__all__ = [
    "INSTALL_HINT",
    "JULIA_METHODS",
    "SENSEALGS",
    "JuliaBackend",
    "JuliaImportOrderWarning",
    "format_info",
    "import_pysr",
    "info",
    "is_available",
    "julia_solve_autograd",
    "julia_source_path",
    "pysr_available",
    "require_julia",
    "require_pysr",
    "system_of",
    "udebridge",
    "unavailable_reason",
]

#: Explicit (non-stiff) methods, spelled as in DifferentialEquations.jl.
EXPLICIT_METHODS = ("Euler", "Midpoint", "Heun", "RK4", "BS3", "DP5", "Tsit5", "Vern7", "Vern9")
#: Stiff methods (Rosenbrock, ESDIRK, BDF); their Jacobians come from ForwardDiff.
STIFF_METHODS = (
    "Rosenbrock23",
    "Rodas4",
    "Rodas5",
    "Rodas5P",
    "KenCarp4",
    "Kvaerno5",
    "TRBDF2",
    "QNDF",
    "FBDF",
)
#: Stiffness-switching composites, built in Julia as ``AutoTsit5(Rosenbrock23())``.
COMPOSITE_METHODS = ("AutoTsit5(Rosenbrock23)", "AutoTsit5(Rodas4)", "AutoTsit5(Rodas5P)")
#: Every method name `JuliaBackend` accepts (mapped 1:1 to OrdinaryDiffEq's).
JULIA_METHODS: tuple[str, ...] = EXPLICIT_METHODS + STIFF_METHODS + COMPOSITE_METHODS
#: Methods OrdinaryDiffEq runs with fixed steps only: they need ``dt``.
FIXED_STEP_METHODS = ("Euler",)

#: ude_bridge sensealg -> what UDEBridge.sensitivity builds. SciMLSensitivity's own names
#: pass through; an optional VJP may follow in parentheses: "GaussAdjoint(ReverseDiffVJP)".
SENSEALGS: dict[str, str] = {
    "backprop": "ReverseDiffAdjoint (through the solver's steps, like torch's backprop)",
    "adjoint": "InterpolatingAdjoint (continuous adjoint, EnzymeVJP)",
    "auto": "SciMLSensitivity's default choice",
    "InterpolatingAdjoint": "continuous adjoint with interpolated forward solution",
    "InterpolatingAdjoint(checkpointing=true)": "the same, u kept at the save times only",
    "GaussAdjoint": "continuous adjoint with Gauss-Kronrod quadrature (fast)",
    "BacksolveAdjoint": "continuous adjoint solving the state backwards",
    "QuadratureAdjoint": "continuous adjoint with stored forward solution",
    "ReverseDiffAdjoint": "discrete: ReverseDiff through the steps",
    "ForwardDiffSensitivity": "forward mode (few parameters)",
}
_VJPS = ("EnzymeVJP", "ReverseDiffVJP", "ZygoteVJP", "auto")

# --------------------------------------------------------------------------- models -> Julia


def system_of(f: Any) -> SymbolicSystem | None:
    """The `SymbolicSystem` a vector field carries, or None for a plain function.

    Looked up as ``f.system`` (a `SymbolicSystem`, or a zero-argument callable returning
    one), then the same on the object a bound method ``f`` belongs to.
    """
    for owner in (f, getattr(f, "__self__", None)):
        if owner is None:
            continue
        attr = getattr(owner, "system", None)
        if isinstance(attr, SymbolicSystem):
            return attr
        if callable(attr):
            try:
                value = attr()
            except TypeError:
                continue
            if isinstance(value, SymbolicSystem):
                return value
    return None


def _code_for(problem: ODEProblem, where: str) -> JuliaCode:
    system = system_of(problem.f)
    if system is None:
        name = getattr(problem.f, "__name__", type(problem.f).__name__)
        raise InputError(
            f"{where}: the problem's f must come from a ude_bridge model (model.problem(...)), "
            f"whose equations are translated to Julia; found a plain Python callable {name!r}. "
            "Use backend='torch' for arbitrary Python functions, or build the model with "
            "ub.UDE(...)."
        )
    if system.n_states != problem.n:
        raise InputError(
            f"{where}: u0 must have one entry per state of the model "
            f"({system.n_states}: {', '.join(map(str, system.states))}); got {problem.n}."
        )
    return to_julia(system)


def _julia_model(code: JuliaCode, where: str) -> Any:
    models = runtime._STATE["models"]
    model = models.get(code.digest)
    if model is None:
        mod = runtime.udebridge(where)
        model = _julia_call(where, mod.load_model, code.source, "UDEModel")
        models[code.digest] = model
    return model


def _julia_call(where: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (InputError, BackendUnavailableError):
        raise
    except Exception as exc:  # juliacall.JuliaError and friends
        raise SolveError(f"{where}: Julia raised an error: {exc}") from exc


def _flat_params(problem: ODEProblem, code: JuliaCode, where: str) -> torch.Tensor:
    """The flat float64 parameter vector ``(P,)``, or ``(B, P)`` per trajectory.

    Differentiable: built with `torch.cat` from ``problem.params`` (a tuple of tensors in
    the `SymbolicSystem` layout, one flat tensor, or a ``(B, P)`` tensor).
    """
    P = code.n_parameters
    params = problem.params
    B = problem.u0.shape[0] if problem.batched else None
    if params is None:
        raise InputError(
            f"{where}: params must hold the model's {P} parameters (model.problem() sets them); "
            "got None."
        )
    if isinstance(params, (list, tuple)):
        slots = code.layout
        leaves = [torch.as_tensor(x, dtype=torch.float64) for x in params]
        if len(leaves) != len(slots):
            raise InputError(
                f"{where}: params must be a tuple of {len(slots)} tensors in the model's layout "
                f"({', '.join(s.name for s in slots)}); got {len(leaves)}."
            )
        if all(leaf.numel() == slot.size for leaf, slot in zip(leaves, slots, strict=True)):
            return torch.cat([leaf.reshape(-1) for leaf in leaves])
        if B is not None and all(
            leaf.dim() >= 1 and leaf.shape[0] == B and leaf.numel() == B * slot.size
            for leaf, slot in zip(leaves, slots, strict=True)
        ):
            return torch.cat([leaf.reshape(B, -1) for leaf in leaves], dim=1)
        for leaf, slot in zip(leaves, slots, strict=True):
            if leaf.numel() != slot.size:
                break
        batch = f", or ({B}, ...) for all of them in a batch" if B is not None else ""
        raise InputError(
            f"{where}: parameter {slot.name!r} must have shape {slot.shape}{batch}; got shape "
            f"{tuple(leaf.shape)}."
        )
    if isinstance(params, (torch.Tensor, np.ndarray)):
        flat = torch.as_tensor(params, dtype=torch.float64)
        if flat.dim() == 1 and flat.numel() == P:
            return flat
        if flat.dim() == 2 and B is not None and tuple(flat.shape) == (B, P):
            return flat
        raise InputError(
            f"{where}: params as one tensor must have shape ({P},), or (B, {P}) for a batch; "
            f"got {tuple(flat.shape)}."
        )
    raise InputError(
        f"{where}: params must be a tuple of tensors in the model's layout or a flat tensor; "
        f"got {type(params).__name__}."
    )


def _sensealg(name: str, where: str) -> tuple[str, str]:
    base, vjp = name, "EnzymeVJP"
    if name in SENSEALGS:  # a whole name, brackets and all (checkpointing=true)
        return base, vjp
    if name.endswith(")") and "(" in name:
        base, vjp = name[:-1].split("(", 1)
    if base not in SENSEALGS:
        raise InputError(
            f"{where}: unknown sensealg {base!r} for backend 'julia'."
            + did_you_mean(base, list(SENSEALGS), what="sensealg")
        )
    if vjp not in _VJPS:
        raise InputError(
            f"{where}: unknown VJP {vjp!r} in sensealg {name!r}."
            + did_you_mean(vjp, _VJPS, what="VJP")
        )
    return base, vjp


# --------------------------------------------------------------------------- conversions


def _from_julia(array: Any) -> torch.Tensor:
    """A Julia array as a torch tensor, sharing memory (numpy reads juliacall's buffer)."""
    arr = np.asarray(array, dtype=np.float64)
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", torch.float64).contiguous().numpy()


def _message(retcode: str, t: float, options: SolveOptions) -> str:
    template = RETCODES.get(retcode)
    if template is None:
        return (
            f"{retcode}: the Julia solver stopped at t={t} with retcode {retcode}; see "
            "DifferentialEquations.jl's ReturnCode documentation."
        )
    return template.format(
        max_steps=options.get("max_steps", 100_000), dtmin=options.get("dtmin", 0.0), t=t
    )


def _julia_kwargs(problem: ODEProblem, method: str, options: SolveOptions, where: str) -> dict:
    adaptive = options.get("adaptive")
    dt = options.get("dt")
    if adaptive is None:
        adaptive = dt is None
    if adaptive and method in FIXED_STEP_METHODS:
        raise InputError(
            f"{where}: method {method!r} is fixed-step in DifferentialEquations.jl; pass "
            f"dt=..., or choose an adaptive method such as 'Tsit5'; got dt={dt}."
        )
    if not adaptive and dt is None:
        raise InputError(f"{where}: adaptive=False needs a step size; pass dt=... (got dt=None).")
    atol = options.get("atol", 1e-6)
    atol = _numpy(atol) if isinstance(atol, torch.Tensor) and atol.dim() > 0 else float(atol)
    return {
        "rtol": float(options.get("rtol", 1e-6)),
        "atol": atol,
        "dt": dt,
        "adaptive": bool(adaptive),
        "max_steps": int(options.get("max_steps", 100_000)),
        "dtmin": float(options.get("dtmin", 0.0)) or None,
    }


def _saveat(problem: ODEProblem, options: SolveOptions) -> torch.Tensor | None:
    saveat = options.get("saveat")
    if saveat is None and problem.batched:
        saveat = torch.tensor(problem.tspan, dtype=torch.float64)
    return saveat


def _worst(retcodes: list[str]) -> str:
    return next((r for r in retcodes if r != "Success"), "Success")


# --------------------------------------------------------------------------- the backend


class JuliaBackend:
    """DifferentialEquations.jl through juliacall (optional: ``pip install "ude-bridge[julia]"``).

    Options beyond the common ones: ``ensemble`` (batched solves): ``"threads"``
    (default), ``"serial"``, ``"gpu_array"`` or ``"gpu_kernel"`` (need
    `ude_bridge.julia.install_gpu` and an NVIDIA GPU).
    """

    name = "julia"

    def is_available(self) -> bool:
        return runtime.is_available()

    def unavailable_reason(self) -> str:
        return unavailable_reason()

    def methods(self) -> tuple[str, ...]:
        return JULIA_METHODS

    def solve(self, problem: ODEProblem, method: str, options: SolveOptions) -> ODESolution:
        """Solve ``problem`` in Julia.

        Differentiable when ``u0`` or ``params`` require grad (then ``saveat`` is needed,
        and a solve that fails raises `SolveError`, since no gradient exists for it);
        otherwise a failure returns ``success=False`` with the retcode's message.
        """
        where = f"solve(backend='julia', method={method!r})"
        runtime.require_julia(where)
        code = _code_for(problem, where)
        flat = _flat_params(problem, code, where)
        kwargs = _julia_kwargs(problem, method, options, where)
        saveat = _saveat(problem, options)
        needs_grad = torch.is_grad_enabled() and (problem.u0.requires_grad or flat.requires_grad)
        if needs_grad:
            if saveat is None:
                raise InputError(
                    f"{where}: gradients through Julia need the save times; pass saveat=... "
                    "(got saveat=None)."
                )
            u, info = _autograd_solve(problem, code, flat, method, saveat, kwargs, options, where)
            return self._solution(problem, method, saveat, u, info, options, None)
        model = _julia_model(code, where)
        mod = runtime.udebridge(where)
        u0 = problem.u0
        ts = None if saveat is None else _numpy(saveat)
        if problem.batched:
            p_arg = _numpy(flat).T if flat.dim() == 2 else _numpy(flat)
            res = _julia_call(
                where,
                mod.solve_ensemble,
                model,
                _numpy(u0).T,
                p_arg,
                problem.tspan,
                method,
                saveat=ts,
                ensemble=options.get("ensemble", "threads"),
                **kwargs,
            )
            u = _from_julia(res["u"]).permute(2, 1, 0)
            info = _info(res, batched=True)
            return self._solution(problem, method, saveat, u, info, options, None)
        res = _julia_call(
            where,
            mod.solve_arrays,
            model,
            _numpy(u0),
            _numpy(flat),
            problem.tspan,
            method,
            saveat=ts,
            dense=bool(options.get("dense", saveat is None)),
            **kwargs,
        )
        t = _from_julia(res["t"])
        u = _from_julia(res["u"]).T
        info = _info(res, batched=False)
        interpolant = None
        if options.get("dense", saveat is None):

            def interpolant(tt: torch.Tensor, _res: Any = res) -> torch.Tensor:
                out = _julia_call(where, mod.interpolate, _res, _numpy(tt))
                return _from_julia(out).T.to(problem.u0.dtype)

        return self._solution(problem, method, t, u, info, options, interpolant)

    def _solution(
        self,
        problem: ODEProblem,
        method: str,
        t: torch.Tensor,
        u: torch.Tensor,
        info: dict,
        options: SolveOptions,
        interpolant: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> ODESolution:
        retcode = info["retcode"]
        t_reached = info["t_reached"]
        t_last = float(np.nanmax(t_reached)) if isinstance(t_reached, np.ndarray) else t_reached
        return ODESolution(
            t=t.to(torch.float64),
            u=u.to(dtype=problem.u0.dtype, device=problem.u0.device),
            stats=info["stats"],
            retcode=retcode,
            message=_message(retcode, t_last, options),
            t_reached=torch.from_numpy(t_reached)
            if isinstance(t_reached, np.ndarray)
            else t_reached,
            method=method,
            backend=self.name,
            retcodes=info.get("retcodes"),
            interpolant=interpolant,
            tspan=problem.tspan,
        )


def _info(res: Any, *, batched: bool) -> dict:
    stats = {str(k): int(v) for k, v in res["stats"].items()}
    if batched:
        retcodes = [str(r) for r in res["retcodes"]]
        return {
            "retcode": _worst(retcodes),
            "retcodes": retcodes,
            "t_reached": np.asarray(res["t_reached"], dtype=np.float64).copy(),
            "stats": stats,
        }
    return {"retcode": str(res["retcode"]), "t_reached": float(res["t_reached"]), "stats": stats}


# --------------------------------------------------------------------------- gradients


class _JuliaSolve(torch.autograd.Function):
    """u = solve(u0, p) in Julia; backward = the SciMLSensitivity pullback."""

    @staticmethod
    def forward(ctx: Any, u0: torch.Tensor, flat: torch.Tensor, run: Callable) -> torch.Tensor:
        u, pullback = run(u0, flat)
        ctx.pullback = pullback
        return u

    @staticmethod
    def backward(ctx: Any, grad_u: torch.Tensor) -> tuple:
        du0, dp = ctx.pullback(grad_u)
        return du0, dp, None


def _autograd_solve(
    problem: ODEProblem,
    code: JuliaCode,
    flat: torch.Tensor,
    method: str,
    saveat: torch.Tensor,
    kwargs: dict,
    options: SolveOptions,
    where: str,
) -> tuple[torch.Tensor, dict]:
    model = _julia_model(code, where)
    mod = runtime.udebridge(where)
    sensealg, vjp = _sensealg(str(options.get("sensealg", "backprop")), where)
    ts = _numpy(saveat)
    batched = problem.batched
    per_traj = flat.dim() == 2

    def run(u0: torch.Tensor, p: torch.Tensor) -> tuple:
        if batched:
            p_arg = _numpy(p).T if per_traj else _numpy(p)
            res = _julia_call(
                where, mod.solve_and_pullback_batch, model, _numpy(u0).T, p_arg,
                problem.tspan, method, ts, sensealg=sensealg, vjp=vjp, **kwargs,
            )  # fmt: skip
            u = _from_julia(res["u"]).permute(2, 1, 0)
        else:
            res = _julia_call(
                where, mod.solve_and_pullback, model, _numpy(u0), _numpy(p),
                problem.tspan, method, ts, sensealg=sensealg, vjp=vjp, **kwargs,
            )  # fmt: skip
            u = _from_julia(res["u"]).T
        info = _info(res, batched=batched)
        if info["retcode"] != "Success" or u.shape[-2] != len(ts):
            t_last = np.nanmax(info["t_reached"]) if batched else info["t_reached"]
            raise SolveError(f"{where}: {_message(info['retcode'], float(t_last), options)}")
        back = res["pullback"]

        def pullback(grad_u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            g = _numpy(grad_u)
            g = g.transpose(2, 1, 0) if batched else g.T
            du0, dp = _julia_call(where, back, g)
            du0_t, dp_t = _from_julia(du0), _from_julia(dp)
            if batched:
                du0_t = du0_t.T
                dp_t = dp_t.T if per_traj else dp_t
            return du0_t, dp_t

        holder["info"] = info
        return u, pullback

    holder: dict = {}
    u = _JuliaSolve.apply(problem.u0.to(torch.float64), flat, run)
    return u.to(problem.u0.dtype), holder["info"]


def julia_solve_autograd(problem: ODEProblem, method: str, options: SolveOptions) -> torch.Tensor:
    """Solve in Julia and return ``u`` at ``options["saveat"]`` with gradients.

    The forward pass runs UDEBridge's ``solve_and_pullback``; the backward pass calls the
    returned pullback, a vector-Jacobian product through SciMLSensitivity (``sensealg``,
    mapped as in `SENSEALGS`). Gradients reach ``problem.u0`` and every tensor of
    ``problem.params``.

    Args:
        problem: an `ODEProblem` built by a ude_bridge model (see `system_of`).
        method: a name from `JULIA_METHODS`.
        options: the validated options of `ude_bridge.solve`; ``saveat`` is required.

    Returns:
        ``(T, n)`` or ``(B, T, n)``, in ``u0``'s dtype.

    Raises:
        InputError: no saveat, a plain-Python ``f``, parameters not in the model's layout.
        BackendUnavailableError: juliacall is not installed or Julia cannot start.
        SolveError: Julia raised an error.
    """
    where = f"fit/solve(backend='julia', method={method!r})"
    runtime.require_julia(where)
    saveat = options.get("saveat")
    if saveat is None:
        raise InputError(f"{where}: saveat must be given for gradients; got saveat=None.")
    code = _code_for(problem, where)
    flat = _flat_params(problem, code, where)
    kwargs = _julia_kwargs(problem, method, options, where)
    u, _ = _autograd_solve(problem, code, flat, method, saveat, kwargs, options, where)
    return u
