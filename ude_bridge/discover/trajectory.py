"""Candidate models simulated against the data: misfits and short refits, in batched solves.

Discovery proposes, per network output, a few sparse expressions; which combination to keep
is decided by how well the model with them in place of the networks reproduces the data.
Coefficients estimated from a network's samples and initial states taken from noisy data
are both a little off, so each candidate first gets a short refit: a few Gauss-Newton steps
on its coefficients, the learnable physical parameters and the initial states,

$$ \\min_{\\theta, u_0} \\; \\sum_{(i, k, j) \\in \\Omega}
   \\Bigl(\\frac{\\hat u_{ikj}(\\theta, u_0) - u_{ikj}}{s_j}\\Bigr)^2 , $$

with the Jacobian by forward differences. Every candidate, every finite-difference column
and every line-search trial is one row of a single batched solve: the generated right-hand
side broadcasts parameters of shape ``(B,)`` against states of shape ``(B,)``, so rows with
different parameter values (different candidates over a common set of terms, zeros off each
candidate's support) share one solve. The cost of refining all candidates is then a handful
of batched solves rather than a handful per candidate.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "physical_parameters",
    "refine_options",
    "refined_losses",
    "step_budget",
    "trajectory_loss",
]

#: Relative forward-difference step of the Gauss-Newton Jacobian (solves at rtol <= 1e-8).
FD_STEP = 1e-5
#: Solver steps a candidate may take, as a multiple of the fitted model's (`step_budget`).
STEP_BUDGET = 10
#: Step fractions tried by the line search of each Gauss-Newton step, largest first.
FRACTIONS = (1.0, 0.5, 0.25)


def refine_options(options: Any) -> dict[str, Any]:
    """Solver options for refits: tolerances of at most 1e-8, so that the finite differences
    of the Gauss-Newton Jacobian are smooth."""
    options = dict(options or {})
    options["rtol"] = min(options.get("rtol", 1e-6), 1e-8)
    options["atol"] = min(options.get("atol", 1e-6), 1e-8)
    return options


def step_budget(model: Any, data: Any, u0: torch.Tensor, options: dict[str, Any]) -> int:
    """Solver steps allowed per candidate: `STEP_BUDGET` times the steps ``model`` (the
    fitted model, which reproduces the data) takes over the data from ``u0 (R, n)``, plus
    100. A candidate needing many more is stiff or blowing up where the data are not, so it
    is implausible; cutting it off keeps it from holding up the batch it is solved in."""
    misfit = _Misfit(model, data, options)
    steps = 0
    for t, _, idx in misfit.groups:
        from ..solve import solve

        with torch.no_grad():
            sol = solve(
                model.problem(u0[idx], (float(t[0]), float(t[-1]))),
                options.get("method", "Tsit5"),
                saveat=t,
                rtol=options.get("rtol", 1e-6),
                atol=options.get("atol", 1e-6),
            )
        steps = max(steps, int(sol.stats.get("nsteps", 0)))
    return STEP_BUDGET * max(steps, 1) + 100


def physical_parameters(model: Any) -> tuple[list[str], torch.Tensor]:
    """The names of ``model``'s physical parameters and their stored values ``(P,)``
    (raw for ``positive`` ones), in the order of `UDE.param_tensors`."""
    names = [str(p) for p in model.system().params]
    tensors = model.param_tensors()[: len(names)]
    stored = (
        torch.stack([t.detach().to(torch.float64).reshape(()) for t in tensors])
        if names
        else torch.zeros(0, dtype=torch.float64)
    )
    return names, stored


class _Misfit:
    """Scaled misfits of ``model`` against every trajectory of ``data``, as one flat vector
    per row, for a batch of rows each with its own initial states and physical parameter
    values."""

    def __init__(
        self, model: Any, data: Any, options: dict[str, Any], max_steps: int | None = None
    ) -> None:
        names = [str(s) for s in model.system().states]
        self.model, self.options, self.max_steps = model, options, max_steps
        self.cols = [names.index(s) for s in data.states]
        self.scale = data.scale().to(torch.float64)
        n_params = len(model.system().params)
        self.networks = tuple(t.detach() for t in model.param_tensors()[n_params:])
        stacked = data.stacked()
        if stacked is not None:  # one batched solve serves every trajectory
            self.groups = [(stacked[0], stacked[1], list(range(len(data.t))))]
        else:
            self.groups = [
                (t_i, u_i[None], [i])
                for i, (t_i, u_i) in enumerate(zip(data.t, data.u, strict=True))
            ]
        self.sizes = [int(u_i.numel()) for u_i in data.u]  # block of each trajectory

    def _solve(
        self, t: torch.Tensor, u: torch.Tensor, starts: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """Misfits ``(R, B, m)`` of the rows ``starts (R, B, n)``, ``values (B, P)`` against
        the ``R`` trajectories ``u (R, T, k)`` sharing the times ``t``. Missing values give
        0; a row whose solve fails gives inf."""
        from ..problem import ODEProblem
        from ..solve import solve

        R, B, n = starts.shape
        dtype = self.model.dtype
        per_row = values.to(dtype)[None].expand(R, B, -1).reshape(R * B, -1)
        params = (*per_row.unbind(-1), *self.networks)  # (R*B,) each: broadcast in the rhs
        with torch.no_grad():
            sol = solve(
                ODEProblem(
                    self.model.rhs,
                    starts.reshape(R * B, n).to(dtype),
                    (float(t[0]), float(t[-1])),
                    params=params,
                ),
                self.options.get("method", "Tsit5"),
                saveat=t,
                rtol=self.options.get("rtol", 1e-6),
                atol=self.options.get("atol", 1e-6),
                **({} if self.max_steps is None else {"max_steps": self.max_steps}),
            )
        pred = sol.u.reshape(R, B, len(t), -1)[..., self.cols].to(torch.float64)
        scaled = (pred - u[:, None].to(torch.float64)) / self.scale
        resid = scaled.nan_to_num(0.0, posinf=0.0, neginf=0.0).reshape(R, B, -1)
        bad = ~torch.isfinite(pred).reshape(R, B, -1).all(dim=-1)
        if sol.retcodes is not None:
            failed = torch.tensor([c != "Success" for c in sol.retcodes]).reshape(R, B)
            bad = bad | failed
        elif not sol.success:
            bad = torch.ones(R, B, dtype=torch.bool)
        return torch.where(bad[..., None], torch.full_like(resid, float("inf")), resid)

    def __call__(self, starts: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """``starts (B, R, n)``, ``values (B, P)`` -> misfits ``(B, M)``, trajectory blocks in
        data order."""
        blocks: dict[int, torch.Tensor] = {}
        for t, u, idx in self.groups:
            r = self._solve(t, u, starts[:, idx].transpose(0, 1), values)  # (R_g, B, m)
            for k, i in enumerate(idx):
                blocks[i] = r[k]
        return torch.cat([blocks[i] for i in range(len(self.sizes))], dim=-1)


def _gauss_newton_step(
    r: torch.Tensor,
    rows: torch.Tensor,
    steps: torch.Tensor,
    p: int,
    offsets: np.ndarray,
    n: int,
) -> torch.Tensor | None:
    """One Gauss-Newton step ``(p + R n,)`` of one candidate from its residuals ``r (M,)``,
    the residuals of its finite-difference rows ``rows (p + n, M)`` (its ``p`` free
    parameters moved one at a time, then state ``j`` moved in every trajectory at once) and
    the steps taken ``steps`` (``(p,)`` then ``(n, R)``); None where it is not finite."""
    R = len(offsets) - 1
    columns = [(rows[k] - r) / steps[k] for k in range(p)]
    h0 = steps[p:].reshape(n, R)
    for i in range(R):  # state j of trajectory i moves trajectory i's block only
        block = slice(int(offsets[i]), int(offsets[i + 1]))
        for j in range(n):
            col = torch.zeros_like(r)
            col[block] = (rows[p + j, block] - r[block]) / h0[j, i]
            columns.append(col)
    jac = torch.stack(columns)  # (p + R n, M)
    if not bool(torch.isfinite(jac).all()):
        return None
    gram = jac @ jac.T
    gram = gram + 1e-9 * torch.diag(gram.diagonal().clamp_min(1e-12))
    try:
        step = -torch.linalg.solve(gram, jac @ r)
    except RuntimeError:  # singular: no step
        return None
    return step if bool(torch.isfinite(step).all()) else None


def refined_losses(
    model: Any,
    data: Any,
    u0: torch.Tensor,
    options: dict[str, Any],
    values: torch.Tensor,
    free: torch.Tensor,
    *,
    iterations: int,
    max_steps: int | None = None,
) -> np.ndarray:
    """The data misfit $L$ of many parameterisations of one model, each after ``iterations``
    Gauss-Newton steps on its free parameters and on the initial states.

    Each candidate $c$ has stored physical parameter values ``values[c]`` (order of
    `physical_parameters`) of which ``free[c]`` are refined; its initial states start at
    ``u0`` and are always refined. A step solves
    $(J^\\top J + 10^{-9} \\operatorname{diag} J^\\top J)\\, \\delta = -J^\\top r$ and takes the
    largest of the fractions 1, 1/2, 1/4 of $\\delta$ that lowers $\\|r\\|^2$; a candidate
    for which none does (or whose solve fails) stops there. All candidates, their
    finite-difference columns and their line-search trials are rows of one batched solve
    per stage.

    Args:
        model: a `UDE`; its network weights (if any) are shared by every candidate.
        data: `Trajectories`. u0: ``(R, n)`` initial states.
        options: ``method``, ``rtol``, ``atol`` of the solves.
        values: ``(C, P)`` stored parameter values per candidate.
        free: ``(C, P)`` booleans: the parameters refined per candidate.
        iterations: Gauss-Newton steps (0: the misfit at ``values`` and ``u0``).
        max_steps: solver steps allowed per row; a row that needs more counts as failed.
            The rows advance in lock step, so one stiff or blowing-up candidate would
            otherwise hold up the whole batch (see `step_budget`).

    Returns:
        ``(C,)`` losses $L = \\frac{1}{|\\Omega|} \\sum (\\hat u - u)^2 / s^2$ (inf where a
        solve fails).
    """
    misfit = _Misfit(model, data, options, max_steps)
    values = values.to(torch.float64).clone()
    C = values.shape[0]
    R, n = u0.shape
    count = max(sum(int((~torch.isnan(u_i)).sum()) for u_i in data.u), 1)
    offsets = np.cumsum([0, *misfit.sizes])
    starts = u0.to(torch.float64)[None].expand(C, R, n).clone()
    r = misfit(starts, values)  # (C, M)
    sse = (r**2).sum(-1)
    active = torch.isfinite(sse)
    for _ in range(iterations):
        ids = [int(c) for c in torch.nonzero(active).flatten()]
        if not ids:
            break
        # finite-difference rows: each free parameter, then each state in every trajectory
        row_v, row_s, plan = [], [], []
        for c in ids:
            param_idx = [int(k) for k in torch.nonzero(free[c]).flatten()]
            h = FD_STEP * (values[c, param_idx].abs() + 1e-3)
            for k, hk in zip(param_idx, h, strict=True):
                v = values[c].clone()
                v[k] += hk
                row_v.append(v)
                row_s.append(starts[c])
            h0 = FD_STEP * (starts[c].abs() + 1e-3)  # (R, n)
            for j in range(n):
                s = starts[c].clone()
                s[:, j] += h0[:, j]
                row_v.append(values[c])
                row_s.append(s)
            plan.append((c, param_idx, torch.cat([h, h0.T.reshape(-1)])))
        rows = misfit(torch.stack(row_s), torch.stack(row_v))
        trial_v, trial_s, owners = [], [], []
        at = 0
        for c, param_idx, steps in plan:
            p = len(param_idx)
            step = _gauss_newton_step(r[c], rows[at : at + p + n], steps, p, offsets, n)
            at += p + n
            if step is None:
                active[c] = False
                continue
            for fraction in FRACTIONS:
                v = values[c].clone()
                v[param_idx] += fraction * step[:p]
                trial_v.append(v)
                trial_s.append(starts[c] + fraction * step[p:].reshape(R, n))
                owners.append(c)
        if not owners:
            break
        trials = misfit(torch.stack(trial_s), torch.stack(trial_v))
        trial_sse = (trials**2).sum(-1)
        improved: set[int] = set()
        for i, c in enumerate(owners):  # the largest fraction that lowers the misfit wins
            if c not in improved and bool(trial_sse[i] < sse[c]):
                values[c], starts[c] = trial_v[i], trial_s[i]
                r[c], sse[c] = trials[i], trial_sse[i]
                improved.add(c)
        for c, _, _ in plan:
            if c not in improved:
                active[c] = False
    losses = (sse / count).numpy()
    return np.where(np.isfinite(losses), losses, np.inf)


def trajectory_loss(
    model: Any,
    data: Any,
    u0: Any = None,
    options: Any = None,
    *,
    refine: int = 0,
    params: Sequence[str] = (),
) -> float:
    """How well ``model`` reproduces ``data`` when simulated from ``u0``.

    $$ L = \\frac{1}{|\\Omega|} \\sum_{(i, k, j) \\in \\Omega}
       \\Bigl(\\frac{\\hat u_{ikj} - u_{ikj}}{s_j}\\Bigr)^2 $$

    over the observed entries $\\Omega$, with $s_j$ the spread of state $j$ in the data
    (`Trajectories.scale`), i.e. the loss `fit` minimises with ``normalize=True``.

    Args:
        model: a `UDE`; data: `Trajectories` (columns matched to the model's states by name).
        u0: ``(R, n)`` initial states (default: the first observations).
        options: ``method``, ``rtol``, ``atol`` of the solves (defaults Tsit5, 1e-6, 1e-6).
        refine: Gauss-Newton iterations on the initial states and ``params`` before
            measuring (0: none; see `refined_losses`); the solves then use tolerances of at
            most 1e-8 so that the finite differences are smooth. Noisy initial states and
            coefficients estimated elsewhere would otherwise reward terms that only make up
            for them.
        params: names of physical parameters of ``model`` refined with the initial states
            (the model itself is left unchanged).

    Returns:
        $L$ (after refinement), or inf when a solve fails.
    """
    options = refine_options(options) if refine else dict(options or {})
    names, stored = physical_parameters(model)
    states = [str(s) for s in model.system().states]
    u0 = data.first_observed() if u0 is None else torch.as_tensor(u0)
    u0 = (u0 if u0.dim() == 2 else u0.expand(len(data.t), -1)).to(torch.float64)
    if u0.shape != (len(data.t), len(states)) or not bool(torch.isfinite(u0).all()):
        return float("inf")
    free = torch.tensor([name in set(params) for name in names], dtype=torch.bool)
    free = free.reshape(1, len(names))
    loss = refined_losses(model, data, u0, options, stored[None], free, iterations=refine)
    return float(loss[0])
