"""The etcd client: one gRPC channel over every etcd member, failing over between them.

aetcd talks to one host:port. Here the channel's target names every known
member at once (gRPC's `ipv4:a:p1,b:p2,...` target with the pick_first policy,
protos/targets.py):
gRPC keeps one connection to the first member that answers and, when that
member dies or its connection breaks, reconnects to the next one by itself.
Calls in flight on the broken connection fail with UNAVAILABLE (the storage
layer maps that to Unavailable; reads are retried there, writes are left to the
caller since they may have been applied); calls made meanwhile wait for the new
connection instead of failing. Watches are streams on the channel: a broken
one ends, and its owner (the watch cache) opens it again from the revision
after the last one it applied — on whichever member now carries the channel.

The client follows the member list: every FOLLOW_INTERVAL it asks etcd for
its members' client URLs, and when the set changes (a member added, moved or
removed) it opens a channel to the new set and closes the old one after
CLOSE_GRACE (calls in flight on it finish or fail over). The endpoints given at
start stay in the set, so a member list from a shrunken cluster never leaves
the client with nothing to try.

Reconnection is fast on purpose (protos/targets.FAILOVER_OPTIONS): when etcd
returns after an outage the API is back within about a second.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aetcd
import grpc
from aetcd import rpc
from aetcd import watcher as aetcd_watcher

from protos.targets import FAILOVER_OPTIONS, channel_target, parse_address as parse_endpoint

log = logging.getLogger(__name__)

FOLLOW_INTERVAL = 5.0
CLOSE_GRACE = 30.0


class EtcdClient(aetcd.Client):
    """aetcd's client on a channel over all members (see the module docstring)."""

    def __init__(self, endpoints: list[str], *, timeout: float = 5, options: dict[str, Any] | None = None,
                 follow_members: bool = True, tls: grpc.ChannelCredentials | None = None):
        if not endpoints:
            raise ValueError("no etcd endpoints given")
        for endpoint in endpoints:
            parse_endpoint(endpoint)   # a bad endpoint is an error now, with its name
        host, port = parse_endpoint(endpoints[0])
        super().__init__(host=host, port=port, timeout=timeout, options={**(options or {}), **dict(FAILOVER_OPTIONS)})
        self.configured = list(endpoints)
        self.endpoints = list(endpoints)
        self.follow_members = follow_members
        self.tls = tls
        self._follower: asyncio.Task | None = None
        self._old_channels: set[asyncio.Task] = set()

    def _open(self, endpoints: list[str]) -> None:
        target, options = channel_target(endpoints), list(self._options.items())
        if self.tls is None:
            self.channel = rpc.insecure_channel(target, options=options)
        else:
            # One channel over several members has one authority for all of them: the
            # first member's host name, which every member's certificate must then carry
            # (docs/OPERATIONS.md, "High availability").
            if len(endpoints) > 1:
                options.append(("grpc.ssl_target_name_override", parse_endpoint(endpoints[0])[0]))
            self.channel = grpc.aio.secure_channel(target, self.tls, options=options)
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = aetcd_watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout,
                                              metadata=self.metadata)

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        self._open(self.endpoints)
        self._connected.set()
        if self.follow_members and self._follower is None:
            self._follower = asyncio.create_task(self._follow(), name="etcd-member-list")

    async def member_urls(self) -> list[str]:
        """The client URLs every etcd member advertises."""
        reply = await self.clusterstub.MemberList(rpc.MemberListRequest(), timeout=self._timeout,
                                                  metadata=self.metadata)
        return [url for member in reply.members for url in member.clientURLs]

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL)
            try:
                members = [f"{h}:{p}" for h, p in map(parse_endpoint, await self.member_urls())]
            except Exception as exc:   # no member answers now: keep what we have
                log.debug("etcd member list: %r", exc)
                continue
            wanted = list(dict.fromkeys(members + self.configured))
            if set(wanted) != set(self.endpoints):
                log.info("etcd members changed: now %s (was %s)", ",".join(wanted), ",".join(self.endpoints))
                self.switch(wanted)

    def switch(self, endpoints: list[str]) -> None:
        """Use a channel over `endpoints` from now on; the old one closes after CLOSE_GRACE."""
        old, old_watcher = self.channel, self._watcher
        self.endpoints = list(endpoints)
        self._open(self.endpoints)

        async def close_later() -> None:
            await asyncio.sleep(CLOSE_GRACE)
            if old_watcher is not None:
                await old_watcher.shutdown()
            if old is not None:
                await old.close()
        task = asyncio.create_task(close_later(), name="etcd-old-channel")
        self._old_channels.add(task)
        task.add_done_callback(self._old_channels.discard)

    async def close(self) -> None:
        for task in [self._follower, *self._old_channels]:
            if task is not None:
                task.cancel()
        self._follower = None
        await super().close()


async def connect_etcd(endpoints: list[str], *, timeout: float = 30.0, options: dict[str, Any] | None = None,
                       follow_members: bool = True, tls: grpc.ChannelCredentials | None = None) -> EtcdClient:
    """A client over `endpoints` (over TLS when `tls` is given), once one of them answers
    (within `timeout`)."""
    client = EtcdClient(endpoints, timeout=5, options=options, follow_members=follow_members, tls=tls)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Exception | None = None
    await client.connect()
    while True:
        try:
            await client.status()
            return client
        except Exception as exc:
            last = exc
        if loop.time() >= deadline:
            await client.close()
            raise RuntimeError(f"cannot reach etcd at {','.join(endpoints)}: {last!r}")
        await asyncio.sleep(0.2)
