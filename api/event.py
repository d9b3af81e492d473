"""Event: a record that something happened to an object (`Scheduled`, `Pulled`, `BackOff`).

Events expire on their own: the API server stores them under an etcd lease
(one hour by default), so they never pile up. A component repeating the same
event bumps `count` and `lastTimestamp` instead of writing a new one.
"""

from __future__ import annotations

from typing import Literal, Optional

from api.base import ApiModel
from api.errors import FieldError
from api.registry import ResourceInfo, register
from api.resource import Resource


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class ObjectReference(ApiModel):
    api_version: Optional[str] = None
    kind: Optional[str] = None
    namespace: Optional[str] = None
    name: Optional[str] = None
    uid: Optional[str] = None
    resource_version: Optional[str] = None
    field_path: Optional[str] = None


class EventSource(ApiModel):
    component: Optional[str] = None
    host: Optional[str] = None


class Event(Resource):
    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["Event"] = "Event"
    involved_object: ObjectReference
    reason: Optional[str] = None
    message: Optional[str] = None
    type: Literal["Normal", "Warning"] = "Normal"
    count: int = 1
    first_timestamp: Optional[str] = None
    last_timestamp: Optional[str] = None
    source: Optional[EventSource] = None
    reporting_component: Optional[str] = None

    def validate_semantics(self) -> list[FieldError]:
        errors = []
        if self.count < 1:
            errors.append(FieldError("count", "must be greater than or equal to 1"))
        if not self.involved_object.name:
            errors.append(FieldError("involvedObject.name", "field required"))
        return errors


register(ResourceInfo(kind="Event", plural="events", model=Event, short_names=("ev",), has_status=False,
                      spec_fields=()))
