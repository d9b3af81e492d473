"""NodeResourcesFit: the pod's requests must fit in what the node has left —
allocatable minus the requests of the pods already there (bound or assumed).

Checked: the number of pods ("Too many pods"), then cpu, memory and any other
resource the pod requests ("Insufficient cpu"). A resource the node does not
report counts as 0, as in Kubernetes. A node short of several resources gives
one reason for each. Kubernetes: plugins/noderesources/fit.go.
"""

from __future__ import annotations

from controlplane.scheduler.framework import CycleState, Status, unschedulable
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeResourcesFit"
REASON_CPU = "Insufficient cpu"
REASON_MEMORY = "Insufficient memory"
REASON_PODS = "Too many pods"
_STATE_KEY = "NodeResourcesFit/requests"
_FIRST = ("cpu", "memory")  # then the rest, sorted


def reason_insufficient(resource: str) -> str:
    return f"Insufficient {resource}"


class NodeResourcesFit:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        """Which requests to check, in the order reasons are given: [(resource, amount, reason)]."""
        names = [n for n in _FIRST if pod.requests.get(n)]
        names += sorted(n for n, v in pod.requests.items() if v and n not in _FIRST and n != "pods")
        state.write(_STATE_KEY, [(n, pod.requests[n], reason_insufficient(n)) for n in names])
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        allocatable = node.allocatable
        requested = node.requested
        wanted = state.data[_STATE_KEY]
        fits = requested["pods"] < allocatable["pods"]
        if fits:  # the common case, checked without building anything
            for name, amount, _ in wanted:
                if requested.get(name, 0) + amount > allocatable.get(name, 0):
                    fits = False
                    break
            if fits:
                return None
        reasons = [REASON_PODS] if requested["pods"] + 1 > allocatable["pods"] else []
        reasons += [reason for name, amount, reason in wanted
                    if requested.get(name, 0) + amount > allocatable.get(name, 0)]
        return unschedulable(*reasons)
