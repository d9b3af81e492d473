"""The cgroup v1 driver against the real kernel (root, v1 or hybrid machine).

Each test works under its own parent group ("skiff-cgtest-<random>") in every
controller hierarchy, and the fixture removes it in `finally`, so nothing is left in
/sys/fs/cgroup/*/ even when a test fails. Child processes are real (`sleep`, `sh`,
Python allocating memory) and are killed and reaped by their own fixture.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from pathlib import Path

import pytest

from agent.cgroups import Resources, V1Manager, detect, open_manager
from cgroup_children import children, wait_for  # noqa: F401 - children is a fixture

pytestmark = pytest.mark.root

ROOT = Path("/sys/fs/cgroup")
PREFIX = "skiff-cgtest-"
MI = 1 << 20


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: creates real cgroups under /sys/fs/cgroup"
    if not ROOT.is_dir() or detect(ROOT) != 1:
        return "this machine does not run cgroup v1 (pure cgroup2 mount at /sys/fs/cgroup)"
    missing = [c for c in ("cpu", "cpuacct", "memory", "pids") if not (ROOT / c / "cgroup.procs").is_file()]
    if missing:
        return f"cgroup v1 controllers not mounted: {', '.join(missing)}"
    return None


if (_reason := _skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)


def _our_leftovers() -> list[str]:
    found = subprocess.run(["find", str(ROOT), "-maxdepth", "3", "-name", "*skiff*"],
                           capture_output=True, text=True, check=False).stdout.split()
    return [p for p in found if PREFIX in p]


@pytest.fixture
def manager():
    parent = PREFIX + secrets.token_hex(4)
    m = open_manager(parent=parent, version=1, remove_timeout=10.0)
    assert isinstance(m, V1Manager)
    try:
        yield m
    finally:
        m.remove("")
        left = [str(c.mount / parent) for c in m.controllers.values() if (c.mount / parent).exists()]
        assert left == [], f"cgroups left behind: {left}"


def read_file(m: V1Manager, controller: str, path: str, name: str) -> str:
    return (m.controllers[controller].group(tuple(path.split("/"))) / name).read_text().strip()


def test_create_and_update_write_the_limits(manager):
    res = Resources(cpu_limit_millis=500, cpu_request_millis=250, memory_limit_bytes=100 * MI, pids_limit=50)
    manager.create("pod-a/c1", res)
    manager.create("pod-a/c1", res)     # idempotent

    assert read_file(manager, "cpu", "pod-a/c1", "cpu.cfs_quota_us") == "50000"
    assert read_file(manager, "cpu", "pod-a/c1", "cpu.cfs_period_us") == "100000"
    assert read_file(manager, "cpu", "pod-a/c1", "cpu.shares") == "256"
    assert read_file(manager, "memory", "pod-a/c1", "memory.limit_in_bytes") == str(100 * MI)
    memsw = manager.controllers["memory"].group(("pod-a", "c1")) / "memory.memsw.limit_in_bytes"
    if memsw.exists():
        assert memsw.read_text().strip() == str(100 * MI)
    assert read_file(manager, "pids", "pod-a/c1", "pids.max") == "50"
    assert manager.list_children() == ["pod-a"]
    assert manager.list_children("pod-a") == ["c1"]

    manager.update("pod-a/c1", Resources(cpu_limit_millis=1500, memory_limit_bytes=200 * MI, pids_limit=7))
    assert read_file(manager, "cpu", "pod-a/c1", "cpu.cfs_quota_us") == "150000"
    assert read_file(manager, "cpu", "pod-a/c1", "cpu.shares") == "2"
    assert read_file(manager, "memory", "pod-a/c1", "memory.limit_in_bytes") == str(200 * MI)
    assert read_file(manager, "pids", "pod-a/c1", "pids.max") == "7"

    manager.update("pod-a/c1", Resources(memory_limit_bytes=30 * MI))     # lowering: order matters
    assert read_file(manager, "memory", "pod-a/c1", "memory.limit_in_bytes") == str(30 * MI)

    manager.update("pod-a/c1", Resources())
    assert read_file(manager, "cpu", "pod-a/c1", "cpu.cfs_quota_us") == "-1"
    assert int(read_file(manager, "memory", "pod-a/c1", "memory.limit_in_bytes")) >= 1 << 62
    assert read_file(manager, "pids", "pod-a/c1", "pids.max") == "max"
    assert manager.stats("pod-a/c1").memory_limit_bytes is None


def test_process_joins_every_controller_and_remove_kills_it(manager, children):
    manager.create("pod-a/c1", Resources(pids_limit=20))
    sleeper = children(["sleep", "600"])
    manager.add_process("pod-a/c1", sleeper.pid)

    assert manager.procs("pod-a/c1") == [sleeper.pid]
    assert manager.procs("pod-a") == []
    assert manager.procs("pod-a", recursive=True) == [sleeper.pid]
    membership = Path(f"/proc/{sleeper.pid}/cgroup").read_text()
    for name in ("memory", "pids", "cpu"):
        assert any(name in line.split(":")[1].split(",") and line.endswith(f"/{manager.parent}/pod-a/c1")
                   for line in membership.splitlines()), membership

    manager.remove("pod-a")
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert not manager.exists("pod-a")
    assert manager.list_children() == []
    manager.remove("pod-a")     # idempotent


def test_kill_all_reaches_nested_groups(manager, children):
    manager.create("pod-a/c1", Resources())
    manager.create("pod-a/c2", Resources())
    sleepers = [children(["sleep", "600"]) for _ in range(3)]
    manager.add_process("pod-a/c1", sleepers[0].pid)
    manager.add_process("pod-a/c2", sleepers[1].pid)
    manager.add_process("pod-a/c2", sleepers[2].pid)

    manager.kill_all("pod-a")
    assert [s.wait(timeout=10) for s in sleepers] == [-signal.SIGKILL] * 3
    wait_for(lambda: manager.procs("pod-a", recursive=True) == [], what="the group to empty")
    assert read_file(manager, "freezer", "pod-a", "freezer.state") == "THAWED"


def test_no_cgroups_left_behind():
    """Runs last in this module: every test's parent group is gone from every hierarchy."""
    assert _our_leftovers() == []
