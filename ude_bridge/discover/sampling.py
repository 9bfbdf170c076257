"""Sample points for discovery: (inputs, outputs) pairs of the unknown terms.

Two routes lead to samples:

- **network** (`sample_network`): a trained UDE's networks are evaluated along the fitted
  trajectories, i.e. the model's own solution from the fitted initial states, on a dense time
  grid (the solver's dense output), optionally with extra points drawn uniformly in the box
  of states the data cover. The samples are smooth; their error is the network's.
- **derivative** (`sample_derivatives`): no trained network. The derivatives
  $\\dot u$ are estimated from the data (a smoothing spline with the smoothing chosen by
  generalised cross-validation, or pysindy's smoothed / plain finite differences). With a
  model whose equations are affine in the network outputs,
  $\\dot u = g_0(t, u) + A(t, u)\\, U$, the outputs are recovered point by point as the
  least-squares solution of $A U = \\dot u - g_0$; without a model the targets are the
  derivatives themselves (plain SINDy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import sympy
import torch

from ..errors import InputError
from .trajectory import trajectory_loss  # re-exported: it lived here first

__all__ = [
    "DERIVATIVE_METHODS",
    "Samples",
    "sample_derivatives",
    "sample_network",
    "samples_from",
    "trajectory_loss",
    "Source",
]

#: Ways to estimate derivatives from data.
DERIVATIVE_METHODS = ("spline", "savgol", "fd")


@dataclass(frozen=True, eq=False)
class Samples:
    """(inputs, outputs) pairs for discovery.

    Attributes:
        variables: ``{name: (N,) array}``: every state, the time and any forcing input.
        outputs: ``{output: (N,) array}``: network outputs (or derivatives ``dx/dt`` keyed
            by state name ``x`` on the derivative route without a model).
        groups: ``(N,)`` integer labels (the trajectory of each sample); cross-validation
            holds out contiguous blocks within each group.
        n_effective: independent observations behind the samples (the data points a network
            was trained on), used by the information criteria.
        source: ``"network"``, ``"derivative"`` or ``"given"``.
    """

    variables: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    groups: np.ndarray
    n_effective: int
    source: str = "given"

    def __post_init__(self) -> None:
        where = "Samples"
        arrays = {**self.variables, **self.outputs}
        if not self.outputs:
            raise InputError(f"{where}: outputs must name at least one output; got none.")
        sizes = {k: np.asarray(v).reshape(-1).shape[0] for k, v in arrays.items()}
        n = next(iter(sizes.values()))
        bad = [k for k, s in sizes.items() if s != n]
        if bad:
            raise InputError(
                f"{where}: every array must have the same length; {bad[0]!r} has {sizes[bad[0]]}"
                f" values, {next(iter(sizes))!r} has {n}."
            )
        for k, v in arrays.items():
            if not np.isfinite(np.asarray(v, dtype=np.float64)).all():
                raise InputError(f"{where}: {k!r} holds NaN or inf; drop those samples.")

    @classmethod
    def from_arrays(
        cls, variables: dict[str, Any], outputs: dict[str, Any], groups: Any = None
    ) -> Samples:
        """Samples of known functions, e.g. ``Samples.from_arrays({"x": x}, {"U1": f(x)})``."""
        var = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in variables.items()}
        out = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in outputs.items()}
        n = len(next(iter(out.values()))) if out else 0
        g = np.zeros(n, dtype=int) if groups is None else np.asarray(groups).reshape(-1)
        return cls(var, out, g, n, "given")

    @property
    def n(self) -> int:
        """The number of samples N."""
        return int(self.groups.shape[0])


def _env(model: Any, t: torch.Tensor, u: torch.Tensor) -> dict[str, np.ndarray]:
    """Values of every state, the time and every forcing input at the points ``(t, u)``."""
    system = model.system()
    env = {str(s): u[:, i].detach().cpu().numpy() for i, s in enumerate(system.states)}
    env[str(system.time)] = t.detach().cpu().numpy()
    fns = getattr(model, "_input_fns", ())  # the UDE's forcing callables F(t)
    for s, fn in zip(system.inputs, fns, strict=False):
        value = torch.broadcast_to(torch.as_tensor(fn(t.to(u.dtype))), t.shape)
        env[str(s)] = value.detach().cpu().numpy().astype(np.float64)
    return env


def _grid(t_i: torch.Tensor, points: int | None) -> torch.Tensor:
    t0, t1 = float(t_i[0]), float(t_i[-1])
    count = points if points is not None else max(200, 4 * len(t_i))
    dense = torch.linspace(t0, t1, count, dtype=torch.float64)
    return torch.unique(torch.cat([dense, t_i.to(torch.float64)]))  # sorted, data times kept


def sample_network(
    result: Any,
    *,
    points: int | None = None,
    box: int = 0,
    along: Literal["fit", "data"] = "fit",
    seed: int = 0,
) -> Samples:
    """Evaluate every network output along the fitted trajectories.

    Args:
        result: a `FitResult` (``.model``, ``.data``, ``.u0``, ``.predict``).
        points: time points per trajectory (default ``max(200, 4 T_i)``), spread evenly over
            its time span; the data times are always included.
        box: extra points drawn uniformly in the box of states the fitted trajectories cover
            (time uniform over the data's span).
        along: ``"fit"``: the model's solution (smooth, dense); ``"data"``: the observed
            states themselves (rows with every state observed, ``points`` ignored).
        seed: seeds the box points.

    Returns:
        `Samples` with ``source="network"``.

    Raises:
        InputError: the fitted model cannot be solved over a trajectory's span, or the
            observed data lack a state the model has (``along="data"``).
    """
    where = "discover"
    model, data = result.model, result.data
    names = [str(s) for s in model.system().states]
    ts, us, groups = [], [], []
    for i in range(len(data.t)):
        if along == "data":
            t_i, u_i = data.t[i], data.u[i]
            missing = [s for s in names if s not in data.states]
            if missing:
                raise InputError(
                    f"{where}: along='data' needs every state observed; {missing[0]!r} is not "
                    "in the data. Use along='fit'."
                )
            u_i = u_i[:, [data.states.index(s) for s in names]]
            keep = ~torch.isnan(u_i).any(dim=1)
            t_i, u_i = t_i[keep], u_i[keep]
        else:
            t_i = _grid(data.t[i], points)
            u_i = result.predict(t_i, trajectory=i)
            if u_i.shape[0] != t_i.shape[0] or not bool(torch.isfinite(u_i).all()):
                raise InputError(
                    f"{where}: the fitted model could not be solved over trajectory {i}'s span "
                    f"({float(t_i[0])}, {float(t_i[-1])}); the fit may have failed. Check "
                    "result.loss, or use along='data'."
                )
        ts.append(t_i.to(torch.float64))
        us.append(u_i.to(model.dtype))
        groups.append(np.full(len(t_i), i))
    if box:
        rng = np.random.default_rng(seed)
        allu = torch.cat(us).detach().cpu().numpy()
        lo, hi = allu.min(axis=0), allu.max(axis=0)
        tlo = min(float(t[0]) for t in data.t)
        thi = max(float(t[-1]) for t in data.t)
        ts.append(torch.as_tensor(rng.uniform(tlo, thi, box)))
        us.append(torch.as_tensor(rng.uniform(lo, hi, (box, len(lo))), dtype=model.dtype))
        groups.append(np.full(box, len(data.t)))
    t, u = torch.cat(ts), torch.cat(us)
    with torch.no_grad():
        out = model.network_outputs(t, u)
    outputs = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in out.items()}
    n_obs = sum(int((~torch.isnan(u_i)).sum()) for u_i in data.u)
    return Samples(_env(model, t, u), outputs, np.concatenate(groups), n_obs, "network")


def _derivative(t: np.ndarray, x: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed values and derivatives of one observed series at the times ``t``."""
    if method == "spline":
        from scipy.interpolate import make_smoothing_spline

        spline = make_smoothing_spline(t, x)  # smoothing by generalised cross-validation
        return spline(t), spline.derivative()(t)
    import pysindy

    if method == "savgol":
        diff = pysindy.SmoothedFiniteDifference(
            smoother_kws={"window_length": min(len(t) - (1 - len(t) % 2), 9), "polyorder": 3}
        )
        dx = diff._differentiate(x.reshape(-1, 1), t).reshape(-1)
        return diff.smoothed_x_.reshape(-1), dx
    dx = pysindy.FiniteDifference(order=2)._differentiate(x.reshape(-1, 1), t).reshape(-1)
    return x, dx


def sample_derivatives(data: Any, model: Any = None, *, method: str = "spline") -> Samples:
    """Samples from derivatives estimated from the data (no trained network needed).

    Args:
        data: `Trajectories`; every state of the model must be observed.
        model: a `UDE` whose equations are affine in its network outputs (the outputs are
            then the targets), or None (the targets are $\\dot u$, keyed by state name).
        method: ``"spline"`` (smoothing spline, GCV), ``"savgol"`` (pysindy's
            Savitzky-Golay smoothed finite differences) or ``"fd"`` (second-order finite
            differences, for noise-free data).

    Raises:
        InputError: an unknown method, a state that is not observed, a trajectory too short
            to differentiate, or a model whose equations are not affine in the outputs.
    """
    where = "discover(derivative route)"
    if method not in DERIVATIVE_METHODS:
        raise InputError(
            f"{where}: derivative must be one of {', '.join(DERIVATIVE_METHODS)}; got {method!r}."
        )
    names = list(data.states) if model is None else [str(s) for s in model.system().states]
    missing = [s for s in names if s not in data.states]
    if missing:
        raise InputError(
            f"{where}: the derivative route needs every state observed; {missing[0]!r} is not "
            "in the data. Train a UDE with ub.fit and discover from its result instead."
        )
    cols = [data.states.index(s) for s in names]
    ts, us, dus, groups = [], [], [], []
    for i, (t_i, u_i) in enumerate(zip(data.t, data.u, strict=True)):
        t_np, u_np = t_i.cpu().numpy(), u_i[:, cols].cpu().numpy().astype(np.float64)
        keep = np.isfinite(u_np).all(axis=1)
        t_np, u_np = t_np[keep], u_np[keep]
        if len(t_np) < 5:
            raise InputError(
                f"{where}: trajectory {i} has {len(t_np)} fully observed points; at least 5 "
                "are needed to estimate derivatives."
            )
        pairs = [_derivative(t_np, u_np[:, j], method) for j in range(len(cols))]
        ts.append(t_np)
        us.append(np.stack([p[0] for p in pairs], axis=1))
        dus.append(np.stack([p[1] for p in pairs], axis=1))
        groups.append(np.full(len(t_np), i))
    t, u, du = np.concatenate(ts), np.concatenate(us), np.concatenate(dus)
    n_obs = int(sum(np.isfinite(x.cpu().numpy()).sum() for x in data.u))
    if model is None:
        env = {s: u[:, j] for j, s in enumerate(names)} | {"t": t}
        outputs = {s: du[:, j] for j, s in enumerate(names)}
        return Samples(env, outputs, np.concatenate(groups), n_obs, "derivative")
    tt = torch.as_tensor(t)
    uu = torch.as_tensor(u, dtype=model.dtype)
    env = _env(model, tt, uu)
    with torch.no_grad():
        rest = du - model.known_part(tt, uu).cpu().numpy()
    outputs = _solve_outputs(model, env, rest, where)
    return Samples(env, outputs, np.concatenate(groups), n_obs, "derivative")


def _solve_outputs(
    model: Any, env: dict[str, np.ndarray], rest: np.ndarray, where: str
) -> dict[str, np.ndarray]:
    """Solve $A(t, u)\\, U = \\dot u - g_0$ for the outputs $U$ at every sample."""
    system = model.system()
    outs = list(system.output_symbols)
    eqs = list(system.substituted_equations())
    for e in eqs:
        for a in outs:
            if any(sympy.diff(e, a, b) != 0 for b in outs):
                raise InputError(
                    f"{where}: the equation {e} is not affine in the network outputs, so they "
                    "cannot be recovered from derivatives. Train the UDE with ub.fit and "
                    "discover from its result."
                )
    jac = [[sympy.diff(e, o) for o in outs] for e in eqs]
    symbols = [sympy.Symbol(k) for k in env]
    n = len(next(iter(env.values())))
    a = np.empty((n, len(eqs), len(outs)))
    for i, row in enumerate(jac):
        for j, entry in enumerate(row):
            fn = sympy.lambdify(symbols, entry, modules="numpy")
            a[:, i, j] = np.broadcast_to(np.asarray(fn(*env.values()), dtype=float), (n,))
    solved = np.einsum("nij,nj->ni", np.linalg.pinv(a), rest)
    return {str(o): solved[:, j] for j, o in enumerate(outs)}


def _is_fit_result(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("model", "data", "predict"))


def _network_inputs(model: Any) -> dict[str, list[sympy.Symbol]]:
    """For each network output, the symbols (states, time, inputs) its network reads."""
    system = model.system()
    order = [*system.states, system.time, *system.inputs]
    allowed = {}
    for net in system.networks:
        used = set().union(*(sympy.sympify(e).free_symbols for e in net.inputs))
        for o in net.outputs:
            allowed[str(o)] = [s for s in order if s in used]
    return allowed


@dataclass(frozen=True, eq=False)
class Source:
    """What `discover` works from, resolved from what it was given.

    Attributes:
        samples: the (inputs, outputs) pairs.
        model: the UDE whose networks are discovered (None for bare samples or data).
        data: the `Trajectories` behind the samples (None for bare samples).
        u0: initial states per trajectory ``(R, n)`` to simulate the model from, or None.
        options: the fit's options (solver method and tolerances), if any.
        allowed: ``{output: the symbols its network reads}``; None: any sampled variable.
    """

    samples: Samples
    model: Any = None
    data: Any = None
    u0: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    allowed: dict[str, list[sympy.Symbol]] | None = None


def samples_from(
    source: Any,
    data: Any = None,
    *,
    points: int | None = None,
    box: int = 0,
    along: Literal["fit", "data"] = "fit",
    derivative: str = "spline",
    seed: int = 0,
) -> Source:
    """Resolve what `discover` was given (see its ``source``) and sample it.

    Raises:
        InputError: a model without networks, an untrained UDE without data, or a source of
            another type.
    """
    from ..data import Trajectories
    from ..model.ude import UDE

    where = "discover"

    def networks_of(model: Any) -> dict[str, list[sympy.Symbol]]:
        if not len(model.networks):
            raise InputError(
                f"{where}: the model has no networks, so there is nothing to discover; "
                f"its equations are {model.to_sympy()}. Give a UDE with ub.MLP(...) terms, or "
                "pass the data (ub.Trajectories) to discover whole right-hand sides."
            )
        return _network_inputs(model)

    if isinstance(source, Samples):
        return Source(source, data=data)  # given samples: any variable may be used
    if isinstance(source, UDE):
        allowed = networks_of(source)
        if not isinstance(data, Trajectories):
            raise InputError(
                f"{where}: discovering from an untrained UDE needs data=ub.Trajectories(...) to "
                f"estimate derivatives from; got data={type(data).__name__}. Or train it first "
                "with ub.fit and pass the result."
            )
        samples = sample_derivatives(data, source, method=derivative)
        return Source(samples, source, data, None, {}, allowed)
    if isinstance(source, Trajectories):
        return Source(sample_derivatives(source, None, method=derivative), data=source)
    if _is_fit_result(source):
        allowed = networks_of(source.model)
        samples = sample_network(source, points=points, box=box, along=along, seed=seed)
        options = dict(getattr(source, "options", None) or {})
        u0 = getattr(source, "u0", None)
        return Source(samples, source.model, source.data, u0, options, allowed)
    raise InputError(
        f"{where}: expected the result of ub.fit, a ub.UDE (with data=...), ub.Trajectories or "
        f"Samples; got {type(source).__name__}."
    )
