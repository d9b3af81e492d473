"""An exec session in plain Python terms, so callers (ctl) never build wire messages.

    session = client.exec_session(namespace="default", pod="web-1", container="",
                                  command=["sh"], tty=True, stdin=True, rows=40, cols=120)
    session.send_stdin(b"ls\\n"); session.close_stdin(); session.resize(50, 200)
    async for stream, data in session.outputs():   # ("stdout", bytes) | ("stderr", bytes) | ("exit", int)
        ...

The wire contract (protos/skiff.proto, Exec): the first input carries `start`;
then stdin chunks, terminal resizes and a final stdin_closed; outputs carry
stdout/stderr chunks and, last, the exit code. gRPC errors come out as the
client's ApiError subclasses.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator

import grpc

from controlplane.client.errors import from_rpc_error
from protos import skiff_pb2 as pb


class ExecSession:
    def __init__(self, stub: Any, server: str, *, namespace: str, pod: str, container: str, command: list[str],
                 tty: bool, stdin: bool, rows: int = 0, cols: int = 0):
        self._stub = stub
        self._server = server
        self._queue: asyncio.Queue[pb.ExecInput | None] = asyncio.Queue()
        self._queue.put_nowait(pb.ExecInput(start=pb.ExecStart(namespace=namespace, pod=pod, container=container,
                                                               command=command, tty=tty, stdin=stdin)))
        if tty and rows and cols:
            self.resize(rows, cols)
        if not stdin:
            self.close_stdin()

    def send_stdin(self, data: bytes) -> None:
        self._queue.put_nowait(pb.ExecInput(stdin=data))

    def close_stdin(self) -> None:
        self._queue.put_nowait(pb.ExecInput(stdin_closed=True))

    def resize(self, rows: int, cols: int) -> None:
        self._queue.put_nowait(pb.ExecInput(resize=pb.TerminalSize(rows=rows, cols=cols)))

    async def _inputs(self) -> AsyncIterator[pb.ExecInput]:
        while (item := await self._queue.get()) is not None:
            yield item

    async def outputs(self) -> AsyncIterator[tuple[str, bytes | int]]:
        call = self._stub.Exec(self._inputs())
        try:
            async for out in call:
                if out.stdout:
                    yield "stdout", out.stdout
                if out.stderr:
                    yield "stderr", out.stderr
                if out.exited:
                    yield "exit", out.exit_code
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, server=self._server) from None
        finally:
            self._queue.put_nowait(None)
            call.cancel()
