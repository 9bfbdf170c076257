"""Benchmark: the Julia backend (DifferentialEquations.jl) against the torch engine, one run.

Rows, as in bench_solve.py: Lotka-Volterra single solve (Tsit5, rtol = atol = 1e-6, 101
save points, float64), batched solves (N = 1024 and 16384 initial conditions; Julia runs
them as an ``EnsembleThreads`` ensemble), and a gradient row: one forward + backward pass
of a mean-squared loss through the LV UDE (MLP 2-32-32-2, tanh) with torch's backprop and
Julia's adjoints (SciMLSensitivity, EnzymeVJP). Errors are against scipy DOP853 at 1e-12
(solves) and against torch backprop at 1e-10 (gradients). Julia times are medians after a
warm-up, so compilation is excluded; they include the Python <-> Julia crossing.

When Julia is not available the script prints that it was skipped and why, and exits 0.

    python benchmarks/bench_julia.py [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys

import sympy
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import print_table, timeit  # noqa: E402

import ude_bridge as ub  # noqa: E402
from ude_bridge.backends import julia_backend as jb  # noqa: E402

U0 = (0.44249296, 4.6280594)
TOL = 1e-6


def lv_system():
    """The UDE paper's Lotka-Volterra (1.3, 0.9, 0.8, 1.8) as a SymbolicSystem."""
    from ude_bridge.codegen.system import SymbolicSystem

    x, y, t, a, b, c, d = sympy.symbols("x y t alpha beta gamma delta")
    return SymbolicSystem(
        (x, y), t, (a, b, c, d), (1.3, 0.9, 0.8, 1.8), (a * x - b * x * y, c * x * y - d * y)
    )


def translatable(system):
    """A torch f(t, u, p) for ``system`` that the Julia backend can translate."""
    from ude_bridge.codegen.to_torch import torch_rhs

    f = torch_rhs(system)
    f.system = system  # what model.problem() provides once torch_rhs sets it itself
    return f


def lv_problem(u0):
    system = lv_system()
    params = tuple(torch.tensor(v, dtype=torch.float64) for v in system.stored_values())
    return ub.ODEProblem(translatable(system), u0, (0.0, 3.0), params)


def solve_rows(ts, repeats, sizes):
    from scipy.integrate import solve_ivp

    def lv_np(t, u):
        x, y = u
        return [1.3 * x - 0.9 * x * y, 0.8 * x * y - 1.8 * y]

    rows = []
    ref = solve_ivp(lv_np, (0, 3), U0, method="DOP853", rtol=1e-12, atol=1e-12, t_eval=ts.numpy())
    ref_t = torch.as_tensor(ref.y.T)
    prob = lv_problem(torch.tensor(U0, dtype=torch.float64))
    for backend in ("torch", "julia"):

        def run(backend=backend):
            return ub.solve(prob, "Tsit5", saveat=ts, rtol=TOL, atol=TOL, backend=backend)

        tmin, tmed = timeit(run, repeats=repeats)
        sol = run()
        rows.append({"problem": "LV single", "library": f"ude_bridge {backend} Tsit5",
                     "nfev": sol.stats["nfev"], "max err": float((sol.u - ref_t).abs().max()),
                     "min ms": 1e3 * tmin, "median ms": 1e3 * tmed})  # fmt: skip
    for N in sizes:
        g = torch.Generator().manual_seed(0)
        u0 = torch.tensor(U0, dtype=torch.float64) * (
            0.5 + torch.rand(N, 2, generator=g, dtype=torch.float64)
        )
        pb = lv_problem(u0)
        refb = ub.solve(pb, "Vern9", saveat=ts, rtol=1e-12, atol=1e-12).u
        for backend in ("torch", "julia"):

            def run(backend=backend, pb=pb):
                return ub.solve(pb, "Tsit5", saveat=ts, rtol=TOL, atol=TOL, backend=backend).u

            tmin, tmed = timeit(run, repeats=max(3, repeats // 2))
            rows.append({"problem": f"LV batch {N}", "library": f"ude_bridge {backend} Tsit5",
                         "nfev": "-", "max err": float((run() - refb).abs().max()),
                         "min ms": 1e3 * tmin, "median ms": 1e3 * tmed})  # fmt: skip
    return rows


def gradient_rows(ts, repeats):
    from ude_bridge.model import MLP, UDE

    model = UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        network=MLP(["x", "y"], ["U1", "U2"], hidden=(32, 32), input_range=(0, 5), seed=0),
    )
    problem = model.problem(torch.tensor(U0, dtype=torch.float64), (0.0, 3.0))
    if jb.system_of(problem.f) is None:
        problem.f.system = model.system
    target = ub.solve(lv_problem(problem.u0), "Tsit5", saveat=ts, rtol=1e-10, atol=1e-10).u

    def grad(backend, sensealg, tol=TOL):
        for p in problem.params:
            p.grad = None
        opts = {"saveat": ts, "rtol": tol, "atol": tol, "sensealg": sensealg}
        if backend == "julia":
            u = jb.julia_solve_autograd(problem, "Tsit5", opts)
        else:
            u = ub.solve(problem, "Tsit5", saveat=ts, rtol=tol, atol=tol).u
        ((u - target) ** 2).mean().backward()
        return torch.cat([p.grad.reshape(-1) for p in problem.params])

    ref = grad("torch", "backprop", tol=1e-10)
    rows = []
    for backend, sensealg in (("torch", "backprop"), ("julia", "adjoint"),
                              ("julia", "GaussAdjoint"), ("julia", "backprop")):  # fmt: skip
        tmin, tmed = timeit(lambda b=backend, s=sensealg: grad(b, s), repeats=repeats)
        err = float((grad(backend, sensealg) - ref).abs().max() / ref.abs().max())
        rows.append({"problem": "LV UDE gradient", "library": f"{backend} {sensealg}",
                     "nfev": "-", "max err": err, "min ms": 1e3 * tmin,
                     "median ms": 1e3 * tmed})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="small batches only")
    args = ap.parse_args()
    if not jb.is_available():
        print(f"bench_julia: skipped: {jb.unavailable_reason()}")
        return
    try:
        versions = jb.udebridge("bench_julia").versions()
    except ub.BackendUnavailableError as exc:
        print(f"bench_julia: skipped: Julia could not be started: {exc}")
        return
    torch.set_num_threads(1)
    ts = torch.linspace(0, 3, 101, dtype=torch.float64)
    sizes = (256,) if args.quick else (1024, 16384)
    rows = solve_rows(ts, args.repeats, sizes) + gradient_rows(ts, args.repeats)
    base = {}
    for r in rows:
        if r["library"].startswith(("ude_bridge torch", "torch")):
            base[r["problem"]] = r["median ms"]
    for r in rows:
        r["vs torch"] = f"{base[r['problem']] / r['median ms']:.2f}x"
    print(
        f"device: cpu; torch {torch.__version__}, 1 thread; Julia {versions['julia']}, "
        f"{versions['threads']} threads; OrdinaryDiffEq {versions['OrdinaryDiffEq']}, "
        f"SciMLSensitivity {versions['SciMLSensitivity']}"
    )
    print_table(rows, ["problem", "library", "nfev", "max err", "min ms", "median ms", "vs torch"])


if __name__ == "__main__":
    main()
