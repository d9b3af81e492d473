"""Recording Events, as components tell users what happened (`Scheduled`, `Pulled`, ...).

An `EventRecorder` writes an Event about an object; the same (object, type,
reason, message) repeated bumps `count` and `lastTimestamp` of the existing
Event instead of writing a new one — what makes `61s (x2 over 6m23s)` in
`ctl describe`. Writes happen in the background: recording never blocks or
fails the caller.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime, timezone
from typing import Any

from controlplane.client.client import Client
from controlplane.client.errors import ApiError

log = logging.getLogger(__name__)
NORMAL, WARNING = "Normal", "Warning"


def _now() -> str:
    # Microseconds keep events that happen within one second in order (`ctl describe` sorts by time).
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventRecorder:
    def __init__(self, client: Client, *, component: str, host: str = "", max_pending: int = 1000):
        self.client = client
        self.component = component
        self.host = host
        self._seen: dict[tuple, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task] = set()
        self.max_pending = max_pending

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Record in the background (fire and forget)."""
        if len(self._tasks) >= self.max_pending:
            log.warning("dropping event %s for %s: too many pending", reason, (obj.get("metadata") or {}).get("name"))
            return
        task = asyncio.get_running_loop().create_task(self.record(obj, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def record(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> dict[str, Any] | None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        involved = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"),
                    "namespace": meta.get("namespace"), "uid": meta.get("uid")}
        involved = {k: v for k, v in involved.items() if v}
        key = (involved.get("uid") or involved.get("name"), involved.get("kind"), type_, reason, message)
        now = _now()
        try:
            previous = self._seen.get(key)
            if previous is not None:
                updated = dict(previous)
                updated["count"] = int(previous.get("count", 1)) + 1
                updated["lastTimestamp"] = now
                try:
                    written = await self.client.update(updated)
                    self._seen[key] = written
                    return written
                except ApiError:
                    self._seen.pop(key, None)  # expired or changed: write a new one
            event = {"apiVersion": "v1", "kind": "Event",
                     "metadata": {"name": f"{meta.get('name', 'x')}.{secrets.token_hex(8)}", "namespace": namespace},
                     "involvedObject": involved, "reason": reason, "message": message, "type": type_,
                     "count": 1, "firstTimestamp": now, "lastTimestamp": now,
                     "source": {k: v for k, v in (("component", self.component), ("host", self.host)) if v},
                     "reportingComponent": self.component}
            written = await self.client.create(event)
            if len(self._seen) > 4096:
                self._seen.clear()
            self._seen[key] = written
            return written
        except ApiError as exc:
            log.warning("could not record event %s %s: %s", reason, involved.get("name"), exc.message)
            return None

    async def flush(self, timeout: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
