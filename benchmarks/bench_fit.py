"""Benchmark: training the Lotka-Volterra UDE, ude_bridge vs torchdiffeq, in one run.

Same network (2 -> 32 -> 32 -> 2, tanh, same initial weights), same data (the UDE paper's
LV data: t in [0, 3] every 0.1, 5 % noise of the mean, seed 0), same loss (plain MSE),
same tolerances (rtol = atol = 1e-6; Tsit5 vs dopri5), same optimiser schedule.

(a) one loss + gradient evaluation at initialisation: backprop and adjoint modes.
(b) the paper's training: Adam(1e-2) x 1000 then L-BFGS x 200 (``--full``; by default a
    shortened schedule Adam x 200 + L-BFGS x 20 so the script finishes in minutes), with
    the learned missing term's relative L2 error along the true trajectory, and along the
    fitted trajectory as the UDE paper's code evaluates it (see `PAPER_TS`).

    python benchmarks/bench_fit.py [--full] [--repeats 5] [--cpu-time] [--noise 0.05] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import optional, print_table, timeit_rounds  # noqa: E402

import ude_bridge as ub  # noqa: E402

P = (1.3, 0.9, 0.8, 1.8)
U0 = (0.44249296, 4.6280594)
TOL = 1e-6


def truth_rhs(t, u, p=None):
    x, y = u[..., 0], u[..., 1]
    return torch.stack([P[0] * x - P[1] * x * y, P[2] * x * y - P[3] * y], -1)


def make_data(noise: float = 0.05, seed: int = 0):
    """``(t, true states, observed states)``: the paper's 31 points with noise of standard
    deviation ``noise`` times each state's mean (``noise=0``: the true states)."""
    ts = torch.linspace(0, 3, 31, dtype=torch.float64)
    u = ub.solve(ub.ODEProblem(truth_rhs, U0, (0, 3)), "Vern9", saveat=ts, rtol=1e-12, atol=1e-12).u
    g = torch.Generator().manual_seed(seed)
    noisy = u + noise * u.mean(0) * torch.randn(u.shape, generator=g, dtype=torch.float64)
    return ts, u, noisy


def make_model():
    return ub.UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        fixed=("alpha", "delta"),
        network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(32, 32), activation="tanh", seed=0),
    )


class TorchdiffeqUDE(torch.nn.Module):
    """The same UDE as an nn.Module (how a torchdiffeq user writes it), same weights."""

    def __init__(self, model):
        super().__init__()
        mlp = model.networks[0]
        layers = []
        for i, lin in enumerate(mlp.layers):
            layers.append(copy.deepcopy(lin))
            if i < len(mlp.layers) - 1:
                layers.append(torch.nn.Tanh())
        self.net = torch.nn.Sequential(*layers)

    def forward(self, t, u):
        nn_out = self.net(u)
        x, y = u[..., 0], u[..., 1]
        return torch.stack([P[0] * x + nn_out[..., 0], -P[3] * y + nn_out[..., 1]], -1)


def missing_term_error(net_fn, u_true):
    """Relative L2 error of the network against the true missing term $(-\beta xy,
    \gamma xy)$ at the states ``u`` ``(T, 2)``."""
    x, y = u_true[:, 0], u_true[:, 1]
    want = torch.stack([-0.9 * x * y, 0.8 * x * y], -1)
    with torch.no_grad():
        got = net_fn(u_true)
    return float(torch.linalg.norm(got - want) / torch.linalg.norm(want))


#: the UDE paper's evaluation grid (half the data spacing) for the second metric: the
#: network against the true term along the *fitted* trajectory (Rackauckas et al. 2020,
#: LotkaVolterra/scenario_1.jl: ``X̂ = predict(p_trained, Xₙ[:, 1], ts)``, ``Ȳ`` the true
#: interactions at X̂), where the first metric uses the true trajectory
PAPER_TS = torch.linspace(0, 3, 61, dtype=torch.float64)


def train_torchdiffeq(tdq, func, ts, data, schedule, adjoint):
    odeint = tdq.odeint_adjoint if adjoint else tdq.odeint
    u0 = data[0]
    params = list(func.parameters())

    def loss_fn():
        pred = odeint(func, u0, ts, rtol=TOL, atol=TOL, method="dopri5")
        return ((pred - data) ** 2).mean()

    losses = []
    for name, lr, iters in schedule:
        if name == "adam":
            opt = torch.optim.Adam(params, lr=lr)
            for _ in range(iters):
                opt.zero_grad()
                loss = loss_fn()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        else:
            opt = torch.optim.LBFGS(
                params,
                lr=1.0,
                max_iter=1,
                max_eval=25,
                history_size=20,
                tolerance_grad=1e-12,
                tolerance_change=1e-15,
                line_search_fn="strong_wolfe",
            )

            def closure(opt=opt):
                opt.zero_grad()
                loss = loss_fn()
                loss.backward()
                return loss

            for _ in range(iters):
                losses.append(float(opt.step(closure)))
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true", help="the paper's full schedule")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="time (a) by this thread's CPU clock instead of the wall clock (steadier on a "
        "shared machine; both libraries run on one thread here)",
    )
    ap.add_argument(
        "--noise",
        type=float,
        default=0.05,
        help="noise level, a fraction of each state's mean (default 0.05, the paper's; 0 "
        "shows what the schedule reaches without noise)",
    )
    ap.add_argument("--seed", type=int, default=0, help="noise draw (default 0)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tdq = optional("torchdiffeq")
    ts, u_true, noisy = make_data(args.noise, args.seed)
    rows = []

    # ---- (a) one loss + gradient ------------------------------------------------------
    model = make_model()

    def ours(sensealg):
        def run():
            model.zero_grad()
            sol = ub.solve(
                model.problem(noisy[0], (0, 3)),
                "Tsit5",
                saveat=ts,
                rtol=TOL,
                atol=TOL,
                sensealg=sensealg,
            )
            ((sol.u - noisy) ** 2).mean().backward()

        return run

    runs = {("ude_bridge", sa): ours(sa) for sa in ("backprop", "adjoint")}
    if tdq is not None:
        func = TorchdiffeqUDE(make_model())
        for sa, fn in (("backprop", tdq.odeint), ("adjoint", tdq.odeint_adjoint)):

            def run(fn=fn):
                func.zero_grad()
                pred = fn(func, noisy[0], ts, rtol=TOL, atol=TOL, method="dopri5")
                ((pred - noisy) ** 2).mean().backward()

            runs[("torchdiffeq", sa)] = run
    clock = time.thread_time if args.cpu_time else time.perf_counter
    times = timeit_rounds(runs, args.repeats, clock=clock)
    for (lib, sa), (tmin, tmed) in times.items():
        base = times.get(("torchdiffeq", sa))
        rows.append(
            {
                "case": f"(a) loss+grad, {sa}",
                "library": lib,
                "min ms": 1e3 * tmin,
                "median ms": 1e3 * tmed,
                "speed-up": f"{base[1] / tmed:.2f}x" if base else "-",
            }
        )

    # ---- (b) training ---------------------------------------------------------------
    schedule = (
        [("adam", 1e-2, 1000), ("lbfgs", 1.0, 200)]
        if args.full
        else [("adam", 1e-2, 200), ("lbfgs", 1.0, 20)]
    )
    label = "paper schedule" if args.full else "short schedule"
    data = ub.Trajectories(ts, noisy, states=["x", "y"])
    model = make_model()
    t0 = time.perf_counter()
    res = ub.fit(
        model,
        data,
        method="Tsit5",
        rtol=TOL,
        atol=TOL,
        normalize=False,
        optimizers=[(n, lr, it) if n == "adam" else ("lbfgs", it) for n, lr, it in schedule],
        progress=False,
        seed=0,
    )
    t_ours = time.perf_counter() - t0
    err_ours = missing_term_error(lambda u: model.networks[0](u), u_true)
    fitted = res.predict(PAPER_TS)
    rows.append(
        {
            "case": f"(b) training, {label}",
            "library": "ude_bridge",
            "median ms": 1e3 * t_ours,
            "final loss": res.loss,
            "missing-term rel L2": err_ours,
            "(paper's: fitted traj.)": missing_term_error(lambda u: model.networks[0](u), fitted),
        }
    )
    if tdq is not None:
        func = TorchdiffeqUDE(make_model())
        t0 = time.perf_counter()
        losses = train_torchdiffeq(tdq, func, ts, noisy, schedule, adjoint=False)
        t_tdq = time.perf_counter() - t0
        err_tdq = missing_term_error(func.net, u_true)
        with torch.no_grad():
            fitted = tdq.odeint(func, noisy[0], PAPER_TS, rtol=TOL, atol=TOL, method="dopri5")
        rows.append(
            {
                "case": f"(b) training, {label}",
                "library": "torchdiffeq",
                "median ms": 1e3 * t_tdq,
                "final loss": losses[-1],
                "missing-term rel L2": err_tdq,
                "(paper's: fitted traj.)": missing_term_error(func.net, fitted),
            }
        )
        rows[-2]["speed-up"] = f"{t_tdq / t_ours:.2f}x"
    print(
        f"device: cpu, threads: {torch.get_num_threads()}, torch {torch.__version__}; "
        f"noise variance {float(((noisy - u_true) ** 2).mean()):.3g}"
    )
    print_table(
        rows,
        [
            "case",
            "library",
            "min ms",
            "median ms",
            "speed-up",
            "final loss",
            "missing-term rel L2",
            "(paper's: fitted traj.)",
        ],
    )


if __name__ == "__main__":
    main()
