"""ResourceQuota (v1) and LimitRange (v1): what a namespace may hold, and the defaults of its containers.

A ResourceQuota's `spec.hard` caps, per namespace:
- counts: `pods`, `services`, `configmaps`, `secrets`, `persistentvolumeclaims`,
  `resourcequotas`, `services.nodeports`, and `count/<plural>.<group>` for any kind
  (`count/deployments.apps`, `count/jobs.batch`);
- compute over the namespace's pods that have not finished: `requests.cpu`,
  `requests.memory`, `limits.cpu`, `limits.memory` (`cpu` and `memory` mean the requests).
Admission (controlplane/admission/quota.py) refuses a create that would go over and
charges `status.used`; the ResourceQuota controller recomputes `status.used` from what exists.

A LimitRange gives containers default requests and limits (`defaultRequest`, `default`)
and bounds them (`min`, `max`, `maxLimitRequestRatio`), per Container or per Pod.
"""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, invalid
from api.fieldtypes import ResourceList
from api.quantity import parse_quantity
from api.registry import ResourceInfo, register
from api.resource import Resource

COUNTED = ("pods", "services", "configmaps", "secrets", "persistentvolumeclaims", "resourcequotas",
           "replicationcontrollers", "services.nodeports", "services.loadbalancers")
COMPUTE = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory",
           "requests.ephemeral-storage", "limits.ephemeral-storage", "ephemeral-storage")
_COUNT = re.compile(r"^count/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class ResourceQuotaSpec(ApiModel):
    """The caps of the namespace."""

    hard: Optional[ResourceList] = Field(None, description="Most of each resource the namespace may use, e.g. "
                                                            "pods: 10, requests.cpu: '4', count/deployments.apps: 5.")


class ResourceQuotaStatus(ApiModel):
    """What the namespace uses now."""

    hard: Optional[ResourceList] = Field(None, description="The caps enforced.")
    used: Optional[ResourceList] = Field(None, description="What is used of each capped resource.")


class ResourceQuota(Resource):
    """Caps the objects and compute resources of a namespace."""

    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["ResourceQuota"] = "ResourceQuota"
    spec: ResourceQuotaSpec = Field(default_factory=ResourceQuotaSpec, description="The caps.")
    status: Optional[ResourceQuotaStatus] = Field(None, description="Usage, kept by the quota controller.")

    def validate_semantics(self) -> list[FieldError]:
        errors = []
        for name, value in (self.spec.hard or {}).items():
            path = f"spec.hard[{name}]"
            if name not in COUNTED and name not in COMPUTE and not _COUNT.match(name) and "/" not in name:
                errors.append(invalid(path, name, "must be a standard resource for quota"))
            elif parse_quantity(value) < 0:
                errors.append(invalid(path, value, "must be greater than or equal to 0"))
        return errors


class LimitRangeItem(ApiModel):
    """Defaults and bounds for one type of object."""

    type: Literal["Container", "Pod", "PersistentVolumeClaim"] = Field(description="Container, Pod or "
                                                                                   "PersistentVolumeClaim.")
    max: Optional[ResourceList] = Field(None, description="Largest limit allowed.")
    min: Optional[ResourceList] = Field(None, description="Smallest request allowed.")
    default: Optional[ResourceList] = Field(None, description="Limit given to containers without one.")
    default_request: Optional[ResourceList] = Field(None, description="Request given to containers without one.")
    max_limit_request_ratio: Optional[ResourceList] = Field(None, description="Largest limit/request ratio.")


class LimitRangeSpec(ApiModel):
    """The limits of a namespace."""

    limits: list[LimitRangeItem] = Field(description="One item per type.")


class LimitRange(Resource):
    """Default requests and limits of a namespace's containers, and their bounds."""

    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["LimitRange"] = "LimitRange"
    spec: LimitRangeSpec = Field(description="The limits.")

    def validate_semantics(self) -> list[FieldError]:
        errors = []
        for i, item in enumerate(self.spec.limits):
            path = f"spec.limits[{i}]"
            if item.type == "Pod" and (item.default or item.default_request):
                errors.append(invalid(f"{path}.default", item.default or item.default_request,
                                      "may not be specified when `type` is 'Pod'"))
            for name, low in (item.min or {}).items():
                for label, other in (("max", item.max), ("default", item.default),
                                     ("defaultRequest", item.default_request)):
                    if other and name in other and parse_quantity(other[name]) < parse_quantity(low):
                        errors.append(invalid(f"{path}.{label}[{name}]", other[name],
                                              f"min value {low} is greater than {label} value {other[name]}"))
            for name, high in (item.max or {}).items():
                for label, other in (("default", item.default), ("defaultRequest", item.default_request)):
                    if other and name in other and parse_quantity(other[name]) > parse_quantity(high):
                        errors.append(invalid(f"{path}.{label}[{name}]", other[name],
                                              f"{label} value {other[name]} is greater than max value {high}"))
        return errors


register(ResourceInfo(kind="ResourceQuota", plural="resourcequotas", model=ResourceQuota, short_names=("quota",)))
register(ResourceInfo(kind="LimitRange", plural="limitranges", model=LimitRange, short_names=("limits",),
                      has_status=False))
