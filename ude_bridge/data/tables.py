"""Long tables (CSV rows, DataFrames): one row per time point, a trajectory id column."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import InputError
from .checks import _check_states, _construct, _suggest

if TYPE_CHECKING:
    from .trajectories import Trajectories


#: Cell texts read as a missing value (compared case-insensitively, after stripping blanks).
_MISSING = frozenset({"", "nan", "na", "n/a", "null", "none"})


def _cell_to_float(cell: Any) -> float | None:
    """A cell as a float (NaN when missing), or None when it is not a number."""
    if cell is None:
        return float("nan")
    if isinstance(cell, str):
        text = cell.strip()
        if text.lower() in _MISSING:
            return float("nan")
        cell = text
    if isinstance(cell, bool):
        return None
    try:
        return float(cell)
    except (TypeError, ValueError):
        return None


def _show(cell: Any) -> str:
    """A cell as it would be typed: numpy scalars as plain Python values."""
    return repr(cell.item() if isinstance(cell, np.generic) else cell)


def _pandas_missing(pd: Any, value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _parse_column(
    name: str,
    cells: Any,
    row_label: Callable[[int], str],
    where: str,
    *,
    strict: bool,
) -> np.ndarray | None:
    """Column ``name`` as float64, NaN where missing. A cell that is not a number raises, except
    that with ``strict=False`` a column with no number at all (a text column) gives None.
    """
    if isinstance(cells, np.ndarray):
        return cells
    out = np.empty(len(cells), dtype=np.float64)
    first_bad = None
    any_number = False
    for i, cell in enumerate(cells):
        value = _cell_to_float(cell)
        if value is None:
            first_bad = i if first_bad is None else first_bad
            value = float("nan")
        elif value == value:
            any_number = True
        out[i] = value
    if first_bad is None:
        return out
    if not strict and not any_number:
        return None
    raise InputError(
        f"{where}: column {name!r} must hold numbers (an empty cell or NaN marks a missing "
        f"value); found {_show(cells[first_bad])} at {row_label(first_bad)}. Fix that cell, or "
        "leave it empty if the value is missing."
    )


def _trajectory_id(cell: Any) -> Hashable | None:
    """A trajectory id from a cell (None when the cell is empty)."""
    if isinstance(cell, np.generic):
        cell = cell.item()
    if cell is None:
        return None
    if isinstance(cell, str):
        return cell.strip() or None
    if isinstance(cell, float):
        if cell != cell:
            return None
        return int(cell) if cell.is_integer() else cell
    return cell


def _int_like(text: str) -> bool:
    try:
        return str(int(text)) == text
    except ValueError:
        return False


def _from_long_table(
    cls: type[Trajectories],
    header: list[str],
    column: Callable[[str], Any],
    n_rows: int,
    row_label: Callable[[int], str],
    *,
    time: str,
    states: Sequence[str] | str | None,
    trajectory: str | None,
    where: str,
) -> Trajectories:
    """The shared reader of long-format tables (CSV files, DataFrames)."""
    dup = next((c for j, c in enumerate(header) if c in header[:j]), None)
    if dup is not None:
        raise InputError(f"{where}: column names must be unique; {dup!r} appears more than once.")
    for name, what, arg in ((time, "time", "time"), (trajectory, "trajectory id", "trajectory")):
        if name is not None and name not in header:
            raise InputError(
                f"{where}: no {what} column {name!r}."
                f"{_suggest(str(name), header, 'column')} Pass {arg}='<column>'."
            )
    if trajectory == time:
        raise InputError(
            f"{where}: time and trajectory must be different columns; both are {time!r}."
        )
    reserved = {time, trajectory}
    if states is None:
        candidates = [c for c in header if c not in reserved]
    else:
        candidates = list(_check_states(states, None, where))
        for s in candidates:
            if s in reserved:
                raise InputError(
                    f"{where}: state {s!r} is also the {'time' if s == time else 'trajectory'} "
                    "column; a column can only be one of these."
                )
            if s not in header:
                raise InputError(f"{where}: no state column {s!r}.{_suggest(s, header, 'column')}")
    if n_rows == 0:
        raise InputError(
            f"{where}: the table has a header but no data rows; there is nothing to fit."
        )

    values: dict[str, np.ndarray] = {}
    for name in candidates:
        parsed = _parse_column(name, column(name), row_label, where, strict=states is not None)
        if parsed is not None:
            values[name] = parsed
    if not values:
        raise InputError(
            f"{where}: no numeric state column besides the time {time!r}"
            f"{'' if trajectory is None else f' and trajectory {trajectory!r}'} columns; found "
            f"columns {', '.join(header)}. Pass states=[...]."
        )
    state_names = list(values)
    t_raw = column(time)
    t_all = _parse_column(time, t_raw, row_label, where, strict=True)
    assert t_all is not None
    bad = np.nonzero(~np.isfinite(t_all))[0]
    if len(bad):
        i = int(bad[0])
        found = "an empty cell" if t_all[i] != t_all[i] else _show(t_raw[i])
        raise InputError(
            f"{where}: the time column {time!r} must hold a finite number in every row; found "
            f"{found} at {row_label(i)}."
        )
    u_all = np.stack([values[s] for s in state_names], axis=1)
    inf = np.argwhere(np.isinf(u_all))
    if len(inf):
        i, j = (int(v) for v in inf[0])
        raise InputError(
            f"{where}: column {state_names[j]!r} must be finite or missing; found "
            f"{_show(column(state_names[j])[i])} at {row_label(i)}. Leave the cell empty if the "
            "value is missing."
        )

    groups: dict[Hashable, list[int]] = {}
    if trajectory is None:
        groups[0] = list(range(n_rows))
    else:
        for i, cell in enumerate(column(trajectory)):
            key = _trajectory_id(cell)
            if key is None:
                raise InputError(
                    f"{where}: the trajectory id column {trajectory!r} is empty at {row_label(i)}; "
                    "every row needs an id."
                )
            groups.setdefault(key, []).append(i)
        if all(isinstance(k, str) and _int_like(k) for k in groups):
            groups = {int(k): rows for k, rows in groups.items()}  # type: ignore[arg-type]

    ts, us = [], []
    for key, rows in groups.items():
        idx = np.asarray(rows)
        t_k = t_all[idx]
        step = np.nonzero(np.diff(t_k) <= 0)[0]
        if len(step):
            a, b = rows[int(step[0])], rows[int(step[0]) + 1]
            who = "" if trajectory is None else f" of trajectory {key!r}"
            hint = (
                " If the table holds several trajectories, pass trajectory='<id column>'."
                if trajectory is None
                else ""
            )
            raise InputError(
                f"{where}: times{who} must be strictly increasing; found {time}="
                f"{float(t_all[b])!r} at {row_label(b)} after {time}={float(t_all[a])!r} at "
                f"{row_label(a)}. Sort the rows by time within each trajectory and drop repeated "
                f"times.{hint}"
            )
        ts.append(torch.from_numpy(t_k))
        us.append(torch.from_numpy(np.ascontiguousarray(u_all[idx])))
    return _construct(cls, ts, us, tuple(state_names), list(groups), where)
