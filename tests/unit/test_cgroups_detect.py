"""Detecting the cgroup layout and choosing the driver, against temporary trees.

Also covers node_stats(), the other function that reads the host rather than a
group, against a temporary /proc.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.cgroups import CgroupError, V1Manager, V2Manager, detect, layout, node_stats, open_manager

V1_CONTROLLERS = ("cpuset", "cpu", "cpuacct", "memory", "devices", "freezer", "blkio", "pids")


def make_v2(root: Path) -> Path:
    root.mkdir(exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("1\n")
    return root


def make_v1(root: Path, controllers: tuple[str, ...] = V1_CONTROLLERS) -> Path:
    root.mkdir(exist_ok=True)
    for name in controllers:
        (root / name).mkdir()
        (root / name / "cgroup.procs").write_text("1\n")
    return root


def make_hybrid(root: Path) -> Path:
    make_v1(root)
    unified = root / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("")      # controllers all live in v1
    (unified / "cgroup.procs").write_text("1\n")
    return root


@pytest.mark.parametrize("build, expected_layout, expected_version", [
    (make_v2, "unified", 2),
    (make_hybrid, "hybrid", 1),
    (make_v1, "legacy", 1),
])
def test_detect(tmp_path, build, expected_layout, expected_version):
    root = build(tmp_path / "cgroup")
    assert layout(root) == expected_layout
    assert detect(root) == expected_version
    assert detect(str(root)) == expected_version


def test_detect_missing_root_names_it(tmp_path):
    with pytest.raises(CgroupError, match=f"cgroup root {tmp_path / 'nope'} does not exist"):
        detect(tmp_path / "nope")


def test_open_manager_picks_the_driver(tmp_path):
    v2 = open_manager(root=make_v2(tmp_path / "v2"), parent="skiff-node1")
    assert isinstance(v2, V2Manager) and v2.version == 2 and v2.parent == "skiff-node1"
    v1 = open_manager(root=make_hybrid(tmp_path / "hybrid"))
    assert isinstance(v1, V1Manager) and v1.version == 1 and v1.parent == "skiff"
    assert list(v1.controllers) == ["cpu", "cpuacct", "memory", "pids", "freezer", "devices"]


def test_open_manager_version_override_and_bad_version(tmp_path):
    root = make_hybrid(tmp_path / "hybrid")
    assert isinstance(open_manager(root=root, version=1), V1Manager)
    with pytest.raises(CgroupError, match="not a cgroup v2 mount"):
        open_manager(root=root, version=2)
    with pytest.raises(CgroupError, match="unsupported cgroup version 3"):
        open_manager(root=root, version=3)


def test_open_manager_refuses_a_bad_parent(tmp_path):
    with pytest.raises(CgroupError, match="invalid parent group"):
        open_manager(root=make_v2(tmp_path / "v2"), parent="")
    with pytest.raises(CgroupError, match="invalid parent group '../up'"):
        open_manager(root=make_v2(tmp_path / "v2b"), parent="../up")


def test_v1_cpu_and_cpuacct_sharing_one_mount_count_once(tmp_path):
    """Many distributions mount "cpu,cpuacct" and make cpu and cpuacct symlinks to it."""
    root = make_v1(tmp_path / "cgroup", controllers=("cpu,cpuacct", "memory", "pids"))
    os.symlink("cpu,cpuacct", root / "cpu")
    os.symlink("cpu,cpuacct", root / "cpuacct")
    m = V1Manager(root=root, parent="skiff")
    assert list(m.controllers) == ["cpu", "cpuacct", "memory", "pids"]
    assert [c.name for c in m._hierarchies] == ["cpu", "memory", "pids"]


def test_v1_without_controllers_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CgroupError, match="no cgroup v1 controller"):
        V1Manager(root=tmp_path / "empty")


def test_node_stats_from_proc(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    for pid in ("1", "42", "4242"):
        (proc / pid).mkdir()
    (proc / "self").mkdir()
    (proc / "stat").write_text(
        "cpu  100 20 30 5000 40 5 6 7 0 0\n"
        "cpu0 50 10 15 2500 20 2 3 3 0 0\n"
        "intr 12345\n")
    (proc / "meminfo").write_text("MemTotal:        2048 kB\nMemFree:          512 kB\n"
                                  "MemAvailable:    1024 kB\nHugePages_Total:       0\n")
    (proc / "vmstat").write_text("nr_free_pages 128\noom_kill 3\n")

    stats = node_stats(proc)
    busy_ticks = 100 + 20 + 30 + 5 + 6 + 7       # user nice system irq softirq steal
    assert stats.cpu_usage_ns == busy_ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert stats.memory_usage_bytes == 1024 * 1024
    assert stats.memory_limit_bytes == 2048 * 1024
    assert stats.pids_current == 3
    assert stats.oom_kills == 3


def test_node_stats_on_this_machine():
    stats = node_stats()
    assert stats.cpu_usage_ns > 0
    assert 0 < stats.memory_usage_bytes < stats.memory_limit_bytes
    assert stats.pids_current > 0
