"""Storage kinds: PersistentVolume, PersistentVolumeClaim (core/v1) and StorageClass (storage.k8s.io/v1).

A PersistentVolumeClaim asks for storage (a size, access modes, a class); a
PersistentVolume is a piece of it, written by a user (hostPath, local) or made by a
provisioner. The PV controller (controlplane/controllers/persistentvolume.py) binds
claims to volumes — statically by class, capacity and access modes, or by provisioning
through the claim's StorageClass (the built-in `local-path`, a directory on the node
the first pod lands on) — and reclaims released volumes (`Retain` or `Delete`). Which
volume fits which claim, and which node a volume allows, is pure and lives in
api/volumebinding.py, shared by the controller and the scheduler's VolumeBinding plugin.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from api.affinity import NodeSelector, check_node_selector_term
from api.base import ApiModel
from api.errors import FieldError, forbidden, invalid, required, unsupported
from api.fieldtypes import Quantity
from api.names import check_dns1123_subdomain
from api.quantity import QuantityError, parse_quantity
from api.registry import ResourceInfo, register
from api.resource import Resource

ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
AccessMode = Literal["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"]
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class ObjectReference(ApiModel):
    """The claim a volume is bound to."""

    api_version: Optional[str] = Field(None, description="apiVersion of the claim (v1).")
    kind: Optional[str] = Field(None, description="PersistentVolumeClaim.")
    namespace: Optional[str] = Field(None, description="The claim's namespace.")
    name: Optional[str] = Field(None, description="The claim's name.")
    uid: Optional[str] = Field(None, description="The claim's uid: a claim of the same name made later is "
                                                 "another claim.")
    resource_version: Optional[str] = Field(None, description="The claim's resourceVersion when bound.")


class HostPathPVSource(ApiModel):
    """A directory of the node."""

    path: str = Field(description="Absolute path on the node.")
    type: Optional[Literal["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                           "CharDevice", "BlockDevice"]] = Field(None, description='What must exist at path.')


class LocalVolumeSource(ApiModel):
    """A directory of one node (needs nodeAffinity naming that node)."""

    path: str = Field(description="Absolute path on the node.")
    fs_type: Optional[str] = Field(None, description="Ignored: Skiff mounts directories only.")


class VolumeNodeAffinity(ApiModel):
    """Which nodes can reach the volume."""

    required: Optional[NodeSelector] = Field(None, description="Nodes that may use the volume.")


class PersistentVolumeSpec(ApiModel):
    """The desired state of a PersistentVolume."""

    capacity: Optional[dict[str, Quantity]] = Field(None, description="Size: {storage: 1Gi}.")
    access_modes: Optional[list[AccessMode]] = Field(None, description="How the volume can be mounted.")
    claim_ref: Optional[ObjectReference] = Field(None, description="The claim bound to this volume.")
    persistent_volume_reclaim_policy: Literal["Retain", "Delete", "Recycle"] = Field(
        "Retain", description="What happens when the claim is deleted: Retain keeps the data, Delete removes it.")
    storage_class_name: Optional[str] = Field(None, description='Class of the volume; "" or none: no class.')
    mount_options: Optional[list[str]] = Field(None, description="Ignored by Skiff.")
    volume_mode: Literal["Filesystem", "Block"] = Field("Filesystem", description="Filesystem (Block is not "
                                                                                  "supported).")
    node_affinity: Optional[VolumeNodeAffinity] = Field(None, description="Nodes the volume is reachable from.")
    host_path: Optional[HostPathPVSource] = Field(None, description="A directory of the node.")
    local: Optional[LocalVolumeSource] = Field(None, description="A directory of one node.")


class PersistentVolumeStatus(ApiModel):
    """The observed state of a PersistentVolume."""

    phase: Optional[Literal["Pending", "Available", "Bound", "Released", "Failed"]] = Field(
        None, description="Available, Bound, Released or Failed.")
    message: Optional[str] = Field(None, description="Why the volume is in this phase.")
    reason: Optional[str] = Field(None, description="One-word reason.")
    last_phase_transition_time: Optional[str] = Field(None, description="When the phase last changed.")


def _storage_size(capacity: dict[str, str] | None, path: str) -> list[FieldError]:
    if not capacity or "storage" not in capacity:
        return [required(f"{path}.storage")]
    try:
        if parse_quantity(capacity["storage"]) <= 0:
            return [invalid(f"{path}.storage", capacity["storage"], "must be greater than zero")]
    except QuantityError as e:
        return [invalid(f"{path}.storage", capacity["storage"], str(e))]
    extra = sorted(set(capacity) - {"storage"})
    return [unsupported(f"{path}.{k}", k, ["storage"]) for k in extra]


def _check_class_name(name: str | None, path: str) -> list[FieldError]:
    if name and (msg := check_dns1123_subdomain(name)):
        return [invalid(path, name, msg)]
    return []


# PersistentVolume and PersistentVolumeClaim below look alike (the `duplicates` tool pairs them by shape):
# two kinds, two API types, as in Kubernetes.
class PersistentVolume(Resource):
    """A piece of storage in the cluster, bound to at most one claim."""

    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["PersistentVolume"] = "PersistentVolume"
    spec: PersistentVolumeSpec = Field(description="Desired state of the volume.")
    status: Optional[PersistentVolumeStatus] = Field(None, description="Observed state, written by the "
                                                                       "controller.")

    def validate_semantics(self) -> list[FieldError]:
        spec = self.spec
        errors = _storage_size(spec.capacity, "spec.capacity")
        if not spec.access_modes:
            errors.append(required("spec.accessModes"))
        sources = [n for n, v in (("hostPath", spec.host_path), ("local", spec.local)) if v is not None]
        if not sources:
            errors.append(required("spec", "must specify a volume type (hostPath or local)"))
        elif len(sources) > 1:
            errors.append(forbidden(f"spec.{sources[1]}", "may not specify more than 1 volume type"))
        for name, source in (("hostPath", spec.host_path), ("local", spec.local)):
            if source is not None and not source.path.startswith("/"):
                errors.append(invalid(f"spec.{name}.path", source.path, "must be an absolute path"))
            elif source is not None and ".." in source.path.split("/"):
                errors.append(invalid(f"spec.{name}.path", source.path, "must not contain '..'"))
        if spec.local is not None and (spec.node_affinity is None or spec.node_affinity.required is None):
            errors.append(required("spec.nodeAffinity", "Local volumes require node affinity"))
        if spec.node_affinity is not None and spec.node_affinity.required is not None:
            for i, term in enumerate(spec.node_affinity.required.node_selector_terms):
                errors += check_node_selector_term(term, f"spec.nodeAffinity.required.nodeSelectorTerms[{i}]")
        if spec.volume_mode == "Block":
            errors.append(unsupported("spec.volumeMode", "Block", ["Filesystem"]))
        if spec.persistent_volume_reclaim_policy == "Recycle":
            errors.append(unsupported("spec.persistentVolumeReclaimPolicy", "Recycle", ["Retain", "Delete"]))
        errors += _check_class_name(spec.storage_class_name, "spec.storageClassName")
        return errors


class ResourceRequirements(ApiModel):
    """The size a claim asks for."""

    requests: Optional[dict[str, Quantity]] = Field(None, description="Minimum size: {storage: 1Gi}.")
    limits: Optional[dict[str, Quantity]] = Field(None, description="Maximum size (not enforced).")


class PersistentVolumeClaimSpec(ApiModel):
    """The desired state of a PersistentVolumeClaim."""

    access_modes: Optional[list[AccessMode]] = Field(None, description="How the volume must be mountable.")
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements, description="Size wanted.")
    selector: Optional[dict[str, Any]] = Field(None, description="Label query over volumes (not supported: must be empty).")
    storage_class_name: Optional[str] = Field(None, description='Class wanted; unset: the default class; "": '
                                                                'only volumes without a class.')
    volume_name: Optional[str] = Field(None, description="The volume bound to this claim (set by the binder, "
                                                         "or by the user to ask for one volume).")
    volume_mode: Literal["Filesystem", "Block"] = Field("Filesystem", description="Filesystem only.")


class PersistentVolumeClaimStatus(ApiModel):
    """The observed state of a PersistentVolumeClaim."""

    phase: Optional[Literal["Pending", "Bound", "Lost"]] = Field(None, description="Pending, Bound or Lost.")
    access_modes: Optional[list[str]] = Field(None, description="Access modes of the bound volume.")
    capacity: Optional[dict[str, str]] = Field(None, description="Size of the bound volume.")


class PersistentVolumeClaim(Resource):
    """A request for storage, bound to one PersistentVolume."""

    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["PersistentVolumeClaim"] = "PersistentVolumeClaim"
    spec: PersistentVolumeClaimSpec = Field(description="Desired state of the claim.")
    status: Optional[PersistentVolumeClaimStatus] = Field(None, description="Observed state, written by the "
                                                                            "controller.")

    def validate_semantics(self) -> list[FieldError]:
        return check_claim_spec(self.spec, "spec")


def check_claim_spec(spec: PersistentVolumeClaimSpec, path: str) -> list[FieldError]:
    """A claim's own checks, also run on a StatefulSet's volumeClaimTemplates."""
    errors = []
    if not spec.access_modes:
        errors.append(required(f"{path}.accessModes"))
    errors += _storage_size(spec.resources.requests, f"{path}.resources.requests")
    if spec.selector:
        errors.append(forbidden(f"{path}.selector", "volume selectors are not supported by Skiff"))
    if spec.volume_mode == "Block":
        errors.append(unsupported(f"{path}.volumeMode", "Block", ["Filesystem"]))
    errors += _check_class_name(spec.storage_class_name, f"{path}.storageClassName")
    return errors


class StorageClass(Resource):
    """A kind of storage, and the provisioner that makes volumes of it."""

    api_version: Literal["storage.k8s.io/v1"] = "storage.k8s.io/v1"  # type: ignore[assignment]
    kind: Literal["StorageClass"] = "StorageClass"
    provisioner: str = Field(description="Who makes the volumes: rancher.io/local-path (built in) or "
                                         "kubernetes.io/no-provisioner (static volumes only).")
    parameters: Optional[dict[str, str]] = Field(None, description="Provisioner parameters.")
    reclaim_policy: Literal["Retain", "Delete"] = Field("Delete", description="Reclaim policy of provisioned "
                                                                              "volumes.")
    volume_binding_mode: Literal["Immediate", "WaitForFirstConsumer"] = Field(
        "Immediate", description="Immediate: bind when the claim is made; WaitForFirstConsumer: when a pod "
                                 "using it is scheduled, on that pod's node.")
    allow_volume_expansion: Optional[bool] = Field(None, description="Whether claims may grow.")
    mount_options: Optional[list[str]] = Field(None, description="Ignored by Skiff.")


register(ResourceInfo(kind="PersistentVolume", plural="persistentvolumes", model=PersistentVolume,
                      namespaced=False, short_names=("pv",)))
register(ResourceInfo(kind="PersistentVolumeClaim", plural="persistentvolumeclaims", model=PersistentVolumeClaim,
                      short_names=("pvc",)))
register(ResourceInfo(kind="StorageClass", plural="storageclasses", model=StorageClass, group="storage.k8s.io",
                      namespaced=False, short_names=("sc",), has_status=False,
                      spec_fields=("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode")))
