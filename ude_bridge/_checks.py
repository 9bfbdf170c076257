"""Input checks shared by every entry point: one message format everywhere.

Messages read ``where: what was expected; what was found. How to fix it.``
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any

from .errors import InputError

__all__ = [
    "check_finite",
    "check_increasing",
    "check_positive",
    "did_you_mean",
    "fmt_shape",
]


def fmt_shape(shape: Iterable[int]) -> str:
    """Format a shape as ``(2, 3)``."""
    return (
        "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(tuple(shape)) == 1 else "") + ")"
    )


def did_you_mean(name: str, known: Sequence[str], *, what: str = "name") -> str:
    """Return ``" Did you mean 'x'? Known: a, b, c."`` for an unknown ``name``.

    The suggestion is a case-insensitive exact hit first, then the closest by
    ``difflib`` similarity; it is omitted when nothing is close.
    """
    known = list(known)
    lower = {k.lower(): k for k in known}
    guess = lower.get(name.lower())
    if guess is None:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        guess = close[0] if close else None
    hint = f" Did you mean '{guess}'?" if guess is not None and guess != name else ""
    return f"{hint} Known {what}s: {', '.join(known)}."


def _first_bad_index(array: Any) -> tuple[int, ...]:
    import numpy as np

    bad = np.argwhere(~np.isfinite(np.asarray(array, dtype=float)))
    return tuple(int(i) for i in bad[0]) if len(bad) else ()


def check_finite(value: Any, *, name: str, where: str) -> None:
    """Raise `InputError` if ``value`` (tensor, array or number) holds NaN or inf."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            if bool(torch.isfinite(value).all()):
                return
            array = value.detach().cpu().numpy()
        else:
            return
    else:
        array = np.asarray(value, dtype=float)
        if np.isfinite(array).all():
            return
    idx = _first_bad_index(array)
    bad = array[idx] if idx else array
    kind = "NaN" if np.isnan(bad) else "inf"
    at = f" at index {idx}" if idx else ""
    raise InputError(
        f"{where}: {name} must be finite; found {kind}{at} of {name} with shape "
        f"{fmt_shape(np.shape(array))}."
    )


def check_positive(value: float, *, name: str, where: str, allow_zero: bool = False) -> None:
    """Raise `InputError` unless ``value`` is a finite number > 0 (or >= 0)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {name} must be a number; got {value!r}.") from None
    ok = math.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise InputError(f"{where}: {name} must be finite and {bound}; got {name}={value!r}.")


def check_increasing(values: Any, *, name: str, where: str, strict: bool = True) -> None:
    """Raise `InputError` unless a 1-D sequence is (strictly) increasing."""
    import numpy as np

    arr = np.asarray(values, dtype=float).reshape(-1)
    diffs = np.diff(arr)
    bad = np.nonzero(diffs <= 0 if strict else diffs < 0)[0]
    if len(bad):
        i = int(bad[0])
        word = "strictly increasing" if strict else "non-decreasing"
        raise InputError(
            f"{where}: {name} must be {word}; found {name}[{i}]={arr[i]!r} followed by "
            f"{name}[{i + 1}]={arr[i + 1]!r}."
        )
