"""The gRPC servicer: decode the request, call the generic handler, encode the reply.

Errors become gRPC statuses in one place (`_status`), so every verb uses the
same codes (see errors.py). Objects travel as JSON bytes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import platform
from typing import Any, AsyncIterator, Awaitable, Callable

import grpc

from api.errors import FieldError, ValidationFailed
from api.limits import MAX_NESTING, json_too_deep
from api.registry import all_resources, lookup
from controlplane.apiserver import proxy, requeststream
from controlplane.auth.authz import Attributes, Forbidden
from controlplane.auth.access import AccessControl
from controlplane.auth.identity import (AUTHENTICATED, INSECURE_ADMIN, SERVICE_ACCOUNT_PREFIX, SERVICE_ACCOUNTS,
                                        UserInfo)
from controlplane.storage import NotFound
from controlplane.apiserver.errors import status_or_internal
from controlplane.apiserver.handlers import Handlers, decode_object
from controlplane.apiserver.verbs import Verbs
from controlplane.storage.watch_cache import Event, Subscription, chunks
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

# `ctl patch --type` → the PATCH content type it stands for (kubectl's names).
PATCH_TYPES = {"strategic": "application/strategic-merge-patch+json", "merge": "application/merge-patch+json",
               "json": "application/json-patch+json"}

VERSION = "0.1.0"
IMAGES_GROUP = "skiff.io"
METRICS_GROUP = "metrics.k8s.io"


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    code, message = status_or_internal(exc)
    await context.abort(code, message)


# Events per message for a watcher that allows batching. gRPC's cost is per message, so a
# watcher that fell behind (a burst of writes) catches up in few messages.
WATCH_BATCH = 200
# How long a busy batching watch stream waits to gather events (see Subscription.batches).
WATCH_LINGER = 0.005


def _event_message(event: Event) -> pb.WatchEvent:
    """The wire form of one event, built once and shared by every watcher that receives it as is."""
    message = event.message
    if message is None:
        message = event.message = pb.WatchEvent(type=event.type, object=event.raw)
    return message


def _watch_message(events: list[Event]) -> pb.WatchEvent:
    if len(events) == 1:
        return _event_message(events[0])
    first = events[0]
    return pb.WatchEvent(type=first.type, object=first.raw, more=[_event_message(e) for e in events[1:]])


def impersonated(name: str, groups: list[str]) -> UserInfo:
    """The identity a caller allowed to impersonate acts as: the groups asked for, plus
    system:authenticated, and a ServiceAccount's own groups (as kube-apiserver adds them)."""
    out = list(groups)
    if name.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace = name[len(SERVICE_ACCOUNT_PREFIX):].split(":", 1)[0]
        out += [SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}"]
    if AUTHENTICATED not in out:
        out.append(AUTHENTICATED)
    return UserInfo(name, tuple(dict.fromkeys(out)))


def _unary(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(self: "ApiService", request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)
    return wrapper


class ApiService(pb_grpc.ApiServicer):
    def __init__(self, handlers: Handlers, *, bookmark_seconds: float = 30.0,
                 authenticate: Callable[[Any], UserInfo] | None = None,
                 agents: proxy.AgentDialer | None = None, access: AccessControl | None = None):
        self.h = handlers
        # How logs/exec/images/metrics reach agents (proxy.py): plain text unless given TLS.
        self.agents = agents or proxy.AgentDialer(handlers.store)
        # Authorization of every verb, admission, ServiceAccount tokens (controlplane/auth/access.py).
        self.access = access if access is not None else AccessControl(handlers)
        # The object verbs with their checks, shared with the REST front (verbs.py).
        self.verbs = Verbs(handlers, self.access, self.agents)
        # Who a call comes from (controlplane/auth): None means the server runs --insecure
        # and every caller is INSECURE_ADMIN.
        self.authenticate = authenticate
        self.bookmark_seconds = bookmark_seconds
        # Set by stop(), when the server shuts down: request streams stop taking requests and
        # end once they have answered the ones taken, and watches end (clients watch again
        # elsewhere or later), so the shutdown does not wait out its grace period.
        self.stopping = asyncio.Event()
        self._watches: set[Subscription] = set()

    def user_of(self, context: Any) -> UserInfo:
        """The identity behind a call (or a request stream: its requests share the stream's context)."""
        if self.authenticate is None:
            return INSECURE_ADMIN
        return self.authenticate(context)

    def _check_object(self, context: Any, verb: str, obj: dict[str, Any], *, subresource: str = "") -> UserInfo:
        """Authorize a verb on an object sent by the caller (verbs.py)."""
        user = self.user_of(context)
        self.verbs.check_object(user, verb, obj, subresource=subresource)
        return user

    def _check(self, context: Any, verb: str, kind: str, namespace: str, name: str = "", *,
               subresource: str = "", field_selector: str = "", all_namespaces: bool = False) -> UserInfo:
        """Authorize a verb on a kind named by the request (verbs.py)."""
        user = self.user_of(context)
        self.verbs.check(user, verb, kind, namespace, name, subresource=subresource, field_selector=field_selector,
                         all_namespaces=all_namespaces)
        return user

    def stop(self) -> None:
        """Begin shutting down: end the long-lived streams (see `stopping`)."""
        self.stopping.set()
        for sub in list(self._watches):
            sub.close()

    @_unary
    async def Apply(self, request: pb.ApplyRequest, context: Any) -> pb.ApplyResponse:
        obj, result = await self.verbs.apply(self.user_of(context), decode_object(request.object),
                                             dry_run=request.dry_run)
        return pb.ApplyResponse(object=dumps(obj), result=result)

    @_unary
    async def Create(self, request: pb.CreateRequest, context: Any) -> pb.ObjectResponse:
        obj = await self.verbs.create(self.user_of(context), decode_object(request.object), dry_run=request.dry_run)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def Get(self, request: pb.GetRequest, context: Any) -> pb.ObjectResponse:
        obj = await self.verbs.get(self.user_of(context), request.kind, request.namespace, request.name)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def List(self, request: pb.ListRequest, context: Any) -> pb.ListResponse:
        items, revision = await self.verbs.list_raw(self.user_of(context), request.kind, request.namespace,
                                                    request.label_selector, request.field_selector)
        return pb.ListResponse(items=items, resource_version=str(revision))

    @_unary
    async def Update(self, request: pb.UpdateRequest, context: Any) -> pb.ObjectResponse:
        obj = await self.verbs.update(self.user_of(context), decode_object(request.object), dry_run=request.dry_run)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def UpdateStatus(self, request: pb.UpdateRequest, context: Any) -> pb.ObjectResponse:
        obj = await self.verbs.update_status(self.user_of(context), decode_object(request.object),
                                             dry_run=request.dry_run)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def Patch(self, request: pb.PatchRequest, context: Any) -> pb.ObjectResponse:
        """The PATCH formats (controlplane/apiserver/patch.py, shared with the REST front), for `ctl patch`, `label`, `annotate`, ..."""
        from controlplane.apiserver import patch as patches
        content_type = PATCH_TYPES.get(request.patch_type or "strategic")
        if content_type is None:
            raise ValidationFailed(FieldError("type", f'Unsupported value: "{request.patch_type}": supported '
                                                      f'values: "json", "merge", "strategic"'))
        try:
            body = json.loads(request.patch)
        except ValueError as exc:
            raise ValidationFailed(FieldError("", f"the patch is not valid JSON: {exc}")) from None
        except RecursionError:
            raise ValidationFailed(FieldError("", f"the patch nests more than {MAX_NESTING} levels deep")) from None
        if json_too_deep(request.patch, body):
            raise ValidationFailed(FieldError("", f"the patch nests more than {MAX_NESTING} levels deep"))
        obj = await self.verbs.patch(self.user_of(context), request.kind, request.namespace, request.name,
                                     lambda current: patches.apply_patch(content_type, current, body),
                                     subresource=request.subresource, dry_run=request.dry_run)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def Delete(self, request: pb.DeleteRequest, context: Any) -> pb.DeleteResponse:
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else None
        obj, finished = await self.verbs.delete(self.user_of(context), request.kind, request.namespace, request.name,
                                                propagation=request.propagation_policy, grace_seconds=grace,
                                                dry_run=request.dry_run, resource_version=request.resource_version)
        return pb.DeleteResponse(object=dumps(obj), finished=finished)

    @_unary
    async def Evict(self, request: pb.EvictRequest, context: Any) -> pb.ObjectResponse:
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else None
        obj = await self.verbs.evict(self.user_of(context), request.namespace, request.name, grace_seconds=grace,
                                     dry_run=request.dry_run)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def Bind(self, request: pb.BindRequest, context: Any) -> pb.ObjectResponse:
        self._check(context, "create", "pods", request.namespace, request.name, subresource="binding")
        obj = await self.h.bind(request.namespace, request.name, request.node_name, uid=request.uid,
                                resource_version=request.resource_version,
                                event_message=request.scheduled_event_message, event_source=request.event_source)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def BindMany(self, request: pb.BindManyRequest, context: Any) -> pb.BindManyResponse:
        """Each bind as Bind does it, concurrently; a failure is that bind's result, not the request's."""
        async def one(b: pb.BindRequest) -> pb.BindResult:
            try:
                self._check(context, "create", "pods", b.namespace, b.name, subresource="binding")
                obj = await self.h.bind(b.namespace, b.name, b.node_name, uid=b.uid,
                                        resource_version=b.resource_version,
                                        event_message=b.scheduled_event_message, event_source=b.event_source)
                return pb.BindResult(code="OK", object=dumps(obj))
            except Exception as exc:
                code, message = status_or_internal(exc, "a bind")
                return pb.BindResult(code=code.name, message=message)
        return pb.BindManyResponse(results=await asyncio.gather(*(one(b) for b in request.binds)))

    async def Requests(self, request_iterator: AsyncIterator[pb.RequestBatch],
                       context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ResponseBatch]:
        """The object verbs above, many on one stream (requeststream.py)."""
        async for answer in requeststream.serve(self, request_iterator, self.stopping, context):
            yield answer

    async def Watch(self, request: pb.WatchRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchEvent]:
        try:
            sub, backlog = await self.verbs.watch(self.user_of(context), request.kind, request.namespace,
                                                  request.label_selector, request.field_selector,
                                                  request.resource_version)
        except Exception as exc:
            await _abort(context, exc)
            return
        if self.stopping.is_set():
            sub.close()
        self._watches.add(sub)
        try:
            batch = WATCH_BATCH if request.allow_batching else 1
            for events in chunks(backlog, batch):
                yield _watch_message(events)
            bookmark = self.bookmark_seconds if request.allow_bookmarks else None
            async for events in sub.batches(bookmark_every=bookmark, max_batch=batch,
                                            linger=WATCH_LINGER if request.allow_batching else 0.0):
                yield _watch_message(events)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)
        finally:
            self._watches.discard(sub)
            sub.close()

    @_unary
    async def SchedulePreview(self, request: pb.SchedulePreviewRequest, context: Any) -> pb.SchedulePreviewResponse:
        pod = decode_object(request.pod)
        self._check_object(context, "create", pod)   # a create that writes nothing
        result = await self.h.schedule_preview(pod)
        return pb.SchedulePreviewResponse(result=dumps(result))

    # Logs, Exec and PortForward relay a stream each, alike in shape (the `duplicates` tool
    # pairs them): each is its own RPC with its own message types.
    async def Logs(self, request: pb.LogsRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.LogChunk]:
        try:
            async for chunk in self.verbs.logs(self.user_of(context), request):
                yield chunk
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    async def Exec(self, requests: AsyncIterator[pb.ExecInput],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ExecOutput]:
        try:
            async for out in self.verbs.exec_(self.user_of(context), requests):
                yield out
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    async def PortForward(self, requests: AsyncIterator[pb.PortForwardData],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.PortForwardData]:
        try:
            async for out in self.verbs.port_forward(self.user_of(context), requests):
                yield out
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    async def LoadImage(self, chunks: AsyncIterator[pb.ImageChunk], context: Any) -> pb.ImageResult:
        try:
            # Images are a Skiff resource (`images` in API group skiff.io), in no default role but
            # cluster-admin: a load replaces a tag on every node (controlplane/auth/bootstrap.py).
            self.access.check_resource(self.user_of(context), "create", "images", IMAGES_GROUP)
            return await proxy.load_image(self.agents, chunks.__aiter__())
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    @_unary
    async def ListImages(self, request: pb.ImageRequest, context: Any) -> pb.ImageResult:
        self.access.check_resource(self.user_of(context), "list", "images", IMAGES_GROUP)
        return await proxy.list_images(self.agents, request)

    @_unary
    async def PullImage(self, request: pb.ImageRequest, context: Any) -> pb.ImageResult:
        self.access.check_resource(self.user_of(context), "create", "images", IMAGES_GROUP, name=request.image)
        return await proxy.pull_image(self.agents, request)

    @_unary
    async def RemoveImage(self, request: pb.ImageRequest, context: Any) -> pb.ImageResult:
        self.access.check_resource(self.user_of(context), "delete", "images", IMAGES_GROUP, name=request.image)
        return await proxy.remove_image(self.agents, request)

    @_unary
    async def PodMetrics(self, request: pb.MetricsRequest, context: Any) -> pb.MetricsResponse:
        self.access.check_resource(self.user_of(context), "get" if request.name else "list", "pods", METRICS_GROUP,
                                  (request.namespace or "default") if request.name else request.namespace,
                                  request.name)
        if request.name:
            pods = [await self.h.get("pods", request.namespace, request.name)]
        else:
            pods, _ = await self.h.list("pods", request.namespace, request.label_selector)
        return await proxy.pod_metrics(self.agents, pods)

    @_unary
    async def NodeMetrics(self, request: pb.MetricsRequest, context: Any) -> pb.MetricsResponse:
        self.access.check_resource(self.user_of(context), "get" if request.name else "list", "nodes", METRICS_GROUP,
                                  "", request.name)
        if request.name:
            nodes = [await self.h.get("nodes", "", request.name)]
        else:
            nodes, _ = await self.h.list("nodes", "", request.label_selector)
        return await proxy.node_metrics(self.agents, nodes)

    @_unary
    async def AccessReview(self, request: pb.AccessReviewRequest, context: Any) -> pb.AccessReviewResponse:
        """May the caller do this — or, with `user`/`groups`, may they? Reviewing someone else is
        impersonating them (kubectl's --as): the caller needs `impersonate` on users (and groups)."""
        caller = self.user_of(context)
        subject = caller
        if request.user or request.groups:
            if request.user:
                self.access.check_resource(caller, "impersonate", "users", "", name=request.user)
            for group in request.groups:
                self.access.check_resource(caller, "impersonate", "groups", "", name=group)
            subject = impersonated(request.user or caller.name, list(request.groups))
        resource, _, subresource = request.resource.partition("/")
        if not request.verb or not resource:
            raise ValidationFailed([FieldError(f, "field required") for f, v in
                                    (("verb", request.verb), ("resource", resource)) if not v])
        allowed, reason = self.access.allowed(Attributes(subject, request.verb, resource, request.group, subresource,
                                                        request.namespace, request.name))
        return pb.AccessReviewResponse(allowed=allowed, reason=reason, user=subject.name)

    @_unary
    async def TokenRequest(self, request: pb.TokenRequestMessage, context: Any) -> pb.TokenResponse:
        """A ServiceAccount token (`create serviceaccounts/token`), bound to a pod when one is named;
        a node may ask only for its own pods' accounts (the Node authorizer)."""
        user = self.user_of(context)
        namespace = request.namespace or "default"
        self.access.check(user, "create", lookup("serviceaccounts"), namespace, request.service_account,
                         subresource="token")
        account = self.access.cached("serviceaccounts", namespace, request.service_account)
        if account is None:
            raise NotFound(f'serviceaccounts "{request.service_account}" not found')
        pod: dict[str, Any] = {}
        if request.pod_name:
            pod = dict(self.access.cached("pods", namespace, request.pod_name) or {})
            if not pod:
                raise NotFound(f'pods "{request.pod_name}" not found')
            if request.pod_uid and (pod.get("metadata") or {}).get("uid") != request.pod_uid:
                raise NotFound(f'pods "{request.pod_name}" with uid {request.pod_uid} not found (it was replaced)')
            if ((pod.get("spec") or {}).get("serviceAccountName") or "default") != request.service_account:
                raise ValidationFailed(FieldError("boundObjectRef", f'pod "{request.pod_name}" runs as another '
                                                                    f'ServiceAccount, not "{request.service_account}"'))
        elif user.node_name is not None:
            raise Forbidden(f'User "{user.name}" cannot create serviceaccounts/token without a pod: a node may '
                            f'only request tokens bound to its own pods')
        if pod:
            self.access.node.check_token_pod(user, pod)
        token, expires = self.access.issuer.issue(service_account=account, pod=pod,
                                                 audiences=list(request.audiences) or None,
                                                 seconds=int(request.expiration_seconds))
        return pb.TokenResponse(token=token, expiration_timestamp=expires)

    @_unary
    async def Version(self, request: pb.VersionRequest, context: Any) -> pb.VersionResponse:
        etcd_version = ""
        try:
            status = await self.h.store.client.status()
            etcd_version = status.version
        except Exception:
            etcd_version = "unavailable"
        return pb.VersionResponse(version=VERSION, etcd_version=etcd_version,
                                  python_version=platform.python_version())

    @_unary
    async def Discovery(self, request: pb.DiscoveryRequest, context: Any) -> pb.DiscoveryResponse:
        return pb.DiscoveryResponse(resources=[
            pb.ResourceInfo(kind=i.kind, plural=i.plural, singular=i.singular, short_names=list(i.short_names),
                            group=i.group, version=i.version, namespaced=i.namespaced, verbs=list(i.verbs))
            for i in all_resources()])
