"""daemonset_plan: which nodes get a daemon pod, what goes, and rolling update budgets."""

from __future__ import annotations

import pytest

from controlplane.controllers.daemonset_plan import (REVISION_LABEL, Eligibility, new_pod, plan, target_node,
                                                     template_hash)

NOW = 1_000_000.0


def ds(*, node_selector=None, tolerations=None, max_unavailable=1, max_surge=0, strategy="RollingUpdate",
       image="busybox:1") -> dict:
    spec = {"containers": [{"name": "c", "image": image}]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    update = {"type": strategy}
    if strategy == "RollingUpdate":
        update["rollingUpdate"] = {"maxUnavailable": max_unavailable, "maxSurge": max_surge}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "d", "namespace": "ns", "uid": "ds-uid", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "d"}}, "updateStrategy": update,
                     "template": {"metadata": {"labels": {"app": "d"}}, "spec": spec}}}


def node(name: str, *, labels=None, taints=None, unschedulable=False) -> dict:
    spec: dict = {"taints": taints} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def pod(name: str, node_name: str, revision: str, *, ready=True, phase="Running", created="2024-01-01T00:00:00Z",
        terminating=False) -> dict:
    meta = {"name": name, "uid": name, "labels": {"app": "d", REVISION_LABEL: revision}, "creationTimestamp": created}
    if terminating:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   "lastTransitionTime": "2024-01-01T00:00:00Z"}]
    return {"metadata": meta, "spec": {"nodeName": node_name}, "status": {"phase": phase, "conditions": conditions}}


@pytest.mark.parametrize("n, run, stay", [
    (node("a"), True, True),
    (node("a", labels={"disk": "ssd"}), True, True),
    (node("a", unschedulable=True), True, True),                                  # daemon pods tolerate cordon
    (node("a", taints=[{"key": "k", "effect": "NoSchedule"}]), False, True),      # may stay, not start
    (node("a", taints=[{"key": "k", "effect": "NoExecute"}]), False, False),
    (node("a", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]), True, True),
    (node("a", taints=[{"key": "k", "effect": "PreferNoSchedule"}]), True, True),
])
def test_eligibility(n, run, stay):
    assert Eligibility.of(ds()).check(n) == (run, stay)


def test_node_selector_mismatch_removes():
    assert Eligibility.of(ds(node_selector={"disk": "ssd"})).check(node("a")) == (False, False)


def test_new_pod_is_pinned_by_affinity_and_tolerates_node_problems():
    p = new_pod(ds(), "n7")
    assert target_node(p) == "n7" and "nodeName" not in p["spec"]
    assert p["metadata"]["labels"][REVISION_LABEL] == template_hash(ds()["spec"]["template"])
    assert p["metadata"]["ownerReferences"][0]["uid"] == "ds-uid"
    keys = {t["key"] for t in p["spec"]["tolerations"]}
    assert {"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unschedulable"} <= keys


def test_plan_creates_deletes_and_counts():
    d = ds(node_selector={"role": "edge"})
    rev = template_hash(d["spec"]["template"])
    nodes = [node("a", labels={"role": "edge"}), node("b", labels={"role": "edge"}), node("c")]
    pods = [pod("pa", "a", rev), pod("pc", "c", rev), pod("pgone", "gone", rev),
            pod("pa-dup", "a", rev, created="2024-02-01T00:00:00Z")]
    out = plan(d, nodes, pods, now=NOW)
    assert out.create == ["b"]
    assert sorted(p["metadata"]["name"] for p in out.delete) == ["pa-dup", "pc"]
    assert [p["metadata"]["name"] for p in out.force_delete] == ["pgone"]
    assert out.status["desiredNumberScheduled"] == 2 and out.status["currentNumberScheduled"] == 1
    assert out.status["numberMisscheduled"] == 1 and out.status["observedGeneration"] == 2


def test_failed_pod_is_replaced_on_the_next_pass():
    d = ds()
    out = plan(d, [node("a")], [pod("p", "a", template_hash(d["spec"]["template"]), phase="Failed")], now=NOW)
    assert [p["metadata"]["name"] for p in out.delete] == ["p"] and out.create == []


@pytest.mark.parametrize("max_unavailable, deleted", [(1, 1), (2, 2), ("50%", 2), (5, 4)])
def test_rolling_update_deletes_within_max_unavailable(max_unavailable, deleted):
    d = ds(max_unavailable=max_unavailable)
    nodes = [node(n) for n in "abcd"]
    out = plan(d, nodes, [pod(f"p{n}", n, "old") for n in "abcd"], now=NOW)
    assert len(out.delete) == deleted and out.create == []


def test_rolling_update_counts_missing_and_unavailable_nodes():
    d = ds(max_unavailable=1)
    rev = template_hash(d["spec"]["template"])
    nodes = [node(n) for n in "abcd"]
    # a: new pod not ready yet (uses the budget); b, c: old and available; d: old and unavailable
    pods = [pod("pa", "a", rev, ready=False), pod("pb", "b", "old"), pod("pc", "c", "old"),
            pod("pd", "d", "old", ready=False)]
    out = plan(d, nodes, pods, now=NOW)
    assert [p["metadata"]["name"] for p in out.delete] == ["pd"]   # unavailable anyway; no budget for b, c


def test_rolling_update_with_surge_starts_new_next_to_old():
    d = ds(max_unavailable=0, max_surge=1)
    rev = template_hash(d["spec"]["template"])
    out = plan(d, [node("a"), node("b")], [pod("pa", "a", "old"), pod("pb", "b", "old")], now=NOW)
    assert out.create == ["a"] and out.delete == []
    out = plan(d, [node("a"), node("b")],
               [pod("pa", "a", "old"), pod("na", "a", rev), pod("pb", "b", "old")], now=NOW)
    assert [p["metadata"]["name"] for p in out.delete] == ["pa"] and out.create == ["b"]


def test_on_delete_replaces_nothing():
    d = ds(strategy="OnDelete")
    out = plan(d, [node("a")], [pod("pa", "a", "old")], now=NOW)
    assert out.create == [] and out.delete == []
    assert out.status["updatedNumberScheduled"] == 0


def test_terminating_pod_does_not_block_its_replacement():
    d = ds()
    out = plan(d, [node("a")], [pod("pa", "a", "old", terminating=True)], now=NOW)
    assert out.create == ["a"]
