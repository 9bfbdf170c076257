"""``ude-bridge demo --quick``: the whole pipeline in seconds, and everything it writes."""

from __future__ import annotations

import json

import pytest
import sympy

from .helpers import one_line, run_main

RUN_FILES = [
    "run.json",
    "config.toml",
    "data.csv",
    "truth.csv",
    "checkpoint.pt",
    "fit.pt",
    "refit.pt",
    "history.csv",
    "equations.json",
    "equations.tex",
    "forecast.csv",
    "report.md",
    "report.html",
]
PLOTS = ["fit.png", "loss.png", "networks.png", "forecast.png"]


@pytest.fixture(scope="module")
def demo_run(jobs):
    return jobs["demo"].result(), jobs["dir"] / "demo"


def test_demo_quick_succeeds_and_prints_a_summary(demo_run):
    proc, folder = demo_run
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for word in ("data", "model", "fit", "found", "refit", "forecast", "time", "run"):
        assert f"\n  {word} " in out, out
    assert "U1 = " in out and "U2 = " in out and "true -0.9*x*y" in out
    assert str(folder) in out
    assert "Traceback" not in proc.stderr


def test_demo_run_folder_holds_every_file_and_the_plots_open(demo_run):
    from PIL import Image

    _, folder = demo_run
    missing = [f for f in RUN_FILES + PLOTS if not (folder / f).exists()]
    assert not missing
    for name in PLOTS:
        with Image.open(folder / name) as img:
            img.verify()
        with Image.open(folder / name) as img:
            assert img.size[0] > 300 and img.size[1] > 200


def test_demo_equations_hold_the_interaction_terms(demo_run):
    _, folder = demo_run
    eqs = json.loads((folder / "equations.json").read_text())
    assert set(eqs["expressions"]) == {"U1", "U2"}
    for name in ("U1", "U2"):
        assert "x*y" in eqs["table"][name]["terms"], eqs["expressions"]
    # the refitted interaction coefficients are near the truth (-0.9, 0.8); 1 % noise and
    # a ten-iteration fit: within 0.1
    x, y = sympy.symbols("x y")
    for name, true in (("U1", -0.9), ("U2", 0.8)):
        expr = sympy.sympify(eqs["refit"]["expressions"][name], locals={"x": x, "y": y})
        assert abs(float(expr.coeff(x * y)) - true) < 0.1, eqs["refit"]["expressions"]
    assert eqs["true"] == {"U1": "-0.9*x*y", "U2": "0.8*x*y"}
    assert "x y" in (folder / "equations.tex").read_text()


def test_demo_report_html_is_self_contained(demo_run):
    _, folder = demo_run
    page = (folder / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(PLOTS)
    assert 'src="http' not in page and '.png"' not in page
    md = (folder / "report.md").read_text()
    for name in PLOTS:
        assert f"({name})" in md


def test_demo_history_and_record_match(demo_run):
    _, folder = demo_run
    rows = (folder / "history.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,stage,optimizer,loss")
    record = json.loads((folder / "run.json").read_text())
    assert record["fit"]["iterations"] == len(rows) - 1
    assert record["status"] == "done" and record["demo"]["system"] == "lv"


def test_demo_refuses_to_overwrite_its_run_folder(demo_run, capsys):
    _, folder = demo_run
    code, _, err = run_main(["demo", "--quick", "--out", folder], capsys)
    assert code == 2
    assert "--force" in one_line(err)
