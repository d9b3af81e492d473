"""Pod Security levels (controlplane/auth/podsecurity.py): table-driven, one row per control."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.auth.podsecurity import namespace_level, refusal, violations


def pod(spec: dict[str, Any] | None = None, container: dict[str, Any] | None = None,
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p", "annotations": annotations or {}},
            "spec": {"containers": [{"name": "c", "image": "x", **(container or {})}], **(spec or {})}}


RESTRICTED_OK = {"securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                     "seccompProfile": {"type": "RuntimeDefault"},
                                     "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}

CASES = [
    # (pod, level, the field paths refused)
    (pod(), "baseline", []),
    (pod(container={"securityContext": {"privileged": True}}), "privileged", []),
    (pod(container={"securityContext": {"privileged": True}}), "baseline",
     ["spec.containers[0].securityContext.privileged"]),
    (pod({"hostNetwork": True, "hostPID": True, "hostIPC": True}), "baseline",
     ["spec.hostNetwork", "spec.hostPID", "spec.hostIPC"]),
    (pod({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}), "baseline", ["spec.volumes[0].hostPath"]),
    (pod(container={"ports": [{"containerPort": 80, "hostPort": 8080}]}), "baseline",
     ["spec.containers[0].ports[0].hostPort"]),
    (pod(container={"securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}}), "baseline",
     ["spec.containers[0].securityContext.capabilities.add[0]"]),
    (pod({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}), "baseline",
     ["spec.securityContext.seccompProfile.type"]),
    (pod(container={"securityContext": {"procMount": "Unmasked"}}), "baseline",
     ["spec.containers[0].securityContext.procMount"]),
    (pod({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}}), "baseline",
     ["spec.securityContext.sysctls[0].name"]),
    (pod(annotations={"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}), "baseline",
     ["metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]"]),
    (pod({"initContainers": [{"name": "i", "image": "x", "securityContext": {"privileged": True}}]}), "baseline",
     ["spec.initContainers[0].securityContext.privileged"]),
    (pod(container=RESTRICTED_OK), "restricted", []),
    (pod(), "restricted", ["spec.containers[0].securityContext.allowPrivilegeEscalation",
                           "spec.containers[0].securityContext.runAsNonRoot",
                           "spec.containers[0].securityContext.seccompProfile.type",
                           "spec.containers[0].securityContext.capabilities.drop"]),
    (pod({"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Localhost"}}},
         container={"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}),
     "restricted", []),
    (pod({"volumes": [{"name": "v", "hostPath": {"path": "/x"}}, {"name": "e", "emptyDir": {}}]},
         container=RESTRICTED_OK), "restricted", ["spec.volumes[0].hostPath"]),
    (pod({"securityContext": {"runAsUser": 0}}, container=RESTRICTED_OK), "restricted",
     ["spec.securityContext.runAsUser"]),
    (pod(container={**RESTRICTED_OK, "securityContext": {**RESTRICTED_OK["securityContext"],
                                                         "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}}),
     "restricted", ["spec.containers[0].securityContext.capabilities.add[0]"]),
]


@pytest.mark.parametrize("obj,level,paths", CASES)
def test_levels(obj: dict[str, Any], level: str, paths: list[str]) -> None:
    assert [e.path for e in violations(obj, level)] == paths


def test_refusal_names_level_and_field() -> None:
    obj = pod(container={"securityContext": {"privileged": True}})
    assert refusal(obj, "baseline", violations(obj, "baseline")) == (
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": '
        "spec.containers[0].securityContext.privileged: privileged containers are not allowed")


@pytest.mark.parametrize("labels,name,level", [
    ({}, "default", "baseline"),
    ({}, "team", "baseline"),
    ({}, "kube-system", "privileged"),
    ({"pod-security.kubernetes.io/enforce": "restricted"}, "kube-system", "restricted"),
    ({"pod-security.kubernetes.io/enforce": "privileged"}, "team", "privileged"),
])
def test_namespace_level(labels: dict[str, str], name: str, level: str) -> None:
    assert namespace_level({"metadata": {"name": name, "labels": labels}}, name) == level


@pytest.mark.parametrize("obj", [case[0] for case in CASES])
def test_the_fast_path_never_hides_a_violation(obj: dict[str, Any]) -> None:
    from controlplane.auth.podsecurity import BASELINE, _plainly_baseline
    full = [e for check in BASELINE for e in check(obj, obj["spec"])]
    if _plainly_baseline(obj, obj["spec"]):
        assert full == []
    assert violations(obj, "baseline") == full
