"""Cascading deletion through the garbage collector: background, foreground, orphan, dangling owners."""

from __future__ import annotations

import uuid

from controllers_support import deployment, pod, pods_of, replicaset, running, until

from controlplane.client import NotFound
from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.garbagecollector import GarbageCollector
from controlplane.controllers.replicaset import ReplicaSetController


def controllers(namespace: str) -> list:
    return [ReplicaSetController(namespace=namespace), DeploymentController(namespace=namespace),
            GarbageCollector(namespace=namespace)]


async def gone(client, kind: str, name: str, namespace: str) -> bool:
    try:
        await client.get(kind, name, namespace)
    except NotFound:
        return True
    return False


async def count(client, namespace: str, n: int):
    pods = await pods_of(client, namespace)
    return pods if len(pods) == n else None


async def test_background_deletion_removes_dependents(client, namespace):
    async with running(client, *controllers(namespace)):
        await client.create(deployment("web", namespace, replicas=2))
        await until(lambda: count(client, namespace, 2), message="2 pods")
        _, finished = await client.delete("Deployment", "web", namespace)   # Background is the default
        assert finished

        async def all_gone():
            return not (await client.list("ReplicaSet", namespace)).items and not await pods_of(client, namespace)
        await until(all_gone, message="ReplicaSet and pods collected")


async def test_foreground_deletion_keeps_the_owner_until_dependents_are_gone(client, namespace):
    node = f"gc-node-{uuid.uuid4().hex[:6]}"
    await client.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node},
                         "status": {"allocatable": {"cpu": "8", "memory": "16Gi", "pods": "100"},
                                    "capacity": {"cpu": "8", "memory": "16Gi", "pods": "100"},
                                    "conditions": [{"type": "Ready", "status": "True"}]}})
    try:
        async with running(client, *controllers(namespace)):
            await client.create(replicaset("web", namespace, replicas=2))
            pods = await until(lambda: count(client, namespace, 2), message="2 pods")
            for p in pods:   # bound pods end gracefully: their agent (this test) must finish them
                await client.bind(namespace, p["metadata"]["name"], node)
            rs, finished = await client.delete("ReplicaSet", "web", namespace, propagation="Foreground")
            assert not finished and "foregroundDeletion" in rs["metadata"]["finalizers"]

            async def pods_terminating():
                pods = await pods_of(client, namespace)
                return pods if pods and all(p["metadata"].get("deletionTimestamp") for p in pods) else None
            pods = await until(pods_terminating, message="the pods are being deleted")
            rs = await client.get("ReplicaSet", "web", namespace)   # still there, waiting for them
            assert rs["metadata"]["deletionTimestamp"]
            for p in pods:   # the "agent" confirms the containers stopped
                await client.delete("Pod", p["metadata"]["name"], namespace, grace_seconds=0)
            await until(lambda: gone(client, "ReplicaSet", "web", namespace), message="the owner removed last")
    finally:
        await client.delete("Node", node)


async def test_foreground_deletion_cascades_through_a_deployment(client, namespace):
    async with running(client, *controllers(namespace)):
        await client.create(deployment("web", namespace, replicas=2))
        await until(lambda: count(client, namespace, 2), message="2 pods")
        await client.delete("Deployment", "web", namespace, propagation="Foreground")

        async def all_gone():
            return (await gone(client, "Deployment", "web", namespace)
                    and not (await client.list("ReplicaSet", namespace)).items
                    and not await pods_of(client, namespace))
        await until(all_gone, message="Deployment, ReplicaSet and pods gone")


async def test_orphan_deletion_leaves_dependents_without_owner(client, namespace):
    async with running(client, *controllers(namespace)):
        await client.create(replicaset("web", namespace, replicas=2))
        await until(lambda: count(client, namespace, 2), message="2 pods")
        await client.delete("ReplicaSet", "web", namespace, propagation="Orphan")
        await until(lambda: gone(client, "ReplicaSet", "web", namespace), message="the owner removed")
        pods = await pods_of(client, namespace)
        assert len(pods) == 2 and not any(p["metadata"].get("ownerReferences") for p in pods)


async def test_dependent_of_a_missing_owner_is_collected(client, namespace):
    ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost", "uid": str(uuid.uuid4()),
             "controller": True, "blockOwnerDeletion": True}
    await client.create(pod("left-behind", namespace, {"app": "x"}, ownerReferences=[ghost]))
    live = await client.create(replicaset("keep", namespace, replicas=0))
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "keep", "uid": live["metadata"]["uid"]}
    await client.create(pod("two-owners", namespace, {"app": "y"}, ownerReferences=[owner, {**ghost, "controller": False}]))
    async with running(client, GarbageCollector(namespace=namespace)):
        await until(lambda: gone(client, "Pod", "left-behind", namespace), message="dangling pod collected")

        async def ghost_ref_removed():
            refs = (await client.get("Pod", "two-owners", namespace))["metadata"].get("ownerReferences")
            return refs == [owner]
        await until(ghost_ref_removed, message="the reference to the missing owner removed, the pod kept")
