"""What a request costs in gRPC's Python (grpc.aio) before any of Skiff's code runs: a
unary call against a message on an open bidirectional stream, and a batch of
messages — the measurement behind the Requests stream
(controlplane/client/requeststream.py, docs/PERFORMANCE.md "Request streams").

    .venv/bin/python bench/grpc_transport.py            # about 30 s

An echo server (400-byte payloads, no protobuf: raw bytes) in a process of its own;
the client in this process. Three ways of sending, each measured twice, alternating:

- unary: one call per request (Skiff's client before request streams);
- stream: each request a message on one open stream, each answer a message back;
- batched: as a request stream under load — 16 requests a message, 16 answers back.

Two load shapes: closed loop, 50 requests in flight (a busy client), and open loop at
500 requests/s evenly spaced (one at a time, like Lease renewals spread over their
interval). Reported: CPU per request of the server and of the client (ms), from
/proc (server) and getrusage (client). Results go to bench/results/grpc_transport.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse  # noqa: E402
import asyncio  # noqa: E402
import collections  # noqa: E402
import multiprocessing  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any, AsyncIterator, Callable  # noqa: E402

from bench.common import RESULTS_DIR, cpu_seconds, free_port, machine_info, write_results  # noqa: E402

PAYLOAD = b"x" * 400
BATCH = 16


def _server(port: int, ready: Any) -> None:
    import grpc

    async def unary(request: bytes, context: Any) -> bytes:
        return request

    async def stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for message in requests:
            yield message

    async def main() -> None:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.stream_stream_rpc_method_handler(stream)}),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        ready.set()
        await server.wait_for_termination()
    asyncio.run(main())


async def _client(port: int, way: str, requests: int, *, in_flight: int, rate: float) -> None:
    import grpc
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        loop = asyncio.get_running_loop()
        per_message = BATCH if way == "batched" else 1
        if way == "unary":
            call = channel.unary_unary("/bench.Echo/Unary")

            def send() -> asyncio.Future:
                return asyncio.ensure_future(call(PAYLOAD))
        else:
            outgoing: asyncio.Queue[bytes] = asyncio.Queue()
            waiting: collections.deque[asyncio.Future] = collections.deque()

            async def messages() -> AsyncIterator[bytes]:
                while True:
                    yield await outgoing.get()
            stream = channel.stream_stream("/bench.Echo/Stream")(messages())

            async def read() -> None:
                async for _ in stream:
                    waiting.popleft().set_result(None)
            reader = asyncio.ensure_future(read())

            def send() -> asyncio.Future:
                future = loop.create_future()
                waiting.append(future)
                outgoing.put_nowait(PAYLOAD * per_message)
                return future
        messages_to_send = requests // per_message
        if rate:   # open loop: message k leaves at start + k / (rate / per_message)
            start, sent = time.monotonic(), []
            for k in range(messages_to_send):
                delay = start + k * per_message / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent.append(send())
            await asyncio.gather(*sent)
        else:      # closed loop: in_flight requests outstanding
            async def worker(count: int) -> None:
                for _ in range(count):
                    await send()
            workers = max(1, in_flight // per_message)
            await asyncio.gather(*(worker(messages_to_send // workers) for _ in range(workers)))
        if way != "unary":
            reader.cancel()


def measure(port: int, server_pid: int, way: str, *, requests: int, in_flight: int = 0,
            rate: float = 0.0) -> dict[str, float]:
    server_before = cpu_seconds(server_pid)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    client_before = usage.ru_utime + usage.ru_stime
    started = time.monotonic()
    asyncio.run(_client(port, way, requests, in_flight=in_flight, rate=rate))
    wall = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"requests_per_second": round(requests / wall),
            "server_ms_per_request": round((cpu_seconds(server_pid) - server_before) / requests * 1000, 3),
            "client_ms_per_request": round((usage.ru_utime + usage.ru_stime - client_before) / requests * 1000, 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=16000, help="requests per closed-loop measurement")
    p.add_argument("--rate", type=float, default=500.0, help="open-loop requests per second")
    p.add_argument("--open-seconds", type=float, default=6.0, help="length of each open-loop measurement")
    p.add_argument("--output", type=Path, default=RESULTS_DIR / "grpc_transport.json")
    args = p.parse_args()
    spawn = multiprocessing.get_context("spawn")
    port, ready = free_port(), spawn.Event()
    server = spawn.Process(target=_server, args=(port, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise RuntimeError("the echo server did not start")
        shapes: list[tuple[str, Callable[[str], dict[str, float]]]] = [
            ("closed loop, 50 in flight",
             lambda way: measure(port, server.pid, way, requests=args.requests, in_flight=50)),
            (f"open loop, {args.rate:g}/s evenly spaced",
             lambda way: measure(port, server.pid, way, requests=int(args.rate * args.open_seconds),
                                 rate=args.rate)),
        ]
        out: dict[str, Any] = {"benchmark": "grpc_transport",
                               "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                               "command": "python bench/grpc_transport.py " + " ".join(sys.argv[1:]),
                               "machine": machine_info(), "results": {}}
        for shape, run in shapes:
            rows: dict[str, list[dict[str, float]]] = {}
            for _ in range(2):
                for way in ("unary", "stream", "batched"):
                    rows.setdefault(way, []).append(run(way))
            out["results"][shape] = rows
            print(shape)
            for way, runs in rows.items():
                print(f"  {way:8} " + "; ".join(f"{r['requests_per_second']}/s, server {r['server_ms_per_request']} ms,"
                                              f" client {r['client_ms_per_request']} ms" for r in runs))
        print(f"results: {write_results(args.output, out)}")
    finally:
        server.kill()
        server.join(10)


if __name__ == "__main__":
    main()
