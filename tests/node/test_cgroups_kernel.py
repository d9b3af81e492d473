"""The cgroup drivers against the real kernel, on whichever version this machine runs (root).

What every driver must do the same way, seen through the driver's own API: a missing group
named in the error, the OOM killer at the memory limit (counted), the pids limit against a
fork bomb, usage figures, separate parents. The version-specific files are checked in
test_cgroups_v1.py and test_cgroups_v2.py; tests/vm/ runs this module in a pure-v2 guest.
Each test works under its own parent ("skiff-cgtest-<random>"), removed in `finally`.
"""

from __future__ import annotations

import os
import secrets
import signal
import sys
from pathlib import Path

import pytest

from agent.cgroups import CgroupError, Resources, detect, open_manager
from cgroup_children import children, go, read_line  # noqa: F401 - children is a fixture

pytestmark = pytest.mark.root

ROOT = Path("/sys/fs/cgroup")
PREFIX = "skiff-cgtest-"
MI = 1 << 20
NEEDED = {1: ("cpu", "cpuacct", "memory", "pids"), 2: ("cpu", "memory", "pids")}


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: creates real cgroups under /sys/fs/cgroup"
    if not ROOT.is_dir():
        return "no /sys/fs/cgroup"
    version = detect(ROOT)
    if version == 1:
        missing = [c for c in NEEDED[1] if not (ROOT / c / "cgroup.procs").is_file()]
    else:
        missing = [c for c in NEEDED[2] if c not in (ROOT / "cgroup.controllers").read_text().split()]
    if missing:
        return f"cgroup v{version} controllers not available: {', '.join(missing)}"
    return None


if (_reason := _skip_reason()) is not None:
    pytest.skip(_reason, allow_module_level=True)


@pytest.fixture
def manager():
    m = open_manager(parent=PREFIX + secrets.token_hex(4), remove_timeout=10.0)
    try:
        yield m
    finally:
        m.remove("")
        assert not m.exists(""), f"cgroup {m.parent} left behind"


def test_update_of_a_missing_group_names_it(manager):
    with pytest.raises(CgroupError, match="pod-missing"):
        manager.update("pod-missing", Resources(pids_limit=3))



def test_memory_hog_is_oom_killed_and_counted(manager, children):
    manager.create("pod-a/c1", Resources(memory_limit_bytes=20 * MI))
    assert manager.oom_kills("pod-a/c1") == 0
    hog = children([sys.executable, "-c",
                    "import sys\nsys.stdin.readline()\nheld = []\n"
                    "while True: held.append(b'x' * (1 << 20))\n"])
    manager.add_process("pod-a/c1", hog.pid)
    go(hog)

    assert hog.wait(timeout=60) == -signal.SIGKILL
    assert manager.oom_kills("pod-a/c1") >= 1
    assert manager.stats("pod-a/c1").oom_kills >= 1



def test_pids_limit_stops_a_fork_bomb(manager, children):
    manager.create("pod-a/c1", Resources(pids_limit=10))
    bomb = children(["sh", "-c", "read x; for i in $(seq 50); do sleep 600 >/dev/null 2>&1 & done; "
                                 "echo all-forked; wait"])
    manager.add_process("pod-a/c1", bomb.pid)
    out, err = bomb.communicate("go\n", timeout=60)

    assert "all-forked" not in out
    assert "fork" in err.lower() or "resource temporarily unavailable" in err.lower(), err
    assert len(manager.procs("pod-a/c1")) <= 10
    assert manager.stats("pod-a/c1").pids_current <= 10
    manager.remove("pod-a")
    assert not manager.exists("pod-a")



def test_stats_report_usage(manager, children):
    manager.create("pod-a/c1", Resources(memory_limit_bytes=64 * MI))
    worker = children([sys.executable, "-c",
                       "import sys\nsys.stdin.readline()\n"
                       "held = bytearray(b'x' * (8 << 20))\n"
                       "n = 0\nfor i in range(300000): n += i\n"
                       "print('ready', flush=True)\nsys.stdin.readline()\n"])
    manager.add_process("pod-a/c1", worker.pid)
    go(worker)
    assert read_line(worker, timeout=60) == "ready"

    stats = manager.stats("pod-a/c1")
    assert stats.cpu_usage_ns > 0
    assert stats.memory_usage_bytes >= 8 * MI
    assert stats.memory_limit_bytes == 64 * MI
    assert stats.pids_current == 1
    assert stats.oom_kills == 0
    assert manager.stats("pod-a").memory_usage_bytes >= 8 * MI     # hierarchical



def test_separate_parents_do_not_see_each_other(manager):
    other = open_manager(parent=manager.parent + "-other", version=manager.version)
    try:
        other.create("pod-b", Resources())
        manager.create("pod-a", Resources())
        assert manager.list_children() == ["pod-a"]
        assert other.list_children() == ["pod-b"]
    finally:
        other.remove("")
    assert not other.exists("")
