"""`UDE`: known physics written as equations, plus neural terms where knowledge is missing.

$$ \\frac{du}{dt} = g\\bigl(t, u, \\theta, F(t), U_\\phi(\\cdot)\\bigr) $$

The equations (sympy, or strings parsed safely by `ude_bridge.codegen.parse`) use the
states (the keys of ``equations``), the time ``t``, parameters $\\theta$, known forcing
inputs $F(t)$ and network outputs $U$. Everything is checked at construction; the model is
then compiled once into a fused functional right-hand side ``f(t, u, p)``
(`ude_bridge.codegen.to_torch`) whose ``p`` is the tuple of the model's own tensors, so
gradients reach its ``nn.Parameter`` s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np
import sympy
import torch
from torch import nn

from .._checks import check_finite, check_increasing, did_you_mean
from ..codegen.parse import check_name, parse_expression
from ..codegen.system import SymbolicSystem, softplus_inverse
from ..codegen.to_torch import torch_rhs
from ..errors import InputError, UnknownSymbolError
from ..problem import ODEProblem
from .networks import AbstractNetwork

__all__ = ["UDE"]


class _Interpolant:
    """Linear interpolation of data ``(times, values)``, constant beyond the ends."""

    def __init__(self, times: np.ndarray, values: np.ndarray) -> None:
        self.times, self.values = times, values
        self._cache: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        key = (t.dtype, t.device)
        if key not in self._cache:
            self._cache[key] = tuple(
                torch.as_tensor(a, dtype=t.dtype, device=t.device)
                for a in (self.times, self.values)
            )
        ts, vs = self._cache[key]
        i = torch.searchsorted(ts, t.detach().contiguous(), right=True).clamp(1, len(ts) - 1)
        t0, t1 = ts[i - 1], ts[i]
        w = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0)
        return vs[i - 1] + w * (vs[i] - vs[i - 1])


def _as_input(name: str, value: Any) -> tuple[Callable[..., Any], Any]:
    where = f"UDE: input {name!r}"
    if callable(value):
        return value, None
    try:
        times, values = (np.asarray(v, dtype=np.float64) for v in value)
    except (TypeError, ValueError):
        raise InputError(
            f"{where}: expected a callable F(t) or data (times, values); got "
            f"{type(value).__name__}."
        ) from None
    if times.ndim != 1 or times.shape != values.shape or len(times) < 2:
        raise InputError(
            f"{where}: times and values must be 1-D of the same length >= 2; got shapes "
            f"{times.shape} and {values.shape}."
        )
    check_finite(times, name="times", where=where)
    check_finite(values, name="values", where=where)
    check_increasing(times, name="times", where=where)
    return _Interpolant(times, values), (times, values)


class UDE(nn.Module):
    """A universal differential equation: equations over states, parameters and networks.

    Args:
        equations: ``{state: du/dt}``, each a string (e.g. ``"alpha*x + U1"``), a sympy
            expression or a number. The keys are the states, in order.
        params: ``{name: initial value}``; learnable ``nn.Parameter`` s unless in ``fixed``.
            The order is the order of the parameter vector.
        fixed: parameter names kept constant (stored as buffers).
        network: an `MLP`, a `Network` or a sequence of them; their outputs are symbols the
            equations use.
        positive: parameter names that must stay > 0: stored as ``raw`` with
            ``value = softplus(raw)``, so training cannot flip their sign.
        inputs: known forcing functions of time, ``{name: F}`` with ``F`` a callable
            ``F(t) -> tensor`` or data ``(times, values)`` (linearly interpolated).
        states: optional explicit state order; every state then needs an equation.
        time: the name of the time symbol.
        dtype: dtype of parameters and weights.

    Raises:
        UnknownSymbolError: an equation uses an undeclared symbol (with a suggestion).
        InputError: a state with no equation, a network output used in no equation, a
            network input that is not made of states/time/inputs, duplicate or reserved
            names, non-finite parameter values, non-positive ``positive`` values, an
            equation string that does not parse, an unsupported function.

    Example:
        >>> import ude_bridge as ub
        >>> model = ub.UDE({"x": "alpha*x + U1", "y": "-delta*y + U2"},
        ...                params={"alpha": 1.3, "delta": 1.8},
        ...                network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(32, 32)))
        >>> model(0.0, torch.ones(2, dtype=torch.float64)).shape
        torch.Size([2])
    """

    def __init__(
        self,
        equations: Mapping[str, Any],
        params: Mapping[str, float] | None = None,
        fixed: Collection[str] = (),
        network: AbstractNetwork | Sequence[AbstractNetwork] | None = None,
        *,
        positive: Collection[str] = (),
        inputs: Mapping[str, Any] | None = None,
        states: Sequence[str] | None = None,
        time: str = "t",
        dtype: torch.dtype = torch.float64,
        _unused_outputs: Collection[str] = (),
    ) -> None:
        super().__init__()
        where = "UDE"
        if not isinstance(equations, Mapping) or not equations:
            raise InputError(
                f"{where}: equations must be a non-empty dict {{state: expression}}; got "
                f"{equations!r}."
            )
        params = dict(params or {})
        inputs = dict(inputs or {})
        if isinstance(network, (str, bytes)) or (
            isinstance(network, nn.Module) and not isinstance(network, AbstractNetwork)
        ):
            raise InputError(
                f"{where}: network must be ub.MLP(...) or ub.Network(module, inputs=[...], "
                f"outputs=[...]); got {type(network).__name__}. Wrap a torch module in "
                "ub.Network to say which symbols it reads and writes."
            )
        nets = (
            []
            if network is None
            else [network]
            if isinstance(network, nn.Module)
            else list(network)
        )
        for net in nets:
            if not isinstance(net, AbstractNetwork):
                raise InputError(
                    f"{where}: each network must be ub.MLP or ub.Network; got {type(net).__name__}."
                )
        state_names = list(equations) if states is None else list(states)
        # names, classified; a name declared twice is an error
        kinds: dict[str, str] = {}

        def declare(name: Any, kind: str) -> str:
            check_name(name, where=where, what=kind)
            if name in kinds:
                raise InputError(
                    f"{where}: duplicate name {name!r}: declared as {kinds[name]} and as {kind}. "
                    "Give each state, parameter, input and network output its own name."
                )
            kinds[name] = kind
            return name

        for s in state_names:
            declare(s, "state")
        declare(time, "time")
        for p in params:
            declare(p, "parameter")
        for i in inputs:
            declare(i, "input")
        net_names: list[str] = []
        for k, net in enumerate(nets):
            for o in net.outputs:
                declare(o, f"output of network {net.name or k + 1!s}")
            net_name = net.name if net.name is not None else f"NN{k + 1}"
            check_name(net_name, where=where, what="network")
            if net_name in net_names or net_name in kinds:
                raise InputError(
                    f"{where}: duplicate name {net_name!r}: a network name must differ from "
                    "other networks' and every symbol's name. Pass MLP(..., name=...)."
                )
            net_names.append(net_name)
        missing = [s for s in state_names if s not in equations]
        if missing:
            raise InputError(
                f"{where}: state {missing[0]!r} has no equation; equations were given for "
                f"{', '.join(map(str, equations))}. Add an equation for {missing[0]!r}."
            )
        extra = [k for k in equations if k not in state_names]
        if extra:
            raise InputError(
                f"{where}: equation for {extra[0]!r}, which is not a state."
                + did_you_mean(str(extra[0]), state_names, what="state")
            )
        for name in list(fixed) + list(positive):
            if name not in params:
                raise UnknownSymbolError(
                    f"{where}: {name!r} in fixed/positive is not a parameter."
                    + did_you_mean(str(name), list(params), what="parameter")
                )
        for name, value in params.items():
            if isinstance(value, bool) or not isinstance(
                value, (int, float, np.floating, np.integer)
            ):
                if not (isinstance(value, torch.Tensor) and value.numel() == 1):
                    raise InputError(
                        f"{where}: parameter {name!r} must be a number; got {value!r}."
                    )
            check_finite(float(value), name=f"parameter {name!r}", where=where)
            if name in positive and not float(value) > 0:
                raise InputError(
                    f"{where}: parameter {name!r} is declared positive, so its value must be "
                    f"> 0; got {float(value)!r}. Give a positive initial value."
                )

        sym = {name: sympy.Symbol(name) for name in kinds}
        allowed_in = {n for n, k in kinds.items() if k in ("state", "time", "input")}
        net_inputs: list[tuple[sympy.Expr, ...]] = []
        for k, net in enumerate(nets):
            exprs = []
            for text in net.inputs:
                w = f"{where}: input {str(text)!r} of network {net_names[k]!r}"
                try:
                    e = parse_expression(text, {n: sym[n] for n in allowed_in}, where=w)
                except UnknownSymbolError:
                    e = parse_expression(text, sym, where=w)
                    bad = sorted(str(s) for s in e.free_symbols if str(s) not in allowed_in)
                    raise InputError(
                        f"{w}: uses {kinds[bad[0]]} {bad[0]!r}; network inputs may use only "
                        f"states ({', '.join(state_names)}), time {time!r} and inputs"
                        f"{' (' + ', '.join(inputs) + ')' if inputs else ''}."
                    ) from None
                exprs.append(e)
            net_inputs.append(tuple(exprs))
        eqs = tuple(
            parse_expression(equations[s], sym, where=f"{where}: equation for {s!r}")
            for s in state_names
        )
        used = set().union(*(e.free_symbols for e in eqs))
        for k, net in enumerate(nets):
            for o in net.outputs:
                if sym[o] not in used and o not in _unused_outputs:
                    raise InputError(
                        f"{where}: output {o!r} of network {net_names[k]!r} is used in no "
                        "equation. Use it in an equation or remove it from the network's "
                        "outputs."
                    )

        self._states = tuple(sym[s] for s in state_names)
        self._time = sym[time]
        self._params = tuple(sym[p] for p in params)
        self._inputs = tuple(sym[i] for i in inputs)
        self._equations = eqs
        self._net_names = tuple(net_names)
        self._net_inputs = tuple(net_inputs)
        self._net_outputs = tuple(tuple(sym[o] for o in net.outputs) for net in nets)
        self.positive = frozenset(positive)
        self.fixed = frozenset(fixed)
        self._unused_outputs = frozenset(_unused_outputs)
        made = [_as_input(name, value) for name, value in inputs.items()]
        self._input_fns = tuple(m[0] for m in made)
        self._input_data = tuple(m[1] for m in made)
        self._input_given = dict(inputs)

        self.params = nn.ParameterDict()
        self.fixed_params = nn.Module()
        for name, value in params.items():
            raw = softplus_inverse(float(value)) if name in self.positive else float(value)
            tensor = torch.tensor(raw, dtype=dtype)
            if name in self.fixed:
                self.fixed_params.register_buffer(name, tensor)
            else:
                self.params[name] = nn.Parameter(tensor)
        self.networks = nn.ModuleList(nets)
        self.to(dtype)
        self._dtype = dtype  # for a model with no parameters and no networks
        self._rhs_cache: dict[str, Callable[..., torch.Tensor]] = {}
        self._fingerprint: tuple[Any, ...] | None = None
        self._function("full")  # an untranslatable equation fails here, not at solve time

    # ----------------------------------------------------------------- functional core
    def _compile(self, part: str) -> Callable[..., torch.Tensor]:
        modules = [(lambda x, w, _n=net: _n.call_with(x, w)) for net in self.networks]
        return torch_rhs(self.system(), inputs=self._input_fns, modules=modules, part=part)

    def _function(self, part: str) -> Callable[..., torch.Tensor]:
        # The generated code bakes in the networks' input/output scaling (and skips it
        # when trivial), so regenerate when a buffer was replaced or changed in place.
        fingerprint = tuple((id(b), b._version) for b in self.networks.buffers())
        if fingerprint != self._fingerprint:
            self._rhs_cache.clear()
            self._fingerprint = fingerprint
        if part not in self._rhs_cache:
            self._rhs_cache[part] = self._compile(part)
        return self._rhs_cache[part]

    @property
    def rhs(self) -> Callable[..., torch.Tensor]:
        """The functional right-hand side ``f(t, u, p)``; ``p`` as in `param_tensors`."""
        return self._function("full")

    def _stored(self, name: str) -> torch.Tensor:
        return self.fixed_params.get_buffer(name) if name in self.fixed else self.params[name]

    def param_tensors(self) -> tuple[torch.Tensor, ...]:
        """The model's tensors in the layout of `SymbolicSystem` (raw for positive ones)."""
        physical = tuple(self._stored(str(p)) for p in self._params)
        return physical + tuple(t for net in self.networks for t in net.weight_tensors())

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the parameters and weights (the ``dtype`` given when there are none)."""
        tensors = self.param_tensors()
        return tensors[0].dtype if tensors else self._dtype

    def _tu(self, t: Any, u: Any) -> tuple[torch.Tensor, torch.Tensor]:
        u = torch.as_tensor(u, dtype=self.dtype) if not isinstance(u, torch.Tensor) else u
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t, dtype=torch.float64, device=u.device)
        return t, u

    def forward(self, t: Any, u: Any) -> torch.Tensor:
        """$du/dt$ at ``(t, u)``: ``u`` of shape ``(..., n)``, ``t`` a number or tensor."""
        t, u = self._tu(t, u)
        return self.rhs(t, u, self.param_tensors())

    def problem(self, u0: Any, tspan: Sequence[float]) -> ODEProblem:
        """An `ODEProblem` with ``f = model.rhs`` and ``params = model.param_tensors()``.

        ``u0`` is converted to the model's dtype.
        """
        if not isinstance(u0, torch.Tensor):
            try:
                u0 = torch.as_tensor(np.asarray(u0, dtype=np.float64), dtype=self.dtype)
            except (TypeError, ValueError):
                raise InputError(f"UDE.problem: u0 must be numeric; got {u0!r}.") from None
        elif u0.is_floating_point() and u0.dtype != self.dtype:
            u0 = u0.to(self.dtype)
        if u0.shape[-1:] != (len(self._states),):
            raise InputError(
                f"UDE.problem: u0 must have shape (n,) or (B, n) with n={len(self._states)} "
                f"(states {', '.join(map(str, self._states))}); got shape {tuple(u0.shape)}."
            )
        return ODEProblem(self.rhs, u0, tspan, params=self.param_tensors())

    def known_part(self, t: Any, u: Any) -> torch.Tensor:
        """The right-hand side with every network output set to 0, shaped like ``u``."""
        t, u = self._tu(t, u)
        return self._function("known")(t, u, self.param_tensors())

    def network_part(self, t: Any, u: Any) -> torch.Tensor:
        """``model(t, u) - known_part(t, u)``: what the networks contribute to du/dt."""
        return self.forward(t, u) - self.known_part(t, u)

    def network_outputs(self, t: Any, u: Any) -> dict[str, torch.Tensor]:
        """Each network output along ``(t, u)``: ``{name: tensor of shape u.shape[:-1]}``."""
        t, u = self._tu(t, u)
        out = self._function("outputs")(t, u, self.param_tensors())
        names = [str(o) for outs in self._net_outputs for o in outs]
        return dict(zip(names, out.unbind(-1), strict=True))

    # ----------------------------------------------------------------- symbolic views
    def parameters_dict(self) -> dict[str, float]:
        """Physical parameter values (softplus applied to positive ones), by name."""
        out = {}
        for p in self._params:
            raw = float(self._stored(str(p)).detach())
            out[str(p)] = float(np.logaddexp(0.0, raw)) if str(p) in self.positive else raw
        return out

    def system(self) -> SymbolicSystem:
        """The model as plain data (`SymbolicSystem`), with current values and weights."""
        values = self.parameters_dict()
        return SymbolicSystem(
            states=self._states,
            time=self._time,
            params=self._params,
            param_values=tuple(values[str(p)] for p in self._params),
            equations=self._equations,
            networks=tuple(
                net.spec(ins, outs, name)
                for net, ins, outs, name in zip(
                    self.networks, self._net_inputs, self._net_outputs, self._net_names, strict=True
                )
            ),
            inputs=self._inputs,
            positive=self.positive,
            fixed=self.fixed,
            input_data=self._input_data,
        )

    def to_sympy(self, *, values: bool = True) -> dict[str, sympy.Expr]:
        """``{state: du/dt}`` with networks as function symbols, e.g. ``U1(x, y)``.

        Args:
            values: put in the current parameter values (else keep parameter symbols).
        """
        subs: dict[sympy.Symbol, sympy.Expr] = {}
        for ins, outs in zip(self._net_inputs, self._net_outputs, strict=True):
            subs.update({o: sympy.Function(str(o))(*ins) for o in outs})
        if values:
            vals = self.parameters_dict()
            subs.update({p: sympy.Float(vals[str(p)]) for p in self._params})
        return {
            str(s): e.xreplace(subs) for s, e in zip(self._states, self._equations, strict=True)
        }

    def to_latex(self, *, values: bool = True) -> str:
        """The equations as one LaTeX ``aligned`` block, ``\\frac{dx}{dt} &= ...``."""
        lines = [
            f"\\frac{{d{sympy.latex(sympy.Symbol(s))}}}{{d{sympy.latex(self._time)}}} &= "
            f"{sympy.latex(e)}"
            for s, e in self.to_sympy(values=values).items()
        ]
        return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"

    def replace(
        self,
        subs: Mapping[str, Any] | None = None,
        /,
        *,
        params: Mapping[str, float] | None = None,
        **outputs: Any,
    ) -> UDE:
        """A new model with network outputs replaced by expressions (used by discovery).

        Args:
            subs: ``{output: expression}``; keyword arguments ``U1=...`` add to it.
            params: new parameters the expressions use, ``{name: value}`` (learnable).

        Returns:
            A `UDE` with the current parameter values and copies of the networks that still
            have an output in use (networks whose outputs are all replaced are dropped).

        Raises:
            UnknownSymbolError: a name that is not a network output, or an expression that
                uses an undeclared symbol.
        """
        subs = {**dict(subs or {}), **outputs}
        all_outputs = {str(o): o for outs in self._net_outputs for o in outs}
        for name in subs:
            if name not in all_outputs:
                raise UnknownSymbolError(
                    f"UDE.replace: {name!r} is not a network output."
                    + did_you_mean(name, list(all_outputs), what="network output")
                )
        values = {**self.parameters_dict(), **dict(params or {})}
        table = {str(s): s for s in (*self._states, self._time, *self._inputs)}
        table.update({n: sympy.Symbol(n) for n in values})
        table.update({n: o for n, o in all_outputs.items() if n not in subs})
        exprs = {
            all_outputs[n]: parse_expression(e, table, where=f"UDE.replace: expression for {n!r}")
            for n, e in subs.items()
        }
        eqs = {
            str(s): e.xreplace(exprs) for s, e in zip(self._states, self._equations, strict=True)
        }
        keep = [
            (net, name)
            for net, outs, name in zip(
                self.networks, self._net_outputs, self._net_names, strict=True
            )
            if any(str(o) not in subs for o in outs)
        ]
        nets = []
        for net, name in keep:
            new = copy.deepcopy(net)
            new.name = name
            nets.append(new)
        return UDE(
            eqs,
            params=values,
            fixed=self.fixed,
            network=nets,
            positive=self.positive,
            inputs=self._input_given,
            states=[str(s) for s in self._states],
            time=str(self._time),
            dtype=self.dtype,
            _unused_outputs=set(subs) | self._unused_outputs,
        )

    def scale_inputs_from(self, t: Any, u: Any) -> None:
        """Set every MLP's input range to the range its inputs take along ``(t, u)``.

        ``u`` is ``(..., n)`` data (e.g. all observed states), ``t`` broadcastable to
        ``u.shape[:-1]``. Inputs that are constant along the data keep a unit scale.
        """
        t, u = self._tu(t, u)
        t = torch.broadcast_to(t.to(u.dtype), u.shape[:-1])
        env: dict[sympy.Symbol, Any] = dict(zip(self._states, u.detach().unbind(-1), strict=True))
        env[self._time] = t.detach()
        env.update({s: f(t.detach()) for s, f in zip(self._inputs, self._input_fns, strict=True)})
        for net, ins in zip(self.networks, self._net_inputs, strict=True):
            if not hasattr(net, "set_input_range"):
                continue
            cols = []
            for e in ins:
                fn = sympy.lambdify(list(env), e, modules="numpy")
                vals = np.broadcast_to(
                    fn(*(v.cpu().numpy() for v in env.values())), tuple(u.shape[:-1])
                )
                cols.append(np.asarray(vals, dtype=np.float64).reshape(-1))
            lo = np.array([c.min() for c in cols])
            hi = np.array([c.max() for c in cols])
            same = hi <= lo
            lo, hi = np.where(same, lo - 1.0, lo), np.where(same, lo + 1.0, hi)
            net.set_input_range(lo, hi)

    def extra_repr(self) -> str:
        eqs = ", ".join(
            f"d{s}/dt = {e}" for s, e in zip(self._states, self._equations, strict=True)
        )
        return f"{eqs}; params={self.parameters_dict()}"
