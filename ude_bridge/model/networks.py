"""Neural terms of a UDE: `MLP` (exportable to every backend) and `Network` (any module).

A network maps its ``inputs`` (names of states, ``t``, forcing inputs, or expressions of
them, e.g. ``"x*y"``) to named ``outputs`` (e.g. ``"U1"``) that the equations use. The UDE
never calls the module inside the solver: the generated right-hand side uses the weight
tensors directly (see `ude_bridge.codegen.to_torch`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import sympy
import torch
from torch import nn

from .._checks import check_finite, did_you_mean
from ..codegen.system import ACTIVATIONS, NetworkSpec
from ..errors import InputError

__all__ = ["AbstractNetwork", "MLP", "Network"]

_TORCH_ACTIVATIONS: dict[str, Any] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "gelu": nn.functional.gelu,
    "softplus": nn.functional.softplus,
    "sigmoid": torch.sigmoid,
    "silu": nn.functional.silu,
    "rbf": lambda h: torch.exp(-torch.square(h)),
}


def _names(value: Any, *, where: str, what: str) -> tuple[Any, ...]:
    if isinstance(value, (str, sympy.Basic)):
        value = (value,)
    try:
        items = tuple(value)
    except TypeError:
        raise InputError(
            f"{where}: {what} must be a sequence of names; got {type(value).__name__}."
        ) from None
    if not items:
        raise InputError(f"{where}: {what} must not be empty; got {value!r}.")
    return items


class AbstractNetwork(nn.Module):
    """A neural term: ``inputs`` -> ``outputs``, with its weights in layout order.

    Attributes:
        inputs: the input expressions as given (strings or sympy), ``k_in`` of them.
        outputs: output names, ``k_out`` of them.
        name: the network's name in the model (None: the UDE assigns ``NN1``, ``NN2``...).
    """

    inputs: tuple[Any, ...]
    outputs: tuple[str, ...]
    name: str | None

    def weight_tensors(self) -> tuple[torch.Tensor, ...]:
        """The tensors this network adds to the parameter tuple, in layout order."""
        raise NotImplementedError

    def spec(
        self, inputs: Sequence[sympy.Expr], outputs: Sequence[sympy.Symbol], name: str
    ) -> NetworkSpec:
        """This network as plain data, with its current weights."""
        raise NotImplementedError

    def call_with(self, x: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Evaluate with the given weight tensors instead of the stored ones."""
        raise NotImplementedError


class MLP(AbstractNetwork):
    """A multilayer perceptron ``inputs -> hidden... -> outputs``.

    $$ h_0 = (x - s) \\oslash c, \\quad h_k = \\sigma(W_k h_{k-1} + b_k), \\quad
       y = (W_L h_{L-1} + b_L) \\odot o, $$

    with $\\sigma$ applied after every hidden layer, the input shift $s$ and scale $c$ and
    the output scale $o$ fixed (buffers, not trained). Weights are initialised
    Glorot-uniform, $W \\sim U(-a, a)$ with $a = \\sqrt{6 / (n_{in} + n_{out})}$, biases at
    zero, from a generator seeded with ``seed`` (the global RNG is not touched).

    Args:
        inputs: names of states, ``"t"``, forcing inputs, or expressions of them.
        outputs: names the equations use for the outputs, e.g. ``("U1", "U2")``.
        hidden: widths of the hidden layers, e.g. ``(32, 32)``; ``()`` is a linear map.
        activation: ``"tanh"``, ``"relu"``, ``"gelu"``, ``"softplus"``, ``"sigmoid"``,
            ``"silu"`` or ``"rbf"`` (Gaussian, $e^{-x^2}$, as in the UDE paper).
        input_range: ``(lo, hi)`` per input (or one pair for all): maps the range to
            ``[-1, 1]``, i.e. ``shift = (lo + hi) / 2``, ``scale = (hi - lo) / 2``.
        input_shift: explicit shift (scalar or one per input); default 0.
        input_scale: explicit scale (scalar or one per input, nonzero); default 1.
        output_scale: factor on the outputs (scalar or one per output); default 1.
        seed: seed of the initialisation.
        name: the network's name (default: assigned by the UDE).
        dtype: dtype of the weights (the UDE converts to its own dtype).

    Raises:
        InputError: empty inputs/outputs, bad widths, an unknown activation, non-finite or
            zero scales, a range with ``lo >= hi``.

    Example:
        >>> net = MLP(["x", "y"], ["U1", "U2"], hidden=(32, 32), activation="tanh")
        >>> net(torch.zeros(5, 2, dtype=torch.float64)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        inputs: Sequence[str | sympy.Expr],
        outputs: Sequence[str],
        hidden: Sequence[int] = (32, 32),
        activation: str = "tanh",
        *,
        input_range: Any = None,
        input_shift: Any = None,
        input_scale: Any = None,
        output_scale: Any = None,
        seed: int = 0,
        name: str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        where = "MLP"
        self.inputs = _names(inputs, where=where, what="inputs")
        self.outputs = _names(outputs, where=where, what="outputs")
        self.name = name
        if isinstance(hidden, int):
            hidden = (hidden,)
        hidden = tuple(hidden)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise InputError(
                f"{where}: hidden must be positive integer widths such as (32, 32); got {hidden!r}."
            )
        if activation not in ACTIVATIONS:
            raise InputError(
                f"{where}: unknown activation {activation!r}."
                + did_you_mean(str(activation), ACTIVATIONS, what="activation")
            )
        self.activation = activation
        self.hidden = hidden
        k_in, k_out = len(self.inputs), len(self.outputs)
        sizes = (k_in, *hidden, k_out)
        gen = torch.Generator().manual_seed(int(seed))
        self.layers = nn.ModuleList()
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layer = nn.Linear(n_in, n_out, dtype=dtype)
            bound = math.sqrt(6.0 / (n_in + n_out))
            with torch.no_grad():
                layer.weight.copy_(torch.rand(n_out, n_in, generator=gen, dtype=torch.float64))
                layer.weight.mul_(2 * bound).sub_(bound)
                layer.bias.zero_()
            self.layers.append(layer)
        shift, scale = self._input_scaling(input_range, input_shift, input_scale, k_in)
        out = self._vector(output_scale, k_out, "output_scale", default=1.0)
        if np.any(out == 0):
            raise InputError(f"{where}: output_scale must be nonzero; got {out.tolist()}.")
        self.register_buffer("input_shift", torch.as_tensor(shift, dtype=dtype))
        self.register_buffer("input_scale", torch.as_tensor(scale, dtype=dtype))
        self.register_buffer("output_scale", torch.as_tensor(out, dtype=dtype))

    @staticmethod
    def _vector(value: Any, k: int, what: str, *, default: float) -> np.ndarray:
        if value is None:
            return np.full(k, default)
        try:
            arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (k,)).copy()
        except (ValueError, TypeError):
            raise InputError(
                f"MLP: {what} must be a number or {k} numbers (one per entry); got {value!r}."
            ) from None
        check_finite(arr, name=what, where="MLP")
        return arr

    def _input_scaling(
        self, input_range: Any, shift: Any, scale: Any, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if input_range is not None:
            if shift is not None or scale is not None:
                raise InputError(
                    "MLP: give either input_range or input_shift/input_scale; got both."
                )
            try:
                rng = np.broadcast_to(np.asarray(input_range, dtype=np.float64), (k, 2))
            except (ValueError, TypeError):
                raise InputError(
                    f"MLP: input_range must be (lo, hi) or one (lo, hi) per input ({k}); got "
                    f"{input_range!r}."
                ) from None
            check_finite(rng, name="input_range", where="MLP")
            bad = np.nonzero(rng[:, 0] >= rng[:, 1])[0]
            if len(bad):
                i = int(bad[0])
                raise InputError(
                    f"MLP: input_range must have lo < hi; got {tuple(rng[i])} for input "
                    f"{self.inputs[i]!r}."
                )
            return (rng[:, 0] + rng[:, 1]) / 2, (rng[:, 1] - rng[:, 0]) / 2
        shift_v = self._vector(shift, k, "input_shift", default=0.0)
        scale_v = self._vector(scale, k, "input_scale", default=1.0)
        if np.any(scale_v == 0):
            raise InputError(f"MLP: input_scale must be nonzero; got {scale_v.tolist()}.")
        return shift_v, scale_v

    def set_input_range(self, lo: Any, hi: Any) -> None:
        """Scale the inputs so that ``[lo, hi]`` maps to ``[-1, 1]`` (one value per input)."""
        shift, scale = self._input_scaling(
            np.stack(np.broadcast_arrays(lo, hi), axis=-1), None, None, len(self.inputs)
        )
        with torch.no_grad():
            self.input_shift.copy_(torch.as_tensor(shift))
            self.input_scale.copy_(torch.as_tensor(scale))

    def weight_tensors(self) -> tuple[torch.Tensor, ...]:
        """``W0, b0, W1, b1, ...``: the layout order of `ude_bridge.codegen.system`."""
        return tuple(t for layer in self.layers for t in (layer.weight, layer.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate: ``x`` of shape ``(..., k_in)`` -> ``(..., k_out)``."""
        return self.call_with(x, self.weight_tensors())

    def call_with(self, x: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Evaluate with the weight tensors ``weights`` (layout order)."""
        act = _TORCH_ACTIVATIONS[self.activation]
        h = (x - self.input_shift) / self.input_scale
        n = len(weights) // 2
        for i in range(n):
            h = nn.functional.linear(h, weights[2 * i], weights[2 * i + 1])
            if i < n - 1:
                h = act(h)
        return h * self.output_scale

    def spec(
        self, inputs: Sequence[sympy.Expr], outputs: Sequence[sympy.Symbol], name: str
    ) -> NetworkSpec:
        """This MLP as a `NetworkSpec`, with its current weights (float64 copies)."""

        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().to("cpu", torch.float64).numpy()

        return NetworkSpec(
            name=name,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            weights=tuple((arr(layer.weight), arr(layer.bias)) for layer in self.layers),
            activation=self.activation,
            input_shift=arr(self.input_shift),
            input_scale=arr(self.input_scale),
            output_scale=arr(self.output_scale),
        )

    def extra_repr(self) -> str:
        sizes = (len(self.inputs), *self.hidden, len(self.outputs))
        return (
            f"inputs={list(map(str, self.inputs))}, outputs={list(self.outputs)}, "
            f"sizes={sizes}, activation={self.activation!r}"
        )


class Network(AbstractNetwork):
    """A user's own ``torch.nn.Module`` as a neural term.

    The module must map a tensor of shape ``(..., k_in)`` to ``(..., k_out)``; this is
    checked once at construction on a small batch of zeros. Inside the solver it is called
    through ``torch.func.functional_call`` with the weights of the parameter tuple (or
    directly, when that tuple holds the module's own parameters). Such a network runs on
    the torch backend only: it cannot be exported to Julia.

    Args:
        module: the module.
        inputs: names of states, ``"t"``, forcing inputs, or expressions of them.
        outputs: names the equations use for its outputs.
        name: the network's name (default: assigned by the UDE).

    Raises:
        InputError: ``module`` is not an ``nn.Module``, or its output has the wrong shape.
    """

    def __init__(
        self,
        module: nn.Module,
        inputs: Sequence[str | sympy.Expr],
        outputs: Sequence[str],
        *,
        name: str | None = None,
    ) -> None:
        super().__init__()
        where = "Network"
        if not isinstance(module, nn.Module):
            raise InputError(
                f"{where}: module must be a torch.nn.Module; got {type(module).__name__}."
            )
        self.inputs = _names(inputs, where=where, what="inputs")
        self.outputs = _names(outputs, where=where, what="outputs")
        self.name = name
        self.module = module
        self._param_names = tuple(n for n, _ in module.named_parameters())
        k_in, k_out = len(self.inputs), len(self.outputs)
        first = next(module.parameters(), None)
        dtype = first.dtype if first is not None else torch.get_default_dtype()
        try:
            with torch.no_grad():
                y = module(torch.zeros(3, k_in, dtype=dtype))
        except Exception as exc:
            raise InputError(
                f"{where}: the module must accept a tensor of shape (3, {k_in}) (one column "
                f"per input {list(map(str, self.inputs))}); calling it raised "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(y, torch.Tensor) or tuple(y.shape) != (3, k_out):
            shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise InputError(
                f"{where}: the module must map shape (3, {k_in}) to (3, {k_out}) (one column "
                f"per output {list(self.outputs)}); got {shape}."
            )

    def weight_tensors(self) -> tuple[torch.Tensor, ...]:
        """The module's parameters in ``named_parameters()`` order."""
        return tuple(self.module.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Evaluate the module: ``(..., k_in)`` -> ``(..., k_out)``."""
        return self.module(x)

    def call_with(self, x: torch.Tensor, weights: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Evaluate with ``weights`` in place of the module's parameters."""
        own = self.weight_tensors()
        if len(own) == len(weights) and all(a is b for a, b in zip(own, weights, strict=True)):
            return self.module(x)
        return torch.func.functional_call(
            self.module, dict(zip(self._param_names, weights, strict=True)), (x,)
        )

    def spec(
        self, inputs: Sequence[sympy.Expr], outputs: Sequence[sympy.Symbol], name: str
    ) -> NetworkSpec:
        """A `NetworkSpec` of kind ``"module"`` holding the module's parameter arrays."""
        return NetworkSpec(
            name=name,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            weights=(),
            activation="module",
            input_shift=0.0,
            input_scale=1.0,
            output_scale=1.0,
            kind="module",
            module_parameters=tuple(
                p.detach().to("cpu", torch.float64).numpy() for p in self.weight_tensors()
            ),
            module_parameter_names=self._param_names,
        )
