"""Which PersistentVolume fits which claim, and which nodes a volume allows: pure functions.

Shared by the PV controller (controlplane/controllers/persistentvolume.py), which binds
and provisions, and the scheduler's VolumeBinding plugin
(controlplane/scheduler/plugins/volume_binding.py), which keeps a pod off nodes its
volumes cannot reach. Objects are the JSON dicts of api/storage.py's kinds.

A volume fits a claim (Kubernetes' `FindMatchingVolume`) when it is not bound to another
claim, has the claim's class ("" and unset both mean "no class" on the volume), offers
every access mode asked for, has the same volumeMode, and is at least as big; of those
that fit, the smallest wins. A claim that names `spec.volumeName` fits only that volume.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterable, Mapping

from api.affinity import NodeSelector
from api.quantity import QuantityError, parse_quantity
from api.storage import DEFAULT_CLASS_ANNOTATION

Obj = Mapping[str, Any]
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
HOSTNAME_LABEL = "kubernetes.io/hostname"


def _spec(obj: Obj | None) -> Obj:
    return (obj or {}).get("spec") or {}


def _meta(obj: Obj | None) -> Obj:
    return (obj or {}).get("metadata") or {}


def storage_size(resources: Obj | None) -> Fraction:
    try:
        return parse_quantity((resources or {}).get("storage", 0))
    except QuantityError:
        return Fraction(0)


def default_class(classes: Iterable[Obj]) -> str | None:
    """The default StorageClass's name (the newest, if several say so), or None."""
    defaults = [c for c in classes if (_meta(c).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"]
    if not defaults:
        return None
    newest = max(defaults, key=lambda c: (_meta(c).get("creationTimestamp") or "", _meta(c).get("name") or ""))
    return str(newest["metadata"]["name"])


def claim_class(claim: Obj) -> str:
    """The class a claim wants ("" for none); an unset class was filled in by the controller."""
    return _spec(claim).get("storageClassName") or ""


def claim_names(pod: Obj) -> list[str]:
    """The PersistentVolumeClaims a pod's volumes name."""
    return [v["persistentVolumeClaim"]["claimName"] for v in _spec(pod).get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName")]


def is_bound_to(volume: Obj, claim: Obj) -> bool:
    ref = _spec(volume).get("claimRef") or {}
    meta = _meta(claim)
    return (ref.get("name") == meta.get("name") and ref.get("namespace") == meta.get("namespace")
            and (not ref.get("uid") or ref.get("uid") == meta.get("uid")))


def volume_fits_claim(volume: Obj, claim: Obj) -> bool:
    spec, wanted = _spec(volume), _spec(claim)
    if _meta(volume).get("deletionTimestamp"):
        return False
    if spec.get("claimRef") and not is_bound_to(volume, claim):
        return False
    if ((volume.get("status") or {}).get("phase") in ("Released", "Failed")) and not is_bound_to(volume, claim):
        return False
    if wanted.get("volumeName") and wanted["volumeName"] != _meta(volume).get("name"):
        return False
    if (spec.get("storageClassName") or "") != claim_class(claim):
        return False
    if spec.get("volumeMode", "Filesystem") != wanted.get("volumeMode", "Filesystem"):
        return False
    if not set(wanted.get("accessModes") or []) <= set(spec.get("accessModes") or []):
        return False
    return storage_size(spec.get("capacity")) >= storage_size((wanted.get("resources") or {}).get("requests"))


def volume_allows_node(volume: Obj, labels: Mapping[str, str] | None, node_name: str) -> bool:
    """Whether a pod on this node can reach the volume (its nodeAffinity; none: every node)."""
    required = ((_spec(volume).get("nodeAffinity") or {}).get("required"))
    if not required:
        return True
    return NodeSelector.model_validate(required).matches(labels or {}, node_name)


def best_volume(claim: Obj, volumes: Iterable[Obj], *, node: tuple[Mapping[str, str], str] | None = None
                ) -> Obj | None:
    """The smallest volume that fits the claim (and, given (labels, name), is reachable from that node).
    A volume already bound to this claim wins outright."""
    fitting = []
    for volume in volumes:
        if not volume_fits_claim(volume, claim):
            continue
        if node is not None and not volume_allows_node(volume, node[0], node[1]):
            continue
        if is_bound_to(volume, claim):
            return volume
        fitting.append(volume)
    if not fitting:
        return None
    return min(fitting, key=lambda v: (storage_size(_spec(v).get("capacity")), _meta(v).get("name") or ""))


def pinned_node_affinity(node_name: str) -> dict[str, Any]:
    """The nodeAffinity a provisioned local volume gets: only `node_name` (by its hostname label)."""
    return {"required": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [node_name]}]}]}}
