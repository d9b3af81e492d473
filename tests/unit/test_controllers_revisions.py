"""Template hashes, revisions and the pod deletion order (revisions.py, podcontrol.py)."""

from __future__ import annotations

import pytest

from controlplane.controllers.podcontrol import deletion_rank, pod_from_template, pods_to_delete
from controlplane.controllers.revisions import (POD_TEMPLATE_HASH, REVISION, REVISION_HISTORY, equal_ignore_hash,
                                                find_new_replicaset, fnv1a_32, max_revision, new_replicaset,
                                                set_new_revision, template_hash)

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}


def test_fnv1a_matches_the_reference_values():
    assert fnv1a_32(b"") == 0x811C9DC5
    assert fnv1a_32(b"a") == 0xE40C292C
    assert fnv1a_32(b"foobar") == 0xBF9CF968


def test_template_hash_is_stable_safe_and_changes_with_the_template_or_collisions():
    h = template_hash(TEMPLATE)
    assert h == template_hash({"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]})   # key order
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    other = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}
    assert template_hash(other) != h
    assert template_hash(TEMPLATE, 1) != h


def rs(name, template, revision=None, created="2024-01-01T00:00:00Z"):
    meta = {"name": name, "creationTimestamp": created}
    if revision is not None:
        meta["annotations"] = {REVISION: str(revision)}
    return {"metadata": meta, "spec": {"template": template}}


def test_new_replicaset_is_found_ignoring_the_hash_label():
    hashed = {**TEMPLATE, "metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH: "abc"}}}
    assert equal_ignore_hash(hashed, TEMPLATE)
    d = {"spec": {"template": TEMPLATE}}
    other = {**TEMPLATE, "spec": {"containers": [{"name": "c", "image": "nginx:0"}]}}
    candidates = [rs("old", other, 1), rs("new", hashed, 2, "2024-01-02T00:00:00Z")]
    assert find_new_replicaset(d, candidates)["metadata"]["name"] == "new"
    assert find_new_replicaset({"spec": {"template": {**TEMPLATE, "spec": {}}}}, candidates) is None
    assert max_revision(candidates) == 2


def test_new_replicaset_carries_hash_revision_owner_and_annotations():
    d = {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": "ns", "uid": "u1",
                      "annotations": {"kubernetes.io/change-cause": "v2", REVISION: "7",
                                      "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}}
    out = new_replicaset(d, pod_hash="h1", revision=2, replicas=1, max_surge=1)
    assert out["metadata"]["name"] == "web-h1"
    assert out["spec"]["selector"]["matchLabels"] == {"app": "web", POD_TEMPLATE_HASH: "h1"}
    assert out["spec"]["template"]["metadata"]["labels"] == {"app": "web", POD_TEMPLATE_HASH: "h1"}
    assert out["metadata"]["annotations"] == {"kubernetes.io/change-cause": "v2", REVISION: "2",
                                              "deployment.kubernetes.io/desired-replicas": "3",
                                              "deployment.kubernetes.io/max-replicas": "4"}
    assert out["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                                   "uid": "u1", "controller": True, "blockOwnerDeletion": True}]
    assert TEMPLATE["metadata"]["labels"] == {"app": "web"}   # the Deployment's template is not changed


def test_a_rolled_back_replicaset_gets_the_next_revision_and_keeps_its_history():
    old = rs("web-a", TEMPLATE, 1)
    assert set_new_revision(old, {"metadata": {}}, 3)
    assert old["metadata"]["annotations"][REVISION] == "3"
    assert old["metadata"]["annotations"][REVISION_HISTORY] == "1"
    assert not set_new_revision(old, {"metadata": {}}, 3)


def pod(name, *, node=None, phase="Pending", ready_since=None, created="2024-01-01T00:00:00Z", restarts=0,
        cost=None):
    meta = {"name": name, "creationTimestamp": created}
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    status = {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready_since:
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": ready_since}]
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": status}


@pytest.mark.parametrize("first, second", [
    (pod("unscheduled"), pod("scheduled", node="n1")),
    (pod("pending", node="n1"), pod("running", node="n1", phase="Running")),
    (pod("unknown", node="n1", phase="Unknown"), pod("running", node="n1", phase="Running")),
    (pod("unready", node="n1", phase="Running"),
     pod("ready", node="n1", phase="Running", ready_since="2024-01-01T00:00:00Z")),
    (pod("cheap", node="n1", phase="Running", ready_since="2024-01-01T00:00:00Z", cost=-5),
     pod("dear", node="n1", phase="Running", ready_since="2024-01-01T00:00:00Z")),
    (pod("ready-briefly", node="n1", phase="Running", ready_since="2024-01-01T00:10:00Z"),
     pod("ready-long", node="n1", phase="Running", ready_since="2024-01-01T00:00:00Z")),
    (pod("restarting", node="n1", phase="Running", restarts=3), pod("steady", node="n1", phase="Running")),
    (pod("newer", created="2024-01-02T00:00:00Z"), pod("older", created="2024-01-01T00:00:00Z")),
])
def test_less_valuable_pods_are_deleted_first(first, second):
    assert deletion_rank(first) < deletion_rank(second)
    assert pods_to_delete([second, first], 1) == [first]


def test_pod_from_template_is_owned_and_labelled():
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web-x", "uid": "u"}}
    p = pod_from_template(TEMPLATE, owner=owner, namespace="ns", generate_name="web-x-")
    assert p["metadata"]["generateName"] == "web-x-" and p["metadata"]["labels"] == {"app": "web"}
    assert p["metadata"]["ownerReferences"][0]["controller"] is True
    assert p["spec"] == TEMPLATE["spec"] and p["spec"] is not TEMPLATE["spec"]
