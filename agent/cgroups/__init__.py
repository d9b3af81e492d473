"""Skiff's cgroup layer: limits, accounting and clean teardown for pods and containers.

The container runtime (agent/runtime) calls `open_manager()` once and then talks
only to the `CgroupManager` interface; it never asks which cgroup version the node
runs. The pieces, one module each:

- resources.py   `Resources` and the Kubernetes conversions (shares, weight, quota)
- stats.py       `Stats`, the usage record both drivers fill
- manager.py     the `CgroupManager` interface and group-path rules
- v1.py          the v1 driver, over v1_controllers.py (one object per controller)
- v2.py          the v2 driver (one directory per group)
- devices.py     the container device allow-list (`DeviceRule`, `DEFAULT_ALLOWED`)
- devicefilter.py  that list as a cgroup v2 eBPF device program
- bpf.py         bpf(2) through ctypes: load and attach that program
- teardown.py    kill, wait-until-empty and rmdir, shared by both drivers
- detect.py      `detect()`, `layout()` and `open_manager()`
- node.py        `node_stats()`, whole-node usage from /proc
- fsio.py        the only code that reads and writes cgroup files
- errors.py      `CgroupError`

This package is independent of agent/network and agent/images.
"""

from agent.cgroups.detect import detect, layout, open_manager
from agent.cgroups.errors import CgroupError
from agent.cgroups.manager import CgroupManager
from agent.cgroups.node import node_stats
from agent.cgroups.resources import Resources
from agent.cgroups.stats import Stats
from agent.cgroups.teardown import Clock
from agent.cgroups.v1 import V1Manager
from agent.cgroups.v2 import V2Manager

__all__ = [
    "CgroupError", "CgroupManager", "Clock", "Resources", "Stats", "V1Manager", "V2Manager",
    "detect", "layout", "node_stats", "open_manager",
]
