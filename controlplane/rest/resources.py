"""The object verbs on Kubernetes' URLs.

    /api/v1[/namespaces/{ns}]/{plural}[/{name}[/status]]
    /apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/status]]

GET (one object; a list as a `<Kind>List`, with labelSelector, fieldSelector, limit and
continue; `watch=1`: a stream of `{"type", "object"}` lines), POST (create), PUT (update,
or update of the status), PATCH (merge, strategic merge and JSON patch — patch.py — and
server-side apply, `application/apply-patch+yaml`, with field managers and conflicts:
controlplane/apiserver/fieldmanager.py; updates and patches are recorded for their
`fieldManager`) and DELETE
(DeleteOptions from the body or the query; on a collection URL, deletecollection). `dryRun=All` is honoured everywhere;
`fieldValidation` on create, update and apply (fieldvalidation.py).

Each verb is the shared, authorized one (controlplane/apiserver/verbs.py), so the REST
API and the gRPC API check and do the same. Errors are `Status` objects (status.py).

`limit`/`continue` page through the list in key order (namespace, name): the continue
token holds the offset and the list's revision, and the next page is cut from the same list
while it is kept (ListSnapshots: 30 s; one revision across the pages, as in Kubernetes),
else from a new read (an object created or deleted in between can then shift the rest by one).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from api.errors import FieldError, ValidationFailed
from api.limits import MAX_NESTING, MAX_OBJECT_BYTES, json_too_deep
from api.registry import ResourceInfo
from controlplane.apiserver.verbs import Verbs
from controlplane.auth.identity import UserInfo
from controlplane.apiserver import patch as patches
from controlplane.rest import discovery, fieldvalidation, protobuf, scale, status, streams, table as tables
from controlplane.storage.watch_cache import BOOKMARK, Subscription, chunks
from protos import skiff_pb2 as pb

JSON = "application/json"
WATCH_BATCH = 200


@dataclass(frozen=True)
class Target:
    info: ResourceInfo
    namespace: str       # "" for a cluster-scoped kind, or a list/watch across namespaces
    name: str
    subresource: str


class NotServed(Exception):
    """No resource is at this URL."""


def parse_path(parts: list[str]) -> Target:
    """`parts`: the URL's segments after /api/v1 or /apis/{group}/{version}, and those two
    (group, version) first."""
    group, version, rest = parts[0], parts[1], parts[2:]
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise NotServed()
    info = discovery.find(group, version, rest[0])
    if info is None or (namespace and not info.namespaced):
        raise NotServed()
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if subresource and not ((subresource == "status" and info.has_status)
                            or (subresource == "scale" and scale.scalable(info))
                            or (subresource in ("log", "eviction", *streams.STREAM_SUBRESOURCES)
                                and info.kind == "Pod")):
        raise NotServed()
    return Target(info, namespace, name, subresource)


def respond(obj: Any, code: int = 200) -> web.Response:
    return web.Response(body=json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode(), status=code,
                        content_type=JSON)


def failure(exc: BaseException, target: Target | None = None) -> web.Response:
    st = status.of_exception(exc, kind=target.info.plural if target else "", name=target.name if target else "",
                             group=target.info.group if target else "")
    return respond(st, st["code"])


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true")


def _dry_run(request: web.Request, options: dict[str, Any] | None = None) -> bool:
    values = request.query.getall("dryRun", []) + list((options or {}).get("dryRun") or [])
    for value in values:
        if value != "All":
            raise ValidationFailed(FieldError("dryRun", f'Unsupported value: "{value}": supported values: "All"'))
    return bool(values)


class UnsupportedMediaType(Exception):
    pass


class TooLarge(Exception):
    """A body over the limit, refused before it was read whole."""


async def _body(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge(f"the request body is larger than {request.client_max_size} bytes; an object may have "
                       f"at most {MAX_OBJECT_BYTES} (1.5 MiB)") from None
    if not raw:
        return None
    if "protobuf" in request.content_type:
        try:
            return protobuf.decode_object(raw)
        except (protobuf.Unreadable, UnicodeDecodeError) as exc:
            raise UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json, application/yaml ({exc})") from None
    try:
        if request.content_type == patches.APPLY_PATCH or request.content_type.endswith("yaml"):
            body = yaml.safe_load(raw)
        else:
            body = json.loads(raw)
    except RecursionError:      # the decoder's own stack gave out: far deeper than the limit
        raise _too_deep() from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ValidationFailed(FieldError("", f"the request body cannot be decoded: {exc}")) from None
    if json_too_deep(raw, body):
        raise _too_deep()
    return body


def _too_deep() -> ValidationFailed:
    return ValidationFailed(FieldError("", f"the request body nests maps and lists more than {MAX_NESTING} "
                                           "levels deep"))


def _object_body(body: Any, target: Target) -> dict[str, Any]:
    """The object a create/update/apply sends, its namespace checked against the URL's."""
    if not isinstance(body, dict):
        raise ValidationFailed(FieldError("", "the request body must be an object"), kind=target.info.kind)
    body.setdefault("apiVersion", target.info.api_version)
    body.setdefault("kind", target.info.kind)
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        meta = body["metadata"] = {}
    if target.info.namespaced and target.namespace:
        if meta.get("namespace") and meta["namespace"] != target.namespace:
            raise BadRequest("the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = target.namespace
    if target.name:
        if meta.get("name") and meta["name"] != target.name:
            raise BadRequest("the name of the object does not match the name on the URL")
        meta["name"] = target.name
    return body


class BadRequest(Exception):
    pass


class Resources:
    def __init__(self, verbs: Verbs, stopping: asyncio.Event):
        self.verbs = verbs
        self.stopping = stopping
        self.watches: set[Subscription] = set()   # ended by stop(), so a shutdown does not wait for watchers
        self.snapshots = ListSnapshots()           # lists being paged through

    def stop(self) -> None:
        self.stopping.set()
        for sub in list(self.watches):
            sub.close()

    async def serve(self, request: web.Request, user: UserInfo, target: Target) -> web.StreamResponse:
        try:
            method = request.method
            if target.subresource == "scale":
                return await self.scale(request, user, target)
            if target.subresource == "log" and method == "GET":
                return await self.log(request, user, target)
            if target.subresource == "eviction" and method == "POST":
                return await self.evict(request, user, target)
            if target.subresource == "exec" and method in ("GET", "POST"):
                return await streams.exec_(self.verbs, request, user, target.namespace, target.name)
            if target.subresource == "portforward" and method in ("GET", "POST"):
                return await streams.port_forward(self.verbs, request, user, target.namespace, target.name)
            if target.subresource in streams.STREAM_SUBRESOURCES:
                return respond(streams.not_streamed(target.subresource), 400)
            if method == "GET":
                if target.name and not _flag(request, "watch"):
                    obj = await self.verbs.get(user, target.info.plural, target.namespace, target.name)
                    if _as_table(request):
                        return respond(tables.table(target.info.kind, [obj], include=_include(request)))
                    return respond(obj)
                if _flag(request, "watch"):
                    return await self.watch(request, user, target)
                return await self.list(request, user, target)
            if method == "POST" and not target.name:
                obj = _object_body(await _body(request), target)
                dry_run = _dry_run(request)
                return _checked(*await fieldvalidation.tolerant(
                    fieldvalidation.mode(request.query), obj,
                    lambda body: self.verbs.create(user, body, dry_run=dry_run)), code=201)
            if method == "PUT" and target.name:
                obj = _object_body(await _body(request), target)
                dry_run = _dry_run(request)
                manager = _manager(request)
                if target.subresource == "status":
                    write = lambda body: self.verbs.update_status(user, body, dry_run=dry_run)  # noqa: E731
                else:
                    write = lambda body: self.verbs.update(user, body, dry_run=dry_run, manager=manager)  # noqa: E731
                return _checked(*await fieldvalidation.tolerant(fieldvalidation.mode(request.query), obj, write))
            if method == "PATCH" and target.name:
                return await self.patch(request, user, target)
            if method == "DELETE" and target.name and not target.subresource:
                return await self.delete(request, user, target)
            if method == "DELETE" and not target.name:
                return await self.delete_collection(request, user, target)
            return respond(status.status(405, "MethodNotAllowed",
                                         f"the server does not allow this method on the requested resource: "
                                         f"{method} {request.path}"), 405)
        except BadRequest as exc:
            return respond(status.bad_request(str(exc)), 400)
        except UnsupportedMediaType as exc:
            return respond(status.status(415, "UnsupportedMediaType", str(exc)), 415)
        except TooLarge as exc:
            return respond(status.status(413, "RequestEntityTooLarge", str(exc)), 413)
        except Exception as exc:
            return failure(exc, target)

    async def evict(self, request: web.Request, user: UserInfo, target: Target) -> web.Response:
        """POST pods/NAME/eviction with an Eviction (policy/v1): 201 and a Success Status, or the
        budget's refusal as 429 TooManyRequests (kubectl drain waits and tries again)."""
        body = await _body(request)     # kubectl drain sends its Eviction as protobuf (protobuf.py)
        if not isinstance(body, dict) or body.get("kind", "Eviction") != "Eviction":
            raise BadRequest("the body must be an Eviction (policy/v1)")
        options = body.get("deleteOptions") or {}
        grace = options.get("gracePeriodSeconds")
        await self.verbs.evict(user, target.namespace, target.name,
                               grace_seconds=int(grace) if grace is not None else None,
                               dry_run=_dry_run(request, options))
        return respond({**status.success({"name": target.name, "kind": "pods"}), "code": 201}, 201)

    async def log(self, request: web.Request, user: UserInfo, target: Target) -> web.StreamResponse:
        """`kubectl logs`: the agent's stream as text/plain; an error before the first byte is a Status."""
        tail = request.query.get("tailLines")
        chunks = self.verbs.logs(user, pb.LogsRequest(
            namespace=target.namespace or "default", pod=target.name, container=request.query.get("container", ""),
            follow=_flag(request, "follow"), previous=_flag(request, "previous"),
            tail_lines=_int_query(request, "tailLines") if tail else -1,
            since_seconds=_int_query(request, "sinceSeconds"), timestamps=_flag(request, "timestamps")))
        iterator = chunks.__aiter__()
        first = await anext(iterator, None)
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            if first is not None:
                await response.write(first.data)
            async for chunk in iterator:
                await response.write(chunk.data)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:   # the stream broke after it began: say so in the text, as kubectl would show it
            await response.write(f"\nerror: {status.of_exception(exc)['message']}\n".encode())
        return response

    async def scale(self, request: web.Request, user: UserInfo, target: Target) -> web.Response:
        plural = target.info.plural
        if request.method == "GET":
            obj = await self.verbs.get(user, plural, target.namespace, target.name, subresource="scale")
            return respond(scale.to_scale(obj))
        if request.method not in ("PUT", "PATCH"):
            raise BadRequest(f"{request.method} is not served on the scale subresource")
        body, content_type = await _body(request), request.content_type
        if request.method == "PUT":
            change = lambda current: scale.with_replicas(current, body)  # noqa: E731
        else:
            change = lambda current: scale.with_replicas(  # noqa: E731
                current, patches.apply_patch(content_type, scale.to_scale(current), body))
        obj = await self.verbs.patch(user, plural, target.namespace, target.name, change, subresource="scale",
                                     dry_run=_dry_run(request), verb="update" if request.method == "PUT" else "patch",
                                     manager=_manager(request))
        return respond(scale.to_scale(obj))

    async def list(self, request: web.Request, user: UserInfo, target: Target) -> web.Response:
        info = target.info
        labels, fields = request.query.get("labelSelector", ""), request.query.get("fieldSelector", "")
        limit = _int_query(request, "limit")
        start, at = _continue_token(request.query.get("continue", ""))
        key = (info.plural, target.namespace, labels, fields, at)
        items = None
        if at:   # a later page: of the first page's list, while it is kept
            self.verbs.check(user, "list", info.plural, target.namespace, field_selector=fields, all_namespaces=True)
            items = self.snapshots.get(key)
            revision = at
        if items is None:
            items, revision = await self.verbs.list_raw(user, info.plural, target.namespace, labels, fields)
        meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if limit or start:   # the items come in key order (namespace, name), as etcd lists them
            page = items[start:start + limit] if limit else items[start:]
            rest = len(items) - start - len(page)
            if limit and rest > 0:
                self.snapshots.put((*key[:4], revision), items)
                meta["continue"] = base64.urlsafe_b64encode(
                    json.dumps({"start": start + limit, "rv": revision}).encode()).decode()
                meta["remainingItemCount"] = rest
            items = page
        if _as_table(request):
            return web.Response(body=tables.table_bytes(info.kind, items, resource_version=meta.pop("resourceVersion"),
                                                        include=_include(request), extra_meta=meta),
                                content_type=JSON)
        head = json.dumps({"kind": f"{info.kind}List", "apiVersion": info.api_version, "metadata": meta},
                          separators=(",", ":"))[:-1]
        body = head.encode() + b',"items":[' + b",".join(items) + b"]}"
        return web.Response(body=body, content_type=JSON)

    async def watch(self, request: web.Request, user: UserInfo, target: Target) -> web.StreamResponse:
        info = target.info
        field_selector = request.query.get("fieldSelector", "")
        if target.name:
            field_selector = ",".join(filter(None, [field_selector, f"metadata.name={target.name}"]))
        sub, backlog = await self.verbs.watch(user, info.plural, target.namespace,
                                              request.query.get("labelSelector", ""), field_selector,
                                              request.query.get("resourceVersion", ""))
        bookmarks = _flag(request, "allowWatchBookmarks")
        as_table = _as_table(request)
        include = _include(request)
        timeout = _int_query(request, "timeoutSeconds") or None
        response = web.StreamResponse(headers={"Content-Type": JSON, "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self.watches.add(sub)
        if self.stopping.is_set():
            sub.close()

        async def stream() -> None:
            for events in chunks(backlog, WATCH_BATCH):
                await response.write(_event_lines(info, events, as_table, include))
            async for events in sub.batches(bookmark_every=30.0 if bookmarks else None, max_batch=WATCH_BATCH):
                if not bookmarks:
                    events = [e for e in events if e.type != BOOKMARK]
                if events:
                    await response.write(_event_lines(info, events, as_table, include))
        try:
            async with asyncio.timeout(timeout):
                await stream()
        except TimeoutError:
            pass
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:   # the watch broke (history compacted, watcher too slow): an ERROR event
            st = status.of_exception(exc)
            await response.write(json.dumps({"type": "ERROR", "object": st}).encode() + b"\n")
        finally:
            self.watches.discard(sub)
            sub.close()
        return response

    async def patch(self, request: web.Request, user: UserInfo, target: Target) -> web.Response:
        body = await _body(request)
        content_type = request.content_type
        dry_run = _dry_run(request)
        if content_type == patches.APPLY_PATCH:
            if target.subresource:
                raise BadRequest("server-side apply of a subresource is not supported")
            manifest = _object_body(body, target)
            manager, force = request.query.get("fieldManager", ""), _flag(request, "force")
            (obj, result), warnings = await fieldvalidation.tolerant(
                fieldvalidation.mode(request.query), manifest,
                lambda body: self.verbs.server_side_apply(user, body, manager=manager, force=force, dry_run=dry_run))
            return _checked(obj, warnings, code=201 if result == "created" else 200)
        if content_type not in (patches.MERGE_PATCH, patches.STRATEGIC, patches.JSON_PATCH):
            return respond(status.status(415, "UnsupportedMediaType",
                                         f"the body of the request was in an unknown format - accepted media types "
                                         f"include: {patches.JSON_PATCH}, {patches.MERGE_PATCH}, {patches.STRATEGIC}, "
                                         f"{patches.APPLY_PATCH}"), 415)
        obj = await self.verbs.patch(user, target.info.plural, target.namespace, target.name,
                                     lambda current: patches.apply_patch(content_type, current, body),
                                     subresource=target.subresource, dry_run=dry_run, manager=_manager(request))
        return respond(obj)

    async def _delete_options(self, request: web.Request) -> tuple[dict[str, Any], int | None, str]:
        """(DeleteOptions, gracePeriodSeconds, propagationPolicy) from the body or the query."""
        options = await _body(request) or {}
        if not isinstance(options, dict):
            raise BadRequest("the body of a delete must be DeleteOptions")
        grace = options.get("gracePeriodSeconds")
        if grace is None and "gracePeriodSeconds" in request.query:
            grace = _int_query(request, "gracePeriodSeconds")
        propagation = options.get("propagationPolicy") or request.query.get("propagationPolicy", "")
        if options.get("orphanDependents") is True or request.query.get("orphanDependents") == "true":
            propagation = propagation or "Orphan"
        return options, grace, propagation

    async def delete_collection(self, request: web.Request, user: UserInfo, target: Target) -> web.Response:
        """DELETE on a collection: the objects its selectors match, answered as the list of them."""
        options, grace, propagation = await self._delete_options(request)
        deleted = await self.verbs.delete_collection(
            user, target.info.plural, target.namespace, request.query.get("labelSelector", ""),
            request.query.get("fieldSelector", ""), propagation=propagation, grace_seconds=grace,
            dry_run=_dry_run(request, options))
        return respond({"kind": f"{target.info.kind}List", "apiVersion": target.info.api_version,
                        "metadata": {}, "items": deleted})

    async def delete(self, request: web.Request, user: UserInfo, target: Target) -> web.Response:
        options, grace, propagation = await self._delete_options(request)
        preconditions = options.get("preconditions") or {}
        obj, finished = await self.verbs.delete(user, target.info.plural, target.namespace, target.name,
                                                propagation=propagation, grace_seconds=grace,
                                                dry_run=_dry_run(request, options),
                                                resource_version=str(preconditions.get("resourceVersion") or ""))
        if finished:
            meta = obj.get("metadata") or {}
            return respond(status.success({"name": target.name, "group": target.info.group,
                                           "kind": target.info.plural, "uid": meta.get("uid", "")}))
        return respond(obj, 200)


def _checked(obj: Any, warnings: list[str], *, code: int = 200) -> web.Response:
    """The written object, with a `Warning` header for each field fieldValidation=Warn dropped."""
    response = respond(obj, code)
    for name, value in fieldvalidation.warning_headers(warnings):
        response.headers.add(name, value)
    return response


def _manager(request: web.Request) -> str:
    """The field manager an update is recorded for: `?fieldManager=`, else, as Kubernetes
    does, the User-Agent up to its first `/` (`kubectl/v1.32.4 (...)` -> `kubectl`)."""
    return (request.query.get("fieldManager") or request.headers.get("User-Agent", "").split("/")[0])[:128]


def _as_table(request: web.Request) -> bool:
    return tables.wants_table(request.headers.get("Accept", ""))


def _include(request: web.Request) -> str:
    return request.query.get("includeObject", "Metadata")


def _event_lines(info: ResourceInfo, events: list[Any], as_table: bool = False, include: str = "Metadata") -> bytes:
    out = []
    for event in events:
        if event.type == BOOKMARK:
            obj = json.dumps({"kind": info.kind, "apiVersion": info.api_version,
                              "metadata": {"resourceVersion": str(event.revision)}}).encode()
        elif as_table:
            obj = json.dumps(tables.table(info.kind, [event.obj], include=include),
                             separators=(",", ":"), ensure_ascii=False).encode()
        else:
            obj = event.raw
        out.append(b'{"type":"' + event.type.encode() + b'","object":' + obj + b"}\n")
    return b"".join(out)


def _int_query(request: web.Request, name: str) -> int:
    text = request.query.get(name, "")
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise ValidationFailed(FieldError(name, f"must be an integer, got {text!r}")) from None
    if value < 0:
        raise ValidationFailed(FieldError(name, "must be greater than or equal to 0"))
    return value


def _continue_token(token: str) -> tuple[int, int]:
    """(the offset of the next item, the revision of the list it continues; 0 if none was given)."""
    if not token:
        return 0, 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token.encode()))
        start, revision = int(decoded["start"]), int(decoded.get("rv") or 0)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise ValidationFailed(FieldError("continue", "the continue token is not valid")) from None
    if start < 0 or revision < 0:
        raise ValidationFailed(FieldError("continue", "the continue token is not valid"))
    return start, revision


class ListSnapshots:
    """The lists being paged through (`limit`/`continue`), kept for TTL seconds, so the pages of one
    list are cut from the one list the first page read — the same revision throughout, as in
    Kubernetes, and one read instead of one per page (`kubectl get` of 5,000 objects asks for 10
    pages). Keyed by (resource, namespace, label selector, field selector, revision): a page is
    only ever cut from the list its own request names, and each page's request is authorized as
    a list. A list no longer kept (older than TTL, or pushed out by newer ones) is read afresh
    and cut at the token's offset: an object created or deleted in between then shifts the
    rest by one. Only references to the watch cache's encoded objects are held."""

    TTL = 30.0
    SIZE = 16            # lists
    ITEMS = 100_000      # objects in all of them: what a changed object's old version may be held for

    def __init__(self, clock: Any = time.monotonic):
        self.clock = clock
        self.lists: dict[tuple[Any, ...], tuple[float, list[bytes]]] = {}
        self.items = 0

    def get(self, key: tuple[Any, ...]) -> list[bytes] | None:
        entry = self.lists.get(key)
        if entry is None:
            return None
        if self.clock() - entry[0] > self.TTL:
            self._drop(key)
            return None
        return entry[1]

    def put(self, key: tuple[Any, ...], items: list[bytes]) -> None:
        if key in self.lists or len(items) > self.ITEMS:
            return
        now = self.clock()
        for old in [k for k, (t, _) in self.lists.items() if now - t > self.TTL]:
            self._drop(old)
        while self.lists and (len(self.lists) >= self.SIZE or self.items + len(items) > self.ITEMS):
            self._drop(next(iter(self.lists)))
        self.lists[key] = (now, items)
        self.items += len(items)

    def _drop(self, key: tuple[Any, ...]) -> None:
        self.items -= len(self.lists.pop(key)[1])
