"""Every bad input is one readable line on stderr and exit code 2; run-time failures exit 1;
no traceback unless ``--debug``.

The kinds of error the issue lists run as real subprocesses; the other messages are checked
in-process through ``main(argv)`` (same code path, without an interpreter start-up each).
"""

from __future__ import annotations

import pytest

from .helpers import one_error_line, one_line, run_main, write_lv


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("errors")
    write_lv(folder)
    return folder


def _edit(folder, name, old, new):
    text = (folder / "lv.toml").read_text()
    assert old in text
    path = folder / name
    path.write_text(text.replace(old, new))
    return path


# ---------------------------------------------------------------- subprocesses
def _failed(jobs, name, code=2):
    proc = jobs[name].result()
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    return one_error_line(proc)


def test_a_missing_model_file(jobs):
    line = _failed(jobs, "missing_file")
    assert "nope.toml" in line and "no such file" in line


def test_malformed_toml_names_the_line(jobs):
    line = _failed(jobs, "malformed")
    assert "malformed TOML" in line and "(line 9," in line


def test_an_unknown_key_suggests_the_nearest(jobs):
    line = _failed(jobs, "unknown_key")
    assert "unknown key 'hiden'" in line and "Did you mean 'hidden'?" in line
    assert "[network.NN1]" in line and "(line 9)" in line


def test_a_column_missing_from_the_csv(jobs):
    line = _failed(jobs, "missing_column")
    assert "'prey'" in line and "lv.csv" in line


def test_an_equation_error_names_the_symbol_and_the_line(jobs):
    line = _failed(jobs, "equation")
    assert "alpah" in line and "Did you mean 'alpha'?" in line and "(line 2)" in line


def test_a_solver_failure_at_run_time_exits_1(jobs):
    line = _failed(jobs, "runtime", code=1)
    assert "stopped early" in line and "blowup.csv" in line


def test_debug_shows_the_traceback(jobs):
    proc = jobs["debug"].result()
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "ConfigError" in proc.stderr


# ---------------------------------------------------------------- in-process
def test_an_unknown_table_suggests_the_nearest(folder, capsys):
    path = _edit(folder, "table.toml", "[fit]", "[fitt]")
    code, _, err = run_main(["fit", path], capsys)
    assert code == 2
    line = one_line(err)
    assert "unknown table [fitt]" in line and "Did you mean 'fit'?" in line


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("rtol = 1e-4", 'rtol = "tight"', "[fit] rtol"),
        ("polynomial = 2", "polynomal = 2", "Did you mean 'polynomial'?"),
        ('optimizers = [["adam"', 'optimizers = [[0.1, "adam"', "stage 1 must be"),
        ("[model]", "[model]\nu0 = { x = 1.0, z = 2.0 }", "'z' is not a state"),
        ("n_folds = 3", "niterations = 3", "option of method='pysr'"),
        ("hidden = [8]", 'hidden = [8]\nactivation = "swish"', "activation"),
        ('trajectory = "trajectory"', 'trajectory = "trajectory"\nstates = ["x"]', "'y' is not"),
        ("[discover]", "[report]\nforecast = 1.0\n\n[discover]", "must lie beyond"),
        ('fixed = ["alpha", "delta"]', 'fixed = ["alpha", "gamma"]', "'gamma'"),
    ],
)
def test_bad_values_are_one_line_with_the_key(folder, capsys, old, new, expected):
    path = _edit(folder, "value.toml", old, new)
    out = folder / f"never-{abs(hash(new))}"
    code, _, err = run_main(["fit", path, "--out", out], capsys)
    assert code == 2
    assert expected in one_line(err)
    assert not out.exists()  # nothing is created before the input is checked


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["fit", "{f}/lv.toml", "--data", "{f}/missing.csv"], "missing.csv"),
        (["discover", "{f}/empty_run"], "fit.pt is missing"),
        (["discover", "{f}/nowhere"], "no such run folder"),
        (["demo", "--system", "lorenz", "--out", "{f}/x"], "unknown system 'lorenz'"),
        (["demo", "--noise", "2", "--out", "{f}/x"], "--noise"),
        (
            ["solve", "{f}/lv.toml", "--tspan", "0", "1", "--method", "tsit5", "--u0", "1", "1"],
            "Did you mean 'Tsit5'?",
        ),
        (["solve", "{f}/lv.toml", "--tspan", "0", "1", "--u0", "1"], "--u0 needs 2 values"),
        (["solve", "{f}/lv.toml", "--tspan", "0"], "--tspan"),
        (["solve", "{f}/lv.toml", "--tspan", "0", "1", "--backend", "jax"], "--backend"),
        (["fit", "{f}/lv.toml", "--resume", "--force"], "contradict"),
        (["fit", "{f}/lv.toml", "--out", "{f}/empty_run", "--resume"], "no checkpoint"),
        (["fit", "{f}/lv.toml", "--out", "{f}/precious", "--force"], "not a run folder"),
    ],
)
def test_command_line_mistakes_are_one_line(folder, capsys, argv, expected):
    (folder / "empty_run").mkdir(exist_ok=True)
    (folder / "precious").mkdir(exist_ok=True)
    (folder / "precious" / "thesis.tex").write_text("keep me")
    code, _, err = run_main([a.format(f=folder) for a in argv], capsys)
    assert code == 2
    assert expected in one_line(err)
    assert (folder / "precious" / "thesis.tex").exists()


def test_julia_backend_without_julia_is_one_line(folder, capsys):
    from ude_bridge.backends.julia_backend import is_available

    if is_available():
        pytest.skip("juliacall is installed here; the unavailable path cannot be shown")
    argv = ["solve", folder / "lv.toml", "--tspan", "0", "1", "--backend", "julia"]
    code, _, err = run_main([*argv, "--u0", "1", "1"], capsys)
    assert code == 2
    line = one_line(err)
    assert "juliacall" in line and "pip install" in line
