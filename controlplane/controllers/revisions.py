"""A Deployment's revisions: one ReplicaSet per pod template, named by the template's hash.

- `template_hash` is the `pod-template-hash`: FNV-1a (32 bit) of the template's
  canonical JSON (plus the Deployment's collisionCount, bumped if two templates
  ever hash alike), written with the consonants-and-digits alphabet Kubernetes
  uses for generated names (`web-5d9c8bf7c4`). The label goes on the
  ReplicaSet, its selector and its pods, so the ReplicaSets of one Deployment
  never select each other's pods.
- `find_new_replicaset` finds the ReplicaSet whose template equals the
  Deployment's, ignoring that label; every other one is "old".
- Revisions are numbers in the `deployment.kubernetes.io/revision` annotation:
  the new ReplicaSet gets max(old) + 1, also when an old template comes back
  (a rollback), so the history reads in the order things happened. The
  numbers it had before go to `deployment.kubernetes.io/revision-history`.

Used by the Deployment controller (deployment.py) and `ctl rollout` (cli/commands/rollout.py).
"""

from __future__ import annotations

import copy
import json
from typing import Any, Mapping

from api.nodelease import parse_time
from controlplane.controllers.owned import owner_reference

Obj = Mapping[str, Any]
POD_TEMPLATE_HASH = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Deployment annotations that are not copied to its ReplicaSets (nor back on rollback).
SKIPPED_ANNOTATIONS = frozenset({LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                                 "deprecated.deployment.rollback.to"})
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def fnv1a_32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """Kubernetes' rand.SafeEncodeString: no vowels (no words) and no look-alike characters."""
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in text)


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return safe_encode(str(fnv1a_32(data)))


def without_hash(template: Obj) -> dict[str, Any]:
    """A copy of a template without the pod-template-hash label."""
    out = copy.deepcopy(dict(template))
    meta = out.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels.pop(POD_TEMPLATE_HASH, None)
    if meta:
        meta = dict(meta)
        if labels:
            meta["labels"] = labels
        else:
            meta.pop("labels", None)
        out["metadata"] = meta
    return out


def _normal(template: Obj) -> dict[str, Any]:
    out = without_hash(template)
    meta = out.get("metadata")
    if meta is not None and not meta:
        out.pop("metadata")
    return out


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return _normal(a) == _normal(b)


def revision_of(obj: Obj) -> int:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION, "")
    try:
        return int(value)
    except ValueError:
        return 0


def max_revision(replicasets: list[Obj]) -> int:
    return max((revision_of(rs) for rs in replicasets), default=0)


def created_at(obj: Obj) -> float:
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp")) or 0.0


def by_age(replicasets: list[Obj]) -> list[Obj]:
    """Oldest first (then by name, for a stable order)."""
    return sorted(replicasets, key=lambda rs: (created_at(rs), (rs.get("metadata") or {}).get("name", "")))


def by_revision(replicasets: list[Obj]) -> list[Obj]:
    return sorted(replicasets, key=lambda rs: (revision_of(rs), created_at(rs)))


def find_new_replicaset(deployment: Obj, replicasets: list[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's (ignoring the hash label)."""
    template = (deployment.get("spec") or {}).get("template") or {}
    for rs in by_age(replicasets):
        if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, template):
            return rs
    return None


def copied_annotations(source: Obj) -> dict[str, str]:
    annotations = (source.get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in annotations.items() if k not in SKIPPED_ANNOTATIONS}


def new_replicaset(deployment: Obj, *, pod_hash: str, revision: int, replicas: int,
                   max_surge: int) -> dict[str, Any]:
    """The ReplicaSet for the Deployment's current template (not yet created)."""
    meta = deployment["metadata"]
    spec = deployment.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), POD_TEMPLATE_HASH: pod_hash}
    selector = copy.deepcopy(spec.get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH: pod_hash}
    desired = int(spec.get("replicas", 1))
    annotations = {**copied_annotations(deployment), REVISION: str(revision), DESIRED_REPLICAS: str(desired),
                   MAX_REPLICAS: str(desired + max_surge)}
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{meta['name']}-{pod_hash}", "namespace": meta.get("namespace"),
                     "labels": dict(tmeta["labels"]), "annotations": annotations,
                     "ownerReferences": [owner_reference(deployment)]},
        "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                 "selector": selector, "template": template},
    }


def set_new_revision(replicaset: dict[str, Any], deployment: Obj, revision: int) -> bool:
    """Bring an existing new ReplicaSet's annotations up to date (revision, copied annotations).
    Changes `replicaset` in place; True if anything changed."""
    meta = replicaset.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    before = dict(annotations)
    annotations.update(copied_annotations(deployment))
    old = revision_of(replicaset)
    if old < revision:
        annotations[REVISION] = str(revision)
        if old:
            history = [h for h in annotations.get(REVISION_HISTORY, "").split(",") if h]
            annotations[REVISION_HISTORY] = ",".join(history + [str(old)])
    meta["annotations"] = annotations
    return annotations != before


def set_replicas_annotations(replicaset: dict[str, Any], *, desired: int, max_replicas: int) -> bool:
    """Record the Deployment size the ReplicaSet was last scaled for (proportional scaling reads it)."""
    meta = replicaset.setdefault("metadata", {})
    annotations = dict(meta.get("annotations") or {})
    wanted = {DESIRED_REPLICAS: str(desired), MAX_REPLICAS: str(max_replicas)}
    if all(annotations.get(k) == v for k, v in wanted.items()):
        return False
    annotations.update(wanted)
    meta["annotations"] = annotations
    return True


def annotation_int(obj: Obj, key: str) -> int | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
