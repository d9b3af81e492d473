"""Binding a pod to a node without ever overfilling the node, even with several
schedulers (or API servers) racing.

Each node has an allocation record in etcd (`<prefix>/_allocations/<node>`): the
requests of the pods bound to it. A bind is one etcd transaction that compares
both the pod's and the record's mod_revision and writes both — so of two racing
binds that would together exceed the node's allocatable, one fails its compare,
re-reads, and is refused with FAILED_PRECONDITION ("Insufficient cpu").

The reads are optimistic, so a bind usually costs that one transaction and no
other etcd round trip: the pod and the node come from the watch caches, and the
allocation record from this API server's copy of the records it last read or
wrote (`Allocations`). A stale copy cannot do harm: the transaction compares the
pod's and the record's mod_revisions, and when either changed its failure branch
returns both as they are now, to check and try again. A refusal (the pod is bound
already, the node is full) is only ever given on what etcd returned, never on a
cached copy alone. Binds to one node through one API server take turns (a lock per
node), so that a batch of binds to a small cluster does not fail on its own
compare-and-swaps; other API servers are kept out by the compare-and-swap alone.

Entries of pods that have since been deleted or finished are dropped lazily at the
next bind, but only once the pods watch cache has caught up past the entry's
revision, so a lagging cache can make the check stricter, never looser.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from api.timestamps import rfc3339
from api.requests import allocatable_dict, pod_requests_dict
from controlplane.apiserver.errors import FailedPrecondition
from controlplane.storage import Conflict, NotFound, Store, codec
from controlplane.storage.store import absent, at_version, put, read
from controlplane.storage.watch_cache import WatchCache

TERMINAL = ("Succeeded", "Failed")
ATTEMPTS = 10   # compare-and-swap rounds against concurrent writes to the pod or the node's record

Record = tuple[int, dict[str, dict[str, Any]]]   # (mod_revision, or 0 if there is none; entries)


class Allocations:
    """This API server's copy of the allocation records, by node: what a bind compares
    against first. Only ever a hint — the transaction checks it."""

    def __init__(self, limit: int = 100_000):
        self.records: dict[str, Record] = {}
        self.limit = limit
        self._locks: dict[str, asyncio.Lock] = {}
        self._allocatable: dict[str, tuple[str, dict[str, int]]] = {}   # node → (resourceVersion, amounts)

    def lock(self, node: str) -> asyncio.Lock:
        """Binds to one node through this server take turns: racing each other on the record's
        compare-and-swap, all but one would fail and retry (a batch of binds to a small cluster)."""
        lock = self._locks.get(node)
        if lock is None:
            if len(self._locks) >= self.limit:
                self._locks = {n: held for n, held in self._locks.items() if held.locked()}
            lock = self._locks[node] = asyncio.Lock()
        return lock

    def allocatable(self, node: dict[str, Any]) -> dict[str, int]:
        """The node's allocatable amounts, parsed once per version of the node."""
        meta = node.get("metadata") or {}
        name, version = meta.get("name") or "", meta.get("resourceVersion") or ""
        known = self._allocatable.get(name)
        if known is None or known[0] != version or not version:
            if len(self._allocatable) >= self.limit:
                self._allocatable.clear()
            known = self._allocatable[name] = (version, allocatable_dict(node))
        return known[1]

    def remember(self, node: str, record: Record) -> None:
        if len(self.records) >= self.limit and node not in self.records:
            self.records.clear()
        self.records[node] = record


def _alloc_key(store: Store, node: str) -> bytes:
    return f"{store.prefix}/_allocations/{node}".encode()


def _live(entry: dict[str, Any], pods: WatchCache, store: Store) -> bool:
    if pods.revision < entry["rev"]:
        return True  # the cache has not seen this pod's bind yet: keep counting it
    key = f"{store.prefix}/pods/{entry['ns']}/{entry['name']}".encode()
    pod = pods.objects.get(key)
    if pod is None or (pod.get("metadata") or {}).get("uid") != entry["uid"]:
        return False
    return (pod.get("status") or {}).get("phase") not in TERMINAL


def check_bindable(pod: dict[str, Any], *, uid: str, resource_version: str) -> None:
    meta = pod["metadata"]
    name = meta["name"]
    if uid and meta.get("uid") != uid:
        raise Conflict(f'Precondition failed: UID in precondition: {uid}, UID in object meta: {meta.get("uid")}')
    version = int(meta["resourceVersion"])
    if resource_version and int(resource_version) != version:
        raise Conflict(f'pods "{name}": resourceVersion {resource_version} is stale, current is {version}',
                       current_version=str(version))
    if meta.get("deletionTimestamp"):
        raise FailedPrecondition(f'pod {name} is being deleted, cannot be assigned to a host')
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        raise Conflict(f'pod {name} is already assigned to node "{node}"')


def bound_copy(pod: dict[str, Any], node_name: str) -> dict[str, Any]:
    """The pod with spec.nodeName set and PodScheduled=True (the pod itself, maybe a
    cached object, is not changed)."""
    status = dict(pod.get("status") or {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append({"type": "PodScheduled", "status": "True", "lastTransitionTime": rfc3339()})
    status["conditions"] = conditions
    return {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node_name}, "status": status}


async def _read_record(store: Store, key: bytes) -> Record:
    current = await store._call(lambda: store.client.get(key))
    return (current.mod_revision, json.loads(current.value)) if current is not None else (0, {})


async def bind_pod(store: Store, *, pods: WatchCache, nodes: WatchCache, allocations: Allocations,
                   namespace: str, name: str, node_name: str, uid: str = "",
                   resource_version: str = "", also_put: Callable[[dict[str, Any]], list[Any]] | None = None
                   ) -> dict[str, Any]:
    """Write the pod bound to node_name if it is still unbound (and matches uid and
    resource_version, when given) and the node still has room for its requests.
    `also_put(pod)` gives further puts (store.put ops) for the same transaction (the Scheduled event)."""
    async with allocations.lock(node_name):
        return await _bind_pod(store, pods=pods, nodes=nodes, allocations=allocations, namespace=namespace,
                               name=name, node_name=node_name, uid=uid, resource_version=resource_version,
                               also_put=also_put)


async def _bind_pod(store: Store, *, pods: WatchCache, nodes: WatchCache, allocations: Allocations,
                    namespace: str, name: str, node_name: str, uid: str, resource_version: str,
                    also_put: Callable[[dict[str, Any]], list[Any]] | None) -> dict[str, Any]:
    pod_key = store.key("pods", namespace, name)
    pod = pods.objects.get(pod_key)
    pod_fresh = pod is None
    if pod is None:
        pod = await store.get("pods", namespace, name)
    node = nodes.objects.get(store.key("nodes", "", node_name))
    if node is None:
        try:
            node = await store.get("nodes", "", node_name)
        except NotFound:
            raise FailedPrecondition(f'cannot bind pod {name}: nodes "{node_name}" not found') from None
    allocatable = allocations.allocatable(node)
    alloc_key = _alloc_key(store, node_name)
    record = allocations.records.get(node_name)
    record_fresh = record is None
    if record is None:
        record = await _read_record(store, alloc_key)
        allocations.remember(node_name, record)

    for _attempt in range(ATTEMPTS):
        try:
            check_bindable(pod, uid=uid, resource_version=resource_version)
        except (Conflict, FailedPrecondition):
            if pod_fresh:
                raise
            pod, pod_fresh = await store.get("pods", namespace, name), True
            continue
        meta = pod["metadata"]
        wanted = pod_requests_dict(pod)
        entries = {k: e for k, e in record[1].items() if _live(e, pods, store)}
        used: dict[str, int] = {}
        for entry in entries.values():
            for resource, value in entry["requests"].items():
                used[resource] = used.get(resource, 0) + value
        short = sorted(r for r, value in wanted.items()
                       if value and r in allocatable and used.get(r, 0) + value > allocatable[r])
        if short:
            if not record_fresh:   # our copy may count pods another API server has since dropped
                record, record_fresh = await _read_record(store, alloc_key), True
                allocations.remember(node_name, record)
                continue
            reasons = ", ".join("Too many pods" if r == "pods" else f"Insufficient {r}" for r in short)
            raise FailedPrecondition(f'node {node_name} cannot fit pod {meta.get("namespace")}/{name}: {reasons}')

        entries[f'{meta.get("namespace")}/{name}'] = {"ns": meta.get("namespace"), "name": name,
                                                      "uid": meta.get("uid"), "rev": int(meta["resourceVersion"]),
                                                      "requests": wanted}
        bound = bound_copy(pod, node_name)
        pod_value = codec.encode(bound)
        alloc_value = json.dumps(entries, separators=(",", ":")).encode()
        alloc_compare = at_version(alloc_key, record[0]) if record[0] else absent(alloc_key)
        extra = also_put(pod) if also_put else []
        extra_keys = tuple(op.request_put.key for op in extra)
        reply = await store.txn(
            [at_version(pod_key, int(meta["resourceVersion"])), alloc_compare],
            [put(pod_key, pod_value), put(alloc_key, alloc_value), *extra],
            [read(pod_key), read(alloc_key)],
            keys=(pod_key, alloc_key, *extra_keys),
            size=len(pod_value) + len(alloc_value) + sum(op.request_put.ByteSize() for op in extra))
        if reply.succeeded:
            rev = reply.revision
            allocations.remember(node_name, (rev, entries))
            return {**bound, "metadata": {**meta, "resourceVersion": str(rev)}}
        # Someone wrote the pod or the record since we read them: take both as they are now.
        pod_kvs = reply.responses[0].response_range.kvs
        if not pod_kvs:
            raise NotFound(f'pods "{name}" not found')
        pod, pod_fresh = codec.decode(pod_kvs[0].value, pod_kvs[0].mod_revision), True
        alloc_kvs = reply.responses[1].response_range.kvs
        record = (alloc_kvs[0].mod_revision, json.loads(alloc_kvs[0].value)) if alloc_kvs else (0, {})
        record_fresh = True
        allocations.remember(node_name, record)
    raise Conflict(f'binding pod {name} to {node_name} kept racing with other writes; retry', current_version="")
