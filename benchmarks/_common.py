"""Shared helpers of the benchmark scripts: timing, tables, optional peers, ROBER."""

from __future__ import annotations

import importlib
import statistics
import time
from collections.abc import Callable
from typing import Any


def timeit(
    fn: Callable[[], Any],
    repeats: int = 7,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float]:
    """(min, median) seconds over ``repeats`` runs after ``warmup`` runs: wall time, or
    with ``clock=time.thread_time`` this thread's CPU time (steadier on a shared machine)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times), statistics.median(times)


def timeit_rounds(
    fns: dict[Any, Callable[[], Any]],
    repeats: int = 7,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[Any, tuple[float, float]]:
    """(min, median) seconds of each of ``fns``, timed in interleaved rounds (every case
    once per round): load on a shared machine drifts, and timing one case's repeats after
    another's lets a drift land on one side of a ratio only."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[Any, list[float]] = {key: [] for key in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            t = clock()
            fn()
            times[key].append(clock() - t)
    return {key: (min(v), statistics.median(v)) for key, v in times.items()}


def rober(t: Any, u: Any, p: Any = None) -> Any:
    """Robertson's chemical kinetics (ROBER). Rates ``(k1, k2, k3) = (0.04, 3e7, 1e4)``, or
    from ``p``: ``(3,)``, or ``(B, 3)`` per trajectory."""
    import torch

    k1, k2, k3 = (0.04, 3e7, 1e4) if p is None else (p[..., 0:1], p[..., 1:2], p[..., 2:3])
    y1, y2, y3 = u[..., 0:1], u[..., 1:2], u[..., 2:3]
    r1, r2, r3 = k1 * y1, k2 * y2 * y2, k3 * y2 * y3
    return torch.cat([-r1 + r3, r1 - r2 - r3, r2], -1)


def optional(name: str) -> Any | None:
    """Import a benchmark-only peer, or None if it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Print rows as a Markdown table."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(columns)]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for x in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(x, widths, strict=True)) + " |")
