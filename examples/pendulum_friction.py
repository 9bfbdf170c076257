"""A damped pendulum whose friction law is unknown.

    dtheta/dt = omega,     domega/dt = -k*sin(theta) - b*omega,    k = 4, b = 0.3.

Gravity (``-k*sin(theta)``, with k known) is written as an equation; a network ``U1(omega)``
stands in for the friction (a law of the angular velocity, of unknown form). After the fit,
SINDy turns the network into an equation, which should be ``U1 = -0.3*omega``; the refit
estimates its coefficient against the data.

Run:
    python examples/pendulum_friction.py            # about a minute on two cores
    python examples/pendulum_friction.py --quick    # a smoke run
The same model as a file: ``ude-bridge fit examples/pendulum_friction.toml --out runs/pend``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import ude_bridge as ub
from ude_bridge.discover import discover, library

K, B = 4.0, 0.3
U0 = [[1.5, 0.0], [-0.5, 2.0], [2.5, -1.0]]


def make_data(noise: float = 0.01, seed: int = 0, t1: float = 8.0) -> ub.Trajectories:
    """Three swings observed every 0.1 on [0, t1], noise sd = ``noise`` x mean magnitude."""
    true = ub.UDE(
        {"theta": "omega", "omega": "-k*sin(theta) - b*omega"},
        params={"k": K, "b": B},
        fixed=("k", "b"),
    )
    t = np.round(np.arange(int(round(t1 / 0.1)) + 1) * 0.1, 12)
    with torch.no_grad():
        prob = true.problem(torch.tensor(U0, dtype=torch.float64), (0.0, t1))
        clean = ub.solve(prob, "Vern9", saveat=torch.as_tensor(t), rtol=1e-10, atol=1e-12).u
    clean = clean.numpy()
    rng = np.random.default_rng(seed)
    noisy = clean + noise * np.abs(clean).mean(axis=(0, 1)) * rng.standard_normal(clean.shape)
    return ub.Trajectories(t, noisy, states=["theta", "omega"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget (smoke test)")
    parser.add_argument("--out", default="runs/examples/pendulum", help="plots go here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    data = make_data(t1=3.0 if args.quick else 8.0)
    model = ub.UDE(
        {"theta": "omega", "omega": "-k*sin(theta) + U1"},
        params={"k": K},
        fixed=("k",),
        network=ub.MLP(["omega"], ["U1"], hidden=(16,), activation="tanh"),  # friction(omega)
    )
    model.scale_inputs_from(torch.cat(data.t), torch.cat(data.u))
    schedule = (
        [("adam", 0.01, 3), ("lbfgs", 2)] if args.quick else [("adam", 0.01, 60), ("lbfgs", 40)]
    )
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
        library=library.polynomial(["omega"], degree=2),
        select="samples" if args.quick else "auto",
    )
    found.refit(data, optimizers=[("lbfgs", 2 if args.quick else 30)])
    print(
        f"  U1 = {found.expressions['U1']}   (refit: {found.refit_expressions['U1']}; "
        f"true: {-B}*omega)"
    )
    print(f"time {time.perf_counter() - start:.1f} s; plots in {out}")
    return {"result": result, "found": found}


if __name__ == "__main__":
    main()
