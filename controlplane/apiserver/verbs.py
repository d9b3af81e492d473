"""The API's object verbs with their authorization: what every front end serves.

Both fronts of the API server — the gRPC servicer (service.py) and the Kubernetes REST
front (controlplane/rest) — authenticate the caller their own way (a gRPC context, an
HTTPS request) and then call these, with the caller's `UserInfo`. Each verb asks
`AccessControl.check` what Kubernetes would ask (`apply` is `patch`, plus `create` when
the object is absent; `update` of status is `update pods/status`) and then runs the
generic handler (handlers.py). So there is one copy of each verb and of its check.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable

from api.errors import FieldError, ValidationFailed
from api.registry import ResourceInfo, lookup, lookup_kind
from controlplane.apiserver import eviction, fieldmanager, proxy
from controlplane.apiserver.handlers import Handlers, now_rfc3339
from controlplane.auth.access import AccessControl
from controlplane.auth.identity import UserInfo
from controlplane.storage import AlreadyExists, Conflict, NotFound
from controlplane.storage.watch_cache import Event, Subscription
from protos import skiff_pb2 as pb

PATCH_ATTEMPTS = 5


def _object_place(obj: dict[str, Any]) -> tuple[ResourceInfo, str, str]:
    """(kind, namespace, name) of an object a caller sent."""
    info = lookup_kind(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    namespace = (meta.get("namespace") or "default") if info.namespaced else ""
    return info, namespace, str(meta.get("name") or "")


class Verbs:
    def __init__(self, handlers: Handlers, access: AccessControl, agents: proxy.AgentDialer | None = None):
        self.h = handlers
        self.access = access
        self.agents = agents or proxy.AgentDialer(handlers.store)   # logs are relayed from the pod's agent

    # -- authorization ---------------------------------------------------------------

    def check_object(self, user: UserInfo, verb: str, obj: dict[str, Any], *, subresource: str = "") -> None:
        """Authorize a verb on an object sent by the caller (create, update, apply)."""
        info, namespace, name = _object_place(obj)
        self.access.check(user, verb, info, namespace, name, subresource=subresource)

    def check(self, user: UserInfo, verb: str, kind: str, namespace: str, name: str = "", *,
              subresource: str = "", field_selector: str = "", all_namespaces: bool = False) -> None:
        """Authorize a verb on a kind named by the request (get, list, watch, delete, bind)."""
        info = lookup(kind)
        ns = (namespace or ("" if all_namespaces else "default")) if info.namespaced else ""
        self.access.check(user, verb, info, ns, name, subresource=subresource, field_selector=field_selector)

    # -- the verbs ---------------------------------------------------------------------

    async def apply(self, user: UserInfo, manifest: dict[str, Any], *,
                    dry_run: bool = False) -> tuple[dict[str, Any], str]:
        self.check_apply(user, manifest)
        return await self.h.apply(manifest, dry_run=dry_run)

    def check_apply(self, user: UserInfo, obj: dict[str, Any]) -> tuple[ResourceInfo, str, str]:
        """Apply patches the live object, or creates it: patch always, create too when it is absent."""
        self.check_object(user, "patch", obj)
        info, namespace, name = _object_place(obj)
        if self.access.cached(info.plural, namespace, name) is None:
            self.access.check(user, "create", info, namespace, name)
        return info, namespace, name

    async def server_side_apply(self, user: UserInfo, config: dict[str, Any], *, manager: str, force: bool = False,
                                dry_run: bool = False) -> tuple[dict[str, Any], str]:
        """Kubernetes' server-side apply (fieldmanager.py): `config` is merged into the live object
        (or creates it) as `manager`'s, refused with ApplyConflict on fields other managers own
        unless `force`. Authorized as `apply`. Returns (object, "created"|"configured"|"unchanged")."""
        info, namespace, name = self.check_apply(user, config)
        if not manager:
            raise ValidationFailed(FieldError("fieldManager", "is required for apply requests"), kind=info.kind)
        for _attempt in range(PATCH_ATTEMPTS):
            try:
                live = await self.h.get(info.plural, namespace, name)
            except NotFound:
                try:
                    new = fieldmanager.apply(None, config, manager=manager, force=force, now=now_rfc3339())
                    return await self.h.create(new, dry_run=dry_run), "created"
                except AlreadyExists:
                    continue
            new = fieldmanager.apply(live, config, manager=manager, force=force, now=now_rfc3339())
            if _without_times(new) == _without_times(live):
                return live, "unchanged"
            new["metadata"]["resourceVersion"] = (live.get("metadata") or {}).get("resourceVersion")
            try:
                return await self.h.update(new, dry_run=dry_run,
                                           writer=fieldmanager.Writer(manager, applied=True)), "configured"
            except Conflict:
                continue
        raise Conflict(f'{info.qualified_plural} "{name}" kept changing during apply; try again')

    async def create(self, user: UserInfo, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.check_object(user, "create", obj)
        return await self.h.create(obj, dry_run=dry_run)

    async def get(self, user: UserInfo, kind: str, namespace: str, name: str, *,
                  subresource: str = "") -> dict[str, Any]:
        self.check(user, "get", kind, namespace, name, subresource=subresource)
        return await self.h.get(kind, namespace, name)

    async def list_raw(self, user: UserInfo, kind: str, namespace: str, label_selector: str = "",
                       field_selector: str = "") -> tuple[list[bytes], int]:
        self.check(user, "list", kind, namespace, field_selector=field_selector, all_namespaces=True)
        return await self.h.list_raw(kind, namespace, label_selector, field_selector)

    async def update(self, user: UserInfo, obj: dict[str, Any], *, dry_run: bool = False,
                     manager: str = "") -> dict[str, Any]:
        """`manager`: the field manager the update is recorded for (objects with managedFields only)."""
        self.check_object(user, "update", obj)
        return await self.h.update(obj, dry_run=dry_run, writer=fieldmanager.Writer(manager) if manager else None)

    async def update_status(self, user: UserInfo, obj: dict[str, Any], *, dry_run: bool = False) -> dict[str, Any]:
        self.check_object(user, "update", obj, subresource="status")
        return await self.h.update_status(obj, dry_run=dry_run)

    async def delete(self, user: UserInfo, kind: str, namespace: str, name: str, *, propagation: str = "",
                     grace_seconds: int | None = None, dry_run: bool = False,
                     resource_version: str = "") -> tuple[dict[str, Any], bool]:
        self.check(user, "delete", kind, namespace, name)
        return await self.h.delete(kind, namespace, name, propagation=propagation, grace_seconds=grace_seconds,
                                   dry_run=dry_run, resource_version=resource_version)

    async def delete_collection(self, user: UserInfo, kind: str, namespace: str, label_selector: str = "",
                                field_selector: str = "", *, propagation: str = "", grace_seconds: int | None = None,
                                dry_run: bool = False) -> list[dict[str, Any]]:
        """Kubernetes' deletecollection: every object the selectors match (in `namespace`, or all
        when it is ""), once `deletecollection` is allowed; their last states. One that is gone
        by the time its turn comes is skipped."""
        self.check(user, "deletecollection", kind, namespace, field_selector=field_selector, all_namespaces=True)
        items, _ = await self.h.list_raw(kind, namespace, label_selector, field_selector)
        out = []
        for raw in items:
            meta = json.loads(raw).get("metadata") or {}
            try:
                obj, _finished = await self.h.delete(kind, meta.get("namespace", ""), meta["name"],
                                                     propagation=propagation, grace_seconds=grace_seconds,
                                                     dry_run=dry_run)
            except NotFound:
                continue
            out.append(obj)
        return out

    async def evict(self, user: UserInfo, namespace: str, name: str, *, grace_seconds: int | None = None,
                    dry_run: bool = False) -> dict[str, Any]:
        """The pods/eviction subresource (eviction.py): delete unless a disruption budget forbids it now."""
        self.check(user, "create", "pods", namespace, name, subresource="eviction")
        return await eviction.evict(self.h, namespace or "default", name, grace_seconds=grace_seconds,
                                    dry_run=dry_run)

    async def watch(self, user: UserInfo, kind: str, namespace: str, label_selector: str = "",
                    field_selector: str = "", resource_version: str = "") -> tuple[Subscription, list[Event]]:
        self.check(user, "watch", kind, namespace, field_selector=field_selector, all_namespaces=True)
        return await self.h.watch(kind, namespace, label_selector, field_selector, resource_version)

    async def patch(self, user: UserInfo, kind: str, namespace: str, name: str,
                    change: Callable[[dict[str, Any]], dict[str, Any]], *, subresource: str = "",
                    dry_run: bool = False, verb: str = "patch", manager: str = "") -> dict[str, Any]:
        """Kubernetes' PATCH: `change` makes the new object of the stored one, which is then
        written as an update (of the status, for the `status` subresource) against the version
        it was made from. Another writer in between: read and patch again. A patch that pins a
        resourceVersion of its own fails on a stale one as an update does. (The `scale`
        subresource's PUT is this too, authorized as `update`: `verb`.)"""
        self.check(user, verb, kind, namespace, name, subresource=subresource)
        status = subresource == "status"
        info = lookup(kind)
        for _attempt in range(PATCH_ATTEMPTS):
            current = await self.h.get(kind, namespace, name)
            new = change(current)
            meta = new.get("metadata")
            if not isinstance(meta, dict):
                meta = new["metadata"] = {}
            meta["name"] = name
            if info.namespaced:
                meta["namespace"] = (current.get("metadata") or {}).get("namespace")
            pinned = str(meta.get("resourceVersion") or "")
            current_version = str((current.get("metadata") or {}).get("resourceVersion") or "")
            meta.setdefault("resourceVersion", current_version)
            try:
                if status:
                    return await self.h.update_status(new, dry_run=dry_run)
                return await self.h.update(new, dry_run=dry_run, writer=fieldmanager.Writer(
                    manager, subresource=subresource) if manager else None)
            except Conflict:
                if pinned and pinned != current_version:
                    raise
        raise Conflict(f'{info.qualified_plural} "{name}" kept changing during the patch; try again')


def _without_times(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without its managers' timestamps (an apply that changes nothing else writes nothing)."""
    meta = dict(obj.get("metadata") or {})
    meta["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in meta.get("managedFields") or []]
    return {**obj, "metadata": meta}

    def logs(self, user: UserInfo, request: pb.LogsRequest) -> AsyncIterator[pb.LogChunk]:
        """A container's log, relayed from its node's agent, once `get pods/log` is allowed."""
        self.check(user, "get", "pods", request.namespace, request.pod, subresource="log")
        return proxy.logs(self.agents, request)

    def exec_(self, user: UserInfo, requests: AsyncIterator[pb.ExecInput]) -> AsyncIterator[pb.ExecOutput]:
        """An exec session whose first message names the pod, relayed to its node's agent once
        `create pods/exec` is allowed (the REST front's pods/exec; the URL names the pod)."""
        return self._stream(user, requests, "exec", proxy.exec_)

    async def _stream(self, user: UserInfo, requests: AsyncIterator[Any], subresource: str,
                      relay: Callable[[proxy.AgentDialer, AsyncIterator[Any]], AsyncIterator[Any]]
                      ) -> AsyncIterator[Any]:
        iterator = requests.__aiter__()
        first = await anext(iterator, None)
        if first is not None and first.HasField("start"):
            self.check(user, "create", "pods", first.start.namespace, first.start.pod, subresource=subresource)

        async def again() -> AsyncIterator[Any]:
            if first is not None:
                yield first
            async for message in iterator:
                yield message
        async for out in relay(self.agents, again()):
            yield out

    def port_forward(self, user: UserInfo, requests: AsyncIterator[pb.PortForwardData]
                     ) -> AsyncIterator[pb.PortForwardData]:
        """One forwarded connection whose first message names the pod and port, relayed to its
        node's agent once `create pods/portforward` is allowed."""
        return self._stream(user, requests, "portforward", proxy.port_forward)
