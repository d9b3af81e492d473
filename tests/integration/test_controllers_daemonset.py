"""DaemonSet with hollow nodes: one pod per eligible node, following nodes joining and leaving,
node selectors and taints; rolling updates within maxUnavailable."""

from __future__ import annotations

import uuid

import pytest

from agent.hollow_status import READY
from controlplane.client import Client
from controlplane.controllers.daemonset import DaemonSetController
from controlplane.controllers.daemonset_plan import REVISION_LABEL, template_hash
from controlplane.controllers.settings import ControllerSettings
from hollow_harness import controllers, hollow_nodes, modify, scheduling, until

SETTINGS = ControllerSettings()


@pytest.fixture
async def ns(c) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def daemonset(ns: str, selector: dict[str, str], *, max_unavailable: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxUnavailable": max_unavailable}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"nodeSelector": selector,
                                           "containers": [{"name": "c", "image": "busybox:1"}]}}}}


async def daemon_pods(c: Client, ns: str) -> dict[str, dict]:
    """node -> the live daemon pod on it (fails on two live pods for one node)."""
    out: dict[str, dict] = {}
    for pod in (await c.list("pods", ns, label_selector="app=agent")).items:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        node = pod["spec"].get("nodeName") or "<unbound>"
        assert node not in out or node == "<unbound>", f"two daemon pods on {node}"
        out[node] = pod
    return out


async def running_on(c: Client, ns: str, nodes: set[str]) -> bool:
    pods = await daemon_pods(c, ns)
    return set(pods) == nodes and all(p["status"].get("phase") == "Running" for p in pods.values())


async def test_daemonset_follows_nodes_joining_and_leaving(c, ns):
    group = {"ds-test": uuid.uuid4().hex[:8]}
    async with hollow_nodes(c, 2, prefix=f"ds{uuid.uuid4().hex[:4]}", labels=group) as cluster, \
            hollow_nodes(c, 1, prefix=f"other{uuid.uuid4().hex[:4]}") as others, \
            controllers(c, [DaemonSetController(SETTINGS)], SETTINGS), scheduling(c):
        await c.create(daemonset(ns, group))
        first = set(cluster.node_names)
        await until(lambda: running_on(c, ns, first), what="a daemon pod Running on each labelled node")
        assert not set(others.node_names) & set(await daemon_pods(c, ns))

        async def status(**want: int) -> bool:
            got = (await c.get("daemonsets", "agent", ns)).get("status") or {}
            return all(got.get(k) == v for k, v in want.items())
        await until(lambda: status(desiredNumberScheduled=2, currentNumberScheduled=2, numberReady=2,
                                   updatedNumberScheduled=2, numberAvailable=2), what="DaemonSet status 2/2")

        joined = await cluster.add_nodes(1)
        await until(lambda: running_on(c, ns, first | set(joined)), what="a pod on the node that joined")

        leaving = cluster.node_names[0]
        await cluster.remove_node(leaving)
        await until(lambda: running_on(c, ns, set(cluster.node_names)), what="the pod of the node that left gone")
        await until(lambda: status(desiredNumberScheduled=2, numberReady=2), what="DaemonSet status after leave")

        # A NoSchedule taint keeps the running pod; a NoExecute taint removes it.
        target = cluster.node_names[0]
        await modify(c, "nodes", target, "", lambda n: n["spec"].update(
            taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]))
        await until(lambda: status(desiredNumberScheduled=1, numberMisscheduled=1), what="NoSchedule counted")
        assert target in await daemon_pods(c, ns)
        await modify(c, "nodes", target, "", lambda n: n["spec"].update(
            taints=[{"key": "dedicated", "value": "db", "effect": "NoExecute"}]))
        await until(lambda: running_on(c, ns, set(cluster.node_names) - {target}), what="NoExecute evicts")

        # Cordoned nodes still get their daemon pod (daemon pods tolerate unschedulable).
        await modify(c, "nodes", target, "", lambda n: n.update(spec={"unschedulable": True}))
        await until(lambda: running_on(c, ns, set(cluster.node_names)), what="a pod on the cordoned node")


async def test_daemonset_rolling_update_respects_max_unavailable(c, ns):
    group = {"ds-test": uuid.uuid4().hex[:8]}
    async with hollow_nodes(c, 3, prefix=f"ru{uuid.uuid4().hex[:4]}", labels=group) as cluster, \
            controllers(c, [DaemonSetController(SETTINGS)], SETTINGS), scheduling(c):
        await c.create(daemonset(ns, group, max_unavailable=1))
        nodes = set(cluster.node_names)
        await until(lambda: running_on(c, ns, nodes), what="3 daemon pods Running")

        async def revisions() -> dict[str, str]:
            return {n: p["metadata"]["labels"][REVISION_LABEL] for n, p in (await daemon_pods(c, ns)).items()}

        # A template whose pods never become Ready: the rollout replaces one node and stops there.
        ds = await modify(c, "daemonsets", "agent", ns,
                          lambda d: d["spec"]["template"]["metadata"].update(annotations={READY: "false"}))
        broken = template_hash(ds["spec"]["template"])

        async def one_replaced() -> bool:
            got = await revisions()
            return len(got) == 3 and list(got.values()).count(broken) == 1
        await until(one_replaced, what="exactly one node on the unready revision")
        for _ in range(10):  # the budget holds: no second node is taken down while the first is unready
            got = await revisions()
            assert list(got.values()).count(broken) <= 1, got

        def fix(d: dict) -> None:
            d["spec"]["template"]["metadata"]["annotations"] = {"version": "2"}
            d["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
        ds = await modify(c, "daemonsets", "agent", ns, fix)
        fixed = template_hash(ds["spec"]["template"])

        async def rolled() -> bool:
            pods = await daemon_pods(c, ns)
            return set(pods) == nodes and all(p["metadata"]["labels"][REVISION_LABEL] == fixed and
                                              p["status"].get("phase") == "Running" for p in pods.values())
        await until(rolled, timeout=30, what="every node on the new revision")
        got = (await c.get("daemonsets", "agent", ns))["status"]
        await until(lambda: _status_is(c, ns, updatedNumberScheduled=3, numberAvailable=3),
                    what=f"status updated 3/3 (was {got})")


async def _status_is(c: Client, ns: str, **want: int) -> bool:
    got = (await c.get("daemonsets", "agent", ns)).get("status") or {}
    return all(got.get(k) == v for k, v in want.items())
