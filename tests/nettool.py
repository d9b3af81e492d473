"""A tiny TCP/UDP tool for the pod network's tests and bench/network.py, run inside a
network namespace with `nsenter --net=PATH python tests/nettool.py MODE ...`.

Servers (print "ready" once listening, run until killed):
    echo --port P [--tag T]     TCP and UDP echo; with a tag, each reply starts with "T:"
    sink --port P               TCP: reads a connection to its end, then answers the byte count
Clients (print one JSON line):
    stream --host H --port P --seconds S    bulk TCP to a sink: goodput
    rr --host H --port P --count N --size B round trips of B-byte messages on one connection
    connect --host H --port P --count N     new connection + one 1-byte round trip + close, N times
    call --host H --port P --data D [--udp] one request, prints the reply

Plain blocking sockets and a thread per connection: the least Python per byte.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time

CHUNK = 256 * 1024


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)

    def pct(p: float) -> float:
        return round(ordered[max(0, -(-int(p * len(ordered)) // 100) - 1)] * 1e6, 1)
    return {"count": len(ordered), "p50_us": pct(50), "p90_us": pct(90), "p99_us": pct(99),
            "mean_us": round(sum(ordered) / len(ordered) * 1e6, 1), "max_us": round(ordered[-1] * 1e6, 1)}


def listener(port: int, kind: int = socket.SOCK_STREAM) -> socket.socket:
    s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    if kind == socket.SOCK_STREAM:
        s.listen(512)
    return s


def serve(server: socket.socket, handle) -> None:
    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def echo(args: argparse.Namespace) -> None:
    prefix = f"{args.tag}:".encode() if args.tag else b""

    def handle(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(prefix + data)

    def udp(sock: socket.socket) -> None:
        while True:
            data, peer = sock.recvfrom(65536)
            sock.sendto(prefix + data, peer)
    tcp_server, udp_server = listener(args.port), listener(args.port, socket.SOCK_DGRAM)
    threading.Thread(target=udp, args=(udp_server,), daemon=True).start()
    print("ready", flush=True)
    serve(tcp_server, handle)


def sink(args: argparse.Namespace) -> None:
    def handle(conn: socket.socket) -> None:
        buffer = bytearray(1 << 20)
        total = 0
        with conn:
            while n := conn.recv_into(buffer):
                total += n
            conn.sendall(struct.pack("!Q", total))
    server = listener(args.port)
    print("ready", flush=True)
    serve(server, handle)


def connect(host: str, port: int) -> socket.socket:
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s: socket.socket, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        part = s.recv(n - got)
        if not part:
            raise ConnectionError("connection closed early")
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def stream(args: argparse.Namespace) -> dict:
    payload = b"\0" * CHUNK
    with connect(args.host, args.port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        t0 = time.perf_counter()
        deadline = t0 + args.seconds
        while time.perf_counter() < deadline:
            s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        (received,) = struct.unpack("!Q", recv_exactly(s, 8))
        seconds = time.perf_counter() - t0
    return {"bytes": received, "seconds": round(seconds, 3), "gbit_per_s": round(received * 8 / seconds / 1e9, 3)}


def rr(args: argparse.Namespace) -> dict:
    message = b"x" * args.size
    times = []
    with connect(args.host, args.port) as s:
        for _ in range(min(100, args.count)):                 # warm up
            s.sendall(message)
            recv_exactly(s, args.size)
        for _ in range(args.count):
            t0 = time.perf_counter()
            s.sendall(message)
            recv_exactly(s, args.size)
            times.append(time.perf_counter() - t0)
    return summary(times)


def connections(args: argparse.Namespace) -> dict:
    times = []
    for _ in range(args.count):
        t0 = time.perf_counter()
        with connect(args.host, args.port) as s:
            s.sendall(b"x")
            recv_exactly(s, 1)
        times.append(time.perf_counter() - t0)
    return summary(times)


def call(args: argparse.Namespace) -> dict:
    if args.udp:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            s.sendto(args.data.encode(), (args.host, args.port))
            return {"reply": s.recv(65536).decode()}
    with connect(args.host, args.port) as s:
        s.sendall(args.data.encode())
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while part := s.recv(65536):
            reply += part
    return {"reply": reply.decode()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["echo", "sink", "stream", "rr", "connect", "call"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tag", default="")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--data", default="hello")
    p.add_argument("--udp", action="store_true")
    args = p.parse_args(argv)
    if args.mode in ("echo", "sink"):
        {"echo": echo, "sink": sink}[args.mode](args)
        return 0
    result = {"stream": stream, "rr": rr, "connect": connections, "call": call}[args.mode](args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
