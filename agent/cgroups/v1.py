"""The cgroup v1 driver: one group per controller hierarchy, driven together.

`V1Manager` finds which of the controllers in v1_controllers.py are mounted under
the root (checked at runtime, not assumed), creates each group once per
*hierarchy* (cpu and cpuacct may be one mount reached through two names), writes
each controller's share of the resources, and moves processes into the group in
every hierarchy so all limits apply to them.

The container's group in the devices hierarchy carries its device allow-list
(`set_devices`, devices.py), so a container is never left in the root devices
group where every device is allowed.

Killing uses the freezer when it is mounted: freeze the group (no more forks),
SIGKILL everything, thaw (the signals are delivered). Removal is shared with v2
(teardown.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.cgroups import fsio
from agent.cgroups.errors import CgroupError
from agent.cgroups.manager import ManagerBase, split_path
from agent.cgroups.resources import Resources
from agent.cgroups.stats import Stats
from agent.cgroups.teardown import Clock, remove_tree, signal_pids, wait_until_empty, walk_groups
from agent.cgroups.v1_controllers import (
    CONTROLLER_TYPES, CpuacctController, DevicesController, FreezerController, MemoryController, PidsController,
    V1Controller,
)
from agent.cgroups.devices import DeviceRule


class V1Manager(ManagerBase):
    version = 1

    def __init__(self, *, root: str | Path = "/sys/fs/cgroup", parent: str = "skiff",
                 remove_timeout: float = 10.0, clock: Clock = Clock()) -> None:
        super().__init__(root=root, parent=parent, remove_timeout=remove_timeout, clock=clock)
        self.controllers: dict[str, V1Controller] = {}
        for kind in CONTROLLER_TYPES:
            mount = self.root / kind.name
            if (mount / "cgroup.procs").is_file():
                self.controllers[kind.name] = kind(mount, self._parent)
        if not self.controllers:
            names = ", ".join(kind.name for kind in CONTROLLER_TYPES)
            raise CgroupError(f"no cgroup v1 controller ({names}) is mounted under {self.root}")
        # One controller per distinct mount: "cpu" and "cpuacct" may be the same hierarchy.
        seen: dict[str, V1Controller] = {}
        for controller in self.controllers.values():
            seen.setdefault(os.path.realpath(controller.mount), controller)
        self._hierarchies = list(seen.values())

    def __repr__(self) -> str:
        return f"V1Manager(root={str(self.root)!r}, parent={self.parent!r}, controllers={list(self.controllers)})"

    # -- groups -----------------------------------------------------------------

    def _dirs(self, path: str) -> list[Path]:
        """The group's directory in every hierarchy."""
        segments = split_path(path)
        return [c.group(segments) for c in self._hierarchies]

    def exists(self, path: str) -> bool:
        """True while the group is left in any hierarchy (a half-removed group still exists)."""
        return any(d.is_dir() for d in self._dirs(path))

    def create(self, path: str, resources: Resources) -> None:
        self._check_supported(resources)
        segments = split_path(path)
        for controller in self._hierarchies:
            current = controller.mount
            for seg in (*self._parent, *segments):
                current = current / seg
                fsio.make_dir(current)
        self._apply(segments, resources)

    def update(self, path: str, resources: Resources) -> None:
        self._check_supported(resources)
        if not self.exists(path):
            raise CgroupError(f"cgroup {self.parent}/{path} does not exist under {self.root}")
        self._apply(split_path(path), resources)

    def _check_supported(self, resources: Resources) -> None:
        for kind in CONTROLLER_TYPES:
            for field_name in kind.limits:
                if getattr(resources, field_name) is not None and kind.name not in self.controllers:
                    raise CgroupError(f"Resources.{field_name} needs the {kind.name} controller, "
                                      f"which is not mounted at {self.root / kind.name}")

    def _apply(self, segments: tuple[str, ...], resources: Resources) -> None:
        for controller in self.controllers.values():
            controller.apply(controller.group(segments), resources)

    def set_devices(self, path: str, rules: list[DeviceRule] | None) -> None:
        devices = self.controllers.get("devices")
        if not isinstance(devices, DevicesController):
            raise CgroupError(f"the devices controller is not mounted at {self.root / 'devices'}: "
                              "cannot restrict a container's devices")
        devices.restrict(devices.group(split_path(path)), rules)

    def list_children(self, path: str = "") -> list[str]:
        names: set[str] = set()
        for d in self._dirs(path):
            names.update(fsio.subdirs(d))
        return sorted(names)

    # -- processes ----------------------------------------------------------------

    def add_process(self, path: str, pid: int) -> None:
        for d in self._dirs(path):
            fsio.write_value(d / "cgroup.procs", pid)

    def procs(self, path: str, *, recursive: bool = False) -> list[int]:
        """Pids in the group, read in every hierarchy (a process half-moved still counts)."""
        pids: set[int] = set()
        for top in self._dirs(path):
            for group in walk_groups(top) if recursive else [top]:
                procs_file = group / "cgroup.procs"
                if procs_file.exists():
                    pids.update(fsio.read_pids(procs_file))
        return sorted(pids)

    def kill_all(self, path: str) -> None:
        if not self.procs(path, recursive=True):
            return      # nothing to kill: skip the freeze/thaw round trip (tens of ms)
        segments = split_path(path)
        freezer = self.controllers.get("freezer")
        frozen_dir = freezer.group(segments) if isinstance(freezer, FreezerController) else None
        if frozen_dir is None or not frozen_dir.is_dir():
            signal_pids(self.procs(path, recursive=True))
            return
        try:
            freezer.freeze(frozen_dir, clock=self.clock)
            signal_pids(self.procs(path, recursive=True))
        finally:
            freezer.thaw(frozen_dir)

    def remove(self, path: str) -> None:
        if not self.exists(path):
            return
        deadline = self.clock.now() + self.remove_timeout
        self.kill_all(path)
        wait_until_empty(list_pids=lambda: self.procs(path, recursive=True), deadline=deadline,
                         clock=self.clock, what=f"{self.parent}/{path}")
        for d in self._dirs(path):
            remove_tree(d, deadline=deadline, clock=self.clock)

    # -- figures -----------------------------------------------------------------

    def oom_kills(self, path: str) -> int:
        memory = self.controllers.get("memory")
        if not isinstance(memory, MemoryController):
            return 0
        return memory.oom_kills(memory.group(split_path(path)))

    def stats(self, path: str) -> Stats:
        segments = split_path(path)
        if not self.exists(path):
            raise CgroupError(f"cgroup {self.parent}/{path} does not exist under {self.root}")
        cpuacct = self.controllers.get("cpuacct")
        memory = self.controllers.get("memory")
        pids = self.controllers.get("pids")
        return Stats(
            cpu_usage_ns=cpuacct.usage_ns(cpuacct.group(segments))
            if isinstance(cpuacct, CpuacctController) else 0,
            memory_usage_bytes=memory.usage(memory.group(segments))
            if isinstance(memory, MemoryController) else 0,
            memory_limit_bytes=memory.limit(memory.group(segments))
            if isinstance(memory, MemoryController) else None,
            pids_current=pids.current(pids.group(segments))
            if isinstance(pids, PidsController) else len(self.procs(path, recursive=True)),
            oom_kills=self.oom_kills(path),
        )

