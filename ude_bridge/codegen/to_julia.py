"""`SymbolicSystem` -> Julia source: an in-place ``rhs!(du, u, p, t)`` with MLPs as plain loops.

The generated file is self-contained Julia (it needs only ``StaticArrays`` and
``SpecialFunctions``, both in ude_bridge's ``juliapkg.json``) and defines:

- ``rhs!(du, u, p, t)``: the vector field in place, for ``ODEProblem{true}``;
- ``rhs_static(u, p, t)``: the same, out of place, returning an ``SVector`` (what
  DiffEqGPU's ``EnsembleGPUKernel`` needs);
- ``N_STATES``, ``N_PARAMETERS``, ``STATE_NAMES``, ``PARAMETER_NAMES`` (the layout slots).

``p`` is the flat parameter vector in the layout `SymbolicSystem` documents: the physical
parameters in order (stored values: raw ``r`` for ``positive`` names, used as
$\\operatorname{softplus}(r)$), then per network and per layer ``W`` flattened row-major
(C order) and ``b``. Julia indexes from 1, so ``W[i, j]`` of a layer whose slot starts at
0-based offset ``o`` with ``k_in`` inputs is ``p[o + (i - 1) * k_in + j]`` and ``b[i]`` is
``p[o + k_out * k_in + i]``.

The right-hand side allocates nothing: states and parameters become scalars, each dense
layer is an ``ntuple`` of dot products, so the same code runs under ForwardDiff (stiff
Jacobians), Enzyme/ReverseDiff (adjoint VJPs) and inside GPU kernels. Equations are printed
with sympy's `julia_code`, adapted to scalars (``*`` rather than ``.*``), with full float64
precision and Julia's names for ``atan2``/``erf``/``gamma``.

Example:
    >>> import sympy
    >>> from ude_bridge.codegen.system import SymbolicSystem
    >>> x, t, a = sympy.symbols("x t a")
    >>> code = to_julia(SymbolicSystem((x,), t, (a,), (1.5,), (-a * x,)))
    >>> "du[1] = _ub_d[1]" in code.source
    True
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy
from sympy.printing.julia import JuliaCodePrinter

from ..errors import InputError
from .system import NetworkSpec, ParameterSlot, SymbolicSystem

__all__ = [
    "JULIA_ACTIVATIONS",
    "JuliaCode",
    "julia_expression",
    "julia_identifier",
    "to_julia",
]

#: Julia's reserved words and the names the generated code itself uses; a model symbol
#: with one of these names is renamed (see `julia_identifier`).
_RESERVED = frozenset(
    """
    baremodule begin break catch const continue do else elseif end export false finally
    for function global if import let local macro module quote return struct true try
    using while abstract primitive mutable type where in isa outer
    du u p t nothing missing Inf NaN pi im e Base Core Main SVector SpecialFunctions
    N_STATES N_PARAMETERS STATE_NAMES PARAMETER_NAMES rhs rhs_static
    sin cos tan cot sec csc asin acos atan acot asec acsc sinh cosh tanh coth sech csch
    asinh acosh atanh acoth asech acsch exp log log1p expm1 log2 log10 sqrt cbrt abs sign
    max min floor ceil round mod rem div ifelse zero one inv identity convert promote
    promote_type eltype length ntuple Val erf erfc gamma loggamma real imag conj angle
    """.split()
)

#: Julia expression of each activation of `SymbolicSystem.ACTIVATIONS`, as the name of a
#: function the generated prelude defines (or a Base function).
JULIA_ACTIVATIONS: dict[str, str] = {
    "tanh": "tanh",
    "relu": "_ub_relu",
    "gelu": "_ub_gelu",
    "softplus": "_ub_softplus",
    "sigmoid": "_ub_sigmoid",
    "silu": "_ub_silu",
    "rbf": "_ub_rbf",
}

_PRELUDE = """\
# ---- helpers (shared by every generated model) ---------------------------------------

# log(1 + exp(x)) without overflow; equals numpy's logaddexp(0, x)
@inline _ub_softplus(x) = log1p(exp(-abs(x))) + max(x, zero(x))
@inline _ub_relu(x) = max(x, zero(x))
@inline _ub_sigmoid(x) = inv(one(x) + exp(-x))
@inline _ub_silu(x) = x * _ub_sigmoid(x)
@inline _ub_rbf(x) = exp(-(x * x))
# exact (erf) GELU, as torch.nn.GELU() computes it
@inline _ub_gelu(x) = x * (one(x) + SpecialFunctions.erf(x / sqrt(2.0))) / 2

# One dense layer y = act.(W * x .+ b) with W (NO x NI, row-major) and b read from the
# flat vector p at 0-based offset off; x is a tuple, y a tuple, nothing is allocated.
@inline function _ub_dense(p, off, x, ::Val{NO}, act) where {NO}
    NI = length(x)
    S = promote_type(eltype(p), eltype(x))
    return ntuple(Val(NO)) do i
        s = convert(S, p[off + NO * NI + i])
        for j in 1:NI
            s += p[off + (i - 1) * NI + j] * x[j]
        end
        act(s)
    end
end

# Linear interpolation of a forcing input given as data, constant beyond the ends.
function _ub_interp(ts, vs, t)
    n = length(ts)
    if t <= ts[1]
        return vs[1] + zero(t)
    elseif t >= ts[n]
        return vs[n] + zero(t)
    else
        k = searchsortedlast(ts, t)
        w = (t - ts[k]) / (ts[k + 1] - ts[k])
        return vs[k] + w * (vs[k + 1] - vs[k])
    end
end
"""


class _ScalarJuliaPrinter(JuliaCodePrinter):
    """sympy's Julia printer for scalar code.

    Differences from `julia_code`: ``*``, ``/``, ``^`` rather than the broadcasting
    ``.*``, ``./``, ``.^`` (every value is a scalar here); floats printed with Python's
    shortest round-trip ``repr`` (all 17 significant digits a float64 needs); rationals as a
    float division; ``E`` as ``Base.MathConstants.e``; functions Julia keeps outside
    ``Base`` (``erf``, ``gamma``) qualified with ``SpecialFunctions``.
    """

    _UNDOT = (
        (" .^ ", " ^ "),
        (" .* ", " * "),
        (" ./ ", " / "),
    )

    def __init__(self) -> None:
        super().__init__(
            {
                "strict": True,
                "user_functions": {
                    "atan2": "atan",
                    "erf": "SpecialFunctions.erf",
                    "erfc": "SpecialFunctions.erfc",
                    "gamma": "SpecialFunctions.gamma",
                    "loggamma": "SpecialFunctions.loggamma",
                },
            }
        )

    @classmethod
    def _undot(cls, s: str) -> str:
        for a, b in cls._UNDOT:
            s = s.replace(a, b)
        return s

    def _print_Mul(self, expr: sympy.Expr) -> str:
        return self._undot(super()._print_Mul(expr))

    def _print_Pow(self, expr: sympy.Expr) -> str:
        return self._undot(super()._print_Pow(expr))

    def _print_Float(self, expr: sympy.Float) -> str:
        return _float_literal(float(expr))

    def _print_Rational(self, expr: sympy.Rational) -> str:
        if expr.q == 1:
            return str(expr.p)
        return f"{expr.p} / {expr.q}"

    def _print_Exp1(self, expr: sympy.Expr) -> str:
        return "Base.MathConstants.e"


def _float_literal(x: float) -> str:
    """A Julia Float64 literal that round-trips ``x`` exactly."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Inf" if x > 0 else "-Inf"
    s = repr(float(x))
    return s if ("." in s or "e" in s) else s + ".0"


_ASCII_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def julia_identifier(name: str, taken: set[str]) -> str:
    """A Julia identifier for the model symbol ``name``, unique among ``taken``.

    The name itself is kept when it is a plain ASCII identifier that is neither a Julia
    keyword, nor a name the generated code uses (``u``, ``p``, ``t``, ``tanh`` ...), nor one
    that starts with ``_ub_``; otherwise it becomes ``v_<name>`` (non-identifier characters
    replaced by ``_``), numbered if needed. The result is added to ``taken``.
    """
    if _ASCII_ID.match(name) and name not in _RESERVED and name not in taken:
        taken.add(name)
        return name
    base = "v_" + (re.sub(r"[^A-Za-z0-9_]", "_", name) or "x")
    candidate, k = base, 1
    while candidate in taken or candidate in _RESERVED:
        k += 1
        candidate = f"{base}_{k}"
    taken.add(candidate)
    return candidate


def julia_expression(expr: sympy.Expr, names: Mapping[sympy.Symbol, str] | None = None) -> str:
    """Print one sympy expression as scalar Julia code.

    Args:
        expr: the expression.
        names: symbol -> Julia identifier for symbols that must be renamed.

    Returns:
        Julia source of an expression.

    Raises:
        InputError: the expression holds something Julia code cannot express (an undefined
            function such as ``g(x)``, complex infinity, ...).
    """
    expr = sympy.sympify(expr)
    if names:
        expr = expr.xreplace({s: sympy.Symbol(n) for s, n in names.items()})
    try:
        return _ScalarJuliaPrinter().doprint(expr)
    except Exception as exc:  # sympy raises PrintMethodNotImplementedError and others
        raise InputError(
            f"to_julia: every expression must be printable as Julia code; {expr} is not "
            f"({exc}). Replace the unsupported part, or use backend='torch'."
        ) from None


@dataclass(frozen=True)
class JuliaCode:
    """Generated Julia source for one `SymbolicSystem`.

    Attributes:
        source: the whole Julia file.
        n_states: ``n``, the length of ``u``.
        n_parameters: the length of the flat parameter vector ``p``.
        layout: the slots of ``p`` (0-based offsets, as `SymbolicSystem.layout`).
        names: model symbol name -> Julia identifier, for the symbols that were renamed.
    """

    source: str
    n_states: int
    n_parameters: int
    layout: tuple[ParameterSlot, ...]
    names: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """SHA-256 of ``source``: the key under which a backend caches the compiled model."""
        return hashlib.sha256(self.source.encode()).hexdigest()


def _check_system(system: SymbolicSystem) -> None:
    where = "to_julia"
    if not isinstance(system, SymbolicSystem):
        raise InputError(
            f"{where}: system must be a SymbolicSystem; got {type(system).__name__}. "
            "Call model.system() to get one."
        )
    for net in system.networks:
        if net.kind != "mlp":
            raise InputError(
                f"{where}: network {net.name!r} must be an MLP to run in Julia; found a user "
                f"torch module (kind={net.kind!r}). Build it with ub.MLP, or solve with "
                "backend='torch'."
            )
        if net.activation not in JULIA_ACTIVATIONS:
            raise InputError(
                f"{where}: network {net.name!r} uses activation {net.activation!r}, which has "
                f"no Julia translation; supported: {', '.join(JULIA_ACTIVATIONS)}."
            )
    for sym, data in zip(system.inputs, system.input_data, strict=True):
        if data is None:
            raise InputError(
                f"{where}: forcing input {str(sym)!r} must be given as data (times, values) "
                "to run in Julia; found an opaque Python callable. Pass it as arrays, or "
                "solve with backend='torch'."
            )


def _layout_comment(system: SymbolicSystem) -> list[str]:
    lines = ["# Flat parameter vector p (Julia's 1-based indices; W row-major):"]
    for slot in system.layout():
        lo, hi = slot.offset + 1, slot.offset + slot.size
        idx = f"p[{lo}]" if slot.size == 1 and slot.shape == () else f"p[{lo}:{hi}]"
        note = ""
        if slot.shape == () and slot.name in system.positive:
            note = "  (stored raw: value = softplus(raw))"
        elif slot.shape:
            note = f"  {tuple(slot.shape)}"
        lines.append(f"#   {idx:<16} {slot.name}{note}")
    return lines


def _tuple(items: list[str]) -> str:
    return "(" + items[0] + ",)" if len(items) == 1 else "(" + ", ".join(items) + ")"


def _network_lines(
    net: NetworkSpec, k: int, offset: int, names: Mapping[sympy.Symbol, str]
) -> list[str]:
    act = JULIA_ACTIVATIONS[net.activation]
    sizes = "(" + ", ".join(str(s) for s in net.sizes) + ")"
    ins = ", ".join(str(e) for e in net.inputs)
    outs = ", ".join(str(o) for o in net.outputs)
    lines = [f"    # network {net.name!r}: ({ins}) -> ({outs}); sizes {sizes}, {net.activation}"]
    h0 = []
    for expr, shift, scale in zip(net.inputs, net.input_shift, net.input_scale, strict=True):
        e = julia_expression(expr, names)
        if shift != 0.0:
            e = f"({e} - {_float_literal(shift)})"
        if scale != 1.0:
            e = f"{e} / {_float_literal(scale)}"
        h0.append(e)
    prefix = f"_ub_n{k}_h"
    lines.append(f"    {prefix}0 = promote{_tuple(h0) if len(h0) > 1 else '(' + h0[0] + ')'}")
    last = len(net.weights) - 1
    for i, (W, b) in enumerate(net.weights):
        fn = "identity" if i == last else act
        lines.append(
            f"    {prefix}{i + 1} = _ub_dense(p, {offset}, {prefix}{i}, Val({W.shape[0]}), {fn})"
        )
        offset += W.size + b.size
    out = f"{prefix}{last + 1}"
    for j, (sym, scale) in enumerate(zip(net.outputs, net.output_scale, strict=True)):
        e = f"{out}[{j + 1}]"
        if scale != 1.0:
            e = f"{e} * {_float_literal(scale)}"
        lines.append(f"    {names[sym]} = {e}")
    return lines


def to_julia(system: SymbolicSystem, *, name: str = "UDEModel") -> JuliaCode:
    """Generate Julia source for ``system``.

    Args:
        system: the model as plain data (``model.system()``).
        name: a label written into the file's header comment.

    Returns:
        `JuliaCode` whose ``source`` defines ``rhs!``, ``rhs_static`` and the layout
        constants (see the module docstring).

    Raises:
        InputError: a network that is not an MLP (a user's torch module), an activation
            with no Julia translation, a forcing input given as a Python callable, or an
            expression Julia code cannot express.
    """
    _check_system(system)
    taken: set[str] = set()
    names: dict[sympy.Symbol, str] = {}
    for sym in (
        *system.states,
        *system.params,
        *system.inputs,
        *system.output_symbols,
    ):
        if sym not in names:
            names[sym] = julia_identifier(str(sym), taken)
    time_name = "t"
    if str(system.time) != "t":
        time_name = julia_identifier(str(system.time), taken)
    names[system.time] = time_name
    for i, e in enumerate(system.equations):
        unknown = sorted(str(s) for s in e.free_symbols if s not in names)
        if unknown:
            raise InputError(
                f"to_julia: the equation for {str(system.states[i])!r} may use only states, "
                f"time, parameters, inputs and network outputs; found {', '.join(unknown)}. "
                "Declare them in the model."
            )

    out: list[str] = [
        f"# {name}: generated by ude_bridge.codegen.to_julia from a SymbolicSystem.",
        "# Do not edit by hand: regenerate from the model instead.",
        "#",
        f"# States u = ({', '.join(str(s) for s in system.states)}); time {system.time}.",
        "# rhs!(du, u, p, t) writes du/dt in place; rhs_static(u, p, t) returns an SVector.",
    ]
    renamed = {str(s): n for s, n in names.items() if str(s) != n and s != system.time}
    if renamed:
        out.append(
            "# Renamed for Julia: " + ", ".join(f"{k} -> {v}" for k, v in renamed.items()) + "."
        )
    out += _layout_comment(system)
    out += [
        "",
        "import SpecialFunctions",
        "using StaticArrays: SVector",
        "",
        f"const N_STATES = {system.n_states}",
        f"const N_PARAMETERS = {system.n_parameters}",
        "const STATE_NAMES = " + _tuple([f'"{s}"' for s in system.states]),
        "const PARAMETER_NAMES = "
        + (_tuple([f'"{s.name}"' for s in system.layout()]) if system.layout() else "()"),
        "",
    ]
    for k, (sym, (ts, vs)) in enumerate(
        zip(system.inputs, system.input_data, strict=True), start=1
    ):
        order = np.argsort(ts, kind="stable")
        out.append(f"# forcing input {sym}: linear interpolation of data")
        out.append(
            f"const _UB_INPUT{k}_T = [" + ", ".join(_float_literal(v) for v in ts[order]) + "]"
        )
        out.append(
            f"const _UB_INPUT{k}_V = [" + ", ".join(_float_literal(v) for v in vs[order]) + "]"
        )
    out.append(_PRELUDE)

    body: list[str] = ["# ---- the model ----", "", "@inline function _ub_rhs(u, p, t)"]
    if time_name != "t":
        body.append(f"    {time_name} = t")
    for i, s in enumerate(system.states):
        body.append(f"    {names[s]} = u[{i + 1}]")
    for i, s in enumerate(system.params):
        value = f"p[{i + 1}]"
        if str(s) in system.positive:
            value = f"_ub_softplus({value})"
        body.append(f"    {names[s]} = {value}")
    for k, sym in enumerate(system.inputs, start=1):
        body.append(f"    {names[sym]} = _ub_interp(_UB_INPUT{k}_T, _UB_INPUT{k}_V, t)")
    offset = len(system.params)
    for k, net in enumerate(system.networks, start=1):
        body += _network_lines(net, k, offset, names)
        offset += net.n_parameters
    rhs = [julia_expression(e, names) for e in system.equations]
    body.append(f"    return {_tuple(rhs)}")
    body.append("end")
    body += [
        "",
        "function rhs!(du, u, p, t)",
        "    _ub_d = _ub_rhs(u, p, t)",
        *(f"    du[{i + 1}] = _ub_d[{i + 1}]" for i in range(system.n_states)),
        "    return nothing",
        "end",
        "",
        "rhs_static(u, p, t) = SVector(_ub_rhs(u, p, t))",
        "",
    ]
    source = "\n".join(out + body)
    return JuliaCode(
        source=source,
        n_states=system.n_states,
        n_parameters=system.n_parameters,
        layout=system.layout(),
        names=renamed,
    )
