"""Watch: streams of ADDED/MODIFIED/DELETED, resume from a resourceVersion,
selectors moving objects in and out of view, and "too old" after compaction."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import pytest

from controlplane.client import Client, TooOld, WatchEvent
from procs import ControlPlane

pytestmark = pytest.mark.asyncio



async def node(client, name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110") -> None:
    """A Node object (no agent behind it) that pods can be bound to."""
    await client.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    current = await client.get("nodes", name)
    current["status"] = {"capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                         "allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}
    await client.update_status(current)

def configmap(name: str, ns: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": dict(data)}


def pod(name: str, ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}


async def take(stream: AsyncIterator[WatchEvent], n: int, timeout: float = 10.0) -> list[tuple[str, str]]:
    """The next n (type, name) pairs from a watch, skipping bookmarks, with a deadline."""
    out: list[tuple[str, str]] = []

    async def collect() -> None:
        async for event in stream:
            if event.type == "BOOKMARK":
                continue
            out.append((event.type, event.object["metadata"]["name"]))
            if len(out) == n:
                return
    await asyncio.wait_for(collect(), timeout)
    return out


async def test_watch_streams_changes(client, namespace):
    start = await client.list("configmaps", namespace)
    stream = client.watch("configmaps", namespace, resource_version=start.resource_version)
    first = asyncio.ensure_future(take(stream, 3))
    await asyncio.sleep(0)  # let the watch start before writing
    created = await client.create(configmap("a", namespace, k="1"))
    created["data"] = {"k": "2"}
    await client.update(created)
    await client.delete("configmaps", "a", namespace)
    assert await first == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


async def test_watch_from_empty_version_starts_with_a_snapshot(client, namespace):
    await client.create(configmap("x", namespace))
    await client.create(configmap("y", namespace))
    stream = client.watch("configmaps", namespace)
    assert sorted(await take(stream, 2)) == [("ADDED", "x"), ("ADDED", "y")]


async def test_watch_resumes_from_a_resource_version(client, namespace):
    a = await client.create(configmap("a", namespace))
    # Changes made while "disconnected" are replayed after the version we saw.
    await client.create(configmap("b", namespace))
    a["data"] = {"v": "2"}
    await client.update(a)
    stream = client.watch("configmaps", namespace, resource_version=a["metadata"]["resourceVersion"])
    assert await take(stream, 2) == [("ADDED", "b"), ("MODIFIED", "a")]


async def test_label_selector_watch_sees_objects_enter_and_leave(client, namespace):
    start = await client.list("configmaps", namespace)
    stream = client.watch("configmaps", namespace, label_selector="app=web",
                          resource_version=start.resource_version)
    events = asyncio.ensure_future(take(stream, 2))
    await asyncio.sleep(0)
    cm = await client.create(configmap("c", namespace))            # not selected: invisible
    cm["metadata"]["labels"] = {"app": "web"}
    cm = await client.update(cm)                                   # enters the selection: ADDED
    cm["metadata"]["labels"] = {"app": "db"}
    await client.update(cm)                                        # leaves it: DELETED
    assert await events == [("ADDED", "c"), ("DELETED", "c")]


async def test_node_name_watch_sees_pods_bound_to_the_node(client, namespace):
    start = await client.list("pods", namespace)
    stream = client.watch("pods", namespace, field_selector="spec.nodeName=node-w",
                          resource_version=start.resource_version)
    events = asyncio.ensure_future(take(stream, 1))
    await asyncio.sleep(0)
    await client.create(pod("other", namespace))
    await client.create(pod("mine", namespace))
    await node(client, "node-x")
    await client.bind(namespace, "other", "node-x")
    await node(client, "node-w")
    await client.bind(namespace, "mine", "node-w")
    assert await events == [("ADDED", "mine")]


async def test_watch_bad_version_is_invalid(client, namespace):
    from controlplane.client import Invalid
    with pytest.raises(Invalid, match="resourceVersion"):
        await take(client.watch("configmaps", namespace, resource_version="abc"), 1)


async def test_compaction_makes_old_versions_too_old(etcd, tmp_path):
    cp = ControlPlane(tmp_path / "cp", etcd_endpoints=etcd.endpoint,
                      extra_args=["--etcd-prefix", "/compaction-test", "--compaction-interval", "0.5"]).start()
    try:
        async with Client(cp.address, credentials=cp.credentials) as client:
            first = await client.create(configmap("a", "default"))
            old = first["metadata"]["resourceVersion"]
            for i in range(3):
                first["data"] = {"i": str(i)}
                first = await client.update(first)

            async def too_old() -> bool:
                try:
                    await take(client.watch("configmaps", "default", resource_version=old), 1, timeout=1)
                except TooOld:
                    return True
                except asyncio.TimeoutError:
                    return False
                return False
            deadline = asyncio.get_running_loop().time() + 15
            while not await too_old():
                assert asyncio.get_running_loop().time() < deadline, "old version never became too old"
                await asyncio.sleep(0.3)
            # A client relists and watches from the list's version.
            fresh = await client.list("configmaps", "default")
            stream = client.watch("configmaps", "default", resource_version=fresh.resource_version)
            events = asyncio.ensure_future(take(stream, 1))
            await asyncio.sleep(0)
            await client.create(configmap("b", "default"))
            assert await events == [("ADDED", "b")]
    finally:
        cp.stop()
