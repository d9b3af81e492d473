"""Node lifecycle with hollow nodes: a dead node goes NotReady and tainted, its pods are evicted
(and, with the ReplicaSet controller and a scheduler, rebound elsewhere); a node that comes back
is Ready again; a node that reports NotReady is tainted not-ready; pods of deleted nodes go."""

from __future__ import annotations

import asyncio
import importlib.util
import uuid

import pytest

from controlplane.client import Client, NotFound
from controlplane.controllers.nodelifecycle import NodeLifecycleController
from controlplane.controllers.settings import ControllerSettings
from api.taints import NOT_READY, UNREACHABLE
from hollow_harness import controllers, hollow_nodes, scheduling, until

SETTINGS = ControllerSettings(node_monitor_grace_seconds=2.0, pod_eviction_seconds=1.0,
                              node_monitor_period_seconds=0.5)


@pytest.fixture
async def ns(c) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def pod(name: str, ns: str, tolerations: list | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "tolerations": tolerations or []}}


async def node_state(c: Client, name: str) -> tuple[str | None, set[tuple[str, str]]]:
    node = await c.get("nodes", name)
    ready = next((x["status"] for x in node["status"]["conditions"] if x["type"] == "Ready"), None)
    return ready, {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}


async def exists(c: Client, kind: str, name: str, ns: str = "") -> bool:
    try:
        await c.get(kind, name, ns)
        return True
    except NotFound:
        return False


async def test_dead_node_is_tainted_and_its_pods_evicted(c, ns):
    async with hollow_nodes(c, 2, prefix=f"nl{uuid.uuid4().hex[:4]}", lease_renew_seconds=0.5) as cluster, \
            controllers(c, [NodeLifecycleController(SETTINGS)], SETTINGS):
        dead, alive = cluster.node_names
        await c.create(pod("plain", ns))
        await c.create(pod("patient", ns, [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                            "tolerationSeconds": 3600}]))
        await c.create(pod("forever", ns, [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]))
        await c.create(pod("elsewhere", ns))
        for name in ("plain", "patient", "forever"):
            await c.bind(ns, name, dead)
        await c.bind(ns, "elsewhere", alive)
        await until(lambda: _running(c, ns, "plain"), what="plain Running")

        loop = asyncio.get_running_loop()
        killed = loop.time()
        cluster.kill(dead)

        async def unreachable():
            ready, taints = await node_state(c, dead)
            return ready == "Unknown" and {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")} <= taints
        await until(unreachable, timeout=10, what="the dead node NotReady and tainted unreachable")
        assert loop.time() - killed >= 1.0  # not before the grace period (minus one renewal interval)
        plain = await c.get("pods", "plain", ns)
        assert [x["status"] for x in plain["status"]["conditions"] if x["type"] == "Ready"] == ["False"]

        await until(lambda: _not(exists(c, "pods", "plain", ns)), timeout=10, what="plain evicted")
        assert await exists(c, "pods", "patient", ns) and await exists(c, "pods", "forever", ns)
        assert await exists(c, "pods", "elsewhere", ns)
        assert (await node_state(c, alive)) == ("True", set())
        events = (await c.list("events", "default")).items
        assert any(e["reason"] == "NodeNotReady" and e["involvedObject"]["name"] == dead for e in events)

        cluster.revive(dead)

        async def recovered():
            return (await node_state(c, dead)) == ("True", set())
        await until(recovered, timeout=10, what="the revived node Ready without taints")


async def test_node_reporting_not_ready_is_tainted_and_drained_gracefully(c, ns):
    async with hollow_nodes(c, 1, prefix=f"nr{uuid.uuid4().hex[:4]}", lease_renew_seconds=0.5) as cluster, \
            controllers(c, [NodeLifecycleController(SETTINGS)], SETTINGS):
        name = cluster.node_names[0]
        await c.create(pod("p", ns))
        await c.bind(ns, "p", name)
        await until(lambda: _running(c, ns, "p"), what="p Running")
        cluster.set_ready(name, False)

        async def tainted():
            ready, taints = await node_state(c, name)
            return ready == "False" and (NOT_READY, "NoExecute") in taints
        await until(tainted, timeout=10, what="the node tainted not-ready")
        # The agent is alive, so the eviction is graceful and the hollow node finishes it.
        await until(lambda: _not(exists(c, "pods", "p", ns)), timeout=10, what="p evicted")
        cluster.set_ready(name, True)
        await until(lambda: _eq(node_state(c, name), ("True", set())), timeout=10, what="taints removed")


async def test_nothing_is_evicted_when_every_node_is_unreachable(c, ns):
    async with hollow_nodes(c, 1, prefix=f"fd{uuid.uuid4().hex[:4]}", lease_renew_seconds=0.5) as cluster, \
            controllers(c, [NodeLifecycleController(SETTINGS)], SETTINGS):
        name = cluster.node_names[0]
        await c.create(pod("p", ns))
        await c.bind(ns, "p", name)
        await until(lambda: _running(c, ns, "p"), what="p Running")
        cluster.kill(name)

        async def unreachable():
            return (await node_state(c, name))[0] == "Unknown"
        await until(unreachable, timeout=10, what="the only node NotReady")
        await asyncio.sleep(SETTINGS.pod_eviction_seconds + 1.5)  # asserting an absence: past the eviction time
        assert await exists(c, "pods", "p", ns), "evicted although every node was unreachable"
        cluster.revive(name)
        await until(lambda: _eq(node_state(c, name), ("True", set())), timeout=10, what="the node back")


async def test_pods_of_a_deleted_node_are_removed(c, ns):
    async with hollow_nodes(c, 1, prefix=f"no{uuid.uuid4().hex[:4]}", lease_renew_seconds=0.5) as cluster, \
            controllers(c, [NodeLifecycleController(SETTINGS)], SETTINGS):
        name = cluster.node_names[0]
        await c.create(pod("orphan", ns))
        await c.bind(ns, "orphan", name)
        await until(lambda: _running(c, ns, "orphan"), what="orphan Running")
        await cluster.remove_node(name)
        await until(lambda: _not(exists(c, "pods", "orphan", ns)), timeout=10, what="the orphan deleted")


@pytest.mark.skipif(importlib.util.find_spec("controlplane.controllers.replicaset") is None,
                    reason="needs the ReplicaSet controller (controlplane/controllers/replicaset.py)")
async def test_replicaset_pods_of_a_dead_node_are_recreated_elsewhere(c, ns):
    from controlplane.controllers.replicaset import ReplicaSetController
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": ns},
          "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    async with hollow_nodes(c, 3, prefix=f"rs{uuid.uuid4().hex[:4]}", lease_renew_seconds=0.5) as cluster, \
            controllers(c, [NodeLifecycleController(SETTINGS), ReplicaSetController(SETTINGS)], SETTINGS), \
            scheduling(c):
        await c.create(rs)

        async def placed() -> dict[str, int] | None:
            pods = (await c.list("pods", ns, label_selector="app=web")).items
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            running = [p for p in live if p["status"].get("phase") == "Running"]
            if len(running) != 6:
                return None
            counts: dict[str, int] = {}
            for p in running:
                counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
            return counts
        counts = await until(placed, timeout=30, what="6 pods Running")
        victim = max(counts, key=counts.get)
        cluster.kill(victim)

        async def moved():
            counts = await placed()
            return counts is not None and victim not in counts
        await until(moved, timeout=20, what=f"every pod off {victim} and 6 Running elsewhere")


async def _running(c: Client, ns: str, name: str) -> bool:
    return (await c.get("pods", name, ns))["status"].get("phase") == "Running"


async def _not(value) -> bool:
    return not await value


async def _eq(value, expected) -> bool:
    return (await value) == expected
