"""Recording Events, as components tell users what happened (`Scheduled`, `Pulled`, ...).

An `EventRecorder` writes an Event about an object; the same (object, type,
reason, message) repeated bumps `count` and `lastTimestamp` of the existing
Event instead of writing a new one — what makes `61s (x2 over 6m23s)` in
`ctl describe`. Writes happen in the background: recording never blocks or
fails the caller.

To bump an Event the recorder needs to know it wrote it, so it remembers, per key,
a small `_Written` record (the Event's name, resourceVersion, count and first
timestamp — everything else is in the key or is the recorder's own) rather than
the whole Event the server sent back (about 3 KiB with its managed fields). The
records are kept in least-recently-used order and the oldest is forgotten beyond
`max_entries`, as Kubernetes' event correlator does (its LRU holds 4096): a
forgotten key that repeats gets a new Event, which is also what happens once an
Event has expired on the server.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from controlplane.client.client import Client
from controlplane.client.errors import ApiError

log = logging.getLogger(__name__)
NORMAL, WARNING = "Normal", "Warning"
DEFAULT_MAX_ENTRIES = 4096

# (involved object's uid or name, its kind, type, reason, message): what makes two Events "the same".
EventKey = tuple[Any, Any, str, str, str]


def _now() -> str:
    # Microseconds keep events that happen within one second in order (`ctl describe` sorts by time).
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class _Written:
    """What the recorder keeps of an Event it wrote: enough to write it again with count + 1.
    (slots: no per-instance __dict__, about 100 bytes instead of 250.)"""

    name: str
    resource_version: str
    count: int
    first_timestamp: str


class EventRecorder:
    def __init__(self, client: Client, *, component: str, host: str = "", max_pending: int = 1000,
                 max_entries: int = DEFAULT_MAX_ENTRIES):
        self.client = client
        self.component = component
        self.host = host
        self.max_pending = max_pending
        self.max_entries = max_entries
        # Insertion-ordered dict used as an LRU: a hit is moved to the end (pop and re-insert),
        # so the first key is always the least recently recorded one.
        self._seen: dict[EventKey, _Written] = {}
        self._tasks: set[asyncio.Task] = set()

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Record in the background (fire and forget)."""
        if len(self._tasks) >= self.max_pending:
            log.warning("dropping event %s for %s: too many pending", reason, (obj.get("metadata") or {}).get("name"))
            return
        task = asyncio.get_running_loop().create_task(self.record(obj, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def record(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> dict[str, Any] | None:
        """Write the Event (or bump the count of the one written before for the same key);
        the Event as stored, or None when the API server refused it (logged)."""
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        involved = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"),
                    "namespace": meta.get("namespace"), "uid": meta.get("uid")}
        involved = {k: v for k, v in involved.items() if v}
        key: EventKey = (involved.get("uid") or involved.get("name"), involved.get("kind"), type_, reason, message)
        now = _now()
        try:
            previous = self._seen.pop(key, None)
            if previous is not None:
                updated = self._event(involved, namespace, previous.name, type_, reason, message,
                                      count=previous.count + 1, first=previous.first_timestamp, last=now)
                updated["metadata"]["resourceVersion"] = previous.resource_version
                try:
                    written = await self.client.update(updated)
                    self._remember(key, written)
                    return written
                except ApiError:
                    pass  # expired or changed: write a new one (the key was popped above)
            name = f"{meta.get('name', 'x')}.{secrets.token_hex(8)}"
            written = await self.client.create(self._event(involved, namespace, name, type_, reason, message,
                                                           count=1, first=now, last=now))
            self._remember(key, written)
            return written
        except ApiError as exc:
            log.warning("could not record event %s %s: %s", reason, involved.get("name"), exc.message)
            return None

    def _event(self, involved: dict[str, Any], namespace: str, name: str, type_: str, reason: str, message: str,
               *, count: int, first: str, last: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": namespace},
                "involvedObject": involved, "reason": reason, "message": message, "type": type_,
                "count": count, "firstTimestamp": first, "lastTimestamp": last,
                "source": {k: v for k, v in (("component", self.component), ("host", self.host)) if v},
                "reportingComponent": self.component}

    def _remember(self, key: EventKey, written: dict[str, Any]) -> None:
        """Keep the compact record of `written` as the most recent entry; forget the oldest beyond max_entries."""
        meta = written.get("metadata") or {}
        self._seen.pop(key, None)  # a concurrent record of the same key may have stored one meanwhile
        self._seen[key] = _Written(name=meta.get("name", ""), resource_version=str(meta.get("resourceVersion", "")),
                                   count=int(written.get("count") or 1),
                                   first_timestamp=written.get("firstTimestamp") or "")
        while len(self._seen) > self.max_entries:
            del self._seen[next(iter(self._seen))]

    @property
    def remembered(self) -> int:
        """How many Event keys are remembered for deduplication (at most max_entries)."""
        return len(self._seen)

    async def flush(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
