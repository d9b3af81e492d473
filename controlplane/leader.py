"""Leader election among several `skiff-controlplane` processes sharing one etcd.

Every process serves the API; exactly one — the leader — also runs the scheduler
and the controllers. A candidate becomes leader by creating the election key
under an etcd lease in one transaction (create only if absent). It keeps the
lease alive every ttl/3; if a renewal fails or the key is no longer ours, it
steps down at once. When the leader dies, its lease expires after `ttl` seconds,
the key vanishes, and a waiting candidate (polling every ttl/4) takes over —
so failover takes at most about ttl + ttl/4 seconds.

The leader also reports itself in the Lease object kube-system/skiff-controlplane
(`publish_leader`), for people and tests; the etcd key remains the only lock.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import os
from typing import TYPE_CHECKING, Awaitable, Callable

import aetcd

if TYPE_CHECKING:
    from controlplane.client import Client

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(self, client: aetcd.Client, *, key: bytes, identity: str | None = None, ttl: int = 5):
        self.client = client
        self.key = key
        self.identity = identity or f"{socket.gethostname()}-{os.getpid()}"
        self.ttl = ttl
        self.is_leader = False

    async def _try_acquire(self) -> int | None:
        lease = await self.client.lease(self.ttl)
        tx = self.client.transactions
        ok, _ = await self.client.transaction(compare=[tx.create(self.key) == 0],
                                              success=[tx.put(self.key, self.identity.encode(), lease=lease.id)],
                                              failure=[])
        if ok:
            return lease.id
        await self.client.revoke_lease(lease.id)
        return None

    async def _hold(self, lease_id: int) -> None:
        """Renew until renewal fails or the key is no longer ours; then return."""
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                response = await asyncio.wait_for(self.client.refresh_lease(lease_id), self.ttl / 2)
                ttl_left = response.TTL if response is not None else 0
                current = await self.client.get(self.key)
                if ttl_left <= 0 or current is None or current.value != self.identity.encode():
                    log.warning("leadership lost (lease expired or key taken)")
                    return
            except Exception as exc:
                log.warning("leadership renewal failed: %r", exc)
                return

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; while leader, run `lead()` (cancelled when leadership is lost)."""
        while True:
            try:
                lease_id = await self._try_acquire()
            except Exception as exc:
                log.debug("election attempt failed: %r", exc)
                lease_id = None
            if lease_id is None:
                await asyncio.sleep(self.ttl / 4)
                continue
            log.info("%s became the leader", self.identity)
            self.is_leader = True
            leading = asyncio.create_task(lead(), name="leader-work")
            holding = asyncio.create_task(self._hold(lease_id), name="leader-lease")
            try:
                done, _ = await asyncio.wait({leading, holding}, return_when=asyncio.FIRST_COMPLETED)
                if leading in done and leading.exception() is not None:
                    log.error("leader work failed", exc_info=leading.exception())
            finally:
                self.is_leader = False
                for task in (leading, holding):
                    task.cancel()
                await asyncio.gather(leading, holding, return_exceptions=True)
                try:
                    await self.client.revoke_lease(lease_id)
                except Exception:
                    pass
            log.info("%s stepped down", self.identity)
            await asyncio.sleep(self.ttl / 4)


# -- making the leader visible ------------------------------------------------------------

LEADER_LEASE_NAMESPACE = "kube-system"
LEADER_LEASE_NAME = "skiff-controlplane"


async def publish_leader(client: "Client", *, identity: str, ttl: int) -> None:
    """While leading, record it in the Lease kube-system/skiff-controlplane (holderIdentity,
    acquireTime, renewTime every ttl/3, leaseTransitions), so users and tests can see who
    leads: `ctl get lease -n kube-system skiff-controlplane -o yaml`. The etcd key stays the
    lock; this object is only a report, and failing to write it never costs leadership."""
    from controlplane.client import ApiError, NotFound
    from api.nodelease import now_micro

    async def write(first: bool) -> None:
        stamp = now_micro()
        try:
            lease = await client.get("leases", LEADER_LEASE_NAME, LEADER_LEASE_NAMESPACE)
        except NotFound:
            lease = None
        if lease is None:
            await client.create({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                 "metadata": {"name": LEADER_LEASE_NAME, "namespace": LEADER_LEASE_NAMESPACE},
                                 "spec": {"holderIdentity": identity, "leaseDurationSeconds": ttl,
                                          "acquireTime": stamp, "renewTime": stamp, "leaseTransitions": 0}})
            return
        spec = dict(lease.get("spec") or {})
        if first and spec.get("holderIdentity") != identity:
            spec.update(holderIdentity=identity, acquireTime=stamp,
                        leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1)
        spec.update(renewTime=stamp, leaseDurationSeconds=ttl)
        await client.update({**lease, "spec": spec})

    first = True
    while True:
        try:
            await write(first)
            first = False
        except ApiError as exc:
            log.warning("could not record leadership in Lease %s/%s: %s", LEADER_LEASE_NAMESPACE,
                        LEADER_LEASE_NAME, exc.message)
            await asyncio.sleep(0.2)
            continue
        await asyncio.sleep(ttl / 3)
