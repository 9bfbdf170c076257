"""Checkpoints written atomically: a crash or SIGKILL mid-write never corrupts the file.

The state goes to a temporary file in the same folder, is flushed and fsync'ed, then
renamed over the checkpoint (`os.replace` is atomic on POSIX and Windows), so a reader sees
either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .._io import atomic_write

__all__ = ["atomic_save", "checkpoint_file", "load_checkpoint"]


def checkpoint_file(path: str | os.PathLike) -> Path:
    """``path`` itself if it names a file (``.pt``/``.pth``), else ``path/checkpoint.pt``."""
    p = Path(path)
    return p if p.suffix in (".pt", ".pth") else p / "checkpoint.pt"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """`torch.save` ``obj`` to ``path`` atomically (temp file + fsync + rename)."""
    atomic_write(path, lambda fh: torch.save(obj, fh), binary=True, make_folder=True)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """The checkpoint at ``path``, or None if there is none yet."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
