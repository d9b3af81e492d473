"""statefulset_plan: ordered and parallel creation, scale-down from the top, rolling updates with a
partition, OnDelete, claims per ordinal, revisions (renumbered on rollback) and history pruning."""

from __future__ import annotations

import copy

import pytest

from controlplane.controllers.statefulset_plan import (POD_INDEX_LABEL, REVISION_LABEL, new_pod, ordinal_of, plan,
                                                       revision_name, revisions_to_prune)

NOW = 1_000_000.0


def sts(*, replicas=3, policy="OrderedReady", image="busybox:1", partition=None, strategy="RollingUpdate",
        claims=True, status=None) -> dict:
    spec = {"replicas": replicas, "podManagementPolicy": policy, "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": image}]}},
            "updateStrategy": {"type": strategy}}
    if partition is not None:
        spec["updateStrategy"]["rollingUpdate"] = {"partition": partition}
    if claims:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "www"},
                                         "spec": {"accessModes": ["ReadWriteOnce"],
                                                  "resources": {"requests": {"storage": "1Gi"}}}}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "ns", "uid": "sts-uid", "generation": 1},
            "spec": spec, "status": status or {}}


def revision_of(s: dict, number: int = 1) -> dict:
    return {"metadata": {"name": revision_name(s)}, "revision": number,
            "data": {"spec": {"template": copy.deepcopy(s["spec"]["template"])}}}


def running(s: dict, ordinal: int, *, ready=True, revision: str | None = None, terminating=False,
            phase="Running") -> dict:
    p = new_pod(s, ordinal, s["spec"]["template"], revision or revision_name(s))
    p["metadata"]["uid"] = f"uid-{ordinal}"
    if terminating:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    p["status"] = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                   "lastTransitionTime": "2024-01-01T00:00:00Z"}]}
    return p


def claims_of(s: dict, n: int) -> dict:
    return {f"www-web-{i}": {"metadata": {"name": f"www-web-{i}"}} for i in range(n)}


def names(objs) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_ordinals_parse_only_the_sets_own_names():
    assert [ordinal_of("web", n) for n in ("web-0", "web-12", "web-01", "web-x", "webx-1", "web-")] == \
        [0, 12, None, None, None, None]


def test_new_pod_has_stable_identity_and_claim_volume():
    s = sts()
    pod = new_pod(s, 1, s["spec"]["template"], "web-abc")
    assert pod["metadata"]["name"] == "web-1"
    assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "nginx"
    assert pod["spec"]["volumes"] == [{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-1"}}]
    assert pod["metadata"]["labels"][REVISION_LABEL] == "web-abc"
    assert pod["metadata"]["labels"][POD_INDEX_LABEL] == "1"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"


def test_ordered_ready_creates_one_at_a_time_after_its_claim():
    s = sts()
    todo = plan(s, [], {}, [], now=NOW)
    assert names(todo.create) == ["web-0"]
    assert names(todo.claims) == ["www-web-0"]                  # each pod's claims just before it
    assert todo.revision is not None and todo.revision["revision"] == 1
    # web-0 exists but is not Ready: nothing more
    todo = plan(s, [running(s, 0, ready=False)], claims_of(s, 3), [revision_of(s)], now=NOW)
    assert todo.create == [] and "web-0" in todo.waiting
    todo = plan(s, [running(s, 0)], claims_of(s, 3), [revision_of(s)], now=NOW)
    assert names(todo.create) == ["web-1"] and todo.claims == [] and todo.revision is None


def test_parallel_creates_all_at_once():
    s = sts(policy="Parallel")
    todo = plan(s, [running(s, 1, ready=False)], claims_of(s, 3), [revision_of(s)], now=NOW)
    assert names(todo.create) == ["web-0", "web-2"]


def test_a_deleted_pod_comes_back_with_the_same_name_and_claim():
    s = sts()
    pods = [running(s, 0, terminating=True), running(s, 1), running(s, 2)]
    assert plan(s, pods, claims_of(s, 3), [revision_of(s)], now=NOW).create == []   # waits for it to go
    todo = plan(s, pods[1:], claims_of(s, 3), [revision_of(s)], now=NOW)
    assert names(todo.create) == ["web-0"] and todo.claims == []
    assert todo.create[0]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "www-web-0"


def test_scale_down_goes_from_the_highest_ordinal_one_at_a_time():
    s = sts(replicas=1)
    pods = [running(s, i) for i in range(3)]
    todo = plan(s, pods, claims_of(s, 3), [revision_of(s)], now=NOW)
    assert names(todo.delete) == ["web-2"]
    todo = plan(s, [pods[0], pods[1], running(s, 2, terminating=True)], claims_of(s, 3), [revision_of(s)], now=NOW)
    assert todo.delete == []
    assert todo.claims == []                      # claims are never deleted (Retain)
    parallel = sts(replicas=1, policy="Parallel")
    assert names(plan(parallel, pods, claims_of(s, 3), [revision_of(s)], now=NOW).delete) == ["web-2", "web-1"]


def test_failed_pods_are_replaced():
    s = sts(replicas=1)
    todo = plan(s, [running(s, 0, phase="Failed", ready=False)], claims_of(s, 1), [revision_of(s)], now=NOW)
    assert names(todo.delete) == ["web-0"]


@pytest.mark.parametrize("partition, expected", [(None, "web-2"), (0, "web-2"), (2, "web-2"), (3, None)])
def test_rolling_update_deletes_the_highest_old_pod_down_to_the_partition(partition, expected):
    old = sts()
    new = sts(image="busybox:2", partition=partition,
              status={"currentRevision": revision_name(old), "updateRevision": revision_name(old)})
    pods = [running(old, i) for i in range(3)]
    todo = plan(new, pods, claims_of(new, 3), [revision_of(old, 1)], now=NOW)
    assert todo.revision["revision"] == 2
    assert names(todo.delete) == ([expected] if expected else [])


def test_rolling_update_recreates_on_the_right_revision_and_waits_for_ready():
    old = sts()
    new = sts(image="busybox:2", partition=1,
              status={"currentRevision": revision_name(old), "updateRevision": revision_name(new := sts(image="busybox:2"))})
    revisions = [revision_of(old, 1), revision_of(new, 2)]
    # web-2 was replaced: it is made from the new template
    pods = [running(old, 0), running(old, 1)]
    todo = plan(new, pods, claims_of(new, 3), revisions, now=NOW)
    assert names(todo.create) == ["web-2"]
    assert todo.create[0]["spec"]["containers"][0]["image"] == "busybox:2"
    assert todo.create[0]["metadata"]["labels"][REVISION_LABEL] == revision_name(new)
    # web-2 updated but not Ready: web-1 waits
    pods.append(running(new, 2, ready=False))
    assert plan(new, pods, claims_of(new, 3), revisions, now=NOW).delete == []
    pods[2] = running(new, 2)
    todo = plan(new, pods, claims_of(new, 3), revisions, now=NOW)
    assert names(todo.delete) == ["web-1"]
    # below the partition a recreated pod keeps the current (old) template
    todo = plan(new, [running(old, 1), running(new, 2)], claims_of(new, 3), revisions, now=NOW)
    assert names(todo.create) == ["web-0"] and todo.create[0]["spec"]["containers"][0]["image"] == "busybox:1"


def test_on_delete_replaces_nothing_by_itself():
    old = sts()
    new = sts(image="busybox:2", strategy="OnDelete", status={"currentRevision": revision_name(old)})
    pods = [running(old, i) for i in range(3)]
    todo = plan(new, pods, claims_of(new, 3), [revision_of(old)], now=NOW)
    assert todo.delete == [] and todo.create == []
    todo = plan(new, pods[:2], claims_of(new, 3), [revision_of(old)], now=NOW)   # the user deleted web-2
    assert todo.create[0]["spec"]["containers"][0]["image"] == "busybox:2"


def test_status_counts_and_current_revision_advances_when_all_are_updated():
    old = sts()
    new = sts(image="busybox:2", status={"currentRevision": revision_name(old)})
    revisions = [revision_of(old, 1), revision_of(new, 2)]
    todo = plan(new, [running(old, 0), running(new, 1), running(new, 2)], claims_of(new, 3), revisions, now=NOW)
    assert todo.status["currentRevision"] == revision_name(old)
    assert (todo.status["replicas"], todo.status["readyReplicas"], todo.status["updatedReplicas"],
            todo.status["currentReplicas"]) == (3, 3, 2, 1)
    todo = plan(new, [running(new, i) for i in range(3)], claims_of(new, 3), revisions, now=NOW)
    assert todo.status["currentRevision"] == todo.status["updateRevision"] == revision_name(new)
    assert todo.status["currentReplicas"] == 3


def test_rollback_renumbers_the_old_revision_and_prunes_beyond_the_limit():
    a, b = sts(), sts(image="busybox:2")
    todo = plan(a, [], {}, [revision_of(a, 1), revision_of(b, 2)], now=NOW)
    assert todo.revision_exists and todo.revision["revision"] == 3
    s = sts()
    s["spec"]["revisionHistoryLimit"] = 1
    old = [revision_of(sts(image=f"busybox:{i}"), i) for i in range(2, 6)]
    pruned = revisions_to_prune(s, old + [revision_of(s, 6)], [], {"currentRevision": revision_name(s),
                                                                  "updateRevision": revision_name(s)})
    assert [r["revision"] for r in pruned] == [2, 3, 4]
