"""The agent's usage sampler (agent/metrics.py) and its `Metrics` RPC, on the v2 driver over a
temporary tree laid out like a cgroup2 mount and a fake /proc (this machine runs v1; the v1
readers are exercised for real in tests/node/test_agent_top.py).

The files are written by the test between samples, as the kernel would update them, and
the clock is the test's: rates are exact.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from agent.cgroups import V2Manager
from agent.metrics import MetricsCollector, cpu_rate
from agent.service import AgentService
from protos import skiff_pb2 as pb

MI = 1 << 20
TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class Tree:
    """<tmp>/cgroup (a v2 root with parent "skiff") and <tmp>/proc."""

    def __init__(self, tmp: Path):
        self.root = tmp / "cgroup"
        self.root.mkdir()
        (self.root / "cgroup.controllers").write_text("cpu memory pids\n")
        self.proc = tmp / "proc"
        self.proc.mkdir()
        self.node(busy_ticks=0, total_kib=4 * 1024 * 1024, available_kib=3 * 1024 * 1024)

    def node(self, *, busy_ticks: int, total_kib: int = 4 * 1024 * 1024, available_kib: int = 3 * 1024 * 1024) -> None:
        # user=busy, everything else idle
        (self.proc / "stat").write_text(f"cpu  {busy_ticks} 0 0 100000 0 0 0 0 0 0\n")
        (self.proc / "meminfo").write_text(f"MemTotal: {total_kib} kB\nMemAvailable: {available_kib} kB\n")

    def group(self, path: str, *, usage_usec: int, current: int, inactive_file: int = 0, pids: int = 1) -> None:
        d = self.root / "skiff" / path
        d.mkdir(parents=True, exist_ok=True)
        (d / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec {usage_usec}\nsystem_usec 0\n")
        (d / "memory.current").write_text(f"{current}\n")
        (d / "memory.stat").write_text(f"anon {current}\nfile 0\ninactive_file {inactive_file}\n")
        (d / "memory.max").write_text("max\n")
        (d / "memory.events").write_text("oom 0\noom_kill 0\n")
        (d / "pids.current").write_text(f"{pids}\n")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def collector(tree: Tree, clock: Clock) -> MetricsCollector:
    return MetricsCollector(V2Manager(root=tree.root, parent="skiff"), proc=tree.proc, monotonic=clock,
                            wall=lambda: 1_700_000_000.0)


def test_cpu_rate():
    assert cpu_rate(0, 500_000_000, 2.0) == 250_000_000        # half a core for 2 s = 250m
    assert cpu_rate(100, 50, 1.0) is None                      # counter reset: group made again
    assert cpu_rate(0, 10, 0.0) is None


def test_no_window_before_two_samples(collector, tree):
    assert collector.window() is None
    tree.group("pod-u1/app", usage_usec=0, current=10 * MI)
    collector.sample()
    assert collector.window() is None


def test_rates_over_the_last_window_and_working_set(collector, tree, clock):
    tree.group("pod-u1", usage_usec=0, current=0)
    tree.group("pod-u1/app", usage_usec=1_000_000, current=40 * MI, inactive_file=8 * MI)
    tree.group("pod-u1/sidecar", usage_usec=0, current=2 * MI)
    tree.group("pod-u2/done", usage_usec=5_000_000, current=0, pids=0)      # exited: not running
    tree.node(busy_ticks=1000)
    collector.sample()

    clock.now += 5.0
    tree.group("pod-u1/app", usage_usec=1_000_000 + 2_500_000, current=48 * MI, inactive_file=8 * MI)  # 0.5 core
    tree.group("pod-u1/sidecar", usage_usec=50_000, current=2 * MI)                                   # 10m
    tree.group("pod-u3/new", usage_usec=1_000_000, current=MI)      # appeared: no rate until the next sample
    tree.node(busy_ticks=1000 + 5 * os.sysconf("SC_CLK_TCK"), available_kib=2 * 1024 * 1024)         # 1 core busy
    collector.sample()

    window = collector.window()
    assert window is not None and window.seconds == 5.0
    assert window.timestamp == "2023-11-14T22:13:20Z"
    assert set(window.pods) == {"u1"}
    app, sidecar = window.pods["u1"].containers["app"], window.pods["u1"].containers["sidecar"]
    assert app.cpu_nanocores == 500_000_000 and app.memory_bytes == 40 * MI         # 48Mi - 8Mi inactive file
    assert sidecar.cpu_nanocores == 10_000_000 and sidecar.memory_bytes == 2 * MI
    assert window.pods["u1"].total.cpu_nanocores == 510_000_000
    assert window.pods["u1"].total.memory_bytes == 42 * MI
    assert window.node.cpu_nanocores == pytest.approx(1_000_000_000, abs=TICK_NS)
    assert window.node.memory_bytes == 2 * 1024 * MI                                 # MemTotal - MemAvailable

    # next window: the new container has a rate now; a restarted one (counter reset) waits a round
    clock.now += 5.0
    tree.group("pod-u3/new", usage_usec=1_000_000 + 500_000, current=MI)
    tree.group("pod-u1/app", usage_usec=10, current=MI)
    collector.sample()
    window = collector.window()
    assert window.pods["u3"].containers["new"].cpu_nanocores == 100_000_000
    assert "app" not in window.pods["u1"].containers and "sidecar" in window.pods["u1"].containers


def test_a_group_that_vanishes_mid_sample_is_skipped(collector, tree, monkeypatch):
    tree.group("pod-u1/app", usage_usec=0, current=MI)
    real = collector.cgroups.stats

    def flaky(path: str):
        if path == "pod-u1/app":
            import shutil
            shutil.rmtree(tree.root / "skiff" / "pod-u1" / "app")
        return real(path)
    monkeypatch.setattr(collector.cgroups, "stats", flaky)
    assert collector.take().containers == {}


async def test_sampler_runs_until_cancelled(tree):
    collector = MetricsCollector(V2Manager(root=tree.root, parent="skiff"), proc=tree.proc, interval=0.01,
                                 first_interval=0.01)
    task = asyncio.create_task(collector.run())
    deadline = asyncio.get_running_loop().time() + 5
    while collector.window() is None:
        assert asyncio.get_running_loop().time() < deadline, "no window after 5 s"
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


def pod(name: str, uid: str, *containers: str, ns: str = "default") -> dict:
    return {"metadata": {"name": name, "namespace": ns, "uid": uid},
            "spec": {"containers": [{"name": c} for c in containers]}}


async def test_metrics_rpc_reports_the_pods_asked_for(collector, tree, clock):
    pods = [pod("web", "u1", "sidecar", "app"), pod("db", "u2", "pg")]
    service = AgentService(runtime=None, find_pod=lambda ns, name: None, states=dict, node_name="n1",
                           pods=lambda: pods, metrics=collector)
    reply = await service.Metrics(pb.MetricsRequest(pod_uids=["u1"]), None)
    assert list(reply.pending) == ["n1"] and not reply.nodes

    for n in range(2):
        tree.group("pod-u1/app", usage_usec=n * 1_000_000, current=3 * MI)
        tree.group("pod-u1/sidecar", usage_usec=0, current=MI)
        tree.group("pod-u2/pg", usage_usec=0, current=MI)
        tree.group("pod-gone/x", usage_usec=0, current=MI)       # a pod the agent no longer knows
        collector.sample()
        clock.now += 2.0

    reply = await service.Metrics(pb.MetricsRequest(pod_uids=["u1", "gone"]), None)
    assert [n.name for n in reply.nodes] == ["n1"] and not reply.pending
    assert [(p.namespace, p.name, p.uid, p.node) for p in reply.pods] == [("default", "web", "u1", "n1")]
    assert [(c.name, c.cpu_nanocores, c.memory_bytes) for c in reply.pods[0].containers] == [
        ("sidecar", 0, MI), ("app", 500_000_000, 3 * MI)]            # in the pod spec's order
    assert reply.pods[0].window_seconds == 2.0
    node_only = await service.Metrics(pb.MetricsRequest(), None)
    assert len(node_only.nodes) == 1 and not node_only.pods
