"""What objects use of a quota, kubectl's refusal wording, and LimitRange defaults and bounds (pure parts)."""

from __future__ import annotations

from api.registry import lookup
from controlplane.admission.limitrange import apply_defaults, violations
from controlplane.admission.quota import exceeded
from controlplane.admission.usage import missing_limits, usage


def pod(*containers: dict, phase: str = "Pending") -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": list(containers)}, "status": {"phase": phase}}


def container(name: str = "app", **resources: dict) -> dict:
    return {"name": name, "image": "nginx", "resources": resources}


def test_pod_usage_sums_containers_and_finished_pods_use_nothing():
    p = pod(container(requests={"cpu": "250m", "memory": "64Mi"}, limits={"cpu": "500m", "memory": "128Mi"}),
            container("b", limits={"cpu": "1"}))
    used = usage(lookup("pods"), p)
    assert used["pods"] == 1 and used["count/pods"] == 1
    assert used["requests.cpu"] == 1250 and used["cpu"] == 1250       # a limit alone is also the request
    assert used["limits.cpu"] == 1500 and used["requests.memory"] == 64 * 2**20
    assert usage(lookup("pods"), pod(container(), phase="Succeeded")) == {}
    assert usage(lookup("deployments"), {"spec": {}}) == {"count/deployments.apps": 1}
    svc = usage(lookup("services"), {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}})
    assert svc == {"count/services": 1, "services": 1, "services.nodeports": 2}


def test_refusals_are_worded_as_kubectl_prints_them():
    quota = {"metadata": {"name": "pod-demo"}, "spec": {"hard": {"pods": "2"}}, "status": {"used": {"pods": "2"}}}
    assert exceeded(quota, {"pods": 1, "count/pods": 1}) == \
        "exceeded quota: pod-demo, requested: pods=1, used: pods=2, limited: pods=2"
    assert exceeded(quota, {"configmaps": 1}) is None
    fresh = {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"}}}
    assert exceeded(fresh, {"pods": 1}) == "status unknown for quota: q, resources: pods"
    mem = {"metadata": {"name": "m"}, "spec": {"hard": {"requests.memory": "1Gi"}},
           "status": {"used": {"requests.memory": "768Mi"}}}
    assert exceeded(mem, {"requests.memory": 512 * 2**20}) == ("exceeded quota: m, requested: requests.memory=512Mi, "
                                                              "used: requests.memory=768Mi, limited: "
                                                              "requests.memory=1Gi")
    assert missing_limits(pod(container(requests={"cpu": "1"})), {"requests.cpu": "2", "limits.cpu": "2"}) == \
        ["limits.cpu for: app"]


def test_limitrange_fills_defaults_then_checks_bounds():
    ranges = [{"spec": {"limits": [{"type": "Container", "default": {"memory": "512Mi"},
                                    "defaultRequest": {"memory": "256Mi"}, "max": {"memory": "1Gi"},
                                    "min": {"cpu": "100m"}}]}}]
    p = pod(container(requests={"cpu": "200m"}))
    assert apply_defaults(p, ranges)
    assert p["spec"]["containers"][0]["resources"] == {"limits": {"memory": "512Mi"},
                                                       "requests": {"cpu": "200m", "memory": "256Mi"}}
    assert violations(p, ranges) == []
    big = pod(container(limits={"memory": "2Gi"}, requests={"cpu": "50m", "memory": "2Gi"}))
    assert violations(big, ranges) == ["minimum cpu usage per Container is 100m, but request is 50m",
                                       "maximum memory usage per Container is 1Gi, but limit is 2Gi"]
    # A limit given without a request: the request defaults to that limit, not to defaultRequest.
    own = pod(container(limits={"memory": "300Mi"}, requests={"cpu": "100m"}))
    apply_defaults(own, ranges)
    assert own["spec"]["containers"][0]["resources"]["requests"]["memory"] == "300Mi"
