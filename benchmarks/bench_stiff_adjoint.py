"""Gradients through stiff solves: backprop against the continuous adjoints, in one run.

Robertson's problem (ROBER, k = (0.04, 3e7, 1e4), t in [0, 1]): d y3(1) / d k1 against
central finite differences of a tight solve (Rodas5P, rtol 1e-12, atol 1e-16), and a
stiff UDE (an MLP inside a stiff linear system): parameter gradients against backprop.
Prints one table: problem, method, sensealg, forward steps, relative gradient error,
median wall time of solve + gradient after a warm-up, and the device.

Run: ``python benchmarks/bench_stiff_adjoint.py [--repeats 5]``. Our 2-core machines are
shared and noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import rober  # noqa: E402

import ude_bridge as ub  # noqa: E402
from ude_bridge.errors import SolveError  # noqa: E402

F64 = torch.float64
SENSEALGS = (
    "backprop",
    "InterpolatingAdjoint",
    "InterpolatingAdjoint(checkpointing=true)",
    "BacksolveAdjoint",
)


def rober_y3(k1: float) -> float:
    k = torch.tensor([k1, 3e7, 1e4], dtype=F64)
    prob = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1.0), k)
    return float(ub.solve(prob, "Rodas5P", saveat=[1.0], rtol=1e-12, atol=1e-16).u[-1, 2])


def rober_case(method: str, rtol: float, sensealg: str):
    def run():
        k = torch.tensor([0.04, 3e7, 1e4], dtype=F64, requires_grad=True)
        prob = ub.ODEProblem(rober, [1.0, 0.0, 0.0], (0.0, 1.0), k)
        sol = ub.solve(
            prob,
            method,
            saveat=[1.0],
            rtol=rtol,
            atol=rtol * 1e-4,
            sensealg=sensealg,
            max_steps=3000,
        )
        (g,) = torch.autograd.grad(sol.u[-1, 2], k)
        return g[:1], sol.stats["nsteps"]

    return run


def ude_case(sensealg: str, model, u0):
    ts = torch.linspace(0, 1, 11, dtype=F64)

    def run():
        sol = ub.solve(
            model.problem(u0, (0.0, 1.0)),
            "Rodas5P",
            saveat=ts,
            rtol=1e-7,
            atol=1e-9,
            sensealg=sensealg,
            max_steps=3000,
        )
        gs = torch.autograd.grad((sol.u**2).sum(), list(model.parameters()))
        return torch.cat([g.reshape(-1) for g in gs]), sol.stats["nsteps"]

    return run


def timed(run, repeats: int):
    try:
        out, steps = run()  # warm-up (and the value)
    except SolveError:
        return None, "-", "fails (max_steps)"
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return out, steps, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    device = "cpu, 1 thread"
    rows = []
    d = 1e-6
    fd = (rober_y3(0.04 + d) - rober_y3(0.04 - d)) / (2 * d)
    for method, rtol in (("Rodas5P", 1e-8), ("Rodas4", 1e-8), ("Rosenbrock23", 1e-6)):
        for sa in SENSEALGS:
            g, steps, t = timed(rober_case(method, rtol, sa), args.repeats)
            err = "-" if g is None else f"{abs(g.item() - fd) / abs(fd):.1e}"
            rows.append(("ROBER", f"{method} {rtol:g}", sa, steps, err, t))
    torch.manual_seed(0)
    model = ub.UDE(
        equations={"x": "-k*x + U1", "y": "k*x - 30*y + U2"},
        params={"k": 20.0},
        network=ub.MLP(inputs=["x", "y"], outputs=["U1", "U2"], hidden=(16, 16)),
    ).double()
    for label, u0 in (
        ("stiff UDE", torch.tensor([1.0, 0.5], dtype=F64)),
        ("stiff UDE B=3", torch.tensor([[1.0, 0.5], [0.5, 0.25], [2.0, 1.0]], dtype=F64)),
    ):
        ref = None
        for sa in SENSEALGS:
            g, steps, t = timed(ude_case(sa, model, u0), args.repeats)
            if sa == "backprop":
                ref = g
            err = "-" if g is None else f"{float((g - ref).abs().max() / ref.abs().max()):.1e}"
            rows.append((label, "Rodas5P 1e-7", sa, steps, err, t))
    head = ("problem", "method rtol", "sensealg", "steps", "grad err", "time [s]", "device")
    print(" | ".join(head))
    for r in rows:
        t = r[5] if isinstance(r[5], str) else f"{r[5]:.3f}"
        print(" | ".join(str(x) for x in (*r[:5], t, device)))
    print(
        "grad err: ROBER against central differences of a tight solve (itself ~1e-9);"
        " the UDE against backprop."
    )


if __name__ == "__main__":
    main()
