"""Equation strings -> sympy, against a symbol table, with nothing else reachable.

A string is first checked against a whitelist of Python syntax (`ast`): numbers, declared
names, ``+ - * / ** ^``, unary signs and calls of the math functions in `FUNCTIONS`.
Attribute access, subscripts, keywords, strings, lambdas, comprehensions and any name not
declared are refused with the string and the position. Only then is it handed to sympy's
``parse_expr`` with a global namespace that holds no builtins and a local namespace that
holds only the declared symbols and the whitelisted functions, so nothing a user writes
can reach Python beyond building a sympy expression.

sympy expressions given directly are checked the same way: every free symbol must be
declared (it is matched by name and replaced by the declared symbol) and every function
must be one that the code generators can print.
"""

from __future__ import annotations

import ast
import keyword
import math
from collections.abc import Mapping
from typing import Any

import sympy
from sympy.parsing.sympy_parser import auto_number, convert_xor, parse_expr

from .._checks import did_you_mean
from ..errors import InputError, UnknownSymbolError

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "RESERVED_NAMES",
    "SUPPORTED_NODES",
    "check_expression",
    "check_name",
    "parse_expression",
]


def _sigmoid(x: Any) -> sympy.Expr:
    return 1 / (1 + sympy.exp(-x))


def _softplus(x: Any) -> sympy.Expr:
    return sympy.log(1 + sympy.exp(x))


def _relu(x: Any) -> sympy.Expr:
    return sympy.Max(x, 0)


#: Functions an equation string may call, by the name it uses.
FUNCTIONS: dict[str, Any] = {
    "exp": sympy.exp,
    "log": sympy.log,
    "ln": sympy.log,
    "sqrt": sympy.sqrt,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "asin": sympy.asin,
    "acos": sympy.acos,
    "atan": sympy.atan,
    "atan2": sympy.atan2,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "tanh": sympy.tanh,
    "asinh": sympy.asinh,
    "acosh": sympy.acosh,
    "atanh": sympy.atanh,
    "abs": sympy.Abs,
    "Abs": sympy.Abs,
    "sign": sympy.sign,
    "pow": sympy.Pow,
    "min": sympy.Min,
    "max": sympy.Max,
    "Min": sympy.Min,
    "Max": sympy.Max,
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "relu": _relu,
}

#: Named constants an equation string may use.
CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E}

#: Names a state, parameter, input or network output may not take.
RESERVED_NAMES: frozenset[str] = frozenset(FUNCTIONS) | frozenset(CONSTANTS)

#: sympy node types the code generators print (everything else is refused).
SUPPORTED_NODES: tuple[type, ...] = (
    sympy.Add,
    sympy.Mul,
    sympy.Pow,
    sympy.exp,
    sympy.log,
    sympy.sin,
    sympy.cos,
    sympy.tan,
    sympy.asin,
    sympy.acos,
    sympy.atan,
    sympy.atan2,
    sympy.sinh,
    sympy.cosh,
    sympy.tanh,
    sympy.asinh,
    sympy.acosh,
    sympy.atanh,
    sympy.Abs,
    sympy.sign,
    sympy.Max,
    sympy.Min,
)

_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.BitXor)
_UNARYOPS = (ast.UAdd, ast.USub)
_ALLOWED_TEXT = (
    "only numbers, declared symbols, + - * / ** ^, parentheses and the functions "
    + ", ".join(sorted(FUNCTIONS, key=str.lower))
    + " are allowed"
)


def check_name(name: Any, *, where: str, what: str) -> str:
    """Return ``name`` if it can name a symbol, else raise `InputError`.

    A name must be a Python identifier, not a keyword, not start with ``_`` and not be
    one of `RESERVED_NAMES`.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise InputError(
            f"{where}: a {what} name must be an identifier such as 'x' or 'alpha'; "
            f"got {name!r}. Rename it."
        )
    if keyword.iskeyword(name) or name.startswith("_") or name in RESERVED_NAMES:
        raise InputError(
            f"{where}: {what} name {name!r} is reserved (a Python keyword, a leading "
            f"underscore, or a function/constant name). Rename it, e.g. to {name.strip('_')}_."
        )
    return name


def _caret(text: str, col: int) -> str:
    col = max(0, min(col, len(text)))
    return f"\n    {text}\n    {' ' * col}^"


def _refuse(text: str, node: ast.AST, what: str, where: str) -> InputError:
    col = getattr(node, "col_offset", 0)
    return InputError(
        f"{where}: {what} at position {col} of {text!r} is not allowed; {_ALLOWED_TEXT}."
        f"{_caret(text, col)}"
    )


def _validate_ast(text: str, tree: ast.AST, symbols: Mapping[str, Any], where: str) -> None:
    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Expression):
            visit(node.body)
        elif isinstance(node, ast.BinOp):
            if not isinstance(node.op, _BINOPS):
                raise _refuse(text, node, f"operator {type(node.op).__name__}", where)
            visit(node.left)
            visit(node.right)
        elif isinstance(node, ast.UnaryOp):
            if not isinstance(node.op, _UNARYOPS):
                raise _refuse(text, node, f"operator {type(node.op).__name__}", where)
            visit(node.operand)
        elif isinstance(node, ast.Constant):
            if type(node.value) not in (int, float):
                raise _refuse(text, node, f"the literal {node.value!r}", where)
        elif isinstance(node, ast.Name):
            if node.id in symbols or node.id in CONSTANTS:
                return
            if node.id in FUNCTIONS:
                raise _refuse(text, node, f"the function name {node.id!r} without a call", where)
            raise UnknownSymbolError(
                f"{where}: uses unknown symbol {node.id!r} in {text!r}."
                + did_you_mean(node.id, list(symbols), what="symbol")
                + " Declare it (as a state, parameter, input or network output) or fix the "
                "spelling."
            )
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                raise _refuse(text, func, "attribute access", where)
            if not isinstance(func, ast.Name) or func.id not in FUNCTIONS:
                name = func.id if isinstance(func, ast.Name) else type(func).__name__
                raise _refuse(text, node, f"calling {name!r}", where)
            if node.keywords:
                raise _refuse(text, node, "a keyword argument", where)
            for arg in node.args:
                if isinstance(arg, ast.Starred):
                    raise _refuse(text, arg, "a starred argument", where)
                visit(arg)
        elif isinstance(node, ast.Attribute):
            raise _refuse(text, node, "attribute access", where)
        else:
            raise _refuse(text, node, f"the construct {type(node).__name__}", where)

    visit(tree)


def check_expression(
    expr: sympy.Expr, symbols: Mapping[str, sympy.Symbol], *, where: str
) -> sympy.Expr:
    """Check a sympy expression against the symbol table and the printable node types.

    Free symbols are matched by name and replaced by the declared symbols (so ``Symbol("x",
    real=True)`` becomes the declared ``x``).

    Raises:
        UnknownSymbolError: a free symbol that is not declared.
        InputError: a function or node the code generators cannot print, or a non-finite
            number.
    """
    subs = {}
    for s in sorted(expr.free_symbols, key=str):
        name = str(s)
        if name not in symbols:
            raise UnknownSymbolError(
                f"{where}: uses unknown symbol {name!r} in {expr}."
                + did_you_mean(name, list(symbols), what="symbol")
                + " Declare it (as a state, parameter, input or network output) or fix the "
                "spelling."
            )
        if symbols[name] is not s:
            subs[s] = symbols[name]
    expr = expr.xreplace(subs) if subs else expr
    for node in sympy.preorder_traversal(expr):
        if node.is_Symbol:
            continue
        if node.is_Number or isinstance(node, sympy.NumberSymbol):
            if node.is_Number and not (node.is_finite and math.isfinite(float(node))):
                raise InputError(
                    f"{where}: constants must be finite; found {float(node)} in {expr}."
                )
            if node.is_Number and not node.is_real:
                raise InputError(f"{where}: constants must be real; found {node} in {expr}.")
            continue
        if node is sympy.I or (node.is_Atom and not node.is_Symbol):
            raise InputError(f"{where}: constants must be real and finite; found {node} in {expr}.")
        if not isinstance(node, SUPPORTED_NODES):
            name = getattr(node.func, "__name__", type(node).__name__)
            raise InputError(
                f"{where}: the function {name!r} in {expr} cannot be turned into code; "
                f"{_ALLOWED_TEXT}. Rewrite it with those."
            )
    return expr


def parse_expression(
    text: str | sympy.Expr | float | int,
    symbols: Mapping[str, sympy.Symbol],
    *,
    where: str,
) -> sympy.Expr:
    """Parse an equation (a string, a sympy expression or a number) against ``symbols``.

    Args:
        text: e.g. ``"alpha*x - beta*x*y"``; ``^`` means power, like ``**``.
        symbols: every name the expression may use, mapped to its sympy symbol.
        where: the message prefix naming what is being parsed, e.g.
            ``"UDE: equation for 'x'"``.

    Returns:
        The sympy expression, using the symbols of ``symbols``.

    Raises:
        InputError: a string that does not parse (with the position), a construct outside
            the whitelist, a bad number of function arguments, an unsupported function.
        UnknownSymbolError: a name that is neither declared nor a whitelisted function.
    """
    if isinstance(text, bool) or not isinstance(text, (str, sympy.Basic, int, float)):
        raise InputError(
            f"{where}: expected a string, a sympy expression or a number; got "
            f"{type(text).__name__} {text!r}."
        )
    if not isinstance(text, str):
        return check_expression(sympy.sympify(text), symbols, where=where)
    source = text.strip()
    if not source:
        raise InputError(f"{where}: the equation is empty. Write it, e.g. 'alpha*x - beta*x*y'.")
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        # offset is 1-based; 0 or None means "at the end of the input"
        col = exc.offset - 1 if exc.offset else len(source)
        raise InputError(
            f"{where}: {text!r} does not parse at position {col} ({exc.msg}). Write it in "
            f"Python/sympy syntax, e.g. 'alpha*x - beta*x*y'.{_caret(source, col)}"
        ) from None
    _validate_ast(source, tree, symbols, where)
    local_dict: dict[str, Any] = dict(FUNCTIONS)
    local_dict.update(CONSTANTS)
    local_dict.update(symbols)
    # Only what auto_number's output refers to; no builtins at all.
    global_dict: dict[str, Any] = {
        "__builtins__": {},
        "Integer": sympy.Integer,
        "Float": sympy.Float,
        "Rational": sympy.Rational,
    }
    try:
        expr = parse_expr(
            source,
            local_dict=local_dict,
            global_dict=global_dict,
            transformations=(auto_number, convert_xor),
        )
    except (TypeError, ValueError, ArithmeticError, SyntaxError) as exc:
        raise InputError(
            f"{where}: {text!r} could not be turned into an expression ({exc}). Check the "
            "number of arguments of each function."
        ) from None
    if not isinstance(expr, sympy.Expr):
        raise InputError(f"{where}: {text!r} is not an expression; got {type(expr).__name__}.")
    return check_expression(expr, symbols, where=where)
