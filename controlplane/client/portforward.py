"""Port forwarding over gRPC: one PortForward stream carries one TCP connection.

Both ends pump bytes between a socket and the stream the same way: `ctl
port-forward` between the local connection it accepted and its stream to the
API server, the agent between its stream and the connection it opened to the
pod (the API server only relays, controlplane/apiserver/proxy.py). A socket's
EOF travels as `closed` (a TCP half-close); the stream ends when the pod's side
is done.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, AsyncIterator

from protos import skiff_pb2 as pb

if TYPE_CHECKING:
    from controlplane.client.client import Client

CHUNK = 64 * 1024


async def socket_messages(reader: asyncio.StreamReader) -> AsyncIterator[pb.PortForwardData]:
    """What the socket sends, as messages, ending with `closed`."""
    while True:
        data = await reader.read(CHUNK)
        if not data:
            yield pb.PortForwardData(closed=True)
            return
        yield pb.PortForwardData(data=data)


async def write_messages(messages: AsyncIterator[pb.PortForwardData], writer: asyncio.StreamWriter) -> None:
    """Write the messages' bytes to the socket; half-close it on `closed` or at the end."""
    try:
        async for message in messages:
            if message.data:
                writer.write(message.data)
                await writer.drain()
            if message.closed:
                break
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass


async def forward_connection(client: "Client", *, namespace: str, pod: str, port: int,
                             reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Carry one accepted local connection to the pod's port until either side is done.
    gRPC errors come out as the client's ApiError subclasses."""
    import grpc

    from controlplane.client.errors import from_rpc_error

    async def outgoing() -> AsyncIterator[pb.PortForwardData]:
        yield pb.PortForwardData(start=pb.PortForwardStart(namespace=namespace, pod=pod, port=port))
        async for message in socket_messages(reader):
            yield message

    call = client.port_forward(outgoing())
    try:
        await write_messages(call, writer)   # iterating the call raises the stream's error status
    except grpc.aio.AioRpcError as exc:
        raise from_rpc_error(exc, server=client.server) from None
    finally:
        call.cancel()
        writer.close()
