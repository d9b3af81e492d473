"""The Requests stream: many object-verb requests on one long-lived gRPC stream.

A client (controlplane/client/requeststream.py) sends each Apply, Create, Get,
Update, UpdateStatus, Delete, Bind or BindMany as a StreamRequest carrying an id.
Each is run exactly as its own call would be — the same servicer method,
concurrently with the others on the stream — and answered with a StreamResponse
carrying the same id: the reply, or the status code and message the call would
have failed with. Answers go out as they are ready, in any order; answers ready
at the same time go in one message (a ResponseBatch), as the client sends the
requests waiting at the same time in one RequestBatch.

Why: gRPC's Python server spends about 0.4 ms of CPU on each call before any of
our code runs, less on a message of a stream that is already open, and a message
can carry many requests (docs/PERFORMANCE.md, "Request streams"). At hundreds of
requests a second — Lease renewals from every node, pod creates, status updates —
that difference is a large share of the API server's one core. Batching also
keeps one stream from being a bottleneck: a busy event loop reads one message
per stream per turn, so one request per message would cap a stream at a few
hundred requests a second.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable

import grpc

from controlplane.apiserver.errors import status_or_internal
from protos import skiff_pb2 as pb

if TYPE_CHECKING:
    from controlplane.apiserver.service import ApiService


# The request's oneof field → (the servicer method that serves it, the response's oneof field).
VERBS: dict[str, tuple[str, str]] = {
    "apply": ("Apply", "apply"),
    "create": ("Create", "object"),
    "get": ("Get", "object"),
    "update": ("Update", "object"),
    "update_status": ("UpdateStatus", "object"),
    "delete": ("Delete", "delete"),
    "bind": ("Bind", "object"),
    "bind_many": ("BindMany", "bind_many"),
}

# Requests of one stream being served or answered at once; beyond it the stream is not read
# until an answer has been sent, and gRPC's flow control then holds the client back (a
# client that sends without reading its answers holds at most this many).
MAX_IN_FLIGHT = 1024
# At most this many answers, of about this many bytes of objects, in one ResponseBatch.
MAX_BATCH = 256
MAX_BATCH_BYTES = 4 * 1024 * 1024


def _object_bytes(answer: pb.StreamResponse) -> int:
    """About how big the answer is on the wire: the JSON objects it carries."""
    which = answer.WhichOneof("response")
    if which is None:
        return len(answer.message)
    reply = getattr(answer, which)
    if which == "bind_many":
        return sum(len(result.object) for result in reply.results)
    return len(reply.object)


Handler = Callable[[Any, Any], Awaitable[Any]]


class _Handlers(dict):
    """Request field → (method name, the servicer method without its per-call error wrapper —
    which aborts the call; here an error answers one request, it does not end the stream —,
    response field); each looked up on first use, then kept for the stream's life."""

    def __init__(self, service: "ApiService"):
        super().__init__()
        self.service = service

    def __missing__(self, field: str) -> tuple[str, Handler, str]:
        name, response = VERBS[field]
        fn = getattr(type(self.service), name)
        entry = self[field] = (name, functools.partial(getattr(fn, "__wrapped__", fn), self.service), response)
        return entry


async def _answer(handlers: _Handlers, message: pb.StreamRequest, context: Any = None) -> pb.StreamResponse:
    which = message.WhichOneof("request")
    if which is None:
        return pb.StreamResponse(id=message.id, code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                                 message="request: one of apply, create, get, update, update_status, delete, "
                                         "bind, bind_many is required")
    method, handler, field = handlers[which]
    try:
        # Each verb gets the stream's context: its caller's identity is the stream's. The verbs
        # served here use it for nothing else (no metadata, no streaming, no abort).
        reply = await handler(getattr(message, which), context)
    except Exception as exc:
        code, text = status_or_internal(exc, f"a {method} on a request stream")
        return pb.StreamResponse(id=message.id, code=code.value[0], message=text)
    return pb.StreamResponse(id=message.id, **{field: reply})


async def serve(service: "ApiService", batches: AsyncIterator[pb.RequestBatch],
                stopping: asyncio.Event | None = None, context: Any = None) -> AsyncIterator[pb.ResponseBatch]:
    """Answer every request read from `batches`. The stream ends once the client has stopped
    sending, or `stopping` is set (the server is shutting down: it reads no more requests),
    and every request read is answered. If the client goes away, the requests still running
    are cancelled, as their own calls would be."""
    handlers = _Handlers(service)
    answers: asyncio.Queue[pb.StreamResponse | None] = asyncio.Queue()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT)
    running: set[asyncio.Task[None]] = set()

    async def run(message: pb.StreamRequest) -> None:
        answers.put_nowait(await _answer(handlers, message, context))   # its slot is freed once the answer is sent

    async def read() -> None:
        async for batch in batches:
            for message in batch.requests:
                await slots.acquire()
                task = asyncio.create_task(run(message))
                running.add(task)
                task.add_done_callback(running.discard)

    async def finish() -> None:
        await asyncio.wait({reader})   # the client stopped sending, or the server is stopping
        if running:
            await asyncio.wait(set(running))
        answers.put_nowait(None)

    reader = asyncio.create_task(read())
    finisher = asyncio.create_task(finish())
    stopper = asyncio.create_task(stopping.wait()) if stopping is not None else None
    if stopper is not None:
        stopper.add_done_callback(lambda _: reader.cancel())
    try:
        done = False
        while not done:
            answer = await answers.get()
            if answer is None:
                break
            batch, size = [answer], _object_bytes(answer)
            while not answers.empty() and len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
                answer = answers.get_nowait()
                if answer is None:
                    done = True
                    break
                batch.append(answer)
                size += _object_bytes(answer)
            yield pb.ResponseBatch(responses=batch)
            for _ in batch:
                slots.release()
        if not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()   # reading failed
    finally:
        for task in (reader, finisher, stopper, *running):
            if task is not None:
                task.cancel()
