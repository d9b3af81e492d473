"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be used in equal
proportion after placing the pod, so neither runs out while the other lies idle.

Score = (1 - standard deviation of the used fractions) * 100; with two resources the
deviation is |cpu fraction - memory fraction| / 2. Kubernetes:
plugins/noderesources/balanced_allocation.go.
"""

from __future__ import annotations

from controlplane.scheduler.framework import MAX_NODE_SCORE, CycleState
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeResourcesBalancedAllocation"


class NodeResourcesBalancedAllocation:
    name = NAME

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        allocatable = node.allocatable
        cpu, memory = allocatable["cpu"], allocatable["memory"]
        if not cpu or not memory:
            return MAX_NODE_SCORE  # one resource or none: nothing to balance
        requested, wanted = node.requested, pod.requests
        cpu_used = (requested["cpu"] + wanted["cpu"]) / cpu
        memory_used = (requested["memory"] + wanted["memory"]) / memory
        # (comparisons rather than min/abs: this runs for every node of every pod)
        if cpu_used > 1.0:
            cpu_used = 1.0
        if memory_used > 1.0:
            memory_used = 1.0
        deviation = (cpu_used - memory_used) / 2 if cpu_used > memory_used else (memory_used - cpu_used) / 2
        return int((1 - deviation) * MAX_NODE_SCORE)

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """score() of every node, in one call (the same arithmetic, inlined)."""
        pod_cpu, pod_memory = pod.requests["cpu"], pod.requests["memory"]
        out: list[int] = []
        append = out.append
        for node in nodes:
            allocatable = node.allocatable
            cpu, memory = allocatable["cpu"], allocatable["memory"]
            if not cpu or not memory:
                append(MAX_NODE_SCORE)
                continue
            requested = node.requested
            cpu_used = (requested["cpu"] + pod_cpu) / cpu
            memory_used = (requested["memory"] + pod_memory) / memory
            if cpu_used > 1.0:
                cpu_used = 1.0
            if memory_used > 1.0:
                memory_used = 1.0
            deviation = (cpu_used - memory_used) / 2 if cpu_used > memory_used else (memory_used - cpu_used) / 2
            append(int((1 - deviation) * MAX_NODE_SCORE))
        return out
