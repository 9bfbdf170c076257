"""Benchmark: stiff solves, ude_bridge's Rosenbrock methods vs scipy (BDF, Radau, LSODA).

One run, one table, ratios measured in the same run (the machine is shared: times are the
CPU time of this thread, `time.thread_time`, which other processes' load inflates less than
wall time; every library runs on one thread, so that is all the work; min and median
of repeats are printed). Problems (float64, one CPU thread for every library):

- ROBER (Robertson's kinetics) to t = 1e5, rtol = 1e-6, atol = 1e-10;
- Van der Pol, mu = 1000, on [0, 3000], u0 = (2, 0), rtol = 1e-6, atol = 1e-6;
- a batch of 1024 ROBER problems with different rate constants (one batched solve with
  per-trajectory step control) against sequential scipy Radau solves.

Every row reports its error against a tight reference (max over components of the
relative error at the final time; scipy LSODA with the exact Jacobian at rtol 1e-12,
cross-checked with Rodas5P at 1e-11). "Matched accuracy" rows tighten Rodas5P's rtol until
its error is no larger than scipy Radau's at the nominal tolerance. Jacobians: scipy
differences them (its default), or is given the analytic one ("+jac"); ude_bridge picks its
own (the complex step on these problems), or is given the analytic one ("+jac", what the
codegen's symbolic Jacobian provides). "(equations)" rows solve the same problem written as
an equation model, ``ub.UDE({"y1": "-k1*y1 + k3*y2*y3", ...})``, the way a user of
ude_bridge writes known physics: sympy's Jacobian, and (a small system on the CPU without a
graph) stages run by generated numpy code instead of torch operations.

    python benchmarks/bench_stiff.py [--repeats 5] [--quick] [--full-sequential]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import print_table, rober, timeit, timeit_rounds  # noqa: E402

import ude_bridge as ub  # noqa: E402

F64 = torch.float64
MU = 1000.0


# ---- problems: torch (ude_bridge), numpy (scipy) --------------------------------------
# Robertson's kinetics written as generated code writes equations: elementwise expressions
# of the state components (so the complex-step Jacobian applies); rates k per trajectory


def rober_jac(t, u, p):
    y2, y3 = u[..., 1], u[..., 2]
    z = torch.zeros_like(y2)
    rows = [
        [z - 0.04, 1e4 * y3, 1e4 * y2],
        [z + 0.04, -1e4 * y3 - 6e7 * y2, -1e4 * y2],
        [z, 6e7 * y2, z],
    ]
    return torch.stack([torch.stack(r, -1) for r in rows], -2)


def rober_np(t, y, k=(0.04, 3e7, 1e4)):
    r1, r2, r3 = k[0] * y[0], k[1] * y[1] * y[1], k[2] * y[1] * y[2]
    return [r3 - r1, r1 - r2 - r3, r2]


def rober_jac_np(t, y, k=(0.04, 3e7, 1e4)):
    return [
        [-k[0], k[2] * y[2], k[2] * y[1]],
        [k[0], -k[2] * y[2] - 2 * k[1] * y[1], -k[2] * y[1]],
        [0.0, 2 * k[1] * y[1], 0.0],
    ]


def vdp(t, u, p):
    x, y = u[..., 0:1], u[..., 1:2]
    return torch.cat([y, MU * (1 - x * x) * y - x], -1)


def vdp_jac(t, u, p):
    x, y = u[..., 0], u[..., 1]
    one = torch.ones_like(x)
    return torch.stack(
        [torch.stack([0 * x, one], -1), torch.stack([-2 * MU * x * y - 1, MU * (1 - x * x)], -1)],
        -2,
    )


def vdp_np(t, u):
    return [u[1], MU * (1 - u[0] * u[0]) * u[1] - u[0]]


def vdp_jac_np(t, u):
    return [[0.0, 1.0], [-2 * MU * u[0] * u[1] - 1, MU * (1 - u[0] * u[0])]]


#: the same problems as equation models (`ub.UDE`), as a user writes known physics: their
#: Jacobian is sympy's, and a small system's stages run generated numpy code
#: (`ude_bridge.codegen.to_numpy`) instead of torch operations
EQUATIONS = {
    "ROBER t=1e5": (
        {"y1": "-k1*y1 + k3*y2*y3", "y2": "k1*y1 - k2*y2^2 - k3*y2*y3", "y3": "k2*y2^2"},
        {"k1": 0.04, "k2": 3e7, "k3": 1e4},
    ),
    "VdP mu=1e3": ({"x": "y", "y": "mu*(1 - x^2)*y - x"}, {"mu": MU}),
}

PROBLEMS = {
    # name: (f, jac, f_np, jac_np, u0, t_end, rtol, atol)
    "ROBER t=1e5": (rober, rober_jac, rober_np, rober_jac_np, [1.0, 0.0, 0.0], 1e5, 1e-6, 1e-10),
    "VdP mu=1e3": (vdp, vdp_jac, vdp_np, vdp_jac_np, [2.0, 0.0], 3000.0, 1e-6, 1e-6),
}


def _cpu_time(fn, repeats: int) -> tuple[float, float]:
    """(min, median) CPU time of this thread over ``repeats`` runs after one warm-up."""
    return timeit(fn, repeats=repeats, clock=time.thread_time)


def rel_err(u, ref) -> float:
    u, ref = np.asarray(u, dtype=float), np.asarray(ref, dtype=float)
    return float(np.max(np.abs(u - ref) / np.abs(ref)))


def reference(f_np, jac_np, u0, t_end, atol):
    from scipy.integrate import solve_ivp

    s = solve_ivp(f_np, (0, t_end), u0, method="LSODA", rtol=1e-12, atol=atol * 1e-6, jac=jac_np)
    return s.y[:, -1]


def rober_reference(k, T, atol):
    from scipy.integrate import solve_ivp

    s = solve_ivp(
        rober_np,
        (0, T),
        [1.0, 0.0, 0.0],
        method="LSODA",
        rtol=1e-12,
        atol=atol * 1e-6,
        jac=rober_jac_np,
        args=(k,),
    )
    return s.y[:, -1]


def single_rows(name, repeats, quick):
    from scipy.integrate import solve_ivp

    f, jac, f_np, jac_np, u0, T, rtol, atol = PROBLEMS[name]
    ref = reference(f_np, jac_np, u0, T, atol)
    check = ub.solve(
        ub.ODEProblem(f, u0, (0.0, T)), "Rodas5P", saveat=[T], rtol=1e-11, atol=atol * 1e-5
    )
    print(
        f"{name}: reference (LSODA 1e-12) vs Rodas5P at 1e-11: "
        f"{rel_err(check.u[-1].numpy(), ref):.1e}"
    )
    rows = []

    def scipy_case(method, with_jac, tol=rtol):
        def run():
            return solve_ivp(
                f_np,
                (0, T),
                u0,
                method=method,
                rtol=tol,
                atol=atol,
                jac=jac_np if with_jac else None,
            )

        def stats(s):
            return s.y[:, -1], s.nfev, getattr(s, "njev", 0), len(s.t) - 1

        return run, stats

    equations, values = EQUATIONS[name]
    model = ub.UDE(equations, params=values, fixed=list(values))

    def ours_case(method, with_jac, tol=rtol, atol=atol, equations=False):
        if equations:
            prob = model.problem(u0, (0.0, T))
        else:
            prob = ub.ODEProblem(f, u0, (0.0, T), jac=jac if with_jac else None)

        def run():
            return ub.solve(prob, method, saveat=[T], rtol=tol, atol=atol, max_steps=10**6)

        def stats(s):
            st = s.stats
            return s.u[-1].numpy(), st["nfev"], st.get("njac", 0), st["nsteps"]

        return run, stats

    cases = {}  # (library, label) -> (run, stats, rtol, atol)
    for m in ("Radau", "BDF", "LSODA"):
        cases[("scipy", m)] = (*scipy_case(m, False), rtol, atol)
        cases[("scipy", m + " +jac")] = (*scipy_case(m, True), rtol, atol)
    methods = (
        ("Rodas5P",) if quick else ("Rodas5P", "Rodas4", "Rosenbrock23", "AutoTsit5(Rosenbrock23)")
    )
    for m in methods:
        cases[("ude_bridge", m)] = (*ours_case(m, False), rtol, atol)
        cases[("ude_bridge", m + " +jac")] = (*ours_case(m, True), rtol, atol)
        cases[("ude_bridge", m + " (equations)")] = (
            *ours_case(m, False, equations=True),
            rtol,
            atol,
        )
    # matched accuracy: tighten Rodas5P's rtol and atol together, by factors of 10^0.1 (a
    # coarser grid overshoots: up to 1.5x tighter than needed, ~8 % more steps at order 5),
    # until its error is at most scipy Radau's at the nominal tolerances
    radau_u = cases[("scipy", "Radau")][1](cases[("scipy", "Radau")][0]())[0]
    target = rel_err(radau_u, ref)
    for label, with_jac, eqs in (
        ("Rodas5P", False, False),
        ("Rodas5P +jac", True, False),
        ("Rodas5P (equations)", False, True),
    ):
        for sc in (10 ** (-k / 10) for k in range(31)):
            run, stats = ours_case("Rodas5P", with_jac, rtol * sc, atol * sc, eqs)
            if rel_err(stats(run())[0], ref) <= target:
                break
        cases[("ude_bridge", label + " (matched)")] = (run, stats, rtol * sc, atol * sc)
    # every case in interleaved rounds: the machine is shared, load drifts
    times = timeit_rounds({k: c[0] for k, c in cases.items()}, repeats, clock=time.thread_time)
    for (lib, label), (run, stats, tol, atl) in cases.items():
        u, nfev, njac, nsteps = stats(run())
        tmin, tmed = times[(lib, label)]
        rows.append(
            {
                "problem": name,
                "library": lib,
                "method": label,
                "rtol": tol,
                "atol": atl,
                "steps": nsteps,
                "nfev": nfev,
                "njac": njac,
                "rel err": rel_err(u, ref),
                "min ms": 1e3 * tmin,
                "median ms": 1e3 * tmed,
            }
        )
    base_min, base_med = times[("scipy", "Radau")]
    for r in rows:
        r["Radau / this (min, med)"] = (
            f"{base_min / (r['min ms'] / 1e3):.2f}x, {base_med / (r['median ms'] / 1e3):.2f}x"
        )
    return rows


def batch_rows(N, repeats, n_seq, full):
    from scipy.integrate import solve_ivp

    g = torch.Generator().manual_seed(0)
    lo = torch.tensor([0.02, 1e7, 5e3], dtype=F64)
    hi = torch.tensor([0.08, 5e7, 2e4], dtype=F64)
    k = lo * (hi / lo) ** torch.rand(N, 3, generator=g, dtype=F64)  # log-uniform rates
    T, rtol, atol = 1e5, 1e-6, 1e-10
    u0 = torch.tensor([[1.0, 0.0, 0.0]], dtype=F64).expand(N, 3).contiguous()
    prob = ub.ODEProblem(rober, u0, (0.0, T), k)
    rows = []

    def ours():
        return ub.solve(prob, "Rodas5P", saveat=[T], rtol=rtol, atol=atol)

    tmin, tmed = _cpu_time(ours, repeats=max(2, repeats // 2))
    sol = ours()
    check = list(range(0, N, max(1, N // 16)))  # errors on 16 trajectories
    kl = k.tolist()
    refs = [rober_reference(kl[i], T, atol) for i in check]
    err = max(rel_err(sol.u[i, -1].numpy(), r) for i, r in zip(check, refs, strict=True))
    rows.append(
        {
            "problem": f"ROBER batch {N}",
            "library": "ude_bridge",
            "method": "Rodas5P (one batched solve)",
            "rtol": rtol,
            "atol": atol,
            "steps": sol.stats["nsteps"],
            "nfev": sol.stats["nfev"],
            "njac": sol.stats["njac"],
            "rel err": err,
            "min ms": 1e3 * tmin,
            "median ms": 1e3 * tmed,
        }
    )
    n_run = N if full else n_seq

    def sequential():
        out = []
        for i in range(n_run):
            s = solve_ivp(
                rober_np,
                (0, T),
                [1.0, 0.0, 0.0],
                method="Radau",
                rtol=rtol,
                atol=atol,
                args=(kl[i],),
            )
            out.append(s.y[:, -1])
        return out

    t0 = time.thread_time()
    seq = sequential()
    t_seq = time.thread_time() - t0
    scale = N / n_run
    seq_err = max(rel_err(seq[i], r) for i, r in zip(check, refs, strict=True) if i < n_run)
    rows.append(
        {
            "problem": f"ROBER batch {N}",
            "library": "scipy",
            "method": f"Radau x {N} sequential" + ("" if full else f" ({n_run} run, scaled)"),
            "rtol": rtol,
            "atol": atol,
            "steps": "-",
            "nfev": "-",
            "njac": "-",
            "rel err": seq_err,
            "min ms": 1e3 * t_seq * scale,
            "median ms": 1e3 * t_seq * scale,
        }
    )
    for r in rows:
        r["Radau / this (min, med)"] = (
            f"{t_seq * scale / (r['min ms'] / 1e3):.1f}x, "
            f"{t_seq * scale / (r['median ms'] / 1e3):.1f}x"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="Rodas5P only, smaller batch")
    ap.add_argument(
        "--full-sequential",
        action="store_true",
        help="run all sequential scipy solves of the batch (slow)",
    )
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument(
        "--sequential",
        type=int,
        default=64,
        help="sequential scipy solves actually run (scaled to the batch size)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name in PROBLEMS:
        rows += single_rows(name, args.repeats, args.quick)
    rows += batch_rows(
        256 if args.quick else args.batch, args.repeats, args.sequential, args.full_sequential
    )
    import scipy

    print(
        f"device: cpu, threads: {torch.get_num_threads()}, torch {torch.__version__}, "
        f"scipy {scipy.__version__}"
    )
    print_table(
        rows,
        [
            "problem",
            "library",
            "method",
            "rtol",
            "atol",
            "steps",
            "nfev",
            "njac",
            "rel err",
            "min ms",
            "median ms",
            "Radau / this (min, med)",
        ],
    )


if __name__ == "__main__":
    main()
