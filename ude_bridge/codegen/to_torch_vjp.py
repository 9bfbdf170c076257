"""`SymbolicSystem` -> a generated vector-Jacobian product, for the continuous adjoint.

The adjoint integrates $\\dot a = -a^\\top \\partial f/\\partial u$ and
$\\dot g = -a^\\top \\partial f/\\partial \\theta$, so every evaluation needs
$f(t, u, \\theta)$ together with $v^\\top \\partial f/\\partial u$ and
$v^\\top \\partial f/\\partial \\theta$ for one cotangent $v$. Through autograd that is a
recorded forward pass and a reverse pass of the engine, ~200 microseconds on a small UDE
whatever the sizes. The generated function does the same arithmetic as straight-line
code:

- the known part by sympy: $c_m = \\sum_i v_i\\, \\partial g_i/\\partial U_m$ for each
  network output, $\\sum_i v_i\\, \\partial g_i/\\partial \\theta_k$ per parameter (times
  $\\operatorname{sigmoid}(r_k)$ for a positive one stored as $r_k$) and
  $\\sum_i v_i\\, \\partial g_i/\\partial u_j$ (all cse'd);
- each MLP by its backward recursion, with $z_l$ the pre-activation and $h_l$ the layer's
  output ($h_0$ the scaled input):

$$ \\delta_{L} = c \\odot \\text{output\\_scale}, \\quad
   \\bar W_l = \\delta_{l+1} h_l^\\top, \\quad \\bar b_l = \\delta_{l+1}, \\quad
   \\delta_l = (W_l^\\top \\delta_{l+1}) \\odot \\sigma'(z_l), $$

  ending in $\\xi = W_0^\\top \\delta_1 / \\text{input\\_scale}$, the cotangent of the
  network's inputs, which the chain rule through the input expressions adds to
  $v^\\top \\partial f/\\partial u$.

A batch ``u`` of shape ``(B, n)`` gives per-row $v^\\top \\partial f / \\partial u$ and
parameter cotangents summed over rows (shared parameters). Networks of kind ``"module"``
are opaque: `torch_vjp` returns None for a system with one, and callers use autograd.
"""

from __future__ import annotations

import hashlib
import linecache
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy

from ..errors import InputError
from .system import SymbolicSystem
from .to_torch import _ACTIVATION, _fold_numbers, _ident, _Printer, _slice_of_states

__all__ = ["torch_vjp", "torch_vjp_source", "without_grad"]

#: $\\sigma'$ of each activation from the pre-activation ``{z}`` and the output ``{h}``
#: (``None``: the formula needs no ``z``, so the forward pass keeps only ``h``).
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


def without_grad(system: SymbolicSystem) -> frozenset[int]:
    """Positions in ``p`` whose cotangent the generated function leaves out (None): the
    ``fixed`` parameters, which models hold as buffers."""
    return frozenset(k for k, s in enumerate(system.params) if str(s) in system.fixed)


def torch_vjp_source(system: SymbolicSystem) -> tuple[str, list[np.ndarray]] | None:
    """Generate the source of ``vjp(t, u, p, v) -> (f, vJ_u, vJ_p)`` for ``system``.

    Returns:
        ``(source, constants)`` as for `ude_bridge.codegen.to_torch.torch_source`
        (``_build`` returns the function), or None when a network is of kind
        ``"module"`` (opaque to code generation).
    """
    if any(net.kind != "mlp" for net in system.networks):
        return None
    states, outputs, params = system.states, system.output_symbols, system.params
    names: dict[sympy.Symbol, str] = {system.time: "t"}
    names.update({s: _ident("s", i, s) for i, s in enumerate(states)})
    names.update({s: _ident("p", i, s) for i, s in enumerate(params)})
    names.update({s: _ident("i", i, s) for i, s in enumerate(system.inputs)})
    names.update({s: _ident("o", i, s) for i, s in enumerate(outputs)})
    cot = [sympy.Dummy(f"v{i}") for i in range(len(states))]
    names.update({c: f"_v{i}" for i, c in enumerate(cot)})

    scale = {
        o: float(net.output_scale[k])
        for net in system.networks
        for k, o in enumerate(net.outputs)
        if float(net.output_scale[k]) != 1.0
    }
    eqs = [
        _fold_numbers(e.xreplace({o: s * o for o, s in scale.items()})) for e in system.equations
    ]
    used = set().union(*(e.free_symbols for e in eqs)) if eqs else set()
    nets = [net for net in system.networks if used & set(net.outputs)]
    direct = {id(net): _slice_of_states(net.inputs, states) for net in nets}
    # network inputs that depend on a state get a cotangent xi (their chain rule into u)
    xi = {
        id(net): [sympy.Dummy(f"xi{j}_{q}") for q in range(len(net.inputs))]
        for j, net in enumerate(nets)
        if any(sympy.sympify(e).free_symbols & set(states) for e in net.inputs)
    }
    for j, net in enumerate(nets):
        for q, x in enumerate(xi.get(id(net), ())):
            names[x] = f"_xi{j}_{q}"

    # differentiate over the reals (d|x|/dx = sign(x), not an expression in re and im)
    free = set().union(
        *(e.free_symbols for e in eqs),
        *(sympy.sympify(e).free_symbols for net in nets for e in net.inputs),
    )
    real = {x: sympy.Dummy(x.name, real=True) for x in free}
    back = {r: x for x, r in real.items()}

    def diff(e: sympy.Expr, wrt: sympy.Symbol) -> sympy.Expr:
        return sympy.diff(e.xreplace(real), real.get(wrt, wrt)).xreplace(back)

    def contract(wrt: sympy.Symbol) -> sympy.Expr:
        return sympy.Add(*(c * diff(e, wrt) for c, e in zip(cot, eqs, strict=True)))

    cots_out = [contract(o) for net in nets for o in net.outputs]
    grad_params = [sympy.Integer(0) if str(s) in system.fixed else contract(s) for s in params]
    grad_states = []
    for s in states:
        total = contract(s)
        for net in nets:
            for x, e in zip(xi.get(id(net), ()), net.inputs, strict=False):
                total += x * diff(_fold_numbers(sympy.sympify(e)), s)
        grad_states.append(total)

    body: list[str] = []
    emit = body.append
    pr = _Printer(names)
    unpack = [names[s] for s in params]
    for j, net in enumerate(system.networks):
        unpack += [f"_n{j}_{a}" for a in range(len(net.arrays()))]
    if unpack:
        emit(f"{', '.join(unpack)}{',' if len(unpack) == 1 else ''} = p")
    emit("_vec = u.dim() == 1")
    zeros = "_z = u.new_zeros(u.shape[:-1])  # gives batch shape to state-free terms"
    emit(zeros)
    for s in params:
        if str(s) in system.positive:
            emit(f"_r_{names[s]} = {names[s]}")
            emit(f"{names[s]} = _F.softplus({names[s]})")
    if states:
        emit(f"{', '.join(names[s] for s in states)}, = u.unbind(-1)")
    emit(f"{', '.join(names[c] for c in cot)}, = v.unbind(-1)")
    net_inputs = [sympy.sympify(e) for net in nets for e in net.inputs]
    timed = {system.time, *system.inputs}
    if any(e.free_symbols & timed for e in eqs + net_inputs):
        emit("if not isinstance(t, torch.Tensor):")
        emit("    t = torch.as_tensor(t, dtype=u.dtype, device=u.device)")
        emit("elif t.dim() == u.dim():")
        emit("    t = t.squeeze(-1)")
        emit("if t.dtype != u.dtype:")
        emit("    t = t.to(u.dtype)")
        for i, s in enumerate(system.inputs):
            emit(f"{names[s]} = _inputs[{i}](t)")

    def value(code: str, e: sympy.Expr) -> str:
        if e == 0:
            return "_z"
        return code if e.free_symbols & (set(states) | set(cot)) else f"_z + {code}"

    constants: list[np.ndarray] = []
    if any(np.any(net.input_shift != 0) or np.any(net.input_scale != 1) for net in nets):
        emit("_c = _cache.get((u.dtype, u.device))")
        emit("if _c is None:")
        emit("    _c = _cache[(u.dtype, u.device)] = tuple(")
        emit("        torch.as_tensor(a, dtype=u.dtype, device=u.device) for a in _consts)")
    index = {id(net): system.networks.index(net) for net in nets}
    inv_scale: dict[int, int] = {}
    for net in nets:
        j = index[id(net)]
        x = direct[id(net)]
        if x is None:
            inputs = [_fold_numbers(sympy.sympify(e)) for e in net.inputs]
            x = f"torch.stack([{', '.join(value(pr(e), e) for e in inputs)}], dim=-1)"
        emit(f"# network {net.name}: forward, keeping each layer")
        emit(f"_h{j}_0 = {x}")
        if np.any(net.input_shift != 0):
            emit(f"_h{j}_0 = _h{j}_0 - _c[{len(constants)}]")
            constants.append(np.array(net.input_shift))
        if np.any(net.input_scale != 1):
            emit(f"_h{j}_0 = _h{j}_0 * _c[{len(constants)}]")
            inv_scale[j] = len(constants)
            constants.append(1.0 / np.array(net.input_scale))
        n_layers = len(net.weights)
        keep_z = _DERIVATIVE[net.activation][1]
        for layer in range(n_layers):
            W, b = f"_n{j}_{2 * layer}", f"_n{j}_{2 * layer + 1}"
            h = f"_h{j}_{layer}"
            lin = f"(torch.addmv({b}, {W}, {h}) if _vec else _F.linear({h}, {W}, {b}))"
            if layer == n_layers - 1:
                emit(f"{', '.join(names[o] for o in net.outputs)}, = {lin}.unbind(-1)")
            elif keep_z:
                emit(f"_pre{j}_{layer + 1} = {lin}")
                act = _ACTIVATION[net.activation].format(f"_pre{j}_{layer + 1}")
                emit(f"_h{j}_{layer + 1} = {act}")
            else:
                emit(f"_h{j}_{layer + 1} = {_ACTIVATION[net.activation].format(lin)}")

    # f, the output cotangents and the parameter cotangents: one cse
    first = eqs + cots_out + grad_params
    reps, reduced = sympy.cse(first, symbols=sympy.numbered_symbols("_e", cls=sympy.Dummy))
    for k, (sym, expr) in enumerate(reps):
        names[sym] = f"_e{k}"
        emit(f"_e{k} = {pr(expr)}")
    n_eq, n_out = len(eqs), len(cots_out)
    red_f, red_out, red_p = reduced[:n_eq], reduced[n_eq : n_eq + n_out], reduced[n_eq + n_out :]
    emit(f"_f = torch.stack([{', '.join(value(pr(e), e) for e in red_f)}], dim=-1)")

    grads: list[str] = []
    for s, e in zip(params, red_p, strict=True):
        if str(s) in system.fixed:  # a buffer, never differentiated: see `without_grad`
            grads.append("None")
            continue
        if e == 0:
            grads.append("_z.new_zeros(())")
            continue
        code = f"({pr(e)})" if e.free_symbols & (set(states) | set(cot)) else f"(_z + {pr(e)})"
        code = f"{code} if _vec else {code}.sum()"
        if str(s) in system.positive:
            code = f"torch.sigmoid(_r_{names[s]}) * ({code})"
        grads.append(code)

    position = 0
    net_grads: dict[int, list[str]] = {}
    for net in nets:
        j = index[id(net)]
        k_out = len(net.outputs)
        outs = red_out[position : position + k_out]
        position += k_out
        emit(f"# network {net.name}: backward")
        if list(outs) == cot:  # the outputs enter as du/dt = ... + U: their cotangent is v
            emit("_d = v")
        else:
            emit(f"_d = torch.stack([{', '.join(value(pr(e), e) for e in outs)}], dim=-1)")
        n_layers = len(net.weights)
        names_j: list[str] = []
        derivative = _DERIVATIVE[net.activation][0]
        for layer in range(n_layers - 1, -1, -1):
            W = f"_n{j}_{2 * layer}"
            h = f"_h{j}_{layer}"
            emit(f"_gW{j}_{layer} = _outer(_d, {h})")
            emit(f"_gb{j}_{layer} = _d if _vec else _rows(_d)")
            if layer > 0:
                emit(f"_d = _d @ {W}")
                if net.activation == "tanh":  # d - d h^2: no Python-level rsub
                    emit(f"_d = torch.addcmul(_d, _d, torch.square({h}), value=-1.0)")
                else:
                    emit(f"_d = _d * ({derivative.format(z=f'_pre{j}_{layer}', h=h)})")
            elif id(net) in xi:
                emit(f"_d = _d @ {W}")
                if j in inv_scale:
                    emit(f"_d = _d * _c[{inv_scale[j]}]")
                emit(f"{', '.join(names[x] for x in xi[id(net)])}, = _d.unbind(-1)")
            names_j = [f"_gW{j}_{layer}", f"_gb{j}_{layer}", *names_j]
        net_grads[j] = names_j

    reps, reduced = sympy.cse(grad_states, symbols=sympy.numbered_symbols("_g", cls=sympy.Dummy))
    for k, (sym, expr) in enumerate(reps):
        names[sym] = f"_g{k}"
        emit(f"_g{k} = {pr(expr)}")
    emit(f"_gu = torch.stack([{', '.join(value(pr(e), e) for e in reduced)}], dim=-1)")
    for j, net in enumerate(system.networks):
        if j in net_grads:
            grads += net_grads[j]
        else:  # a network no equation uses
            grads += [f"torch.zeros_like(_n{j}_{a})" for a in range(len(net.arrays()))]
    emit(f"return _f, _gu, ({', '.join(grads)}{',' if len(grads) == 1 else ''})")

    header = [
        "def _build(_inputs, _consts):",
        "    _F = torch.nn.functional",
        "    _cache = {}",
        "",
        "    def _outer(d, h):",
        "        if d.dim() == 1:",
        "            return torch.outer(d, h)",
        "        return d.reshape(-1, d.shape[-1]).t() @ h.reshape(-1, h.shape[-1])",
        "",
        "    def _rows(d):",
        "        return d.reshape(-1, d.shape[-1]).sum(0)",
        "",
        "    def vjp(t, u, p, v):",
    ]
    if not any("_z" in line for line in body[body.index(zeros) + 1 :]):
        body.remove(zeros)
    lines = header + ["        " + line for line in body] + ["", "    return vjp", ""]
    return "\n".join(lines), constants


def torch_vjp(
    system: SymbolicSystem, *, inputs: Sequence[Callable[[Any], Any]] = ()
) -> Callable[..., Any] | None:
    """Compile ``vjp(t, u, p, v) -> (f, v^T df/du, v^T df/dp)`` for ``system``.

    Args:
        system: the model (MLP networks only).
        inputs: one callable per ``system.inputs``, as for `torch_rhs`.

    Returns:
        The function, or None for a system with a ``"module"`` network or a derivative
        with no torch translation (callers then use autograd). ``v`` has ``u``'s
        shape; ``v^T df/dp`` is a tuple in the layout of ``p`` (stored values: raw for
        positive parameters), summed over a batch, with None at the positions of ``fixed``
        parameters (`without_grad`). The generated code is in ``.source``.
    """
    import torch

    try:
        generated = torch_vjp_source(system)
    except InputError:  # a derivative with no torch translation (Heaviside of a max, ...)
        return None
    if generated is None:
        return None
    source, constants = generated
    digest = hashlib.sha1(source.encode()).hexdigest()[:12]
    filename = f"<ude_bridge generated vjp {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"torch": torch}
    exec(compile(source, filename, "exec"), namespace)  # our own generated text only
    vjp = namespace["_build"](tuple(inputs), tuple(constants))
    vjp.source = source
    vjp.without_grad = without_grad(system)
    return vjp
