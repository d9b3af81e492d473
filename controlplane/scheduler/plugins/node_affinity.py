"""NodeAffinity: spec.nodeSelector and required node affinity terms decide which nodes a pod
may use (filter); preferred terms add their weights to the nodes that match (score).

A node fits when it has every nodeSelector label and matches at least one required
term (In, NotIn, Exists, DoesNotExist, Gt, Lt on labels; In/NotIn on metadata.name).
Kubernetes: plugins/nodeaffinity.
"""

from __future__ import annotations

from controlplane.scheduler.framework import SKIPPED, CycleState, Status, default_normalize, unresolvable
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"
_REJECTED = unresolvable(REASON)


def required_node_affinity_matches(pod: PodInfo, node: NodeInfo) -> bool:
    """nodeSelector and required terms; also used by PodTopologySpread to pick eligible domains."""
    labels = node.labels
    for key, value in pod.node_selector.items():
        if labels.get(key) != value:
            return False
    terms = pod.required_node_terms
    return terms is None or any(term.matches(labels, node.name) for term in terms)


class NodeAffinity:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if pod.node_selector or pod.required_node_terms is not None else SKIPPED

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if required_node_affinity_matches(pod, node) else _REJECTED

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        return None if pod.preferred_node_terms else SKIPPED

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(weight for weight, term in pod.preferred_node_terms if term.matches(node.labels, node.name))

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        default_normalize(scores)
