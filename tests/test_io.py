"""Atomic writes (`ude_bridge._io`): a failed or interrupted write never leaves a torn file."""

from __future__ import annotations

import os
import stat

import pytest

from ude_bridge._io import atomic_write, atomic_write_text
from ude_bridge.errors import InputError


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "data.csv"
    target.write_text("old\n")

    def half(fh):
        fh.write("new, half written")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(target, half)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]


def test_the_new_content_replaces_the_old_and_keeps_its_permissions(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    os.chmod(target, 0o600)
    assert atomic_write_text(target, "new") == target
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_binary_writes_and_created_folders(tmp_path):
    target = tmp_path / "a" / "b" / "x.bin"
    atomic_write(target, lambda fh: fh.write(b"\x00\x01"), binary=True, make_folder=True)
    assert target.read_bytes() == b"\x00\x01"


def test_a_missing_folder_is_named_in_the_error(tmp_path):
    with pytest.raises(InputError, match="save: the folder .*nope.* does not exist"):
        atomic_write_text(tmp_path / "nope" / "x.txt", "x", where="save")


def test_ctrl_c_during_a_write_is_raised_after_the_file_is_in_place(tmp_path):
    import signal

    target = tmp_path / "checkpoint.bin"

    def write(fh):
        fh.write(b"first half ")
        os.kill(os.getpid(), signal.SIGINT)  # delivered mid-write, as a user's Ctrl-C
        fh.write(b"second half")

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, write, binary=True)
    assert target.read_bytes() == b"first half second half"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.bin"]
