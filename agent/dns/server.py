"""The DNS server's sockets: UDP, and TCP for answers too big for a datagram.

`DnsServer(responder, host, port)` binds both on the same address and port (`port=0`
picks a free one, for tests and benchmarks). Every packet goes to the `Responder`
(agent/dns/responder.py); a cached answer is sent straight from the socket's read
callback, without a task or a parse. Forwarded questions become tasks, kept in a set until done
(a failure is logged, never raised into the loop). TCP connections carry any number
of length-prefixed queries; an idle one is closed after `tcp_idle_seconds`, and at
most `max_tcp_connections` are open at once (more are closed at once).

Nothing a client sends can stop the server: every packet is handled inside a
try/except that logs and goes on to the next.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from .responder import Pending, Responder

log = logging.getLogger(__name__)
RECEIVE_BUFFER = 4 * 1024 * 1024
MAX_DATAGRAM = 65535
BATCH = 64                       # datagrams handled per wake-up before other tasks get a turn


class _UdpReader:
    """Reads the UDP socket when it is readable, up to `BATCH` datagrams per wake-up.

    Not an asyncio DatagramTransport: that one reads a single datagram per event-loop
    wake-up and wraps every send; under load the loop's own overhead then costs more
    than the answer. A full send buffer drops the answer, as UDP may (the client asks again)."""

    def __init__(self, server: "DnsServer", sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        receive, send, responder = self.sock.recvfrom, self.sock.sendto, self.server.responder
        cached = responder.cached
        for _ in range(BATCH):
            try:
                data, addr = receive(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:            # e.g. ECONNREFUSED from an ICMP error: next datagram
                log.debug("DNS UDP receive: %s", exc)
                continue
            out: bytes | Pending | None = cached(data)
            if out is None:
                try:
                    out = responder.respond(data, tcp=False)
                except Exception:     # noqa: BLE001 - a bug must not take the server down; log and go on
                    log.exception("DNS: answering a %d-byte packet from %s failed", len(data), addr)
                    continue
                if out is None:
                    continue
                if isinstance(out, Pending):
                    self.server.spawn(self._forward(out, addr))
                    continue
            try:
                send(out, addr)
            except OSError as exc:            # a full buffer, an unreachable client: dropped
                log.debug("DNS UDP send to %s: %s", addr, exc)

    async def _forward(self, pending: Pending, addr: Any) -> None:
        out = await self.server.responder.forward(pending, tcp=False)
        if self.sock.fileno() >= 0:
            try:
                self.sock.sendto(out, addr)
            except OSError as exc:
                log.debug("DNS UDP send to %s: %s", addr, exc)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class DnsServer:
    def __init__(self, responder: Responder, *, host: str, port: int = 53, tcp_idle_seconds: float = 10.0,
                 max_tcp_connections: int = 256) -> None:
        self.responder = responder
        self.host = host
        self.port = port
        self.tcp_idle_seconds = tcp_idle_seconds
        self.max_tcp_connections = max_tcp_connections
        self._udp: _UdpReader | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.bind((self.host, self.port))
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._udp = _UdpReader(self, sock)
        self.port = sock.getsockname()[1]
        try:
            self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port, reuse_address=True)
        except OSError:
            self._udp.close()
            self._udp = None
            raise
        log.info("cluster DNS listening on %s:%d (UDP and TCP)", self.host, self.port)

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="dns-forward")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("DNS: forwarding failed", exc_info=task.exception())

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= self.max_tcp_connections:
            writer.close()
            return
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), self.tcp_idle_seconds)
                    packet = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")),
                                                    self.tcp_idle_seconds)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                try:
                    out = self.responder.respond(packet, tcp=True)
                    if isinstance(out, Pending):
                        out = await self.responder.forward(out, tcp=True)
                except Exception:     # noqa: BLE001 - as for UDP
                    log.exception("DNS: answering a %d-byte TCP query failed", len(packet))
                    return
                if out is None:
                    continue
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
        except ConnectionError:
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for writer in list(self._writers):
                writer.close()
            await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
