"""The generic verbs of the API server, for every registered kind.

Each verb takes and returns objects as JSON-shaped dicts. Writes validate with
the kind's model from api/ (defaults applied, unknown fields rejected), set the
server-owned metadata (uid, creationTimestamp, generation), and go to etcd as
one compare-and-swap transaction. Status changes only through `update_status`;
deletion honours finalizers, propagation policies and pods' grace periods.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
import uuid
from typing import Any, Awaitable, Callable

from api.errors import FieldError, ValidationFailed
from api.limits import MAX_NESTING, MAX_OBJECT_BYTES, json_too_deep
from api.registry import ResourceInfo, lookup, lookup_kind, parse_object
from api.selectors import parse_field_selector, parse_label_selector
from controlplane.apiserver import apply as apply_merge, fieldmanager
from controlplane.apiserver.binding import Allocations, bind_pod
from controlplane.apiserver.errors import FailedPrecondition, NotFoundError
from controlplane.apiserver.events import EventLeases, scheduled_event
from controlplane.apiserver.service_alloc import ServiceNetwork
from controlplane.apiserver.strategy import DEFAULT as DEFAULT_STRATEGY, Reservation, Strategy, build_strategies
from controlplane.storage import AlreadyExists, Conflict, NotFound, Store, codec, keys
from controlplane.storage.errors import ClaimsTaken
from controlplane.storage.store import put
from controlplane.storage.watch_cache import Subscription, WatchCache, WatchFilter, Event

SERVER_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                   "generation", "resourceVersion")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"
RESERVE_ATTEMPTS = 16   # writes whose claims (a picked cluster IP) lost to another writer's, tried again


_last_stamp: tuple[int, str] = (-1, "")


def now_rfc3339(delta_seconds: float = 0) -> str:
    """UTC now (plus delta_seconds), to the second, as Kubernetes writes timestamps. Every
    create stamps one; formatting it once per second instead of per call saves ~2 % of a
    create's CPU."""
    global _last_stamp
    second = math.floor(time.time() + delta_seconds)
    if _last_stamp[0] != second:
        _last_stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _last_stamp[1]


TOO_DEEP = f"the object nests maps and lists more than {MAX_NESTING} levels deep"


def decode_object(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError as exc:
        raise ValidationFailed(FieldError("", f"the object is not valid JSON: {exc}")) from None
    except RecursionError:                  # nested beyond what the decoder follows
        raise ValidationFailed(FieldError("", TOO_DEEP)) from None
    if json_too_deep(raw, obj):
        raise ValidationFailed(FieldError("", TOO_DEEP))
    if not isinstance(obj, dict):
        raise ValidationFailed(FieldError("", "the object must be a JSON object"))
    return obj


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _version(obj: dict[str, Any]) -> int:
    return int(_meta(obj).get("resourceVersion") or 0)


class Handlers:
    def __init__(self, store: Store, *, event_ttl_seconds: int = 3600, services: ServiceNetwork | None = None):
        self.store = store
        self.services = services or ServiceNetwork()
        self.strategies = build_strategies(store, self.services)
        self.caches: dict[str, WatchCache] = {}
        self.events = EventLeases(store, ttl_seconds=event_ttl_seconds)
        self.allocations = Allocations()
        self.scheduler_config: Any = None  # scheduler weights for SchedulePreview (None: defaults)
        # Admission (controlplane/auth/admission.py): called with ("CREATE" or "UPDATE", info, the
        # object about to be written, the stored one) before every create and update; raises to refuse.
        # Keyword dry_run: the write will not happen (quota checks but does not charge).
        self.admission: Callable[..., Awaitable[None]] | None = None

    # -- plumbing ------------------------------------------------------------------

    def strategy(self, kind: str) -> Strategy:
        return self.strategies.get(kind) or DEFAULT_STRATEGY

    async def start_caches(self, timeout: float = 30.0) -> None:
        """Start one watch cache per kind before serving, so that every resourceVersion a
        client can have seen is covered by some cache's history."""
        from api.registry import all_resources
        for info in all_resources():
            self.cache(info)
        for cache in self.caches.values():
            await cache.wait_ready(timeout)

    def cache(self, info: ResourceInfo) -> WatchCache:
        cache = self.caches.get(info.plural)
        if cache is None:
            cache = WatchCache(self.store.client, prefix=self.store.prefix, plural=info.plural,
                               index_field=self.strategy(info.kind).index_field)
            cache.start()
            self.caches[info.plural] = cache
        return cache

    def _namespace_of(self, info: ResourceInfo, obj: dict[str, Any], default: str = "default") -> str:
        meta = _meta(obj)
        if not info.namespaced:
            meta.pop("namespace", None)
            return ""
        ns = meta.get("namespace") or default
        meta["namespace"] = ns
        return ns

    async def _require_namespace(self, namespace: str) -> None:
        ns_info = lookup("namespaces")
        cached = self.cache(ns_info).objects.get(keys.object_key(self.store.prefix, "namespaces", "", namespace))
        ns = cached
        if ns is None:
            try:
                ns = await self.store.get("namespaces", "", namespace)
            except NotFound:
                raise NotFoundError(f'namespaces "{namespace}" not found') from None
        if (ns.get("status") or {}).get("phase") == "Terminating" or _meta(ns).get("deletionTimestamp"):
            raise FailedPrecondition(f'unable to create new content in namespace {namespace} '
                                     f'because it is being terminated')

    def _validate(self, info: ResourceInfo, obj: dict[str, Any], *, check_size: bool = True) -> dict[str, Any]:
        """Validate and default; the normalised JSON form. Server metadata is kept as given.
        Without check_size the caller checks the size on the bytes it stores (see _encode)."""
        model = parse_object(obj)
        out = model.to_json()
        if check_size:
            self._check_size(info, len(json.dumps(out, separators=(",", ":"))), model.name)
        return out

    @staticmethod
    def _check_size(info: ResourceInfo, size: int, name: str) -> None:
        if size > MAX_OBJECT_BYTES:
            raise ValidationFailed(FieldError("", f"object is too large: {size} bytes; the limit is "
                                                  f"{MAX_OBJECT_BYTES} bytes (1.5 MiB)"), kind=info.kind, name=name)

    def _encode(self, info: ResourceInfo, out: dict[str, Any]) -> bytes:
        """The bytes a write stores, encoded once and size-checked on the way (instead of
        encoding the object once to measure it and again to store it). The size is the
        one the CLI measures, compact JSON with non-ASCII characters escaped: for an
        ASCII object (nearly all), the stored bytes' length."""
        value = codec.encode(out)
        size = len(value) if value.isascii() else len(json.dumps(out, separators=(",", ":")))
        self._check_size(info, size, str(_meta(out).get("name") or ""))
        return value

    # -- create / read -----------------------------------------------------------

    async def create(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        info = lookup_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        namespace = self._namespace_of(info, obj)
        meta = _meta(obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(random.choices(_NAME_CHARS, k=5))
        out = self._validate(info, obj, check_size=False)
        if info.namespaced:
            await self._require_namespace(namespace)
        out_meta = _meta(out)
        for key in SERVER_METADATA:
            out_meta.pop(key, None)
        out_meta["uid"] = str(uuid.uuid4())
        out_meta["creationTimestamp"] = now_rfc3339()
        if info.spec_fields:
            out_meta["generation"] = 1
        strategy = self.strategy(info.kind)
        strategy.prepare_for_create(out)
        if self.admission is not None:
            await self.admission("CREATE", info, out, None, dry_run=dry_run)
        for _attempt in range(RESERVE_ATTEMPTS):
            written, reservation = await strategy.reserve(out, None)
            ok = False
            try:
                value = self._encode(info, written)
                if dry_run:
                    try:  # a dry run reports what the real create would: the name may be taken
                        await self.store.get(info.plural, namespace, out_meta["name"])
                    except NotFound:
                        return written
                    raise AlreadyExists(f'{info.qualified_plural} "{out_meta["name"]}" already exists')
                lease = await self.events.lease_for_new_event() if strategy.expires else None
                created = await self.store.create(info.plural, namespace, out_meta["name"], written, lease=lease,
                                                  value=value, claims=reservation.claims if reservation else None)
                ok = True
                return created
            except ClaimsTaken as exc:
                assert reservation is not None
                reservation.lost(exc.taken)   # raises when the user asked for what is taken
            finally:
                if reservation is not None:
                    reservation.finish(ok)
        raise Conflict(f'{info.qualified_plural} "{out_meta["name"]}": what it claims kept being taken; try again')

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        info = lookup(kind)
        ns = (namespace or "default") if info.namespaced else ""
        try:
            return await self.store.get(info.plural, ns, name)
        except NotFound:
            raise NotFound(f'{info.qualified_plural} "{name}" not found') from None

    async def list(self, kind: str, namespace: str = "", label_selector: str = "",
                   field_selector: str = "") -> tuple[list[dict[str, Any]], int]:
        info = lookup(kind)
        flt = self._filter(info, namespace, label_selector, field_selector)
        items, revision = await self.store.list(info.plural, flt.namespace)
        if not (flt.labels.empty and flt.fields.empty):
            items = [o for o in items if flt.matches(o)]
        return items, revision

    async def list_raw(self, kind: str, namespace: str = "", label_selector: str = "",
                       field_selector: str = "") -> tuple[list[bytes], int]:
        """List as the servicer sends it: each object's JSON, and the revision to watch from.

        Served from the kind's watch cache, which already holds every object decoded and
        encoded, once one keys-only etcd read shows the cache holds the range's current
        state (a most-recent read, as a List without resourceVersion is in Kubernetes):
        no key in the range written after the cache's revision and as many keys as the
        cache has. Should the cache lag (it catches up within milliseconds), the list
        waits for it briefly, then reads etcd instead."""
        info = lookup(kind)
        flt = self._filter(info, namespace, label_selector, field_selector)
        cache = self.cache(info)
        await cache.wait_ready()
        prefix = (keys.namespace_prefix(self.store.prefix, info.plural, flt.namespace) if flt.namespace
                  else keys.type_prefix(self.store.prefix, info.plural))
        if await self._cache_is_current(cache, prefix):
            return cache.snapshot(flt)
        items, revision = await self.store.list(info.plural, flt.namespace)
        if not (flt.labels.empty and flt.fields.empty):
            items = [o for o in items if flt.matches(o)]
        return [json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode() for o in items], revision

    async def _cache_is_current(self, cache: WatchCache, prefix: bytes, wait: float = 2.0) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        etcd_revision, newest, count = await self.store.probe(prefix, after=cache.revision)
        while True:
            # Every key written up to etcd_revision is in the cache once it passed `newest`; and
            # with as many keys as etcd has, none was deleted since (deletes only lower the count).
            if cache.revision >= etcd_revision or (newest <= cache.revision and cache.count(prefix) == count):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0 or not await cache.wait_advanced(remaining):
                return False

    def _filter(self, info: ResourceInfo, namespace: str, label_selector: str, field_selector: str) -> WatchFilter:
        return WatchFilter(namespace=namespace if info.namespaced else "",
                           labels=parse_label_selector(label_selector, path="labelSelector"),
                           fields=parse_field_selector(field_selector, path="fieldSelector"))

    # -- update ------------------------------------------------------------------

    async def update(self, obj: dict[str, Any], *, dry_run: bool = False,
                     writer: fieldmanager.Writer | None = None) -> dict[str, Any]:
        info = lookup_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        namespace = self._namespace_of(info, obj)
        name = _meta(obj).get("name") or ""
        if not name:
            raise ValidationFailed(FieldError("metadata.name", "field required"), kind=info.kind)
        current = await self._current(info, namespace, name, _version(obj))
        expected = _version(obj) or _version(current)
        if expected != _version(current):
            raise Conflict(f'Operation cannot be fulfilled on {info.plural} "{name}": the object has been modified '
                           f'(resourceVersion {expected} is stale, current is {_version(current)}); please apply '
                           f'your changes to the latest version and try again', current_version=str(_version(current)))
        out = self._validate(info, obj, check_size=False)
        strategy = self.strategy(info.kind)
        strategy.prepare_for_update(current, out)   # first: what it keeps is no change of spec
        self._carry_server_fields(info, current, out)
        fieldmanager.on_update(current, out, writer, now_rfc3339())
        strategy.validate_update(current, out)
        if self.admission is not None:
            await self.admission("UPDATE", info, out, current, dry_run=dry_run)
        value = self._encode(info, out)
        if dry_run:
            return out
        return await self._write_update(info, namespace, name, out, expected, current=current, value=value)

    async def _current(self, info: ResourceInfo, namespace: str, name: str, expected: int) -> dict[str, Any]:
        """The stored object an update applies to. When the watch cache holds exactly the version
        the caller read, that is it (a version names one state of one object), and the etcd
        read is saved; otherwise etcd says what is current. Either way the write compares the
        version in etcd. The cached object is shared: read it, never change it."""
        if expected:
            cached = self.cache(info).objects.get(self.store.key(info.plural, namespace, name))
            if cached is not None and _version(cached) == expected:
                return cached
        return await self.store.get(info.plural, namespace, name)

    def _carry_server_fields(self, info: ResourceInfo, current: dict[str, Any], out: dict[str, Any]) -> None:
        cur_meta, out_meta = _meta(current), _meta(out)
        for key in SERVER_METADATA:
            if key in cur_meta:
                out_meta[key] = cur_meta[key]
            else:
                out_meta.pop(key, None)
        if info.has_status:
            if "status" in current:
                out["status"] = current["status"]
            else:
                out.pop("status", None)
        if info.spec_fields and any(out.get(f) != current.get(f) for f in info.spec_fields):
            out_meta["generation"] = int(cur_meta.get("generation") or 0) + 1
        if cur_meta.get("deletionTimestamp"):
            # Finalizers may only be removed from an object that is being deleted.
            added = set(out_meta.get("finalizers") or []) - set(cur_meta.get("finalizers") or [])
            if added:
                raise ValidationFailed(FieldError("metadata.finalizers",
                                                  f"Forbidden: no new finalizers can be added if the object is being "
                                                  f"deleted, found new finalizers {sorted(added)}"))

    async def _write_update(self, info: ResourceInfo, namespace: str, name: str, out: dict[str, Any],
                            expected: int, *, current: dict[str, Any], value: bytes | None = None) -> dict[str, Any]:
        strategy = self.strategy(info.kind)
        if _meta(out).get("deletionTimestamp") and not strategy.pending_finalizers(out) and \
                not (strategy.confirmed_deletion and _meta(out).get("deletionGracePeriodSeconds")):
            # The last finalizer is gone: the deletion completes now.
            await self._delete_key(info, namespace, name, current, expected)
            return out
        for _attempt in range(RESERVE_ATTEMPTS):
            written, reservation = await strategy.reserve(out, current)
            if reservation is None:
                return await self.store.update(info.plural, namespace, name, written, expected_version=expected,
                                               value=value if written is out else None)
            ok = False
            try:
                updated = await self.store.update(info.plural, namespace, name, written, expected_version=expected,
                                                  value=self._encode(info, written), claims=reservation.claims)
                ok = True
                return updated
            except ClaimsTaken as exc:
                reservation.lost(exc.taken)
            finally:
                reservation.finish(ok)
        raise Conflict(f'{info.qualified_plural} "{name}": what it claims kept being taken; try again')

    async def _delete_key(self, info: ResourceInfo, namespace: str, name: str, current: dict[str, Any],
                          expected: int) -> int:
        """Remove the stored object, with whatever its strategy releases along with it."""
        reservation: Reservation | None = self.strategy(info.kind).release(current)
        ok = False
        try:
            rev = await self.store.delete(info.plural, namespace, name, expected_version=expected,
                                          claims=reservation.claims if reservation else None)
            ok = True
            return rev
        finally:
            if reservation is not None:
                reservation.finish(ok)

    async def update_status(self, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        info = lookup_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
        if not info.has_status:
            raise ValidationFailed(FieldError("status", f"{info.kind} has no status subresource"), kind=info.kind)
        namespace = self._namespace_of(info, obj)
        name = _meta(obj).get("name") or ""
        current = await self._current(info, namespace, name, _version(obj))
        expected = _version(obj) or _version(current)
        merged = dict(current)
        merged["status"] = obj.get("status") or {}
        out = self._validate(info, merged, check_size=False)
        _meta(out).update({k: v for k, v in _meta(current).items() if k in SERVER_METADATA})
        value = self._encode(info, out)
        if dry_run:
            return out
        return await self.store.update(info.plural, namespace, name, out, expected_version=expected, value=value)

    # -- delete ------------------------------------------------------------------

    async def delete(self, kind: str, namespace: str, name: str, *, propagation: str = "",
                     grace_seconds: int | None = None, dry_run: bool = False,
                     resource_version: str = "") -> tuple[dict[str, Any], bool]:
        """Delete an object; (last state, finished). finished is False when it was only
        marked (deletionTimestamp) and something — an agent, a finalizer — must finish it."""
        info = lookup(kind)
        ns = (namespace or "default") if info.namespaced else ""
        propagation = propagation or "Background"
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise ValidationFailed(FieldError("propagationPolicy", f'Unsupported value: "{propagation}": supported '
                                                                   f'values: "Background", "Foreground", "Orphan"'))
        if grace_seconds is not None and grace_seconds < 0:
            raise ValidationFailed(FieldError("gracePeriodSeconds", "must be greater than or equal to 0"))
        for _attempt in range(5):
            current = await self.store.get(info.plural, ns, name)
            version = _version(current)
            if resource_version and int(resource_version) != version:
                raise Conflict(f'Precondition failed: resourceVersion {resource_version} is stale, current is {version}',
                               current_version=str(version))
            try:
                return await self._delete_once(info, ns, name, current, version, propagation=propagation,
                                               grace_seconds=grace_seconds, dry_run=dry_run)
            except Conflict:
                if resource_version:
                    raise
        raise Conflict(f'{info.plural} "{name}" kept changing during delete; try again')

    async def _delete_once(self, info: ResourceInfo, ns: str, name: str, current: dict[str, Any], version: int, *,
                           propagation: str, grace_seconds: int | None,
                           dry_run: bool) -> tuple[dict[str, Any], bool]:
        meta = _meta(current)
        strategy = self.strategy(info.kind)
        finalizers = list(meta.get("finalizers") or [])
        if propagation == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        if propagation == "Orphan" and ORPHAN not in finalizers:
            finalizers.append(ORPHAN)
        grace = strategy.graceful_seconds(current, grace_seconds)
        marked = dict(current)
        marked["metadata"] = dict(meta)
        if finalizers:
            marked["metadata"]["finalizers"] = finalizers
        strategy.mark_deleting(marked)
        if grace > 0:
            existing = meta.get("deletionGracePeriodSeconds")
            if existing is not None and existing <= grace:
                return current, False  # already terminating at least as fast
            marked["metadata"]["deletionTimestamp"] = now_rfc3339(grace)
            marked["metadata"]["deletionGracePeriodSeconds"] = grace
        elif finalizers or strategy.pending_finalizers(current):
            marked["metadata"].setdefault("deletionTimestamp", now_rfc3339())
            if strategy.confirmed_deletion:
                marked["metadata"]["deletionGracePeriodSeconds"] = 0
            else:
                marked["metadata"].pop("deletionGracePeriodSeconds", None)
        else:
            if dry_run:
                return current, True
            rev = await self._delete_key(info, ns, name, current, version)
            gone = dict(current)
            gone["metadata"] = {**meta, "resourceVersion": str(rev)}
            return gone, True
        if dry_run:
            return marked, False
        if strategy.confirmed_deletion and grace == 0 and not finalizers:
            rev = await self.store.delete(info.plural, ns, name, expected_version=version)
            return {**current, "metadata": {**meta, "resourceVersion": str(rev)}}, True
        return await self.store.update(info.plural, ns, name, marked, expected_version=version), False

    # -- apply ---------------------------------------------------------------------

    async def apply(self, manifest: dict[str, Any], *, dry_run: bool = False) -> tuple[dict[str, Any], str]:
        """kubectl apply: create, or three-way merge into the live object. Returns (object, result)."""
        info = lookup_kind(str(manifest.get("apiVersion", "")), str(manifest.get("kind", "")))
        namespace = self._namespace_of(info, manifest)
        name = _meta(manifest).get("name") or ""
        if not name:
            raise ValidationFailed(FieldError("metadata.name", "field required"), kind=info.kind)
        self._validate(info, manifest)  # report manifest errors with the manifest's own paths
        desired = {k: v for k, v in manifest.items() if not (info.has_status and k == "status")}
        desired["metadata"] = {k: v for k, v in _meta(desired).items() if k not in SERVER_METADATA}
        desired = apply_merge.with_last_applied(desired)
        for _attempt in range(5):
            try:
                live = await self.store.get(info.plural, namespace, name)
            except NotFound:
                try:
                    return await self.create(desired, dry_run=dry_run), "created"
                except AlreadyExists:
                    continue  # created meanwhile by someone else: merge into theirs
            merged = apply_merge.three_way_merge(apply_merge.last_applied(live), desired, live)
            out = self._validate(info, merged)
            strategy = self.strategy(info.kind)
            strategy.prepare_for_update(live, out)
            self._carry_server_fields(info, live, out)
            if _comparable(out) == _comparable(live):
                return live, "unchanged"
            strategy.validate_update(live, out)
            if self.admission is not None:
                await self.admission("UPDATE", info, out, live, dry_run=dry_run)
            if dry_run:
                return out, "configured"
            try:
                written = await self._write_update(info, namespace, name, out, _version(live), current=live)
                return written, "configured"
            except Conflict:
                continue
        raise Conflict(f'{info.plural} "{name}" kept changing during apply; try again')

    # -- bind ----------------------------------------------------------------------

    async def bind(self, namespace: str, name: str, node_name: str, *, uid: str = "",
                   resource_version: str = "", event_message: str = "", event_source: str = "") -> dict[str, Any]:
        """Bind (see binding.py); with event_message, the pod's Scheduled event is written in
        the same etcd transaction."""
        if not node_name:
            raise ValidationFailed(FieldError("target.name", "field required"))
        also_put = None
        if event_message:
            lease = await self.events.lease_for_new_event()

            def also_put(pod: dict[str, Any]) -> list[Any]:
                event = scheduled_event(pod, message=event_message, component=event_source)
                key = self.store.key("events", event["metadata"]["namespace"], event["metadata"]["name"])
                return [put(key, codec.encode(event), lease)]
        return await bind_pod(self.store, pods=self.cache(lookup("pods")), nodes=self.cache(lookup("nodes")),
                              allocations=self.allocations, namespace=namespace or "default", name=name,
                              node_name=node_name, uid=uid, resource_version=resource_version, also_put=also_put)

    # -- scheduling preview -----------------------------------------------------------

    async def schedule_preview(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Where would this pod go? Runs the scheduler's framework on the watch caches'
        current nodes and pods; writes nothing."""
        from controlplane.scheduler.preview import preview
        info = lookup_kind(str(pod.get("apiVersion", "")), str(pod.get("kind", "")))
        if info.kind != "Pod":
            raise ValidationFailed(FieldError("kind", f"only a Pod can be scheduled, got {info.kind}"))
        self._namespace_of(info, pod)
        if not _meta(pod).get("name") and not _meta(pod).get("generateName"):
            _meta(pod)["name"] = "preview"
        normalized = self._validate(info, pod)
        nodes = list(self.cache(lookup("nodes")).objects.values())
        pods = list(self.cache(lookup("pods")).objects.values())
        return preview(normalized, nodes=nodes, pods=pods, config=self.scheduler_config)

    # -- watch ---------------------------------------------------------------------

    async def watch(self, kind: str, namespace: str = "", label_selector: str = "", field_selector: str = "",
                    resource_version: str = "") -> tuple[Subscription, list[Event]]:
        info = lookup(kind)
        flt = self._filter(info, namespace, label_selector, field_selector)
        try:
            rv = int(resource_version or 0)
        except ValueError:
            raise ValidationFailed(FieldError("resourceVersion", f"must be an integer, got {resource_version!r}"))
        cache = self.cache(info)
        await cache.wait_ready()
        return cache.subscribe(flt, resource_version=rv)

    async def compacted(self, revision: int) -> None:
        for cache in self.caches.values():
            cache.compacted(revision)


def _comparable(obj: dict[str, Any]) -> str:
    meta = {k: v for k, v in _meta(obj).items() if k not in ("resourceVersion", "generation")}
    return json.dumps({**obj, "metadata": meta}, sort_keys=True)
