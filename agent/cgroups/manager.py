"""The one interface of the cgroup layer, and the rules for naming groups.

`CgroupManager` is what the container runtime programs against; `V1Manager`
(v1.py: one object per controller hierarchy) and `V2Manager` (v2.py: one
directory) implement it, and `open_manager()` in detect.py picks one at runtime.

All groups live below one *parent* group per node ("skiff", or "skiff-node1" when
several agents share a machine). A `path` is relative to that parent:
"pod-<uid>" for a pod, "pod-<uid>/<container>" for a container, and "" for the
parent itself (so `remove("")` tears down everything a node made).

Every method is quick file I/O except `remove()`, which polls (with a deadline)
for killed processes to vanish; async callers use `asyncio.to_thread`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from agent.cgroups.devices import DeviceRule
from agent.cgroups.errors import CgroupError
from agent.cgroups.resources import Resources
from agent.cgroups.stats import Stats
from agent.cgroups.teardown import Clock


class CgroupManager(Protocol):
    version: int      # 1 or 2
    parent: str       # the node's parent group, e.g. "skiff"

    def create(self, path: str, resources: Resources) -> None:
        """Create the group (and its ancestors) and apply the resources. Idempotent."""

    def update(self, path: str, resources: Resources) -> None:
        """Apply resources to an existing group; None fields reset to unlimited."""

    def set_devices(self, path: str, rules: list[DeviceRule] | None) -> None:
        """Allow only `rules` (devices.py) in the (leaf, still empty) group; None allows every device."""

    def add_process(self, path: str, pid: int) -> None:
        """Move a process into the group (every controller on v1)."""

    def procs(self, path: str, *, recursive: bool = False) -> list[int]:
        """Pids in the group (and, with recursive, in its descendants), sorted."""

    def exists(self, path: str) -> bool: ...

    def stats(self, path: str) -> Stats: ...

    def oom_kills(self, path: str) -> int:
        """How many processes the OOM killer has killed in the group."""

    def kill_all(self, path: str) -> None:
        """SIGKILL every process in the group and its descendants."""

    def remove(self, path: str) -> None:
        """Kill what is left, wait (with a deadline) until empty, rmdir bottom-up. Idempotent."""

    def list_children(self, path: str = "") -> list[str]:
        """Names of the direct child groups, sorted ([] when the group does not exist)."""


def split_path(path: str, *, what: str = "cgroup path") -> tuple[str, ...]:
    """The segments of a relative group path; "" is the parent itself.

    Refuses absolute paths, "." and ".." and empty segments, so a bad pod name can
    never make the agent write outside its own parent group.
    """
    if not isinstance(path, str):
        raise CgroupError(f"invalid {what} {path!r}: must be a string")
    if path == "":
        return ()
    if path.startswith("/"):
        raise CgroupError(f"invalid {what} {path!r}: must be relative to the parent group")
    segments = tuple(path.split("/"))
    for seg in segments:
        if seg in ("", ".", "..") or "\0" in seg:
            raise CgroupError(f"invalid {what} {path!r}: bad segment {seg!r}")
    return segments


def check_parent(parent: str) -> tuple[str, ...]:
    """The segments of the parent group name; it must name at least one group."""
    segments = split_path(parent, what="parent group")
    if not segments:
        raise CgroupError("invalid parent group '': must name a group, e.g. 'skiff'")
    return segments


class ManagerBase:
    """What both drivers keep alike: where the cgroup filesystem is mounted (`root`), the node's
    parent group (`parent`, checked once), how long `remove()` waits for processes to vanish,
    and the clock that wait reads (a fake one in tests)."""

    def __init__(self, *, root: str | Path = "/sys/fs/cgroup", parent: str = "skiff",
                 remove_timeout: float = 10.0, clock: Clock = Clock()) -> None:
        self.root = Path(root)
        self.parent = parent
        self._parent = check_parent(parent)
        self.remove_timeout = remove_timeout
        self.clock = clock
