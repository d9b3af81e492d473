"""The API server's verbs against a real etcd: create, get, list, update, status,
delete, apply, bind — with the errors a user sees."""

from __future__ import annotations

import asyncio

import pytest

from controlplane.client import AlreadyExists, Conflict, FailedPrecondition, Invalid, NotFound



async def node(client, name: str, cpu: str = "4", memory: str = "8Gi", pods: str = "110") -> None:
    """A Node object (no agent behind it) that pods can be bound to."""
    await client.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    current = await client.get("nodes", name)
    current["status"] = {"capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                         "allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}
    await client.update_status(current)

def configmap(name: str, ns: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": dict(data)}


def pod(name: str, ns: str, *, labels: dict | None = None, image: str = "busybox:1.36", **spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": image}], **spec}}


def deployment(name: str, ns: str, replicas: int = 2, image: str = "busybox:1.36") -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "main", "image": image}]}}}}


async def test_create_sets_server_fields_and_get_returns_them(client, namespace):
    created = await client.create(configmap("cfg", namespace, a="1"))
    meta = created["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert int(meta["resourceVersion"]) > 0
    got = await client.get("configmaps", "cfg", namespace)
    assert got["data"] == {"a": "1"}
    assert got["metadata"]["resourceVersion"] == meta["resourceVersion"]
    with pytest.raises(AlreadyExists, match='configmaps "cfg" already exists'):
        await client.create(configmap("cfg", namespace))


async def test_defaults_are_applied_on_create(client, namespace):
    created = await client.create(pod("p", namespace))
    spec = created["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert created["status"]["phase"] == "Pending"


async def test_generate_name(client, namespace):
    obj = configmap("", namespace)
    obj["metadata"] = {"generateName": "cfg-", "namespace": namespace}
    created = await client.create(obj)
    assert created["metadata"]["name"].startswith("cfg-") and len(created["metadata"]["name"]) == 9


async def test_stale_update_is_a_conflict_naming_the_current_version(client, namespace):
    first = await client.create(configmap("cfg", namespace, a="1"))
    first["data"] = {"a": "2"}
    second = await client.update(first)
    first["data"] = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(Conflict) as err:
        await client.update(first)
    assert f"current is {second['metadata']['resourceVersion']}" in err.value.message
    assert (await client.get("cm", "cfg", namespace))["data"] == {"a": "2"}


async def test_generation_bumps_on_spec_change_only(client, namespace):
    d = await client.create(deployment("web", namespace))
    assert d["metadata"]["generation"] == 1
    d["metadata"]["labels"] = {"team": "a"}
    d = await client.update(d)
    assert d["metadata"]["generation"] == 1
    d["spec"]["replicas"] = 3
    d = await client.update(d)
    assert d["metadata"]["generation"] == 2


async def test_status_changes_only_through_update_status(client, namespace):
    d = await client.create(deployment("web", namespace))
    d["status"] = {"replicas": 5}
    d = await client.update(d)
    assert "replicas" not in (d.get("status") or {})
    d["status"] = {"replicas": 5, "observedGeneration": 1}
    d = await client.update_status(d)
    assert d["status"]["replicas"] == 5
    d["spec"]["replicas"] = 9
    d = await client.update_status(d)
    assert d["spec"]["replicas"] == 2  # spec untouched by a status write


async def test_namespace_must_exist(client):
    with pytest.raises(NotFound, match='namespaces "no-such-ns" not found'):
        await client.create(configmap("cfg", "no-such-ns"))


async def test_default_namespace_exists_from_the_start(client):
    ns = await client.get("namespaces", "default")
    assert ns["status"]["phase"] == "Active"


async def test_validation_errors_name_the_field_and_write_nothing(client, namespace):
    bad = pod("p", namespace)
    del bad["spec"]["containers"][0]["image"]
    with pytest.raises(Invalid) as err:
        await client.create(bad)
    assert "spec.containers[0].image: field required" in err.value.message
    bad = pod("p", namespace)
    bad["spec"]["containers"][0]["imagee"] = "x"
    with pytest.raises(Invalid, match=r"spec.containers\[0\].imagee: unknown field"):
        await client.create(bad)
    with pytest.raises(Invalid, match="metadata.name"):
        await client.create(configmap("Bad_Name", namespace))
    with pytest.raises(NotFound):
        await client.get("pods", "p", namespace)


async def test_unknown_kind_lists_known_ones(client, namespace):
    with pytest.raises(Invalid) as err:
        await client.create({"apiVersion": "v1", "kind": "Gizmo", "metadata": {"name": "g", "namespace": namespace}})
    assert 'no kind "Gizmo"' in err.value.message and "apps/v1/Deployment" in err.value.message


async def test_oversize_object_is_refused(client, namespace):
    with pytest.raises(Invalid, match="too large"):
        await client.create(configmap("big", namespace, blob="x" * (1600 * 1024)))
    with pytest.raises(NotFound):
        await client.get("configmaps", "big", namespace)


async def test_list_with_label_and_field_selectors(client, namespace):
    await client.create(pod("a", namespace, labels={"app": "web", "tier": "front"}))
    await client.create(pod("b", namespace, labels={"app": "web", "tier": "back", "canary": "yes"}))
    await client.create(pod("c", namespace, labels={"app": "db"}))
    await node(client, "node-1")
    await client.bind(namespace, "c", "node-1")

    async def names(**kw: str) -> list[str]:
        return sorted(o["metadata"]["name"] for o in (await client.list("pods", namespace, **kw)).items)

    assert await names(label_selector="app=web") == ["a", "b"]
    assert await names(label_selector="app==web,tier!=back") == ["a"]
    assert await names(label_selector="tier in (front,back)") == ["a", "b"]
    assert await names(label_selector="app notin (web)") == ["c"]
    assert await names(label_selector="canary") == ["b"]
    assert await names(label_selector="!canary") == ["a", "c"]
    assert await names(field_selector="metadata.name=b") == ["b"]
    assert await names(field_selector="spec.nodeName=node-1") == ["c"]
    assert await names(field_selector="status.phase=Pending,metadata.name!=a") == ["b", "c"]
    assert await names(field_selector=f"metadata.namespace={namespace}") == ["a", "b", "c"]
    with pytest.raises(Invalid, match="labelSelector"):
        await names(label_selector="app in (")


async def test_list_across_namespaces(client, namespace):
    await client.create(configmap("x", namespace))
    everywhere = await client.list("configmaps")
    assert any(o["metadata"]["namespace"] == namespace for o in everywhere.items)


async def test_delete_and_not_found(client, namespace):
    await client.create(configmap("cfg", namespace))
    obj, finished = await client.delete("configmaps", "cfg", namespace)
    assert finished and obj["metadata"]["name"] == "cfg"
    with pytest.raises(NotFound, match='configmaps "cfg" not found'):
        await client.delete("configmaps", "cfg", namespace)


async def test_delete_with_stale_precondition_fails(client, namespace):
    created = await client.create(configmap("cfg", namespace))
    created["data"] = {"b": "2"}
    await client.update(created)
    with pytest.raises(Conflict):
        await client.delete("configmaps", "cfg", namespace, resource_version=created["metadata"]["resourceVersion"])


async def test_unscheduled_pod_is_deleted_at_once(client, namespace):
    await client.create(pod("p", namespace))
    _, finished = await client.delete("pods", "p", namespace)
    assert finished
    with pytest.raises(NotFound):
        await client.get("pods", "p", namespace)


async def test_bound_pod_is_deleted_gracefully_and_finished_by_its_agent(client, namespace):
    await client.create(pod("p", namespace, terminationGracePeriodSeconds=20))
    await node(client, "node-1")
    await client.bind(namespace, "p", "node-1")
    obj, finished = await client.delete("pods", "p", namespace)
    assert not finished
    marked = await client.get("pods", "p", namespace)
    assert marked["metadata"]["deletionTimestamp"] and marked["metadata"]["deletionGracePeriodSeconds"] == 20
    # The agent, once the containers have stopped, finishes with grace period 0.
    _, finished = await client.delete("pods", "p", namespace, grace_seconds=0)
    assert finished
    with pytest.raises(NotFound):
        await client.get("pods", "p", namespace)


async def test_finalizers_hold_deletion_until_removed(client, namespace):
    obj = configmap("cfg", namespace)
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    await client.create(obj)
    _, finished = await client.delete("configmaps", "cfg", namespace)
    assert not finished
    held = await client.get("configmaps", "cfg", namespace)
    assert held["metadata"]["deletionTimestamp"]
    held["metadata"]["finalizers"] = []
    await client.update(held)
    with pytest.raises(NotFound):
        await client.get("configmaps", "cfg", namespace)


async def test_foreground_and_orphan_deletion_add_finalizers(client, namespace):
    await client.create(deployment("fg", namespace))
    await client.delete("deployments", "fg", namespace, propagation="Foreground")
    assert "foregroundDeletion" in (await client.get("deploy", "fg", namespace))["metadata"]["finalizers"]
    await client.create(deployment("or", namespace))
    await client.delete("deployments", "or", namespace, propagation="Orphan")
    assert "orphan" in (await client.get("deploy", "or", namespace))["metadata"]["finalizers"]
    with pytest.raises(Invalid, match="propagationPolicy"):
        await client.delete("deployments", "or", namespace, propagation="Sideways")


async def test_bind_sets_node_once(client, namespace):
    await client.create(pod("p", namespace))
    await node(client, "node-1")
    await node(client, "node-2")
    bound = await client.bind(namespace, "p", "node-1")
    assert bound["spec"]["nodeName"] == "node-1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in bound["status"]["conditions"])
    with pytest.raises(Conflict, match="already assigned"):
        await client.bind(namespace, "p", "node-2")


async def test_bind_refuses_a_node_that_is_full_or_missing(client, namespace):
    await node(client, "tiny", cpu="1", memory="1Gi")
    big = pod("big", namespace)
    big["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "600m", "memory": "100Mi"}}
    await client.create(big)
    await client.bind(namespace, "big", "tiny")
    second = pod("second", namespace)
    second["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "600m"}}
    await client.create(second)
    with pytest.raises(FailedPrecondition, match="Insufficient cpu"):
        await client.bind(namespace, "second", "tiny")
    with pytest.raises(FailedPrecondition, match='nodes "nowhere" not found'):
        await client.bind(namespace, "second", "nowhere")
    # Once the first pod is gone, its share is released.
    await client.delete("pods", "big", namespace, grace_seconds=0)
    await asyncio.sleep(0.2)  # let the pods watch cache see the delete
    assert (await client.bind(namespace, "second", "tiny"))["spec"]["nodeName"] == "tiny"


async def test_pod_spec_is_mostly_immutable(client, namespace):
    p = await client.create(pod("p", namespace))
    p["spec"]["containers"][0]["image"] = "busybox:1.37"
    p = await client.update(p)
    assert p["spec"]["containers"][0]["image"] == "busybox:1.37"
    p["spec"]["restartPolicy"] = "Never"
    with pytest.raises(Invalid, match="pod updates may not change fields"):
        await client.update(p)


async def test_apply_created_configured_unchanged(client, namespace):
    d = deployment("web", namespace)
    _, result = await client.apply(d)
    assert result == "created"
    _, result = await client.apply(d)
    assert result == "unchanged"
    d["spec"]["replicas"] = 4
    applied, result = await client.apply(d)
    assert result == "configured" and applied["spec"]["replicas"] == 4
    assert applied["metadata"]["generation"] == 2


async def test_apply_keeps_fields_it_does_not_own(client, namespace):
    p = pod("p", namespace, labels={"app": "x"})
    await client.apply(p)
    await node(client, "node-1")
    await client.bind(namespace, "p", "node-1")
    p["metadata"]["labels"] = {"app": "x", "extra": "y"}
    applied, result = await client.apply(p)
    assert result == "configured"
    assert applied["spec"]["nodeName"] == "node-1"  # set by the scheduler, kept
    assert applied["metadata"]["labels"] == {"app": "x", "extra": "y"}
    del p["metadata"]["labels"]["extra"]
    applied, _ = await client.apply(p)
    assert applied["metadata"]["labels"] == {"app": "x"}  # removed from the manifest, removed live


async def test_dry_run_writes_nothing(client, namespace):
    obj, result = await client.apply(configmap("cfg", namespace), dry_run=True)
    assert result == "created"
    await client.create(configmap("cfg2", namespace), dry_run=True)
    with pytest.raises(NotFound):
        await client.get("configmaps", "cfg", namespace)
    with pytest.raises(NotFound):
        await client.get("configmaps", "cfg2", namespace)


async def test_terminating_namespace_refuses_new_objects(client):
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
    await client.create(configmap("keep", "doomed"))
    _, finished = await client.delete("namespaces", "doomed")
    ns = await client.get("namespaces", "doomed")
    if not finished:
        assert ns["status"]["phase"] == "Terminating"
        with pytest.raises(FailedPrecondition, match="being terminated"):
            await client.create(configmap("new", "doomed"))


async def test_discovery_and_version(client):
    resources = {r["plural"]: r for r in await client.discovery()}
    assert resources["deployments"]["group"] == "apps" and "deploy" in resources["deployments"]["shortNames"]
    assert resources["nodes"]["namespaced"] is False
    version = await client.version()
    assert version["version"] and version["etcdVersion"].startswith("3.")
