"""The embedded etcd: `skiff-controlplane` without `--etcd-endpoints` runs its own.

The `etcd` binary from PATH is started as a child process with its data in the
control plane's state directory, listening on loopback ports chosen once and
remembered in `etcd.json` (a restarted etcd must keep its peer URL). If the
child dies, it is restarted with backoff; on shutdown it is stopped by PID.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
from pathlib import Path

log = logging.getLogger(__name__)


class EtcdMissing(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedEtcd:
    def __init__(self, state_dir: Path, *, binary: str | None = None):
        self.state_dir = state_dir
        self.data_dir = state_dir / "etcd"
        self.log_path = state_dir / "etcd.log"
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
        return [self.binary, "--name", "skiff", "--data-dir", str(self.data_dir),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"skiff={peer}", "--initial-cluster-state", "new",
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
        log.info("started etcd pid %d on %s", self.process.pid, self.endpoint)

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="etcd-supervisor")

    async def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping:
            assert self.process is not None
            code = await self.process.wait()
            if self._stopping:
                return
            log.error("etcd exited with code %s; restarting in %.1fs (see %s)", code, backoff, self.log_path)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
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
