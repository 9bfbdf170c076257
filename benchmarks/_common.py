"""Shared helpers of the benchmark scripts: timing, tables, optional peers."""

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
