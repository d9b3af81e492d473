"""The ReplicaSet controller against a real API server: create, replace, scale down, adopt, release."""

from __future__ import annotations

import time

from controllers_support import (FakeKubelet, mark_ready, modify, pod, pods_of, replicaset, running, set_replicas,
                                 until)

from controlplane.controllers.replicaset import ReplicaSetController


def owned_by(p: dict, rs: dict) -> bool:
    return any(r["uid"] == rs["metadata"]["uid"] and r.get("controller")
               for r in p["metadata"].get("ownerReferences") or [])


async def test_creates_pods_with_owner_references_and_reports_status(client, namespace):
    async with running(client, ReplicaSetController(namespace=namespace)), FakeKubelet(client, namespace):
        rs = await client.create(replicaset("web", namespace, replicas=3))
        pods = await until(lambda: _count(client, namespace, 3), message="3 pods")
        for p in pods:
            assert p["metadata"]["name"].startswith("web-")
            assert p["metadata"]["labels"] == {"app": "web"}
            ref, = p["metadata"]["ownerReferences"]
            assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                           "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}

        async def status_ready():
            status = (await client.get("ReplicaSet", "web", namespace)).get("status") or {}
            return status if status.get("readyReplicas") == 3 else None
        status = await until(status_ready, message="readyReplicas 3")
        assert status["replicas"] == 3 and status["availableReplicas"] == 3
        assert status["fullyLabeledReplicas"] == 3 and status["observedGeneration"] == 1

        async def created_events():
            events = (await client.list("Event", namespace)).items
            return [e for e in events if e["reason"] == "SuccessfulCreate"]
        events = await until(created_events, message="SuccessfulCreate events")
        assert events[0]["message"].startswith("Created pod: web-")


async def _count(client, namespace, n, selector=""):
    pods = [p for p in await pods_of(client, namespace, selector) if not p["metadata"].get("deletionTimestamp")]
    return pods if len(pods) == n else None


async def test_replaces_a_deleted_pod(client, namespace):
    async with running(client, ReplicaSetController(namespace=namespace)):
        await client.create(replicaset("web", namespace, replicas=2))
        pods = await until(lambda: _count(client, namespace, 2))
        victim = pods[0]["metadata"]["name"]
        await client.delete("Pod", victim, namespace)

        async def replaced():
            names = {p["metadata"]["name"] for p in await pods_of(client, namespace)}
            return len(names) == 2 and victim not in names
        await until(replaced, message="a replacement pod")


async def test_scale_down_removes_unready_then_most_recently_ready(client, namespace):
    async with running(client, ReplicaSetController(namespace=namespace)):
        await client.create(replicaset("web", namespace, replicas=3))
        pods = await until(lambda: _count(client, namespace, 3))
        old, recent, unready = sorted(pods, key=lambda p: p["metadata"]["name"])
        await mark_ready(client, old, since=time.time() - 100)     # ready for long
        await mark_ready(client, recent, since=time.time() - 10)   # ready for a short time
        await modify(client, "ReplicaSet", "web", namespace, set_replicas(2))
        left = await until(lambda: _count(client, namespace, 2), message="scaled to 2")
        assert unready["metadata"]["name"] not in {p["metadata"]["name"] for p in left}
        await modify(client, "ReplicaSet", "web", namespace, set_replicas(1))
        left = await until(lambda: _count(client, namespace, 1), message="scaled to 1")
        assert left[0]["metadata"]["name"] == old["metadata"]["name"]


async def test_adopts_a_matching_orphan(client, namespace):
    orphan = await client.create(pod("stray", namespace, {"app": "web"}))
    async with running(client, ReplicaSetController(namespace=namespace)):
        rs = await client.create(replicaset("web", namespace, replicas=2))
        pods = await until(lambda: _count(client, namespace, 2))
        assert orphan["metadata"]["name"] in {p["metadata"]["name"] for p in pods}

        async def adopted():
            return owned_by(await client.get("Pod", "stray", namespace), rs)
        await until(adopted, message="the orphan adopted")


async def test_releases_a_pod_whose_labels_no_longer_match(client, namespace):
    async with running(client, ReplicaSetController(namespace=namespace)):
        rs = await client.create(replicaset("web", namespace, replicas=2))
        pods = await until(lambda: _count(client, namespace, 2, "app=web"))
        leaving = pods[0]
        leaving["metadata"]["labels"] = {"app": "debug"}
        await client.update(leaving)

        async def released():
            p = await client.get("Pod", leaving["metadata"]["name"], namespace)
            return not p["metadata"].get("ownerReferences")
        await until(released, message="the relabelled pod released")
        replacements = await until(lambda: _count(client, namespace, 2, "app=web"), message="a replacement")
        assert all(owned_by(p, rs) for p in replacements)
        assert leaving["metadata"]["name"] not in {p["metadata"]["name"] for p in replacements}
