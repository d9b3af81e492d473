"""NodeName: a pod that names its node (spec.nodeName) fits that node only.

The scheduler never schedules such pods (they are bound already); the filter
matters for `ctl schedule --dry-run` of a manifest that sets nodeName.
Kubernetes: plugins/nodename.
"""

from __future__ import annotations

from controlplane.scheduler.framework import SKIPPED, CycleState, Status, unresolvable
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"
_REJECTED = unresolvable(REASON)


# The shape every filter plugin has (NAME, REASON, pre_filter skips, filter decides): alike by
# design (the `duplicates` tool pairs plugins by shape); the rule inside filter is this plugin's own.
class NodeName:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if pod.node_name else SKIPPED

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if not pod.node_name or pod.node_name == node.name else _REJECTED
