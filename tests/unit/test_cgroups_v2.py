"""The cgroup v2 driver against a temporary directory laid out like a cgroup2 mount.

A plain directory is not a kernel filesystem: mkdir makes no control files, rmdir
refuses a directory with files in it, and writing "+cpu" to cgroup.subtree_control
just stores "+cpu". `FakeKernel` stands in for the kernel at exactly those points
(fsio.make_dir, fsio.remove_dir, fsio.write_value for the two special files), so the
driver runs unchanged and the test reads back the files it wrote.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
from pathlib import Path

import pytest

from agent.cgroups import CgroupError, Clock, Resources, V2Manager, fsio, open_manager
from agent.cgroups.resources import cpu_max, cpu_quota_us, cpu_shares, cpu_weight

MI = 1 << 20
ROOT_CONTROLLERS = "cpuset cpu io memory pids"
KERNEL_ORDER = ROOT_CONTROLLERS.split()

CORE_FILES = {
    "cgroup.subtree_control": "",
    "cgroup.procs": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
}
CONTROLLER_FILES = {
    "cpu": {"cpu.max": "max 100000\n", "cpu.weight": "100\n"},
    "memory": {"memory.max": "max\n", "memory.swap.max": "max\n", "memory.current": "0\n",
               "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
               "memory.stat": "anon 0\nfile 0\ninactive_file 0\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
}


class FakeKernel:
    """The kernel's side of cgroupfs, for a tmp directory tree."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path, controllers: str = ROOT_CONTROLLERS):
        self.root = root
        self.real_write = fsio.write_value
        (root / "cgroup.controllers").write_text(controllers + "\n")
        for name, content in CORE_FILES.items():
            (root / name).write_text(content)
        monkeypatch.setattr(fsio, "make_dir", self.make_dir)
        monkeypatch.setattr(fsio, "remove_dir", self.remove_dir)
        monkeypatch.setattr(fsio, "write_value", self.write_value)

    def make_dir(self, path: Path) -> None:
        if path.exists():
            return
        path.mkdir()
        enabled = (path.parent / "cgroup.subtree_control").read_text().split()
        (path / "cgroup.controllers").write_text(" ".join(enabled) + "\n")
        files = dict(CORE_FILES)
        for controller in enabled:
            files.update(CONTROLLER_FILES.get(controller, {}))
        for name, content in files.items():
            (path / name).write_text(content)

    def remove_dir(self, path: Path) -> None:
        if not path.exists():
            return
        if any(p.is_dir() for p in path.iterdir()) or (path / "cgroup.procs").read_text().strip():
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(path))
        for f in path.iterdir():
            f.unlink()
        path.rmdir()

    def write_value(self, path: Path, value: str | int) -> None:
        if path.name == "cgroup.subtree_control":
            available = (path.parent / "cgroup.controllers").read_text().split()
            enabled = set(path.read_text().split())
            for token in str(value).split():
                name = token[1:]
                if name not in available:
                    raise CgroupError(f'writing "{value}" to {path}: No such file or directory')
                (enabled.add if token[0] == "+" else enabled.discard)(name)
            path.write_text(" ".join(c for c in KERNEL_ORDER if c in enabled) + "\n")
        elif path.name == "cgroup.procs":
            with open(path, "a") as f:
                f.write(f"{value}\n")
        else:
            self.real_write(path, value)


class FastClock(Clock):
    """Time that passes only when someone sleeps, so deadline tests take no time."""

    def __init__(self) -> None:
        t = [0.0]
        super().__init__(now=lambda: t[0], sleep=lambda s: t.__setitem__(0, t[0] + s))


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> FakeKernel:
    return FakeKernel(monkeypatch, tmp_path)


@pytest.fixture
def manager(kernel) -> V2Manager:
    m = open_manager(parent="skiff", root=kernel.root, remove_timeout=2.0, clock=FastClock())
    assert isinstance(m, V2Manager)
    return m


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def read(root: Path, rel: str) -> str:
    return (root / rel).read_text().strip()


# -- conversions (Kubernetes' formulas) ---------------------------------------------

@pytest.mark.parametrize("millis, shares, weight", [
    (None, 2, 1), (0, 2, 1), (1, 2, 1), (100, 102, 4), (250, 256, 10),
    (1000, 1024, 39), (2000, 2048, 79), (256000, 262144, 10000), (10**9, 262144, 10000),
])
def test_cpu_request_to_shares_and_weight(millis, shares, weight):
    assert cpu_shares(millis) == shares
    assert cpu_weight(millis) == weight


@pytest.mark.parametrize("millis, quota, line", [
    (None, None, "max 100000"), (1, 1000, "1000 100000"), (10, 1000, "1000 100000"),
    (250, 25000, "25000 100000"), (500, 50000, "50000 100000"), (1500, 150000, "150000 100000"),
])
def test_cpu_limit_to_quota(millis, quota, line):
    assert cpu_quota_us(millis) == quota
    assert cpu_max(millis) == line


@pytest.mark.parametrize("kwargs, message", [
    ({"memory_limit_bytes": 0}, "Resources.memory_limit_bytes must be >= 1, got 0"),
    ({"pids_limit": -5}, "Resources.pids_limit must be >= 1, got -5"),
    ({"cpu_limit_millis": "500m"}, "Resources.cpu_limit_millis must be an integer or None, got '500m'"),
    ({"cpu_request_millis": -1}, "Resources.cpu_request_millis must be >= 0, got -1"),
])
def test_resources_reject_bad_values_naming_the_field(kwargs, message):
    with pytest.raises(ValueError) as err:
        Resources(**kwargs)
    assert str(err.value) == message


# -- create / update ------------------------------------------------------------------

def test_create_writes_exact_values(manager, kernel):
    manager.create("pod-a/c1", Resources(cpu_limit_millis=500, cpu_request_millis=250,
                                         memory_limit_bytes=100 * MI, pids_limit=50))
    c1 = "skiff/pod-a/c1"
    assert read(kernel.root, f"{c1}/cpu.max") == "50000 100000"
    assert read(kernel.root, f"{c1}/cpu.weight") == "10"
    assert read(kernel.root, f"{c1}/memory.max") == "104857600"
    assert read(kernel.root, f"{c1}/memory.swap.max") == "0"
    assert read(kernel.root, f"{c1}/pids.max") == "50"


def test_create_without_limits_writes_max(manager, kernel):
    manager.create("pod-a", Resources())
    assert read(kernel.root, "skiff/pod-a/cpu.max") == "max 100000"
    assert read(kernel.root, "skiff/pod-a/cpu.weight") == "1"
    assert read(kernel.root, "skiff/pod-a/memory.max") == "max"
    assert read(kernel.root, "skiff/pod-a/pids.max") == "max"


def test_controllers_are_enabled_down_to_the_leafs_parent(manager, kernel):
    manager.create("pod-a/c1", Resources(pids_limit=5))
    for group in ("", "skiff", "skiff/pod-a"):
        assert read(kernel.root, f"{group}/cgroup.subtree_control".lstrip("/")) == "cpu memory pids"
    assert read(kernel.root, "skiff/pod-a/c1/cgroup.controllers") == "cpu memory pids"
    # The leaf holds the processes, so it distributes nothing (no internal processes rule).
    assert read(kernel.root, "skiff/pod-a/c1/cgroup.subtree_control") == ""


def test_create_is_idempotent_and_update_rewrites(manager, kernel):
    manager.create("pod-a/c1", Resources(memory_limit_bytes=64 * MI))
    manager.create("pod-a/c1", Resources(memory_limit_bytes=64 * MI))
    manager.update("pod-a/c1", Resources(cpu_limit_millis=1500, pids_limit=9))
    assert read(kernel.root, "skiff/pod-a/c1/cpu.max") == "150000 100000"
    assert read(kernel.root, "skiff/pod-a/c1/memory.max") == "max"
    assert read(kernel.root, "skiff/pod-a/c1/pids.max") == "9"
    assert manager.list_children() == ["pod-a"]
    assert manager.list_children("pod-a") == ["c1"]


def test_update_of_a_missing_group_fails_naming_it(manager):
    with pytest.raises(CgroupError, match="skiff/pod-nope does not exist"):
        manager.update("pod-nope", Resources())


def test_a_limit_without_its_controller_is_an_error(tmp_path, monkeypatch):
    kernel = FakeKernel(monkeypatch, tmp_path, controllers="cpu pids")
    m = V2Manager(root=kernel.root, parent="skiff")
    m.create("pod-a", Resources(pids_limit=3))          # nothing asked of memory: fine
    assert read(kernel.root, "skiff/pod-a/pids.max") == "3"
    with pytest.raises(CgroupError, match=r"Resources.memory_limit_bytes needs the memory controller.*memory.max"):
        m.create("pod-b", Resources(memory_limit_bytes=MI))


def test_parents_are_configurable_and_separate(kernel):
    node1 = V2Manager(root=kernel.root, parent="skiff-node1")
    node2 = V2Manager(root=kernel.root, parent="skiff-node2")
    node1.create("pod-a", Resources())
    node2.create("pod-b", Resources())
    assert node1.list_children() == ["pod-a"]
    assert node2.list_children() == ["pod-b"]
    assert sorted(p.name for p in kernel.root.iterdir() if p.is_dir()) == ["skiff-node1", "skiff-node2"]


@pytest.mark.parametrize("path", ["/abs", "../escape", "pod-a/../../x", "a//b", "./a"])
def test_bad_paths_are_refused_naming_them(manager, path):
    with pytest.raises(CgroupError, match="invalid cgroup path"):
        manager.create(path, Resources())


def test_write_errors_name_the_file_and_the_value(tmp_path):
    with pytest.raises(CgroupError) as err:
        fsio.write_value(tmp_path / "pids.max", 5)      # no O_CREAT: control files are never created
    assert str(err.value) == f'writing "5" to {tmp_path / "pids.max"}: No such file or directory'


def test_not_a_v2_root(tmp_path):
    with pytest.raises(CgroupError, match="not a cgroup v2 mount"):
        V2Manager(root=tmp_path)


# -- processes ------------------------------------------------------------------------

def test_add_process_and_procs(manager, kernel):
    manager.create("pod-a/c1", Resources())
    manager.create("pod-a/c2", Resources())
    manager.add_process("pod-a/c1", 4242)
    manager.add_process("pod-a/c2", 4343)
    assert read(kernel.root, "skiff/pod-a/c1/cgroup.procs") == "4242"
    assert manager.procs("pod-a/c1") == [4242]
    assert manager.procs("pod-a") == []
    assert manager.procs("pod-a", recursive=True) == [4242, 4343]


def test_kill_all_walks_procs_without_cgroup_kill(manager, sleeper):
    manager.create("pod-a/c1", Resources())
    manager.add_process("pod-a/c1", sleeper.pid)
    manager.kill_all("pod-a")
    assert sleeper.wait(timeout=10) == -signal.SIGKILL


def test_kill_all_uses_cgroup_kill_when_present(manager, kernel, sleeper):
    manager.create("pod-a", Resources())
    (kernel.root / "skiff/pod-a/cgroup.kill").write_text("")
    manager.add_process("pod-a", sleeper.pid)
    manager.kill_all("pod-a")
    assert read(kernel.root, "skiff/pod-a/cgroup.kill") == "1"
    assert sleeper.poll() is None       # the (fake) kernel's job, not a signal from us


def test_remove_deletes_bottom_up_and_is_idempotent(manager, kernel):
    manager.create("pod-a/c1", Resources())
    manager.create("pod-a/c2", Resources())
    manager.create("pod-b", Resources())
    manager.remove("pod-a")
    assert manager.list_children() == ["pod-b"]
    manager.remove("pod-a")
    manager.remove("")
    assert not (kernel.root / "skiff").exists()


def test_remove_gives_up_at_the_deadline_naming_the_stragglers(manager, kernel, sleeper):
    manager.create("pod-a", Resources())
    manager.add_process("pod-a", sleeper.pid)   # the fake kernel never drops it from cgroup.procs
    with pytest.raises(CgroupError, match=rf"still has processes \[{sleeper.pid}\] after the removal deadline"):
        manager.remove("pod-a")
    assert sleeper.wait(timeout=10) == -signal.SIGKILL


# -- figures ----------------------------------------------------------------------------

def test_oom_kills_parses_memory_events(manager, kernel):
    manager.create("pod-a", Resources(memory_limit_bytes=20 * MI))
    assert manager.oom_kills("pod-a") == 0
    (kernel.root / "skiff/pod-a/memory.events").write_text("low 0\nhigh 0\nmax 17\noom 3\noom_kill 2\n")
    assert manager.oom_kills("pod-a") == 2


def test_stats_parse_the_kernel_files(manager, kernel):
    manager.create("pod-a", Resources(memory_limit_bytes=20 * MI))
    group = kernel.root / "skiff/pod-a"
    (group / "cpu.stat").write_text("usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n")
    (group / "memory.current").write_text("10485760\n")
    (group / "memory.stat").write_text("anon 8388608\nfile 2097152\ninactive_file 1048576\n")
    (group / "pids.current").write_text("3\n")
    (group / "memory.events").write_text("oom 1\noom_kill 1\n")

    stats = manager.stats("pod-a")
    assert stats.cpu_usage_ns == 1_234_567_000
    assert stats.memory_usage_bytes == 10 * MI - MI        # working set: current - inactive_file
    assert stats.memory_limit_bytes == 20 * MI
    assert stats.pids_current == 3
    assert stats.oom_kills == 1
    manager.update("pod-a", Resources())
    assert manager.stats("pod-a").memory_limit_bytes is None


def test_stats_of_a_missing_group_fail(manager):
    with pytest.raises(CgroupError, match="does not exist"):
        manager.stats("pod-nope")
