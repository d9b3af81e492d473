"""An asyncio client for the API server's verbs.

Objects go in and out as dicts shaped like Kubernetes manifests. Passing a
model class as the kind (`Pod`) returns parsed models instead of dicts; passing
a model instance as the object sends its JSON form.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, TypeVar, Union

import grpc

from controlplane.client.credentials import Credentials, split_target
from controlplane.client.errors import ApiError, Unavailable, error_for, from_rpc_error
from controlplane.client.requeststream import MAX_STREAM_REQUEST_BYTES, RequestStream
from protos import keepalive, targets
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from api.resource import Resource
    from controlplane.client.execstream import ExecSession

# The object model (pydantic, every kind's model: about 12 MiB) is imported only by a
# caller that uses it — passes a model class or instance. Processes that handle plain
# dicts, such as the node agent, never load it.
M = TypeVar("M", bound="Resource")
Kind = Union[str, type["Resource"]]
DEFAULT_SERVER = "127.0.0.1:6443"
T = TypeVar("T")
# Delays before each retry of an idempotent verb that met a failover (2 s in all:
# longer than an etcd member's or a control plane's connection takes to move).
RETRY_DELAYS = (0.1, 0.3, 0.6, 1.0)


def _is_model(obj: Any) -> bool:
    """Whether obj is a model instance (api.resource.Resource) rather than a dict.

    Looked up in sys.modules instead of imported: if api.resource was never imported,
    no model instance can exist, and the answer is no without paying for the import."""
    resource = sys.modules.get("api.resource")
    return resource is not None and isinstance(obj, resource.Resource)


@dataclass
class ObjectList:
    items: list[Any]
    resource_version: str


@dataclass
class WatchEvent:
    type: str          # ADDED, MODIFIED, DELETED, BOOKMARK
    object: Any        # dict, or a model when a model class was given

    @property
    def resource_version(self) -> str:
        obj = self.object
        meta = obj.metadata.resource_version if _is_model(obj) else (obj.get("metadata") or {}).get(
            "resourceVersion")
        return meta or ""


def _kind_name(kind: Kind) -> str:
    return kind if isinstance(kind, str) else kind.KIND or kind.model_fields["kind"].default


def _encode(obj: dict[str, Any] | Resource) -> bytes:
    data = obj.to_json() if _is_model(obj) else obj
    return json.dumps(data, separators=(",", ":")).encode()


class Client:
    def __init__(self, server: str = DEFAULT_SERVER, *, credentials: Credentials | None = None,
                 timeout: float = 30.0, channel: grpc.aio.Channel | None = None, request_stream: bool = True):
        """credentials: the CA to trust and the caller's certificate or token (credentials.py);
        required unless `channel` is given or the server is written http://host:port (a server
        run with --insecure).

        request_stream: send the object verbs (create, get, update, update_status, delete,
        bind, bind_many, apply) as messages on one long-lived stream rather than a call each
        (requeststream.py: same answers and errors, about a quarter of gRPC's cost per request)."""
        self.server = server
        self.timeout = timeout
        self.servers = targets.split_servers(server)
        self.failover = len(self.servers) > 1
        if credentials is None and channel is None:
            if not split_target(server)[1]:
                raise ValueError(f"no credentials for the API server at {server}: give the cluster CA and a "
                                 f"client certificate or token (or http://{server} for a server run with --insecure)")
            credentials = Credentials.plaintext()
        self.credentials = credentials
        self._request_stream = request_stream
        self._retiring: asyncio.Task | None = None   # the channel a credential renewal replaced
        self._connect(channel)

    def _connect(self, channel: grpc.aio.Channel | None = None) -> None:
        assert channel is not None or self.credentials is not None
        # Several servers ("a:6443,b:6443", several control planes): one channel over all,
        # failing over between them (protos/targets.py). Every API server's certificate
        # names 127.0.0.1, localhost and its own addresses; one channel has one authority,
        # so over TLS it is checked against the first server's host.
        self.channel = channel or self.credentials.channel(  # type: ignore[union-attr]
            targets.channel_target(self.servers) if self.failover else self.server,
            options=[("grpc.max_receive_message_length", -1),  # a List of a whole kind can be large
                     *keepalive.CLIENT_OPTIONS, *(self._failover_options() if self.failover else [])])
        self.stub = pb_grpc.ApiStub(self.channel)
        self._requests = RequestStream(self.stub, server=self.server) if self._request_stream else None

    def _failover_options(self) -> list[tuple[str, Any]]:
        first_host = targets.parse_address(split_target(self.servers[0])[0])[0]
        return [*targets.FAILOVER_OPTIONS, ("grpc.ssl_target_name_override", first_host)]

    async def renew_credentials(self, credentials: Credentials, *, grace: float = 5.0) -> None:
        """Use new credentials (a renewed certificate) from now on without a restart: new calls go on
        a new channel; the old one is closed after `grace` seconds, ending what still runs on it
        (watches end as when a server restarts, and informers watch again)."""
        old_channel, old_requests = self.channel, self._requests
        self.credentials = credentials
        self._connect()

        async def retire() -> None:
            await asyncio.sleep(grace)
            if old_requests is not None:
                await old_requests.close()
            await old_channel.close()
        self._retiring = asyncio.get_running_loop().create_task(retire(), name="client-retire-channel")

    async def close(self) -> None:
        if self._requests is not None:
            await self._requests.close()
        await self.channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return await method(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, server=self.server) from None

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """An idempotent verb (apply, get, list), tried again after RETRY_DELAYS when it meets
        Unavailable from a failover in progress: another of several servers taking over, or
        the server's etcd moving to another member. (A lone server that is not there at all
        fails at once: nothing would take over.)"""
        for delay in RETRY_DELAYS:
            try:
                return await call()
            except Unavailable as exc:
                if not (self.failover or "etcd" in exc.message):
                    raise
                await asyncio.sleep(delay)
        return await call()

    async def _verb(self, field: str, method: Any, request: Any) -> Any:
        """An object verb: on the request stream, or as its own call (`method`) without one."""
        size = request.ByteSize()
        if self._requests is None or size > MAX_STREAM_REQUEST_BYTES:
            return await self._call(method, request)
        return await self._requests.call(field, request, size=size, timeout=self.timeout)

    @staticmethod
    def _out(kind: Kind | None, raw: bytes) -> Any:
        data = json.loads(raw)
        if kind is not None and not isinstance(kind, str):
            from api.registry import parse_object  # a model class was given: the model is loaded already
            return parse_object(data)
        return data

    # -- verbs ---------------------------------------------------------------------

    async def apply(self, obj: dict[str, Any] | Resource, *, dry_run: bool = False) -> tuple[dict[str, Any], str]:
        """Create or update to match the manifest; returns (object, "created"|"configured"|"unchanged")."""
        request = pb.ApplyRequest(object=_encode(obj), dry_run=dry_run)
        reply = await self._retrying(lambda: self._verb("apply", self.stub.Apply, request))
        return json.loads(reply.object), reply.result

    async def create(self, obj: dict[str, Any] | M, *, dry_run: bool = False) -> Any:
        reply = await self._verb("create", self.stub.Create,
                                 pb.CreateRequest(object=_encode(obj), dry_run=dry_run))
        return self._out(type(obj) if _is_model(obj) else None, reply.object)

    async def get(self, kind: Kind, name: str, namespace: str = "") -> Any:
        request = pb.GetRequest(kind=_kind_name(kind), namespace=namespace, name=name)
        reply = await self._retrying(lambda: self._verb("get", self.stub.Get, request))
        return self._out(kind, reply.object)

    async def list(self, kind: Kind, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "") -> ObjectList:
        request = pb.ListRequest(kind=_kind_name(kind), namespace=namespace, label_selector=label_selector,
                                 field_selector=field_selector)
        reply = await self._retrying(lambda: self._call(self.stub.List, request))
        return ObjectList([self._out(kind, raw) for raw in reply.items], reply.resource_version)

    async def update(self, obj: dict[str, Any] | M, *, dry_run: bool = False) -> Any:
        reply = await self._verb("update", self.stub.Update,
                                 pb.UpdateRequest(object=_encode(obj), dry_run=dry_run))
        return self._out(type(obj) if _is_model(obj) else None, reply.object)

    async def update_status(self, obj: dict[str, Any] | M, *, dry_run: bool = False) -> Any:
        reply = await self._verb("update_status", self.stub.UpdateStatus,
                                 pb.UpdateRequest(object=_encode(obj), dry_run=dry_run))
        return self._out(type(obj) if _is_model(obj) else None, reply.object)

    async def delete(self, kind: Kind, name: str, namespace: str = "", *, propagation: str = "",
                     grace_seconds: int | None = None, dry_run: bool = False,
                     resource_version: str = "") -> tuple[Any, bool]:
        """Delete; returns (last state, finished). finished is False when the object was
        only marked for deletion (a pod's grace period, finalizers)."""
        request = pb.DeleteRequest(kind=_kind_name(kind), namespace=namespace, name=name,
                                   propagation_policy=propagation, dry_run=dry_run,
                                   resource_version=resource_version)
        if grace_seconds is not None:
            request.grace_period_seconds = grace_seconds
        reply = await self._verb("delete", self.stub.Delete, request)
        return self._out(kind, reply.object), reply.finished

    async def evict(self, name: str, namespace: str = "", *, grace_seconds: int | None = None,
                    dry_run: bool = False) -> dict[str, Any]:
        """The pods/eviction subresource: delete the pod unless its PodDisruptionBudget forbids
        it now (TooManyRequests: try again later). Returns the pod as last seen."""
        request = pb.EvictRequest(namespace=namespace, name=name, dry_run=dry_run)
        if grace_seconds is not None:
            request.grace_period_seconds = grace_seconds
        reply = await self._call(self.stub.Evict, request)
        return json.loads(reply.object)

    async def bind(self, namespace: str, name: str, node_name: str, *, uid: str = "",
                   resource_version: str = "", scheduled_event: str = "", event_source: str = "") -> dict[str, Any]:
        """Bind the pod to the node. With scheduled_event, the server also records the pod's
        `Scheduled` Event with that message (source `event_source`), in the same write."""
        reply = await self._verb("bind", self.stub.Bind,
                                 pb.BindRequest(namespace=namespace, name=name, node_name=node_name, uid=uid,
                                                resource_version=resource_version,
                                                scheduled_event_message=scheduled_event, event_source=event_source))
        return json.loads(reply.object)

    async def bind_many(self, binds: list[dict[str, str]]) -> list[dict[str, Any] | ApiError]:
        """Several binds in one request. Each dict has the keyword arguments of `bind` plus
        namespace, name and node_name; each result is the bound pod or the ApiError that
        `bind` would have raised, in order."""
        request = pb.BindManyRequest(binds=[pb.BindRequest(
            namespace=b["namespace"], name=b["name"], node_name=b["node_name"], uid=b.get("uid", ""),
            resource_version=b.get("resource_version", ""), scheduled_event_message=b.get("scheduled_event", ""),
            event_source=b.get("event_source", "")) for b in binds])
        reply = await self._verb("bind_many", self.stub.BindMany, request)
        out: list[dict[str, Any] | ApiError] = []
        for result in reply.results:
            if result.code == "OK":
                out.append(json.loads(result.object))
            else:
                out.append(error_for(grpc.StatusCode[result.code], result.message))
        return out

    async def watch(self, kind: Kind, namespace: str = "", *, label_selector: str = "", field_selector: str = "",
                    resource_version: str = "", allow_bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        """Stream changes. resource_version "" starts with ADDED for every current object.
        Raises TooOld when the server no longer holds that version: list again."""
        request = pb.WatchRequest(kind=_kind_name(kind), namespace=namespace, label_selector=label_selector,
                                  field_selector=field_selector, resource_version=resource_version,
                                  allow_bookmarks=allow_bookmarks, allow_batching=True)
        call = self.stub.Watch(request)
        out = self._out
        try:
            async for message in call:
                for event in (message, *message.more) if message.more else (message,):
                    if event.type == "BOOKMARK":
                        yield WatchEvent("BOOKMARK", json.loads(event.object))
                    else:
                        yield WatchEvent(event.type, out(kind, event.object))
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, server=self.server) from None
        finally:
            call.cancel()

    async def logs(self, namespace: str, pod: str, *, container: str = "", follow: bool = False,
                   previous: bool = False, tail_lines: int = -1, since_seconds: int = 0,
                   timestamps: bool = False) -> AsyncIterator[bytes]:
        """A container's log, as chunks of bytes (streamed until the end, or forever with follow)."""
        request = pb.LogsRequest(namespace=namespace, pod=pod, container=container, follow=follow,
                                 previous=previous, tail_lines=tail_lines, since_seconds=since_seconds,
                                 timestamps=timestamps)
        call = self.stub.Logs(request)
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, server=self.server) from None
        finally:
            call.cancel()

    def exec(self, inputs: AsyncIterator[pb.ExecInput]) -> Any:
        """Open an exec stream; the first input must carry `start` (see protos/skiff.proto).
        Returns the gRPC call: iterate it for ExecOutput messages."""
        return self.stub.Exec(inputs)

    def port_forward(self, inputs: AsyncIterator[pb.PortForwardData]) -> Any:
        """Open one port-forward connection; the first input carries `start` (pod and port).
        Returns the gRPC call: iterate it for the pod's bytes (controlplane/client/portforward.py)."""
        return self.stub.PortForward(inputs)

    def exec_session(self, *, namespace: str, pod: str, container: str, command: list[str], tty: bool = False,
                     stdin: bool = False, rows: int = 0, cols: int = 0) -> "ExecSession":
        """An exec session without wire messages (see execstream.py)."""
        from controlplane.client.execstream import ExecSession
        return ExecSession(self.stub, self.server, namespace=namespace, pod=pod, container=container,
                           command=command, tty=tty, stdin=stdin, rows=rows, cols=cols)

    # -- images in nodes' stores ---------------------------------------------------------------

    @staticmethod
    def _images(reply: Any) -> dict[str, Any]:
        return {"images": [{"node": i.node, "names": list(i.names), "digest": i.digest, "size": i.size}
                           for i in reply.images], "errors": list(reply.errors)}

    async def load_image(self, path: str, *, node: str = "") -> dict[str, Any]:
        """Upload an image archive (OCI layout or `docker save` tar) into one node's store, or every node's."""
        async def chunks() -> AsyncIterator[pb.ImageChunk]:
            first = True
            with open(path, "rb") as f:
                while data := f.read(1 << 20):
                    yield pb.ImageChunk(node=node if first else "", data=data)
                    first = False
        reply = await self._call(self.stub.LoadImage, chunks(), timeout=600)
        return self._images(reply)

    async def list_images(self, *, node: str = "") -> dict[str, Any]:
        return self._images(await self._call(self.stub.ListImages, pb.ImageRequest(node=node)))

    async def pull_image(self, image: str, *, node: str = "") -> dict[str, Any]:
        return self._images(await self._call(self.stub.PullImage, pb.ImageRequest(node=node, image=image),
                                             timeout=600))

    async def remove_image(self, image: str, *, node: str = "") -> dict[str, Any]:
        return self._images(await self._call(self.stub.RemoveImage, pb.ImageRequest(node=node, image=image)))

    async def schedule_preview(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Where the scheduler would put this pod, with every node's verdicts and scores."""
        reply = await self._call(self.stub.SchedulePreview, pb.SchedulePreviewRequest(pod=_encode(pod)))
        return json.loads(reply.result)

    # -- resource usage (`ctl top`) --------------------------------------------------------------

    @staticmethod
    def _metrics(reply: Any) -> dict[str, Any]:
        """{"nodes": [...], "pods": [...], "errors": [...], "pending": [...]}; cpu in nanocores,
        memory in bytes (the working set), each figure over the agent's last window."""
        return {
            "nodes": [{"name": n.name, "cpuNanocores": n.cpu_nanocores, "memoryBytes": n.memory_bytes,
                       "timestamp": n.timestamp, "windowSeconds": n.window_seconds} for n in reply.nodes],
            "pods": [{"namespace": p.namespace, "name": p.name, "uid": p.uid, "node": p.node,
                      "timestamp": p.timestamp, "windowSeconds": p.window_seconds,
                      "containers": [{"name": c.name, "cpuNanocores": c.cpu_nanocores, "memoryBytes": c.memory_bytes}
                                     for c in p.containers]} for p in reply.pods],
            "errors": list(reply.errors), "pending": list(reply.pending)}

    async def pod_metrics(self, namespace: str = "", *, label_selector: str = "", name: str = "") -> dict[str, Any]:
        """Usage of the pods in a namespace ("" for all) matching the selector, or of one pod by name."""
        request = pb.MetricsRequest(namespace=namespace, label_selector=label_selector, name=name)
        return self._metrics(await self._call(self.stub.PodMetrics, request))

    async def node_metrics(self, *, label_selector: str = "", name: str = "") -> dict[str, Any]:
        """Usage of every node (matching the selector), or of one node by name."""
        request = pb.MetricsRequest(label_selector=label_selector, name=name)
        return self._metrics(await self._call(self.stub.NodeMetrics, request))

    async def version(self) -> dict[str, str]:
        reply = await self._call(self.stub.Version, pb.VersionRequest())
        return {"version": reply.version, "etcdVersion": reply.etcd_version, "pythonVersion": reply.python_version}

    async def discovery(self) -> list[dict[str, Any]]:
        reply = await self._call(self.stub.Discovery, pb.DiscoveryRequest())
        return [{"kind": r.kind, "plural": r.plural, "singular": r.singular, "shortNames": list(r.short_names),
                 "group": r.group, "version": r.version, "namespaced": r.namespaced, "verbs": list(r.verbs)}
                for r in reply.resources]

    async def access_review(self, verb: str, resource: str, *, group: str = "", namespace: str = "", name: str = "",
                            user: str = "", groups: list[str] | None = None) -> dict[str, Any]:
        """May I (or `user` in `groups`, which needs impersonate) do `verb` on `resource`? (`ctl auth can-i`)"""
        reply = await self._call(self.stub.AccessReview, pb.AccessReviewRequest(
            verb=verb, resource=resource, group=group, namespace=namespace, name=name, user=user,
            groups=list(groups or [])))
        return {"allowed": reply.allowed, "reason": reply.reason, "user": reply.user}

    async def token_request(self, service_account: str, namespace: str, *, pod_name: str = "", pod_uid: str = "",
                            audiences: list[str] | None = None, expiration_seconds: int = 0) -> tuple[str, int]:
        """A ServiceAccount token bound to a pod: (token, expiry in unix seconds)."""
        reply = await self._call(self.stub.TokenRequest, pb.TokenRequestMessage(
            namespace=namespace, service_account=service_account, pod_name=pod_name, pod_uid=pod_uid,
            audiences=list(audiences or []), expiration_seconds=expiration_seconds))
        return reply.token, reply.expiration_timestamp


__all__ = ["Client", "ObjectList", "WatchEvent", "ApiError", "DEFAULT_SERVER"]
