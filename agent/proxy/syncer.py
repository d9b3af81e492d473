"""ServiceProxy: keeps the node's proxy table equal to the Services and EndpointSlices it is fed.

Informer handlers (`watch(services, slices)`) only record the object and mark its Service
dirty, with the time of the first change not yet programmed. One task (`run`) turns dirty
Services into one nft transaction at a time:

- the first pass, and any pass after a failed one, is a full sync: the whole table
  from the current objects, replacing the old table atomically (transaction.full_script);
- every other pass recomputes only the dirty Services' fragments and applies what differs
  from what was applied (transaction.update_ops), as one nf_tables netlink batch written
  without nft (nft.py, netlink.py) - other Services' chains and elements are not touched
  and nothing is read back, so the cost of a change hardly grows with the number of
  Services (the kernel still checks the table's jumps for loops on each commit);
- changes that arrive while a transaction runs are batched into the next one;
- every `check_interval` seconds it asks whether the table is still there (someone may
  have run `nft flush ruleset` or deleted it) and does a full sync if not; every
  `resync_interval` seconds a full sync anyway, which repairs hand edits of chains.

The first pass waits until the caller's informers have listed (`ready`): a table built
from half the Services would replace a complete one left by the agent's previous life.
After each transaction, UDP flows to endpoints that went are deleted from conntrack
(conntrack.py). `latencies` keeps, per programmed Service change, seconds from the
first unprogrammed event to the transaction's commit - the network programming latency.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any, Awaitable, Callable, Iterable

from api import gcpolicy

from .conntrack import StaleFlow, delete_flows
from .model import ServicePort, service_key, service_ports, slice_service_key
from .nft import Nft
from .ruleset import TABLE, Fragment, Ruleset, fragment
from .transaction import Op, full_script, hairpin_ops, update_ops

log = logging.getLogger(__name__)
Key = tuple[str, str]
PLAN_ON_LOOP = 16          # dirty Services computed on the event loop; more go to the worker thread


class ServiceProxy:
    def __init__(self, *, node_name: str, cluster_cidr: str, table: str = TABLE, nft: Nft | None = None,
                 check_interval: float = 10.0, resync_interval: float = 3600.0,
                 flush_conntrack: bool = True) -> None:
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr
        self.table = table
        self.nft = nft or Nft()
        self.check_interval = check_interval
        self.resync_interval = resync_interval
        self.flush_conntrack = flush_conntrack
        self.services: dict[Key, dict[str, Any]] = {}
        self.slices: dict[Key, dict[str, dict[str, Any]]] = {}     # service key -> slice name -> slice
        self._slice_owner: dict[Key, Key] = {}                      # (namespace, slice name) -> service key
        self._applied: dict[Key, tuple[list[ServicePort], Fragment]] = {}
        self._hairpin: collections.Counter[str] = collections.Counter()
        self._dirty: dict[Key, float] = {}
        self._full = True
        self._wake = asyncio.Event()
        self.latencies: collections.deque[float] = collections.deque(maxlen=200_000)
        self.syncs = 0
        self.full_syncs = 0
        self.last_error: str = ""
        self.busy = False              # a transaction is being applied
        # Called after each applied pass with the Services it programmed and the time (time.monotonic).
        self.on_programmed: list[Callable[[list[Key], float], None]] = []
        self.nft_seconds: collections.deque[float] = collections.deque(maxlen=10_000)   # per transaction
        gcpolicy.install()   # its rendered Services live long and make full collections long; see api/gcpolicy.py

    # -- feeding ------------------------------------------------------------------------------

    def _mark(self, key: Key) -> None:
        self._dirty.setdefault(key, time.monotonic())
        self._wake.set()

    def service_changed(self, service: dict[str, Any]) -> None:
        key = service_key(service)
        self.services[key] = service
        self._mark(key)

    def service_deleted(self, service: dict[str, Any]) -> None:
        key = service_key(service)
        self.services.pop(key, None)
        self._mark(key)

    def slice_changed(self, endpoint_slice: dict[str, Any]) -> None:
        meta = endpoint_slice.get("metadata") or {}
        slice_id = (meta.get("namespace") or "default", meta.get("name") or "")
        owner = slice_service_key(endpoint_slice)
        earlier = self._slice_owner.get(slice_id)
        if earlier is not None and earlier != owner:
            self._drop_slice(slice_id)
        if owner is None:
            return
        self._slice_owner[slice_id] = owner
        self.slices.setdefault(owner, {})[slice_id[1]] = endpoint_slice
        self._mark(owner)

    def slice_deleted(self, endpoint_slice: dict[str, Any]) -> None:
        meta = endpoint_slice.get("metadata") or {}
        self._drop_slice((meta.get("namespace") or "default", meta.get("name") or ""))

    def _drop_slice(self, slice_id: Key) -> None:
        owner = self._slice_owner.pop(slice_id, None)
        if owner is None:
            return
        slices = self.slices.get(owner, {})
        slices.pop(slice_id[1], None)
        if not slices:
            self.slices.pop(owner, None)
        self._mark(owner)

    def watch(self, services: Any, slices: Any) -> None:
        """Register on two informers (controlplane.client.informer.Informer) of services and endpointslices."""
        services.add_handlers(on_add=self.service_changed, on_update=lambda old, new: self.service_changed(new),
                              on_delete=self.service_deleted)
        slices.add_handlers(on_add=self.slice_changed, on_update=lambda old, new: self.slice_changed(new),
                            on_delete=self.slice_deleted)

    # -- computing ----------------------------------------------------------------------------

    def _snapshot(self, keys: Iterable[Key]) -> dict[Key, tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
        """The objects of `keys` as they are now, for computing off the event loop (the informers keep
        changing self.services and self.slices on it meanwhile)."""
        return {key: (self.services.get(key), list(self.slices.get(key, {}).values())) for key in keys}

    def _desired(self, snapshot: dict[Key, tuple[dict[str, Any] | None, list[dict[str, Any]]]]
                 ) -> dict[Key, tuple[list[ServicePort], Fragment] | None]:
        """Pure: each Service's ports and fragment (None: not there)."""
        out: dict[Key, tuple[list[ServicePort], Fragment] | None] = {}
        for key, (service, slices) in snapshot.items():
            if service is None:
                out[key] = None
                continue
            ports = service_ports(service, slices)
            out[key] = ports, fragment(ports, node_name=self.node_name, cluster_cidr=self.cluster_cidr)
        return out

    def ruleset(self) -> Ruleset:
        """The whole desired table (for tests and the full sync)."""
        return Ruleset.build(d[1] for d in self._desired(self._snapshot(self.services)).values() if d is not None)

    # -- applying -----------------------------------------------------------------------------

    async def sync(self) -> None:
        """One pass: full or incremental; raises (and arranges a full sync next) if nft refused it."""
        dirty, self._dirty = self._dirty, {}
        full = self._full
        self.busy = True
        try:
            if full:
                await self._sync_full()
            else:
                await self._sync_changes(dirty)
        except BaseException as exc:
            self._full = True
            for key, since in dirty.items():
                self._dirty.setdefault(key, since)
            self.last_error = str(exc)
            raise
        finally:
            self.busy = False
        done = time.monotonic()
        self.syncs += 1
        self.latencies.extend(done - since for since in dirty.values())
        for callback in self.on_programmed:
            callback(list(dirty), done)

    # Where the rules are computed. A full sync, or many Services at once, on the worker thread
    # (self.nft.call): for 1,000 Services that is seconds of Python, which the agent's other work
    # - its cluster DNS answers among it - would otherwise wait for. A few Services on the event
    # loop itself: a fraction of a millisecond each, while a thread computing Python holds the GIL
    # the loop then waits for, and a thread holding the GIL can be descheduled for as long as the
    # machine is busy - measured with the cluster DNS server in the same loop at real-time priority
    # (bench/cluster_dns.py --proxy-churn, 20 changes/s, load 17): p99 5.9 ms planned on the loop,
    # 156 ms planned on the thread.

    def _plan_full(self, snapshot: dict[Key, tuple[dict[str, Any] | None, list[dict[str, Any]]]]
                   ) -> tuple[dict[Key, tuple[list[ServicePort], Fragment]], Ruleset, str]:
        desired = {key: d for key, d in self._desired(snapshot).items() if d is not None}
        ruleset = Ruleset.build(fragment_ for _, fragment_ in desired.values())
        return desired, ruleset, full_script(self.table, ruleset, cluster_cidr=self.cluster_cidr)

    def _write_full(self, snapshot: dict[Key, tuple[dict[str, Any] | None, list[dict[str, Any]]]]
                    ) -> tuple[dict[Key, tuple[list[ServicePort], Fragment]], Ruleset]:
        desired, ruleset, script = self._plan_full(snapshot)
        self.nft.run_now(script)
        return desired, ruleset

    async def _sync_full(self) -> None:
        previous = self._applied
        desired, ruleset = await self.nft.call(self._write_full, self._snapshot(self.services))
        self._applied = desired
        self._hairpin = collections.Counter(ip for _, part in desired.values() for ip in part.hairpin)
        self._full = False
        self.full_syncs += 1
        log.info("service proxy: table %s programmed in full: %d Services, %d chains, %d map elements",
                 self.table, len(desired), len(ruleset.chains), len(ruleset.elements))
        if previous:      # at start nothing is known of the flows: leave them (they may be fine)
            await self._forget_flows(set(previous) | set(desired), previous, desired)

    def _plan_changes(self, snapshot: dict[Key, tuple[dict[str, Any] | None, list[dict[str, Any]]]]
                      ) -> tuple[dict[Key, tuple[list[ServicePort], Fragment] | None], list[Op],
                                 collections.Counter[str]]:
        """The dirty Services' new state, the ops from what was applied to it, and how many Services
        list each hairpin address more (or fewer) than before. Reads self._applied and self._hairpin,
        which only sync() changes, after this returns."""
        desired = self._desired(snapshot)
        changes = []
        delta: collections.Counter[str] = collections.Counter()
        for key, new in desired.items():
            old = self._applied.get(key)
            changes.append((old[1] if old else None, new[1] if new else None))
            delta.subtract(old[1].hairpin if old else ())
            delta.update(new[1].hairpin if new else ())
        added = sorted(ip for ip, d in delta.items() if d > 0 and self._hairpin[ip] <= 0)
        removed = sorted(ip for ip, d in delta.items() if d < 0 and self._hairpin[ip] + d <= 0)
        return desired, update_ops(changes) + hairpin_ops(added=added, removed=removed), delta

    async def _sync_changes(self, dirty: dict[Key, float]) -> None:
        if not dirty:
            return
        snapshot = self._snapshot(dirty)
        if len(dirty) <= PLAN_ON_LOOP:
            desired, ops, delta = self._plan_changes(snapshot)
        else:
            desired, ops, delta = await self.nft.call(self._plan_changes, snapshot)
        if ops:
            started = time.perf_counter()
            await self.nft.apply(self.table, ops)
            self.nft_seconds.append(time.perf_counter() - started)
        previous = {key: self._applied[key] for key in dirty if key in self._applied}
        for key, new in desired.items():
            if new is None:
                self._applied.pop(key, None)
            else:
                self._applied[key] = new
        for ip, d in delta.items():
            count = self._hairpin[ip] + d
            if count > 0:
                self._hairpin[ip] = count
            else:
                self._hairpin.pop(ip, None)
        await self._forget_flows(set(dirty), previous, {k: v for k, v in desired.items() if v is not None})

    async def _forget_flows(self, keys: Iterable[Key], old: dict[Key, tuple[list[ServicePort], Fragment]],
                            new: dict[Key, tuple[list[ServicePort], Fragment]]) -> None:
        if not self.flush_conntrack:
            return
        flows = []
        for key in keys:
            flows += stale_flows(old.get(key, ([], None))[0], new.get(key, ([], None))[0])
        if flows:
            try:
                deleted = await self.nft.call(delete_flows, flows)
                log.debug("service proxy: %d stale UDP flows deleted", deleted)
            except Exception as exc:  # noqa: BLE001 - the rules are right; stale flows time out
                log.warning("service proxy: could not delete stale UDP flows: %s", exc)

    async def table_exists(self) -> bool:
        return await self.nft.table_exists(self.table)

    async def run(self, ready: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Sync until cancelled: first in full once `ready()` returns, then as changes come."""
        if ready is not None:
            await ready()
        backoff = 0.1
        last_check = last_full = time.monotonic()
        while True:
            try:
                if self._full or self._dirty:
                    self._wake.clear()
                    was_full = self._full
                    await self.sync()
                    if was_full:
                        last_full = time.monotonic()
                    backoff = 0.1
                now = time.monotonic()
                if now - last_full >= self.resync_interval:
                    self._full = True
                    continue
                if now - last_check >= self.check_interval:
                    last_check = now
                    if not await self.table_exists():
                        log.warning("service proxy: table %s is gone; rebuilding it", self.table)
                        self._full = True
                        continue
                if not self._dirty and not self._full:
                    timeout = max(0.0, min(self.check_interval - (now - last_check),
                                           self.resync_interval - (now - last_full)))
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout)
                    except asyncio.TimeoutError:
                        pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried as a full sync after a pause
                log.warning("service proxy: sync failed (%s); full resync in %.1fs", exc, backoff)
                self._full = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def delete_table(self) -> None:
        await self.nft.run(delete_table_script(self.table))

    async def close(self) -> None:
        await self.nft.close()


def delete_table_script(table: str = TABLE) -> str:
    return f"add table ip {table}\ndelete table ip {table}\n"      # `add` first: idempotent


def stale_flows(old: list[ServicePort], new: list[ServicePort]) -> list[StaleFlow]:
    """UDP flows to forget between two states of one Service's ports."""
    flows = []
    now = {(p.cluster_ip, p.port): p for p in new if p.protocol == "udp"}
    for port in old:
        if port.protocol != "udp":
            continue
        current = now.get((port.cluster_ip, port.port))
        remaining = {e.ip for e in current.usable_endpoints()} if current else set()
        for endpoint in port.usable_endpoints():
            if endpoint.ip not in remaining:
                flows.append(StaleFlow(port.cluster_ip, port.port, endpoint.ip))
                if port.node_port:
                    flows.append(StaleFlow("", port.node_port, endpoint.ip))
    before = {(p.cluster_ip, p.port) for p in old if p.protocol == "udp" and p.usable_endpoints()}
    for key, port in now.items():
        if port.usable_endpoints() and key not in before:
            flows.append(StaleFlow(port.cluster_ip, port.port))
    return flows
