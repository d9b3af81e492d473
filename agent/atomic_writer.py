"""Kubernetes' AtomicWriter: update a directory of files so that readers never see a mix.

ConfigMap, Secret and downwardAPI volumes (agent/volumes.py) are directories
whose files change while containers read them. Writing the files in place
would let a reader see half of an update. Instead, the volume directory looks
like this:

    ..2026_11_22_10_00_00.123456789/      the files of one version (a "timestamped dir")
    ..data -> ..2026_11_22_10_00_00.123456789
    app.conf -> ..data/app.conf            one symlink per top-level name
    conf.d -> ..data/conf.d

An update writes the complete new version into a fresh timestamped directory,
then points `..data` at it with one rename(2) of a new symlink over the old one
- the atomic step - then adds symlinks for new names, removes symlinks of names
that are gone, and finally deletes the old version. A reader that resolves
`..data` once sees one whole version, old or new.

Writing nothing when the content and modes are unchanged keeps a sync loop
that calls `write` every few seconds cheap and leaves the files alone.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = "..data"
_DATA_TMP = "..data_tmp"


@dataclass(frozen=True)
class FileProjection:
    """One file of a payload: its bytes, mode bits, and group (fsGroup) or None."""

    data: bytes
    mode: int = 0o644
    gid: int | None = None


def check_payload_path(path: str) -> None:
    """A payload path is relative, has no '..' and does not start with '..' (reserved for our names)."""
    if not path:
        raise ValueError("invalid path: must not be empty")
    if path.startswith("/"):
        raise ValueError(f"invalid path {path!r}: must be relative")
    if len(path) > 4096:
        raise ValueError(f"invalid path {path[:32]!r}...: must be less than or equal to 4096 characters")
    if path.startswith(".."):
        raise ValueError(f"invalid path {path!r}: must not start with '..'")
    if any(part in ("..", "", ".") for part in path.split("/")):
        raise ValueError(f"invalid path {path!r}: must not contain '..', '.' or empty elements")


class AtomicWriter:
    """Writes payloads into `target` (a directory it owns) with the ..data symlink swap."""

    def __init__(self, target: Path) -> None:
        self.target = Path(target)

    def current_dir(self) -> Path | None:
        """The timestamped directory `..data` points at, or None before the first write."""
        try:
            return self.target / os.readlink(self.target / DATA_DIR)
        except FileNotFoundError:
            return None

    def write(self, payload: dict[str, FileProjection]) -> bool:
        """Make the directory hold exactly `payload`; return whether anything changed.

        Blocking file work: call it through asyncio.to_thread from the event loop.
        """
        for path in payload:
            check_payload_path(path)
        self.target.mkdir(parents=True, exist_ok=True)
        old_dir = self.current_dir()
        old_paths = _relative_paths(old_dir) if old_dir is not None and old_dir.is_dir() else set()
        to_remove = old_paths - _with_parents(payload)
        if old_dir is not None and not to_remove and _same(old_dir, payload):
            self._add_visible_links(payload)   # repair a link someone removed; normally a no-op
            return False

        new_dir = Path(tempfile.mkdtemp(prefix=time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()),
                                        dir=self.target))
        os.chmod(new_dir, 0o755)
        _write_files(new_dir, payload)
        # The atomic step: a new symlink renamed over the old one.
        tmp_link = self.target / _DATA_TMP
        if tmp_link.is_symlink():
            tmp_link.unlink()
        os.symlink(new_dir.name, tmp_link)
        os.rename(tmp_link, self.target / DATA_DIR)
        self._add_visible_links(payload)
        for path in to_remove:
            if "/" not in path:                    # only top-level names have a symlink
                (self.target / path).unlink(missing_ok=True)
        if old_dir is not None and old_dir.parent == self.target and old_dir.name.startswith(".."):
            shutil.rmtree(old_dir, ignore_errors=True)
        return True

    def _add_visible_links(self, payload: dict[str, FileProjection]) -> None:
        for top in sorted({path.split("/", 1)[0] for path in payload}):
            link = self.target / top
            if not link.is_symlink():
                if link.exists():                  # not ours: a leftover file or dir in the way
                    shutil.rmtree(link) if link.is_dir() else link.unlink()
                os.symlink(f"{DATA_DIR}/{top}", link)


def _with_parents(payload: dict[str, FileProjection]) -> set[str]:
    """Every payload path and each of its parent dirs ("a/b/c" -> a, a/b, a/b/c)."""
    paths = set()
    for path in payload:
        parts = path.split("/")
        paths.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return paths


def _relative_paths(directory: Path) -> set[str]:
    """Every file and dir below `directory`, relative to it."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(directory):
        rel = os.path.relpath(dirpath, directory)
        for name in dirnames + filenames:
            found.add(name if rel == "." else f"{rel}/{name}")
    return found


def _same(directory: Path, payload: dict[str, FileProjection]) -> bool:
    """Whether `directory` holds exactly these files with these bytes, modes and groups."""
    for path, projection in payload.items():
        file = directory / path
        try:
            info = file.lstat()
            if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != projection.mode:
                return False
            if projection.gid is not None and info.st_gid != projection.gid:
                return False
            if info.st_size != len(projection.data) or file.read_bytes() != projection.data:
                return False
        except OSError:
            return False
    return True


def _write_files(directory: Path, payload: dict[str, FileProjection]) -> None:
    for path, projection in sorted(payload.items()):
        file = directory / path
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(projection.data)
            while view:
                view = view[os.write(fd, view):]
            if projection.gid is not None:
                os.fchown(fd, -1, projection.gid)
            os.fchmod(fd, projection.mode)          # after chown, which may clear set-id bits
        finally:
            os.close(fd)
