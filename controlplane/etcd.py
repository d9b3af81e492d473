"""The embedded etcd: `skiff-controlplane` without `--etcd-endpoints` runs its own.

The `etcd` binary from PATH is started as a child process with its data in the
control plane's state directory, listening on loopback ports chosen once and
remembered in `etcd.json` (a restarted etcd must keep its peer URL). If the
child dies, it is restarted with backoff (reset after a run that lasted); on
shutdown it is stopped by PID.

etcd dies with its control plane: it is started through `setpriv --pdeathsig
TERM` (util-linux), which sets the parent-death signal and execs etcd — no
Python runs between fork and exec, so the control plane's gRPC threads are
never forked. Should an etcd still outlive its control plane (started before
this existed, or its parent died between fork and prctl), its PID is in
`etcd.pid`: the next start stops it — after checking /proc/<pid>/cmdline is an
etcd on this very data directory, never by name.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from api.backoff import Backoff

log = logging.getLogger(__name__)


class EtcdMissing(RuntimeError):
    pass


# The restart backoff: the first restart comes after RESTART_DELAY, each further one
# waits twice as long (at most MAX_RESTART_DELAY); a run of at least STABLE_RUN
# seconds counts as a success and resets it.
RESTART_DELAY, MAX_RESTART_DELAY, STABLE_RUN = 0.2, 10.0, 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedEtcd:
    def __init__(self, state_dir: Path, *, binary: str | None = None):
        self.state_dir = state_dir
        self.data_dir = state_dir / "etcd"
        self.log_path = state_dir / "etcd.log"
        self.pid_path = state_dir / "etcd.pid"
        self.binary = binary or shutil.which("etcd") or ""
        if not self.binary:
            raise EtcdMissing("etcd was not found on PATH; install it with `apt-get install etcd-server` "
                              "(Debian/Ubuntu), or point --etcd-endpoints at an existing etcd cluster")
        self.process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task | None = None
        self._stopping = False
        ports_file = state_dir / "etcd.json"
        if ports_file.exists():
            ports = json.loads(ports_file.read_text())
        else:
            ports = {"client": free_port(), "peer": free_port()}
            state_dir.mkdir(parents=True, exist_ok=True)
            ports_file.write_text(json.dumps(ports))
        self.client_port, self.peer_port = ports["client"], ports["peer"]

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def _args(self) -> list[str]:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        wrapper = ["setpriv", "--pdeathsig", "TERM", "--"] if shutil.which("setpriv") else []
        return [*wrapper, self.binary, "--name", "skiff", "--data-dir", str(self.data_dir),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"skiff={peer}", "--initial-cluster-state", "new",
                # One member alone: a restarted etcd waits one election timeout before it leads
                # again (1 s by default); nothing can contest it, so a short one costs nothing.
                "--heartbeat-interval", "100", "--election-timeout", "500",
                "--auto-compaction-retention", "0", "--quota-backend-bytes", str(4 * 1024**3),
                "--log-level", "warn", "--logger", "zap"]

    async def _spawn(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        log_file = open(self.log_path, "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self._args(), stdout=log_file, stderr=log_file, stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, "ETCD_UNSUPPORTED_ARCH": os.environ.get("ETCD_UNSUPPORTED_ARCH", "")})
        finally:
            log_file.close()
        self.pid_path.write_text(f"{self.process.pid}\n")
        log.info("started etcd pid %d on %s", self.process.pid, self.endpoint)

    def is_our_etcd(self, pid: int) -> bool:
        """pid is a live etcd serving this data directory (not a reused PID, not another etcd)."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state in ("Z", "X") or not argv or os.path.basename(argv[0].decode(errors="replace")) != "etcd":
            return False
        data_dir = str(self.data_dir).encode()
        return any(a == b"--data-dir" and b == data_dir for a, b in zip(argv, argv[1:]))

    async def stop_stale(self, timeout: float = 10.0) -> int | None:
        """Stop an etcd left running on this data directory by a previous control plane
        (found by the PID it recorded, verified by its command line); return its PID."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid == os.getpid() or not self.is_our_etcd(pid):
            return None
        log.warning("an etcd from a previous run (pid %d) still serves %s; stopping it", pid, self.data_dir)
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return pid
            deadline = time.monotonic() + wait
            while self.is_our_etcd(pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if not self.is_our_etcd(pid):
                return pid
        raise RuntimeError(f"the etcd from a previous run (pid {pid}) did not stop")

    def ports_taken(self) -> list[int]:
        """This etcd's loopback ports that another process holds."""
        taken = []
        for port in (self.client_port, self.peer_port):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    taken.append(port)
        return taken

    async def start(self) -> None:
        await self.stop_stale()
        if taken := self.ports_taken():
            raise RuntimeError(f"the embedded etcd's port(s) {', '.join(map(str, taken))} on 127.0.0.1 "
                              f"(recorded in {self.state_dir / 'etcd.json'}) are in use by another process")
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="etcd-supervisor")

    async def _supervise(self) -> None:
        backoff = Backoff(RESTART_DELAY, MAX_RESTART_DELAY)
        while not self._stopping:
            assert self.process is not None
            started = time.monotonic()
            code = await self.process.wait()
            if self._stopping:
                return
            if time.monotonic() - started >= STABLE_RUN:
                backoff.reset()   # it ran fine: this is a new failure, not a crash loop
            delay = backoff.next()
            log.error("etcd exited with code %s; restarting in %.1fs (see %s)", code, delay, self.log_path)
            await asyncio.sleep(delay)
            await self._spawn()

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        if self._supervisor:
            self._supervisor.cancel()
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
        self.pid_path.unlink(missing_ok=True)
