"""Run folders: ``runs/<name or timestamp>/``, one per fit, holding everything it made.

```
runs/lv/
  run.json          what ran: command, model file, data source and its SHA-256, times, losses
  config.toml       the resolved model file (every default filled in; loads again)
  data.csv          a copy of the training data (larger files: only path + SHA-256)
  checkpoint.pt     training state, written during the fit (``--resume`` continues from it)
  fit.pt            the trained model (`ub.load`)
  history.csv       one row per iteration: loss, optimizer, time
  equations.json / equations.tex    what discovery found (and the refit)
  refit.pt          the discovered model, refitted
  forecast.csv      the forecast beyond the data (with the truth where known)
  *.png, report.md, report.html     plots and the report (images embedded in the HTML)
```

A folder that already holds a run is never overwritten unless asked (``--force``), and a
folder that does not look like a run folder is never deleted.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from .._io import atomic_write_text
from .config import ConfigError

__all__ = [
    "COPY_LIMIT",
    "RunFolder",
    "latest_run",
    "open_run",
    "prepare_run",
    "timestamp",
]

#: data files up to this size are copied into the run folder; larger ones are referenced
COPY_LIMIT = 50 * 2**20

RUN_FILE = "run.json"


def timestamp() -> str:
    """``YYYYmmdd-HHMMSS`` of now (local time), a default run name."""
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class RunFolder:
    """One run folder: paths of its files and its ``run.json`` record.

    Attributes:
        path: the folder.
        record: the contents of ``run.json`` (written by `save_record`).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.record: dict[str, Any] = {}
        if (self.path / RUN_FILE).exists():
            try:
                self.record = json.loads((self.path / RUN_FILE).read_text())
            except (OSError, ValueError):
                self.record = {}

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def exists(self, name: str) -> bool:
        """Whether the file ``name`` is in the folder."""
        return (self.path / name).exists()

    def save_record(self, **updates: Any) -> None:
        """Merge ``updates`` into ``run.json`` and write it (atomically)."""
        self.record.update(updates)
        text = json.dumps(self.record, indent=2, default=str) + "\n"
        atomic_write_text(self.path / RUN_FILE, text, where="run folder")

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file in the folder (atomically) and return its path."""
        return atomic_write_text(self.path / name, text, where="run folder")

    def store_data(self, source: str | os.PathLike) -> dict[str, Any]:
        """Copy the data file in as ``data.csv`` (or, above `COPY_LIMIT`, only record it).

        Returns:
            ``{"source", "sha256", "copy"}``; ``copy`` is ``"data.csv"`` or None.
        """
        source = Path(source).resolve()
        digest = sha256(source)
        copy_name = None
        if source.stat().st_size <= COPY_LIMIT:
            target = self.path / "data.csv"
            if source != target.resolve():
                shutil.copyfile(source, target)
            copy_name = "data.csv"
        info = {"source": str(source), "sha256": digest, "copy": copy_name}
        self.save_record(data=info)
        return info

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"


def _is_run_folder(path: Path) -> bool:
    return (path / RUN_FILE).exists() or (path / "checkpoint.pt").exists()


def prepare_run(
    out: str | os.PathLike | None,
    *,
    root: str | os.PathLike = "runs",
    prefix: str = "",
    force: bool = False,
    resume: bool = False,
) -> RunFolder:
    """Create (or, with ``resume``, reopen) a run folder.

    Args:
        out: the folder; default ``<root>/<prefix><timestamp>``.
        force: replace an existing run folder (its contents are deleted first).
        resume: reopen an existing run folder (its checkpoint is kept).

    Raises:
        ConfigError: the folder exists and is not empty, without ``force``/``resume``;
            ``force`` on a non-empty folder that is not a run folder; ``resume`` on a folder
            with no checkpoint; ``out`` is a file.
    """
    path = Path(out) if out is not None else Path(root) / f"{prefix}{timestamp()}"
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: is a file; --out must name a folder.")
    occupied = path.is_dir() and any(path.iterdir())
    if resume:
        if not (path / "checkpoint.pt").exists():
            raise ConfigError(
                f"{path}: no checkpoint to resume from (checkpoint.pt is missing); run without "
                "--resume to start a new fit."
            )
        return RunFolder(path)
    if occupied:
        if not force:
            raise ConfigError(
                f"{path}: the run folder exists; pass --force to overwrite it, --resume to "
                "continue its fit, or choose another --out."
            )
        if not _is_run_folder(path):
            raise ConfigError(
                f"{path}: is not empty and is not a run folder (no {RUN_FILE}); refusing to "
                "delete it even with --force. Choose another --out."
            )
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return RunFolder(path)


def open_run(path: str | os.PathLike, *, need: str = "fit.pt") -> RunFolder:
    """An existing run folder that holds ``need``.

    Raises:
        ConfigError: the folder or the file is missing.
    """
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: no such run folder.")
    if not p.is_dir():
        raise ConfigError(f"{p}: is not a folder; expected a run folder (runs/NAME).")
    if not (p / need).exists():
        hint = (
            " The fit has not finished; continue it with ude-bridge fit MODEL.toml --out "
            f"{p} --resume."
            if (p / "checkpoint.pt").exists()
            else " Run ude-bridge fit MODEL.toml --out RUN_DIR first."
        )
        raise ConfigError(f"{p}: not a finished run folder ({need} is missing).{hint}")
    return RunFolder(p)


def latest_run(model_file: str | os.PathLike, root: str | os.PathLike = "runs") -> Path | None:
    """The most recently changed run folder under ``root`` made from ``model_file``."""
    target = str(Path(model_file).resolve())
    best: tuple[float, Path] | None = None
    root = Path(root)
    if not root.is_dir():
        return None
    for child in root.iterdir():
        record = child / RUN_FILE
        if not record.exists():
            continue
        try:
            data = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if data.get("model_file") != target:
            continue
        mtime = record.stat().st_mtime
        if best is None or mtime > best[0]:
            best = (mtime, child)
    return best[1] if best else None
