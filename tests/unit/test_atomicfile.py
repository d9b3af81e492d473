"""api/atomicfile.py: whole replacement, final mode, nothing left behind."""

import os

import pytest

from api.atomicfile import write_atomic


def test_replaces_whole_with_its_mode_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    write_atomic(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new" and os.stat(target).st_mode & 0o777 == 0o600
    write_atomic(target, b"newer", durable=False)
    assert target.read_bytes() == b"newer" and os.listdir(tmp_path) == ["state.json"]


def test_a_write_into_a_missing_directory_fails_and_creates_nothing(tmp_path):
    target = tmp_path / "missing-dir" / "x"
    with pytest.raises(FileNotFoundError):
        write_atomic(target, b"data")
    assert not (tmp_path / "missing-dir").exists()
