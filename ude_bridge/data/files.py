"""Reading CSV and NPZ files without executing or unpickling anything."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError


def _read_csv(path: Path, where: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows and each row's line number (the header is line 1); blank lines skipped."""
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{where}: no such file. Check the path.") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot open the file ({exc.strerror}).") from None
    rows: list[list[str]] = []
    lines: list[int] = []
    header: list[str] | None = None
    with fh:
        reader = csv.reader(fh)
        try:
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                if header is None:
                    header = [c.strip() for c in row]
                    width = len(header)
                    continue
                if len(row) != width:
                    raise InputError(
                        f"{where}: every row must have {width} cells, as the header has; line "
                        f"{reader.line_num} has {len(row)}."
                    )
                rows.append(row)
                lines.append(reader.line_num)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(
                f"{where}: not a readable UTF-8 CSV file near line {reader.line_num} ({exc})."
            ) from None
    if header is None:
        raise InputError(f"{where}: the file is empty; expected a header row and data rows.")
    return header, rows, lines


def _read_npz(path: Path, where: str) -> dict[str, np.ndarray]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{where}: no such file. Check the path.") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{where}: not a readable NPZ archive ({exc}).") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise InputError(
            f"{where}: expected an NPZ archive with arrays 't' and 'u'; found a single .npy "
            "array. Save with numpy.savez(path, t=t, u=u)."
        )
    with loaded:
        try:
            return {key: loaded[key] for key in loaded.files}
        except ValueError as exc:  # object arrays need pickle, which is never allowed here
            raise InputError(f"{where}: cannot read the archive without pickle ({exc}).") from None
