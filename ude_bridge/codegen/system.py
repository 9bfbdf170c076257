"""`SymbolicSystem`: a hybrid model as plain data (sympy + numpy), independent of torch.

This is the one description of a model that every code generator reads: `to_torch`
(the fused torch right-hand side), `to_julia` (an in-place ``f!(du, u, p, t)``) and
discovery. It is a leaf: it imports sympy and numpy only.

The model is

$$ \\frac{du_i}{dt} = g_i\\bigl(t, u, \\theta, F(t), U\\bigr), \\qquad i = 1, \\dots, n, $$

where $u$ are the ``states``, $t$ the ``time``, $\\theta$ the physical ``params``,
$F(t)$ known forcing ``inputs`` and $U$ the outputs of the ``networks``. Each network
is a multilayer perceptron (MLP) evaluated on expressions of $(t, u, F)$:

$$ h_0 = (x - \\text{shift}) / \\text{scale}, \\quad
   h_k = \\sigma(W_k h_{k-1} + b_k) \\ (k < L), \\quad
   U = (W_L h_{L-1} + b_L) \\odot \\text{output\\_scale}. $$

The activation $\\sigma$ is applied after every layer except the last.

**The flat parameter vector** (the layout shared by the torch tuple ``p`` and Julia's
``p``), in this order:

1. every physical parameter, in the order of ``params``, one number each, holding its
   *stored* value: the value itself, or for names in ``positive`` the raw value
   $r = \\operatorname{softplus}^{-1}(v) = \\log(e^{v} - 1)$, the model using
   $v = \\operatorname{softplus}(r) = \\log(1 + e^{r})$ (fixed parameters are included
   like any other);
2. then each network in the order of ``networks``, each layer in turn: ``W`` (shape
   ``(out, in)``, flattened row-major, i.e. C order) then ``b`` (shape ``(out,)``).
   A network of kind ``"module"`` (a user's own torch module) contributes its
   ``module_parameters`` in order, each flattened row-major.

In torch the same layout is a tuple of tensors: one 0-dim tensor per physical parameter,
then ``W_0, b_0, W_1, b_1, ...`` per network, unflattened. `SymbolicSystem.layout`
describes each entry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import sympy

__all__ = [
    "ACTIVATIONS",
    "NetworkSpec",
    "ParameterSlot",
    "SymbolicSystem",
    "softplus",
    "softplus_inverse",
]

#: Activation names an MLP may use. ``"rbf"`` is the Gaussian radial basis function
#: $\\sigma(x) = e^{-x^2}$ used in the UDE paper (Rackauckas et al., 2020).
#: ``"gelu"`` is the exact (erf) form, ``"silu"`` is $x\\,\\mathrm{sigmoid}(x)$,
#: ``"softplus"`` is $\\log(1 + e^x)$.
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "gelu", "softplus", "sigmoid", "silu", "rbf")


def softplus(raw: float) -> float:
    """$\\log(1 + e^{r})$, the transform from stored to value for positive parameters."""
    return float(np.logaddexp(0.0, raw))


def softplus_inverse(value: float) -> float:
    """$\\log(e^{v} - 1)$ for $v > 0$, computed stably: the stored value of a positive one."""
    if not value > 0:
        raise ValueError(f"softplus_inverse: value must be > 0; got {value!r}.")
    return float(value + math.log(-math.expm1(-value)))


def _frozen_array(a: object, *, dtype: type = np.float64) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class NetworkSpec:
    """A neural network of the model as plain data.

    Attributes:
        name: an identifier, unique within the system (used to name weights).
        inputs: the network's inputs, expressions of states, time and forcing inputs,
            in the order the first layer sees them (``k_in`` of them).
        outputs: the symbols the equations use for the network's outputs, in the order
            of the last layer's rows (``k_out`` of them).
        weights: per layer ``(W, b)`` with ``W`` of shape ``(out, in)`` and ``b`` of shape
            ``(out,)``, float64, read-only. Empty for ``kind="module"``.
        activation: one of `ACTIVATIONS`, applied after every layer but the last
            (``"module"`` for ``kind="module"``).
        input_shift: ``(k_in,)``; the first layer sees ``(x - input_shift) / input_scale``.
        input_scale: ``(k_in,)``, nonzero.
        output_scale: ``(k_out,)``; the outputs are the last layer times ``output_scale``.
        kind: ``"mlp"`` (the layers above, exportable to any target) or ``"module"`` (a
            user's torch module, opaque: only torch can run it).
        module_parameters: for ``kind="module"``, the module's parameter arrays in
            ``named_parameters()`` order; empty for an MLP.
        module_parameter_names: their names, same order.
    """

    name: str
    inputs: tuple[sympy.Expr, ...]
    outputs: tuple[sympy.Symbol, ...]
    weights: tuple[tuple[np.ndarray, np.ndarray], ...]
    activation: str
    input_shift: np.ndarray
    input_scale: np.ndarray
    output_scale: np.ndarray
    kind: str = "mlp"
    module_parameters: tuple[np.ndarray, ...] = ()
    module_parameter_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"NetworkSpec {self.name!r}"
        k_in, k_out = len(self.inputs), len(self.outputs)
        set_ = object.__setattr__
        set_(self, "inputs", tuple(sympy.sympify(e) for e in self.inputs))
        set_(self, "outputs", tuple(self.outputs))
        set_(self, "input_shift", _frozen_array(np.broadcast_to(self.input_shift, (k_in,))))
        set_(self, "input_scale", _frozen_array(np.broadcast_to(self.input_scale, (k_in,))))
        set_(self, "output_scale", _frozen_array(np.broadcast_to(self.output_scale, (k_out,))))
        set_(self, "weights", tuple((_frozen_array(W), _frozen_array(b)) for W, b in self.weights))
        set_(self, "module_parameters", tuple(_frozen_array(a) for a in self.module_parameters))
        if self.kind not in ("mlp", "module"):
            raise ValueError(f"{where}: kind must be 'mlp' or 'module'; got {self.kind!r}.")
        if np.any(self.input_scale == 0):
            raise ValueError(f"{where}: input_scale must be nonzero; got {self.input_scale}.")
        if self.kind == "module":
            if len(self.module_parameter_names) != len(self.module_parameters):
                raise ValueError(f"{where}: one name per module parameter is required.")
            return
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"{where}: activation must be one of {', '.join(ACTIVATIONS)}; "
                f"got {self.activation!r}."
            )
        if not self.weights:
            raise ValueError(f"{where}: an MLP needs at least one layer; got none.")
        width = k_in
        for i, (W, b) in enumerate(self.weights):
            if W.ndim != 2 or W.shape[1] != width or b.shape != (W.shape[0],):
                raise ValueError(
                    f"{where}: layer {i} must have W of shape (out, {width}) and b of shape "
                    f"(out,); got W {W.shape} and b {b.shape}."
                )
            width = W.shape[0]
        if width != k_out:
            raise ValueError(
                f"{where}: the last layer must have {k_out} rows (one per output); got {width}."
            )

    @property
    def sizes(self) -> tuple[int, ...]:
        """Layer widths from input to output, e.g. ``(2, 32, 32, 2)`` (MLP only)."""
        return (len(self.inputs),) + tuple(W.shape[0] for W, _ in self.weights)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """This network's entries of the parameter vector, in layout order, unflattened."""
        if self.kind == "module":
            return self.module_parameters
        return tuple(a for layer in self.weights for a in layer)

    def array_names(self) -> tuple[str, ...]:
        """Names of `arrays`: ``"<name>.W0", "<name>.b0", ...`` (or the module's names)."""
        if self.kind == "module":
            return tuple(f"{self.name}.{n}" for n in self.module_parameter_names)
        return tuple(f"{self.name}.{c}{i}" for i in range(len(self.weights)) for c in "Wb")

    @property
    def n_parameters(self) -> int:
        """Number of scalars this network contributes to the parameter vector."""
        return int(sum(a.size for a in self.arrays()))

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Evaluate the MLP with numpy: ``x`` of shape ``(..., k_in)`` -> ``(..., k_out)``.

        The reference implementation of the formula in the module docstring (used by tests
        and by code generators as the definition).
        """
        if self.kind != "mlp":
            raise ValueError(f"NetworkSpec {self.name!r}: only an MLP can be evaluated here.")
        h = (np.asarray(x, dtype=np.float64) - self.input_shift) / self.input_scale
        last = len(self.weights) - 1
        for i, (W, b) in enumerate(self.weights):
            h = h @ W.T + b
            if i < last:
                h = _NUMPY_ACTIVATIONS[self.activation](h)
        return h * self.output_scale


def _gelu(x: np.ndarray) -> np.ndarray:
    from math import erf

    return 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))


_NUMPY_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "gelu": _gelu,
    "softplus": lambda x: np.logaddexp(0.0, x),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "rbf": lambda x: np.exp(-(x * x)),
}


@dataclass(frozen=True)
class ParameterSlot:
    """One entry of the parameter layout.

    Attributes:
        name: the physical parameter's name, or ``"<network>.W<k>"`` / ``"<network>.b<k>"``.
        shape: ``()`` for a physical parameter, the array's shape otherwise.
        offset: index of its first scalar in the flat vector.
        size: number of scalars.
    """

    name: str
    shape: tuple[int, ...]
    offset: int
    size: int


@dataclass(frozen=True, eq=False)
class SymbolicSystem:
    """A hybrid ODE model: equations in sympy, networks as plain arrays.

    Attributes:
        states: the state symbols, in the order of the state vector ``u``.
        time: the time symbol.
        params: physical parameter symbols, in parameter-vector order (see module doc).
        param_values: their current *values* (not the stored raw values), same order.
        positive: names of parameters stored through softplus: ``value = softplus(raw)``.
        fixed: names of parameters kept constant in training (still in the vector).
        equations: ``du_i/dt``, one expression per state, in state order. They use states,
            time, params, inputs and network output symbols only.
        networks: the networks, in parameter-vector order.
        inputs: symbols of known forcing functions of time.
        input_data: for each input, ``(times, values)`` arrays (1-D, same length, linear
            interpolation between them, constant beyond the ends) when it was given as data,
            or ``None`` when it is an opaque callable.
    """

    states: tuple[sympy.Symbol, ...]
    time: sympy.Symbol
    params: tuple[sympy.Symbol, ...]
    param_values: tuple[float, ...]
    equations: tuple[sympy.Expr, ...]
    networks: tuple[NetworkSpec, ...] = ()
    inputs: tuple[sympy.Symbol, ...] = ()
    positive: frozenset[str] = field(default_factory=frozenset)
    fixed: frozenset[str] = field(default_factory=frozenset)
    input_data: tuple[tuple[np.ndarray, np.ndarray] | None, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "states", tuple(self.states))
        set_(self, "params", tuple(self.params))
        set_(self, "param_values", tuple(float(v) for v in self.param_values))
        set_(self, "equations", tuple(sympy.sympify(e) for e in self.equations))
        set_(self, "networks", tuple(self.networks))
        set_(self, "inputs", tuple(self.inputs))
        set_(self, "positive", frozenset(self.positive))
        set_(self, "fixed", frozenset(self.fixed))
        data = tuple(self.input_data) or (None,) * len(self.inputs)
        set_(
            self,
            "input_data",
            tuple(None if d is None else (_frozen_array(d[0]), _frozen_array(d[1])) for d in data),
        )
        if len(self.equations) != len(self.states):
            raise ValueError(
                f"SymbolicSystem: one equation per state is required; got "
                f"{len(self.equations)} equations for {len(self.states)} states."
            )
        if len(self.param_values) != len(self.params):
            raise ValueError(
                f"SymbolicSystem: one value per parameter is required; got "
                f"{len(self.param_values)} values for {len(self.params)} parameters."
            )
        if len(self.input_data) != len(self.inputs):
            raise ValueError("SymbolicSystem: input_data must have one entry per input.")
        names = [str(s) for s in self.params]
        for name in self.positive | self.fixed:
            if name not in names:
                raise ValueError(f"SymbolicSystem: {name!r} is not a parameter.")

    @property
    def n_states(self) -> int:
        """Number of states ``n``."""
        return len(self.states)

    @property
    def output_symbols(self) -> tuple[sympy.Symbol, ...]:
        """All network outputs, network by network."""
        return tuple(o for net in self.networks for o in net.outputs)

    def stored_values(self) -> tuple[float, ...]:
        """The physical parameters as stored in the vector (raw for ``positive`` names)."""
        return tuple(
            softplus_inverse(v) if str(s) in self.positive else v
            for s, v in zip(self.params, self.param_values, strict=True)
        )

    def layout(self) -> tuple[ParameterSlot, ...]:
        """Every entry of the parameter vector, in order, with its offset and shape."""
        slots: list[ParameterSlot] = []
        offset = 0
        for s in self.params:
            slots.append(ParameterSlot(str(s), (), offset, 1))
            offset += 1
        for net in self.networks:
            for name, a in zip(net.array_names(), net.arrays(), strict=True):
                slots.append(ParameterSlot(name, tuple(a.shape), offset, int(a.size)))
                offset += int(a.size)
        return tuple(slots)

    @property
    def n_parameters(self) -> int:
        """Length of the flat parameter vector."""
        return len(self.params) + sum(net.n_parameters for net in self.networks)

    def flat_parameters(self) -> np.ndarray:
        """The flat float64 parameter vector in the documented layout (stored values)."""
        parts = [np.asarray(self.stored_values(), dtype=np.float64)]
        parts += [a.reshape(-1) for net in self.networks for a in net.arrays()]
        return np.concatenate(parts) if parts else np.zeros(0)

    def substituted_equations(self) -> tuple[sympy.Expr, ...]:
        """The equations with current parameter values put in (networks stay symbols)."""
        subs = dict(zip(self.params, (sympy.Float(v) for v in self.param_values), strict=True))
        return tuple(e.xreplace(subs) for e in self.equations)
