"""What a DaemonSet needs done, computed from a snapshot: pure functions, no I/O.

daemonset.py reads its caches, calls `plan(ds, nodes, pods, now=...)`, then
carries out the plan (create, delete, write status). Keeping the decision pure
makes it readable in one place and testable as a table.

Which nodes (Kubernetes' NodeShouldRunDaemonPod):
- should run: the node matches the template's nodeSelector and required node
  affinity, and the pod (with the tolerations every daemon pod gets, see
  taints.daemon_tolerations) tolerates its NoSchedule and NoExecute taints;
- should continue running: same, but only NoExecute taints count — a daemon pod
  already there stays when a NoSchedule taint appears.
Resources are not checked here: the scheduler's Bind decides whether it fits.

Daemon pods are placed the Kubernetes way: the pod gets a required node
affinity `matchFields metadata.name In [<node>]` (replacing the template's
required terms, which were already checked here) and the scheduler binds it.

Updates. Each pod carries `controller-revision-hash` = a hash of the template
(Kubernetes keeps ControllerRevision objects; a label is enough here). With
RollingUpdate and maxSurge 0, old pods are deleted while at most maxUnavailable
nodes lack an available pod (old pods that are unavailable anyway go at once);
the next pass creates the new pod. With maxSurge > 0 a new pod starts next to
the old one on up to maxSurge nodes, and the old one is deleted once the new
one is available. OnDelete replaces nothing: new pods appear only where the
user deleted old ones.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from api.affinity import NodeSelector
from api.fieldtypes import resolve_int_or_percent
from controlplane.controllers.owned import (is_available, is_ready, is_terminating, owner_reference, phase,
                                            ready_since)
from api.taints import NO_EXECUTE, daemon_tolerations, scheduling_taints, untolerated

REVISION_LABEL = "controller-revision-hash"
GENERATION_LABEL = "pod-template-generation"
Obj = Mapping[str, Any]


def template_hash(template: Obj) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Eligibility:
    """The parts of a template that decide which nodes a daemon pod belongs on."""

    node_selector: dict[str, str]
    required: NodeSelector | None
    tolerations: list[dict[str, Any]]

    @classmethod
    def of(cls, ds: Obj) -> "Eligibility":
        spec = ds["spec"]["template"].get("spec") or {}
        required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution")
        return cls(dict(spec.get("nodeSelector") or {}),
                   NodeSelector.model_validate(required) if required else None, daemon_tolerations(spec))

    def check(self, node: Obj) -> tuple[bool, bool]:
        """(should run, should continue running) on this node."""
        labels = (node.get("metadata") or {}).get("labels") or {}
        name = node["metadata"]["name"]
        if any(labels.get(k) != v for k, v in self.node_selector.items()):
            return False, False
        if self.required is not None and not self.required.matches(labels, name):
            return False, False
        taints = untolerated(scheduling_taints(node), self.tolerations)
        return not taints, not any(t.get("effect") == NO_EXECUTE for t in taints)


def target_node(pod: Obj) -> str:
    """The node a daemon pod is for: its nodeName, or before binding its matchFields term."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or []:
        for req in term.get("matchFields") or []:
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and req.get("values"):
                return req["values"][0]
    return ""


def new_pod(ds: Obj, node_name: str) -> dict[str, Any]:
    """A daemon pod for `node_name` from the DaemonSet's template."""
    meta, template = ds["metadata"], ds["spec"]["template"]
    tmeta = template.get("metadata") or {}
    spec = copy.deepcopy(template.get("spec") or {})
    spec["tolerations"] = daemon_tolerations(spec)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    labels = {**(tmeta.get("labels") or {}), REVISION_LABEL: template_hash(template),
              GENERATION_LABEL: str(meta.get("generation") or 1)}
    pod_meta: dict[str, Any] = {"generateName": f"{meta['name']}-", "namespace": meta.get("namespace"),
                                "labels": labels, "ownerReferences": [owner_reference(ds)]}
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


@dataclass
class DaemonPlan:
    create: list[str] = field(default_factory=list)           # node names
    delete: list[Obj] = field(default_factory=list)           # graceful
    force_delete: list[Obj] = field(default_factory=list)     # their node is gone: nobody can finish them
    status: dict[str, Any] = field(default_factory=dict)
    requeue_after: float | None = None


def _budget(value: Any, total: int) -> int:
    return resolve_int_or_percent(value if value is not None else 0, total, round_up=True)


def plan(ds: Obj, nodes: list[Obj], pods: list[Obj], *, now: float) -> DaemonPlan:
    """Compare the DaemonSet's pods with the nodes and say what to do."""
    out = DaemonPlan()
    spec = ds["spec"]
    current = template_hash(spec["template"])
    min_ready = float(spec.get("minReadySeconds") or 0)
    eligibility = Eligibility.of(ds)
    by_node: dict[str, list[Obj]] = {}
    for pod in pods:
        by_node.setdefault(target_node(pod), []).append(pod)

    counts = {"desired": 0, "current": 0, "misscheduled": 0, "ready": 0, "updated": 0, "available": 0}
    rolling: list[tuple[str, list[Obj]]] = []                  # nodes that should run, with their live pods
    for node in nodes:
        name = node["metadata"]["name"]
        should_run, should_continue = eligibility.check(node)
        node_pods = [p for p in by_node.pop(name, []) if not is_terminating(p)]
        failed = [p for p in node_pods if phase(p) == "Failed"]
        live = sorted((p for p in node_pods if phase(p) != "Failed"),
                      key=lambda p: p["metadata"].get("creationTimestamp") or "")
        out.delete += failed                                    # recreated on the next pass
        if should_run:
            counts["desired"] += 1
            if not live and not failed:
                out.create.append(name)
            elif live:
                counts["current"] += 1
                newest = max(live, key=lambda p: (p["metadata"]["labels"].get(REVISION_LABEL) == current,
                                                  p["metadata"].get("creationTimestamp") or ""))
                counts["ready"] += is_ready(newest)
                counts["updated"] += newest["metadata"]["labels"].get(REVISION_LABEL) == current
                if is_available(newest, min_ready, now):
                    counts["available"] += 1
                elif (since := ready_since(newest)) is not None:
                    _sooner(out, since + min_ready - now)
                rolling.append((name, live))
        elif live:
            counts["misscheduled"] += 1
            if not should_continue:                             # else only a NoSchedule taint: it may stay
                out.delete += live
    for pods_of_gone_node in by_node.values():                  # nodes that left the cluster
        out.force_delete += pods_of_gone_node

    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        _rolling_update(out, rolling, strategy.get("rollingUpdate") or {}, desired=counts["desired"],
                        missing=counts["desired"] - len(rolling), current=current, min_ready=min_ready, now=now)
    else:
        for _name, live in rolling:                             # OnDelete: only trim duplicates
            out.delete += live[1:]

    status = {"desiredNumberScheduled": counts["desired"], "currentNumberScheduled": counts["current"],
              "numberMisscheduled": counts["misscheduled"], "numberReady": counts["ready"],
              "updatedNumberScheduled": counts["updated"], "numberAvailable": counts["available"],
              "numberUnavailable": counts["desired"] - counts["available"],
              "observedGeneration": ds["metadata"].get("generation")}
    out.status = status
    return out


def _sooner(out: DaemonPlan, delay: float) -> None:
    delay = max(0.05, delay)
    out.requeue_after = delay if out.requeue_after is None else min(out.requeue_after, delay)


def _rolling_update(out: DaemonPlan, nodes: list[tuple[str, list[Obj]]], budget: Obj, *, desired: int,
                    missing: int, current: str, min_ready: float, now: float) -> None:
    """`nodes`: the nodes that should run a pod and have live ones; `missing`: those without."""
    max_unavailable = _budget(budget.get("maxUnavailable", 1), desired)
    max_surge = _budget(budget.get("maxSurge", 0), desired)
    unavailable = missing
    old_available: list[tuple[str, Obj]] = []
    surging = 0
    for name, live in nodes:
        new = [p for p in live if p["metadata"]["labels"].get(REVISION_LABEL) == current]
        old = [p for p in live if p["metadata"]["labels"].get(REVISION_LABEL) != current]
        out.delete += new[1:]                                   # duplicates: keep the oldest new pod
        if new:
            if is_available(new[0], min_ready, now):
                out.delete += old                               # the new pod took over
            elif old and is_available(old[0], min_ready, now):
                surging += 1                                    # the old pod still serves meanwhile
            else:
                unavailable += 1
            continue
        if not old:
            continue
        out.delete += old[1:]
        if is_available(old[0], min_ready, now):
            old_available.append((name, old[0]))
        else:
            unavailable += 1
            out.delete.append(old[0])                           # unavailable anyway: replace at once
    for name, pod in old_available:
        if max_surge > 0:
            if surging < max_surge:
                out.create.append(name)                         # a new pod next to the old one
                surging += 1
        elif unavailable < max_unavailable:
            out.delete.append(pod)
            unavailable += 1
