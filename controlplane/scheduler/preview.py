"""The dry run behind `ctl schedule --dry-run -f pod.yaml`: where would this pod go, and why?

The API server calls `preview` with its cached nodes and pods; nothing is written.
Unlike a real scheduling cycle, which stops at a node's first rejection and scores
only a sample of feasible nodes on big clusters, the preview runs every filter on
every node and scores every feasible node, so the table answers "why not there?"
for each node. The chosen node is the highest total; ties go to the first name in
alphabetical order (the scheduler itself breaks ties at random). The message is the
one the scheduler would write on the pod: each node's first rejection, counted.

Result (JSON-able):
    {"pod": "web", "node": "n2" or "", "message": "0/3 nodes are available: ..." or "",
     "weights": {plugin: weight},
     "nodes": [{"name": "n1", "feasible": false,
                "filters": [{"plugin": "NodeResourcesFit", "ok": false, "reason": "Insufficient cpu"}, ...],
                "scores": {plugin: weighted score}, "total": 0}, ...]}
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from controlplane.scheduler.cache import Cache
from controlplane.scheduler.config import SchedulerConfig
from controlplane.scheduler.framework import CycleState, Status, unschedulable_message
from controlplane.scheduler.nodeinfo import NodeInfo, PodInfo


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "default", meta.get("name") or ""


def preview(pod: Mapping[str, Any], *, nodes: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]] = (),
            config: SchedulerConfig | None = None,
            namespaces: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Explain where `pod` (a dict, validated) would be scheduled among `nodes`, given the bound `pods`."""
    config = config or SchedulerConfig()
    framework = config.build_framework()
    own = _key(pod)
    cache = Cache.from_objects(nodes=nodes, pods=(p for p in pods if _key(p) != own), namespaces=namespaces)
    info = PodInfo(pod)
    candidates: list[NodeInfo] = sorted(cache.node_list(), key=lambda n: n.name)
    state = CycleState(cache)
    rejected_by_pre_filter = framework.run_pre_filter(state, info)

    rows: dict[str, dict[str, Any]] = {}
    first_rejections: list[Status] = []
    feasible: list[NodeInfo] = []
    for node in candidates:
        if rejected_by_pre_filter is not None:
            verdicts: list[tuple[str, Status | None]] = [(rejected_by_pre_filter.plugin, rejected_by_pre_filter)]
        else:
            verdicts = list(zip(framework.filter_names, framework.run_every_filter(state, info, node)))
        rejections = [v for _, v in verdicts if v is not None]
        if rejections:
            first_rejections.append(rejections[0])
        else:
            feasible.append(node)
        rows[node.name] = {
            "name": node.name, "feasible": not rejections,
            "filters": [{"plugin": name, "ok": v is None, "reason": "" if v is None else v.message()}
                        for name, v in verdicts],
            "scores": {}, "total": 0}

    chosen = ""
    if feasible:
        scores = framework.run_scores(state, info, feasible)
        best = 0
        for i, node in enumerate(feasible):
            rows[node.name]["scores"] = scores.breakdown(i)
            rows[node.name]["total"] = scores.totals[i]
            if scores.totals[i] > scores.totals[best]:
                best = i
        chosen = feasible[best].name
    return {"pod": info.name, "node": chosen,
            "message": "" if chosen else unschedulable_message(len(candidates), first_rejections),
            "weights": dict((p.name, w) for p, w in framework.scores),
            "nodes": [rows[n.name] for n in candidates]}
