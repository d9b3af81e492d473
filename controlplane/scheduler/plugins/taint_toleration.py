"""TaintToleration: a node's NoSchedule/NoExecute taints keep out pods that do not tolerate them
(filter); untolerated PreferNoSchedule taints make a node less attractive (score).

Kubernetes: plugins/tainttoleration. `tolerates` is the dict form of api/affinity.py's
Toleration.tolerates, shared with NodeUnschedulable.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from controlplane.scheduler.framework import SKIPPED, CycleState, Status, default_normalize, unresolvable
from api.taints import tolerates
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "TaintToleration"


def reason_untolerated(taint: Mapping[str, Any]) -> str:
    """"node(s) had untolerated taint {dedicated: gpu}" (Kubernetes' wording)."""
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"


def tolerated(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


class TaintToleration:
    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status | None:
        return None if state.snapshot.hard_tainted else SKIPPED   # no node has a NoSchedule/NoExecute taint

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        for taint in node.hard_taints:
            if not tolerated(pod.tolerations, taint):
                return unresolvable(reason_untolerated(taint))
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        """The number of PreferNoSchedule taints the pod does not tolerate (fewer is better)."""
        if not node.prefer_taints:
            return 0
        relevant = [t for t in pod.tolerations if t.get("effect") in (None, "", "PreferNoSchedule")]
        return sum(1 for taint in node.prefer_taints if not tolerated(relevant, taint))

    def normalize_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo], scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
