"""Binding a pod to a node without ever overfilling the node, even with several
schedulers (or API servers) racing.

Each node has an allocation record in etcd (`<prefix>/_allocations/<node>`): the
requests of the pods bound to it. A bind is one etcd transaction that compares
both the pod's and the record's mod_revision and writes both — so of two racing
binds that would together exceed the node's allocatable, one fails its compare,
re-reads, and is refused with FAILED_PRECONDITION ("Insufficient cpu").

Entries of pods that have since been deleted or finished are dropped lazily at the
next bind, but only once the pods watch cache has caught up past the entry's
revision, so a lagging cache can make the check stricter, never looser.
"""

from __future__ import annotations

import json
from typing import Any

from api.requests import allocatable_dict, pod_requests_dict
from controlplane.apiserver.errors import FailedPrecondition
from controlplane.storage import Conflict, NotFound, Store, codec
from controlplane.storage.watch_cache import WatchCache

TERMINAL = ("Succeeded", "Failed")


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


async def bind_pod(store: Store, pods: WatchCache, pod: dict[str, Any], bound: dict[str, Any],
                   node_name: str) -> dict[str, Any]:
    """Write `bound` (the pod with spec.nodeName set) if the node still has room."""
    meta = pod["metadata"]
    pod_version = int(meta["resourceVersion"])
    try:
        node = await store.get("nodes", "", node_name)
    except NotFound:
        raise FailedPrecondition(f'cannot bind pod {meta["name"]}: nodes "{node_name}" not found') from None
    alloc_key = _alloc_key(store, node_name)
    current = await store._call(lambda: store.client.get(alloc_key))
    entries: dict[str, dict[str, Any]] = json.loads(current.value) if current is not None else {}
    entries = {k: e for k, e in entries.items() if _live(e, pods, store)}

    wanted = pod_requests_dict(pod)
    allocatable = allocatable_dict(node)
    used: dict[str, int] = {}
    for entry in entries.values():
        for name, value in entry["requests"].items():
            used[name] = used.get(name, 0) + value
    short = sorted(name for name, value in wanted.items()
                   if value and name in allocatable and used.get(name, 0) + value > allocatable[name])
    if short:
        reasons = ", ".join("Too many pods" if n == "pods" else f"Insufficient {n}" for n in short)
        raise FailedPrecondition(f'node {node_name} cannot fit pod {meta.get("namespace")}/{meta["name"]}: {reasons}')

    entries[f'{meta.get("namespace")}/{meta["name"]}'] = {
        "ns": meta.get("namespace"), "name": meta["name"], "uid": meta.get("uid"),
        "rev": pod_version, "requests": wanted}
    pod_key = store.key("pods", meta.get("namespace") or "", meta["name"])
    alloc_compare = (store.tx.mod(alloc_key) == current.mod_revision) if current is not None \
        else (store.tx.create(alloc_key) == 0)
    pod_value = codec.encode(bound)
    rev = await store._call(lambda: store._txn_revision(
        [store.tx.mod(pod_key) == pod_version, alloc_compare],
        [store.tx.put(pod_key, pod_value),
         store.tx.put(alloc_key, json.dumps(entries, separators=(",", ":")).encode())]))
    if rev is None:
        raise Conflict(f'binding pod {meta["name"]} to {node_name} raced with another write; retry',
                       current_version="")
    return codec.decode(pod_value, rev)
