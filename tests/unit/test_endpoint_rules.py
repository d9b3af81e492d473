"""Endpoint rules (controlplane/controllers/endpoint_rules.py) as tables: conditions, ports,
packing into slices, and the v1 Endpoints subsets."""

from __future__ import annotations

import pytest

from controlplane.controllers import endpoint_rules as rules


def svc(ports=None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "ports": ports or [{"name": "http", "port": 80, "targetPort": 8080,
                                                                      "protocol": "TCP"}], **spec}}


def pod(name: str, ip: str = "10.0.0.1", *, ready: bool = True, deleting: bool = False, phase: str = "Running",
        ports=None, node: str = "n1", **spec) -> dict:
    meta = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x", "ports": ports or []}], **spec},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize("ready,deleting,publish,expect", [
    (True, False, False, {"ready": True, "serving": True, "terminating": False}),
    (False, False, False, {"ready": False, "serving": False, "terminating": False}),
    (True, True, False, {"ready": False, "serving": True, "terminating": True}),
    (False, True, False, {"ready": False, "serving": False, "terminating": True}),
    (False, False, True, {"ready": True, "serving": False, "terminating": False}),
])
def test_conditions_as_kubernetes_computes_them(ready, deleting, publish, expect):
    ep = rules.pod_endpoint(pod("a", ready=ready, deleting=deleting), svc(publishNotReadyAddresses=publish))
    assert ep["conditions"] == expect
    assert ep["targetRef"] == {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}
    assert ep["nodeName"] == "n1" and ep["addresses"] == ["10.0.0.1"]


@pytest.mark.parametrize("p,slices,endpoints", [
    (pod("a", ip=""), False, False),                   # no IP yet
    (pod("a", phase="Succeeded"), False, False),       # finished
    (pod("a", deleting=True), True, False),            # terminating: in slices, not in Endpoints
    (pod("a", ready=False), True, True),
])
def test_which_pods_count(p, slices, endpoints):
    assert rules.include_pod(p, include_terminating=True) is slices
    assert rules.include_pod(p, include_terminating=False) is endpoints


def test_named_target_port_resolved_per_pod_and_missing_reported():
    service = svc([{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    a = pod("a", ports=[{"name": "web", "containerPort": 8080}])
    b = pod("b", ip="10.0.0.2", ports=[{"name": "web", "containerPort": 9090}])
    c = pod("c", ip="10.0.0.3", ports=[{"name": "other", "containerPort": 7070}])
    groups, problems = rules.desired_groups(service, [a, b, c])
    assert sorted(g.ports[0]["port"] for g in groups.values()) == [8080, 9090]
    assert problems == [rules.MissingPort("c", 0, "web", "TCP")]
    assert 'pod c has no container port named "web" (TCP)' in problems[0].message()


def test_hostname_only_when_subdomain_is_the_service():
    assert rules.pod_endpoint(pod("a", hostname="h", subdomain="web"), svc())["hostname"] == "h"
    assert "hostname" not in rules.pod_endpoint(pod("a", hostname="h", subdomain="other"), svc())


def test_packing_at_most_100_per_slice_and_stable_updates():
    service = svc()
    pods = [pod(f"p{i:03}", ip=f"10.1.{i // 250}.{i % 250 + 1}") for i in range(250)]
    groups, _ = rules.desired_groups(service, pods)
    plan = rules.plan_slices(service, [], groups)
    assert [len(s["endpoints"]) for s in plan.create] == [100, 100, 50]
    s0 = plan.create[0]
    assert s0["metadata"]["labels"] == {"team": "a", "kubernetes.io/service-name": "web",
                                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    assert s0["metadata"]["ownerReferences"][0]["uid"] == "svc-uid" and s0["addressType"] == "IPv4"
    assert s0["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    existing = [{**s, "metadata": {**s["metadata"], "name": f"web-{i}"}} for i, s in enumerate(plan.create)]
    # Nothing changed: nothing to write.
    assert rules.plan_slices(service, existing, groups).empty()
    # One pod turns unready: only its slice is rewritten.
    pods[120] = pod("p120", ip=pods[120]["status"]["podIP"], ready=False)
    groups, _ = rules.desired_groups(service, pods)
    plan = rules.plan_slices(service, existing, groups)
    assert not plan.create and not plan.delete and [s["metadata"]["name"] for s in plan.update] == ["web-1"]


def test_placeholder_when_no_endpoints_and_delete_when_ports_change():
    service = svc()
    plan = rules.plan_slices(service, [], {})
    assert len(plan.create) == 1 and plan.create[0]["endpoints"] == [] and "ports" not in plan.create[0]
    placeholder = {**plan.create[0], "metadata": {**plan.create[0]["metadata"], "name": "web-x"}}
    assert rules.plan_slices(service, [placeholder], {}).empty()
    groups, _ = rules.desired_groups(service, [pod("a")])
    plan = rules.plan_slices(service, [placeholder], groups)   # the placeholder is rewritten, not replaced
    assert not plan.create and not plan.delete and plan.update[0]["metadata"]["name"] == "web-x"
    assert plan.update[0]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]


def test_endpoints_subsets_ready_and_not_ready_sorted():
    service = svc()
    subsets = rules.endpoints_subsets(service, [pod("b", ip="10.0.0.2"), pod("a", ip="10.0.0.1"),
                                                pod("c", ip="10.0.0.3", ready=False),
                                                pod("d", ip="10.0.0.4", deleting=True)])
    assert len(subsets) == 1
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.0.0.1", "10.0.0.2"]
    assert [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["10.0.0.3"]
    assert subsets[0]["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
