"""Test models as `SymbolicSystem`s, with independent numpy and torch right-hand sides.

The references read the network weights from the *flat parameter vector* by the layout
that `SymbolicSystem` documents (W row-major, then b), so a generated Julia function that
indexes ``p`` wrongly disagrees with them.
"""

from __future__ import annotations

import math

import numpy as np
import sympy
import torch

from ude_bridge.codegen.system import NetworkSpec, SymbolicSystem, softplus

_NP_ACT = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "gelu": lambda x: 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "rbf": lambda x: np.exp(-(x * x)),
}

_TORCH_ACT = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "gelu": torch.nn.functional.gelu,
    "softplus": torch.nn.functional.softplus,
    "sigmoid": torch.sigmoid,
    "silu": torch.nn.functional.silu,
    "rbf": lambda x: torch.exp(-(x * x)),
}


def mlp(name, inputs, outputs, hidden, activation, rng, shift=0.0, scale=1.0, out_scale=1.0):
    """A `NetworkSpec` with random weights."""
    sizes = (len(inputs), *hidden, len(outputs))
    weights = [
        (rng.normal(size=(o, i)) / math.sqrt(i), 0.1 * rng.normal(size=o))
        for i, o in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    return NetworkSpec(
        name, tuple(inputs), tuple(outputs), weights, activation, shift, scale, out_scale
    )


def lv_ude(hidden=(8, 8), activation="tanh", seed=0, positive=("alpha",)):
    """Lotka-Volterra with the interaction terms learned: x' = αx + U1, y' = -δy + U2."""
    x, y, t, a, d, U1, U2 = sympy.symbols("x y t alpha delta U1 U2")
    rng = np.random.default_rng(seed)
    net = mlp(
        "U", (x, y), (U1, U2), hidden, activation, rng, shift=(1.0, 0.5), scale=(2.0, 1.5),
        out_scale=(0.5, 0.25),
    )  # fmt: skip
    return SymbolicSystem(
        (x, y), t, (a, d), (1.3, 1.8), (a * x + U1, -d * y + U2), networks=(net,),
        positive=frozenset(positive),
    )  # fmt: skip


def lotka_volterra():
    """The classic Lotka-Volterra system, no networks."""
    x, y, t, a, b, c, d = sympy.symbols("x y t alpha beta gamma delta")
    return SymbolicSystem(
        (x, y), t, (a, b, c, d), (1.5, 1.0, 3.0, 1.0), (a * x - b * x * y, -c * y + d * x * y)
    )  # fmt: skip


def rober():
    """Robertson's stiff chemical kinetics (k1, k2, k3 = 0.04, 3e7, 1e4)."""
    y1, y2, y3, t, k1, k2, k3 = sympy.symbols("y1 y2 y3 t k1 k2 k3")
    return SymbolicSystem(
        (y1, y2, y3), t, (k1, k2, k3), (0.04, 3e7, 1e4),
        (
            -k1 * y1 + k3 * y2 * y3,
            k1 * y1 - k2 * y2**2 - k3 * y2 * y3,
            k2 * y2**2,
        ),
    )  # fmt: skip


def forced_oscillator(seed=1):
    """A forced, time-dependent system with a data input, a Piecewise and odd names."""
    # states named like Julia's own names: they must be renamed in the generated code
    u, p, t, k, F, N = sympy.symbols("u p t k F N")
    rng = np.random.default_rng(seed)
    net = mlp("N1", (u, sympy.sin(t)), (N,), (5,), "softplus", rng)
    ts = np.linspace(0.0, 10.0, 11)
    vs = np.cos(ts)
    eqs = (
        p,
        -k * u + F + N + sympy.Piecewise((sympy.Rational(1, 3) * u**2, u > 0), (0, True)),
    )
    return SymbolicSystem(
        (u, p), t, (k,), (2.0,), eqs, networks=(net,), inputs=(F,), input_data=((ts, vs),)
    )


def two_networks(activation="gelu", seed=2):
    """Two MLPs, one with a single input, exp/sqrt/E/pi/erf in the equations."""
    x, y, t, c, A, B1, B2 = sympy.symbols("x y t c A B1 B2")
    rng = np.random.default_rng(seed)
    n1 = mlp("first", (x,), (A,), (4,), activation, rng)
    n2 = mlp("second", (x * y, y, t), (B1, B2), (3, 3), "sigmoid", rng, out_scale=(2.0, 3.0))
    eqs = (
        -c * x + A * sympy.exp(-(x**2)) + sympy.E * B1,
        sympy.sqrt(1 + y**2) * B2 - sympy.pi * y + sympy.erf(x) / 10,
    )
    return SymbolicSystem((x, y), t, (c,), (0.7,), eqs, networks=(n1, n2))


ALL_SYSTEMS = {
    "lv_ude": lv_ude,
    "lotka_volterra": lotka_volterra,
    "rober": rober,
    "forced_oscillator": forced_oscillator,
    "two_networks": two_networks,
}


# --------------------------------------------------------------------------- references


def _unflatten(system: SymbolicSystem, pflat: np.ndarray):
    """(parameter values, per-network [(W, b), ...]) read from the flat vector."""
    n_par = len(system.params)
    values = []
    for s, raw in zip(system.params, pflat[:n_par], strict=True):
        values.append(softplus(raw) if str(s) in system.positive else float(raw))
    off = n_par
    layers = []
    for net in system.networks:
        mine = []
        for W, _ in net.weights:
            o, i = W.shape
            Wf = pflat[off : off + o * i].reshape(o, i)  # row-major by the documented layout
            off += o * i
            bf = pflat[off : off + o]
            off += o
            mine.append((Wf, bf))
        layers.append(mine)
    assert off == len(pflat)
    return values, layers


def _input_values(system, t):
    return [float(np.interp(t, ts, vs)) for ts, vs in system.input_data]


def reference_rhs(system: SymbolicSystem, t: float, u: np.ndarray, pflat: np.ndarray):
    """du/dt by numpy and sympy.lambdify, from the system's documented semantics."""
    values, layers = _unflatten(system, np.asarray(pflat, dtype=float))
    env = {str(s): float(v) for s, v in zip(system.states, u, strict=True)}
    env.update({str(s): v for s, v in zip(system.params, values, strict=True)})
    env[str(system.time)] = float(t)
    env.update({str(s): v for s, v in zip(system.inputs, _input_values(system, t), strict=True)})
    for net, mine in zip(system.networks, layers, strict=True):
        xin = np.array([float(sympy.sympify(e).subs(env)) for e in net.inputs])
        h = (xin - net.input_shift) / net.input_scale
        for k, (W, b) in enumerate(mine):
            h = W @ h + b
            if k < len(mine) - 1:
                h = _NP_ACT[net.activation](h)
        for s, v in zip(net.outputs, h * net.output_scale, strict=True):
            env[str(s)] = float(v)
    syms = sorted(env)
    out = []
    for e in system.equations:
        fn = sympy.lambdify([sympy.Symbol(s) for s in syms], e, modules=["math", "mpmath"])
        out.append(float(fn(*[env[s] for s in syms])))
    return np.array(out)


_TORCH_FUNCS = {
    "exp": torch.exp,
    "sqrt": torch.sqrt,
    "sin": torch.sin,
    "cos": torch.cos,
    "erf": torch.erf,
    "log": torch.log,
    "tanh": torch.tanh,
    "Abs": torch.abs,
}


def torch_rhs(system: SymbolicSystem):
    """A torch f(t, u, p) for the system, p the tuple layout; ``f.system`` carries it.

    Stands in for what a ude_bridge model's problem() provides (vectorised over a leading
    batch dimension; parameters shared by the batch).
    """
    if system.inputs:
        raise ValueError("torch_rhs: forcing inputs are not needed by these tests")
    states = [str(s) for s in system.states]
    params = [str(s) for s in system.params]
    outs = [str(o) for o in system.output_symbols]
    args = [sympy.Symbol(n) for n in (*states, *params, *outs, str(system.time))]
    fns = [sympy.lambdify(args, e, modules=[_TORCH_FUNCS, "math"]) for e in system.equations]
    net_inputs = [
        [sympy.lambdify(args[: len(states)] + [args[-1]], e, modules=[_TORCH_FUNCS, "math"])
         for e in net.inputs]
        for net in system.networks
    ]  # fmt: skip

    def f(t, u, p):
        xs = [u[..., i] for i in range(len(states))]
        tt = t.reshape(-1)[0] if isinstance(t, torch.Tensor) and t.dim() > 0 else t
        k = 0
        vals = []
        for name in params:
            v = p[k]
            vals.append(torch.nn.functional.softplus(v) if name in system.positive else v)
            k += 1
        net_out = []
        for net, ins in zip(system.networks, net_inputs, strict=True):
            h = torch.stack([fn(*xs, tt) * torch.ones_like(xs[0]) for fn in ins], dim=-1)
            h = (h - torch.tensor(net.input_shift)) / torch.tensor(net.input_scale)
            for i in range(len(net.weights)):
                W, b = p[k], p[k + 1]
                k += 2
                h = h @ W.T + b
                if i < len(net.weights) - 1:
                    h = _TORCH_ACT[net.activation](h)
            h = h * torch.tensor(net.output_scale)
            net_out += [h[..., j] for j in range(h.shape[-1])]
        du = [fn(*xs, *vals, *net_out, tt) * torch.ones_like(xs[0]) for fn in fns]
        return torch.stack(du, dim=-1)

    f.system = system
    return f


def torch_params(system: SymbolicSystem, requires_grad=False):
    """``p`` as the tuple layout: 0-dim tensors per parameter, then W0, b0, ... per network."""
    out = [torch.tensor(v, dtype=torch.float64) for v in system.stored_values()]
    for net in system.networks:
        out += [torch.tensor(a, dtype=torch.float64) for a in net.arrays()]
    if requires_grad:
        for x in out:
            x.requires_grad_(True)
    return tuple(out)
