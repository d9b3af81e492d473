"""`pods/exec` and `pods/portforward` over WebSocket, as kubectl 1.30+ speaks them.

kubectl opens `GET .../pods/{name}/exec?command=..&stdin=..&stdout=..&stderr=..&tty=..&container=..`
with `Upgrade: websocket` and the subprotocols `v5.channel.k8s.io` (preferred) and
`v4.channel.k8s.io`. Every binary message begins with its channel:

    0 stdin (client -> server)   1 stdout   2 stderr   3 error (the final Status)
    4 resize (client -> server, JSON {"Width", "Height"})
    255 close (v5 only, client -> server): the next byte is the channel it closes (stdin)

The session is relayed to the agent of the pod's node exactly as the gRPC Exec is
(controlplane/apiserver/proxy.py, through `Verbs.exec_`, which authorizes
`create pods/exec` first). When the command ends, channel 3 carries a `Status`:
Success, or Failure with reason NonZeroExitCode and an `ExitCode` cause, from which
kubectl takes its own exit code. An error before the session starts (no such pod, no
permission) is answered as a plain `Status` response, as Kubernetes does.

`kubectl port-forward` opens `.../pods/{name}/portforward?ports=..` as a WebSocket with the
subprotocol `SPDY/3.1+portforward.k8s.io` and speaks SPDY inside it (spdy.py). For each local
connection it opens two SPDY streams with the headers `streamType` (error, then data),
`port` and `requestID`; each data stream is one gRPC PortForward relayed to the agent
(`Verbs.port_forward`, authorized as `create pods/portforward`), bytes both ways, a FIN
for a half-close. The error stream carries a failure's text, and is closed (FIN) when the
connection ends, which kubectl waits for. kubectl's fallback, an HTTP upgrade to SPDY
outright (with PORT_FORWARD_WEBSOCKETS=false, or against an older client), is not served.

Not served: `pods/attach` (the agent has no way to join a running container's own
stdio; answered 400 saying so).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from aiohttp import WSMsgType, web

from controlplane.apiserver import proxy
from controlplane.apiserver.verbs import Verbs
from controlplane.auth.identity import UserInfo
from controlplane.rest import spdy, status
from protos import skiff_pb2 as pb

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
TUNNELED_SPDY = "SPDY/3.1+portforward.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
STREAM_SUBRESOURCES = ("exec", "attach", "portforward")
# Client messages held for the agent at most; beyond, the WebSocket is not read (memory stays bounded
# when a client writes faster than the pod reads; in a port-forward tunnel, that holds up its other
# connections too, as one TCP stream does).
INPUT_BACKLOG = 64


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("1", "true")


def exit_status(code: int) -> dict[str, Any]:
    """What channel 3 carries when the command has ended."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "message": f"command terminated with non-zero exit code: {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def not_streamed(subresource: str) -> dict[str, Any]:
    if subresource == "attach":
        return status.bad_request("pods/attach is not served: Skiff's agent cannot join a running container's "
                                  "own stdio; use `kubectl exec`")
    return status.bad_request(f"pods/{subresource} is served as a WebSocket ({TUNNELED_SPDY} for portforward) "
                              f"only; an upgrade to SPDY itself is not served")


async def exec_(verbs: Verbs, request: web.Request, user: UserInfo, namespace: str, pod: str) -> web.StreamResponse:
    """`kubectl exec`: one command's session over the channel protocol, relayed to the agent."""
    commands = request.query.getall("command", [])
    if not commands:
        return _answer(status.bad_request("you must specify at least one command for the container"))
    start = pb.ExecStart(namespace=namespace or "default", pod=pod, container=request.query.get("container", ""),
                         command=commands, tty=_flag(request, "tty"), stdin=_flag(request, "stdin"))
    want_stderr = _flag(request, "stderr") and not start.tty
    inputs: asyncio.Queue[pb.ExecInput | None] = asyncio.Queue(INPUT_BACKLOG)

    async def requests() -> AsyncIterator[pb.ExecInput]:
        yield pb.ExecInput(start=start)
        while (message := await inputs.get()) is not None:
            yield message

    # Who may, and where the pod runs, are asked before the upgrade: "forbidden" or "no such pod"
    # is a plain Status answer, as Kubernetes gives it.
    try:
        verbs.check(user, "create", "pods", start.namespace, pod, subresource="exec")
        outputs = verbs.exec_(user, requests())
        await proxy.agent_address(verbs.agents, start.namespace, pod)
    except Exception as exc:
        return _answer(status.of_exception(exc, kind="pods", name=pod))
    ws = web.WebSocketResponse(protocols=PROTOCOLS, autoping=True)
    await ws.prepare(request)
    v5 = ws.ws_protocol == PROTOCOLS[0]

    async def read_client() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == STDIN and data:
                await inputs.put(pb.ExecInput(stdin=data))
            elif channel == RESIZE:
                try:
                    size = json.loads(data)
                    await inputs.put(pb.ExecInput(resize=pb.TerminalSize(rows=int(size.get("Height", 0)),
                                                                         cols=int(size.get("Width", 0)))))
                except (ValueError, TypeError, AttributeError):
                    pass
            elif channel == CLOSE and v5 and data[:1] == bytes([STDIN]):
                await inputs.put(pb.ExecInput(stdin_closed=True))
        await inputs.put(pb.ExecInput(stdin_closed=True))   # the client went away: end the command's stdin

    reader = asyncio.create_task(read_client())
    code: int | None = None
    try:
        async for output in outputs:
            if output.stdout:
                await ws.send_bytes(bytes([STDOUT]) + output.stdout)
            if output.stderr:
                await ws.send_bytes(bytes([STDERR if want_stderr else STDOUT]) + output.stderr)
            if output.exited:
                code = output.exit_code
                break
        final = exit_status(code) if code is not None else \
            status.status(500, "InternalError", "the exec session ended without the command's exit status")
    except Exception as exc:
        final = status.of_exception(exc)
    try:
        await ws.send_bytes(bytes([ERROR]) + json.dumps(final).encode())
        await ws.close()
    except ConnectionResetError:
        pass
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.QueueFull):
            inputs.put_nowait(None)
    return ws


def _answer(st: dict[str, Any]) -> web.Response:
    return web.Response(body=json.dumps(st).encode(), status=st.get("code", 400), content_type="application/json")


@dataclass
class _Forward:
    """One forwarded connection: its SPDY streams and its input to the agent."""
    error_stream: int = 0
    data_stream: int = 0
    inputs: "asyncio.Queue[pb.PortForwardData | None]" = field(default_factory=lambda: asyncio.Queue(INPUT_BACKLOG))
    task: "asyncio.Task[None] | None" = None


async def port_forward(verbs: Verbs, request: web.Request, user: UserInfo, namespace: str,
                       pod: str) -> web.StreamResponse:
    """`kubectl port-forward`: SPDY in a WebSocket, each forwarded connection relayed to the agent."""
    namespace = namespace or "default"
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return _answer(not_streamed("portforward"))
    try:
        verbs.check(user, "create", "pods", namespace, pod, subresource="portforward")
        await proxy.agent_address(verbs.agents, namespace, pod)
    except Exception as exc:
        return _answer(status.of_exception(exc, kind="pods", name=pod))
    ws = web.WebSocketResponse(protocols=(TUNNELED_SPDY,), autoping=True)
    await ws.prepare(request)
    if ws.ws_protocol != TUNNELED_SPDY:
        await ws.close(message=f"the subprotocol must be {TUNNELED_SPDY}".encode())
        return ws
    codec = spdy.Codec()
    lock = asyncio.Lock()
    forwards: dict[str, _Forward] = {}
    by_stream: dict[int, _Forward] = {}

    async def send(frame: bytes) -> None:
        async with lock:
            if not ws.closed:
                await ws.send_bytes(frame)

    async def relay(forward: _Forward, port: int) -> None:
        async def requests() -> AsyncIterator[pb.PortForwardData]:
            yield pb.PortForwardData(start=pb.PortForwardStart(namespace=namespace, pod=pod, port=port))
            while (message := await forward.inputs.get()) is not None:
                yield message
        failure = ""
        try:
            async for out in verbs.port_forward(user, requests()):
                if out.data:
                    await send(codec.data(forward.data_stream, out.data))
                if out.closed:
                    break
            await send(codec.data(forward.data_stream, b"", fin=True))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failure = status.of_exception(exc)["message"]
            await send(codec.rst_stream(forward.data_stream))
        if forward.error_stream:
            await send(codec.data(forward.error_stream, failure.encode(), fin=True))

    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                continue
            for frame in codec.feed(msg.data):
                if frame.control and frame.type == spdy.SYN_STREAM:
                    headers = {k.lower(): v for k, v in (frame.headers or {}).items()}
                    forward = forwards.setdefault(headers.get("requestid", ""), _Forward())
                    by_stream[frame.stream_id] = forward
                    await send(codec.syn_reply(frame.stream_id))
                    if headers.get("streamtype") == "error":
                        forward.error_stream = frame.stream_id
                    elif headers.get("streamtype") == "data":
                        forward.data_stream = frame.stream_id
                        try:
                            port = int(headers.get("port", ""))
                        except ValueError:
                            port = 0
                        forward.task = asyncio.create_task(relay(forward, port))
                elif frame.control and frame.type == spdy.PING:
                    await send(codec.ping(frame.data))
                elif frame.control and frame.type == spdy.RST_STREAM:
                    gone = by_stream.get(frame.stream_id)
                    if gone is not None and frame.stream_id == gone.data_stream:
                        await _offer(gone, None)
                elif frame.control and frame.type == spdy.GOAWAY:
                    await ws.close()
                elif not frame.control:
                    forward = by_stream.get(frame.stream_id)
                    if forward is None or frame.stream_id != forward.data_stream:
                        continue
                    if frame.data:
                        await _offer(forward, pb.PortForwardData(data=frame.data))
                    if frame.flags & spdy.FLAG_FIN:
                        await _offer(forward, pb.PortForwardData(closed=True))
    except spdy.ProtocolError as exc:
        await ws.close(message=str(exc).encode()[:120])
    finally:
        for forward in forwards.values():
            if forward.task is not None:
                forward.task.cancel()
    return ws


async def _offer(forward: _Forward, message: pb.PortForwardData | None) -> None:
    """Hand a message to a connection's relay while it runs (one that has ended takes nothing)."""
    if forward.task is None or forward.task.done():
        return
    put = asyncio.ensure_future(forward.inputs.put(message))
    done, _ = await asyncio.wait({put, forward.task}, return_when=asyncio.FIRST_COMPLETED)
    if put not in done:
        put.cancel()
