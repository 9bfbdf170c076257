"""The benchmark scripts still run and still compare like with like (a smoke test of their
smallest case; their numbers are for the scripts themselves to print)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench_stiff():
    saved = list(sys.path)
    sys.path.insert(0, str(BENCH))
    try:
        import bench_stiff  # it puts benchmarks/ on the path itself, too

        yield bench_stiff
    finally:
        sys.path[:] = saved


@pytest.mark.slow
def test_bench_stiff_rober_rows_match_accuracy_and_take_the_same_steps(bench_stiff):
    rows = {(r["library"], r["method"]): r for r in bench_stiff.single_rows("ROBER t=1e5", 1, True)}
    radau = rows[("scipy", "Radau")]
    for label in ("Rodas5P (matched)", "Rodas5P (equations) (matched)"):
        # matched accuracy means no larger an error than Radau's at the nominal tolerance
        assert rows[("ude_bridge", label)]["rel err"] <= radau["rel err"]
    # the equation model and the torch function are one problem solved with the same steps
    for suffix in ("", " (matched)"):
        torch_f = rows[("ude_bridge", "Rodas5P" + suffix)]
        eqs = rows[("ude_bridge", "Rodas5P (equations)" + suffix)]
        assert eqs["steps"] == torch_f["steps"] and eqs["rtol"] == torch_f["rtol"]
    assert all(r["rel err"] < 1e-4 for r in rows.values())
