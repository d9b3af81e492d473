"""The `scale` subresource (autoscaling/v1 Scale) of the kinds with `spec.replicas`: what
`kubectl scale` reads and patches. A Scale is a view of the object: its replicas, and
its selector as a string; writing one changes the object's `spec.replicas` (an update
of the object, through the shared verbs)."""

from __future__ import annotations

from typing import Any

from api.errors import FieldError, ValidationFailed
from api.printing.columns import format_selector
from api.registry import ResourceInfo

SCALABLE = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"})


def scalable(info: ResourceInfo) -> bool:
    return info.kind in SCALABLE


def to_scale(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0), "selector": format_selector(spec.get("selector"))}}


def with_replicas(obj: dict[str, Any], scale: Any) -> dict[str, Any]:
    """`obj` with the replicas a written Scale asks for."""
    replicas = ((scale or {}).get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise ValidationFailed(FieldError("spec.replicas", f"Invalid value: {replicas!r}: must be an integer"),
                               kind="Scale", name=str((obj.get("metadata") or {}).get("name") or ""))
    version = ((scale.get("metadata") or {}).get("resourceVersion"))
    out = {**obj, "spec": {**(obj.get("spec") or {}), "replicas": replicas}}
    if version:   # a Scale read earlier pins the object's version
        out["metadata"] = {**(obj.get("metadata") or {}), "resourceVersion": version}
    return out
