"""Benchmark: batched solves on a CUDA device, ude_bridge vs torchdiffeq, in one run.

Lotka-Volterra (the UDE paper's parameters), initial conditions scaled by U(0.5, 1.5),
t in [0, 3] with 101 save points, float64, rtol = atol = 1e-6: ude_bridge's Tsit5 with a
step and error norm per trajectory against torchdiffeq's dopri5 (one shared step). And
Robertson's stiff problem with per-trajectory rate constants by Rodas5P (no torch peer has a
stiff solver). Max error against a tight Vern9 / Rodas5P solve of 64 trajectories; wall time
with the device synchronised, min and median of the repeats.

    python benchmarks/bench_gpu.py [--repeats 5] [--sizes 16384 262144 1048576]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import optional, print_table, rober, timeit  # noqa: E402

import ude_bridge as ub  # noqa: E402

U0 = (0.44249296, 4.6280594)


def lv(t, u, p=None):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y], -1)


def synced(fn):
    def run():
        out = fn()
        torch.cuda.synchronize()
        return out

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16384, 262144, 1048576])
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA device; nothing to measure.")
        return
    dev = torch.device("cuda")
    tdq = optional("torchdiffeq")
    ts = torch.linspace(0, 3, 101, dtype=torch.float64, device=dev)
    rows = []
    g = torch.Generator(device=dev).manual_seed(0)
    for N in args.sizes:
        scale = 0.5 + torch.rand(N, 2, generator=g, dtype=torch.float64, device=dev)
        u0 = torch.tensor(U0, dtype=torch.float64, device=dev) * scale
        ref = ub.solve(
            ub.ODEProblem(lv, u0[:64], (0.0, 3.0)), "Vern9", saveat=ts, rtol=1e-12, atol=1e-12
        ).u

        def ours(u0=u0):
            return ub.solve(
                ub.ODEProblem(lv, u0, (0.0, 3.0)), "Tsit5", saveat=ts, rtol=1e-6, atol=1e-6
            ).u

        cases = {"ude_bridge Tsit5 (per-trajectory)": ours}
        if tdq is not None:
            cases["torchdiffeq dopri5 (shared step)"] = lambda u0=u0: tdq.odeint(
                lv, u0, ts, rtol=1e-6, atol=1e-6, method="dopri5"
            ).transpose(0, 1)
        times = {}
        for name, fn in cases.items():
            err = float((fn()[:64] - ref).abs().max())
            times[name] = timeit(synced(fn), repeats=args.repeats)
            rows.append({"problem": f"LV batch {N}", "library": name, "max err": err})
            rows[-1]["min ms"], rows[-1]["median ms"] = (1e3 * x for x in times[name])
        base = times.get("torchdiffeq dopri5 (shared step)")
        for r in rows[-len(cases) :]:
            r["vs torchdiffeq"] = f"{base[1] / (r['median ms'] / 1e3):.2f}x" if base else "-"

    for N in (1024, 16384):
        k = torch.tensor([0.04, 3e7, 1e4], dtype=torch.float64, device=dev)
        p = k * (0.5 + torch.rand(N, 3, generator=g, dtype=torch.float64, device=dev))
        y0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64, device=dev).repeat(N, 1)

        def stiff(p=p, y0=y0, rtol=1e-6, atol=1e-10, n=N):
            prob = ub.ODEProblem(rober, y0[:n], (0.0, 1e5), params=p[:n])
            return ub.solve(prob, "Rodas5P", saveat=[1e5], rtol=rtol, atol=atol).u

        ref = stiff(rtol=1e-10, atol=1e-14, n=64)
        # relative error of y1 and y3 (y2 ~ 1e-11 sits below atol)
        got = stiff()[:64]
        err = float(((got - ref).abs() / ref.abs())[..., [0, 2]].max())
        tmin, tmed = timeit(synced(stiff), repeats=args.repeats)
        rows.append(
            {
                "problem": f"ROBER batch {N}",
                "library": "ude_bridge Rodas5P",
                "max err": err,
                "min ms": 1e3 * tmin,
                "median ms": 1e3 * tmed,
                "vs torchdiffeq": "no stiff peer",
            }
        )
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, {time.ctime()}")
    print_table(rows, ["problem", "library", "max err", "min ms", "median ms", "vs torchdiffeq"])


if __name__ == "__main__":
    main()
