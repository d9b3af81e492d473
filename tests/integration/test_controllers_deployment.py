"""The Deployment controller (with the ReplicaSet controller) against a real API server.

The headline test: during a rolling update of 4 replicas with maxSurge=1 and
maxUnavailable=1, a watcher polls the API server the whole time and never
sees fewer than 3 ready pods. Pods become ready through FakeKubelet, a short
while after they are created.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

from controllers_support import FakeKubelet, deployment, is_ready, modify, pods_of, running, set_replicas, until

from controlplane.controllers.deployment import DeploymentController
from controlplane.controllers.replicaset import ReplicaSetController
from controlplane.controllers.revisions import POD_TEMPLATE_HASH, REVISION, template_hash

ROLLING_1_1 = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}


@contextlib.asynccontextmanager
async def cluster(client, namespace, *, delay: float = 0.2) -> AsyncIterator[FakeKubelet]:
    async with running(client, ReplicaSetController(namespace=namespace),
                       DeploymentController(namespace=namespace)), \
            FakeKubelet(client, namespace, delay=delay) as kubelet:
        yield kubelet


def set_image(image: str):
    def change(obj: dict) -> None:
        obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return change


async def replicasets(client, namespace) -> list[dict]:
    return (await client.list("ReplicaSet", namespace)).items


async def rolled_out(client, namespace, name="web") -> dict | None:
    """The Deployment once its rollout is complete (kubectl rollout status' test), else None."""
    d = await client.get("Deployment", name, namespace)
    s, want = d.get("status") or {}, d["spec"]["replicas"]
    done = ((s.get("observedGeneration") or 0) >= d["metadata"]["generation"] and s.get("updatedReplicas") == want
            and s.get("replicas") == want and s.get("availableReplicas") == want)
    return d if done else None


def image_of(obj: dict) -> str:
    """The image of a pod, or of a Deployment's / ReplicaSet's template."""
    spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]
    return spec["containers"][0]["image"]


async def test_creates_a_replicaset_named_by_template_hash(client, namespace):
    async with cluster(client, namespace):
        d = await client.create(deployment("web", namespace, replicas=2))
        await until(lambda: rolled_out(client, namespace), message="rollout complete")
        rs, = await replicasets(client, namespace)
        pod_hash = template_hash(d["spec"]["template"])
        assert rs["metadata"]["name"] == f"web-{pod_hash}"
        assert rs["metadata"]["labels"][POD_TEMPLATE_HASH] == pod_hash
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", POD_TEMPLATE_HASH: pod_hash}
        assert rs["metadata"]["annotations"][REVISION] == "1"
        assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
        pods = await pods_of(client, namespace)
        assert len(pods) == 2 and all(p["metadata"]["labels"][POD_TEMPLATE_HASH] == pod_hash for p in pods)
        d = await client.get("Deployment", "web", namespace)
        assert d["metadata"]["annotations"][REVISION] == "1"
        conditions = {c["type"]: c for c in d["status"]["conditions"]}
        assert conditions["Available"]["status"] == "True"
        assert conditions["Progressing"]["reason"] == "NewReplicaSetAvailable"


async def test_rolling_update_never_drops_below_replicas_minus_max_unavailable(client, namespace):
    async with cluster(client, namespace, delay=0.3):
        await client.create(deployment("web", namespace, replicas=4, strategy=ROLLING_1_1))
        await until(lambda: rolled_out(client, namespace), message="first rollout")
        samples: list[tuple[int, int]] = []   # (ready pods, all pods) as the API server has them
        stop = asyncio.Event()

        async def watch_ready() -> None:
            while not stop.is_set():
                pods = [p for p in await pods_of(client, namespace) if not p["metadata"].get("deletionTimestamp")]
                samples.append((sum(1 for p in pods if is_ready(p)), len(pods)))
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch_ready())
        try:
            await modify(client, "Deployment", "web", namespace, set_image("busybox:2"))

            async def done():
                d = await rolled_out(client, namespace)
                pods = await pods_of(client, namespace)
                return d if d and len(pods) == 4 and all(image_of(p) == "busybox:2" for p in pods) else None
            await until(done, timeout=20, message="second rollout")
        finally:
            stop.set()
            await watcher
        assert len(samples) > 20
        assert min(ready for ready, _ in samples) >= 3, samples
        assert max(total for _, total in samples) <= 5, samples   # never above replicas + maxSurge
        old, new = sorted(await replicasets(client, namespace), key=lambda rs: rs["metadata"]["annotations"][REVISION])
        assert old["spec"]["replicas"] == 0 and new["spec"]["replicas"] == 4

        async def scaled_events():
            events = (await client.list("Event", namespace)).items
            return [e["message"] for e in events if e["reason"] == "ScalingReplicaSet"]
        messages = await until(scaled_events)
        assert any(m.startswith(f"Scaled up replica set {new['metadata']['name']} to ") for m in messages)


async def test_recreate_removes_every_old_pod_before_creating_new_ones(client, namespace):
    async with cluster(client, namespace):
        await client.create(deployment("web", namespace, replicas=3, strategy={"type": "Recreate"}))
        await until(lambda: rolled_out(client, namespace), message="first rollout")
        mixed: list[set[str]] = []
        stop = asyncio.Event()

        async def watch_images() -> None:
            while not stop.is_set():
                images = {image_of(p) for p in await pods_of(client, namespace)}
                if len(images) > 1:
                    mixed.append(images)
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch_images())
        try:
            await modify(client, "Deployment", "web", namespace, set_image("busybox:2"))

            async def done():
                d = await rolled_out(client, namespace)
                pods = await pods_of(client, namespace)
                return d if d and len(pods) == 3 and all(image_of(p) == "busybox:2" for p in pods) else None
            await until(done, timeout=15, message="recreate rollout")
        finally:
            stop.set()
            await watcher
        assert not mixed, "old and new pods ran at the same time"


async def test_revision_history_limit_prunes_old_replicasets(client, namespace):
    async with cluster(client, namespace, delay=0.05):
        await client.create(deployment("web", namespace, replicas=1, history=1))
        for image in ("busybox:2", "busybox:3", "busybox:4"):
            await until(lambda: rolled_out(client, namespace), message="rollout")
            await modify(client, "Deployment", "web", namespace, set_image(image))
        await until(lambda: rolled_out(client, namespace), message="last rollout")

        async def pruned():
            items = await replicasets(client, namespace)
            return items if len(items) == 2 else None
        items = await until(pruned, message="one old ReplicaSet kept")
        assert sorted(int(rs["metadata"]["annotations"][REVISION]) for rs in items) == [3, 4]


async def test_scaling_in_mid_rollout_keeps_the_budget(client, namespace):
    async with cluster(client, namespace, delay=0.4):
        await client.create(deployment("web", namespace, replicas=4, strategy=ROLLING_1_1))
        await until(lambda: rolled_out(client, namespace), message="first rollout")
        await modify(client, "Deployment", "web", namespace, set_image("busybox:2"))

        async def two_active():
            items = [rs for rs in await replicasets(client, namespace) if rs["spec"]["replicas"] > 0]
            return len(items) == 2
        await until(two_active, message="rollout under way")
        await modify(client, "Deployment", "web", namespace, set_replicas(6))

        async def done():
            d = await rolled_out(client, namespace)
            pods = [p for p in await pods_of(client, namespace) if not p["metadata"].get("deletionTimestamp")]
            return d if d and len(pods) == 6 and all(image_of(p) == "busybox:2" for p in pods) else None
        await until(done, timeout=20, message="rollout at the new size")


async def test_paused_deployment_scales_but_does_not_roll_out(client, namespace):
    async with cluster(client, namespace, delay=0.05):
        await client.create(deployment("web", namespace, replicas=2))
        await until(lambda: rolled_out(client, namespace), message="first rollout")

        def pause_and_change(obj: dict[str, Any]) -> None:
            obj["spec"]["paused"] = True
            obj["spec"]["replicas"] = 3
            set_image("busybox:2")(obj)
        await modify(client, "Deployment", "web", namespace, pause_and_change)

        async def scaled():
            pods = await pods_of(client, namespace)
            d = await client.get("Deployment", "web", namespace)
            observed = (d.get("status") or {}).get("observedGeneration") == d["metadata"]["generation"]
            return observed and len(pods) == 3
        await until(scaled, message="scaled while paused")
        assert len(await replicasets(client, namespace)) == 1
        assert all(image_of(p) == "busybox:1" for p in await pods_of(client, namespace))
        d = await client.get("Deployment", "web", namespace)
        progressing = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
        assert (progressing["status"], progressing["reason"]) == ("Unknown", "DeploymentPaused")

        def resume(obj: dict[str, Any]) -> None:
            obj["spec"].pop("paused")
        await modify(client, "Deployment", "web", namespace, resume)

        async def done():
            d = await rolled_out(client, namespace)
            pods = await pods_of(client, namespace)
            return d if d and len(pods) == 3 and all(image_of(p) == "busybox:2" for p in pods) else None
        await until(done, timeout=15, message="rolled out after resume")


async def test_min_ready_seconds_delays_availability(client, namespace):
    async with cluster(client, namespace, delay=0.05):
        d = deployment("web", namespace, replicas=1)
        d["spec"]["minReadySeconds"] = 1
        await client.create(d)

        async def ready_not_available():
            s = (await client.get("Deployment", "web", namespace)).get("status") or {}
            return s.get("readyReplicas") == 1 and not s.get("availableReplicas")
        await until(ready_not_available, message="ready, not yet available")
        await until(lambda: rolled_out(client, namespace), timeout=5, message="available after minReadySeconds")

        async def rs_available():
            rs, = await replicasets(client, namespace)
            return rs["spec"]["minReadySeconds"] == 1 and (rs.get("status") or {}).get("availableReplicas") == 1
        await until(rs_available, timeout=5, message="the ReplicaSet counts it available too")
