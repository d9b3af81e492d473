"""The cgroup v1 controllers Skiff uses, one small object each.

On v1 every controller is its own hierarchy, mounted at /sys/fs/cgroup/<name>
(on many distributions /sys/fs/cgroup/cpu and /sys/fs/cgroup/cpuacct are symlinks
to one "cpu,cpuacct" mount). A group therefore exists once per controller:
/sys/fs/cgroup/memory/skiff/pod-x, /sys/fs/cgroup/pids/skiff/pod-x, ...

Each controller object knows its mount and how to turn `Resources` into its own
files (`apply`) and read back its own figures. `V1Manager` (v1.py) discovers which
of them are mounted and drives them together.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from agent.cgroups import fsio
from agent.cgroups.devices import DeviceRule
from agent.cgroups.resources import CPU_PERIOD_US, Resources, cpu_quota_us, cpu_shares
from agent.cgroups.stats import UNLIMITED_THRESHOLD, limit_or_none, working_set
from agent.cgroups.teardown import POLL_MAX_S, POLL_START_S, Clock
from api.backoff import Backoff

FREEZE_TIMEOUT_S = 1.0
UNLIMITED = -1          # what v1 files accept for "no limit"


class V1Controller:
    """One mounted v1 controller hierarchy."""

    name: ClassVar[str]
    limits: ClassVar[tuple[str, ...]] = ()   # Resources fields this controller enforces

    def __init__(self, mount: Path, parent: tuple[str, ...]) -> None:
        self.mount = mount
        self.parent = parent

    def group(self, segments: tuple[str, ...]) -> Path:
        """The directory of a group (parent-relative segments) in this hierarchy."""
        return self.mount.joinpath(*self.parent, *segments)

    def apply(self, group: Path, resources: Resources) -> None:
        """Write this controller's share of `resources`; most controllers have none."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.mount})"


class CpuController(V1Controller):
    """CFS bandwidth (quota per period) for limits, cpu.shares for requests."""

    name = "cpu"
    limits = ("cpu_limit_millis", "cpu_request_millis")

    def apply(self, group: Path, resources: Resources) -> None:
        fsio.write_value(group / "cpu.shares", cpu_shares(resources.cpu_request_millis))
        quota = cpu_quota_us(resources.cpu_limit_millis)
        fsio.write_value(group / "cpu.cfs_period_us", CPU_PERIOD_US)
        fsio.write_value(group / "cpu.cfs_quota_us", UNLIMITED if quota is None else quota)


class CpuacctController(V1Controller):
    """CPU accounting: total time used by the group's tasks."""

    name = "cpuacct"

    def usage_ns(self, group: Path) -> int:
        return fsio.read_int(group / "cpuacct.usage")


class MemoryController(V1Controller):
    """memory.limit_in_bytes, and no swap: memory+swap (memsw) capped at the same value."""

    name = "memory"
    limits = ("memory_limit_bytes",)

    def apply(self, group: Path, resources: Resources) -> None:
        limit = resources.memory_limit_bytes
        value = UNLIMITED if limit is None else limit
        memsw = group / "memory.memsw.limit_in_bytes"    # only with swap accounting on
        if not memsw.exists():
            fsio.write_value(group / "memory.limit_in_bytes", value)
        else:
            # The kernel insists memory.limit <= memsw.limit at every moment, so when
            # raising write memsw first, when lowering write the memory limit first.
            wanted = UNLIMITED_THRESHOLD if limit is None else limit
            raising = wanted >= fsio.read_int(memsw)
            order = [memsw, group / "memory.limit_in_bytes"]
            for path in order if raising else reversed(order):
                fsio.write_value(path, value)
        swappiness = group / "memory.swappiness"
        if swappiness.exists():
            fsio.write_value(swappiness, 0)

    def usage(self, group: Path) -> int:
        usage = fsio.read_int(group / "memory.usage_in_bytes")
        stat_file = group / "memory.stat"
        stat = fsio.read_keyed(stat_file) if stat_file.exists() else {}
        return working_set(usage, stat, inactive_key="total_inactive_file")

    def limit(self, group: Path) -> int | None:
        return limit_or_none(fsio.read_int(group / "memory.limit_in_bytes"))

    def oom_kills(self, group: Path) -> int:
        """`oom_kill N` from memory.oom_control (kernel >= 4.13).

        Older kernels have no counter; `under_oom` (1 while the group is out of
        memory) is the best left. memory.failcnt is not used: it counts every time
        usage touched the limit, most of which reclaim resolved without a kill.
        Unlike v2's memory.events, this counts kills in this group only, not below it
        (ask the container's group, not the pod's).
        """
        control = fsio.read_keyed(group / "memory.oom_control")
        if "oom_kill" in control:
            return control["oom_kill"]
        return control.get("under_oom", 0)


class PidsController(V1Controller):
    """pids.max: how many processes and threads the group may hold."""

    name = "pids"
    limits = ("pids_limit",)

    def apply(self, group: Path, resources: Resources) -> None:
        limit = resources.pids_limit
        fsio.write_value(group / "pids.max", "max" if limit is None else limit)

    def current(self, group: Path) -> int:
        return fsio.read_int(group / "pids.current")


class FreezerController(V1Controller):
    """Freezing a group stops its processes from forking while they are being killed."""

    name = "freezer"

    def freeze(self, group: Path, *, clock: Clock) -> bool:
        """Ask for FROZEN and wait briefly for it; False when the group did not settle."""
        fsio.write_value(group / "freezer.state", "FROZEN")
        deadline = clock.now() + FREEZE_TIMEOUT_S
        delay = Backoff(POLL_START_S, POLL_MAX_S)
        while fsio.read_text(group / "freezer.state").strip() != "FROZEN":
            if clock.now() >= deadline:
                return False
            clock.sleep(delay.next())
        return True

    def thaw(self, group: Path) -> None:
        fsio.write_value(group / "freezer.state", "THAWED")


class DevicesController(V1Controller):
    """The device allow-list (devices.py): deny everything, then allow each rule.

    `a` may be written to devices.deny only while the group has no children, so
    this is for a container's (leaf) group, before any process is in it."""

    name = "devices"

    def restrict(self, group: Path, rules: list[DeviceRule] | None) -> None:
        if rules is None:
            fsio.write_value(group / "devices.allow", "a")
            return
        fsio.write_value(group / "devices.deny", "a")
        if rules:
            fsio.write_each(group / "devices.allow", [rule.v1_line() for rule in rules])


CONTROLLER_TYPES: tuple[type[V1Controller], ...] = (
    CpuController, CpuacctController, MemoryController, PidsController, FreezerController, DevicesController,
)
