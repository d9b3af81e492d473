"""The scheduler against a real API server and etcd: binding, explanations, retries, the
dry-run preview, and two schedulers racing for the same nodes.

Nodes are cluster-wide, so each test gets an API server of its own (own etcd
prefix on the session's etcd) and sees only its own nodes. Node objects are
created directly (no agent); the scheduler runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from controlplane.client import Client
from controlplane.scheduler.config import SchedulerConfig
from controlplane.scheduler.preview import preview
from controlplane.scheduler.scheduler import Scheduler
from procs import REPO, ControlPlane, stop_process

GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.fixture
def own_api(etcd, tmp_path) -> ControlPlane:
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", f"/sched-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                  "--no-controllers"]).start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
async def api(own_api: ControlPlane) -> AsyncIterator[Client]:
    async with Client(own_api.address, credentials=own_api.credentials, timeout=10) as c:
        yield c


async def make_node(client: Client, name: str, *, cpu: str = "2", memory: str = "4Gi", pods: str = "110",
                    taints: list | None = None, labels: dict | None = None) -> None:
    await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
                         "spec": {"taints": taints or []}})
    node = await client.get("nodes", name)
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods}
    node["status"] = {"capacity": allocatable, "allocatable": allocatable}
    await client.update_status(node)


def pod(name: str, *, cpu: str = "100m", ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36",
                                     "resources": {"requests": {"cpu": cpu}}}], **spec}}


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll an async check until it returns something truthy, or fail at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@contextlib.asynccontextmanager
async def scheduling(client: Client, **config: Any) -> AsyncIterator[Scheduler]:
    settings = {"seed": 1, "pod_initial_backoff_seconds": 0.1, "pod_max_backoff_seconds": 0.5, **config}
    scheduler = Scheduler(client, SchedulerConfig(**settings))
    task = asyncio.create_task(scheduler.run(), name="test-scheduler")
    try:
        yield scheduler
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def condition(p: dict, type_: str = "PodScheduled") -> dict | None:
    return next((c for c in (p.get("status") or {}).get("conditions") or () if c.get("type") == type_), None)


async def node_of(client: Client, name: str) -> str:
    return (await client.get("pods", name, "default"))["spec"].get("nodeName") or ""


async def events_for(client: Client, name: str, reason: str) -> list[dict]:
    events = (await client.list("events", "default")).items
    return [e for e in events if e["involvedObject"].get("name") == name and e.get("reason") == reason]


async def test_pods_are_bound_and_an_oversized_pod_stays_pending_with_the_reason(api):
    await make_node(api, "n1")
    await make_node(api, "n2")
    for i in range(3):
        await api.create(pod(f"small-{i}", cpu="500m"))
    await api.create(pod("huge", cpu="4"))
    async with scheduling(api):
        for i in range(3):
            assert await eventually(lambda: node_of(api, f"small-{i}"), what=f"small-{i} bound") in ("n1", "n2")

        async def pending_with_reason() -> dict | None:
            c = condition(await api.get("pods", "huge", "default"))
            return c if c and c["status"] == "False" else None
        c = await eventually(pending_with_reason, what="huge to be marked unschedulable")
        assert c["reason"] == "Unschedulable"
        assert c["message"] == "0/2 nodes are available: 2 Insufficient cpu."
        failed = await eventually(lambda: events_for(api, "huge", "FailedScheduling"), what="FailedScheduling")
        assert failed[0]["type"] == "Warning"
        assert failed[0]["message"] == "0/2 nodes are available: 2 Insufficient cpu."
        scheduled = await eventually(lambda: events_for(api, "small-0", "Scheduled"), what="Scheduled event")
        message = scheduled[0]["message"]
        assert message.startswith("Successfully assigned default/small-0 to n")
        assert "score " in message and "NodeResourcesLeastAllocated" in message
        bound = await api.get("pods", "small-0", "default")
        assert condition(bound)["status"] == "True"

        # the cluster changes: the pending pod is retried at once and fits the new node
        await make_node(api, "big", cpu="8")
        assert await eventually(lambda: node_of(api, "huge"), what="huge bound after a node was added") == "big"


async def test_deleting_a_pod_makes_room_for_a_waiting_one(api):
    await make_node(api, "only", cpu="1")
    await api.create(pod("first", cpu="600m"))
    async with scheduling(api):
        assert await eventually(lambda: node_of(api, "first")) == "only"
        await api.create(pod("second", cpu="600m"))

        async def message() -> str:
            c = condition(await api.get("pods", "second", "default"))
            return c["message"] if c and c["status"] == "False" else ""
        assert await eventually(message) == "0/1 nodes are available: 1 Insufficient cpu."
        await api.delete("pods", "first", "default", grace_seconds=0)
        assert await eventually(lambda: node_of(api, "second"), what="second bound once first is gone") == "only"


async def test_tainted_nodes_are_avoided_unless_tolerated(api):
    await make_node(api, "plain", cpu="2")
    await make_node(api, "gpu", cpu="16", taints=[GPU_TAINT])
    await api.create(pod("a", cpu="200m"))
    await api.create(pod("b", cpu="200m"))
    await api.create(pod("tolerant", cpu="200m",
                         tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu",
                                       "effect": "NoSchedule"}]))
    async with scheduling(api):
        assert await eventually(lambda: node_of(api, "a")) == "plain"
        assert await eventually(lambda: node_of(api, "b")) == "plain"
        # the emptier gpu node wins on LeastAllocated once the taint is tolerated
        assert await eventually(lambda: node_of(api, "tolerant")) == "gpu"
        await api.create(pod("greedy", cpu="3"))

        async def message() -> str:
            c = condition(await api.get("pods", "greedy", "default"))
            return c["message"] if c and c["status"] == "False" else ""
        assert await eventually(message) == ("0/2 nodes are available: 1 Insufficient cpu, "
                                             "1 node(s) had untolerated taint {dedicated: gpu}.")


async def test_preview_shows_every_node_without_creating_the_pod(api):
    await make_node(api, "small", cpu="1")
    await make_node(api, "large", cpu="4")
    await make_node(api, "gpu", cpu="8", taints=[GPU_TAINT])
    manifest = pod("what-if", cpu="2")

    async def answer() -> dict | None:
        # The API server answers from its watch cache, which may trail the writes above by a moment.
        result = await api.schedule_preview(manifest)
        return result if result["node"] else None
    result = await eventually(answer, timeout=10, what="the preview to see the nodes")
    assert result["node"] == "large" and result["message"] == "", result
    rows = {row["name"]: row for row in result["nodes"]}
    assert set(rows) == {"small", "large", "gpu"}
    assert [f["reason"] for f in rows["small"]["filters"] if not f["ok"]] == ["Insufficient cpu"]
    assert [f["reason"] for f in rows["gpu"]["filters"] if not f["ok"]] == [
        "node(s) had untolerated taint {dedicated: gpu}"]
    assert rows["large"]["feasible"] and rows["large"]["total"] == sum(rows["large"]["scores"].values())
    # the same answer from the function on listed objects; and nothing was created
    local = preview(manifest, nodes=(await api.list("nodes")).items, pods=(await api.list("pods")).items)
    assert local["node"] == "large"
    assert not [p for p in (await api.list("pods", "default")).items if p["metadata"]["name"] == "what-if"]
    too_big = await api.schedule_preview(pod("too-big", cpu="64"))
    assert too_big["node"] == ""
    assert too_big["message"] == ("0/3 nodes are available: 2 Insufficient cpu, "
                                  "1 node(s) had untolerated taint {dedicated: gpu}.")


async def bound_cpu_per_node(client: Client) -> dict[str, int]:
    used: dict[str, int] = {}
    for p in (await client.list("pods", "default")).items:
        node = p["spec"].get("nodeName")
        if node:
            cpu = p["spec"]["containers"][0]["resources"]["requests"]["cpu"]
            used[node] = used.get(node, 0) + int(cpu.rstrip("m"))
    return used


async def settled(client: Client, total: int, expect_bound: int) -> bool:
    """expect_bound pods bound and every other pod marked unschedulable."""
    pods = (await client.list("pods", "default")).items
    bound = [p for p in pods if p["spec"].get("nodeName")]
    waiting = [p for p in pods if not p["spec"].get("nodeName")
               and (condition(p) or {}).get("reason") == "Unschedulable"]
    return len(pods) == total and len(bound) == expect_bound and len(bound) + len(waiting) == total


@pytest.mark.parametrize("same_name", [False, True], ids=["two-scheduler-names", "same-pods"])
async def test_two_racing_schedulers_never_overfill_a_node(api, same_name):
    """Two schedulers, each with its own cache, decide on the same two 1-cpu nodes. Both caches
    are synced (empty nodes) before either decides, and no bind leaves before both have decided
    their first 6 (otherwise the first binds could reach the second cache before it decides:
    no race), so each believes it can place 3 pods of 300m per node and tries 6 binds: 12
    attempts for 6 places. The API server's compare-and-swap Bind lets only what fits through;
    the losers forget, retry, and find the nodes full."""
    await make_node(api, "r1", cpu="1")
    await make_node(api, "r2", cpu="1")
    names = ("racer-a", "racer-a") if same_name else ("racer-a", "racer-b")
    total = 24
    await asyncio.gather(*(api.create(pod(f"p{i:02}", cpu="300m", schedulerName=names[i % 2]))
                           for i in range(total)))
    async with Client(api.server, credentials=api.credentials, timeout=10) as other:   # a second connection, as a second process would have
        settings = {"pod_initial_backoff_seconds": 0.1, "pod_max_backoff_seconds": 0.5}
        racers = [Scheduler(api, SchedulerConfig(scheduler_name=names[0], seed=1, **settings)),
                  Scheduler(other, SchedulerConfig(scheduler_name=names[1], seed=2, **settings))]
        await asyncio.gather(*(r.start() for r in racers))
        both_decided, attempts = asyncio.Event(), [0]
        for racer in racers:
            async def held_bind(*args: Any, _bind: Any = racer._bind_call) -> None:
                attempts[0] += 1
                if attempts[0] >= 12:
                    both_decided.set()
                await both_decided.wait()
                await _bind(*args)
            racer._bind_call = held_bind
        loops = [asyncio.create_task(r.schedule_loop()) for r in racers]
        try:
            await eventually(lambda: settled(api, total, expect_bound=6), timeout=30,
                             what="6 pods bound and the rest unschedulable")
            used = await bound_cpu_per_node(api)
            assert used == {"r1": 900, "r2": 900}, used
            # The race really happened: 12 binds were decided on empty nodes for 6 places (some lose
            # with "node full", some — with the same pods — find the pod bound already).
            assert attempts[0] >= 12, [r.stats for r in racers]
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            for r in racers:
                await r.stop()


async def test_scheduler_runs_alone_as_a_process(api, own_api, tmp_path):
    await make_node(api, "solo")
    await api.create(pod("alone"))
    config = tmp_path / "scheduler.yaml"
    config.write_text("seed: 5\nscoreWeights: {ImageLocality: 0}\n")
    log = open(tmp_path / "scheduler.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "controlplane.scheduler", "--kubeconfig", str(own_api.admin_config),
                             "--config", str(config)], cwd=REPO, stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL)
    try:
        assert await eventually(lambda: node_of(api, "alone"), what="the standalone scheduler to bind") == "solo"
    finally:
        stop_process(proc)
        log.close()
    assert proc.returncode == 0, (tmp_path / "scheduler.log").read_text()
    assert "seed 5" in (tmp_path / "scheduler.log").read_text()


def test_bad_config_file_is_refused_with_the_field(tmp_path):
    config = tmp_path / "scheduler.yaml"
    config.write_text("scoreWeights: {Nope: 1}\n")
    result = subprocess.run([sys.executable, "-m", "controlplane.scheduler", "--server", "127.0.0.1:1",
                             "--config", str(config)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "scoreWeights" in result.stderr and "unknown score plugin 'Nope'" in result.stderr


async def test_pods_without_requests_spread_as_nonzero_requests(api):
    """Issue 15: 18 pods that request nothing, on three equal nodes. Kubernetes scores each as
    100m CPU / 200Mi (NonZeroRequests), so they spread instead of piling on one node."""
    for i in range(3):
        await make_node(api, f"plain-{i}", cpu="4", memory="8Gi")
    bare = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bare-{i}", "namespace": "default"},
             "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}} for i in range(18)]
    async with scheduling(api):
        for p in bare:
            await api.create(p)

        async def placed() -> dict[str, int] | None:
            pods = [p for p in (await api.list("pods", "default")).items if p["metadata"]["name"].startswith("bare-")]
            nodes = [p["spec"].get("nodeName") for p in pods]
            if len(nodes) < 18 or not all(nodes):
                return None
            return {n: nodes.count(n) for n in set(nodes)}
        counts = await eventually(placed, timeout=60, what="18 pods bound")
    assert max(counts.values()) - min(counts.values()) <= 2 and len(counts) == 3, counts
