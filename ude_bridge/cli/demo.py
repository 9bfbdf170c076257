"""Built-in systems for ``ude-bridge demo``: Lotka-Volterra, a damped pendulum, SIR.

Each system knows its true equations, the UDE that hides part of them behind a network,
the initial states, time windows, noise, training schedule and the term library for
discovery. `make_config` turns one into a model-file configuration (the same a user writes),
`generate_data` writes its noisy training data and the noise-free truth as CSV, so that the
demo runs exactly the pipeline ``ude-bridge fit`` / ``discover`` run.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write

__all__ = ["SYSTEMS", "DemoSystem", "generate_data", "make_config"]


@dataclass(frozen=True)
class DemoSystem:
    """A built-in example.

    Attributes:
        key, title, description: names for the command line and the report.
        true_equations, true_params: the system the data come from.
        equations, params, fixed: the UDE (network outputs stand for the unknown terms).
        network: ``[network.NAME]`` keys (inputs, outputs, hidden, activation).
        true_terms: what each network output should turn out to be.
        u0: initial states, one list per trajectory.
        t1, dt: training window ``[0, t1]`` sampled every ``dt``.
        forecast: the time the forecast runs to.
        noise: noise standard deviation as a fraction of each state's mean magnitude.
        fit, quick_fit: ``[fit]`` keys for the default run and for ``--quick``.
        discover, quick_discover: ``[discover]`` keys.
    """

    key: str
    title: str
    description: str
    states: tuple[str, ...]
    true_equations: dict[str, str]
    true_params: dict[str, float]
    equations: dict[str, str]
    params: dict[str, float]
    fixed: tuple[str, ...]
    network: dict[str, Any]
    true_terms: dict[str, str]
    u0: tuple[tuple[float, ...], ...]
    t1: float
    dt: float
    forecast: float
    noise: float
    fit: dict[str, Any] = field(default_factory=dict)
    quick_fit: dict[str, Any] = field(default_factory=dict)
    discover: dict[str, Any] = field(default_factory=dict)
    quick_discover: dict[str, Any] = field(default_factory=dict)


_QUICK_FIT = {
    "pretrain": 60,
    "learn_u0": True,
    "optimizers": [["lbfgs", 10]],
    "rtol": 1e-4,
    "atol": 1e-4,
    "checkpoint_every": 5,
}
_QUICK_DISCOVER = {
    "refit": 4,
    "points": 80,
    "n_folds": 3,
    "n_thresholds": 15,
    "select": "samples",  # no simulation of the candidates: seconds saved
}

SYSTEMS: dict[str, DemoSystem] = {
    "lv": DemoSystem(
        key="lv",
        title="Lotka-Volterra predator-prey (the UDE paper's example)",
        description=(
            "Prey x and predators y with known growth alpha*x and death -delta*y; a network "
            "learns the interaction terms, which SINDy then turns into equations "
            "(Rackauckas et al. 2020, p = (1.3, 0.9, 0.8, 1.8)). Three trajectories (the "
            "paper's u0 and two more), t in [0, 3] every 0.1."
        ),
        states=("x", "y"),
        true_equations={"x": "alpha*x - beta*x*y", "y": "gamma*x*y - delta*y"},
        true_params={"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8},
        equations={"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        fixed=("alpha", "delta"),
        network={"inputs": ["x", "y"], "outputs": ["U1", "U2"], "hidden": [16]},
        true_terms={"U1": "-0.9*x*y", "U2": "0.8*x*y"},
        u0=((0.44249296, 4.6280594), (2.0, 1.0), (1.0, 2.5)),
        t1=3.0,
        dt=0.1,
        forecast=6.0,
        noise=0.01,
        fit={
            "pretrain": 100,
            "learn_u0": True,
            "optimizers": [["lbfgs", 80]],
            "rtol": 1e-5,
            "atol": 1e-5,
        },
        quick_fit=_QUICK_FIT,
        discover={"library": {"polynomial": 2}, "refit": 30},
        quick_discover={"library": {"polynomial": 2}, **_QUICK_DISCOVER},
    ),
    "pendulum": DemoSystem(
        key="pendulum",
        title="Damped pendulum (unknown friction)",
        description=(
            "Angle theta and angular velocity omega; gravity -k*sin(theta) is known, a "
            "network of the angular velocity learns the friction, which should come out as "
            "-0.3*omega. Three swings, t in [0, 8] every 0.1."
        ),
        states=("theta", "omega"),
        true_equations={"theta": "omega", "omega": "-k*sin(theta) - b*omega"},
        true_params={"k": 4.0, "b": 0.3},
        equations={"theta": "omega", "omega": "-k*sin(theta) + U1"},
        params={"k": 4.0},
        fixed=("k",),
        network={"inputs": ["omega"], "outputs": ["U1"], "hidden": [16]},
        true_terms={"U1": "-0.3*omega"},
        u0=((1.5, 0.0), (-0.5, 2.0), (2.5, -1.0)),
        t1=8.0,
        dt=0.1,
        forecast=16.0,
        noise=0.01,
        fit={
            "pretrain": 100,
            "learn_u0": True,
            "optimizers": [["lbfgs", 40]],
            "rtol": 1e-5,
            "atol": 1e-5,
        },
        quick_fit=_QUICK_FIT,
        discover={"library": {"polynomial": 2}, "refit": 20},
        quick_discover={"library": {"polynomial": 2}, **_QUICK_DISCOVER},
    ),
    "sir": DemoSystem(
        key="sir",
        title="SIR epidemic (unknown infection term)",
        description=(
            "Susceptible S, infected I, recovered R (fractions of the population); recovery "
            "gamma*I is known, a network learns the infection rate, which should come out as "
            "0.5*S*I. Three outbreaks, t in [0, 20] every 0.5."
        ),
        states=("S", "I", "R"),
        true_equations={
            "S": "-beta*S*I",
            "I": "beta*S*I - gamma*I",
            "R": "gamma*I",
        },
        true_params={"beta": 0.5, "gamma": 0.1},
        equations={"S": "-U1", "I": "U1 - gamma*I", "R": "gamma*I"},
        params={"gamma": 0.1},
        fixed=("gamma",),
        network={"inputs": ["S", "I"], "outputs": ["U1"], "hidden": [16]},
        true_terms={"U1": "0.5*S*I"},
        u0=((0.99, 0.01, 0.0), (0.95, 0.05, 0.0), (0.7, 0.02, 0.28)),
        t1=20.0,
        dt=0.5,
        forecast=50.0,
        noise=0.01,
        fit={
            "pretrain": 100,
            "learn_u0": True,
            "optimizers": [["lbfgs", 60]],
            "rtol": 1e-5,
            "atol": 1e-5,
        },
        quick_fit=_QUICK_FIT,
        discover={"library": {"polynomial": 2}, "refit": 30},
        quick_discover={"library": {"polynomial": 2}, **_QUICK_DISCOVER},
    ),
}

ALIASES = {
    "lotka-volterra": "lv",
    "lotka_volterra": "lv",
    "lotkavolterra": "lv",
    "damped-pendulum": "pendulum",
    "pendulum_friction": "pendulum",
    "epidemic": "sir",
}


def _solve_truth(system: DemoSystem, t: np.ndarray) -> np.ndarray:
    """The true trajectories at ``t``: ``(R, T, n)`` (tight tolerances)."""
    import torch

    from ..model import UDE
    from ..solve import solve

    model = UDE(
        dict(system.true_equations),
        params=dict(system.true_params),
        fixed=tuple(system.true_params),
    )
    u0 = torch.tensor(system.u0, dtype=torch.float64)
    with torch.no_grad():
        prob = model.problem(u0, (float(t[0]), float(t[-1])))
        sol = solve(prob, "Vern9", saveat=torch.as_tensor(t), rtol=1e-10, atol=1e-12, throw=True)
    return sol.u.cpu().numpy()


def _write_csv(path: Path, t: np.ndarray, u: np.ndarray, states: tuple[str, ...]) -> None:
    def write(fh) -> None:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["trajectory", "t", *states])
        for r in range(u.shape[0]):
            for i, ti in enumerate(t):
                out.writerow([r, f"{ti:.10g}", *(repr(float(v)) for v in u[r, i])])

    atomic_write(path, write, where="ude-bridge demo", make_folder=True)


def generate_data(
    system: DemoSystem, folder: Path, *, noise: float | None = None, seed: int = 0
) -> dict[str, Any]:
    """Write ``data.csv`` (noisy, training window) and ``truth.csv`` (noise-free, to the
    forecast time) into ``folder``.

    The noise is Gaussian with standard deviation ``noise`` times the mean magnitude of each
    state over the training data (the paper's "5 % of the mean"), from a seeded generator.

    Returns:
        ``{"data", "truth", "noise", "points"}``.
    """
    noise = system.noise if noise is None else noise
    n_train = int(round(system.t1 / system.dt)) + 1
    n_all = int(round(system.forecast / system.dt)) + 1
    t_all = np.round(np.arange(n_all) * system.dt, 12)
    truth = _solve_truth(system, t_all)
    clean = truth[:, :n_train]
    scale = np.abs(clean).mean(axis=(0, 1))
    rng = np.random.default_rng(seed)
    noisy = clean + noise * scale * rng.standard_normal(clean.shape)
    data_path, truth_path = folder / "data.csv", folder / "truth.csv"
    _write_csv(data_path, t_all[:n_train], noisy, system.states)
    _write_csv(truth_path, t_all, truth, system.states)
    return {"data": data_path, "truth": truth_path, "noise": noise, "points": n_train}


def make_config(
    system: DemoSystem, folder: Path, *, quick: bool = False, seed: int = 0
) -> dict[str, Any]:
    """The raw model-file configuration (as TOML would parse it) of ``system``."""
    fit = {"seed": seed, **(system.quick_fit if quick else system.fit)}
    discover = {"seed": seed, **(system.quick_discover if quick else system.discover)}
    net = dict(system.network)
    return {
        "model": {
            "states": list(system.states),
            "equations": dict(system.equations),
            "params": dict(system.params),
            "fixed": list(system.fixed),
        },
        "network": {"NN1": net},
        "data": {"path": str(folder / "data.csv"), "trajectory": "trajectory"},
        "fit": fit,
        "discover": discover,
        "report": {
            "forecast": system.forecast,
            "truth": str(folder / "truth.csv"),
            "true_terms": dict(system.true_terms),
        },
    }


def resolve_system(name: str) -> DemoSystem:
    """The system called ``name`` (or an alias)."""
    import difflib

    from .config import ConfigError

    key = ALIASES.get(name.lower(), name.lower())
    if key not in SYSTEMS:
        close = difflib.get_close_matches(key, list(SYSTEMS) + list(ALIASES), n=1, cutoff=0.5)
        hint = f" Did you mean {ALIASES.get(close[0], close[0])!r}?" if close else ""
        raise ConfigError(f"demo: unknown system {name!r}.{hint} Systems: {', '.join(SYSTEMS)}.")
    return SYSTEMS[key]
