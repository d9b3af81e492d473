"""agent/probes.py: single probes against real servers on 127.0.0.1, and Prober timing in virtual time."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import AsyncIterator

import pytest

from agent.probes import Prober, ProbeResult, probe_once


# ---- real local servers ----

class HttpServer:
    """A tiny asyncio HTTP server: /status/<code> answers <code>, /hang never answers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self.handlers: set[asyncio.Task] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.handlers.add(task)
        try:
            request_line = (await reader.readline()).decode().strip()
            if not request_line:            # a tcpSocket probe: connect and close
                return
            headers = {}
            while (line := (await reader.readline()).decode().strip()):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            path = request_line.split()[1]
            self.requests.append((path, headers))
            if path == "/hang":
                await asyncio.sleep(30)
            code = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
            writer.write(f"HTTP/1.1 {code} Whatever\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".encode())
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.handlers.discard(task)
            writer.close()

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> "HttpServer":
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.handlers):      # e.g. the one in /hang
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()


@pytest.fixture
async def http() -> AsyncIterator[HttpServer]:
    server = await HttpServer().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def no_exec(command: list[str], timeout: float) -> tuple[int, bytes]:
    raise AssertionError("exec not expected")


async def run(probe: dict, ports: list[dict] | None = None, exec_fn=no_exec) -> ProbeResult:
    return await probe_once(probe, pod_ip="127.0.0.1", container_ports=ports or [], exec_in_container=exec_fn)


# ---- httpGet ----

@pytest.mark.parametrize("path, ok, message", [
    ("/status/200", True, ""),
    ("/status/204", True, ""),
    ("/status/302", True, ""),          # redirects are not followed; 3xx counts as success
    ("/status/399", True, ""),
    ("/status/400", False, "HTTP probe failed with statuscode: 400"),
    ("/status/500", False, "HTTP probe failed with statuscode: 500"),
])
async def test_http_status(http: HttpServer, path: str, ok: bool, message: str) -> None:
    assert await run({"httpGet": {"path": path, "port": http.port}}) == ProbeResult(ok, message)


async def test_http_named_port_headers_and_default_path(http: HttpServer) -> None:
    result = await run({"httpGet": {"port": "web", "httpHeaders": [{"name": "X-Probe", "value": "yes"},
                                                                    {"name": "host", "value": "app.local"}]}},
                       ports=[{"name": "other", "containerPort": 1}, {"name": "web", "containerPort": http.port}])
    assert result.ok
    path, headers = http.requests[-1]
    assert path == "/"
    assert headers["x-probe"] == "yes" and headers["host"] == "app.local"
    assert headers["user-agent"].startswith("kube-probe/")


async def test_http_errors(http: HttpServer, closed_port: int) -> None:
    result = await run({"httpGet": {"path": "/healthz", "port": closed_port}})
    assert result == ProbeResult(False, f'Get "http://127.0.0.1:{closed_port}/healthz": '
                                        f'dial tcp 127.0.0.1:{closed_port}: connect: connection refused')
    result = await run({"httpGet": {"port": "nope"}})
    assert result == ProbeResult(False, "couldn't find port: nope in container ports")
    result = await run({"httpGet": {"path": "/hang", "port": http.port}, "timeoutSeconds": 1})
    assert not result.ok and result.message == (f'Get "http://127.0.0.1:{http.port}/hang": context deadline '
                                                 f'exceeded (Client.Timeout exceeded while awaiting headers)')


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a test certificate")
async def test_https_without_verification(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = await HttpServer().start(context)
    try:
        assert (await run({"httpGet": {"path": "/status/200", "port": server.port, "scheme": "HTTPS"}})).ok
        result = await run({"httpGet": {"path": "/status/503", "port": server.port, "scheme": "HTTPS"}})
        assert result == ProbeResult(False, "HTTP probe failed with statuscode: 503")
    finally:
        await server.stop()


# ---- tcpSocket ----

async def test_tcp(http: HttpServer, closed_port: int) -> None:
    assert await run({"tcpSocket": {"port": http.port}}) == ProbeResult(True, "")
    assert await run({"tcpSocket": {"port": "web"}}, ports=[{"name": "web", "containerPort": http.port}]) == \
        ProbeResult(True, "")
    assert await run({"tcpSocket": {"port": closed_port}}) == \
        ProbeResult(False, f"dial tcp 127.0.0.1:{closed_port}: connect: connection refused")


# ---- exec ----

async def test_exec() -> None:
    calls = []

    async def fake_exec(command: list[str], timeout: float) -> tuple[int, bytes]:
        calls.append((command, timeout))
        if command[0] == "ok":
            return 0, b"fine\n"
        if command[0] == "fail":
            return 1, b"cat: can't open '/tmp/healthy': No such file or directory\n"
        if command[0] == "silent":
            return 2, b""
        if command[0] == "slow":
            raise TimeoutError
        if command[0] == "hang":                      # ignores its timeout: the probe's guard stops it
            await asyncio.sleep(60)
        raise RuntimeError("container not running")

    assert await run({"exec": {"command": ["ok"]}, "timeoutSeconds": 3}, exec_fn=fake_exec) == \
        ProbeResult(True, "fine")
    assert calls[-1] == (["ok"], 3.0)
    assert await run({"exec": {"command": ["fail"]}}, exec_fn=fake_exec) == \
        ProbeResult(False, "cat: can't open '/tmp/healthy': No such file or directory")
    assert await run({"exec": {"command": ["silent", "x"]}}, exec_fn=fake_exec) == \
        ProbeResult(False, 'command "silent x" exited with code 2')
    assert await run({"exec": {"command": ["slow", "10"]}}, exec_fn=fake_exec) == \
        ProbeResult(False, 'command "slow 10" timed out')
    assert await run({"exec": {"command": ["hang"]}, "timeoutSeconds": 1}, exec_fn=fake_exec) == \
        ProbeResult(False, 'command "hang" timed out')
    result = await run({"exec": {"command": ["gone"]}}, exec_fn=fake_exec)
    assert not result.ok and "container not running" in result.message


# ---- Prober timing in virtual time ----

class VirtualTime:
    """clock() and sleep() for the Prober; advance() runs the tasks through virtual time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._seq), future))
        await future

    async def advance(self, until: float) -> None:
        while True:
            for _ in range(20):                       # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if not self._sleepers or self._sleepers[0][0] > until:
                break
            when, _, future = heapq.heappop(self._sleepers)
            self.now = max(self.now, when)
            if not future.done():
                future.set_result(None)
        self.now = until


class Script:
    """A fake probe function: each probe kind answers from its own list (the last answer repeats)."""

    def __init__(self, vt: VirtualTime, **answers: str) -> None:
        self.vt = vt
        self.answers = {kind: list(text) for kind, text in answers.items()}   # "FSS" = fail, ok, ok
        self.calls: list[tuple[str, float]] = []

    async def __call__(self, probe: dict, **_: object) -> ProbeResult:
        kind = probe["exec"]["command"][0]
        self.calls.append((kind, self.vt.now))
        queue = self.answers[kind]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return ProbeResult(answer == "S", "" if answer == "S" else f"{kind} broke")

    def times(self, kind: str) -> list[float]:
        return [t for k, t in self.calls if k == kind]


def probe(kind: str, **timing: int) -> dict:
    return {"exec": {"command": [kind]}, "initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1,
            "successThreshold": 1, "failureThreshold": 3, **timing}


def make_prober(vt: VirtualTime, script: Script, reports: list, **probes: dict) -> Prober:
    container = {"name": "app", **{f"{kind}Probe": p for kind, p in probes.items()}}

    async def on_result(kind: str, name: str, ok: bool, message: str) -> None:
        reports.append((vt.now, kind, name, ok, message))

    return Prober(container, pod_ip="198.18.1.5", exec_in_container=no_exec, on_result=on_result,
                  clock=vt.clock, sleep=vt.sleep, probe=script)


async def test_readiness_thresholds_report_only_flips() -> None:
    vt = VirtualTime()
    script = Script(vt, readiness="FSSSFFFSS")
    reports: list = []
    prober = make_prober(vt, script, reports,
                         readiness=probe("readiness", initialDelaySeconds=5, successThreshold=2))
    prober.start()
    try:
        await vt.advance(100)
    finally:
        await prober.stop()
    assert script.times("readiness")[:4] == [5, 15, 25, 35]
    assert reports == [(25, "readiness", "app", True, ""),
                       (65, "readiness", "app", False, "Readiness probe failed: readiness broke"),
                       (85, "readiness", "app", True, "")]
    assert prober.ready


async def test_liveness_failure_threshold_means_restart_and_stops() -> None:
    vt = VirtualTime()
    script = Script(vt, liveness="FFSFFFS")
    reports: list = []
    prober = make_prober(vt, script, reports, liveness=probe("liveness", periodSeconds=2))
    prober.start()
    try:
        await vt.advance(60)
    finally:
        await prober.stop()
    assert reports == [(10, "liveness", "app", False, "Liveness probe failed: liveness broke")]
    assert script.times("liveness") == [0, 2, 4, 6, 8, 10]           # no probing after the verdict
    assert not prober.live


async def test_startup_gates_liveness_and_readiness() -> None:
    vt = VirtualTime()
    script = Script(vt, startup="FFS", liveness="S", readiness="S")
    reports: list = []
    prober = make_prober(vt, script, reports, startup=probe("startup", periodSeconds=1, failureThreshold=30),
                         liveness=probe("liveness"), readiness=probe("readiness", initialDelaySeconds=5))
    prober.start()
    try:
        await vt.advance(30)
    finally:
        await prober.stop()
    assert script.times("startup") == [0, 1, 2]
    assert script.times("liveness")[:2] == [2, 12]                   # right after startup passed
    assert script.times("readiness")[:2] == [5, 15]                  # its initial delay counts from start
    assert reports == [(2, "startup", "app", True, ""), (5, "readiness", "app", True, "")]
    assert prober.started and prober.ready


async def test_startup_failure_means_restart() -> None:
    vt = VirtualTime()
    script = Script(vt, startup="F", liveness="S")
    reports: list = []
    prober = make_prober(vt, script, reports, startup=probe("startup", periodSeconds=5, failureThreshold=4),
                         liveness=probe("liveness"))
    prober.start()
    try:
        await vt.advance(100)
    finally:
        await prober.stop()
    assert reports == [(15, "startup", "app", False, "Startup probe failed: startup broke")]
    assert script.times("liveness") == []


async def test_initial_delay_counts_from_container_start_and_broken_probe_fails() -> None:
    vt = VirtualTime()
    vt.now = 100.0
    reports: list = []
    calls = []

    async def broken(probe: dict, **_: object) -> ProbeResult:
        calls.append(vt.now)
        raise RuntimeError("boom")

    container = {"name": "app", "livenessProbe": probe("liveness", initialDelaySeconds=30, failureThreshold=2)}
    prober = Prober(container, pod_ip="x", exec_in_container=no_exec, started_at=80.0, clock=vt.clock,
                    sleep=vt.sleep, probe=broken,
                    on_result=lambda kind, name, ok, message: reports.append((vt.now, kind, ok, message)))
    prober.start()
    try:
        await vt.advance(200)
    finally:
        await prober.stop()
    assert calls == [110, 120]                                         # 80 + 30, then one period later
    assert reports == [(120, "liveness", False, "Liveness probe failed: probe error: boom")]


async def test_stop_cancels_probing() -> None:
    vt = VirtualTime()
    script = Script(vt, readiness="S")
    reports: list = []
    prober = make_prober(vt, script, reports, readiness=probe("readiness"))
    prober.start()
    await vt.advance(25)
    await prober.stop()
    await vt.advance(100)
    assert script.times("readiness") == [0, 10, 20]
