"""The UDE paper's example, end to end: Lotka-Volterra with unknown interaction terms.

Rackauckas et al. (2020), "Universal Differential Equations for Scientific Machine
Learning": prey ``x`` and predators ``y`` with

    dx/dt = alpha*x - beta*x*y,     dy/dt = gamma*x*y - delta*y,
    p = (alpha, beta, gamma, delta) = (1.3, 0.9, 0.8, 1.8),  u0 = (0.44249296, 4.6280594),

observed on t in [0, 3] every 0.1 with noise. The growth ``alpha*x`` and death ``-delta*y``
are known; a neural network stands in for the interaction terms:

    dx/dt = alpha*x + U1(x, y),     dy/dt = -delta*y + U2(x, y).

Steps: generate noisy data -> fit the UDE -> discover U1, U2 with SINDy (they should be
-0.9*x*y and 0.8*x*y) -> refit the coefficients -> forecast to t = 6 against the truth.
Besides the paper's initial state, two more trajectories are observed: one short arc of one
trajectory leaves the interaction terms too poorly pinned down for sparse regression.

Run:
    python examples/lotka_volterra_ude.py            # about a minute on two cores
    python examples/lotka_volterra_ude.py --quick    # a smoke run in seconds
The same model as a file: ``ude-bridge fit examples/lotka_volterra_ude.toml --out runs/lv``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import ude_bridge as ub
from ude_bridge.discover import discover, library

P_TRUE = {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8}
U0 = [[0.44249296, 4.6280594], [2.0, 1.0], [1.0, 2.5]]  # the paper's first, then two more


def truth(t: np.ndarray) -> np.ndarray:
    """The true trajectories at times ``t``: ``(3, T, 2)``."""
    model = ub.UDE(
        {"x": "alpha*x - beta*x*y", "y": "gamma*x*y - delta*y"},
        params=P_TRUE,
        fixed=tuple(P_TRUE),
    )
    with torch.no_grad():
        prob = model.problem(torch.tensor(U0, dtype=torch.float64), (0.0, float(t[-1])))
        sol = ub.solve(prob, "Vern9", saveat=torch.as_tensor(t), rtol=1e-10, atol=1e-12)
    return sol.u.numpy()


def make_data(noise: float = 0.01, seed: int = 0) -> ub.Trajectories:
    """Noisy observations on t = 0, 0.1, ..., 3; noise sd = ``noise`` x each state's mean."""
    t = np.round(np.arange(31) * 0.1, 12)
    clean = truth(t)
    rng = np.random.default_rng(seed)
    noisy = clean + noise * np.abs(clean).mean(axis=(0, 1)) * rng.standard_normal(clean.shape)
    return ub.Trajectories(t, noisy, states=["x", "y"])


def make_model() -> ub.UDE:
    """Known growth and death; a 2-16-2 tanh network for the interactions."""
    return ub.UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        fixed=("alpha", "delta"),
        network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(16,), activation="tanh"),
    )


def predict(result: ub.FitResult, t: np.ndarray, trajectory: int = 0) -> np.ndarray:
    """``result.predict`` as numpy, NaN past the time a diverging model stopped."""
    out = np.full((len(t), 2), np.nan)
    u = result.predict(t, trajectory=trajectory).numpy()
    out[: len(u)] = u
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget (smoke test)")
    parser.add_argument("--noise", type=float, default=0.01, help="fraction of the mean")
    parser.add_argument("--out", default="runs/examples/lotka_volterra", help="plots go here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # tiny tensors: more threads only add overhead
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    data = make_data(args.noise)
    model = make_model()
    model.scale_inputs_from(torch.cat(data.t), torch.cat(data.u))  # inputs to [-1, 1]
    schedule = (
        [("adam", 0.05, 5), ("lbfgs", 3)] if args.quick else [("adam", 0.05, 100), ("lbfgs", 100)]
    )
    result = ub.fit(
        model,
        data,
        optimizers=schedule,
        rtol=1e-5,
        atol=1e-5,
        learn_u0=True,
        seed=0,
        progress=not args.quick,
    )
    print(f"fit: loss {result.loss:.3g} after {len(result.history)} iterations")
    result.plot(out / "fit.png")

    # quick: keep SINDy's choice on the samples ("auto" also simulates the candidates)
    found = discover(
        result,
        method="sindy",
        library=library.polynomial(["x", "y"], degree=2),
        select="samples" if args.quick else "auto",
    )
    refit = found.refit(data, optimizers=[("lbfgs", 3 if args.quick else 40)])
    true_terms = {"U1": "-0.9*x*y", "U2": "0.8*x*y"}
    for name, expr in found.expressions.items():
        print(
            f"  {name} = {expr}   (refit: {found.refit_expressions[name]}; "
            f"true: {true_terms[name]})"
        )

    # forecast beyond the training window, from the fitted initial states
    t = np.linspace(0.0, 6.0, 121)
    exact = truth(t)
    errors = {}
    for label, res in (("neural UDE", result), ("discovered", refit)):
        pred = np.stack([predict(res, t, r) for r in range(len(U0))])
        late = t > 3.0
        errors[label] = float(np.sqrt(np.nanmean((pred[:, late] - exact[:, late]) ** 2)))
    print(
        "forecast t in (3, 6], RMS error: " + ", ".join(f"{k} {v:.3g}" for k, v in errors.items())
    )
    _plot_forecast(t, exact, result, refit, data, out / "forecast.png")
    print(f"time {time.perf_counter() - start:.1f} s; plots in {out}")
    return {"result": result, "found": found, "refit": refit, "errors": errors}


def _plot_forecast(t, exact, result, refit, data, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    for j, name in enumerate(("x", "y")):
        ax = axes[j]
        ax.axvspan(0, 3, color="0.92", label="training window")
        ax.plot(t, exact[0, :, j], "k-", lw=1, label="truth")
        ax.plot(t, predict(result, t)[:, j], "-", label="neural UDE")
        ax.plot(t, predict(refit, t)[:, j], "--", label="discovered model")
        ax.plot(data.t[0].numpy(), data.u[0][:, j].numpy(), "o", ms=3, color="0.4", label="data")
        ax.set_ylabel(name)
        ax.set_ylim(-0.5, 1.3 * exact[0, :, j].max())
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("t")
    axes[0].set_title("Lotka-Volterra: forecast of the paper's trajectory")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
