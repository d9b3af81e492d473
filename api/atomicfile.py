"""Replacing a file atomically and durably: the one helper for state, catalogs, blobs and keys.

`write_atomic(path, data)` writes a temporary file beside `path` (or in `tmp_dir`, on the same
filesystem), gives it its final `mode` before the first byte, fsyncs it, renames it over `path`
and fsyncs the directory, so a reader sees the old content or the new, never part, and the new
content survives a machine crash once this returns. `durable=False` skips both fsyncs (files
that only need to be whole, not to outlive a crash). Pure stdlib, in api/ because the agent's
runtime and image store and the control plane's key files all use it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True,
                 tmp_dir: Path | None = None) -> None:
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=f".{path.name[:32]}-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:   # the rename itself is durable only once the directory is
        fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
