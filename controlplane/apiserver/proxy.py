"""Forwarding `logs`, `exec` and `port-forward` to the agent of the pod's node.

`ctl` only ever talks to the API server; for a container's logs or an exec
session the API server finds the pod's node, finds its agent, and relays the
stream both ways (as kubectl's path through kube-apiserver to the kubelet).

Which address, and whom to trust (`AgentDialer`): with TLS (the default) the address is
the one the node's own identity recorded when its serving certificate was issued
(controlplane/pki/nodecerts.py), and the agent must present a certificate from the
cluster CA naming that node; the API server presents its own (CN skiff-apiserver), the
only one agents accept. A Node object's status, which others can write, is not used.
Under `--insecure` there is no PKI: the address is the Node's InternalIP and
daemonEndpoints.kubeletEndpoint.Port, in plain text.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import grpc

from controlplane.apiserver.errors import FailedPrecondition
from controlplane.client.credentials import Credentials
from controlplane.client.errors import error_for
from controlplane.storage import NotFound, Store, Unavailable
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

DEFAULT_AGENT_PORT = 10250


def _status_endpoint(node: dict) -> str:
    """host:port of a Node's agent as its status says, or "" when it has no InternalIP."""
    status = node.get("status") or {}
    ip = next((a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), "")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or DEFAULT_AGENT_PORT
    return f"{ip}:{port}" if ip else ""


class AgentDialer:
    """Where each node's agent is and how to reach it; `credentials` None means plain text (--insecure)."""

    def __init__(self, store: Store, credentials: Credentials | None = None):
        self.store = store
        self.credentials = credentials
        self._channel_credentials = credentials.channel_credentials() if credentials is not None else None

    async def endpoint(self, node: dict) -> str:
        """host:port of a Node's agent, or "" when it has none."""
        if self.credentials is None:
            return _status_endpoint(node)
        from controlplane.pki.nodecerts import recorded_agent_address
        return await recorded_agent_address(self.store, node["metadata"]["name"]) or ""

    def channel(self, node_name: str, address: str) -> grpc.aio.Channel:
        if self._channel_credentials is None:
            return grpc.aio.insecure_channel(address)
        # The agent's certificate must name this node (its SANs: the node's IP and name).
        return grpc.aio.secure_channel(address, self._channel_credentials,
                                       options=[("grpc.ssl_target_name_override", node_name)])

    def missing(self, node_name: str) -> str:
        if self.credentials is None:
            return f"node {node_name} has no InternalIP; is its agent running?"
        return f"node {node_name} has no agent address recorded by its own identity; has its agent joined?"


async def agent_address(agents: AgentDialer, namespace: str, pod_name: str) -> tuple[str, str]:
    """(node name, host:port of its agent) for a pod."""
    store = agents.store
    try:
        pod = await store.get("pods", namespace or "default", pod_name)
    except NotFound:
        raise NotFound(f'pods "{pod_name}" not found') from None
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise FailedPrecondition(f"pod {pod_name} does not have a host assigned")
    node = await store.get("nodes", "", node_name)
    address = await agents.endpoint(node)
    if not address:
        raise Unavailable(agents.missing(node_name))
    return node_name, address


def _relay_error(node: str, address: str, exc: grpc.aio.AioRpcError) -> Exception:
    if exc.code() == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(f"cannot reach the agent of node {node} at {address}: {exc.details()}")
    return error_for(exc.code(), exc.details() or exc.code().name)  # the agent's answer, as it gave it


async def logs(agents: AgentDialer, request: pb.LogsRequest) -> AsyncIterator[pb.LogChunk]:
    node, address = await agent_address(agents, request.namespace, request.pod)
    async with agents.channel(node, address) as channel:
        try:
            async for chunk in pb_grpc.AgentStub(channel).Logs(request):
                yield chunk
        except grpc.aio.AioRpcError as exc:
            raise _relay_error(node, address, exc) from None


async def _relay_stream(agents: AgentDialer, requests: AsyncIterator[Any], *, what: str,
                        method: str) -> AsyncIterator[Any]:
    """Relay a bidirectional stream whose first message's `start` names the pod (Exec,
    PortForward) to the same method of the agent of the pod's node."""
    first = await anext(requests, None)
    if first is None or not first.HasField("start"):
        raise FailedPrecondition(f"{what}: the first message must say which pod")
    node, address = await agent_address(agents, first.start.namespace, first.start.pod)

    async def upstream() -> AsyncIterator[Any]:
        yield first
        async for message in requests:
            yield message

    async with agents.channel(node, address) as channel:
        try:
            async for out in getattr(pb_grpc.AgentStub(channel), method)(upstream()):
                yield out
        except grpc.aio.AioRpcError as exc:
            raise _relay_error(node, address, exc) from None


def exec_(agents: AgentDialer, requests: AsyncIterator[pb.ExecInput]) -> AsyncIterator[pb.ExecOutput]:
    return _relay_stream(agents, requests, what="exec", method="Exec")


def port_forward(agents: AgentDialer, requests: AsyncIterator[pb.PortForwardData]
                 ) -> AsyncIterator[pb.PortForwardData]:
    """One port-forward connection (`ctl port-forward` opens one per TCP connection)."""
    return _relay_stream(agents, requests, what="port-forward", method="PortForward")


# -- images in nodes' stores ---------------------------------------------------------------

CHUNK = 1 << 20


async def node_agents(agents: AgentDialer, node: str) -> list[tuple[str, str]]:
    """(node name, agent address) for one node, or for every node when node is ""."""
    store = agents.store
    if node:
        nodes = [await store.get("nodes", "", node)]
    else:
        nodes, _ = await store.list("nodes")
    out = []
    for n in nodes:
        address = await agents.endpoint(n)
        if address:
            out.append((n["metadata"]["name"], address))
    if not out:
        raise FailedPrecondition("no node with a running agent" if not node else f"node {node} has no agent address")
    return out


async def _each_node(agents: AgentDialer, node: str, call) -> pb.ImageResult:  # type: ignore[no-untyped-def]
    import asyncio
    result = pb.ImageResult()

    async def one(name: str, address: str) -> None:
        async with agents.channel(name, address) as channel:
            try:
                reply = await call(pb_grpc.AgentStub(channel))
                result.images.extend(reply.images)
                result.errors.extend(reply.errors)
            except grpc.aio.AioRpcError as exc:
                result.errors.append(f"{name}: {exc.details() or exc.code().name}")
    await asyncio.gather(*(one(n, a) for n, a in await node_agents(agents, node)))
    return result


async def load_image(agents: AgentDialer, chunks: AsyncIterator[pb.ImageChunk]) -> pb.ImageResult:
    """Spool the uploaded archive once, then stream it to each target node's agent."""
    import tempfile
    node = None
    with tempfile.TemporaryFile() as spool:
        async for chunk in chunks:
            if node is None:
                node = chunk.node
            spool.write(chunk.data)
        size = spool.tell()
        if not size:
            raise FailedPrecondition("image load: the archive is empty")

        async def send(stub: pb_grpc.AgentStub) -> pb.ImageResult:
            async def upload() -> AsyncIterator[pb.ImageChunk]:
                offset = 0
                while offset < size:
                    spool.seek(offset)
                    data = spool.read(CHUNK)
                    offset += len(data)
                    yield pb.ImageChunk(data=data)
            return await stub.LoadImage(upload())
        return await _each_node(agents, node or "", send)


async def list_images(agents: AgentDialer, request: pb.ImageRequest) -> pb.ImageResult:
    return await _each_node(agents, request.node, lambda stub: stub.ListImages(request))


async def pull_image(agents: AgentDialer, request: pb.ImageRequest) -> pb.ImageResult:
    return await _each_node(agents, request.node, lambda stub: stub.PullImage(request, timeout=600))


async def remove_image(agents: AgentDialer, request: pb.ImageRequest) -> pb.ImageResult:
    return await _each_node(agents, request.node, lambda stub: stub.RemoveImage(request))


# -- resource usage (`ctl top pods|nodes`) ------------------------------------------------------
# Each agent samples its node and pods (agent/metrics.py); the API server asks the agents
# concerned at once, each with a short deadline, so one dead node cannot stall `ctl top`.
# A node that is not Ready is not asked; it and every agent that does not answer are named in
# `errors`, and agents without a complete sample yet in `pending`.

METRICS_TIMEOUT = 2.0


def _node_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


async def _gather_metrics(agents: AgentDialer, nodes: list[dict], uids_by_node: dict[str, list[str]],
                          timeout: float) -> pb.MetricsResponse:
    import asyncio
    result = pb.MetricsResponse()

    async def one(name: str, address: str, request: pb.MetricsRequest) -> pb.MetricsResponse | str:
        try:
            async with agents.channel(name, address) as channel:
                return await pb_grpc.AgentStub(channel).Metrics(request, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return f"{name}: its agent at {address} did not answer within {timeout:g}s"
            return f"{name}: cannot reach its agent at {address}: {exc.details() or exc.code().name}"

    asks = []
    for node in nodes:
        name = node["metadata"]["name"]
        address = await agents.endpoint(node)
        if not _node_ready(node):
            result.errors.append(f"{name}: node is not Ready")
        elif not address:
            result.errors.append(f"{name}: {agents.missing(name)}")
        else:
            asks.append((name, address, pb.MetricsRequest(pod_uids=uids_by_node.get(name, []))))
    for reply in await asyncio.gather(*(one(*ask) for ask in asks)):
        if isinstance(reply, str):
            result.errors.append(reply)
            continue
        result.nodes.extend(reply.nodes)
        result.pods.extend(reply.pods)
        result.pending.extend(reply.pending)
    return result


async def node_metrics(agents: AgentDialer, nodes: list[dict], *,
                       timeout: float = METRICS_TIMEOUT) -> pb.MetricsResponse:
    """The usage of each of `nodes` (Node objects), from their agents."""
    return await _gather_metrics(agents, nodes, {}, timeout)


async def pod_metrics(agents: AgentDialer, pods: list[dict], *, timeout: float = METRICS_TIMEOUT) -> pb.MetricsResponse:
    """The usage of each of `pods` (Pod objects) that runs on a node, from the agents of their nodes."""
    uids_by_node: dict[str, list[str]] = {}
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            uids_by_node.setdefault(node, []).append(pod["metadata"]["uid"])
    nodes = []
    missing = []
    for name in sorted(uids_by_node):
        try:
            nodes.append(await agents.store.get("nodes", "", name))
        except NotFound:
            missing.append(f"{name}: node not found")
    result = await _gather_metrics(agents, nodes, uids_by_node, timeout)
    result.errors.extend(missing)
    # Agents report only what was asked, but keep the node figures out of a pods answer.
    del result.nodes[:]
    return result
