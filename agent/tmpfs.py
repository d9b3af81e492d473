"""tmpfs mounts for memory-backed volumes, and finding mounts under a directory.

agent/volumes.py puts an emptyDir with `medium: Memory` and every Secret volume
on a tmpfs (secrets never touch the node's disk). The kernel's mount table,
/proc/self/mountinfo, is the record of which volume directories are mounted:
nothing is remembered in memory, so an agent that restarts still finds and
unmounts them when it tears a pod down.

The mount(2)/umount2(2) bindings are the runtime's (agent/runtime/linux.py).
All of this is blocking: call it from a thread (asyncio.to_thread).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from agent.runtime.linux import MNT_DETACH, MS_NODEV, MS_NOSUID, mount, umount2

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as \\040-style octal escapes."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_points(mountinfo: Path = Path("/proc/self/mountinfo")) -> list[str]:
    """Every mount point of this process's mount namespace, in mount order."""
    points = []
    with open(mountinfo) as f:
        for line in f:
            fields = line.split(" ")
            if len(fields) > 4:
                points.append(_unescape(fields[4]))
    return points


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below `directory`, deepest first (the order to unmount them in)."""
    base = os.path.realpath(directory)
    found = {p for p in mount_points() if p == base or p.startswith(base.rstrip("/") + "/")}
    return sorted(found, key=lambda p: (p.count("/"), p), reverse=True)


def is_mount_point(path: Path) -> bool:
    return os.path.realpath(path) in mount_points()


def mount_tmpfs(target: Path, *, size_bytes: int | None, mode: int) -> None:
    """Mount a fresh tmpfs on `target` (nosuid, nodev), at most `size_bytes` big (None: the kernel's
    default, half of RAM)."""
    options = f"mode={mode:o}"
    if size_bytes:
        options += f",size={size_bytes}"
    mount("tmpfs", str(target), "tmpfs", MS_NOSUID | MS_NODEV, options)


def unmount(target: str) -> None:
    """Unmount `target`; a mount still busy (a process has a file open) is detached lazily."""
    try:
        umount2(target, 0)
    except OSError as e:
        if e.errno == errno.EBUSY:
            umount2(target, MNT_DETACH)
        elif e.errno not in (errno.EINVAL, errno.ENOENT):   # not mounted (any more)
            raise
