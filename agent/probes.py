"""Liveness, readiness and startup probes: one check (`probe_once`) and its schedule (`Prober`).

A probe (api/probes.py) is one handler - a command run in the container, an
HTTP GET or a TCP connect - plus timing: initialDelaySeconds, periodSeconds,
timeoutSeconds, successThreshold, failureThreshold. `probe_once` runs the
handler once and says ok or not, with Kubernetes' messages
(`HTTP probe failed with statuscode: 500`,
`dial tcp 198.18.0.5:8080: connect: connection refused`).

`Prober` runs the probes of one container instance, one asyncio task per
probe kind, with kubelet's rules:

- the startup probe runs first; liveness and readiness wait until it passes,
  and it stops once it has passed;
- a probe's first run waits until the container has run initialDelaySeconds;
- readiness starts "not ready"; it turns ready after successThreshold
  consecutive successes and not ready after failureThreshold consecutive
  failures, and keeps probing either way;
- liveness (and startup) failing failureThreshold times in a row means the
  container must be restarted; that probe then stops - the pod worker starts a
  new Prober for the new container instance.

Verdicts go to `on_result(kind, container_name, ok, message)` only when they
change: ("startup", name, True, "") when the startup probe passes,
("readiness", name, True|False, ...) on every flip, and
("liveness"|"startup", name, False, "Liveness probe failed: ...") when the
container must be restarted. The clock and sleep are injectable, so tests of
the timing run in virtual time.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import logging
import os
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

log = logging.getLogger(__name__)

USER_AGENT = "kube-probe/skiff-0.1"   # "kube-probe/" as kubelet sends: apps filter probe traffic on it
KINDS = ("startup", "liveness", "readiness")
_FIELDS = {"startup": "startupProbe", "liveness": "livenessProbe", "readiness": "readinessProbe"}

ExecInContainer = Callable[[list[str], float], Awaitable[tuple[int, bytes]]]
OnResult = Callable[[str, str, bool, str], "Awaitable[None] | None"]


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str = ""


# ---- one probe ----

def _resolve_port(port: int | str, container_ports: list[dict[str, Any]]) -> int:
    """A port number, or the containerPort of the container port with that name."""
    if isinstance(port, str):
        named = [p["containerPort"] for p in container_ports if p.get("name") == port]
        if not named:
            if not port.isdigit():
                raise ValueError(f"couldn't find port: {port} in container ports")
            named = [int(port)]
        port = named[0]
    if not 0 < port < 65536:
        raise ValueError(f"invalid port number: {port}")
    return port


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _dial_error(error: OSError) -> str:
    """Go's wording of a failed connect: "connect: connection refused"."""
    if isinstance(error, socket.gaierror):
        return "no such host"
    if error.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ECONNRESET):
        return "connect: " + os.strerror(error.errno).lower()
    return str(error)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (OSError, ssl.SSLError):
        pass


async def _exec(command: list[str], *, timeout: float, exec_in_container: ExecInContainer) -> ProbeResult:
    shown = " ".join(command)
    try:
        # The exec function enforces the timeout; the extra second only guards against one that does not.
        async with asyncio.timeout(timeout + 1):
            code, output = await exec_in_container(command, float(timeout))
    except TimeoutError:
        return ProbeResult(False, f'command "{shown}" timed out')
    except Exception as e:  # noqa: BLE001 - the container may be gone; that is a failed probe
        return ProbeResult(False, f'command "{shown}" could not be run: {e}')
    text = output.decode(errors="replace").strip()
    if code == 0:
        return ProbeResult(True, text)
    return ProbeResult(False, text or f'command "{shown}" exited with code {code}')


async def _http_get(action: dict[str, Any], *, host: str, port: int, timeout: float) -> ProbeResult:
    scheme = (action.get("scheme") or "HTTP").lower()
    path = action.get("path") or "/"
    path = path if path.startswith("/") else "/" + path
    target = _host_port(host, port)
    url = f"{scheme}://{target}{path}"
    headers = {"Host": target, "User-Agent": USER_AGENT, "Accept": "*/*"}
    for header in action.get("httpHeaders") or []:
        for existing in [k for k in headers if k.lower() == header["name"].lower()]:
            del headers[existing]              # a probe's own Host / User-Agent replaces ours
        headers[header["name"]] = header["value"]
    headers["Connection"] = "close"
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    context = None
    if scheme == "https":                      # kubelet does not verify the certificate either
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    writer = None
    try:
        async with asyncio.timeout(timeout):
            try:
                reader, writer = await asyncio.open_connection(host, port, ssl=context)
            except OSError as e:
                return ProbeResult(False, f'Get "{url}": dial tcp {target}: {_dial_error(e)}')
            writer.write(request.encode("latin-1"))
            await writer.drain()
            status_line = await reader.readline()
    except TimeoutError:
        return ProbeResult(False, f'Get "{url}": context deadline exceeded '
                                  f'(Client.Timeout exceeded while awaiting headers)')
    except (OSError, ssl.SSLError) as e:
        return ProbeResult(False, f'Get "{url}": {e}')
    finally:
        if writer is not None:
            await _close(writer)
    if not status_line:
        return ProbeResult(False, f'Get "{url}": EOF')
    parts = status_line.decode("latin-1").split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return ProbeResult(False, f'Get "{url}": malformed HTTP response {status_line[:64]!r}')
    status = int(parts[1])
    if 200 <= status < 400:
        return ProbeResult(True, "")
    return ProbeResult(False, f"HTTP probe failed with statuscode: {status}")


async def _tcp(host: str, port: int, *, timeout: float) -> ProbeResult:
    target = _host_port(host, port)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {target}: i/o timeout")
    except OSError as e:
        return ProbeResult(False, f"dial tcp {target}: {_dial_error(e)}")
    await _close(writer)
    return ProbeResult(True, "")


async def probe_once(probe: dict[str, Any], *, pod_ip: str, container_ports: list[dict[str, Any]],
                     exec_in_container: ExecInContainer) -> ProbeResult:
    """Run a probe's handler once, within its timeoutSeconds."""
    timeout = float(probe.get("timeoutSeconds") or 1)
    if probe.get("exec") is not None:
        return await _exec(list(probe["exec"].get("command") or []), timeout=timeout,
                           exec_in_container=exec_in_container)
    action = probe.get("httpGet") or probe.get("tcpSocket")
    if action is None:
        return ProbeResult(False, "probe has no handler (exec, httpGet or tcpSocket)")
    try:
        port = _resolve_port(action["port"], container_ports)
    except ValueError as e:
        return ProbeResult(False, str(e))
    host = action.get("host") or pod_ip
    if probe.get("httpGet") is not None:
        return await _http_get(action, host=host, port=port, timeout=timeout)
    return await _tcp(host, port, timeout=timeout)


# ---- the schedule ----

class Prober:
    """The probes of one container instance; `start()` them, `await stop()` when it ends."""

    def __init__(self, container: dict[str, Any], *, pod_ip: str, exec_in_container: ExecInContainer,
                 on_result: OnResult, started_at: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 probe: Callable[..., Awaitable[ProbeResult]] = probe_once) -> None:
        """`started_at` is the clock() time the container started (default: now); initial delays
        count from it, so a Prober started again after an agent restart does not wait twice."""
        self.name = container["name"]
        self.probes = {kind: container[_FIELDS[kind]] for kind in KINDS if container.get(_FIELDS[kind])}
        self._ports = list(container.get("ports") or [])
        self._pod_ip = pod_ip
        self._exec = exec_in_container
        self._on_result = on_result
        self._clock = clock
        self._sleep = sleep
        self._probe = probe
        self.started_at = clock() if started_at is None else started_at
        # Current verdicts, as kubelet starts them.
        self.started = "startup" not in self.probes
        self.ready = False
        self.live = True
        self._started_event = asyncio.Event()
        if self.started:
            self._started_event.set()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        for kind, probe in self.probes.items():
            task = asyncio.create_task(self._run(kind, probe), name=f"probe {kind} {self.name}")
            task.add_done_callback(self._log_failure)
            self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    @staticmethod
    def _log_failure(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s crashed", task.get_name(), exc_info=task.exception())

    async def _run(self, kind: str, probe: dict[str, Any]) -> None:
        if kind != "startup":
            await self._started_event.wait()
        delay = (probe.get("initialDelaySeconds") or 0) - (self._clock() - self.started_at)
        if delay > 0:
            await self._sleep(delay)
        period = float(probe.get("periodSeconds") or 10)
        successes = failures = 0
        while True:
            began = self._clock()
            try:
                result = await self._probe(probe, pod_ip=self._pod_ip, container_ports=self._ports,
                                           exec_in_container=self._exec)
            except Exception as e:  # noqa: BLE001 - a broken probe is a failed probe, not a dead task
                log.exception("%s probe of %s raised", kind, self.name)
                result = ProbeResult(False, f"probe error: {e}")
            successes, failures = (successes + 1, 0) if result.ok else (0, failures + 1)
            if await self._judge(kind, probe, result, successes=successes, failures=failures):
                return
            # Like kubelet's ticker: one probe per period, however long the probe took.
            await self._sleep(max(0.0, began + period - self._clock()))

    async def _judge(self, kind: str, probe: dict[str, Any], result: ProbeResult, *,
                     successes: int, failures: int) -> bool:
        """Update the verdict of `kind`, report a change; True when this probe is finished."""
        failed = failures >= (probe.get("failureThreshold") or 3)
        message = f"{kind.capitalize()} probe failed: {result.message}"
        if kind == "startup":
            if result.ok:
                self.started = True
                self._started_event.set()
                await self._report(kind, True, "")
                return True
            if failed:
                await self._report(kind, False, message)
                return True
        elif kind == "liveness":
            if failed:
                self.live = False
                await self._report(kind, False, message)
                return True
        elif not self.ready and successes >= (probe.get("successThreshold") or 1):
            self.ready = True
            await self._report(kind, True, "")
        elif self.ready and failed:
            self.ready = False
            await self._report(kind, False, message)
        return False

    async def _report(self, kind: str, ok: bool, message: str) -> None:
        try:
            outcome = self._on_result(kind, self.name, ok, message)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:  # noqa: BLE001 - the pod worker's problem; keep probing
            log.exception("on_result for %s probe of %s failed", kind, self.name)
