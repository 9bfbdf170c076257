"""Running ``ude-bridge`` in a subprocess, and model files for the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ENV = {**os.environ, "MPLBACKEND": "Agg", "UDE_BRIDGE_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def cli(
    *args: str, cwd: Path | str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m ude_bridge ARGS`` with captured text output."""
    return subprocess.run(
        [sys.executable, "-m", "ude_bridge", *map(str, args)],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed command (asserting it is one line, no traceback)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ude-bridge"), lines[0]
    return lines[0]


LV_MODEL = """\
[model]
equations = {{ x = "alpha*x + U1", y = "-delta*y + U2" }}
params = {{ alpha = 1.3, delta = 1.8 }}
fixed = ["alpha", "delta"]

[network.NN1]
inputs = ["x", "y"]
outputs = ["U1", "U2"]
hidden = [8]

[data]
path = "{data}"
trajectory = "trajectory"

[fit]
pretrain = 30
optimizers = {optimizers}
rtol = 1e-4
atol = 1e-4
checkpoint_every = {every}

[discover]
library = {{ polynomial = 2 }}
refit = 2
n_folds = 3
n_thresholds = 10
points = 60
"""


def write_lv(
    folder: Path,
    *,
    optimizers: str = '[["adam", 0.001, 2], ["lbfgs", 3]]',
    every: int = 25,
    name: str = "lv.toml",
) -> Path:
    """A small LV UDE model file next to a copy of the demo's data (written once)."""
    data = folder / "lv.csv"
    if not data.exists():
        from ude_bridge.cli.demo import SYSTEMS, generate_data

        made = generate_data(SYSTEMS["lv"], folder)
        made["data"].rename(data)
        made["truth"].unlink()
    path = folder / name
    path.write_text(LV_MODEL.format(data=data.name, optimizers=optimizers, every=every))
    return path


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def run_main(argv: list, capsys) -> tuple[int, str, str]:
    """``main(argv)`` in this process (no interpreter start-up): (exit code, stdout, stderr)."""
    from ude_bridge.cli.main import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    """The single line of ``err`` (asserting one line and no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith("ude-bridge"), lines[0]
    return lines[0]
