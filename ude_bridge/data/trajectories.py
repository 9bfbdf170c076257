"""The `Trajectories` container: construction, access, selection, splits, files."""

from __future__ import annotations

import csv
import operator
import os
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .._checks import did_you_mean, fmt_shape
from .._io import atomic_write
from ..errors import BackendUnavailableError, InputError
from .checks import (
    _check_every_state_observed,
    _check_names,
    _check_states,
    _check_trajectories,
    _construct,
    _half_up,
    _label,
    _normalise_arrays,
    _suggest,
)
from .files import _read_csv, _read_npz
from .tables import _from_long_table, _pandas_missing

__all__ = ["Trajectories"]


class Trajectories:
    """R observed trajectories of n states, each with its own time grid; NaN marks a missing value.

    Args:
        t: the time grid, ``(T,)`` shared by every trajectory, or a list of ``(T_i,)`` grids,
            one per trajectory. Times must be finite and strictly increasing. Stored as float64.
        u: the observations: ``(T, n)`` for one trajectory, ``(R, T, n)`` for R trajectories on
            a shared grid, or a list of ``(T_i, n)`` arrays (a list of arrays is always read as
            one array per trajectory). A 1-D ``(T,)`` array is one state. NaN marks a missing
            value; inf is an error. Stored as float64 (see `to` for other dtypes).
        states: names of the n columns of ``u``; default ``("x1", ..., "xn")``.
        names: trajectory ids, one per trajectory, unique; default ``0, ..., R-1``.

    Raises:
        InputError: when shapes disagree, times are non-finite or not strictly increasing, ``u``
            holds inf or is not numeric, a trajectory has no observed value, a state is observed
            in no trajectory, or ``states``/``names`` have the wrong length or repeat a name.

    Example:
        >>> import torch, ude_bridge as ub
        >>> t = torch.linspace(0, 1, 5)
        >>> data = ub.Trajectories(t, torch.ones(2, 5, 1), states=("x",))
        >>> len(data), data.states
        (2, ('x',))
    """

    __slots__ = ("_t", "_u", "_mask", "_states", "_names")

    def __init__(
        self,
        t: Any,
        u: Any,
        states: Sequence[str] | str | None = None,
        *,
        names: Sequence[Hashable] | None = None,
    ) -> None:
        ts, us = _normalise_arrays(t, u, where="Trajectories")
        self._init_checked(ts, us, states, names, where="Trajectories")

    # ----------------------------------------------------------------------------- construction

    def _init_checked(
        self,
        ts: list[torch.Tensor],
        us: list[torch.Tensor],
        states: Sequence[str] | str | None,
        names: Sequence[Hashable] | None,
        *,
        where: str,
    ) -> None:
        names_t = _check_names(names, len(us), where)
        n = int(us[0].shape[1])
        if n == 0:
            raise InputError(
                f"{where}: u must have at least one column (state); found shape "
                f"{fmt_shape(us[0].shape)}."
            )
        states_t = _check_states(states, n, where)
        _check_trajectories(ts, us, names_t, states_t, where)
        _check_every_state_observed(us, states_t, where)
        self._set(ts, us, states_t, names_t)

    def _set(
        self,
        ts: Sequence[torch.Tensor],
        us: Sequence[torch.Tensor],
        states: tuple[str, ...],
        names: tuple[Hashable, ...],
    ) -> None:
        self._t = tuple(ts)
        self._u = tuple(us)
        self._mask = tuple(~torch.isnan(u_i) for u_i in us)
        self._states = states
        self._names = names

    @classmethod
    def _unchecked(
        cls,
        ts: Sequence[torch.Tensor],
        us: Sequence[torch.Tensor],
        states: tuple[str, ...],
        names: tuple[Hashable, ...],
    ) -> Trajectories:
        """Make one from parts of an already checked one (subsets, splits, moves)."""
        obj = cls.__new__(cls)
        obj._set(ts, us, states, names)
        return obj

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike,
        time: str = "t",
        states: Sequence[str] | str | None = None,
        trajectory: str | None = None,
    ) -> Trajectories:
        """Read a long-format CSV: one row per time point, one column per state.

        An empty cell (or ``NaN``, ``NA``, ``null``) marks a missing value. Rows of one trajectory
        need not be contiguous, but their times must be strictly increasing in file order.

        Args:
            path: the CSV file, with a header row.
            time: the name of the time column.
            states: the state columns to read; default every other column that holds numbers.
            trajectory: the column of trajectory ids; default: the whole file is one trajectory.
                Ids that are all integers are read as ``int``, others as ``str``.

        Returns:
            The trajectories, in the order their ids first appear.

        Raises:
            InputError: naming the column (with the nearest header name) or the line (as a text
                editor numbers it, the header being line 1) of a missing column, a non-numeric
                cell, a missing or non-finite time, an inf value, or a time not after the previous
                time of its trajectory.
        """
        path = Path(path)
        where = f"Trajectories.from_csv({str(path)!r})"
        header, rows, lines = _read_csv(path, where)
        columns = {name: j for j, name in enumerate(header)}

        def column(name: str) -> list[str]:
            j = columns[name]
            return [row[j] for row in rows]

        return _from_long_table(
            cls,
            header,
            column,
            len(rows),
            lambda i: f"line {lines[i]}",
            time=time,
            states=states,
            trajectory=trajectory,
            where=where,
        )

    @classmethod
    def from_dataframe(
        cls,
        df: Any,
        time: str = "t",
        states: Sequence[str] | str | None = None,
        trajectory: str | None = None,
    ) -> Trajectories:
        """Read a long-format pandas DataFrame, as `from_csv` reads a file.

        Args:
            df: a ``pandas.DataFrame`` with one row per time point.
            time: the name of the time column.
            states: the state columns; default every other numeric column.
            trajectory: the column of trajectory ids; default: all rows are one trajectory.

        Raises:
            BackendUnavailableError: when pandas is not installed.
            InputError: as `from_csv`, naming rows by their index label.
        """
        where = "Trajectories.from_dataframe"
        try:
            import pandas as pd
        except ImportError:
            raise BackendUnavailableError(
                f"{where}: needs pandas, which is not installed. Install it (pip install pandas), "
                "or use Trajectories.from_csv or Trajectories(t, u) instead."
            ) from None
        if not isinstance(df, pd.DataFrame):
            raise InputError(
                f"{where}: df must be a pandas DataFrame; found {type(df).__name__}. For arrays, "
                "use Trajectories(t, u)."
            )
        header = [str(c) for c in df.columns]
        by_name = dict(zip(header, df.columns, strict=True))
        index = list(df.index)

        def column(name: str) -> Any:
            series = df[by_name[name]]
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                return series.to_numpy(dtype=np.float64, na_value=np.nan)
            return [None if _pandas_missing(pd, v) else v for v in series.tolist()]

        def row_label(i: int) -> str:
            label = index[i]
            return f"row {i}" if label == i else f"row {label!r} (position {i})"

        return _from_long_table(
            cls,
            header,
            column,
            len(df),
            row_label,
            time=time,
            states=states,
            trajectory=trajectory,
            where=where,
        )

    @classmethod
    def from_npz(
        cls,
        path: str | os.PathLike,
        t: str = "t",
        u: str = "u",
        states: Sequence[str] | str | None = None,
    ) -> Trajectories:
        """Read an NPZ archive, as written by `save_npz` or by ``numpy.savez(path, t=..., u=...)``.

        The arrays under keys ``t`` and ``u`` take the shapes the constructor takes; ``t`` may also
        be ``(R, T)`` (one grid per trajectory). Optional keys: ``states`` (column names),
        ``names`` (trajectory ids) and ``lengths`` (``(R,)``: ``t`` and ``u`` are then the
        trajectories concatenated, as `save_npz` writes ragged data).

        Args:
            path: the ``.npz`` file.
            t: the key of the times.
            u: the key of the observations.
            states: when the archive names its columns, the ones to keep; otherwise the names of
                the columns of ``u``.

        Raises:
            InputError: naming a missing key (with the nearest key) or a file that is not an NPZ
                archive, and whatever the constructor raises.
        """
        path = Path(path)
        where = f"Trajectories.from_npz({str(path)!r})"
        arrays = _read_npz(path, where)
        for key, what in ((t, "t"), (u, "u")):
            if key not in arrays:
                raise InputError(
                    f"{where}: the archive has no array {key!r} (used as {what})."
                    f"{_suggest(key, list(arrays), 'key')} Pass {what}='<key>'."
                )
        t_arr, u_arr = arrays[t], arrays[u]
        lengths = arrays.get("lengths")
        if lengths is not None and t_arr.ndim == 1 and u_arr.ndim == 2:
            cuts = np.cumsum(np.asarray(lengths, dtype=np.int64))[:-1]
            if int(np.sum(lengths)) != len(t_arr):
                raise InputError(
                    f"{where}: 'lengths' must sum to the number of times; found sum "
                    f"{int(np.sum(lengths))} and {len(t_arr)} times. The file is damaged."
                )
            t_in: Any = np.split(t_arr, cuts)
            u_in: Any = np.split(u_arr, cuts)
        else:
            t_in = list(t_arr) if t_arr.ndim == 2 else t_arr
            u_in = u_arr
        ts, us = _normalise_arrays(t_in, u_in, where=where)
        names = arrays.get("names")
        names_l = [n.item() for n in names] if names is not None else None
        file_states = arrays.get("states")
        if file_states is None:
            return _construct(cls, ts, us, states, names_l, where)
        file_states_t = tuple(str(s) for s in file_states)
        data = _construct(cls, ts, us, file_states_t, names_l, where)
        return data if states is None else data._select(states, where)

    # ----------------------------------------------------------------------------- attributes

    @property
    def t(self) -> list[torch.Tensor]:
        """The time grids: one ``(T_i,)`` float64 tensor per trajectory."""
        return list(self._t)

    @property
    def u(self) -> list[torch.Tensor]:
        """The observations: one ``(T_i, n)`` tensor per trajectory; NaN where missing."""
        return list(self._u)

    @property
    def mask(self) -> list[torch.Tensor]:
        """Where values were observed: one ``(T_i, n)`` bool tensor per trajectory."""
        return list(self._mask)

    @property
    def states(self) -> tuple[str, ...]:
        """The names of the n observed states (the columns of each ``u[i]``)."""
        return self._states

    @property
    def names(self) -> tuple[Hashable, ...]:
        """The trajectory ids, one per trajectory."""
        return self._names

    @property
    def n_trajectories(self) -> int:
        """R, the number of trajectories."""
        return len(self._u)

    @property
    def n_states(self) -> int:
        """n, the number of observed states."""
        return len(self._states)

    @property
    def n_points(self) -> tuple[int, ...]:
        """T_i, the number of time points of each trajectory."""
        return tuple(int(t_i.shape[0]) for t_i in self._t)

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of ``u`` (times are always float64)."""
        return self._u[0].dtype

    @property
    def device(self) -> torch.device:
        """The device every tensor lives on."""
        return self._u[0].device

    def __len__(self) -> int:
        return len(self._u)

    def __iter__(self) -> Iterator[Trajectories]:
        for i in range(len(self._u)):
            yield self._subset([i])

    def __getitem__(self, index: int | slice | Sequence[int]) -> Trajectories:
        """One trajectory (an int) or several (a slice, a sequence of ints) as `Trajectories`."""
        R = len(self._u)
        if isinstance(index, slice):
            picked = list(range(R))[index]
        elif hasattr(index, "__index__") and not isinstance(index, bool):
            i = operator.index(index)
            if not -R <= i < R:
                raise IndexError(f"Trajectories: index {i} is out of range for {R} trajectories.")
            picked = [i % R]
        else:
            try:
                picked = [int(i) for i in index]  # type: ignore[union-attr]
            except TypeError:
                raise InputError(
                    f"Trajectories[...]: the index must be an int, a slice or a sequence of ints; "
                    f"found {type(index).__name__}."
                ) from None
            bad = [i for i in picked if not -R <= i < R]
            if bad:
                raise IndexError(
                    f"Trajectories: index {bad[0]} is out of range for {R} trajectories."
                )
            picked = [i % R for i in picked]
        if not picked:
            raise InputError(f"Trajectories[{index!r}]: selects no trajectory out of {R}.")
        return self._subset(picked)

    def __repr__(self) -> str:
        R, n = len(self._u), len(self._states)
        lengths = self.n_points
        plural = "" if max(lengths) == 1 else "s"
        if R == 1:
            points = f"{lengths[0]} point{plural}"
        elif min(lengths) == max(lengths):
            shared = "one shared grid" if self._shared_grid() else "own grids"
            points = f"{lengths[0]} point{plural} each ({shared})"
        else:
            points = f"{min(lengths)}-{max(lengths)} points"
        t0 = min(float(t_i[0]) for t_i in self._t)
        t1 = max(float(t_i[-1]) for t_i in self._t)
        total = sum(m.numel() for m in self._mask)
        observed = sum(int(m.sum()) for m in self._mask)
        missing = 1.0 - observed / total
        shown = ", ".join(repr(s) for s in self._states[:8]) + (", ..." if n > 8 else "")
        ids = ""
        if self._names != tuple(range(R)):
            ids = (
                "; names "
                + ", ".join(repr(s) for s in self._names[:5])
                + (", ..." if R > 5 else "")
            )
        dtype = str(self.dtype).removeprefix("torch.")
        return (
            f"Trajectories({R} trajector{'y' if R == 1 else 'ies'}{ids}; {n} state"
            f"{'' if n == 1 else 's'} ({shown}); {points}; t in [{t0:g}, {t1:g}]; "
            f"{missing:.1%} missing; {dtype} on {self.device})"
        )

    # ----------------------------------------------------------------------------- summaries

    def tspan(self, i: int = 0) -> tuple[float, float]:
        """The first and last time of trajectory ``i``."""
        t_i = self[i]._t[0]
        return float(t_i[0]), float(t_i[-1])

    def scale(self) -> torch.Tensor:
        """Per-state spread of the observed values, ``(n,)``: their standard deviation over every
        trajectory, ignoring what is missing; 1 where it is zero (a constant or once-seen state).
        """
        values = torch.cat(list(self._u), dim=0)
        observed = ~torch.isnan(values)
        count = observed.sum(dim=0).to(values.dtype)
        filled = torch.where(observed, values, torch.zeros_like(values))
        mean = filled.sum(dim=0) / count
        dev = torch.where(observed, values - mean, torch.zeros_like(values))
        std = torch.sqrt((dev * dev).sum(dim=0) / count)
        return torch.where((std > 0) & torch.isfinite(std), std, torch.ones_like(std))

    def first_observed(self) -> torch.Tensor:
        """The first observed value of each state in each trajectory, ``(R, n)``; NaN where a
        state is never observed in a trajectory. Training uses it as the initial condition.
        """
        rows = []
        for u_i, m_i in zip(self._u, self._mask, strict=True):
            T = m_i.shape[0]
            rows_idx = torch.arange(T, device=m_i.device).unsqueeze(1).expand_as(m_i)
            first = torch.where(m_i, rows_idx, T).min(dim=0).values  # T where never observed
            value = u_i.gather(0, first.clamp(max=T - 1).unsqueeze(0)).squeeze(0)
            rows.append(torch.where(first < T, value, torch.full_like(value, float("nan"))))
        return torch.stack(rows)

    def stacked(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """``(t (T,), u (R, T, n), mask (R, T, n))`` when every trajectory has the same time grid
        (so that one batched solve serves them all), else None.
        """
        if not self._shared_grid():
            return None
        return self._t[0], torch.stack(self._u), torch.stack(self._mask)

    def _shared_grid(self) -> bool:
        t0 = self._t[0]
        return all(t_i.shape == t0.shape and torch.equal(t_i, t0) for t_i in self._t[1:])

    # ----------------------------------------------------------------------------- new views

    def select(self, states: Sequence[str] | str) -> Trajectories:
        """Keep only the given state columns, in the given order.

        Raises:
            InputError: for an unknown state (with the nearest name), or when a trajectory has no
                observed value left.
        """
        return self._select(states, "Trajectories.select")

    def _select(self, states: Sequence[str] | str, where: str) -> Trajectories:
        wanted = _check_states(states, None, where)
        for s in wanted:
            if s not in self._states:
                raise InputError(
                    f"{where}: unknown state {s!r}.{did_you_mean(s, self._states, what='state')}"
                )
        cols = [self._states.index(s) for s in wanted]
        us = [u_i[:, cols] for u_i in self._u]
        obj = type(self).__new__(type(self))
        obj._init_checked(list(self._t), us, wanted, self._names, where=where)
        return obj

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Trajectories:
        """A copy on ``device`` with ``u`` in ``dtype``; times stay float64 (the engine's rule).

        Raises:
            InputError: when ``dtype`` is not a floating-point dtype.
        """
        if dtype is not None and (
            not isinstance(dtype, torch.dtype) or not dtype.is_floating_point
        ):
            raise InputError(
                f"Trajectories.to: dtype must be a floating-point torch dtype (NaN marks missing "
                f"values); found {dtype!r}. Use e.g. torch.float32."
            )
        ts = [t_i.to(device=device) for t_i in self._t]
        us = [u_i.to(device=device, dtype=dtype) for u_i in self._u]
        return self._unchecked(ts, us, self._states, self._names)

    def split(
        self,
        by: Literal["trajectory", "time"] = "trajectory",
        fraction: float = 0.2,
        seed: int = 0,
    ) -> tuple[Trajectories, Trajectories]:
        """Split into ``(train, validation)``.

        ``by="trajectory"``: a random ``fraction`` of the trajectories (at least one, never all;
        chosen with ``seed``) is the validation set; both keep the original order and names.
        ``by="time"``: the last ``fraction`` of each trajectory's points (at least one, never all)
        is its validation part, so validation tests extrapolation in time; ``seed`` is unused.
        A validation part may hold no observed value when the last points are all missing.

        Raises:
            InputError: for an unknown ``by``, ``fraction`` outside (0, 1), a single trajectory
                split by trajectory, or a one-point trajectory split by time.
        """
        where = "Trajectories.split"
        choices = ("trajectory", "time")
        if by not in choices:
            raise InputError(
                f"{where}: unknown by={by!r}.{did_you_mean(str(by), choices, what='choice')}"
            )
        try:
            frac = float(fraction)
        except (TypeError, ValueError):
            frac = float("nan")
        if not 0.0 < frac < 1.0:
            raise InputError(
                f"{where}: fraction must be between 0 and 1 (exclusive); got {fraction!r}."
            )
        R = len(self._u)
        if by == "trajectory":
            if R < 2:
                raise InputError(
                    f"{where}: splitting by trajectory needs at least 2 trajectories; found {R}. "
                    "Use by='time' to hold out the end of each trajectory."
                )
            n_val = min(R - 1, max(1, _half_up(frac * R)))
            perm = np.random.default_rng(seed).permutation(R)
            val = sorted(int(i) for i in perm[:n_val])
            held_out = set(val)
            train = [i for i in range(R) if i not in held_out]
            return self._subset(train), self._subset(val)
        parts: tuple[list[torch.Tensor], ...] = ([], [], [], [])
        for i, (t_i, u_i) in enumerate(zip(self._t, self._u, strict=True)):
            T = int(t_i.shape[0])
            if T < 2:
                raise InputError(
                    f"{where}: splitting by time needs at least 2 points per trajectory; "
                    f"{_label(self._names, i)} has {T}. Use by='trajectory'."
                )
            cut = T - min(T - 1, max(1, _half_up(frac * T)))
            for part, value in zip(
                parts, (t_i[:cut], u_i[:cut], t_i[cut:], u_i[cut:]), strict=True
            ):
                part.append(value)
        train_data = self._unchecked(parts[0], parts[1], self._states, self._names)
        return train_data, self._unchecked(parts[2], parts[3], self._states, self._names)

    def _subset(self, picked: Sequence[int]) -> Trajectories:
        return self._unchecked(
            [self._t[i] for i in picked],
            [self._u[i] for i in picked],
            self._states,
            tuple(self._names[i] for i in picked),
        )

    # ----------------------------------------------------------------------------- writing

    def to_csv(
        self, path: str | os.PathLike, *, time: str = "t", trajectory: str = "trajectory"
    ) -> None:
        """Write long format (``trajectory, time, states...``; an empty cell where missing),
        atomically: a temporary file in the same folder, then a rename.

        Floats are written in full (shortest round-trip form), so `from_csv` with
        ``trajectory=trajectory`` reads back the same data (trajectory ids come back as ``int``
        when all are integers, otherwise as ``str``).

        Raises:
            InputError: when ``time`` or ``trajectory`` equals a state name or each other.
        """
        where = "Trajectories.to_csv"
        taken = {trajectory: "trajectory"}
        for name, what in ((time, "time"), *((s, "state") for s in self._states)):
            if name in taken:
                raise InputError(
                    f"{where}: the {what} column {name!r} clashes with the {taken[name]} column "
                    f"of the same name. Pass another time= or trajectory= name."
                )
            taken[name] = what

        def write(fh: Any) -> None:
            out = csv.writer(fh, lineterminator="\n")
            out.writerow([trajectory, time, *self._states])
            for name, t_i, u_i in zip(self._names, self._t, self._u, strict=True):
                u_rows = u_i.detach().cpu().to(torch.float64).tolist()
                for tv, row in zip(t_i.detach().cpu().tolist(), u_rows, strict=True):
                    cells = ["" if v != v else repr(v) for v in row]  # v != v: NaN
                    out.writerow([name, repr(tv), *cells])

        atomic_write(path, write, binary=False, where=where)

    def save_npz(self, path: str | os.PathLike) -> None:
        """Write an NPZ archive that `from_npz` reads back, atomically.

        Keys: ``t`` ``(T,)`` and ``u`` ``(R, T, n)`` when the grid is shared; otherwise the
        trajectories concatenated, ``t`` ``(N,)`` and ``u`` ``(N, n)``, with ``lengths`` ``(R,)``.
        Always ``states`` and ``names`` (int ids as integers, others as strings).
        """
        arrays: dict[str, np.ndarray] = {}
        packed = self.stacked()
        if packed is not None:
            arrays["t"] = packed[0].cpu().numpy()
            arrays["u"] = packed[1].detach().cpu().numpy()
        else:
            arrays["t"] = torch.cat(list(self._t)).cpu().numpy()
            arrays["u"] = torch.cat(list(self._u)).detach().cpu().numpy()
            arrays["lengths"] = np.asarray(self.n_points, dtype=np.int64)
        arrays["states"] = np.asarray(self._states, dtype=str)
        ints = all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in self._names
        )
        arrays["names"] = (
            np.asarray(self._names, dtype=np.int64)
            if ints
            else np.asarray([str(n) for n in self._names], dtype=str)
        )

        def write(fh: Any) -> None:
            np.savez(fh, **arrays)

        atomic_write(path, write, binary=True, where="Trajectories.save_npz")
