"""What hollow nodes write: Node objects and pod statuses, as pure functions on dicts.

agent/hollow.py runs the simulated nodes; this module only builds the objects
they report, so the shapes can be read (and tested) in one place. A hollow node
looks like a real node to every other component, except that its nodeInfo says
`containerRuntimeVersion: hollow://0.1` and it carries the label
`skiff.io/hollow=true`: nobody should mistake it for a runtime.

Pods on hollow nodes run nothing. They are reported Running and Ready at once,
unless annotations on the pod ask otherwise (put them in a workload's
`spec.template.metadata.annotations`):

    hollow.skiff.io/exit-after-seconds: "2"   the container "exits" 2 s after it started
    hollow.skiff.io/exit-code: "1"            ... with this code (default 0)
    hollow.skiff.io/ready: "false"            Running but never Ready

What an exit means follows the pod's restartPolicy, as a kubelet would do it:
Never -> phase Succeeded (code 0) or Failed; OnFailure -> Succeeded on 0, else
restart (restartCount + 1); Always -> restart.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

EXIT_AFTER = "hollow.skiff.io/exit-after-seconds"
EXIT_CODE = "hollow.skiff.io/exit-code"
READY = "hollow.skiff.io/ready"
HOLLOW_LABEL = "skiff.io/hollow"
RUNTIME_VERSION = "hollow://0.1"
AGENT_VERSION = "hollow-0.1"

# 198.18.0.0/15 is for benchmarks (RFC 2544): nodes take 198.18.0.0/16, pods 198.19.0.0/16.
NODE_NETWORK = ipaddress.ip_network("198.18.0.0/16")
POD_NETWORK = ipaddress.ip_network("198.19.0.0/16")

Obj = Mapping[str, Any]


def node_ip(index: int) -> str:
    """The InternalIP of hollow node number `index` (0-based)."""
    return str(NODE_NETWORK.network_address + 1 + index % (NODE_NETWORK.num_addresses - 2))


def pod_ip(index: int) -> str:
    return str(POD_NETWORK.network_address + 1 + index % (POD_NETWORK.num_addresses - 2))


def ready_condition(ready: bool, now: str) -> dict[str, Any]:
    if ready:
        return {"type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "hollow node is posting ready status", "lastHeartbeatTime": now,
                "lastTransitionTime": now}
    return {"type": "Ready", "status": "False", "reason": "KubeletNotReady",
            "message": "hollow node was told to report NotReady", "lastHeartbeatTime": now,
            "lastTransitionTime": now}


def node_conditions(ready: bool, now: str) -> list[dict[str, Any]]:
    def ok(type_: str, reason: str, message: str) -> dict[str, Any]:
        return {"type": type_, "status": "False", "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now}
    return [ok("MemoryPressure", "KubeletHasSufficientMemory", "hollow node has sufficient memory available"),
            ok("DiskPressure", "KubeletHasNoDiskPressure", "hollow node has no disk pressure"),
            ok("PIDPressure", "KubeletHasSufficientPID", "hollow node has sufficient PID available"),
            ready_condition(ready, now)]


def node_object(name: str, *, ip: str, cpu: str, memory: str, pods: int, labels: Mapping[str, str],
                taints: list[dict[str, Any]], now: str) -> dict[str, Any]:
    resources = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
    node: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                              "kubernetes.io/arch": "amd64", HOLLOW_LABEL: "true", **labels}},
        "spec": {},
        "status": {"capacity": resources, "allocatable": dict(resources),
                   "conditions": node_conditions(True, now),
                   "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                   "nodeInfo": {"machineID": name, "systemUUID": name, "bootID": name, "kernelVersion": "hollow",
                                "osImage": "Hollow node (simulated; runs no containers)",
                                "containerRuntimeVersion": RUNTIME_VERSION, "kubeletVersion": AGENT_VERSION,
                                "operatingSystem": "linux", "architecture": "amd64"}},
    }
    if taints:
        node["spec"]["taints"] = [dict(t) for t in taints]
    return node


@dataclass(frozen=True)
class ExitPlan:
    after_seconds: float
    code: int


def exit_plan(pod: Obj) -> ExitPlan | None:
    """The exit the pod's annotations ask for, or None (runs forever). Bad values are ignored."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    after = annotations.get(EXIT_AFTER)
    if after is None:
        return None
    try:
        seconds = max(0.0, float(after))
        code = int(annotations.get(EXIT_CODE, "0"))
    except ValueError:
        return None
    return ExitPlan(seconds, code)


def wants_ready(pod: Obj) -> bool:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(READY, "true").lower() != "false"


def outcome(restart_policy: str | None, code: int) -> str:
    """What a container exit with `code` leads to: "Succeeded", "Failed" or "restart"."""
    policy = restart_policy or "Always"
    if policy == "Never":
        return "Succeeded" if code == 0 else "Failed"
    if policy == "OnFailure" and code == 0:
        return "Succeeded"
    return "restart"


def _conditions(pod: Obj, *, ready: bool, now: str, reason: str | None = None) -> list[dict[str, Any]]:
    old = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    out = []
    for type_, status in (("PodScheduled", True), ("Initialized", True), ("ContainersReady", ready),
                          ("Ready", ready)):
        value = "True" if status else "False"
        previous = old.get(type_)
        if previous is not None and previous.get("status") == value:
            out.append(dict(previous))
            continue
        condition = {"type": type_, "status": value, "lastTransitionTime": now}
        if not status and reason:
            condition["reason"] = reason
        out.append(condition)
    return out


def _container_statuses(pod: Obj, state: dict[str, Any], *, ready: bool, restarts: int,
                        last_state: dict[str, Any] | None, uid: str) -> list[dict[str, Any]]:
    out = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        status = {"name": c.get("name"), "state": state, "ready": ready, "restartCount": restarts,
                  "image": c.get("image", ""), "imageID": f"hollow://{c.get('image', '')}",
                  "containerID": f"hollow://{uid}-{c.get('name')}", "started": "running" in state}
        if last_state:
            status["lastState"] = last_state
        out.append(status)
    return out


def running_status(pod: Obj, *, host_ip: str, ip: str, started: str, now: str, restarts: int = 0,
                   last_exit: int | None = None) -> dict[str, Any]:
    """Status of a pod whose containers "run" on a hollow node."""
    status = dict(pod.get("status") or {})
    ready = wants_ready(pod)
    uid = (pod.get("metadata") or {}).get("uid", "")
    last = {"terminated": {"exitCode": last_exit, "reason": "Completed" if last_exit == 0 else "Error",
                           "finishedAt": started}} if last_exit is not None else None
    status.update(phase="Running", hostIP=host_ip, podIP=ip, podIPs=[{"ip": ip}], startTime=status.get(
        "startTime") or started, conditions=_conditions(pod, ready=ready, now=now),
        containerStatuses=_container_statuses(pod, {"running": {"startedAt": started}}, ready=ready,
                                              restarts=restarts, last_state=last, uid=uid))
    return status


def finished_status(pod: Obj, *, host_ip: str, ip: str, started: str, now: str, code: int,
                    restarts: int = 0) -> dict[str, Any]:
    """Status of a pod whose containers exited for good (phase Succeeded or Failed)."""
    status = dict(pod.get("status") or {})
    uid = (pod.get("metadata") or {}).get("uid", "")
    terminated = {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                 "startedAt": started, "finishedAt": now}}
    status.update(phase="Succeeded" if code == 0 else "Failed", hostIP=host_ip, podIP=ip, podIPs=[{"ip": ip}],
                  startTime=status.get("startTime") or started,
                  conditions=_conditions(pod, ready=False, now=now, reason="PodCompleted"),
                  containerStatuses=_container_statuses(pod, terminated, ready=False, restarts=restarts,
                                                        last_state=None, uid=uid))
    return status


def reported_running(pod: Obj, *, host_ip: str, restarts: int) -> bool:
    """Whether the pod's status already says what a running hollow pod would say."""
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or status.get("hostIP") != host_ip:
        return False
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    if ready != wants_ready(pod):
        return False
    counts = {c.get("restartCount", 0) for c in status.get("containerStatuses") or []}
    return counts == {restarts}
