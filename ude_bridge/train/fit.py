"""`fit`: train a UDE's networks and physical parameters against observed trajectories.

The loss (`losses.masked_mse`) compares the model's solution at the data times with the
observed values. Gradients flow by ``sensealg``: ``"backprop"`` through the solver's steps,
or ``"adjoint"`` (checkpointed continuous adjoint, memory independent of the step count).
Optimisers run in sequence (e.g. Adam, then L-BFGS with a strong-Wolfe line search).
Checkpoints are written atomically every ``checkpoint_every`` iterations and at the end; a
second call with the same ``checkpoint`` resumes where the first stopped.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .._checks import check_positive, did_you_mean
from ..errors import InputError, UdeBridgeError
from ..model.serialize import model_config
from ..problem import ODEProblem
from ..solve import solve
from .checkpoint import atomic_save, checkpoint_file, load_checkpoint
from .losses import masked_mse, weight_penalty
from .result import FitResult
from .shooting import segments

__all__ = ["fit"]

OPTIMIZERS = ("adam", "adamw", "sgd", "lbfgs")


def _parse_optimizers(optimizers: Sequence[Any]) -> list[tuple[str, float, int]]:
    where = "fit"
    out = []
    if not optimizers:
        raise InputError(
            f"{where}: optimizers must name at least one stage, e.g. [('adam', 1e-2, 500)]."
        )
    for k, stage in enumerate(optimizers):
        if not isinstance(stage, (tuple, list)) or not stage:
            raise InputError(
                f"{where}: optimizers[{k}] must be a tuple like ('adam', 1e-2, 500); got {stage!r}."
            )
        name = str(stage[0]).lower()
        if name not in OPTIMIZERS:
            raise InputError(
                f"{where}: optimizers[{k}] names unknown optimizer {stage[0]!r}."
                + did_you_mean(name, OPTIMIZERS, what="optimizer")
            )
        if name == "lbfgs" and len(stage) == 2:
            lr, iters = 1.0, stage[1]
        elif len(stage) == 3:
            lr, iters = stage[1], stage[2]
        else:
            raise InputError(
                f"{where}: optimizers[{k}] must be (name, lr, iterations) or ('lbfgs', "
                f"iterations); got {stage!r}."
            )
        check_positive(lr, name=f"optimizers[{k}] learning rate", where=where)
        if not isinstance(iters, int) or isinstance(iters, bool) or iters < 0:
            raise InputError(
                f"{where}: optimizers[{k}] iterations must be an integer >= 0; got {iters!r}."
            )
        out.append((name, float(lr), int(iters)))
    return out


def _make_optimizer(name: str, lr: float, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    return torch.optim.LBFGS(
        params,
        lr=lr,
        max_iter=1,  # one of our iterations = one L-BFGS iteration (history persists)
        max_eval=25,  # line-search evaluations per iteration (the default would be 1)
        history_size=20,
        tolerance_grad=1e-12,  # stopping is ours (iterations, patience), not the optimiser's
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )


class _Problem:
    """The data as tensors on the model's dtype/device, aligned with the model's states."""

    def __init__(self, model, data, u0, learn_u0, normalize, weights, dtype, device):
        where = "fit"
        states = [str(s) for s in model.system().states]
        for name in data.states:
            if name not in states:
                raise InputError(
                    f"{where}: data column {name!r} is not a state of the model."
                    + did_you_mean(name, states, what="state")
                )
        self.obs_idx = torch.tensor([states.index(s) for s in data.states], device=device)
        self.n = len(states)
        R = data.n_trajectories
        self.ts = [t.to(torch.float64) for t in data.t]
        self.targets = [torch.nan_to_num(u.to(dtype=dtype, device=device)) for u in data.u]
        self.masks = [m.to(dtype=dtype, device=device) for m in data.mask]
        scale = (
            data.scale().to(dtype=dtype, device=device)
            if normalize
            else torch.ones(len(data.states), dtype=dtype, device=device)
        )
        w = torch.ones(len(data.states), dtype=dtype, device=device)
        if weights is not None:
            w = torch.as_tensor(weights, dtype=dtype, device=device).reshape(-1)
            if w.shape[0] != len(data.states):
                raise InputError(
                    f"{where}: weights must have one entry per data state "
                    f"({len(data.states)}); got {w.shape[0]}."
                )
        self.inv_scale2 = w / scale**2
        # initial conditions: given, else the first observed values (unobserved need u0)
        if u0 is not None:
            u0t = torch.as_tensor(u0, dtype=dtype, device=device)
            if u0t.dim() == 1:
                u0t = u0t.expand(R, -1)
            if u0t.shape != (R, self.n):
                raise InputError(
                    f"{where}: u0 must have shape ({self.n},) or ({R}, {self.n}); "
                    f"got {tuple(u0t.shape)}."
                )
        else:
            first = data.first_observed().to(dtype=dtype, device=device)
            u0t = torch.zeros(R, self.n, dtype=dtype, device=device)
            u0t[:, self.obs_idx] = first
            missing = [states[i] for i in range(self.n) if i not in self.obs_idx.tolist()]
            if missing and not learn_u0:
                raise InputError(
                    f"{where}: states {', '.join(missing)} are not observed, so their initial "
                    "values are unknown; pass u0=... or learn_u0=True."
                )
            if torch.isnan(u0t).any():
                raise InputError(
                    f"{where}: a trajectory has no observation of some state to start from; "
                    "pass u0=... or learn_u0=True."
                )
        u0t = torch.nan_to_num(u0t)
        self.u0 = torch.nn.Parameter(u0t.clone()) if learn_u0 else u0t.clone()
        stacked = data.stacked()
        self.shared = stacked is not None and R > 1
        if self.shared:
            _, U, M = stacked
            self.U = torch.nan_to_num(U.to(dtype=dtype, device=device))
            self.M = M.to(dtype=dtype, device=device)


def fit(
    model: Any,
    data: Any,
    *,
    method: str = "Tsit5",
    sensealg: str = "backprop",
    optimizers: Sequence[Any] = (("adam", 1e-2, 500), ("lbfgs", 100)),
    rtol: float = 1e-6,
    atol: float = 1e-6,
    u0: Any = None,
    learn_u0: bool = False,
    normalize: bool = True,
    weights: Any = None,
    l2: float = 0.0,
    shooting: int | None = None,
    continuity: float = 10.0,
    validation: Any = None,
    patience: int | None = None,
    val_every: int = 10,
    lr_schedule: str | None = None,
    clip_grad: float | None = None,
    progress: bool = True,
    callback: Callable[[int, float, Any], Any] | None = None,
    checkpoint: str | None = None,
    checkpoint_every: int = 50,
    seed: int | None = 0,
    backend: str = "torch",
    max_steps: int = 10_000,
) -> FitResult:
    """Fit a `UDE` to observed trajectories.

    **Main arguments:**

    Args:
        model: the `UDE` to train (in place).
        data: `Trajectories` (NaN = missing; a subset of the states may be observed).
        method, rtol, atol: solver settings for every loss evaluation.
        sensealg: ``"backprop"`` or ``"adjoint"``.
        optimizers: stages run in order: ``(name, lr, iterations)`` with name ``adam``,
            ``adamw``, ``sgd``, ``lbfgs``; ``("lbfgs", iterations)`` uses lr 1.
        checkpoint: a folder (or ``.pt`` file): written every ``checkpoint_every``
            iterations and at the end; an existing checkpoint is resumed.
        seed: seeds torch, numpy and random: the same seed gives the same loss history.

    **Other arguments:**

    Args:
        u0: initial states ``(n,)`` or ``(R, n)``; default: each trajectory's first
            observation. learn_u0: make them trainable (noisy first samples, hidden states).
        normalize: divide each state's residual by its scale in the data. weights: per
            observed state. l2: penalty on network weights.
        shooting: split each trajectory into this many segments (multiple shooting) with
            learned segment starts and a continuity penalty of weight ``continuity``.
        validation: `Trajectories` (or a fraction of the data's trajectories) for the
            validation loss; ``patience`` evaluations without improvement stop a stage and
            the best parameters are restored at the end.
        lr_schedule: ``"cosine"`` anneals first-order stages' learning rate to 0.
        clip_grad: maximum gradient norm. callback: ``callback(it, loss, model)``; a truthy
            return stops training. progress: a tqdm bar.
        backend: ``"torch"`` or ``"julia"`` (DifferentialEquations.jl).
        max_steps: solver step limit per solve; a failed solve skips the iteration.

    Returns:
        `FitResult`.

    Raises:
        InputError: invalid arguments or data not matching the model (before any compute).
    """
    where = "fit"
    from ..data import Trajectories
    from ..model.ude import UDE

    if not isinstance(model, UDE):
        raise InputError(f"{where}: model must be a ub.UDE; got {type(model).__name__}.")
    if not isinstance(data, Trajectories):
        raise InputError(
            f"{where}: data must be ub.Trajectories; got {type(data).__name__}. "
            "Build it with ub.Trajectories(t, u, states=[...])."
        )
    if sensealg not in ("backprop", "adjoint"):
        raise InputError(
            f"{where}: unknown sensealg {sensealg!r}."
            + did_you_mean(str(sensealg), ("backprop", "adjoint"), what="sensealg")
        )
    stages = _parse_optimizers(optimizers)
    check_positive(rtol, name="rtol", where=where)
    check_positive(atol, name="atol", where=where)
    check_positive(l2, name="l2", where=where, allow_zero=True)
    if shooting is not None and (not isinstance(shooting, int) or shooting < 1):
        raise InputError(f"{where}: shooting must be an integer >= 1 (segments); got {shooting!r}.")
    if lr_schedule not in (None, "cosine"):
        raise InputError(f"{where}: lr_schedule must be None or 'cosine'; got {lr_schedule!r}.")
    if backend not in ("torch", "julia"):
        raise InputError(f"{where}: backend must be 'torch' or 'julia'; got {backend!r}.")
    if backend == "julia":
        from ..backends.julia_runtime import require_julia

        require_julia("fit(backend='julia')")
    if isinstance(validation, float):
        data, validation = data.split(by="trajectory", fraction=validation, seed=seed or 0)
    if seed is not None:
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)

    dtype = model.dtype
    device = model.param_tensors()[0].device if model.param_tensors() else torch.device("cpu")
    P = _Problem(model, data, u0, learn_u0, normalize, weights, dtype, device)
    V = (
        _Problem(model, validation, None, True, normalize, weights, dtype, device)
        if validation is not None
        else None
    )
    if V is not None:
        V.inv_scale2 = P.inv_scale2
    segs = None
    if shooting and shooting > 1:
        segs = segments(P, shooting, model, dtype, device)

    opts = dict(
        method=method, rtol=float(rtol), atol=float(atol), sensealg=sensealg, max_steps=max_steps
    )
    net_weights = [w for net in model.networks for w in net.weight_tensors()]
    trainable = [p for p in model.parameters() if p.requires_grad]
    extra = []
    if learn_u0:
        extra.append(P.u0)
    if segs is not None:
        extra.extend(segs.nodes)
    params = trainable + extra

    def solve_traj(prob_u0, ts, params_tuple):
        t0, t1 = float(ts[0]), float(ts[-1])
        prob = ODEProblem(model.rhs, prob_u0, (t0, t1), params_tuple)
        if backend == "julia":
            from ..backends.julia_backend import julia_solve_autograd

            return julia_solve_autograd(prob, method, _julia_options(ts, opts)), True
        sol = solve(
            prob,
            method,
            saveat=ts,
            rtol=opts["rtol"],
            atol=opts["atol"],
            sensealg=sensealg,
            max_steps=max_steps,
        )
        return sol.u, sol.success

    def data_loss(Q: _Problem) -> tuple[torch.Tensor, bool]:
        pt = model.param_tensors()
        ok = True
        if segs is not None and Q is P:
            return segs.loss(solve_traj, pt, continuity)
        if Q.shared:
            u, ok = solve_traj(Q.u0, Q.ts[0], pt)
            pred = u.index_select(-1, Q.obs_idx)
            return masked_mse(pred, Q.U, Q.M, Q.inv_scale2), ok
        total = 0.0
        count = 0.0
        for r in range(len(Q.ts)):
            u, good = solve_traj(Q.u0[r], Q.ts[r], pt)
            ok = ok and good
            pred = u.index_select(-1, Q.obs_idx)
            m = Q.masks[r]
            total = total + masked_mse(pred, Q.targets[r], m, Q.inv_scale2) * m.sum()
            count += float(m.sum())
        return total / max(count, 1.0), ok

    def objective() -> tuple[torch.Tensor, bool]:
        loss, ok = data_loss(P)
        if l2:
            loss = loss + l2 * weight_penalty(net_weights)
        return loss, ok

    # ---- resume ---------------------------------------------------------------------
    ck_path = checkpoint_file(checkpoint) if checkpoint is not None else None
    history: list[dict[str, Any]] = []
    start_stage, start_it, failures = 0, 0, 0
    opt_state = None
    best = (math.inf, None)
    state = load_checkpoint(ck_path) if ck_path is not None else None
    if state is not None:
        if (
            state.get("model_config") != model_config(model)
            and state.get("model_config", {}).get("equations") != model_config(model)["equations"]
        ):
            raise InputError(
                f"{where}: checkpoint {str(ck_path)!r} belongs to a different model; use "
                "another checkpoint path or delete it."
            )
        model.load_state_dict(state["model"])
        with torch.no_grad():
            for x, v in zip(extra, state["extra"], strict=True):
                x.copy_(v)
        history = state["history"]
        start_stage, start_it, failures = state["stage"], state["iteration"], state["failures"]
        opt_state = state["optimizer"]
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        best = state.get("best", best)

    def save_checkpoint(stage_idx: int, it: int, optimizer) -> None:
        if ck_path is None:
            return
        atomic_save(
            {
                "model_config": model_config(model),
                "model": model.state_dict(),
                "extra": [x.detach().clone() for x in extra],
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "stage": stage_idx,
                "iteration": it,
                "history": history,
                "failures": failures,
                "best": best,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "numpy": np.random.get_state(),
                    "python": random.getstate(),
                },
            },
            ck_path,
        )

    total_iters = sum(s[2] for s in stages)
    done = sum(s[2] for s in stages[:start_stage]) + start_it
    bar = tqdm(total=total_iters, initial=done, disable=not progress, desc="fit", leave=False)
    t_start = time.perf_counter() - (history[-1]["time"] if history else 0.0)
    global_it = done
    stopped = False
    loss_value = history[-1]["loss"] if history else math.nan
    optimizer = None
    resume_stage, next_it = start_stage, start_it  # where a Ctrl-C checkpoint resumes
    try:
        for si in range(start_stage, len(stages)):
            name, lr, iters = stages[si]
            resume_stage = si
            optimizer = _make_optimizer(name, lr, params)
            if si == start_stage and opt_state is not None:
                optimizer.load_state_dict(opt_state)
            scheduler = None
            if lr_schedule == "cosine" and name != "lbfgs" and iters > 0:
                scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=iters)
                for _ in range(start_it if si == start_stage else 0):
                    scheduler.step()
            stale = 0
            first = start_it if si == start_stage else 0
            for it in range(first, iters):
                failed = 0
                if name == "lbfgs":
                    box = {}

                    def closure(optimizer=optimizer, box=box):
                        optimizer.zero_grad(set_to_none=True)
                        try:
                            loss, ok = objective()
                        except UdeBridgeError:
                            loss, ok = None, False
                        if loss is None or not ok or not torch.isfinite(loss):
                            box["failed"] = True
                            # a failed solve: a large loss with no gradient makes the line
                            # search step back
                            return torch.tensor(1e10, dtype=dtype)
                        loss.backward()
                        if clip_grad:
                            torch.nn.utils.clip_grad_norm_(params, clip_grad)
                        box.setdefault("loss", float(loss.detach()))
                        return loss

                    optimizer.step(closure)
                    lv = box.get("loss", math.nan)
                    failed = int(box.get("failed", False))
                else:
                    optimizer.zero_grad(set_to_none=True)
                    try:
                        loss, ok = objective()
                    except UdeBridgeError:
                        loss, ok = None, False
                    if loss is None or not ok or not torch.isfinite(loss):
                        failed = 1  # skip the update, keep training
                        lv = math.nan
                    else:
                        loss.backward()
                        if clip_grad:
                            torch.nn.utils.clip_grad_norm_(params, clip_grad)
                        optimizer.step()
                        lv = float(loss.detach())
                    if scheduler is not None:
                        scheduler.step()
                failures += failed
                val = None
                if V is not None and (it % val_every == 0 or it == iters - 1):
                    with torch.no_grad():
                        try:
                            vl, vok = data_loss(V)
                            val = float(vl) if vok else math.nan
                        except UdeBridgeError:
                            val = math.nan
                    if val < best[0]:
                        best = (val, {k: v.detach().clone() for k, v in model.state_dict().items()})
                        stale = 0
                    else:
                        stale += 1
                history.append(
                    {
                        "iteration": global_it,
                        "stage": si,
                        "optimizer": name,
                        "loss": lv,
                        "val_loss": val,
                        "time": time.perf_counter() - t_start,
                        "failed": failed,
                    }
                )
                if math.isfinite(lv):
                    loss_value = lv
                global_it += 1
                next_it = it + 1
                bar.update(1)
                bar.set_postfix(
                    loss=f"{lv:.3e}", **({"val": f"{val:.3e}"} if val is not None else {})
                )
                if callback is not None and callback(global_it, lv, model):
                    stopped = True
                if ck_path is not None and global_it % checkpoint_every == 0:
                    save_checkpoint(si, it + 1, optimizer)
                if stopped:
                    break
                if patience is not None and stale >= patience:
                    break
            if stopped:
                break
            start_it = 0
            resume_stage, next_it = si + 1, 0
            opt_state = None
            save_checkpoint(si + 1, 0, None)
    except KeyboardInterrupt:
        bar.close()
        # the last recorded iteration is done: resume after it, never repeat it
        save_checkpoint(resume_stage, next_it, optimizer if next_it else None)
        raise
    bar.close()
    if V is not None and best[1] is not None:
        model.load_state_dict(best[1])
    with torch.no_grad():
        final, ok = objective()
    loss_value = float(final) if ok else loss_value
    options = dict(
        opts,
        optimizers=[list(s) for s in stages],
        shooting=shooting,
        learn_u0=learn_u0,
        seed=seed,
        backend=backend,
    )
    return FitResult(model, data, history, loss_value, P.u0.detach().clone(), options, failures)


def _julia_options(ts: torch.Tensor, opts: dict[str, Any]) -> dict[str, Any]:
    return {
        "saveat": ts,
        "rtol": opts["rtol"],
        "atol": opts["atol"],
        "dt": None,
        "adaptive": None,
        "max_steps": opts["max_steps"],
        "dtmin": 0.0,
        "dense": False,
        "throw": True,
        "sensealg": opts["sensealg"],
    }
