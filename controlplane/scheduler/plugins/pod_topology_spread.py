"""PodTopologySpread: keep matching pods evenly spread over topology domains (zones, nodes).

For each constraint with whenUnsatisfiable: DoNotSchedule, count the pods that
match its labelSelector (same namespace, not terminating) in every domain — the
values of `topologyKey` on nodes the pod may use (its nodeSelector/node affinity
is honoured). A node fits when placing the pod there keeps

    pods in the node's domain + 1 (if the pod matches itself) - fewest pods in any domain <= maxSkew

When fewer domains exist than `minDomains`, the fewest counts as 0. A node without
the topology label does not fit. ScheduleAnyway constraints are not checked.
Kubernetes: plugins/podtopologyspread (filtering.go).
"""

from __future__ import annotations

from controlplane.scheduler.framework import SKIPPED, CycleState, Status, unresolvable, unschedulable
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo, SpreadConstraint
from controlplane.scheduler.plugins.node_affinity import required_node_affinity_matches

NAME = "PodTopologySpread"
REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
_STATE_KEY = "PodTopologySpread/filter"


class _Counted:
    __slots__ = ("constraint", "counts", "fewest", "self_match")

    def __init__(self, constraint: SpreadConstraint, counts: dict[str, int], pod: PodInfo):
        self.constraint = constraint
        self.counts = counts
        enough = len(counts) >= constraint.min_domains
        self.fewest = min(counts.values()) if counts and enough else 0
        self.self_match = 1 if constraint.counts(pod) else 0


def _matching_pods(node: NodeInfo, constraint: SpreadConstraint, namespace: str) -> int:
    return sum(1 for other in node.pods.values()
               if other.namespace == namespace and not other.terminating and constraint.counts(other))


class PodTopologySpread:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        constraints = [c for c in pod.spread if c.hard]
        if not constraints:
            return SKIPPED
        eligible = [n for n in state.snapshot.node_list() if required_node_affinity_matches(pod, n)]
        counted = []
        for c in constraints:
            counts: dict[str, int] = {}
            for node in eligible:
                value = node.labels.get(c.topology_key)
                if value is not None:
                    counts[value] = counts.get(value, 0) + _matching_pods(node, c, pod.namespace)
            counted.append(_Counted(c, counts, pod))
        state.write(_STATE_KEY, counted)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for counted in state.data[_STATE_KEY]:
            c = counted.constraint
            value = node.labels.get(c.topology_key)
            if value is None:
                return unresolvable(REASON_MISSING_LABEL)
            skew = counted.counts.get(value, 0) + counted.self_match - counted.fewest
            if skew > c.max_skew:
                return unschedulable(REASON)
        return None
