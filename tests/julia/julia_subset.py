"""Parse Julia with tree-sitter-julia; evaluate the small subset that to_julia emits.

No Julia runtime can be installed where these tests run, so generated code is checked two
ways: it must parse with no syntax errors under the tree-sitter Julia grammar, and the
functions it defines are *evaluated* by the tiny interpreter below, then compared with
the model's reference semantics (numpy). The interpreter follows Julia's rules for what it
supports (1-based, bounds-checked indexing; ``^`` binds tighter than unary minus; ``/``
is float division; closures, ``ntuple``/``do`` blocks, ``for``, ``if``, ternaries, short
and long function definitions) and raises on anything else, so code outside the subset
fails loudly instead of being misread.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tree_sitter as ts
import tree_sitter_julia as tsj

_PARSER = ts.Parser(ts.Language(tsj.language()))


def parse(source: str) -> ts.Tree:
    """The tree-sitter parse tree of ``source``."""
    return _PARSER.parse(source.encode())


def syntax_errors(source: str) -> list[str]:
    """``"line:col: text"`` for every ERROR or missing node (empty when the code parses)."""
    out: list[str] = []

    def walk(node: ts.Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            out.append(f"{row + 1}:{col + 1}: {node.text.decode(errors='replace')[:60]!r}")
        for child in node.children:
            walk(child)

    walk(parse(source).root_node)
    return out


class JuliaSubsetError(RuntimeError):
    """Code outside the supported subset, or a Julia run-time error (bounds, undefined)."""


class Array1:
    """A Julia vector view of a numpy array: 1-based, bounds-checked."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def _check(self, i: Any) -> int:
        if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
            raise JuliaSubsetError(f"index must be an integer; got {i!r}")
        if not 1 <= i <= len(self.data):
            raise JuliaSubsetError(f"BoundsError: index {i} of a {len(self.data)}-element array")
        return int(i) - 1

    def __getitem__(self, i: Any) -> Any:
        return self.data[self._check(i)]

    def __setitem__(self, i: Any, v: Any) -> None:
        self.data[self._check(i)] = v

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class Val:
    n: int


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


def _ntuple(f: Any, n: Any) -> tuple:
    if not isinstance(n, Val):
        raise JuliaSubsetError("ntuple: the length must be a Val here")
    return tuple(f(i) for i in range(1, n.n + 1))


def _searchsortedlast(a: Array1, x: float) -> int:
    return int(np.searchsorted(np.asarray(a.data), x, side="right"))


def _length(x: Any) -> int:
    return len(x)


def _erf(x: float) -> float:
    return math.erf(x)


_BUILTINS: dict[str, Any] = {
    "tanh": math.tanh,
    "exp": math.exp,
    "log": math.log,
    "log1p": math.log1p,
    "expm1": math.expm1,
    "sqrt": math.sqrt,
    "abs": abs,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": lambda y, x=None: math.atan(y) if x is None else math.atan2(y, x),
    "sinh": math.sinh,
    "cosh": math.cosh,
    "floor": math.floor,
    "ceil": math.ceil,
    "sign": lambda x: float(np.sign(x)),
    "max": max,
    "min": min,
    "inv": lambda x: 1.0 / x,
    "zero": lambda x: 0.0,
    "one": lambda x: 1.0,
    "identity": lambda x: x,
    "ifelse": lambda c, a, b: a if c else b,
    "convert": lambda T, x: float(x),
    "promote": lambda *xs: tuple(float(x) for x in xs),
    "promote_type": lambda *ts_: float,
    "eltype": lambda x: float,
    "length": _length,
    "ntuple": _ntuple,
    "Val": Val,
    "SVector": lambda t: tuple(t),
    "searchsortedlast": _searchsortedlast,
    "nothing": None,
    "pi": math.pi,
    "Inf": math.inf,
    "NaN": math.nan,
    "true": True,
    "false": False,
}

_MODULES: dict[str, Any] = {
    "Base.MathConstants.e": math.e,
    "SpecialFunctions.erf": _erf,
    "SpecialFunctions.erfc": math.erfc,
    "SpecialFunctions.gamma": math.gamma,
    "SpecialFunctions.loggamma": math.lgamma,
}


def _binary(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return float(a) / float(b)
    if op == "^":
        if isinstance(a, float) and a < 0 and not float(b).is_integer():
            raise JuliaSubsetError("DomainError: negative base to a non-integer power")
        return float(a) ** b
    if op == "//":
        return float(a) / float(b)
    if op in ("<", ">", "<=", ">=", "==", "!="):
        return {
            "<": a < b,
            ">": a > b,
            "<=": a <= b,
            ">=": a >= b,
            "==": a == b,
            "!=": a != b,
        }[op]
    raise JuliaSubsetError(f"unsupported operator {op!r}")


_MISSING = object()


class Env:
    """A scope: local variables and the enclosing scope (lexical, as Julia's closures)."""

    __slots__ = ("parent", "vars")

    def __init__(self, parent: Env | None = None) -> None:
        self.vars: dict[str, Any] = {}
        self.parent = parent

    def lookup(self, name: str) -> Any:
        env: Env | None = self
        while env is not None:
            value = env.vars.get(name, _MISSING)
            if value is not _MISSING:
                return value
            env = env.parent
        value = _BUILTINS.get(name, _MISSING)
        if value is _MISSING:
            raise JuliaSubsetError(f"UndefVarError: {name}")
        return value


Code = Callable[[Env], Any]


@dataclass
class Function:
    name: str
    params: list[tuple[str, str]]  # (kind, name): kind "plain" or "val" (for ::Val{N})
    body: list[Code]
    closure: Env

    def __call__(self, *args: Any) -> Any:
        if len(args) != len(self.params):
            raise JuliaSubsetError(
                f"{self.name}: expected {len(self.params)} arguments, got {len(args)}"
            )
        env = Env(self.closure)
        for (kind, name), arg in zip(self.params, args, strict=True):
            if kind == "val":
                if not isinstance(arg, Val):
                    raise JuliaSubsetError(f"{self.name}: argument {name} must be a Val")
                env.vars[name] = arg.n
            else:
                env.vars[name] = arg
        try:
            result = None
            for stmt in self.body:
                result = stmt(env)
            return result
        except _Return as r:
            return r.value


class Interpreter:
    """Compile a Julia source file of the supported subset, run its top level, and expose
    its globals (``interp["rhs!"]``). Each syntax node is compiled once into a Python
    closure, so calling the defined functions is fast enough to integrate ODEs with."""

    def __init__(self, source: str) -> None:
        tree = parse(source)
        if tree.root_node.has_error:
            raise JuliaSubsetError(f"syntax errors: {syntax_errors(source)}")
        self.env = Env()
        for node in tree.root_node.named_children:
            self.compile(node)(self.env)

    def __getitem__(self, name: str) -> Any:
        return self.env.vars[name]

    def compile(self, node: ts.Node) -> Code:
        method = getattr(self, "_" + node.type, None)
        if method is None:
            raise JuliaSubsetError(f"unsupported syntax {node.type}: {node.text.decode()[:60]!r}")
        return method(node)

    def _block(self, nodes: list[ts.Node]) -> Code:
        codes = [self.compile(n) for n in nodes]

        def run(env: Env) -> Any:
            result = None
            for code in codes:
                result = code(env)
            return result

        return run

    # -------------------------------------------------------------------- statements

    def _comment(self, node: ts.Node) -> Code:
        return lambda env: None

    _line_comment = _comment
    _block_comment = _comment
    _import_statement = _comment
    _using_statement = _comment

    def _const_statement(self, node: ts.Node) -> Code:
        return self.compile(node.named_children[0])

    def _macrocall_expression(self, node: ts.Node) -> Code:
        name = node.named_children[0].text.decode()
        if name not in ("@inline", "@inbounds"):
            raise JuliaSubsetError(f"unsupported macro {name}")
        args = [c for c in node.named_children[1:] if c.type == "macro_argument_list"]
        return self._block(list(args[0].named_children))

    def _params(self, call: ts.Node) -> tuple[str, list[tuple[str, str]]]:
        name = call.named_children[0].text.decode()
        params: list[tuple[str, str]] = []
        for arg in call.named_children[1].named_children:
            if arg.type == "identifier":
                params.append(("plain", arg.text.decode()))
            elif arg.type == "typed_expression":
                params.append(("plain", arg.named_children[0].text.decode()))
            elif arg.type == "unary_typed_expression":
                ptype = arg.named_children[-1]
                if ptype.type != "parametrized_type_expression" or (
                    ptype.named_children[0].text.decode() != "Val"
                ):
                    raise JuliaSubsetError(f"unsupported parameter {arg.text.decode()!r}")
                params.append(("val", ptype.named_children[1].named_children[0].text.decode()))
            else:
                raise JuliaSubsetError(f"unsupported parameter {arg.text.decode()!r}")
        return name, params

    def _define(self, name: str, params: list, body: list[Code]) -> Code:
        def define(env: Env) -> Function:
            fn = Function(name, params, body, env)
            env.vars[name] = fn
            return fn

        return define

    def _function_definition(self, node: ts.Node) -> Code:
        call = node.named_children[0].named_children[0]
        if call.type == "where_expression":
            call = call.named_children[0]
        name, params = self._params(call)
        return self._define(name, params, [self.compile(c) for c in node.named_children[1:]])

    def _assignment(self, node: ts.Node) -> Code:
        lhs, op, rhs = node.children[0], node.children[1].text.decode(), node.children[2]
        if op != "=":
            raise JuliaSubsetError(f"unsupported assignment {op}")
        if lhs.type == "call_expression":  # short function definition f(x) = expr
            name, params = self._params(lhs)
            return self._define(name, params, [self.compile(rhs)])
        value = self.compile(rhs)
        store = self._store(lhs)

        def assign(env: Env) -> Any:
            v = value(env)
            store(env, v)
            return v

        return assign

    def _store(self, lhs: ts.Node) -> Callable[[Env, Any], None]:
        if lhs.type == "identifier":
            name = lhs.text.decode()

            def store_name(env: Env, v: Any) -> None:
                env.vars[name] = v

            return store_name
        if lhs.type == "index_expression":
            target = self.compile(lhs.named_children[0])
            index = self._index(lhs)

            def store_index(env: Env, v: Any) -> None:
                target(env)[index(env)] = v

            return store_index
        raise JuliaSubsetError(f"unsupported assignment target {lhs.type}")

    def _compound_assignment_expression(self, node: ts.Node) -> Code:
        lhs, op, rhs = node.children[0], node.children[1].text.decode()[:-1], node.children[2]
        current, value, store = self.compile(lhs), self.compile(rhs), self._store(lhs)

        def update(env: Env) -> Any:
            v = _binary(op, current(env), value(env))
            store(env, v)
            return v

        return update

    def _return_statement(self, node: ts.Node) -> Code:
        kids = node.named_children
        value = self.compile(kids[0]) if kids else (lambda env: None)

        def ret(env: Env) -> Any:
            raise _Return(value(env))

        return ret

    def _for_statement(self, node: ts.Node) -> Code:
        binding = node.named_children[0]
        var = binding.named_children[0].text.decode()
        rng = self.compile(binding.named_children[-1])
        body = self._block(list(node.named_children[1:]))

        def loop(env: Env) -> None:
            for value in rng(env):
                env.vars[var] = value
                body(env)

        return loop

    def _if_statement(self, node: ts.Node) -> Code:
        kids = node.named_children
        branches = [
            (self.compile(kids[0]),
             self._block([k for k in kids[1:] if k.type not in ("elseif_clause", "else_clause")]))
        ]  # fmt: skip
        otherwise: Code = lambda env: None  # noqa: E731
        for clause in kids[1:]:
            if clause.type == "elseif_clause":
                branches.append(
                    (self.compile(clause.named_children[0]),
                     self._block(list(clause.named_children[1:])))
                )  # fmt: skip
            elif clause.type == "else_clause":
                otherwise = self._block(list(clause.named_children))

        def choose(env: Env) -> Any:
            for cond, body in branches:
                if cond(env):
                    return body(env)
            return otherwise(env)

        return choose

    # -------------------------------------------------------------------- expressions

    def _identifier(self, node: ts.Node) -> Code:
        name = node.text.decode()
        return lambda env: env.lookup(name)

    def _boolean_literal(self, node: ts.Node) -> Code:
        value = node.text.decode() == "true"
        return lambda env: value

    def _integer_literal(self, node: ts.Node) -> Code:
        value = int(node.text.decode().replace("_", ""))
        return lambda env: value

    def _float_literal(self, node: ts.Node) -> Code:
        value = float(node.text.decode().replace("_", ""))
        return lambda env: value

    def _string_literal(self, node: ts.Node) -> Code:
        value = node.text.decode()[1:-1]
        return lambda env: value

    def _parenthesized_expression(self, node: ts.Node) -> Code:
        return self.compile(node.named_children[0])

    def _tuple_expression(self, node: ts.Node) -> Code:
        items = [self.compile(c) for c in node.named_children]
        return lambda env: tuple(item(env) for item in items)

    def _vector_expression(self, node: ts.Node) -> Code:
        items = [self.compile(c) for c in node.named_children]
        return lambda env: Array1(np.array([item(env) for item in items], dtype=float))

    def _range_expression(self, node: ts.Node) -> Code:
        a, b = (self.compile(c) for c in node.named_children)
        return lambda env: range(int(a(env)), int(b(env)) + 1)

    def _field_expression(self, node: ts.Node) -> Code:
        name = node.text.decode()
        if name not in _MODULES:
            raise JuliaSubsetError(f"unsupported qualified name {name}")
        value = _MODULES[name]
        return lambda env: value

    def _operator(self, node: ts.Node) -> Code:
        # an operator used as a function, as in -(x * x)
        op = node.text.decode()
        if op == "-":
            fn = lambda a, b=None: -a if b is None else a - b  # noqa: E731
        elif op in ("+", "*", "/", "^"):
            fn = lambda a, b: _binary(op, a, b)  # noqa: E731
        else:
            raise JuliaSubsetError(f"unsupported operator call {op}")
        return lambda env: fn

    def _unary_expression(self, node: ts.Node) -> Code:
        op = node.children[0].text.decode()
        value = self.compile(node.children[1])
        if op == "-":
            return lambda env: -value(env)
        if op == "+":
            return value
        if op == "!":
            return lambda env: not value(env)
        raise JuliaSubsetError(f"unsupported unary operator {op}")

    def _binary_expression(self, node: ts.Node) -> Code:
        op = node.children[1].text.decode()
        left, right = self.compile(node.children[0]), self.compile(node.children[2])
        if op == "&&":
            return lambda env: left(env) and right(env)
        if op == "||":
            return lambda env: left(env) or right(env)
        return lambda env: _binary(op, left(env), right(env))

    def _ternary_expression(self, node: ts.Node) -> Code:
        cond, a, b = (self.compile(c) for c in node.named_children)
        return lambda env: a(env) if cond(env) else b(env)

    def _index(self, node: ts.Node) -> Code:
        idx = node.named_children[1]
        if idx.type != "vector_expression" or len(idx.named_children) != 1:
            raise JuliaSubsetError(f"unsupported indexing {node.text.decode()!r}")
        return self.compile(idx.named_children[0])

    def _index_expression(self, node: ts.Node) -> Code:
        target, index = self.compile(node.named_children[0]), self._index(node)

        def get(env: Env) -> Any:
            obj, i = target(env), index(env)
            if isinstance(obj, tuple):
                if not isinstance(i, int) or not 1 <= i <= len(obj):
                    raise JuliaSubsetError(f"BoundsError: index {i} of a {len(obj)}-tuple")
                return obj[i - 1]
            return obj[i]

        return get

    def _call_expression(self, node: ts.Node) -> Code:
        fn = self.compile(node.named_children[0])
        args = [self.compile(a) for a in node.named_children[1].named_children]
        do = [c for c in node.named_children[2:] if c.type == "do_clause"]
        if not do:
            return lambda env: fn(env)(*[a(env) for a in args])
        clause = do[0]
        names = [("plain", c.text.decode()) for c in clause.named_children[0].named_children]
        body = [self.compile(c) for c in clause.named_children[1:]]

        def call_with_do(env: Env) -> Any:
            return fn(env)(Function("do", names, body, env), *[a(env) for a in args])

        return call_with_do
