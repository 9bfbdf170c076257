"""A stiff problem: Robertson's chemical kinetics, solved with Rodas5P and its rates fitted.

    dy1/dt = -k1*y1 + k3*y2*y3
    dy2/dt =  k1*y1 - k2*y2**2 - k3*y2*y3
    dy3/dt =  k2*y2**2,            k1 = 0.04, k2 = 3e7, k3 = 1e4,  y(0) = (1, 0, 0).

The rates span nine orders of magnitude, so an explicit method needs a step size of order
1e-4 for stability however smooth the solution is; a Rosenbrock method (Rodas5P, linearly
implicit, L-stable) takes a few dozen steps. The parameter fit estimates three factors
``a, b, c`` on the known rates (``k1 = 0.04*a`` ...; all 1 in truth, started at 0.5, 2, 0.7,
kept positive), with gradients through the stiff solver.

Run:
    python examples/stiff_robertson.py            # about half a minute on two cores
    python examples/stiff_robertson.py --quick    # a smoke run
The same fit from a file: ``ude-bridge fit examples/stiff_robertson.toml --out runs/rob``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import ude_bridge as ub

EQUATIONS = {
    "y1": "-0.04*a*y1 + 1e4*c*y2*y3",
    "y2": "0.04*a*y1 - 3e7*b*y2**2 - 1e4*c*y2*y3",
    "y3": "3e7*b*y2**2",
}
Y0 = [1.0, 0.0, 0.0]


def stiff_method_available() -> bool:
    """Whether the torch engine has Rodas5P (the stiff solvers are a later addition)."""
    from ude_bridge.solvers.registry import method_names

    return "Rodas5P" in method_names()


def make_data(n: int = 30, noise: float = 0.01, seed: int = 0) -> ub.Trajectories:
    """Noisy observations at ``n`` log-spaced times in [1e-3, 40] (and t = 0)."""
    truth = ub.UDE(EQUATIONS, params={"a": 1.0, "b": 1.0, "c": 1.0}, fixed=("a", "b", "c"))
    t = np.concatenate([[0.0], np.logspace(-3, np.log10(40.0), n)])
    with torch.no_grad():
        sol = ub.solve(
            truth.problem(Y0, (0.0, 40.0)),
            "Rodas5P",
            saveat=torch.as_tensor(t),
            rtol=1e-8,
            atol=1e-10,
        )
    clean = sol.u.numpy()
    rng = np.random.default_rng(seed)
    noisy = clean * (1 + noise * rng.standard_normal(clean.shape))  # relative noise
    return ub.Trajectories(t, noisy, states=["y1", "y2", "y3"])


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget (smoke test)")
    parser.add_argument("--out", default="runs/examples/robertson", help="the plot goes here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not stiff_method_available():
        print(
            "stiff_robertson: this ude_bridge has no Rodas5P in its torch engine yet "
            "(ude_bridge/solvers/rosenbrock.py); nothing to run."
        )
        return None
    start = time.perf_counter()
    truth = ub.UDE(EQUATIONS, params={"a": 1.0, "b": 1.0, "c": 1.0}, fixed=("a", "b", "c"))
    prob = truth.problem(Y0, (0.0, 40.0))

    # 1. the stiff solve, against scipy's Radau, and what an explicit method makes of it
    with torch.no_grad():
        stiff = ub.solve(prob, "Rodas5P", saveat=[0.4, 4.0, 40.0], rtol=1e-8, atol=1e-10)
        ref = ub.solve(
            prob, "Rodas5P", saveat=[0.4, 4.0, 40.0], rtol=1e-10, atol=1e-12, backend="scipy"
        )  # scipy maps Rodas5P to Radau
        explicit = ub.solve(prob, "Tsit5", rtol=1e-6, atol=1e-8, max_steps=3000)
    diff = float((stiff.u - torch.as_tensor(ref.u)).abs().max())
    print(f"Rodas5P: {stiff.stats['nsteps']} steps; max difference from scipy Radau {diff:.2e}")
    print(
        f"Tsit5:   {explicit.retcode} after {explicit.stats['nsteps']} steps, at "
        f"t = {float(explicit.t[-1]):.3g} of 40 (stability, not accuracy, limits its step)"
    )

    # 2. the parameter fit, with gradients through Rodas5P
    data = make_data(n=12 if args.quick else 30)
    model = ub.UDE(EQUATIONS, params={"a": 0.5, "b": 2.0, "c": 0.7}, positive=("a", "b", "c"))
    result = ub.fit(
        model,
        data,
        method="Rodas5P",
        optimizers=[("lbfgs", 2 if args.quick else 20)],
        rtol=1e-6,
        atol=1e-8,
        u0=Y0,
        progress=not args.quick,
    )
    fitted = result.model.parameters_dict()
    print(
        "fit: "
        + ", ".join(f"{k} = {v:.4f}" for k, v in fitted.items())
        + f" (truth 1); loss {result.loss:.3g}"
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(result, data, out / "robertson.png")
    print(f"time {time.perf_counter() - start:.1f} s; plot in {out}")
    return {"result": result, "difference": diff, "explicit": explicit}


def _plot(result: ub.FitResult, data: ub.Trajectories, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.logspace(-4, np.log10(40.0), 200)
    pred = result.predict(t).numpy()
    obs_t, obs = data.t[0].numpy(), data.u[0].numpy()
    fig, ax = plt.subplots(figsize=(7, 4))
    for j, (name, factor) in enumerate((("y1", 1), ("y2", 1e4), ("y3", 1))):
        label = name if factor == 1 else f"{name} x 1e4"
        line = ax.semilogx(t, factor * pred[:, j], label=f"{label} (fit)")[0]
        ax.semilogx(
            obs_t[1:],
            factor * obs[1:, j],
            "o",
            ms=3,
            color=line.get_color(),
            label=f"{label} (data)",
        )
    ax.set_xlabel("t")
    ax.set_ylabel("concentration")
    ax.set_title("Robertson kinetics: Rodas5P fit")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
