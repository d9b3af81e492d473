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

from api.registry import all_resources
from controlplane.apiserver import proxy, requeststream
from controlplane.auth.identity import INSECURE_ADMIN, UserInfo
from controlplane.apiserver.errors import status_or_internal
from controlplane.apiserver.handlers import Handlers, decode_object
from controlplane.storage.watch_cache import Event, Subscription, chunks
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

VERSION = "0.1.0"


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
                 agents: proxy.AgentDialer | None = None):
        self.h = handlers
        # How logs/exec/images/metrics reach agents (proxy.py): plain text unless given TLS.
        self.agents = agents or proxy.AgentDialer(handlers.store)
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

    def stop(self) -> None:
        """Begin shutting down: end the long-lived streams (see `stopping`)."""
        self.stopping.set()
        for sub in list(self._watches):
            sub.close()

    @_unary
    async def Apply(self, request: pb.ApplyRequest, context: Any) -> pb.ApplyResponse:
        obj, result = await self.h.apply(decode_object(request.object), dry_run=request.dry_run)
        return pb.ApplyResponse(object=dumps(obj), result=result)

    @_unary
    async def Create(self, request: pb.CreateRequest, context: Any) -> pb.ObjectResponse:
        obj = await self.h.create(decode_object(request.object), dry_run=request.dry_run)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def Get(self, request: pb.GetRequest, context: Any) -> pb.ObjectResponse:
        obj = await self.h.get(request.kind, request.namespace, request.name)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def List(self, request: pb.ListRequest, context: Any) -> pb.ListResponse:
        items, revision = await self.h.list_raw(request.kind, request.namespace, request.label_selector,
                                                request.field_selector)
        return pb.ListResponse(items=items, resource_version=str(revision))

    @_unary
    async def Update(self, request: pb.UpdateRequest, context: Any) -> pb.ObjectResponse:
        obj = await self.h.update(decode_object(request.object), dry_run=request.dry_run)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def UpdateStatus(self, request: pb.UpdateRequest, context: Any) -> pb.ObjectResponse:
        obj = await self.h.update_status(decode_object(request.object), dry_run=request.dry_run)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def Delete(self, request: pb.DeleteRequest, context: Any) -> pb.DeleteResponse:
        grace = request.grace_period_seconds if request.HasField("grace_period_seconds") else None
        obj, finished = await self.h.delete(request.kind, request.namespace, request.name,
                                            propagation=request.propagation_policy, grace_seconds=grace,
                                            dry_run=request.dry_run, resource_version=request.resource_version)
        return pb.DeleteResponse(object=dumps(obj), finished=finished)

    @_unary
    async def Bind(self, request: pb.BindRequest, context: Any) -> pb.ObjectResponse:
        obj = await self.h.bind(request.namespace, request.name, request.node_name, uid=request.uid,
                                resource_version=request.resource_version,
                                event_message=request.scheduled_event_message, event_source=request.event_source)
        return pb.ObjectResponse(object=dumps(obj))

    @_unary
    async def BindMany(self, request: pb.BindManyRequest, context: Any) -> pb.BindManyResponse:
        """Each bind as Bind does it, concurrently; a failure is that bind's result, not the request's."""
        async def one(b: pb.BindRequest) -> pb.BindResult:
            try:
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
            sub, backlog = await self.h.watch(request.kind, request.namespace, request.label_selector,
                                              request.field_selector, request.resource_version)
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
        result = await self.h.schedule_preview(decode_object(request.pod))
        return pb.SchedulePreviewResponse(result=dumps(result))

    async def Logs(self, request: pb.LogsRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.LogChunk]:
        try:
            async for chunk in proxy.logs(self.agents, request):
                yield chunk
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    async def Exec(self, requests: AsyncIterator[pb.ExecInput],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ExecOutput]:
        try:
            async for out in proxy.exec_(self.agents, requests.__aiter__()):
                yield out
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    async def LoadImage(self, chunks: AsyncIterator[pb.ImageChunk], context: Any) -> pb.ImageResult:
        try:
            return await proxy.load_image(self.agents, chunks.__aiter__())
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc)

    @_unary
    async def ListImages(self, request: pb.ImageRequest, context: Any) -> pb.ImageResult:
        return await proxy.list_images(self.agents, request)

    @_unary
    async def PullImage(self, request: pb.ImageRequest, context: Any) -> pb.ImageResult:
        return await proxy.pull_image(self.agents, request)

    @_unary
    async def RemoveImage(self, request: pb.ImageRequest, context: Any) -> pb.ImageResult:
        return await proxy.remove_image(self.agents, request)

    @_unary
    async def PodMetrics(self, request: pb.MetricsRequest, context: Any) -> pb.MetricsResponse:
        if request.name:
            pods = [await self.h.get("pods", request.namespace, request.name)]
        else:
            pods, _ = await self.h.list("pods", request.namespace, request.label_selector)
        return await proxy.pod_metrics(self.agents, pods)

    @_unary
    async def NodeMetrics(self, request: pb.MetricsRequest, context: Any) -> pb.MetricsResponse:
        if request.name:
            nodes = [await self.h.get("nodes", "", request.name)]
        else:
            nodes, _ = await self.h.list("nodes", "", request.label_selector)
        return await proxy.node_metrics(self.agents, nodes)

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
