"""The client's end of the Requests stream: object verbs as messages on one open stream.

Instead of one gRPC call per Create, Get, Update, UpdateStatus, Delete, Bind,
BindMany or Apply, a Client sends them all as messages on one long-lived
bidirectional stream (`Api.Requests`), each with an id, and matches each answer
to its request by that id. Requests waiting while the stream is busy sending go
together in one message (a RequestBatch), and the server answers likewise. gRPC
in Python costs the server about 0.4 ms of CPU per call but much less per
request in a message on an open stream (docs/PERFORMANCE.md, "Request streams");
HTTP/2 already multiplexes calls on one connection, this multiplexes requests on
one call and batches them as a group commit batches writes.

Nothing else changes for the caller: each request still has its own deadline and
fails with the same ApiError subclass its own call would have raised. A request
bigger than MAX_STREAM_REQUEST_BYTES goes as its own call (client.py), so that one
over the server's message limit fails alone rather than breaking the stream. When the
stream breaks (the API server restarts, the connection drops) every request in
flight on it fails with Unavailable — as calls in flight would — and the next
request opens a new stream. The server side is controlplane/apiserver/requeststream.py.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any, AsyncIterator

import grpc

from controlplane.client.errors import ApiError, Unavailable, error_for, from_rpc_error
from protos import skiff_pb2 as pb

# At most this many requests, of about this many bytes, in one RequestBatch.
MAX_BATCH = 256
MAX_BATCH_BYTES = 4 * 1024 * 1024
# Requests bigger than this go as their own call. The API server stores objects up to
# 1.5 MiB and refuses bigger ones by name (Invalid); its gRPC limit is 8 MiB a message.
MAX_STREAM_REQUEST_BYTES = 2 * 1024 * 1024

_STATUS_BY_NUMBER = {status.value[0]: status for status in grpc.StatusCode}


def error_of(response: pb.StreamResponse) -> ApiError:
    """The ApiError the request's own call would have raised."""
    return error_for(_STATUS_BY_NUMBER.get(response.code, grpc.StatusCode.UNKNOWN), response.message)


class _Stream:
    """One open Requests call: its outgoing queue, its requests awaiting an answer, and the
    task reading the answers. Once broken it stays broken; RequestStream opens another."""

    def __init__(self, stub: Any, server: str):
        self.server = server
        self.outgoing: asyncio.Queue[tuple[pb.StreamRequest, int] | None] = asyncio.Queue()   # (request, bytes)
        self.pending: dict[int, asyncio.Future[pb.StreamResponse]] = {}
        self.broken = False
        self.call = stub.Requests(self._requests())
        self.reader = asyncio.create_task(self._read(), name="request-stream-reader")

    async def _requests(self) -> AsyncIterator[pb.RequestBatch]:
        """What gRPC sends: each time the stream is free, every request waiting, in one message."""
        while (item := await self.outgoing.get()) is not None:
            batch, size = [item[0]], item[1]
            while not self.outgoing.empty() and len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
                item = self.outgoing.get_nowait()
                if item is None:
                    yield pb.RequestBatch(requests=batch)
                    return
                batch.append(item[0])
                size += item[1]
            yield pb.RequestBatch(requests=batch)

    async def _read(self) -> None:
        error: ApiError = Unavailable(f"the server at {self.server} closed the request stream "
                                      "(it is shutting down)")
        try:
            async for batch in self.call:
                for response in batch.responses:
                    future = self.pending.pop(response.id, None)
                    if future is not None and not future.done():
                        future.set_result(response)
        except grpc.aio.AioRpcError as exc:
            # Answers, errors included, come as messages; the stream itself failing means the
            # connection or the server went away (a server stopping resets its streams: INTERNAL
            # or CANCELLED), so each request's fate is unknown, as for a call whose connection
            # dropped: Unavailable.
            error = from_rpc_error(exc, server=self.server)
            # Refused before any request ran (the caller's credential): that answer is each request's.
            refused = exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
            if not refused and not isinstance(error, Unavailable):
                error = Unavailable(f"the request stream to the server at {self.server} broke "
                                    f"({exc.code().name}: {error.message}); is the control plane running?")
        except asyncio.CancelledError:
            error = Unavailable("the client was closed")
            raise
        finally:
            self.broken = True
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(error)
            self.pending.clear()

    def send(self, request_id: int, message: pb.StreamRequest, size: int) -> asyncio.Future[pb.StreamResponse]:
        future: asyncio.Future[pb.StreamResponse] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = future
        self.outgoing.put_nowait((message, size))
        return future

    def forget(self, request_id: int) -> None:
        self.pending.pop(request_id, None)

    async def close(self) -> None:
        self.outgoing.put_nowait(None)   # tell the server we are done sending
        self.reader.cancel()
        self.call.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


class RequestStream:
    """Sends requests on the current stream, opening one when there is none or it broke."""

    def __init__(self, stub: Any, *, server: str):
        self._stub = stub
        self._server = server
        self._ids = itertools.count(1)
        self._stream: _Stream | None = None

    async def call(self, field: str, request: Any, *, size: int, timeout: float) -> Any:
        """Send `request` (about `size` bytes) as the StreamRequest's `field`; return the answer's
        response message, or raise the ApiError its own call would have raised."""
        stream = self._stream
        if stream is None or stream.broken:
            stream = self._stream = _Stream(self._stub, self._server)
        request_id = next(self._ids)
        future = stream.send(request_id, pb.StreamRequest(id=request_id, **{field: request}), size)
        try:
            response = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise ApiError("Deadline Exceeded", "DEADLINE_EXCEEDED") from None
        finally:
            stream.forget(request_id)
        if response.code:
            raise error_of(response)
        return getattr(response, response.WhichOneof("response"))

    async def close(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.close()
