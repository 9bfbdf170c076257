"""`discover`: trained networks -> equations; `Discovery`: what it found.

The pipeline is: samples of each unknown term (`ude_bridge.discover.sampling`), then per
network output either sparse regression over a term library (``method="sindy"``,
`ude_bridge.discover.sindy`) or symbolic regression (``method="pysr"``,
`ude_bridge.discover.pysr`). The equations replace the networks in the model
(`UDE.replace`), and `Discovery.refit` re-estimates their coefficients together with the
physical parameters against the data.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import sympy
import torch

from .._checks import did_you_mean
from .._io import atomic_write_text
from ..errors import InputError, UnknownSymbolError
from .library import Library, polynomial
from .sampling import Samples, Source, samples_from
from .sindy import sparse_fit
from .trajectory import physical_parameters, refine_options, refined_losses, step_budget

__all__ = ["PYSR_OPTIONS", "SINDY_OPTIONS", "Discovery", "OutputFit", "ParetoPoint", "discover"]

#: ``method="sindy"`` keywords and their defaults (see `ude_bridge.discover.sindy.sparse_fit`).
SINDY_OPTIONS: dict[str, Any] = {
    "optimizers": ("stlsq", "ssr"),
    "criterion": "bic",
    "tolerance": 0.02,
    "n_folds": 5,
    "ensemble": 0,
    "n_thresholds": 15,
    "select": "auto",
    "trajectory_tolerance": 0.5,
}
#: Most combinations of candidates simulated when selecting by trajectory, how many
#: candidates per number of terms each output contributes, and how many points of each
#: output's Pareto front get their misfit reported.
MAX_SIMULATED = 64
PER_LEVEL = 3
MAX_PARETO = 10
#: Gauss-Newton iterations on the coefficients, learnable parameters and initial states of
#: each combination before its misfit is measured.
REFINE_ITERATIONS = 3
#: ``method="pysr"`` keywords (see `ude_bridge.discover.pysr.pysr_arguments`).
PYSR_OPTIONS = (
    "binary_operators",
    "unary_operators",
    "maxsize",
    "maxdepth",
    "populations",
    "population_size",
    "niterations",
    "timeout",
    "parsimony",
    "model_selection",
    "extra",
)


@dataclass(frozen=True)
class OutputFit:
    """One row of `Discovery.table`: what was found for one output.

    Attributes:
        output: the network output (or, on the derivative route without a model, the state
            whose derivative it is).
        expression: the expression found.
        terms: its terms, e.g. ``(x*y,)``; coefficients: their coefficients, same order.
        error: normalised RMSE $\\|U - \\hat U\\|_{rms} / \\|U\\|_{rms}$ on held-out samples
            (SINDy) or on all samples (PySR).
        complexity: the number of terms (SINDy) or PySR's complexity.
        inclusion: per library term, the fraction of bagged models using it (``ensemble``).
        trajectory_loss: the data misfit of the model with this expression in place of the
            network (`ude_bridge.discover.trajectory.trajectory_loss`), when simulated.
    """

    output: str
    expression: sympy.Expr
    terms: tuple[sympy.Expr, ...]
    coefficients: tuple[float, ...]
    error: float
    complexity: int
    inclusion: tuple[float, ...] | None = None
    trajectory_loss: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain data (strings and floats), for JSON."""
        return {
            "expression": str(self.expression),
            "terms": [str(t) for t in self.terms],
            "coefficients": list(self.coefficients),
            "error": self.error,
            "complexity": self.complexity,
            "inclusion": None if self.inclusion is None else list(self.inclusion),
            "trajectory_loss": self.trajectory_loss,
        }


@dataclass(frozen=True)
class ParetoPoint:
    """One point of the complexity / error front: no simpler candidate has a lower error.

    ``trajectory_loss`` is the data misfit with this expression in place of the network
    (None when not simulated)."""

    complexity: int
    error: float
    expression: sympy.Expr
    selected: bool = False
    trajectory_loss: float | None = None


def _lift_floats(expr: sympy.Expr, prefix: str, taken: set[str]) -> tuple[sympy.Expr, dict]:
    """Replace every Float in ``expr`` by its own new symbol: ``(expr, {name: value})``."""
    params: dict[str, float] = {}

    def walk(e: sympy.Expr) -> sympy.Expr:
        if isinstance(e, sympy.Float):
            name = f"{prefix}_{len(params)}"
            while name in taken:
                name += "_"
            taken.add(name)
            params[name] = float(e)
            return sympy.Symbol(name)
        if not e.args:
            return e
        return e.func(*(walk(a) for a in e.args), evaluate=False)

    return walk(expr), params


class Discovery:
    """What `discover` found, and what to do with it next.

    Attributes:
        method: ``"sindy"`` or ``"pysr"``.
        expressions: ``{output: sympy expression}``, e.g. ``{"U1": -0.9*x*y}``.
        table: ``{output: OutputFit}`` (terms, coefficients, error, complexity).
        pareto: ``{output: (ParetoPoint, ...)}``, sparsest first.
        libraries: ``{output: Library}`` used (None for PySR without a library).
        samples: the `Samples` regressed on.
        refit_expressions: the expressions with the coefficients of the last `refit`.
    """

    def __init__(
        self,
        *,
        method: str,
        expressions: dict[str, sympy.Expr],
        table: dict[str, OutputFit],
        pareto: dict[str, tuple[ParetoPoint, ...]],
        libraries: dict[str, Library | None],
        samples: Samples,
        source_model: Any = None,
        data: Any = None,
        fit_options: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.method = method
        self.expressions = dict(expressions)
        self.table = dict(table)
        self.pareto = dict(pareto)
        self.libraries = dict(libraries)
        self.samples = samples
        self.source_model = source_model
        self.data = data
        self.fit_options = dict(fit_options or {})
        self.options = dict(options or {})
        self.refit_expressions: dict[str, sympy.Expr] | None = None

    # ------------------------------------------------------------------ models
    def _build(self, expressions: Mapping[str, sympy.Expr], params: dict[str, float]) -> Any:
        from ..model.ude import UDE

        if self.source_model is not None:
            return self.source_model.replace(dict(expressions), params=params)
        states = list(getattr(self.data, "states", ()))
        if not states or any(s not in expressions for s in states):
            raise InputError(
                "Discovery: no model to put the expressions in: discovery ran on bare samples "
                "or on some states only. Discover from ub.fit's result, or from data for every "
                "state."
            )
        return UDE({s: expressions[s] for s in states}, params=params)

    @property
    def model(self) -> Any:
        """The `UDE` with the discovered expressions in place of the networks (with data
        only: a UDE whose right-hand sides are the expressions)."""
        return self._build(self.expressions, {})

    def parameterized(self) -> tuple[Any, dict[str, sympy.Expr]]:
        """The model with every discovered coefficient a learnable parameter.

        The coefficients of output ``U1`` are named ``c_U1_0, c_U1_1, ...`` (a trailing
        ``_`` is added where a name is taken).

        Returns:
            ``(model, {output: expression over the coefficient symbols})``.
        """
        taken: set[str] = set()
        if self.source_model is not None:
            taken |= set(self.source_model.parameters_dict())
            taken |= {str(s) for s in self.source_model.system().states}
        exprs, params = {}, {}
        for out, expr in self.expressions.items():
            exprs[out], p = _lift_floats(expr, f"c_{out}", taken)
            params.update(p)
        return self._build(exprs, params), exprs

    def refit(
        self,
        data: Any = None,
        *,
        optimizers: Sequence[Any] = (("lbfgs", 100),),
        **fit_kwargs: Any,
    ) -> Any:
        """Re-estimate the discovered coefficients with the physical parameters by `ub.fit`.

        The model is `parameterized` (no networks left where every output was discovered)
        and trained against ``data`` (default: the data of the original fit) with the
        original fit's solver settings, starting from the discovered values.

        Args:
            data: `Trajectories`; default the data discovery came from.
            optimizers: the training schedule (a short L-BFGS run by default).
            **fit_kwargs: passed on to `ub.fit` (e.g. ``progress``, ``rtol``).

        Returns:
            The `FitResult`; ``refit_expressions`` then holds the refitted expressions.
        """
        from ..train import fit

        data = self.data if data is None else data
        if data is None:
            raise InputError(
                "Discovery.refit: no data to refit against; pass data=ub.Trajectories(...)."
            )
        model, exprs = self.parameterized()
        inherited = {
            k: self.fit_options[k]
            for k in ("method", "rtol", "atol", "sensealg", "learn_u0", "max_steps", "backend")
            if k in self.fit_options
        }
        kwargs = {"progress": False, **inherited, **fit_kwargs}
        result = fit(model, data, optimizers=list(optimizers), **kwargs)
        values = result.model.parameters_dict()
        self.refit_expressions = {
            out: e.xreplace(
                {s: sympy.Float(values[str(s)]) for s in e.free_symbols if str(s) in values}
            )
            for out, e in exprs.items()
        }
        return result

    # ------------------------------------------------------------------ reports
    def to_latex(self, digits: int = 4) -> str:
        """The expressions as one LaTeX ``aligned`` block, coefficients to ``digits``."""
        lines = []
        for out, expr in self.expressions.items():
            rounded = expr.xreplace({f: sympy.Float(f, digits) for f in expr.atoms(sympy.Float)})
            lines.append(f"{sympy.latex(sympy.Symbol(out))} &= {sympy.latex(rounded)}")
        return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"

    def as_dict(self) -> dict[str, Any]:
        """Everything worth keeping, as plain data."""
        return {
            "format": "ude_bridge.Discovery/1",
            "method": self.method,
            "expressions": {k: str(v) for k, v in self.expressions.items()},
            "latex": {k: sympy.latex(v) for k, v in self.expressions.items()},
            "table": {k: row.as_dict() for k, row in self.table.items()},
            "pareto": {
                k: [
                    {
                        "complexity": p.complexity,
                        "error": p.error,
                        "expression": str(p.expression),
                        "selected": p.selected,
                        "trajectory_loss": p.trajectory_loss,
                    }
                    for p in front
                ]
                for k, front in self.pareto.items()
            },
            "libraries": {
                k: None if lib is None else list(lib.names) for k, lib in self.libraries.items()
            },
            "options": {
                k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
                for k, v in self.options.items()
            },
            "samples": {
                "n": self.samples.n,
                "n_effective": self.samples.n_effective,
                "source": self.samples.source,
            },
            "refit_expressions": None
            if self.refit_expressions is None
            else {k: str(v) for k, v in self.refit_expressions.items()},
        }

    def save(self, path: str | os.PathLike) -> tuple[Path, Path]:
        """Write ``<path>.json`` (everything in `as_dict`) and ``<path>.tex`` (`to_latex`).

        ``path`` may end in ``.json``; an existing folder gets ``discovery.json/.tex`` in it.

        Returns:
            The two paths written.
        """
        p = Path(path)
        if p.is_dir():
            p = p / "discovery"
        json_path, tex_path = p.with_suffix(".json"), p.with_suffix(".tex")
        json_path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.as_dict(), indent=2) + "\n"
        atomic_write_text(json_path, text, where="Discovery.save")
        atomic_write_text(tex_path, self.to_latex() + "\n", where="Discovery.save")
        return json_path, tex_path

    def __repr__(self) -> str:
        rows = [f"Discovery(method={self.method!r})"]
        for out, row in self.table.items():
            rows.append(
                f"  {out} = {row.expression}    [terms {row.complexity}, held-out error "
                f"{row.error:.3g}]"
            )
        return "\n".join(rows)


def _nodes(expr: sympy.Expr) -> int:
    return sum(1 for _ in sympy.preorder_traversal(expr))


def _check_options(method: str, options: Mapping[str, Any]) -> None:
    known = list(SINDY_OPTIONS) if method == "sindy" else list(PYSR_OPTIONS)
    for key in options:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            other = "pysr" if method == "sindy" else "sindy"
            also = (
                f" ({key!r} belongs to method={other!r}.)"
                if key in (PYSR_OPTIONS if method == "sindy" else SINDY_OPTIONS)
                else ""
            )
            raise TypeError(
                f"discover: unexpected keyword {key!r} for method={method!r}.{hint}{also} "
                f"Keywords of this method: {', '.join(known)}."
            )


def _libraries(
    library: Any,
    outputs: Sequence[str],
    samples: Samples,
    allowed: dict[str, list[sympy.Symbol]] | None,
    method: str,
) -> dict[str, Library | None]:
    where = "discover"
    if isinstance(library, Mapping):
        unknown = [k for k in library if k not in outputs]
        if unknown:
            raise UnknownSymbolError(
                f"{where}: library given for {unknown[0]!r}, which is not an output being "
                "discovered." + did_you_mean(str(unknown[0]), list(outputs), what="output")
            )
        libs = {o: library.get(o) for o in outputs}
    elif library is None or isinstance(library, Library):
        libs = dict.fromkeys(outputs, library)
    else:
        raise InputError(
            f"{where}: library must be a ub.library.Library (e.g. "
            "ub.library.polynomial(['x', 'y'], degree=3)) or a dict {output: Library}; got "
            f"{type(library).__name__}."
        )
    for out, lib in libs.items():
        inputs = (
            allowed[out] if allowed is not None else [sympy.Symbol(v) for v in samples.variables]
        )
        if lib is None:
            if method == "pysr":
                continue
            if isinstance(library, Mapping):
                raise InputError(f"{where}: the library dict has no entry for {out!r}.")
            default = [v for v in inputs if str(v) != "t"] or inputs
            libs[out] = lib = polynomial([str(v) for v in default], degree=3)
        for v in lib.variables:
            if v not in inputs:
                what = (
                    f"an input of the network that produces {out!r}"
                    if allowed is not None
                    else "a sampled variable"
                )
                raise InputError(
                    f"{where}: library variable {str(v)!r} is not {what}; those are "
                    f"{', '.join(map(str, inputs))}. Build the library over them (a network "
                    "output cannot depend on anything else)."
                )
    return libs


def discover(
    source: Any,
    method: Literal["sindy", "pysr"] = "sindy",
    library: Library | Mapping[str, Library] | None = None,
    *,
    data: Any = None,
    outputs: Sequence[str] | None = None,
    points: int | None = None,
    box: int = 0,
    along: Literal["fit", "data"] = "fit",
    derivative: str = "spline",
    seed: int = 0,
    **options: Any,
) -> Discovery:
    """Turn a UDE's networks into equations.

    Each network output $U$ is sampled (see `ude_bridge.discover.sampling`) and an
    expression $U \\approx \\sum_j \\xi_j \\theta_j(v)$ with few terms is sought over the
    library $\\theta$ (SINDy), or over free-form expressions (PySR).

    **Main arguments:**

    Args:
        source: the result of `ub.fit` (networks sampled along the fitted trajectories);
            a `UDE` with ``data=`` (outputs recovered from derivatives estimated from the
            data); `Trajectories` (plain SINDy: whole right-hand sides $\\dot u$, keyed by
            state); or `Samples` of known functions.
        method: ``"sindy"`` (sparse regression with pysindy's optimizers) or ``"pysr"``
            (symbolic regression; needs ``pip install "ude-bridge[julia]"``).
        library: a `ub.library` library, or ``{output: library}``; default a polynomial of
            degree 3 in each network's inputs (SINDy). For PySR it only names the variables.

    **Other arguments:**

    Args:
        data: the `Trajectories` for an untrained `UDE` source.
        outputs: which outputs to discover (default all).
        points: sample times per trajectory (default ``max(200, 4 T_i)``). box: extra
            samples uniformly in the state box. along: ``"fit"`` or ``"data"``.
        derivative: ``"spline"``, ``"savgol"`` or ``"fd"`` (derivative route).
        seed: seeds the sampling, the bagging and PySR.
        **options: for SINDy ``optimizers`` (``("stlsq", "ssr")``; also ``"sr3"``,
            ``"miosr"`` where installed), ``criterion`` (``"bic"``, ``"aic"``, ``"cv"``),
            ``tolerance`` (0.02: the sparsest model within this normalised held-out error of
            the best-scoring one wins), ``n_folds``, ``ensemble`` (bagged models, 0: none),
            ``n_thresholds``, and ``select``: ``"trajectory"`` puts each combination of
            the outputs' best candidates in place of the networks, refits it briefly
            (coefficients, learnable parameters, initial states) against the data and keeps
            the sparsest within 2 of the best $n \\log L + k \\log n$ or with a misfit $L$ within
            ``trajectory_tolerance`` (0.5) of the lowest; ``"samples"`` keeps the choice made
            on the samples; ``"auto"`` (default) simulates whenever there are a trained model
            and data.
            For PySR: ``binary_operators``, ``unary_operators``,
            ``maxsize``, ``maxdepth``, ``populations``, ``population_size``,
            ``niterations``, ``timeout`` (seconds), ``parsimony``, ``model_selection``,
            ``extra`` (other ``PySRRegressor`` keywords).

    Returns:
        `Discovery`: ``expressions``, ``table``, ``pareto``, ``model``, ``refit(data)``.

    Raises:
        InputError: a model without networks, a library variable that is not a network
            input, an empty library, too few sample points, an unknown output.
        BackendUnavailableError: ``method="pysr"`` without PySR/Julia (raised at once).
        TypeError: an unknown keyword for the method.

    Example:
        >>> found = ub.discover(result, library=ub.library.polynomial(["x", "y"], 3))
        ... # doctest: +SKIP
        >>> found.expressions  # doctest: +SKIP
        {'U1': -0.9*x*y, 'U2': 0.8*x*y}
    """
    where = "discover"
    if method not in ("sindy", "pysr"):
        raise InputError(
            f"{where}: unknown method {method!r}."
            + did_you_mean(str(method), ["sindy", "pysr"], what="method")
        )
    _check_options(method, options)
    pysr_kwargs: dict[str, Any] = {}
    if method == "pysr":
        from ..backends.julia_runtime import require_pysr
        from .pysr import pysr_arguments

        pysr_kwargs = pysr_arguments(seed=seed, **options)
        require_pysr(f"{where}(method='pysr')")
    sindy_kwargs = {**SINDY_OPTIONS, **options} if method == "sindy" else {}
    if sindy_kwargs:
        sindy_kwargs["optimizers"] = tuple(sindy_kwargs["optimizers"])

    select = sindy_kwargs.pop("select", "auto")
    trajectory_tolerance = float(sindy_kwargs.pop("trajectory_tolerance", 0.5))
    if select not in ("auto", "trajectory", "samples"):
        raise InputError(
            f"{where}: select must be 'auto', 'trajectory' or 'samples'; got {select!r}."
        )
    src = samples_from(
        source, data, points=points, box=box, along=along, derivative=derivative, seed=seed
    )
    samples, allowed = src.samples, src.allowed
    simulate = src.model is not None and src.data is not None and select != "samples"
    if select == "trajectory" and not simulate:
        raise InputError(
            f"{where}: select='trajectory' needs a model and data to simulate; discover from "
            "ub.fit's result (or a UDE with data=...), or use select='samples'."
        )
    names = list(samples.outputs)
    if outputs is not None:
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        for o in outputs:
            if o not in names:
                raise UnknownSymbolError(
                    f"{where}: {o!r} is not an output to discover."
                    + did_you_mean(str(o), names, what="output")
                )
        names = outputs
    if simulate and src.u0 is None and len(names) < len(samples.outputs):
        # an untrained UDE: the networks left in place are not worth simulating
        simulate = select == "trajectory"
    libs = _libraries(library, names, samples, allowed, method)

    table, pareto = {}, {}
    if method == "sindy":
        fits = {
            out: sparse_fit(
                libs[out].evaluate(samples.variables),
                samples.outputs[out],
                groups=samples.groups,
                n_effective=samples.n_effective,
                seed=seed,
                names=libs[out].names,
                **sindy_kwargs,
            )
            for out in names
        }
        chosen = {out: fit.selected for out, fit in fits.items()}
        losses: dict[str, dict[tuple[int, ...], float]] = {out: {} for out in names}
        if simulate:
            chosen, losses = _choose_by_trajectory(src, fits, libs, trajectory_tolerance)
        for out in names:
            table[out], pareto[out] = _sindy_rows(
                out, libs[out], fits[out], chosen[out], losses[out]
            )
    else:
        from .pysr import pysr_fit

        for out in names:
            lib, y = libs[out], samples.outputs[out]
            variables = (
                list(lib.variables) if lib is not None else allowed_symbols(allowed, out, samples)
            )
            x = np.stack([samples.variables[str(v)] for v in variables], axis=1)
            res = pysr_fit(x, y, variables, pysr_kwargs)
            table[out], pareto[out] = _pysr_rows(out, res, x, y, variables)
    exprs = {out: row.expression for out, row in table.items()}
    return Discovery(
        method=method,
        expressions=exprs,
        table=table,
        pareto=pareto,
        libraries={o: libs[o] for o in names},
        samples=samples,
        source_model=src.model,
        data=src.data,
        fit_options=src.options,
        options={
            **sindy_kwargs,
            **pysr_kwargs,
            **(
                {"select": select, "trajectory_tolerance": trajectory_tolerance}
                if sindy_kwargs
                else {}
            ),
        },
    )


def allowed_symbols(
    allowed: dict[str, list[sympy.Symbol]] | None, out: str, samples: Samples
) -> list[sympy.Symbol]:
    """The variables an output may depend on: its network's inputs, else every sample."""
    if allowed is not None:
        return allowed[out]
    return [sympy.Symbol(v) for v in samples.variables if v != "t"]


def _expression(lib: Library, candidate: Any) -> sympy.Expr:
    return sympy.Add(
        *(sympy.Float(candidate.coefficients[j]) * lib.terms[j] for j in candidate.support)
    )


def _contenders(fit: Any, per_level: int, max_terms: int) -> list[Any]:
    """An output's candidates worth simulating, sparsest first: the best ``per_level`` by
    held-out error at each number of terms up to ``max_terms``, the Pareto front and the
    choice made on the samples."""
    picked: dict[tuple[int, ...], Any] = {}
    for size in range(1, max_terms + 1):
        level = sorted((c for c in fit.candidates if c.complexity == size), key=lambda c: c.error)
        picked.update({c.support: c for c in level[:per_level]})
    for c in (*fit.pareto, fit.selected):
        if c.complexity <= max(max_terms, fit.selected.complexity):
            picked.setdefault(c.support, c)
    return sorted(picked.values(), key=lambda c: (c.complexity, c.error))


def _candidate_rows(
    model: Any, coefficient: dict[str, dict[int, str]], combos: Sequence[tuple]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Parameter values and refined-parameter masks ``(C, P)`` of ``combos`` in the model over
    the union of their terms: each combination's coefficients on its support, zeros (held)
    off it; the learnable physical parameters at their fitted values, refined in all."""
    names, stored = physical_parameters(model)
    position = {name: i for i, name in enumerate(names)}
    lifted = {name for terms in coefficient.values() for name in terms.values()}
    learnable = [position[k] for k in model.params if k not in lifted]
    values = stored[None].repeat(len(combos), 1)
    free = torch.zeros(values.shape, dtype=torch.bool)
    free[:, learnable] = True
    for c, combo in enumerate(combos):
        for out, candidate in zip(coefficient, combo, strict=True):
            for j, name in coefficient[out].items():
                on = j in candidate.support
                values[c, position[name]] = float(candidate.coefficients[j]) if on else 0.0
                free[c, position[name]] = on
    return values, free


def _choose_by_trajectory(
    src: Source, fits: dict[str, Any], libs: dict[str, Library], tolerance: float
) -> tuple[dict[str, Any], dict[str, dict[tuple[int, ...], float]]]:
    """Choose every output's candidate together, by simulating against the data.

    The contenders of each output are its best `PER_LEVEL` candidates (by held-out error)
    at each number of terms, up to one more than the samples chose (at most 4), and its
    Pareto front; beyond `MAX_SIMULATED` combinations the most complex contenders go. Every
    combination replaces the networks and gets a short refit before it is compared with the
    data: a few Gauss-Newton steps on its coefficients, the learnable physical parameters
    and the initial states (`ude_bridge.discover.trajectory.refined_losses`), because
    coefficients estimated from a network's samples and noisy initial states would
    otherwise favour terms that only make up for them, and rank the combinations by
    accidents of their starting values rather than by their structure. All combinations are
    rows of one batched solve, as members of one model over the union of their terms. A
    combination's score is $n \\log L + k \\log n$ ($L$ the misfit after the refit, $n$
    observations, $k$ terms in all). The sparsest combination is chosen among those within 2
    of the best score (a BIC difference below 2 is not evidence; Kass & Raftery 1995) or
    with $L \\le (1 + \\text{tolerance}) \\min L$. The outputs are chosen together because
    trained networks compensate for each other's errors: replacing one at a time can make the
    true term look wrong.

    Returns:
        ``({output: candidate}, {output: {support: L with the others as chosen}})``.
    """
    outs = list(fits)
    n = max(int(src.samples.n_effective), 2)
    options = {
        o: _contenders(fits[o], PER_LEVEL, min(fits[o].selected.complexity + 1, 4)) for o in outs
    }
    # over budget: drop the most complex contenders first, never the sparse alternatives
    # (a term a noisy network blurs is often only the second best by the samples)
    while np.prod([len(v) for v in options.values()]) > MAX_SIMULATED:
        longest = max(outs, key=lambda o: len(options[o]))
        options[longest] = options[longest][:-1]  # drop the most complex contender

    # one model over every term a contender or a reported Pareto point uses
    taken = set(src.model.parameters_dict()) | {str(v) for v in src.model.system().states}
    coefficient: dict[str, dict[int, str]] = {}
    for o in outs:
        used = sorted({j for c in (*options[o], *fits[o].pareto[:MAX_PARETO]) for j in c.support})
        coefficient[o] = {}
        for j in used:
            name = f"c_{o}_{j}"
            while name in taken:
                name += "_"
            taken.add(name)
            coefficient[o][j] = name
    union = {
        o: sympy.Add(*(sympy.Symbol(name) * libs[o].terms[j] for j, name in terms.items()))
        for o, terms in coefficient.items()
    }
    names = [name for terms in coefficient.values() for name in terms.values()]
    model = src.model.replace(union, params=dict.fromkeys(names, 0.0))
    u0 = src.data.first_observed() if src.u0 is None else torch.as_tensor(src.u0)
    u0 = (u0 if u0.dim() == 2 else u0.expand(len(src.data.t), -1)).to(torch.float64)
    settings = refine_options(src.options)
    budget = step_budget(src.model, src.data, u0, settings)

    def refined(combos: Sequence[tuple]) -> np.ndarray:
        values, free = _candidate_rows(model, coefficient, combos)
        return refined_losses(
            model,
            src.data,
            u0,
            settings,
            values,
            free,
            iterations=REFINE_ITERATIONS,
            max_steps=budget,
        )

    combos = list(itertools.product(*(options[o] for o in outs)))
    results = []
    for combo, loss in zip(combos, refined(combos), strict=True):
        k = sum(c.complexity for c in combo)
        score = n * np.log(loss) + np.log(n) * k if np.isfinite(loss) and loss > 0 else np.inf
        results.append((combo, float(loss), k, score))
    if not np.isfinite(min(r[3] for r in results)):
        return {o: fits[o].selected for o in outs}, {o: {} for o in outs}
    best = min(r[3] for r in results)
    lowest = min(r[1] for r in results)
    fine = [r for r in results if r[3] <= best + 2.0 or r[1] <= (1.0 + tolerance) * lowest]
    combo = min(fine, key=lambda r: (r[2], r[3]))[0]
    chosen = dict(zip(outs, combo, strict=True))
    losses: dict[str, dict[tuple[int, ...], float]] = {o: {} for o in outs}
    for other, loss, _, _ in results:
        for i, o in enumerate(outs):
            if all(other[j] is combo[j] for j in range(len(outs)) if j != i):
                losses[o][other[i].support] = loss
    swaps = []  # the Pareto fronts' misfits, the other outputs as chosen
    for i, o in enumerate(outs):
        for c in fits[o].pareto[:MAX_PARETO]:
            if c.support not in losses[o]:
                swaps.append((o, c.support, combo[:i] + (c,) + combo[i + 1 :]))
    if swaps:
        for (o, support, _), loss in zip(swaps, refined([s[2] for s in swaps]), strict=True):
            losses[o][support] = float(loss)
    return chosen, losses


def _sindy_rows(
    out: str,
    lib: Library,
    fit: Any,
    chosen: Any,
    losses: dict[tuple[int, ...], float],
) -> tuple[OutputFit, tuple[ParetoPoint, ...]]:
    """The table row and Pareto front of one output."""
    row = OutputFit(
        output=out,
        expression=_expression(lib, chosen),
        terms=tuple(lib.terms[j] for j in chosen.support),
        coefficients=tuple(float(chosen.coefficients[j]) for j in chosen.support),
        error=float(chosen.error),
        complexity=chosen.complexity,
        inclusion=None if fit.inclusion is None else tuple(float(p) for p in fit.inclusion),
        trajectory_loss=losses.get(chosen.support),
    )
    front = tuple(
        ParetoPoint(
            c.complexity,
            float(c.error),
            _expression(lib, c),
            c.support == chosen.support,
            losses.get(c.support),
        )
        for c in fit.pareto
    )
    return row, front


def _pysr_rows(
    out: str, res: Any, x: np.ndarray, y: np.ndarray, variables: list[sympy.Symbol]
) -> tuple[OutputFit, tuple[ParetoPoint, ...]]:
    scale = float(np.sqrt(np.mean(np.square(y)))) or 1.0

    def error(expr: sympy.Expr) -> float:
        fn = sympy.lambdify(variables, expr, modules="numpy")
        pred = np.broadcast_to(np.asarray(fn(*x.T), dtype=float), y.shape)
        return float(np.sqrt(np.mean(np.square(y - pred))) / scale)

    expr = res.expression
    parts = expr.as_coefficients_dict()
    row = OutputFit(
        output=out,
        expression=expr,
        terms=tuple(parts),
        coefficients=tuple(float(c) for c in parts.values()),
        error=error(expr),
        complexity=next((c for c, _, e in res.front if e == expr), _nodes(expr)),
        inclusion=None,
    )
    front = tuple(
        ParetoPoint(c, float(np.sqrt(loss)) / scale, e, e == expr) for c, loss, e in res.front
    )
    return row, front
