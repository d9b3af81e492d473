"""Volume binding: which volume fits a claim (api/volumebinding.py), the scheduler's VolumeBinding
plugin with its exact reasons, and the update rules of claims and StatefulSets."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import ValidationFailed
from api.volumebinding import best_volume, default_class, pinned_node_affinity, volume_allows_node
from controlplane.apiserver.stateful_strategy import PersistentVolumeClaimStrategy, StatefulSetStrategy
from controlplane.scheduler.cache import Cache
from controlplane.scheduler.framework import UNSCHEDULABLE, UNSCHEDULABLE_AND_UNRESOLVABLE, CycleState, Framework
from controlplane.scheduler.nodeinfo import PodInfo
from controlplane.scheduler.plugins.volume_binding import CONFLICT, NO_VOLUME, UNBOUND_IMMEDIATE, VolumeBinding

HOST = "kubernetes.io/hostname"


def claim(name: str, *, size="1Gi", cls: str | None = "local-path", volume: str | None = None,
          modes=("ReadWriteOnce",), uid: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": list(modes), "resources": {"requests": {"storage": size}},
                            "volumeMode": "Filesystem"}
    if cls is not None:
        spec["storageClassName"] = cls
    status = {}
    if volume:
        spec["volumeName"] = volume
        status = {"phase": "Bound"}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default", "uid": uid or f"uid-{name}"},
            "spec": spec, "status": status}


def volume(name: str, *, size="1Gi", cls: str | None = None, node: str | None = None, claim_ref=None,
           modes=("ReadWriteOnce",), phase="Available") -> dict[str, Any]:
    spec: dict[str, Any] = {"capacity": {"storage": size}, "accessModes": list(modes), "hostPath": {"path": "/x"}}
    if cls:
        spec["storageClassName"] = cls
    if node:
        spec["nodeAffinity"] = pinned_node_affinity(node)
    if claim_ref:
        spec["claimRef"] = claim_ref
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec,
            "status": {"phase": phase}}


def storage_class(name: str, *, mode="WaitForFirstConsumer", provisioner="rancher.io/local-path",
                  default=False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": meta,
            "provisioner": provisioner, "volumeBindingMode": mode}


def node(name: str) -> dict[str, Any]:
    alloc = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    return {"metadata": {"name": name, "labels": {HOST: name}}, "spec": {},
            "status": {"allocatable": alloc, "capacity": alloc}}


def pod_using(*claims: str) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                                 for i, c in enumerate(claims)]}}


# ---- matching -------------------------------------------------------------------------

def test_smallest_fitting_volume_wins_and_class_modes_size_must_match():
    c = claim("c", cls="")
    vols = [volume("big", size="10Gi"), volume("small", size="2Gi"), volume("tiny", size="500Mi"),
            volume("classy", size="1Gi", cls="fast"), volume("rox", modes=("ReadOnlyMany",)),
            volume("taken", claim_ref={"namespace": "default", "name": "other", "uid": "u"})]
    assert best_volume(c, vols)["metadata"]["name"] == "small"
    assert best_volume(claim("c", cls="fast"), vols)["metadata"]["name"] == "classy"
    assert best_volume(claim("c", cls="", size="20Gi"), vols) is None


def test_node_affinity_limits_the_volumes_a_node_can_use():
    v = volume("v", node="n1")
    assert volume_allows_node(v, {HOST: "n1"}, "n1") and not volume_allows_node(v, {HOST: "n2"}, "n2")
    assert best_volume(claim("c", cls=""), [v], node=({HOST: "n2"}, "n2")) is None


def test_default_class_is_the_annotated_one():
    assert default_class([storage_class("a"), storage_class("local-path", default=True)]) == "local-path"
    assert default_class([storage_class("a")]) is None


# ---- the plugin ---------------------------------------------------------------------------

def run(cache: Cache, pod: dict, nodes: list[str]) -> dict[str, Any]:
    framework = Framework(filters=[VolumeBinding()], scores=[])
    state = CycleState(cache)
    info = PodInfo(pod)
    status = framework.run_pre_filter(state, info)
    if status is not None:
        return {"*": (status.code, status.reasons)}
    out = {}
    for name in nodes:
        verdict = framework.run_filters(framework.active_filters(state), state, info, cache.nodes[name])
        out[name] = None if verdict is None else (verdict.code, verdict.reasons)
    return out


def cache_with(*objs: dict) -> Cache:
    cache = Cache()
    for name in ("n1", "n2"):
        cache.set_node(node(name))
    plural = {"PersistentVolumeClaim": "persistentvolumeclaims", "PersistentVolume": "persistentvolumes",
              "StorageClass": "storageclasses"}
    for obj in objs:
        cache.volume_facts.set(plural[obj["kind"]], obj)
    return cache


@pytest.mark.parametrize("objs, claims, expected", [
    # no claims: skipped, every node fits
    ((), (), {"n1": None, "n2": None}),
    # a missing claim, or a missing class: nowhere, ever (until it appears)
    ((), ("nope",), {"*": (UNSCHEDULABLE_AND_UNRESOLVABLE, ('persistentvolumeclaim "nope" not found',))}),
    ((claim("c", cls="gold"),), ("c",),
     {"*": (UNSCHEDULABLE_AND_UNRESOLVABLE, ('storageclass.storage.k8s.io "gold" not found',))}),
    # an unbound Immediate claim: wait for the binder
    ((claim("c", cls="now"), storage_class("now", mode="Immediate")), ("c",),
     {"*": (UNSCHEDULABLE, (UNBOUND_IMMEDIATE,))}),
    ((claim("c", cls=""),), ("c",), {"*": (UNSCHEDULABLE, (UNBOUND_IMMEDIATE,))}),
    # WaitForFirstConsumer with the local-path provisioner: any node
    ((claim("c"), storage_class("local-path")), ("c",), {"n1": None, "n2": None}),
    # bound to a volume pinned to n1: only n1
    ((claim("c", volume="v"), volume("v", node="n1", cls="local-path"), storage_class("local-path")), ("c",),
     {"n1": None, "n2": (UNSCHEDULABLE_AND_UNRESOLVABLE, (CONFLICT,))}),
    # WaitForFirstConsumer without a provisioner: where a static volume is
    ((claim("c", cls="local"), storage_class("local", provisioner="kubernetes.io/no-provisioner"),
      volume("v", cls="local", node="n2")), ("c",),
     {"n1": (UNSCHEDULABLE, (NO_VOLUME,)), "n2": None}),
])
def test_volume_binding_plugin(objs, claims, expected):
    assert run(cache_with(*objs), pod_using(*claims), ["n1", "n2"]) == expected


# ---- update rules -------------------------------------------------------------------------

def test_claim_spec_is_immutable_except_growth_and_binder_fields():
    rules = PersistentVolumeClaimStrategy()
    old = claim("c", cls=None)
    rules.validate_update(old, claim("c", cls="local-path", volume="v"))        # the binder fills these in
    bound = claim("c", volume="v")
    rules.validate_update(bound, claim("c", volume="v", size="2Gi"))             # growth
    with pytest.raises(ValidationFailed, match=r"spec.resources.requests.storage: Forbidden: field can not be "
                                               r"less than previous value"):
        rules.validate_update(bound, claim("c", volume="v", size="500Mi"))
    with pytest.raises(ValidationFailed, match=r"^spec: Forbidden: spec is immutable after creation"):
        rules.validate_update(bound, claim("c", volume="v", modes=("ReadWriteMany",)))


def test_statefulset_selector_is_immutable():
    rules = StatefulSetStrategy()
    old = {"metadata": {"name": "web"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "a"}},
                                                 "serviceName": "nginx", "template": {}}}
    rules.validate_update(old, {**old, "spec": {**old["spec"], "replicas": 5, "template": {"x": 1}}})
    with pytest.raises(ValidationFailed, match=r"spec.selector: Invalid value: .*field is immutable"):
        rules.validate_update(old, {**old, "spec": {**old["spec"], "selector": {"matchLabels": {"app": "b"}}}})
    with pytest.raises(ValidationFailed, match=r"spec: Forbidden: updates to statefulset spec for fields other"):
        rules.validate_update(old, {**old, "spec": {**old["spec"], "serviceName": "other"}})
