"""Term libraries: names, their evaluations, combinations and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import ude_bridge as ub
from ude_bridge.discover import Library, library


def _lambdified(lib: Library, values: np.ndarray) -> np.ndarray:
    fn = sympy.lambdify(lib.variables, list(lib.terms), modules="numpy")
    cols = fn(*values.T)
    return np.stack([np.broadcast_to(c, values.shape[:1]) for c in cols], axis=1)


def test_library_and_discover_are_exported_from_the_package():
    if not hasattr(ub, "library"):
        pytest.skip("ude_bridge/__init__.py does not export discover/library yet")
    assert ub.library.polynomial is library.polynomial
    from ude_bridge.discover import discover

    assert ub.discover is discover


def test_polynomial_terms_are_ordered_by_degree_then_lexicographically():
    lib = library.polynomial(["x", "y"], degree=3)
    assert lib.names == (
        "1", "x", "y", "x**2", "x*y", "y**2", "x**3", "x**2*y", "x*y**2", "y**3",
    )  # fmt: skip


@pytest.mark.parametrize("m, degree", [(1, 4), (2, 3), (3, 2), (3, 3)])
def test_polynomial_has_every_monomial_up_to_its_degree(m, degree):
    names = ["a", "b", "c"][:m]
    lib = library.polynomial(names, degree=degree)
    assert len(lib) == math.comb(m + degree, degree)
    no_bias = library.polynomial(names, degree=degree, include_bias=False)
    assert len(no_bias) == len(lib) - 1
    inter = library.polynomial(names, degree=degree, interaction_only=True, include_bias=False)
    assert len(inter) == sum(math.comb(m, d) for d in range(1, min(m, degree) + 1))


def test_fourier_has_a_sine_and_a_cosine_per_variable_and_frequency():
    lib = library.fourier(["x", "y"], n=2)
    assert lib.names == (
        "sin(x)", "cos(x)", "sin(2*x)", "cos(2*x)", "sin(y)", "cos(y)", "sin(2*y)", "cos(2*y)",
    )  # fmt: skip


@pytest.mark.parametrize(
    "make",
    [
        lambda: library.polynomial(["x", "y"], 3),
        lambda: library.fourier(["x", "y"], 3),
        lambda: library.custom(["exp(-x)", "sin(x)*y", "sqrt(1 + y**2)", "tanh(x - y)", "1"]),
        lambda: library.polynomial(["x"], 2) * library.fourier(["y"], 1),
        lambda: library.polynomial(["x", "y"], 1) + library.custom(["x/(1 + y**2)"]),
    ],
)
def test_library_evaluations_match_their_names(make):
    lib = make()
    rng = np.random.default_rng(1)
    values = rng.uniform(-2.0, 2.0, (50, len(lib.variables)))
    got = lib.evaluate(values)
    np.testing.assert_allclose(got, _lambdified(lib, values), rtol=1e-13, atol=1e-13)
    as_tensor = lib.evaluate(torch.as_tensor(values))
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (50, len(lib))
    np.testing.assert_allclose(as_tensor.numpy(), got, rtol=1e-13, atol=1e-13)
    by_name = lib.evaluate({str(v): values[:, i] for i, v in enumerate(lib.variables)})
    np.testing.assert_allclose(by_name, got, rtol=1e-13, atol=1e-13)


@settings(max_examples=10, deadline=None)
@given(
    degree=st.integers(0, 4),
    bias=st.booleans(),
    n=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_sums_and_products_of_libraries_evaluate_like_their_names(degree, bias, n, seed):
    if degree == 0 and not bias:
        degree = 1
    lib = library.polynomial(["x"], degree, include_bias=bias) * library.fourier(["y"], n)
    lib = lib + library.polynomial(["x", "y"], 2)
    values = np.random.default_rng(seed).uniform(-1.5, 1.5, (20, 2))
    np.testing.assert_allclose(lib.evaluate(values), _lambdified(lib, values), atol=1e-12)


def test_sum_keeps_order_and_drops_duplicates():
    lib = library.polynomial(["x"], 2) + library.polynomial(["x", "y"], 1)
    assert lib.names == ("1", "x", "x**2", "y")
    assert [str(v) for v in lib.variables] == ["x", "y"]


def test_product_with_the_bias_keeps_the_other_terms():
    lib = library.polynomial(["x"], 1) * library.custom(["sin(y)"])
    assert lib.names == ("sin(y)", "x*sin(y)")


def test_custom_infers_its_variables_in_order_of_appearance():
    lib = library.custom(["sin(y)", "x*y", "exp(-t)"])
    assert [str(v) for v in lib.variables] == ["y", "x", "t"]
    assert library.custom([sympy.Symbol("z") ** 2]).names == ("z**2",)


def test_custom_with_explicit_variables_refuses_other_names():
    with pytest.raises(ub.UnknownSymbolError, match="unknown symbol 'z'"):
        library.custom(["x*z"], variables=["x", "y"])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: library.custom([]), "no terms"),
        (lambda: library.polynomial(["x"], 0, include_bias=False), "leaves no term"),
        (lambda: library.polynomial([], 2), "variables must not be empty"),
        (lambda: library.polynomial(["x", "x"], 2), "given twice"),
        (lambda: library.polynomial(["x"], -1), "degree must be an integer >= 0"),
        (lambda: library.polynomial(["x"], 1.5), "degree must be an integer"),
        (lambda: library.fourier(["x"], 0), "n must be an integer >= 1"),
        (lambda: library.polynomial(["lambda"], 1), "reserved"),
        (lambda: library.custom(["x*(y"]), "does not parse"),
        (lambda: library.custom(["x", "x"]), "appears twice"),
        (lambda: library.custom(["0*x"], variables=["x"]), "is zero"),
        (lambda: library.custom(["__import__('os')"]), "not allowed|unknown|reserved"),
    ],
)
def test_bad_libraries_are_refused_with_a_clear_message(make, match):
    with pytest.raises(ub.InputError, match=match):
        make()


def test_evaluate_checks_shapes_and_names():
    lib = library.polynomial(["x", "y"], 2)
    with pytest.raises(ub.InputError, match=r"shape \(N, 2\)"):
        lib.evaluate(np.ones((4, 3)))
    with pytest.raises(ub.InputError, match="'y' is missing"):
        lib.evaluate({"x": np.ones(3)})
