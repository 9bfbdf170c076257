"""`SymbolicSystem` -> one fused, functional torch right-hand side ``f(t, u, p)``.

The generator writes Python source for a single function from the system (after
``sympy.cse``), compiles it with ``compile`` and runs it with ``exec`` in a namespace that
holds only ``torch``. The text is produced here, from sympy trees through the table below;
no user text is ever executed (strings were parsed by `ude_bridge.codegen.parse`).

The generated function

- takes ``t`` (a number, a 0-dim tensor, or a ``(B, 1)`` / ``(B,)`` tensor), ``u`` of shape
  ``(n,)`` or ``(B, n)`` (any leading dims), and ``p``, the tuple of tensors in the layout of
  `SymbolicSystem` (one 0-dim tensor per physical parameter, then ``W, b`` per layer);
- unpacks ``u`` with one ``unbind``, applies softplus to positive parameters, evaluates each
  network with ``torch.nn.functional.linear`` on its weight tensors (never a Module call),
  evaluates the cse'd equations and returns them with one ``torch.stack(..., dim=-1)``;
- follows the dtype of ``u``: numbers are Python floats and ``t`` is cast to ``u``'s dtype.

Example:
    >>> rhs = torch_rhs(system)                 # doctest: +SKIP
    >>> du = rhs(t, u, p)                       # doctest: +SKIP
    >>> print(rhs.source)                       # the generated code  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import linecache
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import sympy

from ..errors import InputError
from .system import SymbolicSystem

__all__ = ["Part", "torch_rhs", "torch_source"]

#: Which function to generate: the full right-hand side, the known part (every network
#: output set to 0), or the network outputs stacked in ``system.output_symbols`` order.
Part = Literal["full", "known", "outputs"]

_UNARY: dict[type, str] = {
    sympy.exp: "torch.exp",
    sympy.log: "torch.log",
    sympy.sin: "torch.sin",
    sympy.cos: "torch.cos",
    sympy.tan: "torch.tan",
    sympy.asin: "torch.asin",
    sympy.acos: "torch.acos",
    sympy.atan: "torch.atan",
    sympy.sinh: "torch.sinh",
    sympy.cosh: "torch.cosh",
    sympy.tanh: "torch.tanh",
    sympy.asinh: "torch.asinh",
    sympy.acosh: "torch.acosh",
    sympy.atanh: "torch.atanh",
    sympy.Abs: "torch.abs",
    sympy.sign: "torch.sign",
}

#: Special exponents printed as one dedicated op.
_POW: dict[float, str] = {
    2.0: "torch.square",
    0.5: "torch.sqrt",
    -0.5: "torch.rsqrt",
    -1.0: "torch.reciprocal",
}

_ACTIVATION: dict[str, str] = {
    "tanh": "torch.tanh({})",
    "relu": "torch.relu({})",
    "gelu": "_F.gelu({})",
    "softplus": "_F.softplus({})",
    "sigmoid": "torch.sigmoid({})",
    "silu": "_F.silu({})",
    "rbf": "torch.exp(-torch.square({}))",
}


class _Printer:
    """sympy -> Python/torch source, table-driven; names maps symbols to identifiers.

    The tables are class attributes, so a printer for another array library (numpy:
    `ude_bridge.codegen.to_numpy`) overrides them, with ``_minmax`` and ``_atan2``."""

    UNARY: dict[type, str] = _UNARY
    POW: dict[float, str] = _POW
    POWER = "torch.pow({}, {})"
    NAME = "torch"

    def __init__(self, names: Mapping[sympy.Symbol, str]) -> None:
        self.names = names

    @staticmethod
    def _number(e: sympy.Expr) -> str:
        return repr(float(e))

    def operand(self, e: sympy.Expr) -> str:
        """Code for ``e`` safe to use as an operand of ``*``, ``/``, ``**`` and unary ``-``."""
        code = self(e)
        if e.is_Symbol or (isinstance(e, sympy.Function) and not e.is_number):
            return code
        if e.is_number and float(e) >= 0:
            return code
        return f"({code})"

    def __call__(self, e: sympy.Expr) -> str:
        if e.is_Symbol:
            return self.names[e]
        if e.is_number:
            return self._number(e)
        if e.is_Add:
            return self._add(e)
        if e.is_Mul:
            return self._mul(e)
        if e.is_Pow:
            return self._pow(e)
        if e.func in self.UNARY:
            return f"{self.UNARY[e.func]}({self(e.args[0])})"
        if e.func in (sympy.Max, sympy.Min):
            return self._minmax(e)
        if e.func is sympy.atan2:
            return self._atan2(*e.args)
        name = getattr(e.func, "__name__", type(e).__name__)
        raise InputError(
            f"to_{self.NAME}: the function {name!r} in {e} has no {self.NAME} translation. "
            "Rewrite the equation with exp, log, sqrt, trigonometric, hyperbolic, abs, sign, "
            "min and max."
        )

    def _add(self, e: sympy.Expr) -> str:
        const, pos, neg = 0.0, [], []
        for term in e.args:
            if term.is_number:
                const += float(term)
                continue
            coeff, _ = term.as_coeff_Mul()
            (neg if coeff.is_negative else pos).append(-term if coeff.is_negative else term)
        parts = [self(pos[0])] if pos else [f"-{self.operand(neg.pop(0))}"]
        parts += [f"+ {self(x)}" for x in pos[1:]]
        parts += [f"- {self(x)}" for x in neg]
        if const:
            parts.append(f"+ {const!r}" if const > 0 else f"- {-const!r}")
        return " ".join(parts)

    def _mul(self, e: sympy.Expr) -> str:
        coeff, num, den = 1.0, [], []
        for f in e.args:
            if f.is_number:
                coeff *= float(f)
            elif f.is_Pow and f.exp.is_number and f.exp.is_negative:
                den.append(sympy.Pow(f.base, -f.exp))
            else:
                num.append(f)
        negative, coeff = coeff < 0, abs(coeff)
        factors = ([repr(coeff)] if coeff != 1.0 or not num else []) + [
            self.operand(f) for f in num
        ]
        code = "*".join(factors)
        if den:
            den_code = "*".join(self.operand(d) for d in den)
            code += f"/{den_code}" if len(den) == 1 else f"/({den_code})"
        if negative:
            compound = coeff == 1.0 and (len(factors) > 1 or den)
            code = f"-({code})" if compound else f"-{code}"
        return code

    def _pow(self, e: sympy.Expr) -> str:
        base, ex = e.as_base_exp()
        if ex.is_number:
            v = float(ex)
            if v in self.POW:
                return f"{self.POW[v]}({self(base)})"
            exp_code = str(int(v)) if v.is_integer() else repr(v)
            return f"{self.operand(base)}**{exp_code if v >= 0 else f'({exp_code})'}"
        if base.is_number:
            return f"{self.operand(base)}**{self.operand(ex)}"
        return self.POWER.format(self(base), self(ex))

    def _minmax(self, e: sympy.Expr) -> str:
        numbers = [float(a) for a in e.args if a.is_number]
        tensors = [self(a) for a in e.args if not a.is_number]
        is_max = e.func is sympy.Max
        code = tensors[0]
        for other in tensors[1:]:
            code = f"torch.{'maximum' if is_max else 'minimum'}({code}, {other})"
        if numbers:
            bound = max(numbers) if is_max else min(numbers)
            code = f"torch.clamp({code}, {'min' if is_max else 'max'}={bound!r})"
        return code

    def _atan2(self, y: sympy.Expr, x: sympy.Expr) -> str:
        if y.is_number:
            xs = self(x)
            return f"torch.atan2(torch.full_like({xs}, {float(y)!r}), {xs})"
        ys = self(y)
        xs = f"torch.full_like({ys}, {float(x)!r})" if x.is_number else self(x)
        return f"torch.atan2({ys}, {xs})"


def _fold_numbers(e: sympy.Expr) -> sympy.Expr:
    """Replace every symbol-free subexpression (``tanh(2)``, ``pi/3``) by one Float.

    Done before ``cse``, so that no cse temporary is a Python float (torch functions need
    tensors) and constants cost nothing at run time.
    """
    if e.is_number:
        return e if e.is_Number else sympy.Float(float(e))
    if not e.args:
        return e
    return e.func(*(_fold_numbers(a) for a in e.args))


def _ident(prefix: str, i: int, s: sympy.Symbol) -> str:
    name = str(s)
    return f"{prefix}{i}_{name}" if name.isidentifier() else f"{prefix}{i}"


def _slice_of_states(inputs: Sequence[sympy.Expr], states: Sequence[sympy.Symbol]) -> str | None:
    """``"u"`` or ``"u[..., a:b]"`` when the inputs are consecutive states, else None."""
    index = {s: i for i, s in enumerate(states)}
    if not inputs or not all(e in index for e in inputs):
        return None
    idx = [index[e] for e in inputs]
    if idx != list(range(idx[0], idx[0] + len(idx))):
        return None
    return "u" if len(idx) == len(states) else f"u[..., {idx[0]}:{idx[-1] + 1}]"


def torch_source(system: SymbolicSystem, *, part: Part = "full") -> tuple[str, list[np.ndarray]]:
    """Generate the Python source of the fused function for ``system``.

    Args:
        system: the model.
        part: ``"full"``, ``"known"`` or ``"outputs"`` (see `Part`).

    Returns:
        ``(source, constants)``: the source defines ``_build(_inputs, _modules, _consts)``
        returning ``rhs(t, u, p)``; ``constants`` are the float64 arrays ``_build`` expects
        (network input shifts and inverse scales).

    Raises:
        InputError: an expression with no torch translation.
    """
    states, outputs = system.states, system.output_symbols
    names: dict[sympy.Symbol, str] = {system.time: "t"}
    names.update({s: _ident("s", i, s) for i, s in enumerate(states)})
    names.update({s: _ident("p", i, s) for i, s in enumerate(system.params)})
    names.update({s: _ident("i", i, s) for i, s in enumerate(system.inputs)})
    names.update({s: _ident("o", i, s) for i, s in enumerate(outputs)})

    scale = {
        o: float(net.output_scale[k])
        for net in system.networks
        for k, o in enumerate(net.outputs)
        if net.kind == "mlp" and float(net.output_scale[k]) != 1.0
    }
    if part == "outputs":
        targets = list(outputs)
    elif part == "known":
        targets = [e.xreplace(dict.fromkeys(outputs, sympy.Integer(0))) for e in system.equations]
    else:
        targets = list(system.equations)
    targets = [_fold_numbers(e.xreplace({o: s * o for o, s in scale.items()})) for e in targets]

    used = set().union(*(e.free_symbols for e in targets)) if targets else set()
    nets = [net for net in system.networks if used & set(net.outputs)]
    direct = {id(net): _slice_of_states(net.inputs, states) for net in nets}
    pool_inputs = [_fold_numbers(e) for net in nets if direct[id(net)] is None for e in net.inputs]
    reps, reduced = sympy.cse(
        pool_inputs + targets, symbols=sympy.numbered_symbols("_e", cls=sympy.Dummy)
    )
    reduced_inputs, reduced_targets = reduced[: len(pool_inputs)], reduced[len(pool_inputs) :]
    for k, (sym, _) in enumerate(reps):
        names[sym] = f"_e{k}"
    pr = _Printer(names)

    full = set(states)
    full |= {o for net in nets for o in net.outputs if set(net.inputs) & set(states)}
    late = set(outputs)
    for sym, expr in reps:
        if expr.free_symbols & full:
            full.add(sym)
        if expr.free_symbols & late:
            late.add(sym)
    needed = set().union(*(e.free_symbols for e in reduced), *(e.free_symbols for _, e in reps))
    needs_zero = any(not (e.free_symbols & full) for e in reduced)

    body: list[str] = []
    emit = body.append
    unpack = [names[s] if s in needed else "_" for s in system.params]
    for j, net in enumerate(system.networks):
        unpack += [f"_n{j}_{a}" for a in range(len(net.arrays()))]
    if unpack:
        emit(f"{', '.join(unpack)}{',' if len(unpack) == 1 else ''} = p")
    for s in system.params:
        if s in needed and str(s) in system.positive:
            emit(f"{names[s]} = _F.softplus({names[s]})")
    if set(states) & needed:
        emit(f"{', '.join(names[s] if s in needed else '_' for s in states)}, = u.unbind(-1)")
    if system.time in needed or set(system.inputs) & needed:
        emit("if not isinstance(t, torch.Tensor):")
        emit("    t = torch.as_tensor(t, dtype=u.dtype, device=u.device)")
        emit("elif t.dim() == u.dim():")
        emit("    t = t.squeeze(-1)  # (B, 1) -> (B,), to broadcast against a state")
        emit("if t.dtype != u.dtype:")
        emit("    t = t.to(u.dtype)")
    for i, s in enumerate(system.inputs):
        if s in needed:
            emit(f"{names[s]} = _inputs[{i}](t)")
    if needs_zero:
        emit("_z = u.new_zeros(u.shape[:-1])  # gives batch shape to state-free terms")

    def value(e: sympy.Expr) -> str:
        if e.free_symbols & full:
            return pr(e)
        return "_z" if e == 0 else f"_z + {pr.operand(e)}"

    for sym, expr in reps:
        if sym not in late:
            emit(f"{names[sym]} = {pr(expr)}")

    constants: list[np.ndarray] = []
    if any(
        net.kind == "mlp" and (np.any(net.input_shift != 0) or np.any(net.input_scale != 1))
        for net in nets
    ):
        emit("_c = _cache.get((u.dtype, u.device))")
        emit("if _c is None:")
        emit("    _c = _cache[(u.dtype, u.device)] = tuple(")
        emit("        torch.as_tensor(a, dtype=u.dtype, device=u.device) for a in _consts)")
    position = 0
    for j, net in enumerate(system.networks):
        if net not in nets:
            continue
        k_in = len(net.inputs)
        x = direct[id(net)]
        if x is None:
            xs = reduced_inputs[position : position + k_in]
            position += k_in
            x = f"torch.stack([{', '.join(value(e) for e in xs)}], dim=-1)"
        emit(f"# network {net.name}: {net.kind}")
        emit(f"_h = {x}")
        weights = [f"_n{j}_{a}" for a in range(len(net.arrays()))]
        if net.kind == "module":
            emit(f"_h = _modules[{j}](_h, ({', '.join(weights)},))")
        else:
            if np.any(net.input_shift != 0):
                emit(f"_h = _h - _c[{len(constants)}]")
                constants.append(np.array(net.input_shift))
            if np.any(net.input_scale != 1):
                emit(f"_h = _h * _c[{len(constants)}]")
                constants.append(1.0 / np.array(net.input_scale))
            # one state vector: addmv (one autograd node per layer, where linear on a
            # vector records unsqueeze, addmm, t and view); a batch: linear (addmm)
            n_layers = len(net.weights)
            for branch, form in (
                ("if _h.dim() == 1:", "torch.addmv({b}, {w}, _h)"),
                ("else:", "_F.linear(_h, {w}, {b})"),
            ):
                emit(branch)
                for layer in range(n_layers):
                    lin = form.format(w=weights[2 * layer], b=weights[2 * layer + 1])
                    last = layer == n_layers - 1
                    emit(f"    _h = {lin if last else _ACTIVATION[net.activation].format(lin)}")
        outs = ", ".join(names[o] if o in needed else "_" for o in net.outputs)
        emit(f"{outs}, = _h.unbind(-1)")
    for sym, expr in reps:
        if sym in late:
            emit(f"{names[sym]} = {pr(expr)}")
    emit(f"return torch.stack([{', '.join(value(e) for e in reduced_targets)}], dim=-1)")

    header = [
        "def _build(_inputs, _modules, _consts):",
        "    _F = torch.nn.functional",
        "    _cache = {}",
        "",
        "    def rhs(t, u, p):",
    ]
    lines = header + ["        " + line for line in body] + ["", "    return rhs", ""]
    return "\n".join(lines), constants


def torch_rhs(
    system: SymbolicSystem,
    *,
    inputs: Sequence[Callable[[Any], Any]] = (),
    modules: Sequence[Callable[[Any, tuple[Any, ...]], Any] | None] = (),
    part: Part = "full",
) -> Callable[[Any, Any, tuple[Any, ...]], Any]:
    """Compile ``system`` into a fused function ``f(t, u, p) -> du/dt``.

    Args:
        system: the model.
        inputs: one callable per ``system.inputs``, ``F(t) -> tensor`` broadcastable against
            a state (``t`` arrives with shape ``()`` or ``(B,)`` in ``u``'s dtype).
        modules: one entry per network: for ``kind="module"`` a callable
            ``g(x, weights) -> (..., k_out)`` that evaluates the module with the given
            parameter tensors; ignored (may be None) for an MLP.
        part: ``"full"`` (du/dt), ``"known"`` (networks set to 0) or ``"outputs"``.

    Returns:
        ``f(t, u, p)``; ``u`` is ``(..., n)`` and the result has ``u``'s shape (for
        ``"outputs"``: ``(..., k)`` with ``k`` the number of network outputs). The generated
        code is in ``f.source``. A ``"full"`` function also has ``f.make_vjp()`` and
        ``f.make_jac()``: they generate (once) ``vjp(t, u, p, v) -> (f, v^T df/du,
        v^T df/dp)`` and ``jac(t, u, p) -> df/du`` by
        `ude_bridge.codegen.to_torch_derivatives`, or give None where that cannot be
        done; the backsolve adjoint and the stiff methods call them. And
        ``f.make_numpy()``: the `ude_bridge.codegen.to_numpy.NumpyField` of a system with
        no networks or inputs (else None), for the stiff methods' lean step.

    Raises:
        InputError: the wrong number of inputs or modules, or an untranslatable expression.
    """
    import torch

    if len(inputs) != len(system.inputs):
        raise InputError(
            f"torch_rhs: one callable per input is required ({len(system.inputs)}); got "
            f"{len(inputs)}."
        )
    modules = tuple(modules) or (None,) * len(system.networks)
    if len(modules) != len(system.networks) or any(
        m is None for m, net in zip(modules, system.networks, strict=True) if net.kind == "module"
    ):
        raise InputError("torch_rhs: each network of kind 'module' needs a callable in modules.")
    source, constants = torch_source(system, part=part)
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<ude_bridge generated rhs {digest}>"
    # Register the text so tracebacks and debuggers can show the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(source, filename, "exec"), namespace)  # our own generated text only
    rhs = namespace["_build"](tuple(inputs), modules, tuple(constants))
    rhs.source = source
    rhs.system = system  # lets the Julia backend generate the same system in Julia
    if part == "full":  # derivatives as generated code, built on demand
        from .to_numpy import numpy_field
        from .to_torch_derivatives import torch_jac, torch_vjp

        rhs.make_vjp = functools.cache(lambda: torch_vjp(system, inputs=inputs))
        rhs.make_jac = functools.cache(lambda: torch_jac(system, inputs=inputs))
        rhs.make_numpy = functools.cache(lambda: numpy_field(system))
    rhs.__qualname__ = rhs.__name__ = f"rhs_{part}"
    return rhs
