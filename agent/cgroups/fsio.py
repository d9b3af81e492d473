"""Reading and writing cgroup files: the only place that touches the filesystem.

Cgroup control files are small text files in a kernel filesystem, with a few rules
that differ from ordinary files, and this module encodes them once:

- A value is written with a single write(2) on a file opened O_WRONLY|O_TRUNC and
  *without* O_CREAT: control files exist because the kernel made them when the
  directory was created. If one is missing (a controller not mounted or not enabled)
  the write fails and says so, rather than creating a meaningless regular file.
- Directories are removed with rmdir(2) even though they still "contain" control
  files; the kernel allows that once no process is left.

Every error is turned into a `CgroupError` naming the file and the value. The v1 and
v2 drivers call these functions through the module (`fsio.make_dir(...)`), so unit
tests that run against a temporary directory can stand in for the kernel by
replacing `make_dir`/`remove_dir` with versions that create/delete the control files.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from agent.cgroups.errors import CgroupError


def _describe(err: OSError) -> str:
    return err.strerror or str(err)


def read_text(path: Path) -> str:
    """The whole content of a control file."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError as err:
        raise CgroupError(f"reading {path}: {_describe(err)}") from err


def read_int(path: Path) -> int:
    """A control file holding one integer (memory.current, pids.current, cpuacct.usage...)."""
    text = read_text(path).strip()
    try:
        return int(text)
    except ValueError:
        raise CgroupError(f"reading {path}: expected an integer, got {text!r}") from None


def read_limit(path: Path) -> int | None:
    """A v2 limit file holding a number or "max" (memory.max, pids.max); "max" is None."""
    text = read_text(path).strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        raise CgroupError(f"reading {path}: expected an integer or 'max', got {text!r}") from None


def read_keyed(path: Path) -> dict[str, int]:
    """A flat keyed file of "name value" lines (cpu.stat, memory.events, memory.stat).

    Lines whose value is not an integer are skipped rather than failing the read.
    """
    values: dict[str, int] = {}
    for line in read_text(path).splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                values[parts[0]] = int(parts[1])
            except ValueError:
                continue
    return values


def read_pids(path: Path) -> list[int]:
    """The pids listed one per line in a cgroup.procs file."""
    return [int(line) for line in read_text(path).split() if line.isdigit()]


def write_value(path: Path, value: str | int) -> None:
    """Write one value to an existing control file in a single write(2)."""
    write_each(path, [str(value)])


def write_each(path: Path, values: list[str]) -> None:
    """Write several values to one control file, one write(2) each on a single open file
    (devices.allow takes one rule per write); saves an open and close per value."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as err:
        raise CgroupError(f'writing "{values[0] if values else ""}" to {path}: {_describe(err)}') from err
    try:
        for value in values:
            try:
                os.write(fd, value.encode("ascii"))
            except OSError as err:
                raise CgroupError(f'writing "{value}" to {path}: {_describe(err)}') from err
    finally:
        os.close(fd)


def make_dir(path: Path) -> None:
    """Create one cgroup directory; an existing one is fine (create is idempotent)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    except OSError as err:
        raise CgroupError(f"creating cgroup {path}: {_describe(err)}") from err


def remove_dir(path: Path) -> None:
    """rmdir one cgroup directory; a missing one is fine. Raises OSError (not CgroupError)
    so the caller can tell EBUSY ("processes still leaving") apart and retry."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return


def subdirs(path: Path) -> list[str]:
    """Names of the child groups (directories) of a group, sorted; [] when it does not exist."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    except OSError as err:
        raise CgroupError(f"listing {path}: {_describe(err)}") from err


def is_busy(err: OSError) -> bool:
    """True for the errors rmdir gives while a group still has (dying) processes."""
    return err.errno in (errno.EBUSY, errno.ENOTEMPTY)
