"""The same UDE on DifferentialEquations.jl: solve, compare with the torch engine, fit.

Julia is optional. Without it this script says what is missing and how to install it, and
exits normally; with it (``pip install "ude-bridge[julia]"``; the first run then downloads
Julia and its packages, which takes minutes) it

1. solves the Lotka-Volterra UDE with Tsit5 on both backends and compares the solutions;
2. runs a few training iterations with ``backend="julia"`` (DifferentialEquations.jl for the
   solves, SciMLSensitivity for the gradients).

Run:
    python examples/julia_backend.py [--quick]
    ude-bridge info     # which backends are available, and where Julia would come from
The same model as a file: ``ude-bridge fit examples/julia_backend.toml --out runs/lv-julia``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import ude_bridge as ub
import ude_bridge.julia as ubj


def make_model() -> ub.UDE:
    return ub.UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        fixed=("alpha", "delta"),
        network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(8,), activation="tanh"),
    )


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--out", default=None, help="(unused: this example writes no files)")
    args = parser.parse_args(argv)
    if not ubj.is_available():
        print(
            f"julia_backend: Julia is not available, so this example cannot run here.\n"
            f"  {ubj.unavailable_reason()}"
        )
        return None
    torch.set_num_threads(1)
    model = make_model()
    u0 = [0.44249296, 4.6280594]
    ts = torch.linspace(0.0, 3.0, 31, dtype=torch.float64)
    with torch.no_grad():
        prob = model.problem(u0, (0.0, 3.0))
        t0 = time.perf_counter()
        on_torch = ub.solve(prob, "Tsit5", saveat=ts, rtol=1e-8, atol=1e-8)
        t1 = time.perf_counter()
        on_julia = ub.solve(prob, "Tsit5", saveat=ts, rtol=1e-8, atol=1e-8, backend="julia")
        t2 = time.perf_counter()
    diff = float((on_torch.u - torch.as_tensor(on_julia.u)).abs().max())
    print(
        f"Tsit5 on torch {1e3 * (t1 - t0):.1f} ms, on Julia {1e3 * (t2 - t1):.1f} ms "
        f"(the first Julia call includes compilation); max difference {diff:.2e}"
    )

    data = ub.Trajectories(
        ts.numpy(),
        on_torch.u.numpy()
        * (1 + 0.01 * np.random.default_rng(0).standard_normal(on_torch.u.shape)),
        states=["x", "y"],
    )
    result = ub.fit(
        make_model(),
        data,
        optimizers=[("adam", 0.01, 3 if args.quick else 50)],
        backend="julia",
        progress=not args.quick,
    )
    print(f"fit on Julia: loss {result.loss:.3g} after {len(result.history)} iterations")
    return {"difference": diff, "result": result}


if __name__ == "__main__":
    main()
