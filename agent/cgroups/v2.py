"""The cgroup v2 driver: one directory per group in the unified hierarchy.

On v2 every controller lives in the same tree, but a controller only appears in a
group when its parent lists it in `cgroup.subtree_control`. So before making a
child directory, `create` enables cpu, memory and pids (those the kernel offers in
`cgroup.controllers`) in the directory above, from the root down:

    <root>/cgroup.subtree_control          += cpu memory pids   -> <root>/skiff
    <root>/skiff/cgroup.subtree_control    += cpu memory pids   -> <root>/skiff/pod-x
    <root>/skiff/pod-x/cgroup.subtree_control += ...            -> <root>/skiff/pod-x/c1

The leaf gets no subtree_control: v2 allows processes only in groups that do not
distribute controllers to children ("no internal processes"), and the leaf is where
container processes go.

There is no devices controller file in v2: a container's device allow-list is an
eBPF program attached to its group (`set_devices`; devicefilter.py generates it,
bpf.py loads and attaches it with bpf(2)).

Killing uses `cgroup.kill` (kernel >= 5.14, kills the whole subtree atomically);
older kernels freeze with `cgroup.freeze`, SIGKILL each pid, and thaw. Removal is
shared with v1 (teardown.py).
"""

from __future__ import annotations

from pathlib import Path

from agent.cgroups import bpf, devicefilter, fsio
from agent.cgroups.devices import DeviceRule
from agent.cgroups.errors import CgroupError
from agent.cgroups.manager import ManagerBase, split_path
from agent.cgroups.resources import Resources, cpu_max, cpu_weight
from agent.cgroups.stats import Stats, working_set
from agent.cgroups.teardown import (
    POLL_MAX_S,
    POLL_START_S,
    Clock,
    remove_tree,
    signal_pids,
    wait_until_empty,
    walk_groups,
)
from api.backoff import Backoff

WANTED_CONTROLLERS = ("cpu", "memory", "pids")
FREEZE_TIMEOUT_S = 1.0

# Which controller each Resources field needs, and the file it writes.
_NEEDS = {
    "cpu_limit_millis": ("cpu", "cpu.max"),
    "cpu_request_millis": ("cpu", "cpu.weight"),
    "memory_limit_bytes": ("memory", "memory.max"),
    "pids_limit": ("pids", "pids.max"),
}


class V2Manager(ManagerBase):
    version = 2

    def __init__(self, *, root: str | Path = "/sys/fs/cgroup", parent: str = "skiff",
                 remove_timeout: float = 10.0, clock: Clock = Clock()) -> None:
        super().__init__(root=root, parent=parent, remove_timeout=remove_timeout, clock=clock)
        if not (self.root / "cgroup.controllers").is_file():
            raise CgroupError(f"{self.root} is not a cgroup v2 mount (no cgroup.controllers)")

    def __repr__(self) -> str:
        return f"V2Manager(root={str(self.root)!r}, parent={self.parent!r})"

    # -- groups -------------------------------------------------------------------

    def _dir(self, path: str) -> Path:
        return self.root.joinpath(*self._parent, *split_path(path))

    def exists(self, path: str) -> bool:
        return self._dir(path).is_dir()

    def create(self, path: str, resources: Resources) -> None:
        current = self.root
        for seg in (*self._parent, *split_path(path)):
            self._enable_controllers(current)
            current = current / seg
            fsio.make_dir(current)
        self._apply(current, resources)

    def update(self, path: str, resources: Resources) -> None:
        group = self._dir(path)
        if not group.is_dir():
            raise CgroupError(f"cgroup {group} does not exist")
        self._apply(group, resources)

    def _enable_controllers(self, group: Path) -> None:
        """Make cpu, memory and pids available to the children of `group`."""
        available = fsio.read_text(group / "cgroup.controllers").split()
        enabled = fsio.read_text(group / "cgroup.subtree_control").split()
        missing = [c for c in WANTED_CONTROLLERS if c in available and c not in enabled]
        if missing:
            fsio.write_value(group / "cgroup.subtree_control", " ".join(f"+{c}" for c in missing))

    def _apply(self, group: Path, resources: Resources) -> None:
        for field_name, (controller, filename) in _NEEDS.items():
            if getattr(resources, field_name) is not None and not (group / filename).exists():
                raise CgroupError(f"Resources.{field_name} needs the {controller} controller, "
                                  f"but {group / filename} does not exist (not enabled in the parent?)")
        # A file that is absent belongs to a controller the kernel does not offer here;
        # with nothing asked of it (checked above) there is nothing to write.
        values = {
            "cpu.max": cpu_max(resources.cpu_limit_millis),
            "cpu.weight": cpu_weight(resources.cpu_request_millis),
            "memory.max": "max" if resources.memory_limit_bytes is None else resources.memory_limit_bytes,
            "memory.swap.max": 0,     # containers never swap (Kubernetes' NoSwap)
            "pids.max": "max" if resources.pids_limit is None else resources.pids_limit,
        }
        for filename, value in values.items():
            if (group / filename).exists():
                fsio.write_value(group / filename, value)

    def set_devices(self, path: str, rules: list[DeviceRule] | None) -> None:
        """Attach the device allow-list as an eBPF program (devicefilter.py, bpf.py);
        None attaches nothing, leaving every device usable."""
        if rules is not None:
            bpf.attach_device_program(self._dir(path), devicefilter.program(rules))

    def list_children(self, path: str = "") -> list[str]:
        return fsio.subdirs(self._dir(path))

    # -- processes ------------------------------------------------------------------

    def add_process(self, path: str, pid: int) -> None:
        fsio.write_value(self._dir(path) / "cgroup.procs", pid)

    def procs(self, path: str, *, recursive: bool = False) -> list[int]:
        top = self._dir(path)
        pids: set[int] = set()
        for group in walk_groups(top) if recursive else [top]:
            if (group / "cgroup.procs").exists():
                pids.update(fsio.read_pids(group / "cgroup.procs"))
        return sorted(pids)

    def kill_all(self, path: str) -> None:
        group = self._dir(path)
        if not group.is_dir():
            return
        if (group / "cgroup.kill").exists():
            fsio.write_value(group / "cgroup.kill", 1)
            return
        if not (group / "cgroup.freeze").exists():
            signal_pids(self.procs(path, recursive=True))
            return
        try:
            self._freeze(group)
            signal_pids(self.procs(path, recursive=True))
        finally:
            fsio.write_value(group / "cgroup.freeze", 0)

    def _freeze(self, group: Path) -> bool:
        """Freeze and wait briefly for "frozen 1" in cgroup.events; False if it did not settle."""
        fsio.write_value(group / "cgroup.freeze", 1)
        deadline = self.clock.now() + FREEZE_TIMEOUT_S
        delay = Backoff(POLL_START_S, POLL_MAX_S)
        while fsio.read_keyed(group / "cgroup.events").get("frozen") != 1:
            if self.clock.now() >= deadline:
                return False
            self.clock.sleep(delay.next())
        return True

    def remove(self, path: str) -> None:
        group = self._dir(path)
        if not group.is_dir():
            return
        deadline = self.clock.now() + self.remove_timeout
        self.kill_all(path)
        wait_until_empty(list_pids=lambda: self.procs(path, recursive=True), deadline=deadline,
                         clock=self.clock, what=str(group))
        remove_tree(group, deadline=deadline, clock=self.clock)

    # -- figures ----------------------------------------------------------------------

    def oom_kills(self, path: str) -> int:
        events = self._dir(path) / "memory.events"
        if not events.exists():
            return 0
        return fsio.read_keyed(events).get("oom_kill", 0)

    def stats(self, path: str) -> Stats:
        group = self._dir(path)
        if not group.is_dir():
            raise CgroupError(f"cgroup {group} does not exist")
        cpu = fsio.read_keyed(group / "cpu.stat") if (group / "cpu.stat").exists() else {}
        memory_usage = 0
        if (group / "memory.current").exists():
            stat = fsio.read_keyed(group / "memory.stat") if (group / "memory.stat").exists() else {}
            memory_usage = working_set(fsio.read_int(group / "memory.current"), stat,
                                       inactive_key="inactive_file")
        memory_limit: int | None = None
        if (group / "memory.max").exists():
            memory_limit = fsio.read_limit(group / "memory.max")
        if (group / "pids.current").exists():
            pids_current = fsio.read_int(group / "pids.current")
        else:
            pids_current = len(self.procs(path, recursive=True))
        return Stats(
            cpu_usage_ns=cpu.get("usage_usec", 0) * 1000,
            memory_usage_bytes=memory_usage,
            memory_limit_bytes=memory_limit,
            pids_current=pids_current,
            oom_kills=self.oom_kills(path),
        )
