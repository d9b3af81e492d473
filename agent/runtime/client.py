"""The agent's side of the fork server: start it, stop it, send it requests (asyncio).

`ForkServerClient.start()` launches `python -m agent.runtime.forkserver` (fork+exec
from the agent is fine; it is forking *and running Python* in a threaded process
that is not) and waits for its "ready" line. A fork server left over from an
agent that was killed is asked to shut down first; its supervisors keep running.

Each request is one unix-socket connection: a JSON line (plus file descriptors,
for exec) out, JSON lines back. Nothing here blocks the event loop.
"""

from __future__ import annotations

import array
import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import agent

SOCKET_NAME = "forkserver.sock"
# A fork server that crashes is seen at once (its stdout closes); this bounds one that hangs.
# Generous: an emulated machine (tests/vm/, qemu TCG) takes tens of seconds to import it.
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 5.0


class ForkServerError(RuntimeError):
    pass


class ForkServerClient:
    def __init__(self, root: Path, *, python: str = sys.executable, cgroup_parent: str,
                 cgroup_root: str = "/sys/fs/cgroup") -> None:
        self.root = root
        self.socket_path = root / SOCKET_NAME
        self.log_path = root / "forkserver.log"
        self._python = python
        self._cgroup_parent = cgroup_parent
        self._cgroup_root = cgroup_root
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        await self._stop_leftover()
        project = str(Path(agent.__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (project, env.get("PYTHONPATH")) if p)
        with open(self.log_path, "ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                self._python, "-m", "agent.runtime.forkserver", "--root", str(self.root),
                "--cgroup-parent", self._cgroup_parent, "--cgroup-root", self._cgroup_root,
                "--agent-pid", str(os.getpid()),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log, env=env)
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), READY_TIMEOUT)
        except asyncio.TimeoutError:
            line = b""
        if not line.startswith(b"ready"):
            await self.close()
            raise ForkServerError(f"the fork server did not start; see {self.log_path}")

    async def close(self) -> None:
        """Stop the fork server (not the supervisors it started)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            try:
                await self.call({"op": "shutdown"})
            except (OSError, ForkServerError):
                process.kill()
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()

    async def _stop_leftover(self) -> None:
        """Shut down a fork server still serving our socket (its agent was killed)."""
        try:
            answer = await self.call({"op": "ping"})
        except ForkServerError:
            return
        pidfd = _pidfd(answer.get("pid"))
        await self.call({"op": "shutdown"})
        if pidfd is not None:
            await wait_readable(pidfd, STOP_TIMEOUT)

    async def connect(self, message: dict, fds: list[int] | tuple[int, ...] = ()) -> tuple[
            asyncio.StreamReader, asyncio.StreamWriter]:
        """Send one request; the streams carry the replies."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        data = json.dumps(message).encode() + b"\n"
        try:
            await loop.sock_connect(sock, str(self.socket_path))
            sent = 0
            if fds:
                sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            await loop.sock_sendall(sock, data[sent:])
        except (FileNotFoundError, ConnectionRefusedError) as err:
            sock.close()
            raise ForkServerError(f"the fork server at {self.socket_path} is not running: {err.strerror}") from None
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_unix_connection(sock=sock, limit=1 << 20)

    async def call(self, message: dict, fds: list[int] | tuple[int, ...] = ()) -> dict:
        """One request, one reply."""
        reader, writer = await self.connect(message, fds)
        try:
            return await read_reply(reader)
        finally:
            writer.close()


async def read_reply(reader: asyncio.StreamReader) -> dict:
    line = await reader.readline()
    if not line:
        raise ForkServerError("the fork server closed the connection without replying")
    return json.loads(line)


def _pidfd(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


async def wait_readable(fd: int, timeout: float | None) -> bool:
    """Wait until `fd` (a pidfd: the process exited) is readable; closes it. False on timeout."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(None)
    loop.add_reader(fd, readable)
    try:
        await asyncio.wait_for(ready, timeout)
        return True
    except asyncio.TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
        os.close(fd)
