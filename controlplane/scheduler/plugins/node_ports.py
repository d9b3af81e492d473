"""NodePorts: a pod asking for a hostPort fits only nodes where no other pod holds that port
(same protocol; 0.0.0.0 overlaps every address).

Kubernetes: plugins/nodeports.
"""

from __future__ import annotations

from controlplane.scheduler.framework import SKIPPED, CycleState, Status, unschedulable
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"
_REJECTED = unschedulable(REASON)


# The shape every filter plugin has (NAME, REASON, pre_filter skips, filter decides): alike by
# design (the `duplicates` tool pairs plugins by shape); the rule inside filter is this plugin's own.
class NodePorts:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if pod.host_ports else SKIPPED

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for ip, protocol, port in pod.host_ports:
            if node.port_conflict(ip, protocol, port):
                return _REJECTED
        return None
