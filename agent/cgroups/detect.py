"""Which cgroup version a machine runs, and the driver that goes with it.

There are three layouts of /sys/fs/cgroup in the wild (the names are systemd's):

- unified: /sys/fs/cgroup itself is a cgroup2 mount; it has `cgroup.controllers`.
- hybrid:  a tmpfs with one v1 mount per controller, plus an (often controller-less)
           cgroup2 mount at /sys/fs/cgroup/unified.
- legacy:  a tmpfs with only v1 mounts.

Controllers that matter (cpu, memory, pids) live in v1 in the last two, so both
count as version 1. `detect()` looks at files only, so tests point `root` at a
temporary directory laid out like each case. `open_manager()` builds the driver.
"""

from __future__ import annotations

from pathlib import Path

from agent.cgroups.errors import CgroupError
from agent.cgroups.manager import CgroupManager
from agent.cgroups.teardown import Clock
from agent.cgroups.v1 import V1Manager
from agent.cgroups.v2 import V2Manager

DEFAULT_ROOT = "/sys/fs/cgroup"


def layout(root: str | Path = DEFAULT_ROOT) -> str:
    """"unified", "hybrid" or "legacy" (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise CgroupError(f"cgroup root {root} does not exist or is not a directory")
    if (root / "cgroup.controllers").is_file():
        return "unified"
    if (root / "unified" / "cgroup.controllers").is_file():
        return "hybrid"
    return "legacy"


def detect(root: str | Path = DEFAULT_ROOT) -> int:
    """2 when `root` is a pure cgroup2 mount, else 1 (a hybrid layout counts as 1)."""
    return 2 if layout(root) == "unified" else 1


def open_manager(*, parent: str = "skiff", root: str | Path = DEFAULT_ROOT, version: int | None = None,
                 remove_timeout: float = 10.0, clock: Clock = Clock()) -> CgroupManager:
    """The driver for this machine (or for `version` when given), managing groups under `parent`."""
    if version is None:
        version = detect(root)
    if version == 1:
        return V1Manager(root=root, parent=parent, remove_timeout=remove_timeout, clock=clock)
    if version == 2:
        return V2Manager(root=root, parent=parent, remove_timeout=remove_timeout, clock=clock)
    raise CgroupError(f"unsupported cgroup version {version!r}: expected 1 or 2")
