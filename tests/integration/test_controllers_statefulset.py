"""The StatefulSet controller against a real API server (the agents played by FakeKubelet):
ordered creation with claims per ordinal, stable identity after a pod delete, scale-down from
the top, a partitioned rolling update with ControllerRevisions, and the immutable selector."""

from __future__ import annotations

import uuid
from typing import Any, AsyncIterator, Iterator

import pytest

from controlplane.client import Client, Invalid
from controlplane.controllers.statefulset import StatefulSetController
from controllers_support import FakeKubelet, running
from hollow_harness import modify, private_control_plane, until


@pytest.fixture(scope="module")
def api(etcd, tmp_path_factory) -> Iterator[Any]:
    cp = private_control_plane(tmp_path_factory.mktemp("sts"), etcd.endpoint)
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


def web(ns: str, *, replicas: int = 2, image: str = "busybox:1") -> dict:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": replicas, "serviceName": "nginx", "selector": {"matchLabels": {"app": "nginx"}},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [{"name": "nginx", "image": image,
                                                           "volumeMounts": [{"name": "www", "mountPath": "/www"}]}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "www"},
                                               "spec": {"accessModes": ["ReadWriteOnce"],
                                                        "resources": {"requests": {"storage": "1Gi"}}}}]}}


async def pods(c: Client, ns: str) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in (await c.list("Pod", ns)).items
            if not p["metadata"].get("deletionTimestamp")}


async def test_ordered_identity_scale_and_partitioned_update(c, ns):
    held = {"web-1"}
    async with running(c, StatefulSetController()), \
            FakeKubelet(c, ns, delay=0.1, hold=lambda p: p["metadata"]["name"] in held):
        await c.apply(web(ns))
        await until(lambda: _names(c, ns, {"web-0", "web-1"}), what="web-0 then web-1")
        # web-2 must not exist while web-1 is held unready (OrderedReady)
        await modify(c, "StatefulSet", "web", ns, lambda o: o["spec"].update(replicas=3))
        await until(lambda: _status(c, ns, replicas=2, readyReplicas=1), what="status 2 pods, 1 ready")
        assert set(await pods(c, ns)) == {"web-0", "web-1"}
        held.clear()
        await until(lambda: _status(c, ns, replicas=3, readyReplicas=3), what="3 ready")
        claims = {x["metadata"]["name"] for x in (await c.list("PersistentVolumeClaim", ns)).items}
        assert claims == {"www-web-0", "www-web-1", "www-web-2"}
        p0 = (await pods(c, ns))["web-0"]
        assert (p0["spec"]["hostname"], p0["spec"]["subdomain"]) == ("web-0", "nginx")
        assert p0["spec"]["volumes"] == [{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-0"}}]
        # A deleted pod comes back with its name and claim.
        await c.delete("Pod", "web-0", ns)
        await until(lambda: _new_uid(c, ns, "web-0", p0["metadata"]["uid"]), what="a new web-0")
        # Scale down: web-2 goes, its claim stays.
        await modify(c, "StatefulSet", "web", ns, lambda o: o["spec"].update(replicas=2))
        await until(lambda: _status(c, ns, replicas=2, readyReplicas=2), what="scaled to 2")
        assert "www-web-2" in {x["metadata"]["name"] for x in (await c.list("PersistentVolumeClaim", ns)).items}
        # A partitioned update: only web-1 gets the new image.
        def update(o: dict) -> None:
            o["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
            o["spec"]["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}
        await modify(c, "StatefulSet", "web", ns, update)
        await until(lambda: _images(c, ns, {"web-0": "busybox:1", "web-1": "busybox:2"}), what="web-1 updated")
        await until(lambda: _status(c, ns, updatedReplicas=1, readyReplicas=2), what="1 updated")
        revisions = sorted((r["revision"], r["metadata"]["name"]) for r in (await c.list("ControllerRevision", ns)).items)
        sts = await c.get("StatefulSet", "web", ns)
        assert [n for _, n in revisions] == [sts["status"]["currentRevision"], sts["status"]["updateRevision"]]
        # The selector is immutable.
        changed = web(ns)
        changed["spec"]["selector"] = {"matchLabels": {"app": "nginx", "v": "2"}}
        changed["spec"]["template"]["metadata"]["labels"]["v"] = "2"
        with pytest.raises(Invalid, match=r"spec.selector: Invalid value: .*field is immutable"):
            await c.apply(changed)


async def _names(c: Client, ns: str, want: set[str]) -> bool:
    return set(await pods(c, ns)) == want


async def _status(c: Client, ns: str, **want: int) -> bool:
    status = (await c.get("StatefulSet", "web", ns)).get("status") or {}
    return all(status.get(k) == v for k, v in want.items())


async def _new_uid(c: Client, ns: str, name: str, old: str) -> bool:
    p = (await pods(c, ns)).get(name)
    return p is not None and p["metadata"]["uid"] != old


async def _images(c: Client, ns: str, want: dict[str, str]) -> bool:
    return {n: p["spec"]["containers"][0]["image"] for n, p in (await pods(c, ns)).items()} == want
