"""What a StatefulSet needs done, computed from a snapshot: pure functions, no I/O.

statefulset.py reads its caches and calls `plan(sts, pods, claims, revisions, now=...)`,
then carries the plan out. The rules are kube-controller-manager's
(stateful_set_control.go), for one StatefulSet:

- Identity. Ordinal i's pod is `<name>-i`, with `hostname` = its name and `subdomain` =
  `serviceName`, and for each volumeClaimTemplate a volume of the template's name that
  mounts the claim `<template>-<name>-i`. Claims are made just before their pod (and
  again if one is deleted while its pod lives), never deleted by the controller, and so
  outlive pods (same data after a restart or a move).
- Revisions. Each template is a ControllerRevision `<name>-<hash>` (revisions.template_hash,
  the Deployment's hash) with an increasing `revision`; a template seen before (a rollback)
  gets its old revision renumbered as the newest. Pods carry `controller-revision-hash` =
  the revision's name. `status.updateRevision` is the current template's;
  `status.currentRevision` the one pods below the partition keep, advanced once every pod
  is updated and ready.
- Ordinal i gets the update revision, except under RollingUpdate when i < partition
  (the current revision). Under OnDelete a pod is only replaced when someone deletes it.
- OrderedReady: create the lowest missing ordinal, and only when every lower one is
  Running and Ready; delete the highest surplus ordinal, one at a time, after the others
  are Ready; wait while any pod is terminating. Parallel: create and delete all at once.
- RollingUpdate: once all pods are Running and Ready, delete the highest-ordinal pod
  (down to the partition) not on the update revision; it comes back on the new one.
- Failed or Succeeded pods are deleted and made again.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from controlplane.controllers.owned import is_available, is_ready, is_terminating, owner_reference, phase
from controlplane.controllers.revisions import template_hash

Obj = Mapping[str, Any]
REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(sts_name: str, pod_name: str) -> int | None:
    match = re.fullmatch(re.escape(sts_name) + r"-(0|[1-9][0-9]*)", pod_name)
    return int(match.group(1)) if match else None


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(template: Obj, pod: str) -> str:
    return f"{(template.get('metadata') or {}).get('name')}-{pod}"


def revision_name(sts: Obj) -> str:
    return f"{sts['metadata']['name']}-{template_hash(sts['spec']['template'])}"


def revision_template(revision: Obj) -> dict[str, Any] | None:
    return ((revision.get("data") or {}).get("spec") or {}).get("template")


def new_revision(sts: Obj, number: int) -> dict[str, Any]:
    """The ControllerRevision holding the StatefulSet's current template."""
    meta = sts["metadata"]
    labels = dict(((sts["spec"].get("selector") or {}).get("matchLabels")) or {})
    labels[REVISION_LABEL] = revision_name(sts)
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": revision_name(sts), "namespace": meta.get("namespace"), "labels": labels,
                         "ownerReferences": [owner_reference(sts)]},
            "data": {"spec": {"template": copy.deepcopy(sts["spec"]["template"])}}, "revision": number}


def new_claim(sts: Obj, template: Obj, pod: str) -> dict[str, Any]:
    """The PersistentVolumeClaim of one volumeClaimTemplate for one pod (no owner: it is retained)."""
    tmeta = template.get("metadata") or {}
    labels = {**(tmeta.get("labels") or {}), **((sts["spec"].get("selector") or {}).get("matchLabels") or {})}
    meta: dict[str, Any] = {"name": claim_name(template, pod), "namespace": sts["metadata"].get("namespace"),
                            "labels": labels}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def new_pod(sts: Obj, ordinal: int, template: Obj, revision: str) -> dict[str, Any]:
    """Ordinal `ordinal`'s pod from `template` (the template of revision `revision`)."""
    name = pod_name(sts, ordinal)
    spec = sts["spec"]
    tmeta = template.get("metadata") or {}
    pod_spec = copy.deepcopy(template.get("spec") or {})
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    claims = spec.get("volumeClaimTemplates") or []
    if claims:
        names = {(c.get("metadata") or {}).get("name") for c in claims}
        volumes = [v for v in pod_spec.get("volumes") or [] if v.get("name") not in names]
        volumes += [{"name": (c.get("metadata") or {}).get("name"),
                     "persistentVolumeClaim": {"claimName": claim_name(c, name)}} for c in claims]
        pod_spec["volumes"] = volumes
    labels = {**(tmeta.get("labels") or {}), REVISION_LABEL: revision, POD_NAME_LABEL: name,
              POD_INDEX_LABEL: str(ordinal)}
    meta: dict[str, Any] = {"name": name, "namespace": sts["metadata"].get("namespace"), "labels": labels,
                            "ownerReferences": [owner_reference(sts)]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}


def _revision(pod: Obj) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(REVISION_LABEL, "")


def _running_and_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and is_ready(pod) and not is_terminating(pod)


@dataclass
class StatefulPlan:
    revision: dict[str, Any] | None = None            # a ControllerRevision to create, or to renumber (update)
    revision_exists: bool = False
    claims: list[dict[str, Any]] = field(default_factory=list)         # PVCs to create
    create: list[dict[str, Any]] = field(default_factory=list)         # pods
    delete: list[Obj] = field(default_factory=list)                    # pods
    prune: list[Obj] = field(default_factory=list)                     # ControllerRevisions past the history
    status: dict[str, Any] = field(default_factory=dict)
    waiting: str = ""                                                  # why nothing more happens now
    requeue_after: float | None = None


def plan_revisions(sts: Obj, revisions: list[Obj], out: StatefulPlan) -> None:
    """Make sure the current template has a revision, numbered above every other."""
    name = revision_name(sts)
    top = max((int(r.get("revision") or 0) for r in revisions), default=0)
    existing = next((r for r in revisions if r["metadata"]["name"] == name), None)
    if existing is None:
        out.revision = new_revision(sts, top + 1)
    else:
        out.revision_exists = True
        if int(existing.get("revision") or 0) < top:            # an old template came back: renumber it
            out.revision = {**copy.deepcopy(dict(existing)), "revision": top + 1}


def plan(sts: Obj, pods: list[Obj], claims: Mapping[str, Obj], revisions: list[Obj], *,
         now: float) -> StatefulPlan:
    """Compare the StatefulSet with its pods, claims and revisions; say what to do next."""
    out = StatefulPlan()
    spec, status = sts["spec"], sts.get("status") or {}
    name = sts["metadata"]["name"]
    replicas = int(spec.get("replicas", 1))
    parallel = spec.get("podManagementPolicy") == "Parallel"
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0) if rolling else 0
    min_ready = float(spec.get("minReadySeconds") or 0)

    plan_revisions(sts, revisions, out)
    update_revision = revision_name(sts)
    current_revision = status.get("currentRevision") or update_revision
    templates = {r["metadata"]["name"]: revision_template(r) for r in revisions}
    templates[update_revision] = spec["template"]
    if templates.get(current_revision) is None:
        current_revision = update_revision                      # its revision is gone: nothing to keep

    by_ordinal: dict[int, Obj] = {}
    for pod in pods:
        ordinal = ordinal_of(name, pod["metadata"]["name"])
        if ordinal is not None:
            by_ordinal[ordinal] = pod

    # status first: it describes what is there now
    counts = {"replicas": 0, "ready": 0, "current": 0, "updated": 0, "available": 0}
    for pod in by_ordinal.values():
        if is_terminating(pod):
            continue
        counts["replicas"] += 1
        counts["ready"] += is_ready(pod)
        counts["available"] += is_available(pod, min_ready, now)
        counts["current"] += _revision(pod) == current_revision
        counts["updated"] += _revision(pod) == update_revision
        if is_ready(pod) and not is_available(pod, min_ready, now):
            out.requeue_after = 1.0
    if rolling and counts["updated"] == counts["ready"] == counts["replicas"] == replicas:
        current_revision = update_revision                      # the rollout is complete
        counts["current"] = counts["updated"]
    out.status = {"observedGeneration": sts["metadata"].get("generation"), "replicas": counts["replicas"],
                  "readyReplicas": counts["ready"], "currentReplicas": counts["current"],
                  "updatedReplicas": counts["updated"], "availableReplicas": counts["available"],
                  "currentRevision": current_revision, "updateRevision": update_revision}

    def ensure_claims(ordinal: int) -> None:
        """The claims of a pod about to be made or already there (made again if someone deleted one)."""
        for template in spec.get("volumeClaimTemplates") or []:
            if claim_name(template, pod_name(sts, ordinal)) not in claims:
                out.claims.append(new_claim(sts, template, pod_name(sts, ordinal)))

    def revision_for(ordinal: int) -> str:
        return current_revision if rolling and ordinal < partition else update_revision

    terminating = sorted(o for o, p in by_ordinal.items() if is_terminating(p))
    # pods in range, lowest first
    for ordinal in range(replicas):
        pod = by_ordinal.get(ordinal)
        if pod is None or not is_terminating(pod):
            ensure_claims(ordinal)
        if pod is None:
            revision = revision_for(ordinal)
            out.create.append(new_pod(sts, ordinal, templates[revision] or spec["template"], revision))
            if not parallel:
                out.waiting = f"waiting for {pod_name(sts, ordinal)} to be created"
                break
            continue
        if is_terminating(pod):
            if not parallel:
                out.waiting = f"waiting for {pod['metadata']['name']} to terminate"
                break
            continue
        if phase(pod) in ("Failed", "Succeeded"):
            out.delete.append(pod)                               # made again on the next pass
            if not parallel:
                out.waiting = f"replacing {pod['metadata']['name']} ({phase(pod)})"
                break
            continue
        if not parallel and not _running_and_ready(pod):
            out.waiting = f"waiting for {pod['metadata']['name']} to be Running and Ready"
            break
    if out.waiting or (parallel and (out.create or out.delete)):
        return out

    # surplus pods, highest first
    condemned = sorted((o for o in by_ordinal if o >= replicas and o not in terminating), reverse=True)
    if condemned:
        if parallel:
            out.delete += [by_ordinal[o] for o in condemned]
        elif terminating:
            out.waiting = "waiting for a pod to terminate before scaling down"
        elif all(_running_and_ready(by_ordinal[o]) for o in by_ordinal if o < replicas):
            out.delete.append(by_ordinal[condemned[0]])
        else:
            out.waiting = "waiting for every pod to be Ready before scaling down"
        return out
    if terminating and parallel:
        return out

    # rolling update: highest ordinal first, one at a time, down to the partition
    if rolling:
        in_range = [by_ordinal[o] for o in range(replicas) if o in by_ordinal]
        if not all(_running_and_ready(p) for p in in_range):
            out.waiting = "waiting for every pod to be Ready before updating the next"
            return out
        for ordinal in range(replicas - 1, partition - 1, -1):
            pod = by_ordinal.get(ordinal)
            if pod is not None and _revision(pod) != update_revision:
                out.delete.append(pod)
                break
    return out


def revisions_to_prune(sts: Obj, revisions: list[Obj], pods: list[Obj], status: Obj) -> list[Obj]:
    """Old ControllerRevisions beyond revisionHistoryLimit that no pod and neither status revision uses."""
    limit = int(sts["spec"].get("revisionHistoryLimit", 10))
    live = {_revision(p) for p in pods} | {status.get("currentRevision"), status.get("updateRevision")}
    old = sorted((r for r in revisions if r["metadata"]["name"] not in live), key=lambda r: int(r.get("revision") or 0))
    return old[:max(0, len(old) - limit)]
