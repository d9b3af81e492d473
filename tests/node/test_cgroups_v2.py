"""The cgroup v2 driver against a real kernel (root, pure cgroup2 machine).

This machine's CI host runs cgroup v1, so these tests run inside a guest booted on pure v2
(tests/vm/test_runtime_v2.py runs this module there); elsewhere they skip. Each test works
under its own parent ("skiff-cgtest-<random>"), removed in `finally`. Child processes are
real and killed and reaped by the `children` fixture.
"""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

import pytest

from agent.cgroups import Resources, V2Manager, detect, open_manager
from cgroup_children import children, wait_for  # noqa: F401 - children is a fixture

pytestmark = pytest.mark.root

ROOT = Path("/sys/fs/cgroup")
PREFIX = "skiff-cgtest-"
MI = 1 << 20


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: creates real cgroups under /sys/fs/cgroup"
    if not ROOT.is_dir() or detect(ROOT) != 2:
        return "this machine does not run pure cgroup v2 (tests/vm/ runs this module in a guest that does)"
    offered = (ROOT / "cgroup.controllers").read_text().split()
    missing = [c for c in ("cpu", "memory", "pids") if c not in offered]
    if missing:
        return f"cgroup v2 controllers not offered: {', '.join(missing)}"
    return None


if (_reason := _skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)


@pytest.fixture
def manager():
    parent = PREFIX + secrets.token_hex(4)
    m = open_manager(parent=parent, remove_timeout=10.0)
    assert isinstance(m, V2Manager)
    try:
        yield m
    finally:
        m.remove("")
        assert not (ROOT / parent).exists(), f"cgroup {ROOT / parent} left behind"


def read_file(m: V2Manager, path: str, name: str) -> str:
    return (ROOT / m.parent / path / name).read_text().strip()


def test_create_and_update_write_the_limits(manager):
    res = Resources(cpu_limit_millis=500, cpu_request_millis=250, memory_limit_bytes=100 * MI, pids_limit=50)
    manager.create("pod-a/c1", res)
    manager.create("pod-a/c1", res)     # idempotent

    # every level above the leaf hands cpu, memory and pids down; the leaf hands nothing
    for above in ("", "pod-a"):
        assert {"cpu", "memory", "pids"} <= set(read_file(manager, above, "cgroup.subtree_control").split())
    assert read_file(manager, "pod-a/c1", "cgroup.subtree_control") == ""
    assert read_file(manager, "pod-a/c1", "cpu.max") == "50000 100000"
    assert read_file(manager, "pod-a/c1", "cpu.weight") == "10"
    assert read_file(manager, "pod-a/c1", "memory.max") == str(100 * MI)
    if (ROOT / manager.parent / "pod-a/c1/memory.swap.max").exists():
        assert read_file(manager, "pod-a/c1", "memory.swap.max") == "0"
    assert read_file(manager, "pod-a/c1", "pids.max") == "50"
    assert manager.list_children() == ["pod-a"]
    assert manager.list_children("pod-a") == ["c1"]

    manager.update("pod-a/c1", Resources(cpu_limit_millis=1500, memory_limit_bytes=200 * MI, pids_limit=7))
    assert read_file(manager, "pod-a/c1", "cpu.max") == "150000 100000"
    assert read_file(manager, "pod-a/c1", "cpu.weight") == "1"
    assert read_file(manager, "pod-a/c1", "memory.max") == str(200 * MI)
    assert read_file(manager, "pod-a/c1", "pids.max") == "7"

    manager.update("pod-a/c1", Resources(memory_limit_bytes=30 * MI))
    assert read_file(manager, "pod-a/c1", "memory.max") == str(30 * MI)

    manager.update("pod-a/c1", Resources())
    assert read_file(manager, "pod-a/c1", "cpu.max") == "max 100000"
    assert read_file(manager, "pod-a/c1", "memory.max") == "max"
    assert read_file(manager, "pod-a/c1", "pids.max") == "max"
    assert manager.stats("pod-a/c1").memory_limit_bytes is None


def test_process_joins_the_group_and_remove_kills_it(manager, children):
    manager.create("pod-a/c1", Resources(pids_limit=20))
    sleeper = children(["sleep", "600"])
    manager.add_process("pod-a/c1", sleeper.pid)

    assert manager.procs("pod-a/c1") == [sleeper.pid]
    assert manager.procs("pod-a") == []
    assert manager.procs("pod-a", recursive=True) == [sleeper.pid]
    assert Path(f"/proc/{sleeper.pid}/cgroup").read_text().strip() == f"0::/{manager.parent}/pod-a/c1"

    manager.remove("pod-a")
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert not manager.exists("pod-a")
    assert manager.list_children() == []
    manager.remove("pod-a")     # idempotent


def test_kill_all_reaches_nested_groups_with_cgroup_kill(manager, children):
    manager.create("pod-a/c1", Resources())
    manager.create("pod-a/c2", Resources())
    assert (ROOT / manager.parent / "pod-a/cgroup.kill").exists(), "kernel >= 5.14 has cgroup.kill"
    sleepers = [children(["sleep", "600"]) for _ in range(3)]
    manager.add_process("pod-a/c1", sleepers[0].pid)
    manager.add_process("pod-a/c2", sleepers[1].pid)
    manager.add_process("pod-a/c2", sleepers[2].pid)

    manager.kill_all("pod-a")
    assert [s.wait(timeout=10) for s in sleepers] == [-signal.SIGKILL] * 3
    wait_for(lambda: manager.procs("pod-a", recursive=True) == [], what="the group to empty")
    events = dict(line.split() for line in read_file(manager, "pod-a", "cgroup.events").splitlines())
    assert events == {"populated": "0", "frozen": "0"}


def test_no_cgroups_left_behind():
    """Runs last in this module: every test's parent group is gone."""
    assert [p.name for p in ROOT.iterdir() if p.name.startswith(PREFIX)] == []
