"""Atomic file writes: every file ude_bridge writes goes through here.

The content goes to a temporary file in the target's folder, is flushed and fsync'ed, then
renamed over the target (`os.replace` is atomic on POSIX and Windows): a reader, or a run
killed mid-write (SIGKILL, power loss), sees the previous file or the new one, never a torn
one. An existing file keeps its permissions. A Ctrl-C (SIGINT) that arrives during a write
is held until the file is in place, then raised: C code such as ``torch.save``'s writer turns
an interrupt inside it into some other error, which would lose both the file and the
interrupt (a fit saves its checkpoint on Ctrl-C and says how to resume).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import InputError

__all__ = ["atomic_write", "atomic_write_text"]


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[IO[Any]], None],
    *,
    binary: bool = False,
    where: str = "write",
    make_folder: bool = False,
) -> Path:
    """Call ``write(fh)`` on a temporary file, then rename it over ``path``.

    Args:
        path: the target file.
        write: writes the content to the open file ``fh``.
        binary: ``fh`` is opened ``"wb"`` (else text, UTF-8, ``newline=""``).
        where: the entry point, for the error message.
        make_folder: create missing parent folders (else a missing folder is an error).

    Returns:
        ``path`` as a `Path`.

    Raises:
        InputError: the folder does not exist (and ``make_folder`` is False).
    """
    path = Path(path)
    folder = path.parent
    if make_folder:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise InputError(f"{where}: the folder {str(folder)!r} does not exist. Create it first.")
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    with _interrupts_held():
        _write_and_replace(path, folder, write, binary, mode)
    return path


@contextlib.contextmanager
def _interrupts_held():
    """Hold SIGINT for the duration (main thread only): delivered once the block ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught and callable(previous):
        previous(*caught[0])  # the default handler raises KeyboardInterrupt here
    elif caught and previous == signal.SIG_DFL:
        raise KeyboardInterrupt


def _write_and_replace(path: Path, folder: Path, write, binary: bool, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        if binary:
            fh = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
        with fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, where: str = "write") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see `atomic_write`."""
    return atomic_write(path, lambda fh: fh.write(text), where=where)
