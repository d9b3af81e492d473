"""The PersistentVolume controller against a real API server: a user's hostPath volume bound
statically, Retain → Released, Delete of a user's volume → Failed, the default class given to a
claim without one, a WaitForFirstConsumer claim provisioned on its pod's node (path from the
node's annotation, pinned there) and deleted with its claim, and the update rules of claims."""

from __future__ import annotations

import uuid
from typing import Any, AsyncIterator, Iterator

import pytest

from controlplane.client import Client, Invalid
from controlplane.controllers.persistentvolume import PersistentVolumeController
from controllers_support import running
from hollow_harness import private_control_plane, until


@pytest.fixture(scope="module")
def api(etcd, tmp_path_factory) -> Iterator[Any]:
    cp = private_control_plane(tmp_path_factory.mktemp("pv"), etcd.endpoint)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
async def c(api) -> AsyncIterator[Client]:
    async with Client(api.address, credentials=api.credentials, timeout=10) as client:
        yield client


@pytest.fixture
async def ns(c) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    await c.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def claim(name: str, ns: str, *, cls: str | None = None, size: str = "1Gi") -> dict:
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": ns},
            "spec": spec}


def host_volume(name: str, *, size: str = "2Gi", policy: str = "Retain") -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": policy, "hostPath": {"path": f"/srv/{name}"}}}


async def phase(c: Client, kind: str, name: str, ns: str = "") -> str:
    return ((await c.get(kind, name, ns)).get("status") or {}).get("phase", "")


async def test_static_binding_retain_and_delete_of_a_users_volume(c, ns):
    small, big = f"{ns}-small", f"{ns}-big"
    await c.create(host_volume(big, size="10Gi", policy="Delete"))
    await c.create(host_volume(small, size="2Gi"))
    async with running(c, PersistentVolumeController()):
        await c.create(claim("data", ns, cls=""))
        await until(lambda: phase(c, "PersistentVolumeClaim", "data", ns), timeout=20, what="claim phase")
        bound = await until(lambda: _bound(c, "data", ns), timeout=20, what="data Bound")
        assert bound["spec"]["volumeName"] == small                 # the smallest that fits
        assert bound["status"]["capacity"] == {"storage": "2Gi"}
        volume = await c.get("PersistentVolume", small)
        assert volume["spec"]["claimRef"]["name"] == "data" and volume["status"]["phase"] == "Bound"
        # Spec immutable once bound, but the size may grow.
        grown = claim("data", ns, cls="", size="2Gi")
        grown["spec"]["volumeName"] = small
        await c.apply(grown)
        with pytest.raises(Invalid, match=r"spec.resources.requests.storage: Forbidden: field can not be less "
                                          r"than previous value"):
            await c.apply({**grown, "spec": {**grown["spec"], "resources": {"requests": {"storage": "1Gi"}}}})
        with pytest.raises(Invalid, match=r"spec: Forbidden: spec is immutable after creation"):
            await c.apply({**grown, "spec": {**grown["spec"], "accessModes": ["ReadWriteMany"]}})
        # Retain: the volume stays, Released.
        await c.delete("PersistentVolumeClaim", "data", ns)
        await until(lambda: _phase_is(c, small, "Released"), timeout=20, what="Released")
        # A user's volume with Delete: Skiff cannot delete a user's directory: Failed, with the reason.
        await c.create(claim("big", ns, cls="", size="5Gi"))
        await until(lambda: _bound(c, "big", ns), timeout=20, what="big Bound")
        await c.delete("PersistentVolumeClaim", "big", ns)
        await until(lambda: _phase_is(c, big, "Failed"), timeout=20, what="Failed")
        assert "no deletable volume plugin" in (await c.get("PersistentVolume", big))["status"]["message"]
    for name in (small, big):
        await c.delete("PersistentVolume", name)


async def test_local_path_provisioning_on_the_consumers_node_and_delete(c, ns):
    node = f"{ns}-node"
    await c.create({"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node},
                                 "annotations": {"skiff.io/local-path-root": "/var/lib/test/lp"}}})
    async with running(c, PersistentVolumeController()):
        await c.create(claim("www", ns))                           # no class: the default, local-path
        await until(lambda: _class_is(c, "www", ns, "local-path"), timeout=20, what="default class given")
        await until(lambda: _event(c, ns, "WaitForFirstConsumer"), timeout=20, what="waiting for a consumer")
        assert await phase(c, "PersistentVolumeClaim", "www", ns) == "Pending"
        await c.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user", "namespace": ns},
                        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
                                 "volumes": [{"name": "w", "persistentVolumeClaim": {"claimName": "www"}}]}})
        bound = await until(lambda: _bound(c, "www", ns), timeout=20, what="www Bound")
        volume = await c.get("PersistentVolume", bound["spec"]["volumeName"])
        uid = bound["metadata"]["uid"]
        assert volume["metadata"]["name"] == f"pvc-{uid}"
        assert volume["spec"]["hostPath"] == {"path": f"/var/lib/test/lp/pvc-{uid}_{ns}_www",
                                              "type": "DirectoryOrCreate"}
        assert volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"] == [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]
        assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
        # Unknown class: Pending, and an event says why.
        await c.create(claim("lost", ns, cls="nope"))
        await until(lambda: _event(c, ns, "ProvisioningFailed", 'storageclass.storage.k8s.io "nope" not found'),
                    timeout=20, what="ProvisioningFailed")
        # Delete reclaim: the claim goes, the provisioned volume goes.
        await c.delete("Pod", "user", ns, grace_seconds=0)
        await c.delete("PersistentVolumeClaim", "www", ns)
        await until(lambda: _gone(c, volume["metadata"]["name"]), timeout=20, what="volume deleted")
    await c.delete("Node", node)


async def _bound(c: Client, name: str, ns: str) -> dict | None:
    obj = await c.get("PersistentVolumeClaim", name, ns)
    return obj if (obj.get("status") or {}).get("phase") == "Bound" else None


async def _phase_is(c: Client, name: str, want: str) -> bool:
    return await phase(c, "PersistentVolume", name) == want


async def _class_is(c: Client, name: str, ns: str, want: str) -> bool:
    return (await c.get("PersistentVolumeClaim", name, ns))["spec"].get("storageClassName") == want


async def _event(c: Client, ns: str, reason: str, text: str = "") -> bool:
    return any(e.get("reason") == reason and text in e.get("message", "") for e in (await c.list("Event", ns)).items)


async def _gone(c: Client, name: str) -> bool:
    return name not in {v["metadata"]["name"] for v in (await c.list("PersistentVolume")).items}
