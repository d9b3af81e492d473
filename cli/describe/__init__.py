"""`ctl describe` output: kubectl's layout for pods, a generic layout for other kinds.

    writer.py   the indenting tab writer, Labels/Annotations lines and the Events table
    pod.py      describe pod, following kubectl's describePod
    service.py  describe service, following kubectl's describeService (with its EndpointSlices)
    secret.py   describe secret: sizes, never values (kubectl's describeSecret)
    generic.py  every other kind

Every layout ends with the object's Events, oldest first:

    Events:
      Type     Reason            Age                From               Message
      ----     ------            ----               ----               -------
      Warning  FailedScheduling  61s (x2 over 6m)   default-scheduler  0/2 nodes are available: ...
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.registry import ResourceInfo
from cli.describe.generic import describe_generic
from cli.describe.pod import describe_pod
from cli.describe.secret import describe_secret
from cli.describe.service import describe_service
from cli.describe.writer import event_age, sort_events

__all__ = ["describe", "describe_generic", "describe_pod", "describe_service", "event_age", "sort_events"]


def describe(info: ResourceInfo, obj: dict[str, Any], events: list[dict[str, Any]], *,
             at: datetime | None = None, related: list[dict[str, Any]] | None = None) -> str:
    """`related`: what the layout shows beside the object (a Service's EndpointSlices)."""
    if info.kind == "Pod":
        return describe_pod(obj, events, at=at)
    if info.kind == "Service":
        return describe_service(obj, related or [], events, at=at)
    if info.kind == "Secret":
        return describe_secret(obj)
    return describe_generic(info, obj, events, at=at)
