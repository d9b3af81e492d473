"""What hollow nodes are: their Node objects and addresses, and what their pods' annotations ask of them.

agent/hollow.py runs the simulated nodes; this module holds the pure parts, so the
shapes can be read (and tested) in one place. Pod statuses are not built here: the
agent's own PodSyncer (agent/podsync.py) writes them, on a FakeRuntime. A hollow node
looks like a real node to every other component, except that its nodeInfo says
`containerRuntimeVersion: hollow://0.1` and it carries the label
`skiff.io/hollow=true`: nobody should mistake it for a runtime.

Pods on hollow nodes run nothing: their containers are records in a FakeRuntime that
run until stopped, and init containers finish at once, unless annotations on the pod
ask otherwise (put them in a workload's `spec.template.metadata.annotations`):

    hollow.skiff.io/exit-after-seconds: "2"   the container "exits" 2 s after it started
    hollow.skiff.io/exit-code: "1"            ... with this code (default 0)
    hollow.skiff.io/ready: "false"            Running but never Ready

What an exit means is PodSyncer's business, as on any node: the pod's restartPolicy
(Never -> Succeeded or Failed; OnFailure -> Succeeded on 0, else restart; Always ->
restart), restarts with CrashLoopBackOff.
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
