"""Validation of trajectory arrays, names and states; errors name what is wrong and where."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._checks import did_you_mean, fmt_shape
from ..errors import InputError

if TYPE_CHECKING:
    from .trajectories import Trajectories


def _construct(
    cls: type[Trajectories],
    ts: list[torch.Tensor],
    us: list[torch.Tensor],
    states: Sequence[str] | str | None,
    names: Sequence[Hashable] | None,
    where: str,
) -> Trajectories:
    obj = cls.__new__(cls)
    obj._init_checked(ts, us, states, names, where=where)
    return obj


def _suggest(name: str, known: Sequence[str], what: str) -> str:
    """`did_you_mean`, plus a prefix hit (``t`` -> ``time``) that string similarity misses."""
    hint = did_you_mean(name, known, what=what)
    if "Did you mean" in hint:
        return hint
    low = name.lower()
    prefix = [k for k in known if k.lower().startswith(low) or low.startswith(k.lower())]
    return f" Did you mean {prefix[0]!r}?{hint}" if low and prefix else hint


def _half_up(x: float) -> int:
    """Round half up (Python's `round` sends 2.5 to 2), so split sizes are predictable."""
    return int(math.floor(x + 0.5))


def _label(names: Sequence[Hashable], i: int) -> str:
    return f"trajectory {i}" if names[i] == i else f"trajectory {names[i]!r} (index {i})"


def _is_array(x: Any) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray)) and x.ndim >= 1


def _to_float64(value: Any, *, name: str, where: str) -> torch.Tensor:
    """A float64 tensor of ``value``; a tensor keeps its device, anything else goes to the CPU."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise InputError(f"{where}: {name} must be real; found a complex tensor.")
        return value.detach().to(dtype=torch.float64)
    try:
        arr = np.array(value, dtype=np.float64)  # a copy: later edits of the input do not leak in
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{where}: {name} must be numeric; it could not be read as float64 ({exc}). Use NaN "
            "for a missing value, and a list of arrays for trajectories of different lengths."
        ) from None
    return torch.from_numpy(arr)


def _normalise_arrays(
    t: Any, u: Any, *, where: str
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Turn the accepted forms of ``t`` and ``u`` into per-trajectory lists (unchecked values)."""
    per_t = (
        isinstance(t, (list, tuple))
        and len(t) > 0
        and all(_is_array(e) or isinstance(e, (list, tuple)) for e in t)
    )
    if isinstance(u, (list, tuple)) and (per_t or (len(u) > 0 and all(_is_array(e) for e in u))):
        us = [_to_float64(e, name=f"u[{i}]", where=where) for i, e in enumerate(u)]
        for i, u_i in enumerate(us):
            if u_i.ndim not in (1, 2):
                raise InputError(
                    f"{where}: each trajectory in u must be (T_i, n); found u[{i}] with shape "
                    f"{fmt_shape(u_i.shape)}."
                )
        us = [u_i.unsqueeze(-1) if u_i.ndim == 1 else u_i for u_i in us]
    else:
        whole = _to_float64(u, name="u", where=where)
        if whole.ndim == 1:
            us = [whole.unsqueeze(-1)]
        elif whole.ndim == 2:
            us = [whole]
        elif whole.ndim == 3:
            us = list(whole.unbind(0))
        else:
            raise InputError(
                f"{where}: u must have shape (T, n), (R, T, n) or be a list of (T_i, n) arrays; "
                f"found shape {fmt_shape(whole.shape)}."
            )
    if not us:
        raise InputError(f"{where}: u must hold at least one trajectory; found none.")
    device = us[0].device
    us = [u_i.to(device) for u_i in us]
    if per_t:
        ts = [_to_float64(e, name=f"t[{i}]", where=where).to(device) for i, e in enumerate(t)]
        if len(ts) != len(us):
            raise InputError(
                f"{where}: t and u must hold the same number of trajectories; found {len(ts)} "
                f"time grids in t and {len(us)} trajectories in u."
            )
    else:
        grid = _to_float64(t, name="t", where=where).to(device)
        if grid.ndim != 1:
            raise InputError(
                f"{where}: t must be a (T,) grid or a list of (T_i,) grids; found shape "
                f"{fmt_shape(grid.shape)}."
            )
        if len(us) == 1 and us[0].shape[0] != grid.shape[0] and us[0].shape[1] == grid.shape[0]:
            raise InputError(
                f"{where}: u has shape {fmt_shape(us[0].shape)}, read as (T, n), but t has "
                f"{grid.shape[0]} times. For R trajectories of one state pass u of shape "
                f"(R, T, 1); for one trajectory pass u of shape (T, n)."
            )
        ts = [grid] * len(us)
    return ts, us


def _check_names(names: Sequence[Hashable] | None, R: int, where: str) -> tuple[Hashable, ...]:
    if names is None:
        return tuple(range(R))
    if isinstance(names, (str, bytes)):
        names = [names]
    out = tuple(n.item() if isinstance(n, np.generic) else n for n in names)
    if len(out) != R:
        raise InputError(
            f"{where}: names must have one id per trajectory; found {len(out)} names for {R} "
            "trajectories."
        )
    seen: set = set()
    for n in out:
        if n in seen:
            raise InputError(f"{where}: names must be unique; {n!r} appears more than once.")
        seen.add(n)
    return out


def _check_states(states: Sequence[str] | str | None, n: int | None, where: str) -> tuple[str, ...]:
    if states is None:
        if n is None:
            raise InputError(f"{where}: states must name at least one state; found None.")
        return tuple(f"x{j + 1}" for j in range(n))
    names = (states,) if isinstance(states, str) else tuple(states)
    for s in names:
        if not isinstance(s, str) or not s:
            raise InputError(f"{where}: states must be non-empty strings; found {s!r}.")
    if not names:
        raise InputError(f"{where}: states must name at least one state; found none.")
    dup = next((s for j, s in enumerate(names) if s in names[:j]), None)
    if dup is not None:
        raise InputError(f"{where}: states must be unique; {dup!r} appears more than once.")
    if n is not None and len(names) != n:
        raise InputError(
            f"{where}: states must name every column of u; found {len(names)} names "
            f"{names} for {n} columns."
        )
    return names


def _check_trajectories(
    ts: list[torch.Tensor],
    us: list[torch.Tensor],
    names: tuple[Hashable, ...],
    states: tuple[str, ...],
    where: str,
) -> None:
    """Check shapes and values trajectory by trajectory."""
    n = len(states)
    for i, (t_i, u_i) in enumerate(zip(ts, us, strict=True)):
        who = _label(names, i)
        if t_i.ndim != 1:
            raise InputError(
                f"{where}: the times of {who} must be 1-D (T_i,); found shape "
                f"{fmt_shape(t_i.shape)}."
            )
        if t_i.shape[0] == 0:
            raise InputError(f"{where}: {who} has no time points; every trajectory needs one.")
        if u_i.shape[0] != t_i.shape[0]:
            raise InputError(
                f"{where}: t and u must have the same number of points; {who} has "
                f"{t_i.shape[0]} times in t but {u_i.shape[0]} rows in u."
            )
        if u_i.shape[1] != n:
            raise InputError(
                f"{where}: every trajectory must have the same states; {who} has "
                f"{u_i.shape[1]} columns but {_label(names, 0)} has {n}."
            )
        bad_t = torch.nonzero(~torch.isfinite(t_i))
        if len(bad_t):
            k = int(bad_t[0, 0])
            raise InputError(f"{where}: times must be finite; {who} has t[{k}]={float(t_i[k])!r}.")
        bad_step = torch.nonzero(t_i[1:] <= t_i[:-1])
        if len(bad_step):
            k = int(bad_step[0, 0])
            raise InputError(
                f"{where}: times must be strictly increasing; {who} has t[{k}]="
                f"{float(t_i[k])!r} followed by t[{k + 1}]={float(t_i[k + 1])!r}. Sort the "
                "points by time and drop repeated times."
            )
        bad_u = torch.nonzero(torch.isinf(u_i))
        if len(bad_u):
            k, j = (int(v) for v in bad_u[0])
            raise InputError(
                f"{where}: u must be finite or NaN (NaN marks a missing value); {who} has "
                f"{float(u_i[k, j])!r} at row {k}, column {j} (state "
                f"{states[j]!r}). Replace it with NaN if the value "
                "is missing."
            )
        if bool(torch.isnan(u_i).all()):
            raise InputError(
                f"{where}: {who} has no observed value: all {u_i.numel()} entries of u are NaN. "
                "Drop that trajectory, or check that its values were read."
            )


def _check_every_state_observed(
    us: list[torch.Tensor], states: tuple[str, ...], where: str
) -> None:
    seen = torch.zeros(len(states), dtype=torch.bool, device=us[0].device)
    for u_i in us:
        seen |= ~torch.isnan(u_i).all(dim=0)
    if not bool(seen.all()):
        j = int(torch.nonzero(~seen)[0, 0])
        raise InputError(
            f"{where}: state {states[j]!r} has no observed value in any trajectory (all NaN). "
            "Leave it out of the data: a model state that is not measured need not be a column."
        )
