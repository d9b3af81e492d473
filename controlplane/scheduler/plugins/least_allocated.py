"""NodeResourcesLeastAllocated: prefer nodes with the most cpu and memory left after placing the
pod — spreads load. Score = mean over cpu and memory of (allocatable - requested) * 100 / allocatable.

Requests here are Kubernetes' "non-zero" requests: a container that requests
nothing counts as 100m cpu and 200Mi memory, so that many such pods still spread.
Kubernetes: plugins/noderesources/least_allocated.go (the NodeResourcesFit score).
"""

from __future__ import annotations

from controlplane.scheduler.framework import MAX_NODE_SCORE, CycleState
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeResourcesLeastAllocated"


def least_requested(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


class NodeResourcesLeastAllocated:
    name = NAME

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        allocatable = node.allocatable
        cpu, memory = allocatable["cpu"], allocatable["memory"]
        if cpu and memory:
            return (least_requested(node.nonzero_cpu + pod.nonzero_cpu, cpu)
                    + least_requested(node.nonzero_memory + pod.nonzero_memory, memory)) // 2
        if cpu:
            return least_requested(node.nonzero_cpu + pod.nonzero_cpu, cpu)
        if memory:
            return least_requested(node.nonzero_memory + pod.nonzero_memory, memory)
        return 0

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        """score() of every node, in one call (the same arithmetic, inlined)."""
        pod_cpu, pod_memory = pod.nonzero_cpu, pod.nonzero_memory
        out: list[int] = []
        append = out.append
        for node in nodes:
            allocatable = node.allocatable
            cpu, memory = allocatable["cpu"], allocatable["memory"]
            cpu_requested, memory_requested = node.nonzero_cpu + pod_cpu, node.nonzero_memory + pod_memory
            cpu_score = (cpu - cpu_requested) * MAX_NODE_SCORE // cpu if cpu and cpu_requested <= cpu else 0
            memory_score = ((memory - memory_requested) * MAX_NODE_SCORE // memory
                            if memory and memory_requested <= memory else 0)
            append((cpu_score + memory_score) // 2 if cpu and memory else cpu_score if cpu else memory_score)
        return out
