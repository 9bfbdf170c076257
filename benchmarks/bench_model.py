"""Time per right-hand-side evaluation: generated code vs hand-written torch.

Problems: Lotka-Volterra (the UDE paper's parameters) and the LV UDE (known ``alpha*x``,
``-delta*y``; ``U1, U2`` from a 2 -> 32 -> 32 -> 2 tanh MLP), at batch 1 and 1024, float64,
one thread, forward only (no autograd). The reference is a hand-written *functional* torch
RHS (what an expert writes: parameters as a tuple of tensors, ``F.linear`` on the weights);
an ``nn.Module`` RHS is shown for context. The generated function must stay within 1.2x of
the hand-written one.

Run: ``python benchmarks/bench_model.py`` (add ``--quick`` for fewer repeats). Exits non-zero
if a ratio exceeds the limit.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))
from _common import print_table  # noqa: E402

from ude_bridge.model import MLP, UDE  # noqa: E402

LIMIT = 1.2


def lv_hand(t, u, p):
    alpha, beta, gamma, delta = p
    x, y = u[..., 0], u[..., 1]
    return torch.stack([alpha * x - beta * x * y, delta * x * y - gamma * y], dim=-1)


def ude_hand(t, u, p):
    alpha, delta, W0, b0, W1, b1, W2, b2 = p
    h = torch.tanh(F.linear(u, W0, b0))
    h = torch.tanh(F.linear(h, W1, b1))
    U = F.linear(h, W2, b2)
    return torch.stack([alpha * u[..., 0] + U[..., 0], -delta * u[..., 1] + U[..., 1]], dim=-1)


class UDEModule(nn.Module):
    """The LV UDE as a plain nn.Module (the common way to write it)."""

    def __init__(self, alpha: float, delta: float, net: nn.Module) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(alpha, dtype=torch.float64))
        self.delta = nn.Parameter(torch.tensor(delta, dtype=torch.float64))
        self.net = net

    def forward(self, t, u):
        U = self.net(u)
        return torch.stack(
            [self.alpha * u[..., 0] + U[..., 0], -self.delta * u[..., 1] + U[..., 1]], dim=-1
        )


def per_call_us(impls: dict[str, tuple], n_inner: int, repeats: int) -> dict[str, float]:
    """Median per-call time in microseconds of each ``name: (fn, args)``.

    The implementations are timed in turn within each repeat (interleaved), so that a
    change of load on a shared machine affects all of them alike.
    """
    for fn, args in impls.values():
        for _ in range(max(10, n_inner // 10)):
            fn(*args)
    samples: dict[str, list[float]] = {name: [] for name in impls}
    for _ in range(repeats):
        for name, (fn, args) in impls.items():
            start = time.perf_counter()
            for _ in range(n_inner):
                fn(*args)
            samples[name].append((time.perf_counter() - start) / n_inner * 1e6)
    return {name: statistics.median(v) for name, v in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    repeats = 5 if args.quick else 15
    dt = torch.float64

    lv = UDE(
        {"x": "alpha*x - beta*x*y", "y": "delta*x*y - gamma*y"},
        params={"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8},
    )
    net = MLP(["x", "y"], ["U1", "U2"], hidden=(32, 32), activation="tanh", seed=0)
    ude = UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        network=net,
    )
    ref_module = UDEModule(
        1.3,
        1.8,
        nn.Sequential(
            nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 2)
        ).double(),
    )

    rows = []
    failed = False
    for problem, model, hand in (("LV", lv, lv_hand), ("LV UDE", ude, ude_hand)):
        with torch.no_grad():
            p = tuple(t.detach() for t in model.param_tensors())
        hand_p = p  # the same layout: parameters in declaration order, then weights
        for batch in (1, 1024):
            u = torch.rand(batch, 2, dtype=dt) + 0.5
            t = torch.zeros(batch, 1, dtype=dt)
            gen = model.rhs
            torch.testing.assert_close(gen(t, u, p), hand(t, u, hand_p))
            n_inner = 2000 if batch == 1 else 500
            impls = {
                "hand-written functional": (hand, (t, u, hand_p)),
                "generated (ude_bridge)": (gen, (t, u, p)),
            }
            if problem == "LV UDE":
                impls["hand-written nn.Module"] = (ref_module, (t, u))
            with torch.no_grad():
                timings = per_call_us(impls, n_inner, repeats)
            base = timings["hand-written functional"]
            for impl, us in timings.items():
                ratio = us / base
                ok = impl != "generated (ude_bridge)" or ratio <= LIMIT
                failed |= not ok
                rows.append(
                    (problem, batch, impl, f"{us:.1f}", f"{ratio:.2f}x", "" if ok else "FAIL")
                )

    print(
        f"device: cpu ({platform.machine()}), torch {torch.__version__}, threads=1, float64, "
        f"median of {repeats} interleaved repeats, no autograd"
    )
    columns = ["problem", "batch", "implementation", "us/call", "vs hand-written", "check"]
    print_table([dict(zip(columns, row, strict=True)) for row in rows], columns)
    print(f"limit: generated <= {LIMIT}x hand-written functional -> {'FAIL' if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
