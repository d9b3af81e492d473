"""The agent's own gRPC service: container logs and exec, called by the API server.

`ctl logs` and `ctl exec` reach here through the API server (controlplane/
apiserver/proxy.py). Logs are read from the files the runtime's supervisors
write (agent/logs.py); exec starts a process inside the container's namespaces
and cgroup (Runtime.exec) and pumps stdin/stdout/stderr over the stream.
`ctl top` asks `Metrics`: the usage agent/metrics.py samples from the cgroups
(the sampler runs alongside the server, see AgentServer.run).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import grpc

from agent import logs as logreader
from agent.metrics import MetricsCollector
from agent.podstate import PodState
from protos import keepalive
from protos import skiff_pb2 as pb
from protos import skiff_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


# How often a followed log checks whether its container still runs.
EXIT_POLL_SECONDS = 0.5

class AgentService(pb_grpc.AgentServicer):
    def __init__(self, *, runtime: Any, find_pod: Callable[[str, str], dict | None],
                 states: Callable[[], dict[str, PodState]], images: Any = None, node_name: str = "",
                 pods: Callable[[], list[dict]] = lambda: [], metrics: MetricsCollector | None = None):
        self.runtime = runtime
        self.find_pod = find_pod
        self.states = states
        self.images = images
        self.node_name = node_name
        self.pods = pods
        if metrics is None and getattr(runtime, "cgroups", None) is not None:
            metrics = MetricsCollector(runtime.cgroups)
        self.metrics = metrics

    # -- usage (`ctl top`) -----------------------------------------------------------------------

    async def Metrics(self, request: pb.MetricsRequest, context: Any) -> pb.MetricsResponse:
        window = self.metrics.window() if self.metrics is not None else None
        if window is None:
            return pb.MetricsResponse(pending=[self.node_name])
        reply = pb.MetricsResponse(nodes=[pb.NodeMetrics(
            name=self.node_name, cpu_nanocores=window.node.cpu_nanocores, memory_bytes=window.node.memory_bytes,
            timestamp=window.timestamp, window_seconds=window.seconds)])
        wanted = set(request.pod_uids) & set(window.pods)
        if not wanted:
            return reply
        by_uid = {p["metadata"].get("uid"): p for p in self.pods()}
        for uid in sorted(wanted):
            pod, usage = by_uid.get(uid), window.pods[uid]
            if pod is None:
                continue
            order = [c["name"] for c in (pod["spec"].get("initContainers") or []) + pod["spec"]["containers"]]
            names = sorted(usage.containers, key=lambda n: (order.index(n) if n in order else len(order), n))
            reply.pods.append(pb.PodMetrics(
                namespace=pod["metadata"].get("namespace", ""), name=pod["metadata"]["name"], uid=uid,
                node=self.node_name, timestamp=window.timestamp, window_seconds=window.seconds,
                containers=[pb.ContainerMetrics(name=n, cpu_nanocores=usage.containers[n].cpu_nanocores,
                                                memory_bytes=usage.containers[n].memory_bytes) for n in names]))
        return reply

    # -- images ---------------------------------------------------------------------------

    def _result(self, images: list[Any]) -> pb.ImageResult:
        return pb.ImageResult(images=[pb.NodeImage(node=self.node_name, names=list(i.names), digest=i.digest,
                                                   size=int(i.size)) for i in images])

    async def LoadImage(self, chunks: AsyncIterator[pb.ImageChunk], context: Any) -> pb.ImageResult:
        import tempfile
        spool_dir = self.images.root if hasattr(self.images, "root") else None
        with tempfile.NamedTemporaryFile(dir=spool_dir, prefix=".upload-", suffix=".tar") as spool:
            async for chunk in chunks:
                spool.write(chunk.data)
            spool.flush()
            try:
                loaded = await self.images.load_archive(Path(spool.name))
            except Exception as exc:
                return pb.ImageResult(errors=[f"{self.node_name}: {exc}"])
        return self._result(loaded)

    async def ListImages(self, request: pb.ImageRequest, context: Any) -> pb.ImageResult:
        return self._result(self.images.list())

    async def PullImage(self, request: pb.ImageRequest, context: Any) -> pb.ImageResult:
        try:
            return self._result([await self.images.pull(request.image, policy="Always")])
        except Exception as exc:
            return pb.ImageResult(errors=[f"{self.node_name}: {exc}"])

    async def RemoveImage(self, request: pb.ImageRequest, context: Any) -> pb.ImageResult:
        from agent.images import normalize_reference
        try:
            wanted = str(normalize_reference(request.image))
            users = [p["metadata"]["name"] for p in self.pods()
                     if any(str(normalize_reference(c["image"])) == wanted
                            for c in p["spec"]["containers"] + (p["spec"].get("initContainers") or []))]
            if users:
                return pb.ImageResult(errors=[f"{self.node_name}: image {request.image} is in use by pods "
                                              f"{', '.join(sorted(users))}"])
            await asyncio.to_thread(self.images.remove, request.image)
        except Exception as exc:
            return pb.ImageResult(errors=[f"{self.node_name}: {exc}"])
        return pb.ImageResult()

    def _container(self, namespace: str, pod_name: str, container: str) -> tuple[dict, PodState, str]:
        pod = self.find_pod(namespace or "default", pod_name)
        if pod is None:
            raise LookupError(f'pods "{pod_name}" not found on this node')
        names = [c["name"] for c in pod["spec"]["containers"] + (pod["spec"].get("initContainers") or [])]
        if not container:
            if len(pod["spec"]["containers"]) > 1:
                raise ValueError(f"a container name must be specified for pod {pod_name}, choose one of: "
                                 f"[{' '.join(names)}]")
            container = pod["spec"]["containers"][0]["name"]
        if container not in names:
            raise ValueError(f"container {container} is not valid for pod {pod_name}")
        state = self.states().get(pod["metadata"]["uid"])
        if state is None or not state.instances.get(container):
            raise ValueError(f'container "{container}" in pod "{pod_name}" is waiting to start')
        return pod, state, container

    async def Logs(self, request: pb.LogsRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.LogChunk]:
        try:
            _pod, state, name = self._container(request.namespace, request.pod, request.container)
            status = state.previous(name) if request.previous else state.latest(name)
            if status is None:
                raise ValueError(f'previous terminated container "{name}" in pod "{request.pod}" not found')
            path = Path(status.log_path) if status.log_path else None
            if path is None:
                raise ValueError(f"no log for container {name}")
        except LookupError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            return
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            return
        stop = asyncio.Event()
        context.add_done_callback(lambda _: stop.set())
        follow = request.follow and status.state == "running"

        async def until_exit() -> None:
            """A followed log ends once its container is no longer running (as kubectl's `logs -f`)."""
            while not stop.is_set():
                latest = state.latest(name)
                if latest is None or latest.id != status.id or latest.state != "running":
                    stop.set()
                    return
                await asyncio.sleep(EXIT_POLL_SECONDS)
        watcher = asyncio.create_task(until_exit()) if follow else None
        try:
            async for data in logreader.read_logs(path, tail=None if request.tail_lines < 0 else request.tail_lines,
                                                  since_seconds=request.since_seconds or None,
                                                  timestamps=request.timestamps, follow=follow, stop=stop):
                yield pb.LogChunk(data=data)
        finally:
            if watcher is not None:
                watcher.cancel()

    async def PortForward(self, requests: AsyncIterator[pb.PortForwardData],
                          context: grpc.aio.ServicerContext) -> AsyncIterator[pb.PortForwardData]:
        """One TCP connection to a port of a pod on this node, at the pod's IP (so a server
        listening only on the pod's loopback is not reached, unlike kubectl's)."""
        from controlplane.client.portforward import socket_messages, write_messages
        incoming = requests.__aiter__()
        first = await anext(incoming, None)
        if first is None or not first.HasField("start"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "port-forward: the first message must carry start")
            return
        start = first.start
        pod = self.find_pod(start.namespace, start.pod)
        if pod is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f'pods "{start.pod}" not found on node {self.node_name}')
            return
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"pod {start.pod} has no IP yet")
            return
        try:
            reader, writer = await asyncio.open_connection(ip, start.port)
        except OSError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"error forwarding port {start.port} to pod {start.pod}: connect to {ip}:"
                                f"{start.port}: {os.strerror(exc.errno).lower() if exc.errno else exc}")
            return
        inbound = asyncio.create_task(write_messages(incoming, writer), name="port-forward-in")
        try:
            async for message in socket_messages(reader):
                yield message
        finally:
            inbound.cancel()
            writer.close()

    async def Exec(self, requests: AsyncIterator[pb.ExecInput],
                   context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ExecOutput]:
        first = await anext(requests.__aiter__(), None)
        if first is None or not first.HasField("start"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "exec: the first message must carry start")
            return
        start = first.start
        try:
            _pod, state, name = self._container(start.namespace, start.pod, start.container)
            latest = state.latest(name)
            if latest is None or latest.state != "running":
                raise ValueError(f"container {name} is not running")
            proc = await self.runtime.exec(latest.id, list(start.command), tty=start.tty)
        except LookupError as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            return
        except (ValueError, RuntimeError) as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            return
        out: asyncio.Queue[pb.ExecOutput | None] = asyncio.Queue()

        async def pump(reader: asyncio.StreamReader | None, field: str) -> None:
            if reader is None:
                return
            while chunk := await reader.read(65536):
                await out.put(pb.ExecOutput(**{field: chunk}))

        async def feed() -> None:
            async for message in requests:
                if message.stdin:
                    proc.stdin.write(message.stdin)
                    await proc.stdin.drain()
                if message.HasField("resize") and start.tty:
                    proc.resize(rows=message.resize.rows, cols=message.resize.cols)
                if message.stdin_closed:
                    proc.stdin.close()
                    return

        async def finish() -> None:
            await asyncio.gather(pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"))
            code = await proc.wait()
            await out.put(pb.ExecOutput(exited=True, exit_code=code))
            await out.put(None)

        feeder = asyncio.create_task(feed())
        finisher = asyncio.create_task(finish())
        try:
            while (item := await out.get()) is not None:
                yield item
        finally:
            feeder.cancel()
            if not finisher.done():
                proc.send_signal()
                finisher.cancel()


# The only caller an agent accepts: the API server's client certificate (controlplane/pki/ca.py).
API_SERVER_IDENTITY = "skiff-apiserver"


def only_api_server(user: Any, method: str) -> str | None:
    if user.name != API_SERVER_IDENTITY:
        return f"{user} may not call the agent's {method}: only the API server ({API_SERVER_IDENTITY}) may"
    return None


class AgentServer:
    """Serves AgentService on the agent's --listen address: over TLS with the node's serving
    certificate, to callers with a client certificate from the cluster CA (`ca`) whose name is
    the API server's, or in plain text when the agent runs with --insecure (credentials None)."""

    def __init__(self, service: AgentService, listen: str, *, credentials: grpc.ServerCredentials | None = None,
                 ca: bytes | None = None):
        self.service = service
        self.server = grpc.aio.server(options=keepalive.SERVER_OPTIONS)   # long exec/logs streams
        if credentials is None:
            pb_grpc.add_AgentServicer_to_server(service, self.server)
            self.server.add_insecure_port(listen)
        else:
            from controlplane.auth.authn import Authenticator, guard
            import controlplane.pki.certs as certs
            assert ca is not None
            authenticator = Authenticator(certs.load_cert(ca))
            pb_grpc.add_AgentServicer_to_server(guard(service, authenticator, permits=only_api_server), self.server)
            self.server.add_secure_port(listen, credentials)
        self.listen = listen

    async def run(self) -> None:
        await self.server.start()
        log.info("agent service listening on %s", self.listen)
        metrics = self.service.metrics
        sampler = asyncio.create_task(metrics.run(), name="metrics") if metrics is not None else None
        try:
            await self.server.wait_for_termination()
        finally:
            if sampler is not None:
                sampler.cancel()
                await asyncio.gather(sampler, return_exceptions=True)
            await self.server.stop(grace=1)
