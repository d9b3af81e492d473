"""Usage of the whole node, for `ctl top nodes` and the Node status.

Read from /proc rather than from the root cgroup, on purpose: /proc gives the same
figures on cgroup v1 and v2 (the v2 root group has no memory.current or
pids.current, and the v1 root's counters depend on kernel options), and it counts
everything on the machine, not only what Skiff started.

- cpu_usage_ns:       busy time of all CPUs since boot (user+nice+system+irq+softirq+steal
                      of the "cpu" line of /proc/stat, converted from clock ticks).
                      Sample twice and divide by the wall time between for a CPU rate.
- memory_usage_bytes: MemTotal - MemAvailable (/proc/meminfo), the memory not
                      available to new work; the analogue of a container's working set.
- memory_limit_bytes: MemTotal.
- pids_current:       processes (numeric entries of /proc).
- oom_kills:          oom_kill of /proc/vmstat (kernel >= 4.13; 0 before).
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.cgroups import fsio
from agent.cgroups.errors import CgroupError
from agent.cgroups.stats import Stats

# /proc/stat "cpu" columns: user nice system idle iowait irq softirq steal guest guest_nice.
# guest time is already included in user, idle and iowait are not busy.
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


def node_stats(proc: str | Path = "/proc") -> Stats:
    """Node-wide usage (see the module docstring for each figure's source)."""
    proc = Path(proc)
    meminfo = _meminfo(proc)
    vmstat = fsio.read_keyed(proc / "vmstat") if (proc / "vmstat").exists() else {}
    return Stats(
        cpu_usage_ns=_cpu_busy_ns(proc / "stat"),
        memory_usage_bytes=meminfo["MemTotal"] - meminfo["MemAvailable"],
        memory_limit_bytes=meminfo["MemTotal"],
        pids_current=sum(1 for name in os.listdir(proc) if name.isdigit()),
        oom_kills=vmstat.get("oom_kill", 0),
    )


def _cpu_busy_ns(path: Path) -> int:
    for line in fsio.read_text(path).splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            ticks = [int(v) for v in parts[1:]]
            busy = sum(ticks[i] for i in _BUSY_COLUMNS if i < len(ticks))
            return busy * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    raise CgroupError(f"reading {path}: no aggregate 'cpu' line")


def _meminfo(proc: Path) -> dict[str, int]:
    """/proc/meminfo in bytes ("MemTotal:  24683452 kB")."""
    values = {}
    for line in fsio.read_text(proc / "meminfo").splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[name] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    for key in ("MemTotal", "MemAvailable"):
        if key not in values:
            raise CgroupError(f"reading {proc / 'meminfo'}: no {key} line")
    return values

