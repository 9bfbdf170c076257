"""Sparse regression: recovery on exact and noisy samples of known functions, selection, errors."""

from __future__ import annotations

import numpy as np
import pytest

import ude_bridge as ub
from ude_bridge.discover import Samples, discover, library
from ude_bridge.discover.sindy import available_optimizers, sparse_fit

LIB = library.polynomial(["x", "y"], degree=3)


def _points(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(-2.0, 2.0, n), rng.uniform(-1.0, 3.0, n)


def _terms(found, out):
    return {str(t) for t in found.table[out].terms}


def _coefficients(found, out):
    return dict(zip(map(str, found.table[out].terms), found.table[out].coefficients, strict=True))


def test_exact_samples_of_a_polynomial_give_its_terms_and_coefficients():
    x, y = _points()
    truth = {"U1": 1.5 * x * y - 0.5 * y**3, "U2": 2.0 - x + 0.25 * x**2 * y}
    found = discover(Samples.from_arrays({"x": x, "y": y}, truth), library=LIB)
    assert _terms(found, "U1") == {"x*y", "y**3"}
    assert _terms(found, "U2") == {"1", "x", "x**2*y"}
    c1, c2 = _coefficients(found, "U1"), _coefficients(found, "U2")
    # exact samples: least squares on the right support is exact to round-off
    np.testing.assert_allclose([c1["x*y"], c1["y**3"]], [1.5, -0.5], rtol=1e-10)
    np.testing.assert_allclose([c2["1"], c2["x"], c2["x**2*y"]], [2.0, -1.0, 0.25], rtol=1e-10)
    assert found.table["U1"].complexity == 2 and found.table["U1"].error < 1e-10


@pytest.mark.parametrize("seed", range(3))
def test_noisy_samples_of_a_polynomial_give_its_terms_on_every_draw(seed):
    x, y = _points(seed=seed)
    clean = 1.5 * x * y - 0.5 * y**3
    rng = np.random.default_rng(100 + seed)
    noisy = clean + 0.05 * clean.std() * rng.standard_normal(clean.shape)  # 5 % noise
    found = discover(Samples.from_arrays({"x": x, "y": y}, {"U1": noisy}), library=LIB)
    assert _terms(found, "U1") == {"x*y", "y**3"}
    c = _coefficients(found, "U1")
    # 400 samples at 5 % noise: the standard error of each coefficient is well under 2 %
    np.testing.assert_allclose([c["x*y"], c["y**3"]], [1.5, -0.5], rtol=0.02)


def test_a_smooth_error_outside_the_library_adds_no_terms():
    x, y = _points()
    clean = -0.9 * x * y
    wobble = 0.01 * np.abs(clean).max() * np.sin(2 * x) * np.cos(y)  # like a network's error
    found = discover(Samples.from_arrays({"x": x, "y": y}, {"U1": clean + wobble}), library=LIB)
    assert _terms(found, "U1") == {"x*y"}


def test_scaling_the_output_scales_the_coefficients_and_keeps_the_terms():
    x, y = _points()
    noisy = 1.5 * x * y - 0.5 * y**3 + 0.05 * np.random.default_rng(3).standard_normal(x.shape)
    theta = LIB.evaluate(np.stack([x, y], 1))
    a = sparse_fit(theta, noisy)
    b = sparse_fit(theta, 1e4 * noisy)
    assert a.selected.support == b.selected.support
    np.testing.assert_allclose(1e4 * a.selected.coefficients, b.selected.coefficients, rtol=1e-8)


def test_the_pareto_front_trades_terms_for_error_and_holds_the_selection():
    x, y = _points()
    found = discover(
        Samples.from_arrays({"x": x, "y": y}, {"U1": 1.5 * x * y - 0.5 * y**3 + 0.5 * x}),
        library=LIB,
    )
    front = found.pareto["U1"]
    assert [p.complexity for p in front] == sorted({p.complexity for p in front})
    errors = [p.error for p in front]
    assert errors == sorted(errors, reverse=True)
    assert sum(p.selected for p in front) == 1
    assert [p for p in front if p.selected][0].complexity == 3


@pytest.mark.parametrize("criterion", ["bic", "aic", "cv"])
def test_every_criterion_finds_the_terms_of_noisy_samples(criterion):
    x, y = _points()
    noisy = 1.5 * x * y - 0.5 * y**3 + 0.05 * np.random.default_rng(4).standard_normal(x.shape)
    found = discover(
        Samples.from_arrays({"x": x, "y": y}, {"U1": noisy}), library=LIB, criterion=criterion
    )
    assert _terms(found, "U1") == {"x*y", "y**3"}


@pytest.mark.parametrize("optimizer", [o for o in available_optimizers() if o != "miosr"])
def test_each_pysindy_optimizer_alone_proposes_the_right_support(optimizer):
    x, y = _points(200)
    clean = 1.5 * x * y - 0.5 * y**3 + 0.7 * x**2  # three terms: beyond the exhaustive pairs
    noisy = clean + 0.02 * np.random.default_rng(5).standard_normal(x.shape)
    fit = sparse_fit(LIB.evaluate(np.stack([x, y], 1)), noisy, optimizers=(optimizer,))
    assert {LIB.names[j] for j in fit.selected.support} == {"x*y", "y**3", "x**2"}
    assert fit.selected.source == optimizer


def test_an_ensemble_reports_inclusion_probabilities_per_term():
    x, y = _points()
    noisy = 1.5 * x * y - 0.5 * y**3 + 0.05 * np.random.default_rng(6).standard_normal(x.shape)
    found = discover(Samples.from_arrays({"x": x, "y": y}, {"U1": noisy}), library=LIB, ensemble=20)
    inclusion = dict(zip(LIB.names, found.table["U1"].inclusion, strict=True))
    assert inclusion["x*y"] == 1.0 and inclusion["y**3"] == 1.0
    assert max(v for k, v in inclusion.items() if k not in ("x*y", "y**3")) < 0.5
    assert _terms(found, "U1") == {"x*y", "y**3"}


def test_too_few_sample_points_are_refused():
    x, y = _points(8)
    with pytest.raises(ub.InputError, match="too few sample points: 8 for a library of 10"):
        discover(Samples.from_arrays({"x": x, "y": y}, {"U1": x * y}), library=LIB)


def test_a_library_term_that_is_zero_everywhere_is_refused():
    x = np.linspace(-1, 1, 50)
    lib = library.custom(["x", "y"])
    samples = Samples.from_arrays({"x": x, "y": np.zeros(50)}, {"U1": x})
    with pytest.raises(ub.InputError, match="term 'y' is zero at every sample"):
        discover(samples, library=lib)


def test_non_finite_library_values_are_refused():
    x = np.linspace(-1, 1, 51)
    with pytest.raises(ub.InputError, match="not finite"):
        discover(Samples.from_arrays({"x": x}, {"U1": x}), library=library.custom(["x", "log(x)"]))


def test_unknown_optimizers_criteria_and_keywords_are_refused():
    x, y = _points(50)
    samples = Samples.from_arrays({"x": x, "y": y}, {"U1": x * y})
    with pytest.raises(ub.InputError, match="unknown optimizer 'lasso'"):
        discover(samples, library=LIB, optimizers=("lasso",))
    with pytest.raises(ub.InputError, match="criterion must be"):
        discover(samples, library=LIB, criterion="mdl")
    with pytest.raises(TypeError, match="Did you mean 'tolerance'"):
        discover(samples, library=LIB, tolerence=0.1)
    with pytest.raises(TypeError, match="belongs to method='pysr'"):
        discover(samples, library=LIB, maxsize=10)
