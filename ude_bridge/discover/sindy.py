"""Sparse regression with automatic model selection, on top of pysindy's optimizers.

For one output $y \\in \\mathbb{R}^N$ and a library matrix $\\Theta \\in \\mathbb{R}^{N \\times k}$
we look for a sparse $\\xi$ with $y \\approx \\Theta \\xi$. pysindy's optimizers propose the
candidate supports; this module only scales, scores and chooses:

1. **Scaling.** Columns and output are divided by their root mean square,
   $\\tilde\\Theta_{:j} = \\Theta_{:j} / \\|\\Theta_{:j}\\|_{rms}$ and
   $\\tilde y = y / \\|y\\|_{rms}$, so a scaled coefficient $\\tilde\\xi_j$ is the share of
   the output that term $j$ carries and one threshold means the same for every term and
   every output.
2. **Candidates.** STLSQ over a geometric sweep of thresholds, the greedy backward path of
   SSR (``criteria="model_residual"``), optionally SR3 (L0) over a sweep and MIOSR at every
   sparsity where installed, plus every support of one or two terms. Each distinct support
   is refitted by least squares.
3. **Scores.** Each support's error is measured on held-out points: $K$-fold cross-validation
   over contiguous blocks (``groups``), reported as the normalised RMSE
   $e = \\|y - \\hat y\\|_{rms} / \\|y\\|_{rms}$. The information criterion uses it,
   $\\mathrm{BIC} = n \\log e^2 + k \\log n$ or $\\mathrm{AIC} = n \\log e^2 + 2k$, with $n$ the
   number of independent observations behind the samples (``n_effective``).
4. **Choice.** The sparsest candidate whose held-out error is within ``tolerance`` (absolute,
   in units of $\\|y\\|_{rms}$) of the best-scoring candidate's. Samples of a trained network
   carry smooth, systematic errors that extra terms can always fit a little better; the
   tolerance stops them from buying complexity, while a missing term (which leaves an
   error of the size of its share) is never within it.

The Pareto front (complexity vs held-out error) of all candidates is kept.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import InputError

__all__ = ["Candidate", "SparseFit", "available_optimizers", "sparse_fit"]

Criterion = Literal["bic", "aic", "cv"]


@dataclass(frozen=True)
class Candidate:
    """One sparse model of one output.

    Attributes:
        support: indices of the library terms in use, increasing.
        coefficients: ``(k,)`` coefficients in the output's units, zero off the support.
        error: held-out normalised RMSE (cross-validated), $e$ above.
        train_error: normalised RMSE on all samples.
        score: the information criterion (or $e^2$ for ``criterion="cv"``); lower is better.
        source: which optimizer proposed it first (``"stlsq"``, ``"ssr"``, ...).
    """

    support: tuple[int, ...]
    coefficients: np.ndarray = field(repr=False)
    error: float
    train_error: float
    score: float
    source: str

    @property
    def complexity(self) -> int:
        """The number of terms."""
        return len(self.support)


@dataclass(frozen=True)
class SparseFit:
    """The outcome of `sparse_fit`.

    Attributes:
        selected: the chosen candidate.
        candidates: every distinct candidate, sparsest first.
        pareto: the candidates no other one beats in both complexity and held-out error.
        inclusion: per term, the fraction of bagged STLSQ models using it (ensemble runs
            only, else None).
    """

    selected: Candidate
    candidates: tuple[Candidate, ...]
    pareto: tuple[Candidate, ...]
    inclusion: np.ndarray | None = None


#: Libraries with at most this many pairs of terms get every two-term support as a candidate.
MAX_PAIRS = 1000


def available_optimizers() -> tuple[str, ...]:
    """The optimizer names `sparse_fit` accepts in this installation."""
    import pysindy

    extra = ("miosr",) if hasattr(pysindy.optimizers, "MIOSR") else ()
    return ("stlsq", "ssr", "sr3", *extra)


def _rms(a: np.ndarray, axis: int = 0) -> np.ndarray:
    return np.sqrt(np.mean(np.square(a), axis=axis))


def _lstsq(theta: np.ndarray, y: np.ndarray, support: tuple[int, ...]) -> np.ndarray:
    coef = np.zeros(theta.shape[1])
    if support:
        coef[list(support)] = np.linalg.lstsq(theta[:, support], y, rcond=None)[0]
    return coef


def _supports(
    theta: np.ndarray, y: np.ndarray, optimizers: tuple[str, ...], n_thresholds: int, ridge: float
) -> dict[tuple[int, ...], str]:
    """Candidate supports on scaled data, mapped to the optimizer that proposed them."""
    import pysindy

    n, k = theta.shape
    alpha = ridge * n  # pysindy's ridge weight multiplies ||w||^2 against a sum of squares
    yy = y.reshape(-1, 1)
    found: dict[tuple[int, ...], str] = {}

    def add(coef: np.ndarray, source: str) -> None:
        support = tuple(int(i) for i in np.flatnonzero(np.abs(np.ravel(coef)) > 0))
        if support and len(support) < n:
            found.setdefault(support, source)

    add(np.ones(k), "full")
    full = np.linalg.lstsq(theta, y, rcond=None)[0]
    top = max(float(np.max(np.abs(full))), 1e-12)
    thresholds = np.geomspace(1e-3 * top, top, n_thresholds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysindy warns when a threshold drops every term
        if "stlsq" in optimizers:
            for lam in thresholds:
                opt = pysindy.STLSQ(threshold=float(lam), alpha=alpha, max_iter=50)
                add(opt.fit(theta, yy).coef_, "stlsq")
        if "ssr" in optimizers:
            opt = pysindy.SSR(alpha=alpha, max_iter=k, criteria="model_residual")
            for coef in opt.fit(theta, yy).history_:
                add(coef, "ssr")
        if "sr3" in optimizers:
            for lam in thresholds:
                opt = pysindy.SR3(
                    reg_weight_lam=float(lam) ** 2 / 2, regularizer="L0", max_iter=100, unbias=True
                )
                add(opt.fit(theta, yy).coef_, "sr3")
        if "miosr" in optimizers:
            for s in range(1, k + 1):
                opt = pysindy.optimizers.MIOSR(target_sparsity=s, alpha=alpha)
                add(opt.fit(theta, yy).coef_, "miosr")
    # Every support of one or two terms too: cheap, and the sparse answers a greedy path
    # (SSR) or a coarse threshold grid can step over are the ones that matter most.
    for size in (1, 2) if k * (k - 1) // 2 <= MAX_PAIRS else (1,):
        for support in itertools.combinations(range(k), size):
            found.setdefault(support, "exhaustive")
    return found


def _candidate(
    ts: np.ndarray,
    ys: np.ndarray,
    col: np.ndarray,
    scale_y: float,
    support: tuple[int, ...],
    source: str,
    folds: list[np.ndarray],
    criterion: str,
    n_eff: int,
) -> Candidate:
    """Refit ``support`` by least squares and score it on the held-out folds."""
    coef = _lstsq(ts, ys, support)
    train = float(_rms(ys - ts @ coef))
    sq = [np.mean(np.square(ys[m] - ts[m] @ _lstsq(ts[~m], ys[~m], support))) for m in folds]
    err = float(np.sqrt(np.mean(sq)))
    floor = max(err, 1e-12)
    if criterion == "cv":
        score = floor**2
    else:
        penalty = np.log(n_eff) if criterion == "bic" else 2.0
        score = float(n_eff * np.log(floor**2) + penalty * len(support))
    return Candidate(support, coef * scale_y / col, err, train, score, source)


def _folds(groups: np.ndarray, n_folds: int) -> list[np.ndarray]:
    """Held-out masks: contiguous blocks within each group, block ``f`` of every group."""
    masks = [np.zeros(len(groups), dtype=bool) for _ in range(n_folds)]
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        for f, block in enumerate(np.array_split(idx, n_folds)):
            masks[f][block] = True
    return [m for m in masks if m.any() and not m.all()]


def _pareto(candidates: list[Candidate]) -> tuple[Candidate, ...]:
    front, best = [], np.inf
    for c in sorted(candidates, key=lambda c: (c.complexity, c.error)):
        if c.error < best:
            front.append(c)
            best = c.error
    return tuple(front)


def sparse_fit(
    theta: np.ndarray,
    y: np.ndarray,
    *,
    optimizers: tuple[str, ...] = ("stlsq", "ssr"),
    criterion: Criterion = "bic",
    tolerance: float = 0.02,
    n_folds: int = 5,
    groups: np.ndarray | None = None,
    n_effective: int | None = None,
    n_thresholds: int = 15,
    ridge: float = 1e-10,
    ensemble: int = 0,
    seed: int = 0,
    names: tuple[str, ...] | None = None,
) -> SparseFit:
    """Sparse regression $y \\approx \\Theta \\xi$ with the structure chosen automatically.

    Args:
        theta: ``(N, k)`` library matrix. y: ``(N,)`` output samples.
        optimizers: which pysindy optimizers propose supports (see `available_optimizers`).
        criterion: ``"bic"``, ``"aic"`` or ``"cv"`` (held-out error alone).
        tolerance: the sparsest candidate whose held-out normalised RMSE is within this of the
            best-scoring one's is chosen (0 picks the best score).
        n_folds: cross-validation folds (contiguous blocks of each group).
        groups: ``(N,)`` labels, e.g. the trajectory of each sample (default: one group).
        n_effective: independent observations behind the samples, for the criterion
            (default N).
        n_thresholds: thresholds in the STLSQ / SR3 sweeps.
        ridge: ridge weight per sample for the optimizers (scaled data).
        ensemble: if > 0, bag this many STLSQ fits (pysindy's `EnsembleOptimizer`) at the
            selected threshold and report each term's inclusion probability; terms used by
            fewer than half of the bags are then dropped from the selection.
        seed: seeds the bagging.
        names: the terms' names, for messages.

    Returns:
        `SparseFit`.

    Raises:
        InputError: shapes that do not match, non-finite values, an unknown optimizer or
            criterion, or fewer samples than needed.
    """
    where = "discover(method='sindy')"
    theta = np.asarray(theta, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if theta.ndim != 2 or theta.shape[0] != y.shape[0]:
        raise InputError(
            f"{where}: the library matrix must be (N, k) with N = len(y) = {y.shape[0]}; got "
            f"shape {theta.shape}."
        )
    n, k = theta.shape
    if not (np.isfinite(theta).all() and np.isfinite(y).all()):
        raise InputError(
            f"{where}: the library or the outputs are not finite at some sample (a term such "
            "as log(x) or 1/x outside its domain?). Change the library or the sample points."
        )
    known = available_optimizers()
    bad = [o for o in optimizers if o not in known]
    if bad or not optimizers:
        raise InputError(
            f"{where}: unknown optimizer {bad[0] if bad else None!r}; available: "
            f"{', '.join(known)}."
        )
    if criterion not in ("bic", "aic", "cv"):
        raise InputError(f"{where}: criterion must be 'bic', 'aic' or 'cv'; got {criterion!r}.")
    need = max(2 * n_folds, k + 2)
    if n < need:
        raise InputError(
            f"{where}: too few sample points: {n} for a library of {k} terms and {n_folds} "
            f"folds; at least {need} are needed. Sample more points (points=...) or use a "
            "smaller library."
        )
    col = _rms(theta)
    if np.any(col == 0):
        j = int(np.flatnonzero(col == 0)[0])
        term = repr(names[j]) if names is not None else str(j)
        raise InputError(
            f"{where}: library term {term} is zero at every sample point, so its coefficient "
            "is undetermined. Remove it or sample where it is not zero."
        )
    scale_y = float(_rms(y)) or 1.0
    ts, ys = theta / col, y / scale_y
    groups = np.zeros(n, dtype=int) if groups is None else np.asarray(groups).reshape(-1)
    folds = _folds(groups, n_folds)
    n_eff = int(n_effective or n)

    def make(support: tuple[int, ...], source: str) -> Candidate:
        return _candidate(ts, ys, col, scale_y, support, source, folds, criterion, n_eff)

    found = _supports(ts, ys, tuple(optimizers), n_thresholds, ridge)
    candidates = [make(support, source) for support, source in found.items()]
    candidates.sort(key=lambda c: (c.complexity, c.score))
    best = min(candidates, key=lambda c: c.score)
    within = [c for c in candidates if c.error <= best.error + tolerance] or [best]
    fewest = min(c.complexity for c in within)
    selected = min((c for c in within if c.complexity == fewest), key=lambda c: c.score)

    inclusion = None
    if ensemble:
        inclusion = _inclusion(ts, ys, col / scale_y, selected, ensemble, ridge, seed)
        support = tuple(int(i) for i in np.flatnonzero(inclusion >= 0.5))
        if support and support != selected.support:
            match = [c for c in candidates if c.support == support]
            selected = match[0] if match else make(support, "ensemble")
    return SparseFit(selected, tuple(candidates), _pareto(candidates), inclusion)


def _inclusion(
    ts: np.ndarray,
    ys: np.ndarray,
    factor: np.ndarray,
    selected: Candidate,
    n_models: int,
    ridge: float,
    seed: int,
) -> np.ndarray:
    """Per term, the fraction of bagged STLSQ fits (at a threshold that reproduces
    ``selected`` on all samples) that use it."""
    import pysindy

    kept = np.abs(selected.coefficients * factor)[list(selected.support)].min()
    off = np.setdiff1d(np.arange(ts.shape[1]), selected.support)
    full = np.abs(np.linalg.lstsq(ts, ys, rcond=None)[0])
    dropped = float(full[off].max()) if off.size else 0.0
    # geometric middle between the largest dropped and the smallest kept scaled coefficient
    lam = float(np.sqrt(kept * dropped)) if 0 < dropped < kept else float(kept) / 2
    state = np.random.get_state()
    np.random.seed(seed)  # EnsembleOptimizer draws from numpy's global generator
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = pysindy.EnsembleOptimizer(
                pysindy.STLSQ(threshold=lam, alpha=ridge * len(ys), max_iter=50),
                bagging=True,
                n_models=int(n_models),
            )
            opt.fit(ts, ys.reshape(-1, 1))
    finally:
        np.random.set_state(state)
    return np.mean(np.abs(np.asarray(opt.coef_list)[:, 0, :]) > 0, axis=0)
