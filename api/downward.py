"""The downward API: references from a container to facts about its own pod.

`ObjectFieldSelector` names a pod field (`metadata.name`, `status.podIP`,
`metadata.labels['app']`); `ResourceFieldSelector` names a container's
request or limit (`limits.memory`). Environment variables (api/container.py)
and downwardAPI volumes (api/volumes.py) both use them; the agent resolves
them when it starts a container.
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, required, unsupported
from api.fieldtypes import Quantity
from api.selectors import check_label_key

# Fields an environment variable may take from its pod.
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
# A downwardAPI volume file may also hold all labels or annotations.
VOLUME_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels",
                      "metadata.annotations")
RESOURCE_FIELDS = ("limits.cpu", "limits.memory", "limits.ephemeral-storage",
                   "requests.cpu", "requests.memory", "requests.ephemeral-storage")


class ObjectFieldSelector(ApiModel):
    """Selects a field of the pod."""

    api_version: str = Field("v1", description="Version of the schema the fieldPath is written in.")
    field_path: str = Field(description="Path of the field to select, e.g. metadata.name or status.podIP.")


class ResourceFieldSelector(ApiModel):
    """Selects a resource request or limit of a container."""

    container_name: Optional[str] = Field(None, description="Container name; required for volumes, "
                                                            "defaults to this container for env.")
    resource: str = Field(description="Resource to select: limits.cpu, limits.memory, requests.cpu, ...")
    divisor: Optional[Quantity] = Field(None, description="Output unit, e.g. 1m or 1Mi; defaults to 1.")


def check_field_ref(ref: ObjectFieldSelector, path: str, *, allowed: tuple[str, ...]) -> list[FieldError]:
    """fieldPath must be one of `allowed`, or metadata.labels['key'] / metadata.annotations['key']."""
    field_path = ref.field_path
    if ref.api_version != "v1":
        return [unsupported(f"{path}.apiVersion", ref.api_version, ("v1",))]
    for prefix in ("metadata.labels[", "metadata.annotations["):
        if field_path.startswith(prefix) and field_path.endswith("]"):
            key = field_path[len(prefix):-1].strip("'\"")
            if msg := check_label_key(key):
                return [FieldError(f"{path}.fieldPath", msg)]
            return []
    if field_path not in allowed:
        return [unsupported(f"{path}.fieldPath", field_path, allowed)]
    return []


def check_resource_field_ref(ref: ResourceFieldSelector, path: str, *, need_container: bool) -> list[FieldError]:
    errors = []
    if need_container and not ref.container_name:
        errors.append(required(f"{path}.containerName"))
    if ref.resource not in RESOURCE_FIELDS:
        errors.append(unsupported(f"{path}.resource", ref.resource, RESOURCE_FIELDS))
    return errors
