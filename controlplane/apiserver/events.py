"""Events expire on their own: each is stored under an etcd lease.

Granting a lease per event would double the writes, so leases are shared, as
Kubernetes does: a lease is reused for every event created within one minute
and lives `ttl_seconds` plus that minute (shorter TTLs, as in tests, reuse for less).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from controlplane.storage import Store

REUSE_SECONDS = 60


class EventLeases:
    def __init__(self, store: Store, *, ttl_seconds: int = 3600):
        self.store = store
        self.ttl_seconds = ttl_seconds
        self._lease: int | None = None
        self._granted_at = 0.0
        self._lock = asyncio.Lock()

    async def lease_for_new_event(self) -> int:
        async with self._lock:
            now = time.monotonic()
            reuse = min(REUSE_SECONDS, self.ttl_seconds)
            if self._lease is None or now - self._granted_at > reuse:
                self._lease = await self.store.grant_lease(self.ttl_seconds + reuse)
                self._granted_at = now
            return self._lease


def scheduled_event(pod: dict[str, Any], *, message: str, component: str) -> dict[str, Any]:
    """The `Scheduled` Event of a pod just bound, as the server stores it: the normalized form
    the Event model gives (a unit test checks that), with the server-set metadata — built
    here, without a validation round, because the server writes it itself with the bind."""
    meta = pod["metadata"]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    involved = {"apiVersion": pod.get("apiVersion") or "v1", "kind": pod.get("kind") or "Pod",
                "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid")}
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta.get("namespace"),
                         "uid": str(uuid.uuid4()), "creationTimestamp": now[:19] + "Z"},
            "involvedObject": {k: v for k, v in involved.items() if v},
            "reason": "Scheduled", "message": message, "type": "Normal", "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            **({"source": {"component": component}, "reportingComponent": component} if component else {})}
