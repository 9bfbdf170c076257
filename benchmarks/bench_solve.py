"""Benchmark: Lotka-Volterra solves, ude_bridge vs scipy, torchdiffeq and torchode, one run.

Rows: a single solve (Tsit5, rtol = atol = 1e-6, 101 save points, float64, 1 thread) and
batched solves (N = 1024 and 16384 initial conditions). Prints nfev, max error against a
tight reference (scipy DOP853 at 1e-12 per trajectory, or a Vern9 batch at 1e-12), min and
median wall time (or CPU time with ``--cpu-time``), and the speed-up against torchdiffeq
measured in the same run.

    python benchmarks/bench_solve.py [--repeats 7] [--quick] [--cpu-time]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import optional, print_table, timeit_rounds  # noqa: E402

import ude_bridge as ub  # noqa: E402

U0 = (0.44249296, 4.6280594)


def lv(t, u, p=None):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y], -1)


def lv_np(t, u):
    x, y = u
    return [1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="small batches only")
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time by this thread's CPU clock instead of the wall clock (steadier on a shared "
        "machine; every library runs on one thread here)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    clock = time.thread_time if args.cpu_time else time.perf_counter
    from scipy.integrate import solve_ivp

    tdq = optional("torchdiffeq")
    tode = optional("torchode")
    ts = torch.linspace(0, 3, 101, dtype=torch.float64)
    tol = 1e-6
    rows = []

    # ---- single solve ------------------------------------------------------------
    ref = solve_ivp(
        lv_np, (0, 3), U0, method="DOP853", rtol=1e-12, atol=1e-12, t_eval=ts.numpy()
    ).y.T
    ref_t = torch.as_tensor(ref)
    u0 = torch.tensor(U0, dtype=torch.float64)
    prob = ub.ODEProblem(lv, u0, (0.0, 3.0))
    cases = {}

    def ours():
        return ub.solve(prob, "Tsit5", saveat=ts, rtol=tol, atol=tol)

    cases["ude_bridge Tsit5"] = (ours, lambda r: (r.u, r.stats["nfev"]))
    for m in ("RK45", "DOP853"):

        def run(m=m):
            return solve_ivp(lv_np, (0, 3), U0, method=m, rtol=tol, atol=tol, t_eval=ts.numpy())

        cases[f"scipy {m}"] = (run, lambda r: (torch.as_tensor(r.y.T), r.nfev))
    if tdq is not None:
        counter = {"n": 0}

        def lv_count(t, u):
            counter["n"] += 1
            return lv(t, u)

        def run_tdq():
            counter["n"] = 0
            return tdq.odeint(lv_count, u0, ts, rtol=tol, atol=tol, method="dopri5")

        cases["torchdiffeq dopri5"] = (run_tdq, lambda r: (r, counter["n"]))
    if tode is not None:
        term = tode.ODETerm(lambda t, y: lv(t, y))
        step = tode.Tsit5(term=term)
        ctrl = tode.IntegralController(atol=tol, rtol=tol, term=term)
        solver = tode.AutoDiffAdjoint(step, ctrl)
        y0b = u0[None]
        tb = ts[None]

        def run_tode():
            return solver.solve(tode.InitialValueProblem(y0=y0b, t_eval=tb))

        cases["torchode Tsit5"] = (run_tode, lambda r: (r.ys[0], int(r.stats["n_f_evals"].max())))
    base = None
    timed = timeit_rounds({k: fn for k, (fn, _) in cases.items()}, args.repeats, clock=clock)
    for name, (fn, extract) in cases.items():
        tmin, tmed = timed[name]
        u, nfev = extract(fn())
        err = float((u - ref_t).abs().max())
        rows.append(
            {
                "problem": "LV single",
                "library": name,
                "nfev": nfev,
                "max err": err,
                "min ms": 1e3 * tmin,
                "median ms": 1e3 * tmed,
            }
        )
        if name.startswith("torchdiffeq"):
            base = tmed
    for r in rows:
        if base:
            r["vs torchdiffeq"] = f"{base / (r['median ms'] / 1e3):.2f}x"

    # ---- batched ------------------------------------------------------------------
    sizes = (256,) if args.quick else (1024, 16384)
    for N in sizes:
        torch.set_num_threads(1)
        g = torch.Generator().manual_seed(0)
        u0b = torch.tensor(U0, dtype=torch.float64) * (
            0.5 + torch.rand(N, 2, generator=g, dtype=torch.float64)
        )
        refb = ub.solve(
            ub.ODEProblem(lv, u0b, (0, 3)), "Vern9", saveat=ts, rtol=1e-12, atol=1e-12
        ).u
        pb = ub.ODEProblem(lv, u0b, (0.0, 3.0))
        bcases = {
            "ude_bridge Tsit5 (per-trajectory)": (
                lambda pb=pb: ub.solve(pb, "Tsit5", saveat=ts, rtol=tol, atol=tol).u
            )
        }
        if tdq is not None:
            bcases["torchdiffeq dopri5 (shared step)"] = lambda u0b=u0b: tdq.odeint(
                lambda t, u: lv(t, u), u0b, ts, rtol=tol, atol=tol
            ).transpose(0, 1)
        if tode is not None:
            term = tode.ODETerm(lambda t, y: lv(t, y))
            solver = tode.AutoDiffAdjoint(
                tode.Tsit5(term=term), tode.IntegralController(atol=tol, rtol=tol, term=term)
            )
            tb = ts[None].expand(N, -1)
            bcases["torchode Tsit5 (per-trajectory)"] = lambda solver=solver, u0b=u0b, tb=tb: (
                solver.solve(tode.InitialValueProblem(y0=u0b, t_eval=tb)).ys
            )
        bbase = None
        brows = []
        btimed = timeit_rounds(bcases, max(3, args.repeats // 2), clock=clock)
        for name, fn in bcases.items():
            tmin, tmed = btimed[name]
            err = float((fn() - refb).abs().max())
            brows.append(
                {
                    "problem": f"LV batch {N}",
                    "library": name,
                    "nfev": "-",
                    "max err": err,
                    "min ms": 1e3 * tmin,
                    "median ms": 1e3 * tmed,
                }
            )
            if name.startswith("torchdiffeq"):
                bbase = tmed
        for r in brows:
            if bbase:
                r["vs torchdiffeq"] = f"{bbase / (r['median ms'] / 1e3):.2f}x"
        rows += brows
    print(
        f"device: cpu, threads: {torch.get_num_threads()}, torch {torch.__version__}, "
        f"{'CPU' if args.cpu_time else 'wall'} time"
    )
    print_table(
        rows, ["problem", "library", "nfev", "max err", "min ms", "median ms", "vs torchdiffeq"]
    )


if __name__ == "__main__":
    main()
