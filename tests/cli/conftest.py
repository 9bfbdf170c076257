"""The subprocesses of the CLI tests, defined once per session and run on first use.

(Running them side by side was tried: on two busy cores the start-ups, mostly importing
torch, got slower together than one after another.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ENV, write_lv


class Job:
    """One ``python -m ude_bridge ...``, run the first time its result is asked for."""

    def __init__(self, args: list, cwd: Path | None = None) -> None:
        self.args = [str(a) for a in args]
        self.cwd = cwd
        self._done: subprocess.CompletedProcess | None = None

    def result(self, timeout: float = 300) -> subprocess.CompletedProcess:
        if self._done is None:
            self._done = subprocess.run(
                [sys.executable, "-m", "ude_bridge", *self.args],
                cwd=self.cwd,
                env=ENV,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        return self._done


def _variant(folder: Path, name: str, old: str, new: str) -> Path:
    text = (folder / "lv.toml").read_text()
    assert old in text, old
    path = folder / name
    path.write_text(text.replace(old, new))
    return path


@pytest.fixture(scope="session")
def jobs(tmp_path_factory):
    """``{name: Job}``; ``jobs["dir"]`` is their working folder."""
    ws = tmp_path_factory.mktemp("cli")
    model = write_lv(ws)
    blowup = ws / "blowup.toml"
    blowup.write_text('[model]\nequations = { x = "x**2" }\nu0 = [1.0]\n')
    cases = {
        "demo": ["demo", "--quick", "--out", ws / "demo", "--no-progress"],
        "fit": ["fit", model, "--out", ws / "runs" / "lv", "--no-progress"],
        "missing_file": ["fit", ws / "nope.toml"],
        "malformed": ["fit", _variant(ws, "bad.toml", "hidden = [8]", "hidden == [8]")],
        "unknown_key": ["fit", _variant(ws, "typo.toml", "hidden = [8]", "hiden = [8]")],
        "missing_column": [
            "fit",
            _variant(
                ws,
                "col.toml",
                'trajectory = "trajectory"',
                'trajectory = "trajectory"\nstates = ["x", "prey"]',
            ),
        ],
        "equation": ["fit", _variant(ws, "eq.toml", "alpha*x + U1", "alpah*x + U1")],
        "runtime": ["solve", blowup, "--tspan", "0", "2", "--out", ws / "blowup.csv"],
        "debug": ["--debug", "fit", ws / "nope.toml"],
    }
    defined: dict = {name: Job(args, cwd=ws) for name, args in cases.items()}
    defined["dir"] = ws
    return defined
