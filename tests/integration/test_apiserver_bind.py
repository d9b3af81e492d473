"""Bind through two API servers at once: each keeps its own copy of the nodes' allocation
records and reads pods and nodes from its watch caches, yet no node is ever overfilled,
because the bind's transaction compares the pod's and the record's revisions in etcd."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from controlplane.client import Client, Conflict, FailedPrecondition
from procs import ControlPlane

SLOTS = 4   # the node fits 4 pods of 250m


def node(name: str) -> dict:
    allocatable = {"cpu": "1", "memory": "8Gi", "pods": "110"}
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"capacity": allocatable, "allocatable": allocatable}}


def pod(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
                                     "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]}}


@pytest.fixture
def servers(etcd, tmp_path):
    prefix = f"/bind-{uuid.uuid4().hex[:8]}"
    started = []
    try:
        for name in ("a", "b"):
            started.append(ControlPlane(tmp_path / name, etcd_endpoints=etcd.endpoint,
                                        extra_args=["--etcd-prefix", prefix, "--no-scheduler",
                                                    "--no-controllers"]).start())
        yield started
    finally:
        for cp in started:
            cp.stop()


async def register(client: Client, name: str) -> None:
    n = node(name)
    status = n.pop("status")
    created = await client.create(n)
    await client.update_status({**created, "status": status})


async def bind_all(clients: list[Client], namespace: str, names: list[str], node_name: str) -> list[str]:
    async def one(i: int, name: str) -> str | None:
        for _ in range(5):
            try:
                await clients[i % 2].bind(namespace, name, node_name)
                return name
            except Conflict:
                continue   # lost a compare-and-swap race: try again, as the scheduler does
            except FailedPrecondition:
                return None
        return None
    return [n for n in await asyncio.gather(*(one(i, n) for i, n in enumerate(names))) if n]


async def test_binds_racing_through_two_api_servers_never_overfill_a_node(servers):
    async with Client(servers[0].address, credentials=servers[0].credentials) as a, Client(servers[1].address, credentials=servers[1].credentials) as b:
        await a.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "race"}})
        await register(a, "n1")
        names = [f"p{i}" for i in range(3 * SLOTS)]
        for name in names:
            await a.create(pod(name, "race"))
        bound = await bind_all([a, b], "race", names, "n1")
        assert len(bound) == SLOTS
        on_node = [p for p in (await a.list("pods", "race")).items if p["spec"].get("nodeName") == "n1"]
        assert sorted(p["metadata"]["name"] for p in on_node) == sorted(bound)

        # Room freed through one server is seen by the other, whose copy of the node's record
        # still counts the deleted pods: it re-reads the record before refusing.
        for name in bound[:2]:
            await b.delete("pods", name, "race", grace_seconds=0)
        rest = [n for n in names if n not in bound]
        deadline = asyncio.get_running_loop().time() + 10
        again: list[str] = []
        while len(again) < 2:
            assert asyncio.get_running_loop().time() < deadline, f"only {again} bound after the deletes"
            again += await bind_all([a, a], "race", [n for n in rest if n not in again][:1], "n1")
            if len(again) < 2:
                await asyncio.sleep(0.05)   # the servers' pod caches have not seen the delete yet
        with pytest.raises(FailedPrecondition, match="Insufficient cpu"):
            await b.bind("race", [n for n in rest if n not in again][0], "n1")


async def test_bind_records_the_scheduled_event_in_the_same_write(client, namespace):
    name = f"n-{uuid.uuid4().hex[:6]}"
    await register(client, name)
    created = await client.create(pod("p", namespace))
    bound = await client.bind(namespace, "p", name, uid=created["metadata"]["uid"],
                              scheduled_event=f"Successfully assigned {namespace}/p to {name}; score 42",
                              event_source="default-scheduler")
    events = (await client.list("events", namespace)).items
    assert len(events) == 1
    event = events[0]
    assert event["metadata"]["resourceVersion"] == bound["metadata"]["resourceVersion"]
    assert event["involvedObject"]["uid"] == created["metadata"]["uid"] and event["reason"] == "Scheduled"
    assert event["message"].endswith("score 42") and event["source"] == {"component": "default-scheduler"}
    # A refused bind writes no event.
    await client.create(pod("q", namespace))
    with pytest.raises(FailedPrecondition):
        await client.bind(namespace, "q", "no-such-node", scheduled_event="nope")
    assert len((await client.list("events", namespace)).items) == 1


async def test_bind_many_answers_each_bind_as_bind_would(client, namespace):
    name = f"n-{uuid.uuid4().hex[:6]}"
    await register(client, name)
    for p in ("a", "b", "c"):
        await client.create(pod(p, namespace))
    await client.bind(namespace, "c", name)
    results = await client.bind_many([
        {"namespace": namespace, "name": "a", "node_name": name, "scheduled_event": "assigned a"},
        {"namespace": namespace, "name": "b", "node_name": "nowhere"},
        {"namespace": namespace, "name": "c", "node_name": name},
        {"namespace": namespace, "name": "missing", "node_name": name}])
    assert results[0]["spec"]["nodeName"] == name
    assert isinstance(results[1], FailedPrecondition) and 'nodes "nowhere" not found' in results[1].message
    assert isinstance(results[2], Conflict) and "already assigned" in results[2].message
    from controlplane.client import NotFound
    assert isinstance(results[3], NotFound)
    assert [e["involvedObject"]["name"] for e in (await client.list("events", namespace)).items] == ["a"]


async def test_a_batch_of_binds_to_one_node_all_succeed(client, namespace):
    """Binds to the same node in one BindMany take turns on the node's record instead of
    failing each other's compare-and-swap."""
    name = f"n-{uuid.uuid4().hex[:6]}"
    big = node(name)
    big["status"]["allocatable"] = big["status"]["capacity"] = {"cpu": "64", "memory": "64Gi", "pods": "110"}
    await register(client, name)
    created = await client.get("nodes", name)
    await client.update_status({**created, "status": big["status"]})
    names = [f"p{i}" for i in range(40)]
    for p in names:
        await client.create(pod(p, namespace))
    results = await client.bind_many([{"namespace": namespace, "name": p, "node_name": name} for p in names])
    assert all(isinstance(r, dict) and r["spec"]["nodeName"] == name for r in results), results
