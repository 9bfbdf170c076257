"""The PySR path: argument mapping without Julia, the error without it, a search with it."""

from __future__ import annotations

import numpy as np
import pytest

import ude_bridge as ub
from ude_bridge.backends.julia_runtime import pysr_available
from ude_bridge.discover import Samples, discover, library
from ude_bridge.discover.pysr import pysr_arguments

from .systems import hand_result


def test_our_keywords_map_to_pysr_regressor_arguments():
    kw = pysr_arguments(
        binary_operators=["+", "*", "/"],
        unary_operators=["exp"],
        maxsize=15,
        maxdepth=5,
        populations=8,
        niterations=12,
        timeout=30,
        parsimony=0.01,
        seed=3,
        extra={"batching": True},
    )
    assert kw["binary_operators"] == ["+", "*", "/"] and kw["unary_operators"] == ["exp"]
    assert (kw["maxsize"], kw["maxdepth"], kw["populations"], kw["niterations"]) == (15, 5, 8, 12)
    assert kw["timeout_in_seconds"] == 30.0 and kw["parsimony"] == 0.01
    # a seed makes the search reproducible, which PySR allows only serially
    assert (kw["random_state"], kw["deterministic"], kw["parallelism"]) == (3, True, "serial")
    assert kw["batching"] is True and kw["progress"] is False


def test_without_a_seed_the_search_may_run_in_parallel():
    kw = pysr_arguments(seed=None)
    assert "deterministic" not in kw and "timeout_in_seconds" not in kw


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"unary_operators": ["relu"]}, "unary operator 'relu' cannot be turned into"),
        ({"binary_operators": ["max"]}, "binary operator 'max'"),
        ({"binary_operators": []}, "must not be empty"),
        ({"maxsize": 3}, "maxsize must be an integer >= 7"),
        ({"timeout": -1}, "timeout must be None or seconds > 0"),
        ({"model_selection": "fastest"}, "model_selection must be"),
    ],
)
def test_bad_pysr_options_fail_before_julia_starts(kwargs, match):
    with pytest.raises(ub.InputError, match=match):
        pysr_arguments(**kwargs)
    x = np.linspace(0, 1, 30)
    with pytest.raises(ub.InputError, match=match):
        discover(Samples.from_arrays({"x": x}, {"U1": x}), method="pysr", **kwargs)


@pytest.mark.skipif(pysr_available(), reason="PySR is installed, so there is no error to check")
def test_without_pysr_the_call_fails_at_once_saying_what_to_install():
    with pytest.raises(ub.BackendUnavailableError) as info:
        discover(hand_result(), method="pysr", maxsize=10)
    message = str(info.value)
    assert "discover(method='pysr')" in message
    assert 'pip install "ude-bridge[julia]"' in message and "juliapkg" in message


def test_sindy_keywords_are_refused_for_pysr():
    x = np.linspace(0, 1, 30)
    with pytest.raises(TypeError, match="belongs to method='sindy'"):
        discover(Samples.from_arrays({"x": x}, {"U1": x}), method="pysr", tolerance=0.1)


@pytest.mark.julia
@pytest.mark.slow
@pytest.mark.skipif(not pysr_available(), reason="PySR/Julia not installed (ude-bridge[julia])")
def test_pysr_finds_the_interaction_term_of_a_network():
    found = discover(
        hand_result(),
        method="pysr",
        library=library.polynomial(["x", "y"], 1),
        binary_operators=["+", "-", "*"],
        maxsize=10,
        niterations=20,
        timeout=120,
    )
    x, y = found.samples.variables["x"], found.samples.variables["y"]
    assert found.table["U1"].error < 1e-3
    assert str(found.expressions["U1"].free_symbols) in ("{x, y}", "{y, x}")
    assert found.model is not None and np.isfinite(x * y).all()


def test_a_pysr_result_is_used_like_a_sindy_one(monkeypatch):
    """The search itself is stubbed: what PySR hands back flows into the same Discovery."""
    import sympy

    import ude_bridge.backends.julia_runtime as jr
    from ude_bridge.discover import pysr as pysr_module

    x, y = sympy.symbols("x y")
    seen = {}

    def fake_fit(inputs, targets, variables, kwargs):
        seen.setdefault("variables", []).append([str(v) for v in variables])
        seen["kwargs"] = kwargs
        coef = -0.9 if len(seen["variables"]) == 1 else 0.8
        best = sympy.Float(coef) * x * y
        front = ((1, float(np.mean(targets**2)), sympy.Float(0.1) * x), (5, 1e-12, best))
        return pysr_module.PySRResult(best, front)

    monkeypatch.setattr(jr, "require_pysr", lambda where: None)
    monkeypatch.setattr(pysr_module, "pysr_fit", fake_fit)
    found = discover(hand_result(), method="pysr", maxsize=12, points=40)
    assert seen["variables"] == [["x", "y"], ["x", "y"]]  # the networks' inputs
    assert seen["kwargs"]["maxsize"] == 12
    assert found.table["U1"].terms == (x * y,) and found.table["U1"].coefficients == (-0.9,)
    assert found.table["U1"].complexity == 5 and found.table["U1"].error < 1e-12
    assert [p.selected for p in found.pareto["U1"]] == [False, True]
    assert len(found.model.networks) == 0
    model, exprs = found.parameterized()
    assert exprs["U2"] == sympy.Symbol("c_U2_0") * x * y
    assert "U_{2} &= 0.8 x y" in found.to_latex()
