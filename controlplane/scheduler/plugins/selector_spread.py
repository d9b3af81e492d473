"""SelectorSpread: spread the pods of one owner (a ReplicaSet, Job, ...) over nodes and zones.

A node scores higher the fewer pods of the same controller it already runs; when
nodes carry `topology.kubernetes.io/zone`, the zone's count weighs two thirds.
Kubernetes' (older) plugins/selectorspread, keyed here on the controller owner
reference instead of Service/ReplicaSet selectors.
"""

from __future__ import annotations

from controlplane.scheduler.framework import MAX_NODE_SCORE, SKIPPED, CycleState, Status
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "SelectorSpread"
ZONE_WEIGHTING = 2 / 3


class SelectorSpread:
    name = NAME

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        return None if pod.owner_uid else SKIPPED

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        """The number of pods of the same owner on the node (made 0..100, fewest best, below)."""
        return node.owner_counts.get(pod.owner_uid, 0)

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        max_by_node = max(scores, default=0)
        by_zone: dict[str, int] = {}
        for node, count in zip(nodes, scores):
            if node.zone:
                by_zone[node.zone] = by_zone.get(node.zone, 0) + count
        max_by_zone = max(by_zone.values(), default=0)
        for i, node in enumerate(nodes):
            score = float(MAX_NODE_SCORE)
            if max_by_node > 0:
                score = MAX_NODE_SCORE * (max_by_node - scores[i]) / max_by_node
            if by_zone and node.zone:
                zone_score = float(MAX_NODE_SCORE)
                if max_by_zone > 0:
                    zone_score = MAX_NODE_SCORE * (max_by_zone - by_zone[node.zone]) / max_by_zone
                score = score * (1 - ZONE_WEIGHTING) + zone_score * ZONE_WEIGHTING
            scores[i] = int(score)
