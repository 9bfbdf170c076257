"""An SIR epidemic whose infection term is learned, then written down.

    dS/dt = -beta*S*I,   dI/dt = beta*S*I - gamma*I,   dR/dt = gamma*I,
    beta = 0.5, gamma = 0.1 (fractions of the population; R0 = 5).

Recovery (``gamma*I``) is known; a network ``U1(S, I)`` stands in for the new infections per
unit time. Three outbreaks are observed on t in [0, 20]; SINDy should find
``U1 = 0.5*S*I``, and the discovered model then forecasts the rest of the epidemic (to
t = 50), which the network alone cannot: it never saw S and I so low.

Run:
    python examples/sir_infection.py            # about a minute on two cores
    python examples/sir_infection.py --quick    # a smoke run
The same model as a file: ``ude-bridge fit examples/sir_infection.toml --out runs/sir``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import ude_bridge as ub
from ude_bridge.discover import discover, library

BETA, GAMMA = 0.5, 0.1
U0 = [[0.99, 0.01, 0.0], [0.95, 0.05, 0.0], [0.7, 0.02, 0.28]]


def truth(t: np.ndarray) -> np.ndarray:
    """The true epidemics at ``t``: ``(3, T, 3)``."""
    model = ub.UDE(
        {"S": "-beta*S*I", "I": "beta*S*I - gamma*I", "R": "gamma*I"},
        params={"beta": BETA, "gamma": GAMMA},
        fixed=("beta", "gamma"),
    )
    with torch.no_grad():
        prob = model.problem(torch.tensor(U0, dtype=torch.float64), (0.0, float(t[-1])))
        return ub.solve(prob, "Vern9", saveat=torch.as_tensor(t), rtol=1e-10, atol=1e-12).u.numpy()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget (smoke test)")
    parser.add_argument("--out", default="runs/examples/sir", help="plots go here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    t = np.arange(41) * 0.5
    clean = truth(t)
    rng = np.random.default_rng(0)
    noisy = clean + 0.01 * np.abs(clean).mean(axis=(0, 1)) * rng.standard_normal(clean.shape)
    data = ub.Trajectories(t, noisy, states=["S", "I", "R"])

    model = ub.UDE(
        {"S": "-U1", "I": "U1 - gamma*I", "R": "gamma*I"},
        params={"gamma": GAMMA},
        fixed=("gamma",),
        network=ub.MLP(["S", "I"], ["U1"], hidden=(16,), activation="tanh"),
    )
    model.scale_inputs_from(torch.cat(data.t), torch.cat(data.u))
    schedule = (
        [("adam", 0.01, 3), ("lbfgs", 2)] if args.quick else [("adam", 0.01, 100), ("lbfgs", 80)]
    )
    # the first observation is noisy too: learning the initial states keeps the network from
    # bending the early dynamics to meet it
    result = ub.fit(
        model,
        data,
        optimizers=schedule,
        rtol=1e-5,
        atol=1e-5,
        learn_u0=True,
        progress=not args.quick,
    )
    print(f"fit: loss {result.loss:.3g} after {len(result.history)} iterations")
    result.plot(out / "fit.png")

    # quick: keep SINDy's choice on the samples ("auto" also simulates the candidates)
    found = discover(
        result,
        library=library.polynomial(["S", "I"], degree=2),
        select="samples" if args.quick else "auto",
    )
    refit = found.refit(data, optimizers=[("lbfgs", 2 if args.quick else 30)])
    print(
        f"  U1 = {found.expressions['U1']}   (refit: {found.refit_expressions['U1']}; "
        f"true: {BETA}*S*I)"
    )

    t_long = np.linspace(0.0, 50.0, 201)
    exact = truth(t_long)
    pred = refit.predict(t_long, trajectory=0).numpy()
    if len(pred) == len(t_long):
        err = float(np.sqrt(np.mean((pred[t_long > 20] - exact[0, t_long > 20]) ** 2)))
        print(f"forecast t in (20, 50], discovered model: RMS error {err:.3g}")
    print(f"time {time.perf_counter() - start:.1f} s; plots in {out}")
    return {"result": result, "found": found, "refit": refit}


if __name__ == "__main__":
    main()
