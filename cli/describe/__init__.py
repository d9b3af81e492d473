"""`ctl describe` output: kubectl's layout for pods, a generic layout for other kinds.

    writer.py   the indenting tab writer, Labels/Annotations lines and the Events table
    pod.py      describe pod, following kubectl's describePod
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
from cli.describe.writer import event_age, sort_events

__all__ = ["describe", "describe_generic", "describe_pod", "event_age", "sort_events"]


def describe(info: ResourceInfo, obj: dict[str, Any], events: list[dict[str, Any]], *,
             at: datetime | None = None) -> str:
    if info.kind == "Pod":
        return describe_pod(obj, events, at=at)
    return describe_generic(info, obj, events, at=at)
