"""Smoke tests of ``examples/``: every script runs with ``--quick``, every model file loads.

The scripts run in this process (``main(["--quick", ...])``), which saves an interpreter and
torch start-up per script; each still goes through data, fit, discovery and plots.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _agg_backend(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")


def test_every_example_script_has_a_model_file_and_a_test():
    scripts = {p.stem for p in EXAMPLES.glob("*.py")}
    assert scripts == {
        "lotka_volterra_ude",
        "pendulum_friction",
        "sir_infection",
        "stiff_robertson",
        "julia_backend",
    }
    assert scripts == {p.stem for p in EXAMPLES.glob("*.toml")}


@pytest.mark.parametrize("name", ["lotka_volterra_ude", "pendulum_friction", "sir_infection"])
def test_ude_example_runs_quick_and_discovers_an_expression(name, tmp_path, capsys):
    out = _load(name).main(["--quick", "--out", str(tmp_path)])
    assert out["found"].expressions
    assert (tmp_path / "fit.png").exists()
    text = capsys.readouterr().out
    assert "fit: loss" in text and "U1 = " in text


def test_stiff_robertson_example_runs_quick(tmp_path, capsys):
    module = _load("stiff_robertson")
    if not module.stiff_method_available():
        pytest.skip("Rodas5P is not in the torch engine yet (ude_bridge/solvers/rosenbrock.py)")
    out = module.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "robertson.png").exists()
    assert out["difference"] < 1e-5  # Rodas5P at 1e-8 vs Radau at 1e-10
    assert not out["explicit"].success  # Tsit5 runs out of steps on the stiff problem
    assert "Rodas5P" in capsys.readouterr().out


def test_julia_example_runs_or_says_why_not(capsys):
    module = _load("julia_backend")
    import ude_bridge.julia as ubj

    if ubj.is_available():
        pytest.skip("Julia is installed: the full example is a julia-marked run, not a smoke test")
    assert module.main(["--quick"]) is None
    text = capsys.readouterr().out
    assert "cannot run" in text and "pip install" in text


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.toml")))
def test_example_model_file_loads_with_its_data(name):
    from ude_bridge.cli.config import load_config
    from ude_bridge.cli.pipeline import check_config

    cfg = load_config(EXAMPLES / f"{name}.toml")
    model, data = check_config(cfg)
    assert set(data.states) <= {str(s) for s in model.system().states}


def test_the_stiff_model_file_fits_from_the_command_line(tmp_path, capsys):
    from ude_bridge.cli.main import main

    text = (EXAMPLES / "stiff_robertson.toml").read_text()
    text = text.replace('"data/robertson.csv"', repr(str(EXAMPLES / "data" / "robertson.csv")))
    text = text.replace('[["lbfgs", 20]]', '[["lbfgs", 1]]')
    model = tmp_path / "robertson.toml"
    model.write_text(text.replace("'", '"'))
    module = _load("stiff_robertson")
    if not module.stiff_method_available():
        pytest.skip("Rodas5P is not in the torch engine yet (ude_bridge/solvers/rosenbrock.py)")
    code = main(["fit", str(model), "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "run" / "fit.pt").exists()
