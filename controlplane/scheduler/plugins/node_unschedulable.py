"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes no new pods, unless the pod
tolerates the `node.kubernetes.io/unschedulable:NoSchedule` taint (as DaemonSet pods do).

Kubernetes: plugins/nodeunschedulable.
"""

from __future__ import annotations

from controlplane.scheduler.framework import SKIPPED, CycleState, Status, unresolvable
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo
from controlplane.scheduler.plugins.taint_toleration import tolerated

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
_REJECTED = unresolvable(REASON)


class NodeUnschedulable:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if state.snapshot.cordoned else SKIPPED   # no node is cordoned

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.unschedulable or tolerated(pod.tolerations, UNSCHEDULABLE_TAINT):
            return None
        return _REJECTED
