"""Benchmark: equation discovery on the UDE paper's Lotka-Volterra data, PySINDy vs ude_bridge.

Data (Rackauckas et al. 2020, fig. 2): $\\dot x = 1.3 x - 0.9 x y$, $\\dot y = 0.8 x y - 1.8 y$
from $u_0 = (0.44249296, 4.6280594)$, observed at $t = 0, 0.1, \\dots, 3$ (31 points) with
Gaussian noise of standard deviation ``noise`` times each state's mean, for noise 0.5 % and
5 % and noise draws (seeds) 0-4 -- the same draws as ``tests/discover/test_pipeline.py``.

**PySINDy** (the whole system, both equations, library: the 10 monomials of degree
$\\le 3$ in $x, y$), in the set-ups that do best on short noisy series, each with the model
chosen without knowing the answer:

- *weak SINDy*: `ps.WeakPDELibrary` (K = 100 random subdomains of half-width 0.3, test
  functions of degree p = 4), STLSQ over a sweep of 41 thresholds from 1e-3 to 10.
- *ensemble SINDy*: derivatives by `ps.SmoothedFiniteDifference` (Savitzky-Golay), then
  `ps.EnsembleOptimizer` (20 bagged STLSQ fits, median coefficients) over the same sweep
  (Fasel et al. 2022).
- *MIOSR* (Bertsimas & Gurnee 2023; needs gurobipy): the optimal support at every
  sparsity $(s_x, s_y) \\in \\{1..5\\}^2$, on the weak-form and on the derivative regression.

Every candidate support is refitted by least squares and one model is chosen by an
information criterion: *BIC on the regression* (per equation,
$n \\log(\\mathrm{RSS}/N) + k \\log n$ on the $N$ rows the method regresses on, $n = 31$
observations behind them), or *AICc on
simulations* (Mangan et al. 2017: each whole-system candidate is simulated from the first
observation, $\\mathrm{RSS} = \\sum_{k,j} ((\\hat u_{kj} - u_{kj}) / s_j)^2$ with $s_j$ the
spread of state $j$, $N = 62$, $\\mathrm{AICc} = N \\log(\\mathrm{RSS}/N) + 2k +
2k(k + 1)/(N - k - 1)$). Success: exactly $\\{x, xy\\}$ in $\\dot x$ and $\\{y, xy\\}$ in $\\dot y$.

**ude_bridge** (fit-then-discover, as in the test): the UDE $\\dot x = 1.3 x + U_1$,
$\\dot y = -1.8 y + U_2$ with $U$ an MLP (2-32-32-2, tanh), pre-trained on spline
derivatives (collocation, 60 L-BFGS iterations), fitted by 100 L-BFGS iterations, then
`ub.discover` (polynomial library of degree 3 per output) and `found.refit` (50 L-BFGS
iterations). Success: $U_1$ and $U_2$ are exactly $c\\,xy$ and the refitted coefficients are
within 5 % (0.5 % noise) or 15 % (5 % noise) of $(-0.9, 0.8)$.

    python benchmarks/bench_discover.py [--quick] [--seeds 5]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import optional, print_table  # noqa: E402

import ude_bridge as ub  # noqa: E402

P = {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8}
U0 = (0.44249296, 4.6280594)
NOISES = (0.005, 0.05)
#: the refit bars of the product promise: coefficient error at each noise level
RTOL = {0.005: 0.05, 0.05: 0.15}
TERMS = ("1", "x", "y", "x^2", "x y", "y^2", "x^3", "x^2 y", "x y^2", "y^3")
TRUE_SUPPORT = ((1, 4), (2, 4))  # x' uses x, xy; y' uses y, xy
THRESHOLDS = np.geomspace(1e-3, 10.0, 41)  # from keeping every term to dropping every term
SPARSITIES = range(1, 6)


def truth(t: torch.Tensor, u: torch.Tensor, p: object = None) -> torch.Tensor:
    x, y = u[..., 0], u[..., 1]
    return torch.stack(
        [P["alpha"] * x - P["beta"] * x * y, P["gamma"] * x * y - P["delta"] * y], -1
    )


def make_data(noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(t (31,), u (31, 2))``: the paper's series with noise draw ``seed`` (the draw of
    ``tests/discover/systems.lv_data``)."""
    t = torch.linspace(0.0, 3.0, 31, dtype=torch.float64)
    u0 = torch.tensor(U0, dtype=torch.float64)
    u = ub.solve(ub.ODEProblem(truth, u0, (0.0, 3.0)), saveat=t, rtol=1e-10, atol=1e-10).u
    rng = np.random.default_rng(seed)
    noisy = u.numpy() + noise * u.mean(0).numpy() * rng.standard_normal(tuple(u.shape))
    return t.numpy(), noisy


@dataclass
class Outcome:
    """One method on one noise draw."""

    method: str
    selection: str
    noise: float
    seed: int
    success: bool
    model: str
    seconds: float


# --------------------------------------------------------------------------- PySINDy
def regression(kind: str, t: np.ndarray, u: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The regression problem ``(theta (N, 10), target (N, 2))`` of the weak form or of
    smoothed finite differences."""
    import pysindy as ps

    poly = ps.PolynomialLibrary(degree=3, include_bias=True)
    if kind == "weak":
        np.random.seed(seed)  # the subdomain centres are drawn from numpy's global generator
        lib = ps.WeakPDELibrary(
            function_library=poly, spatiotemporal_grid=t, K=100, H_xt=[0.3], p=4
        )
        _, target = lib.calc_trajectory(ps.FiniteDifference(), u, t)
        theta = lib.fit_transform([u])[0]
    else:
        target = ps.SmoothedFiniteDifference()._differentiate(u, t)
        theta = poly.fit_transform([u])[0]
    return np.asarray(theta, dtype=float), np.asarray(target, dtype=float)


def sweep_stlsq(theta: np.ndarray, target: np.ndarray, seed: int, bagged: bool) -> list:
    """Coefficient matrices ``(2, 10)`` of STLSQ (or bagged STLSQ) over the thresholds."""
    import pysindy as ps

    out = []
    for lam in THRESHOLDS:
        opt = ps.STLSQ(threshold=float(lam), alpha=1e-5)
        if bagged:
            np.random.seed(seed)  # the bags are drawn from numpy's global generator
            opt = ps.EnsembleOptimizer(opt, bagging=True, n_models=20)
        out.append(np.asarray(opt.fit(theta, target).coef_))
    return out


def sweep_miosr(theta: np.ndarray, target: np.ndarray, seed: int) -> list:
    """Coefficient matrices of MIOSR at every per-equation sparsity in `SPARSITIES`."""
    import pysindy as ps

    out = []
    for sx, sy in itertools.product(SPARSITIES, SPARSITIES):
        opt = ps.optimizers.MIOSR(
            group_sparsity=(sx, sy), alpha=1e-5, normalize_columns=True, unbias=True
        )
        out.append(np.asarray(opt.fit(theta, target).coef_))
    return out


def _lstsq(theta: np.ndarray, y: np.ndarray, support: tuple[int, ...]) -> np.ndarray:
    coef = np.zeros(theta.shape[1])
    if support:
        coef[list(support)] = np.linalg.lstsq(theta[:, support], y, rcond=None)[0]
    return coef


def _supports(coefs: Iterable[np.ndarray]) -> list[tuple[tuple[int, ...], ...]]:
    seen = {tuple(tuple(int(j) for j in np.flatnonzero(row)) for row in c) for c in coefs}
    return sorted(seen)


def by_regression_bic(theta: np.ndarray, target: np.ndarray, coefs: list, n: int) -> np.ndarray:
    """Per equation, the candidate support with the lowest BIC of its least-squares refit,
    $n \\log(\\mathrm{RSS}/N) + k \\log n$ with $N$ regression rows and $n$ independent
    observations behind them (the weak form's overlapping subdomains are not independent)."""
    rows = theta.shape[0]
    chosen = []
    for e in range(target.shape[1]):
        best, best_bic = None, np.inf
        for support in {s[e] for s in _supports(coefs)}:
            c = _lstsq(theta, target[:, e], support)
            rss = float(np.sum((target[:, e] - theta @ c) ** 2))
            bic = n * np.log(max(rss, 1e-300) / rows) + len(support) * np.log(n)
            if bic < best_bic:
                best, best_bic = c, bic
        chosen.append(best if best is not None else np.zeros(theta.shape[1]))
    return np.stack(chosen)


def simulate(coef: np.ndarray, t: np.ndarray, u0: np.ndarray, bound: float) -> np.ndarray | None:
    """The polynomial model ``coef (2, 10)`` from ``u0`` at ``t``; None if it leaves
    ``|u| < bound`` or the solver fails."""
    from scipy.integrate import solve_ivp

    def rhs(_t: float, u: np.ndarray) -> np.ndarray:
        x, y = u
        feats = np.array([1, x, y, x * x, x * y, y * y, x**3, x * x * y, x * y * y, y**3])
        return coef @ feats

    def escape(_t: float, u: np.ndarray) -> float:
        return bound - float(np.max(np.abs(u)))

    escape.terminal = True
    sol = solve_ivp(rhs, (t[0], t[-1]), u0, t_eval=t, rtol=1e-8, atol=1e-8, events=escape)
    if sol.status != 0 or sol.y.shape[1] != len(t):
        return None
    return sol.y.T


def by_simulation_aicc(
    theta: np.ndarray, target: np.ndarray, coefs: list, t: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """The whole-system candidate (least-squares refit) with the lowest AICc of its
    simulation against the data (Mangan et al. 2017)."""
    n = u.size
    scale = u.std(axis=0)
    best, best_aicc = np.zeros((2, theta.shape[1])), np.inf
    for supports in _supports(coefs):
        coef = np.stack([_lstsq(theta, target[:, e], s) for e, s in enumerate(supports)])
        k = sum(len(s) for s in supports)
        sim = simulate(coef, t, u[0], bound=100 * float(np.abs(u).max()))
        if sim is None or k >= n - 1:
            continue
        rss = float(np.sum(((sim - u) / scale) ** 2))
        aicc = n * np.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
        if aicc < best_aicc:
            best, best_aicc = coef, aicc
    return best


def describe(coef: np.ndarray) -> str:
    """``x' = 1.3 x - 0.9 x y; y' = ...`` with 3 significant digits."""
    eqs = []
    for lhs, row in zip(("x'", "y'"), coef, strict=True):
        terms = [f"{c:+.3g}" + ("" if j == 0 else f" {TERMS[j]}") for j, c in enumerate(row) if c]
        eqs.append(f"{lhs} = {' '.join(terms) or '0'}")
    return "; ".join(eqs)


def pysindy_runs(noise: float, seed: int, miosr: bool) -> list[Outcome]:
    """Every PySINDy set-up and selection on one draw."""
    t, u = make_data(noise, seed)
    setups: list[tuple[str, str, Callable[[np.ndarray, np.ndarray], list]]] = [
        ("weak SINDy, STLSQ", "weak", lambda a, b: sweep_stlsq(a, b, seed, bagged=False)),
        (
            "ensemble SINDy (smoothed FD, bagged STLSQ)",
            "sfd",
            lambda a, b: sweep_stlsq(a, b, seed, True),
        ),
    ]
    if miosr:
        setups += [
            ("weak SINDy, MIOSR", "weak", lambda a, b: sweep_miosr(a, b, seed)),
            ("SINDy (smoothed FD), MIOSR", "sfd", lambda a, b: sweep_miosr(a, b, seed)),
        ]
    out = []
    for name, kind, sweep in setups:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # thresholds that drop every term warn
            theta, target = regression(kind, t, u, seed)
            coefs = sweep(theta, target)
        swept = time.perf_counter() - start
        for selection, choose in (
            ("BIC, regression", by_regression_bic),
            ("AICc, simulation", by_simulation_aicc),
        ):
            start = time.perf_counter()
            extra = (len(t),) if choose is by_regression_bic else (t, u)
            coef = choose(theta, target, coefs, *extra)
            support = tuple(tuple(int(j) for j in np.flatnonzero(row)) for row in coef)
            seconds = swept + time.perf_counter() - start
            out.append(
                Outcome(
                    name, selection, noise, seed, support == TRUE_SUPPORT, describe(coef), seconds
                )
            )
    return out


# --------------------------------------------------------------------------- ude_bridge
def ours(noise: float, seed: int) -> tuple[Outcome, dict[str, float]]:
    """Fit-then-discover-then-refit on one draw; also the time of each stage."""
    import sympy

    from ude_bridge.cli.pipeline import pretrain_networks

    x, y = sympy.symbols("x y")
    t, u = make_data(noise, seed)
    data = ub.Trajectories(torch.as_tensor(t), torch.as_tensor(u), states=["x", "y"])
    times = {}
    start = time.perf_counter()
    model = ub.UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": P["alpha"], "delta": P["delta"]},
        fixed=("alpha", "delta"),
        network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(32, 32), activation="tanh", seed=seed),
    )
    model.scale_inputs_from(data.t[0], data.u[0])
    pretrain_networks(model, data, 60, seed=seed)
    result = ub.fit(model, data, optimizers=[("lbfgs", 100)], progress=False, seed=seed)
    times["fit"] = time.perf_counter() - start
    start = time.perf_counter()
    found = ub.discover(result, library=ub.library.polynomial(["x", "y"], degree=3))
    times["discover"] = time.perf_counter() - start
    exact = all(found.table[o].terms == (x * y,) for o in ("U1", "U2"))
    text = "; ".join(f"{o} = {found.expressions[o].evalf(3)}" for o in ("U1", "U2"))
    success = False
    start = time.perf_counter()
    if exact:
        found.refit(data, optimizers=[("lbfgs", 50)])
        c = [float(found.refit_expressions[o].coeff(x * y)) for o in ("U1", "U2")]
        err = max(abs(c[0] / -P["beta"] - 1), abs(c[1] / P["gamma"] - 1))
        success = err <= RTOL[noise]
        text += f" -> refit {c[0]:+.4f} xy, {c[1]:+.4f} xy (max error {100 * err:.1f} %)"
    times["refit"] = time.perf_counter() - start
    seconds = sum(times.values())
    return Outcome(
        "ude_bridge fit-then-discover", "trajectory", noise, seed, success, text, seconds
    ), times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one noise draw per level")
    ap.add_argument("--seeds", type=int, default=5, help="noise draws per level (default 5)")
    ap.add_argument("--skip-ours", action="store_true", help="PySINDy baselines only")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = range(1 if args.quick else args.seeds)
    miosr = optional("gurobipy") is not None
    outcomes: list[Outcome] = []
    stages: list[dict[str, object]] = []
    for noise in NOISES:
        for seed in seeds:
            outcomes += pysindy_runs(noise, seed, miosr)
            if not args.skip_ours:
                outcome, times = ours(noise, seed)
                outcomes.append(outcome)
                stages.append({"noise": f"{100 * noise:g} %", "seed": seed, **times})
            print(f"# noise {100 * noise:g} %, draw {seed} done", file=sys.stderr, flush=True)

    print("\n## Per draw\n")
    print_table(
        [
            {
                "noise": f"{100 * o.noise:g} %",
                "seed": o.seed,
                "method": o.method,
                "selection": o.selection,
                "success": "yes" if o.success else "no",
                "model chosen": o.model,
                "s": o.seconds,
            }
            for o in outcomes
        ],
        ["noise", "seed", "method", "selection", "success", "model chosen", "s"],
    )
    if stages:
        print("\n## ude_bridge stages (s)\n")
        print_table(stages, ["noise", "seed", "fit", "discover", "refit"])

    print(f"\n## Successes out of {len(seeds)} draws\n")
    rows = []
    keys = list(dict.fromkeys((o.method, o.selection) for o in outcomes))
    for method, selection in keys:
        row: dict[str, object] = {"method": method, "selection": selection}
        for noise in NOISES:
            mine = [
                o
                for o in outcomes
                if (o.method, o.selection, o.noise) == (method, selection, noise)
            ]
            row[f"{100 * noise:g} % noise"] = f"{sum(o.success for o in mine)}/{len(mine)}"
        row["median s/draw"] = float(
            np.median(
                [o.seconds for o in outcomes if (o.method, o.selection) == (method, selection)]
            )
        )
        rows.append(row)
    if not miosr:
        rows.append(
            {
                "method": "MIOSR",
                "selection": "-",
                **{f"{100 * n:g} % noise": "n/a (no gurobipy)" for n in NOISES},
            }
        )
    print_table(
        rows, ["method", "selection", *(f"{100 * n:g} % noise" for n in NOISES), "median s/draw"]
    )
    print(
        f"\ntorch {torch.__version__}, pysindy {optional('pysindy').__version__}, "
        f"gurobipy {'yes' if miosr else 'not installed'}; 1 torch thread, CPU"
    )


if __name__ == "__main__":
    main()
