"""``ude-bridge fit / discover / solve / info`` and ``--help``."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from .helpers import ENV, cli, one_line, run_main, write_lv

FIT_FILES = [
    "run.json",
    "config.toml",
    "data.csv",
    "checkpoint.pt",
    "fit.pt",
    "history.csv",
    "fit.png",
    "loss.png",
    "report.md",
    "report.html",
]


@pytest.fixture(scope="module")
def fitted(jobs):
    """The model file and the run folder of its (tiny) fit."""
    folder = jobs["dir"]
    return folder, folder / "lv.toml", folder / "runs" / "lv", jobs["fit"].result()


def test_fit_writes_a_run_folder(fitted):
    folder, model, run, proc = fitted
    assert proc.returncode == 0, proc.stderr
    assert "loss" in proc.stdout and str(run) in proc.stdout
    assert "ude-bridge discover" in proc.stdout
    assert not [f for f in FIT_FILES if not (run / f).exists()]
    record = json.loads((run / "run.json").read_text())
    assert record["data"]["copy"] == "data.csv"
    assert len(record["data"]["sha256"]) == 64
    assert record["model_file"] == str(model.resolve())
    assert (run / "data.csv").read_bytes() == (folder / "lv.csv").read_bytes()


def test_the_resolved_config_of_a_run_loads_again(fitted):
    from ude_bridge.cli.config import load_config

    _, _, run, _ = fitted
    cfg = load_config(run / "config.toml")
    assert cfg["data"]["path"] == str((run / "data.csv").resolve())
    assert cfg["network"]["NN1"]["hidden"] == [8]
    assert cfg["fit"]["method"] == "Tsit5"  # a default, filled in


def test_discover_then_solve_a_run_folder(fitted, capsys):
    _, _, run, _ = fitted
    proc = cli("discover", run, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "U1 = " in proc.stdout and "U2 = " in proc.stdout
    for name in ("equations.json", "equations.tex", "networks.png", "refit.pt"):
        assert (run / name).exists(), name
    assert "Discovered equations" in (run / "report.md").read_text()

    out = run.parent / "solution.csv"  # solve has its own subprocess test (test_errors)
    code, _, err = run_main(
        ["solve", run, "--tspan", "0", "5", "--saveat", "0.5", "--out", out], capsys
    )
    assert code == 0, err
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["t", "x", "y"]
    assert len(rows) == 1 + 11
    assert float(rows[-1][0]) == 5.0


def test_fit_refuses_an_existing_run_folder_without_force(fitted, capsys):
    folder, model, run, _ = fitted
    code, _, err = run_main(["fit", model, "--out", run], capsys)
    assert code == 2
    assert "--force" in one_line(err)
    assert (run / "fit.pt").exists()


def test_force_replaces_a_run_folder_and_nothing_else(tmp_path):
    from ude_bridge.cli.config import ConfigError
    from ude_bridge.cli.runs import prepare_run

    run = prepare_run(tmp_path / "r")
    run.save_record(status="done")
    (run / "old.txt").write_text("old")
    with pytest.raises(ConfigError, match="--force"):
        prepare_run(tmp_path / "r")
    again = prepare_run(tmp_path / "r", force=True)
    assert not (again / "old.txt").exists()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not a run folder"):
        prepare_run(other, force=True)
    assert (other / "keep.txt").exists()


def test_solve_a_model_file_on_torch_and_scipy_agree(tmp_path, capsys):
    model = tmp_path / "lv.toml"
    model.write_text(
        '[model]\nequations = { x = "a*x - b*x*y", y = "c*x*y - d*y" }\n'
        "params = { a = 1.3, b = 0.9, c = 0.8, d = 1.8 }\n"
        "u0 = { x = 0.44249296, y = 4.6280594 }\n"
    )
    results = {}
    for backend in ("torch", "scipy"):
        out = tmp_path / f"{backend}.csv"
        argv = ["solve", model, "--tspan", "0", "3", "--saveat", "0.1", "--backend", backend]
        code, _, err = run_main([*argv, "--rtol", "1e-8", "--atol", "1e-8", "--out", out], capsys)
        assert code == 0, err
        results[backend] = [list(map(float, r)) for r in list(csv.reader(out.open()))[1:]]
    assert len(results["torch"]) == 31
    worst = max(
        abs(a - b)
        for ra, rb in zip(results["torch"], results["scipy"], strict=True)
        for a, b in zip(ra, rb, strict=True)
    )
    assert worst < 1e-5  # both at rtol=1e-8: agreement well inside 1e-5


def test_solve_prints_csv_to_stdout_without_out(tmp_path):
    model = tmp_path / "decay.toml"
    model.write_text('[model]\nequations = { x = "-k*x" }\nparams = { k = 1.0 }\nu0 = [1.0]\n')
    proc = cli("solve", model, "--tspan", "0", "1", "--saveat", "0.5")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(proc.stdout.splitlines()))
    assert rows[0] == ["t", "x"] and len(rows) == 4
    assert abs(float(rows[-1][1]) - 0.36787944) < 1e-5  # exp(-1), at the default 1e-6


@pytest.mark.slow
def test_ctrl_c_saves_the_checkpoint_and_resume_continues(tmp_path):
    model = write_lv(tmp_path, optimizers='[["adam", 0.001, 2000]]', every=2)
    run = tmp_path / "runs" / "long"
    cmd = [sys.executable, "-m", "ude_bridge", "fit", str(model), "--out", str(run)]
    proc = subprocess.Popen(
        [*cmd, "--no-progress"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 90
    while not (run / "checkpoint.pt").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 90 s"
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    line = [x for x in err.splitlines() if "error" in x][-1]
    assert "checkpoint" in line and "--resume" in line and str(run) in line
    assert "Traceback" not in err
    import torch

    done = torch.load(run / "checkpoint.pt", weights_only=False)["iteration"]
    assert done >= 2
    # resume with a shorter schedule: the fit continues from the checkpoint's iteration
    write_lv(tmp_path, optimizers=f'[["adam", 0.001, {done + 3}]]', every=2)
    proc = cli("fit", model, "--out", run, "--resume", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    rows = (run / "history.csv").read_text().splitlines()[1:]
    # every iteration is in the history once resumed (an interrupt that lands between an
    # iteration's record and its checkpoint repeats that one iteration, hence a set)
    assert {int(r.split(",")[0]) for r in rows} == set(range(done + 3))


def test_info_lists_backends_and_methods():
    exe = shutil.which("ude-bridge")  # the installed console script, where there is one
    cmd = [exe, "info"] if exe else [sys.executable, "-m", "ude_bridge", "info"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for word in ("ude_bridge", "torch", "scipy", "julia", "Tsit5"):
        assert word in proc.stdout


def test_help_of_every_command_shows_an_example():
    from ude_bridge.cli.main import build_parser

    parser = build_parser()
    assert "examples:" in parser.format_help()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"demo", "fit", "discover", "solve", "info"}
    for name, command in sub.choices.items():
        text = command.format_help()
        assert "example:" in text and f"ude-bridge {name}" in text, name
