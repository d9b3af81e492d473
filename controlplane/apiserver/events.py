"""Events expire on their own: each is stored under an etcd lease.

Granting a lease per event would double the writes, so leases are shared, as
Kubernetes does: a lease is reused for every event created within one minute
and lives `ttl_seconds` plus that minute (shorter TTLs, as in tests, reuse for less).
"""

from __future__ import annotations

import asyncio
import time

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
