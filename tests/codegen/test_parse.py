"""Equation strings are parsed against a whitelist; user text never runs as Python."""

from __future__ import annotations

import pytest
import sympy

from ude_bridge.codegen.parse import check_name, parse_expression
from ude_bridge.errors import InputError, UnknownSymbolError

SYMBOLS = {n: sympy.Symbol(n) for n in ("x", "y", "alpha", "beta", "U1", "t")}
x, y, alpha, beta, U1, t = SYMBOLS.values()


def parse(text):
    return parse_expression(text, SYMBOLS, where="UDE: equation for 'x'")


def test_strings_parse_to_the_declared_symbols():
    assert parse("alpha*x - beta*x*y + U1") == alpha * x - beta * x * y + U1
    assert parse("x^2 + sin(t)") == x**2 + sympy.sin(t)
    assert parse("1/2*x") == sympy.Rational(1, 2) * x
    assert parse("abs(x) + max(x, 0) + pow(y, 3)") == sympy.Abs(x) + sympy.Max(x, 0) + y**3


def test_sigmoid_and_softplus_expand_to_elementary_functions():
    assert parse("sigmoid(x)") == 1 / (1 + sympy.exp(-x))
    assert parse("softplus(x)") == sympy.log(1 + sympy.exp(x))


def test_sympy_input_is_matched_to_declared_symbols_by_name():
    expr = parse(sympy.Symbol("x", real=True) * 2)
    assert expr.free_symbols == {x}


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('x')",
        "x.__class__",
        "(1).__class__.__bases__",
        "[x][0]",
        "lambda: 1",
        "'abc'",
        "x if y else 1",
        "x == 1",
        "eval('1')",
        "open('f')",
        "{x: 1}",
        "x[0]",
        "exp(x=1)",
        "(x := 1)",
    ],
)
def test_python_beyond_math_is_refused(text):
    with pytest.raises(InputError):
        parse(text)


def test_import_injection_is_refused_before_anything_runs(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="attribute access"):
        parse(f"__import__('os').system('touch {marker}')")
    assert not marker.exists()


def test_unknown_symbol_is_named_with_the_nearest_declared_name():
    with pytest.raises(UnknownSymbolError, match="'alpah'.*Did you mean 'alpha'"):
        parse("alpah*x")


def test_unknown_symbol_in_a_sympy_expression_is_named():
    with pytest.raises(UnknownSymbolError, match="'gamma'"):
        parse(sympy.Symbol("gamma") * x)


def test_syntax_error_shows_the_string_and_the_position():
    with pytest.raises(InputError, match=r"'alpha\*x \+' does not parse at position 9") as e:
        parse("alpha*x +")
    assert "^" in str(e.value)


def test_wrong_number_of_function_arguments_is_an_input_error():
    with pytest.raises(InputError, match="pow"):
        parse("pow(x)")


def test_unsupported_sympy_functions_are_refused():
    with pytest.raises(InputError, match="Piecewise"):
        parse(sympy.Piecewise((1, x > 0), (0, True)))
    with pytest.raises(InputError, match="'f'"):
        parse(sympy.Function("f")(x))


def test_non_finite_constants_are_refused():
    with pytest.raises(InputError, match="finite"):
        parse("1e400*x")
    with pytest.raises(InputError, match="finite"):
        parse(sympy.oo * x)


def test_empty_equation_is_refused():
    with pytest.raises(InputError, match="empty"):
        parse("  ")


@pytest.mark.parametrize("name", ["lambda", "exp", "_x", "2x", "a b", "pi"])
def test_reserved_or_invalid_names_are_refused(name):
    with pytest.raises(InputError, match="name"):
        check_name(name, where="UDE", what="parameter")
