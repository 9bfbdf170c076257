"""`SymbolicSystem` -> generated derivatives of the right-hand side: a vector-Jacobian
product for the continuous adjoint and the Jacobian $\\partial f/\\partial u$ for stiff methods.

Through autograd each is a recorded forward pass plus reverse passes of the engine
(~200 microseconds on a small UDE whatever the sizes); through the complex step it fails
on networks. The generated functions do the arithmetic as straight-line code (the same
scheme as `ude_bridge.codegen.to_torch`: cse'd sympy, one function, no user text run):

- the known part by sympy, differentiated over the reals: $\\partial g_i/\\partial u_j$,
  $\\partial g_i/\\partial \\theta_k$ (times $\\operatorname{sigmoid}(r_k)$ for a positive
  parameter stored as $r_k$) and $\\partial g_i/\\partial U_m$ for each network output;
- each MLP by its own recursions, with $z_l$ the pre-activations, $h_l$ the layer outputs
  ($h_0$ the scaled input $(x - \\text{shift})/\\text{scale}$) and the last layer's rows
  times ``output_scale``. Reverse, for a cotangent $c$ of the outputs (the vjp):

$$ \\delta_L = c, \\quad \\bar W_l = \\delta_{l+1} h_l^\\top, \\quad
   \\bar b_l = \\delta_{l+1}, \\quad \\delta_l = (W_l^\\top \\delta_{l+1}) \\odot \\sigma'(z_l), $$

  ending in $\\xi = W_0^\\top \\delta_1 / \\text{scale}$, the cotangent of the network's
  inputs, which flows back to $u$ through the input expressions. Forward, for the
  Jacobian: $M = W_L D_{L-1} W_{L-1} \\cdots D_1 W_0 \\operatorname{diag}(1/\\text{scale})$ with
  $D_l = \\operatorname{diag}(\\sigma'(z_l))$, and

$$ J = \\frac{\\partial g}{\\partial u} + \\sum_{\\text{nets}} \\frac{\\partial g}{\\partial U}\\,
   M\\, \\frac{\\partial x}{\\partial u}. $$

A batch ``u`` of shape ``(B, n)`` gives per-row results, with the parameter cotangents of
the vjp summed over rows (shared parameters). Networks of kind ``"module"`` are opaque,
and some derivatives have no torch translation (the Heaviside step of ``max``): for those
the generators return None and callers use autograd.
"""

from __future__ import annotations

import hashlib
import linecache
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy

from ..errors import InputError
from .system import SymbolicSystem
from .to_torch import _ACTIVATION, _fold_numbers, _ident, _Printer, _slice_of_states

__all__ = ["torch_jac", "torch_jac_source", "torch_vjp", "torch_vjp_source", "without_grad"]

#: $\\sigma'$ of each activation from the pre-activation ``{z}`` and the output ``{h}``;
#: the flag says whether the formula needs ``z`` (else the forward pass keeps only ``h``).
_DERIVATIVE: dict[str, tuple[str, bool]] = {
    "tanh": ("1.0 - torch.square({h})", False),
    "sigmoid": ("{h} * (1.0 - {h})", False),
    "relu": ("({h} > 0).to({h}.dtype)", False),
    "softplus": ("torch.sigmoid({z})", True),
    "silu": ("torch.sigmoid({z}) * (1.0 + {z} * (1.0 - torch.sigmoid({z})))", True),
    "gelu": (
        "0.5 * (1.0 + torch.erf({z} * 0.7071067811865476))"
        " + {z} * torch.exp(-0.5 * torch.square({z})) * 0.3989422804014327",
        True,
    ),
    "rbf": ("-2.0 * {z} * {h}", True),
}

_HELPERS = [
    "def _outer(d, h):",
    "    if d.dim() == 1:",
    "        return torch.outer(d, h)",
    "    return d.reshape(-1, d.shape[-1]).t() @ h.reshape(-1, h.shape[-1])",
    "",
    "def _rows(d):",
    "    return d.reshape(-1, d.shape[-1]).sum(0)",
    "",
]


def without_grad(system: SymbolicSystem) -> frozenset[int]:
    """Positions in ``p`` whose cotangent the generated vjp leaves out (None): the
    ``fixed`` parameters, which models hold as buffers."""
    return frozenset(k for k, s in enumerate(system.params) if str(s) in system.fixed)


class _Generator:
    """What the vjp and the Jacobian share: names, the equations over the raw network
    outputs, the prelude and the forward pass of the networks keeping every layer."""

    def __init__(self, system: SymbolicSystem) -> None:
        self.system = system
        self.states, self.params = system.states, system.params
        names: dict[sympy.Symbol, str] = {system.time: "t"}
        names.update({s: _ident("s", i, s) for i, s in enumerate(system.states)})
        names.update({s: _ident("p", i, s) for i, s in enumerate(system.params)})
        names.update({s: _ident("i", i, s) for i, s in enumerate(system.inputs)})
        names.update({s: _ident("o", i, s) for i, s in enumerate(system.output_symbols)})
        self.names = names
        self.pr = _Printer(names)
        scale = {
            o: float(net.output_scale[k])
            for net in system.networks
            for k, o in enumerate(net.outputs)
            if float(net.output_scale[k]) != 1.0
        }
        self.eqs = [
            _fold_numbers(e.xreplace({o: s * o for o, s in scale.items()}))
            for e in system.equations
        ]
        used = set().union(*(e.free_symbols for e in self.eqs)) if self.eqs else set()
        self.nets = [net for net in system.networks if used & set(net.outputs)]
        self.index = {id(net): system.networks.index(net) for net in self.nets}
        self.inputs = {
            id(net): [_fold_numbers(sympy.sympify(e)) for e in net.inputs] for net in self.nets
        }
        # differentiate over the reals (d|x|/dx = sign(x), not an expression in re and im)
        free = set().union(
            *(e.free_symbols for e in self.eqs),
            *(e.free_symbols for ins in self.inputs.values() for e in ins),
        )
        self._real = {x: sympy.Dummy(x.name, real=True) for x in free}
        self._back = {r: x for x, r in self._real.items()}
        self.batched = set(self.states)  # symbols whose values have the batch shape
        self.body: list[str] = []
        self.constants: list[np.ndarray] = []
        self.inv_scale: dict[int, int] = {}  # network index -> constant 1/scale
        self._after_prelude = 0

    def diff(self, e: sympy.Expr, wrt: sympy.Symbol) -> sympy.Expr:
        return sympy.diff(e.xreplace(self._real), self._real.get(wrt, wrt)).xreplace(self._back)

    def emit(self, line: str) -> None:
        self.body.append(line)

    def value(self, e: sympy.Expr) -> str:
        """Code for ``e`` with the batch shape (``_z`` gives it to state-free terms)."""
        if e == 0:
            return "_z"
        code = self.pr(e)
        return code if e.free_symbols & self.batched else f"_z + {self.pr.operand(e)}"

    def stack(self, exprs: Sequence[sympy.Expr]) -> str:
        return f"torch.stack([{', '.join(self.value(e) for e in exprs)}], dim=-1)"

    def constant(self, a: np.ndarray) -> str:
        self.constants.append(np.array(a, dtype=np.float64))  # a writable copy
        return f"_c[{len(self.constants) - 1}]"

    def cse(self, exprs: list[sympy.Expr], prefix: str) -> list[sympy.Expr]:
        """Emit the common subexpressions of ``exprs``; returns them reduced."""
        reps, reduced = sympy.cse(exprs, symbols=sympy.numbered_symbols(prefix, cls=sympy.Dummy))
        for k, (sym, expr) in enumerate(reps):
            self.names[sym] = f"{prefix}{k}"
            if expr.free_symbols & self.batched:
                self.batched.add(sym)
            self.emit(f"{prefix}{k} = {self.pr(expr)}")
        return list(reduced)

    def prelude(self, *extra: str) -> None:
        """Unpack ``p`` (keeping raw positive parameters as ``_r_<name>``), ``u``, ``t``."""
        system, names = self.system, self.names
        unpack = [names[s] for s in self.params]
        for j, net in enumerate(system.networks):
            unpack += [f"_n{j}_{a}" for a in range(len(net.arrays()))]
        if unpack:
            self.emit(f"{', '.join(unpack)}{',' if len(unpack) == 1 else ''} = p")
        self.emit("_vec = u.dim() == 1")
        for s in self.params:
            if str(s) in system.positive:
                self.emit(f"_r_{names[s]} = {names[s]}")
                self.emit(f"{names[s]} = _F.softplus({names[s]})")
        if self.states:
            self.emit(f"{', '.join(names[s] for s in self.states)}, = u.unbind(-1)")
        for line in extra:
            self.emit(line)
        timed = {system.time, *system.inputs}
        exprs = self.eqs + [e for ins in self.inputs.values() for e in ins]
        if any(e.free_symbols & timed for e in exprs):
            self.emit("if not isinstance(t, torch.Tensor):")
            self.emit("    t = torch.as_tensor(t, dtype=u.dtype, device=u.device)")
            self.emit("elif t.dim() == u.dim():")
            self.emit("    t = t.squeeze(-1)  # (B, 1) -> (B,), to broadcast against a state")
            self.emit("if t.dtype != u.dtype:")
            self.emit("    t = t.to(u.dtype)")
            for i, s in enumerate(system.inputs):
                self.emit(f"{names[s]} = _inputs[{i}](t)")
        self._after_prelude = len(self.body)

    def forward(self) -> None:
        """Each used network, keeping ``_h{j}_{l}`` (and ``_pre{j}_{l}`` where needed)."""
        states = self.states
        for net in self.nets:
            j = self.index[id(net)]
            x = _slice_of_states(net.inputs, states) or self.stack(self.inputs[id(net)])
            self.emit(f"# network {net.name}: forward, keeping each layer")
            self.emit(f"_h{j}_0 = {x}")
            if np.any(net.input_shift != 0):
                self.emit(f"_h{j}_0 = _h{j}_0 - {self.constant(net.input_shift)}")
            if np.any(net.input_scale != 1):
                inv = self.constant(1.0 / np.asarray(net.input_scale))
                self.inv_scale[j] = len(self.constants) - 1
                self.emit(f"_h{j}_0 = _h{j}_0 * {inv}")
            n_layers = len(net.weights)
            keep_z = _DERIVATIVE[net.activation][1]
            for layer in range(n_layers):
                W, b = f"_n{j}_{2 * layer}", f"_n{j}_{2 * layer + 1}"
                h = f"_h{j}_{layer}"
                lin = f"(torch.addmv({b}, {W}, {h}) if _vec else _F.linear({h}, {W}, {b}))"
                if layer == n_layers - 1:
                    outs = ", ".join(self.names[o] for o in net.outputs)
                    self.emit(f"{outs}, = {lin}.unbind(-1)")
                elif keep_z:
                    self.emit(f"_pre{j}_{layer + 1} = {lin}")
                    act = _ACTIVATION[net.activation].format(f"_pre{j}_{layer + 1}")
                    self.emit(f"_h{j}_{layer + 1} = {act}")
                else:
                    self.emit(f"_h{j}_{layer + 1} = {_ACTIVATION[net.activation].format(lin)}")
            self.batched.update(net.outputs)

    def times_derivative(self, target: str, net: Any, layer: int) -> None:
        """``target = target * sigma'(z_layer)`` (last axis, or the one before for ``M``)."""
        j = self.index[id(net)]
        h, z = f"_h{j}_{layer}", f"_pre{j}_{layer}"
        col = ".unsqueeze(-1)" if target == "_M" else ""
        if net.activation == "tanh" and target == "_d":
            # d (1 - h^2) as one kernel: measured ~3.1 against ~4.4 us for square + addcmul
            # (it is differentiable, as the vjp must be under ``create_graph``)
            self.emit(f"{target} = torch.ops.aten.tanh_backward({target}, {h})")
        elif net.activation == "tanh":  # d - d h^2: no Python-level rsub
            self.emit(
                f"{target} = torch.addcmul({target}, {target}, torch.square({h}){col}, value=-1.0)"
            )
        else:
            self.emit(
                f"{target} = {target} * ({_DERIVATIVE[net.activation][0].format(z=z, h=h)}){col}"
            )

    def source(self, name: str, signature: str, ret: str) -> tuple[str, list[np.ndarray]]:
        """The module text: ``_build(_inputs, _consts)`` returning the function."""
        self.emit(f"return {ret}")
        body = self.body[: self._after_prelude]
        if any(re.search(r"\b_z\b", line) for line in self.body):
            body.append("_z = u.new_zeros(u.shape[:-1])  # gives batch shape to state-free terms")
        if self.constants:
            body += [
                "_c = _cache.get((u.dtype, u.device))",
                "if _c is None:",
                "    _c = _cache[(u.dtype, u.device)] = tuple(",
                "        torch.as_tensor(a, dtype=u.dtype, device=u.device) for a in _consts)",
            ]
        body += self.body[self._after_prelude :]
        header = [
            "def _build(_inputs, _consts):",
            "    _F = torch.nn.functional",
            "    _cache = {}",
        ]
        header += ["", *("    " + line if line else "" for line in _HELPERS)]
        header += [f"    def {name}({signature}):"]
        lines = header + ["        " + line for line in body] + ["", f"    return {name}", ""]
        return "\n".join(lines), self.constants


def _compile(source: str, constants: list[np.ndarray], inputs: Sequence[Callable], kind: str):
    import torch

    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<ude_bridge generated {kind} {digest}>"
    # register the text so tracebacks and debuggers can show the generated lines
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(source, filename, "exec"), namespace)  # our own generated text only
    fn = namespace["_build"](tuple(inputs), tuple(constants))
    fn.source = source
    return fn


# ---------------------------------------------------------------------------- vjp
def torch_vjp_source(system: SymbolicSystem) -> tuple[str, list[np.ndarray]] | None:
    """Generate the source of ``vjp(t, u, p, v) -> (f, v^T df/du, v^T df/dp)``.

    Returns:
        ``(source, constants)`` as for `ude_bridge.codegen.to_torch.torch_source`
        (``_build`` returns the function), or None when a network is of kind ``"module"``.

    Raises:
        InputError: a derivative with no torch translation.
    """
    if any(net.kind != "mlp" for net in system.networks):
        return None
    gen = _Generator(system)
    states, params, eqs, nets = gen.states, gen.params, gen.eqs, gen.nets
    cot = [sympy.Dummy(f"v{i}") for i in range(len(states))]
    gen.names.update({c: f"_v{i}" for i, c in enumerate(cot)})
    gen.batched.update(cot)
    # network inputs that depend on a state get a cotangent xi (their chain rule into u)
    xi: dict[int, list[sympy.Symbol]] = {}
    for net in nets:
        j = gen.index[id(net)]
        if any(e.free_symbols & set(states) for e in gen.inputs[id(net)]):
            xi[j] = [sympy.Dummy(f"xi{j}_{q}") for q in range(len(net.inputs))]
            gen.names.update({x: f"_xi{j}_{q}" for q, x in enumerate(xi[j])})
            gen.batched.update(xi[j])

    def contract(wrt: sympy.Symbol) -> sympy.Expr:
        return sympy.Add(*(c * gen.diff(e, wrt) for c, e in zip(cot, eqs, strict=True)))

    cots_out = [contract(o) for net in nets for o in net.outputs]
    grad_params = [sympy.Integer(0) if str(s) in system.fixed else contract(s) for s in params]
    grad_states = []
    for s in states:
        total = contract(s)
        for net in nets:
            j = gen.index[id(net)]
            for x, e in zip(xi.get(j, ()), gen.inputs[id(net)], strict=False):
                total += x * gen.diff(e, s)
        grad_states.append(total)

    gen.prelude(f"{', '.join(gen.names[c] for c in cot)}, = v.unbind(-1)")
    gen.forward()
    # f, the output cotangents and the parameter cotangents: one cse
    reduced = gen.cse(eqs + cots_out + grad_params, "_e")
    n_eq, n_out = len(eqs), len(cots_out)
    red_f, red_out, red_p = reduced[:n_eq], reduced[n_eq : n_eq + n_out], reduced[n_eq + n_out :]
    gen.emit(f"_f = {gen.stack(red_f)}")

    grads: list[str] = []
    for s, e in zip(params, red_p, strict=True):
        if str(s) in system.fixed:  # a buffer, never differentiated: see `without_grad`
            grads.append("None")
            continue
        if e == 0:
            grads.append("_z.new_zeros(())")
            continue
        code = f"({gen.value(e)})"
        code = f"{code} if _vec else {code}.sum()"
        if str(s) in system.positive:
            code = f"torch.sigmoid(_r_{gen.names[s]}) * ({code})"
        grads.append(code)

    position = 0
    net_grads: dict[int, list[str]] = {}
    for net in nets:
        j = gen.index[id(net)]
        outs = red_out[position : position + len(net.outputs)]
        position += len(net.outputs)
        gen.emit(f"# network {net.name}: backward")
        # outputs entering as du/dt = ... + U have the cotangent v itself
        gen.emit("_d = v" if outs == cot else f"_d = {gen.stack(outs)}")
        names_j: list[str] = []
        for layer in range(len(net.weights) - 1, -1, -1):
            W, h = f"_n{j}_{2 * layer}", f"_h{j}_{layer}"
            # torch.outer inline for one trajectory: the helper's call and dim() test
            # cost ~0.5 us per layer
            gen.emit(f"_gW{j}_{layer} = torch.outer(_d, {h}) if _vec else _outer(_d, {h})")
            gen.emit(f"_gb{j}_{layer} = _d if _vec else _rows(_d)")
            if layer > 0:
                gen.emit(f"_d = _d @ {W}")
                gen.times_derivative("_d", net, layer)
            elif j in xi:
                gen.emit(f"_d = _d @ {W}")
                if j in gen.inv_scale:
                    gen.emit(f"_d = _d * _c[{gen.inv_scale[j]}]")
                gen.emit(f"{', '.join(gen.names[x] for x in xi[j])}, = _d.unbind(-1)")
            names_j = [f"_gW{j}_{layer}", f"_gb{j}_{layer}", *names_j]
        net_grads[j] = names_j

    reduced = gen.cse(grad_states, "_g")
    gen.emit(f"_gu = {gen.stack(reduced)}")
    for j, net in enumerate(system.networks):
        if j in net_grads:
            grads += net_grads[j]
        else:  # a network no equation uses
            grads += [f"torch.zeros_like(_n{j}_{a})" for a in range(len(net.arrays()))]
    return gen.source("vjp", "t, u, p, v", f"_f, _gu, ({', '.join(grads)},)")


def torch_vjp(
    system: SymbolicSystem, *, inputs: Sequence[Callable[[Any], Any]] = ()
) -> Callable[..., Any] | None:
    """Compile ``vjp(t, u, p, v) -> (f, v^T df/du, v^T df/dp)`` for ``system``.

    Args:
        system: the model.
        inputs: one callable per ``system.inputs``, as for `torch_rhs`.

    Returns:
        The function, or None for a system with a ``"module"`` network or a derivative
        with no torch translation (callers then use autograd). ``v`` has ``u``'s shape;
        ``v^T df/dp`` is a tuple in the layout of ``p`` (stored values: raw for positive
        parameters), summed over a batch, with None at the positions of ``fixed``
        parameters (`without_grad`). The generated code is in ``.source``.
    """
    try:
        generated = torch_vjp_source(system)
    except InputError:  # a derivative with no torch translation (Heaviside of a max, ...)
        return None
    if generated is None:
        return None
    vjp = _compile(*generated, inputs, "vjp")
    vjp.without_grad = without_grad(system)
    return vjp


# ---------------------------------------------------------------------------- Jacobian
def torch_jac_source(system: SymbolicSystem) -> tuple[str, list[np.ndarray]] | None:
    """Generate the source of ``jac(t, u, p) -> df/du`` of shape ``(..., n, n)``.

    Returns and raises as `torch_vjp_source`.
    """
    if any(net.kind != "mlp" for net in system.networks):
        return None
    gen = _Generator(system)
    states, eqs, nets = gen.states, gen.eqs, gen.nets
    n = len(states)
    gen.prelude()
    gen.forward()
    known = [gen.diff(e, s) for e in eqs for s in states]
    coupling = {id(net): [gen.diff(e, o) for e in eqs for o in net.outputs] for net in nets}
    chain = {id(net): [gen.diff(x, s) for x in gen.inputs[id(net)] for s in states] for net in nets}
    reduced = gen.cse(known + [e for net in nets for e in coupling[id(net)]], "_e")
    gen.emit(f"_J = {gen.stack(reduced[: n * n])}.unflatten(-1, ({n}, {n}))")
    position = n * n
    for net in nets:
        j = gen.index[id(net)]
        k_out, k_in = len(net.outputs), len(net.inputs)
        G = reduced[position : position + n * k_out]
        position += n * k_out
        gen.emit(f"# network {net.name}: dU/dx, forward through the layers")
        W0 = f"_n{j}_0"
        gen.emit(f"_M = {W0} * _c[{gen.inv_scale[j]}]" if j in gen.inv_scale else f"_M = {W0}")
        for layer in range(1, len(net.weights)):
            gen.times_derivative("_M", net, layer)
            gen.emit(f"_M = _n{j}_{2 * layer} @ _M")
        # dx/du: a constant matrix for inputs that are states (the usual case)
        X = chain[id(net)]
        if all(e.is_number for e in X):
            Xa = np.array([float(e) for e in X]).reshape(k_in, n)
            if not (k_in == n and np.array_equal(Xa, np.eye(n))):
                gen.emit(f"_M = _M @ {gen.constant(Xa)}")
        else:
            gen.emit(f"_M = _M @ {gen.stack(X)}.unflatten(-1, ({k_in}, {n}))")
        # dg/dU: a constant matrix where the outputs enter linearly (du/dt = ... + U)
        if all(e.is_number for e in G):
            Ga = np.array([float(e) for e in G]).reshape(n, k_out)
            if k_out == n and np.array_equal(Ga, np.eye(n)):
                gen.emit("_J = _J + _M")
            else:
                gen.emit(f"_J = _J + {gen.constant(Ga)} @ _M")
        else:
            gen.emit(f"_J = _J + {gen.stack(G)}.unflatten(-1, ({n}, {k_out})) @ _M")
    return gen.source("jac", "t, u, p", "_J")


def torch_jac(
    system: SymbolicSystem, *, inputs: Sequence[Callable[[Any], Any]] = ()
) -> Callable[..., Any] | None:
    """Compile ``jac(t, u, p) -> df/du`` (``(..., n, n)``, differentiable) for ``system``.

    Returns:
        The function, or None as for `torch_vjp`. The generated code is in ``.source``.
    """
    try:
        generated = torch_jac_source(system)
    except InputError:
        return None
    return None if generated is None else _compile(*generated, inputs, "jac")
