"""The fork server: a small single-threaded process that forks containers for the agent.

The agent runs gRPC threads, and forking a threaded process is unsafe (a lock held
by another thread stays locked forever in the child); starting a Python
interpreter per container would cost a hundred milliseconds. So the agent starts
this process once (`python -m agent.runtime.forkserver --root DIR ...`, see
client.py), it imports everything a container start needs, and then serves
requests on <root>/forkserver.sock, one JSON line each:

    {"op": "ping"}                       -> {"ok": true, "pid": ...}
    {"op": "start", "plan": {...}}       -> supervisor.py replies
    {"op": "exec", ...} + 1 or 3 fds     -> execution.py replies (twice)
    {"op": "sandbox", ...}               -> {"ok": true} once the namespaces are pinned
    {"op": "shutdown"}                   -> {"ok": true}, then the server exits

Start, exec and sandbox requests are handed to a *worker* together with the
client's connection; the worker answers the client itself, so this loop never
waits for a container. A worker is made by double-forking: the first child calls
setsid() and exits at once (the server reaps it), and its orphaned child is
adopted by init, in no session or process group of the agent. That is why a
supervisor survives SIGKILL of the agent and of this server.

Forking costs a few milliseconds, so one worker is always forked ahead (the
"spare"): it waits on a socketpair, the server sends it the request and the
client's socket (SCM_RIGHTS), and forks the next spare after answering. A spare
exits when the server goes away (end of file on its socketpair). Supervisors
keep running when the server stops; the server itself dies with the agent
(PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import socket
import sys
import traceback
from pathlib import Path

from agent.cgroups import open_manager
from agent.runtime import execution, linux, sandbox, supervisor

SOCKET_NAME = "forkserver.sock"
MAX_FDS = 4          # the client's connection (to a spare) + up to 3 stdio fds
MAX_REQUEST = 16 * 1024 * 1024
WORKER_OPS = ("start", "exec", "sandbox")


def read_message(conn: socket.socket) -> tuple[bytes, list[int]]:
    """One JSON line, and the file descriptors sent with its first bytes. b"" at end of file."""
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, MAX_FDS)
    for fd in fds:                  # received fds are inheritable; an exec'd process must not get them
        os.set_inheritable(fd, False)
    buffer = bytearray(data)
    while buffer and not buffer.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            raise ValueError("connection closed before the end of the request")
        buffer += chunk
        if len(buffer) > MAX_REQUEST:
            raise ValueError("request too large")
    return bytes(buffer), fds


class ForkServer:
    def __init__(self, root: Path, cgroups) -> None:
        self.root = root
        self.cgroups = cgroups
        self.listener: socket.socket | None = None
        self.spare: socket.socket | None = None     # our end of the spare worker's socketpair
        self.running = True

    def serve(self) -> None:
        path = self.root / SOCKET_NAME
        path.unlink(missing_ok=True)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        os.chmod(path, 0o600)
        self.listener.listen(128)
        inode = path.stat().st_ino
        self.fork_spare()
        _announce_ready()
        try:
            while self.running:
                self.serve_one()
                if self.spare is None and self.running:
                    self.fork_spare()
        finally:
            self.listener.close()
            if path.exists() and path.stat().st_ino == inode:   # not a successor's socket
                path.unlink()

    def serve_one(self) -> None:
        assert self.listener is not None, "serve() opens the listener first"
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            conn.settimeout(10)
            raw, fds = read_message(conn)
            request = json.loads(raw)
            op = request.get("op")
            if op == "ping":
                supervisor.reply(conn, {"ok": True, "pid": os.getpid()})
            elif op == "shutdown":
                supervisor.reply(conn, {"ok": True})
                self.running = False
            elif op in WORKER_OPS:
                self.hand_to_spare(raw, conn, fds)
            else:
                supervisor.reply(conn, {"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
            traceback.print_exc()
            supervisor.reply(conn, {"ok": False, "error": f"fork server: {exc}"})
        finally:
            conn.close()
            for fd in fds:
                os.close(fd)

    def hand_to_spare(self, raw: bytes, conn: socket.socket, fds: list[int]) -> None:
        for attempt in (1, 2):               # a spare that died meanwhile is replaced once
            if self.spare is None:
                self.fork_spare()
            spare, self.spare = self.spare, None
            assert spare is not None    # fork_spare() just made one
            try:
                try:
                    sent = socket.send_fds(spare, [raw], [conn.fileno(), *fds])
                except OSError:
                    if attempt == 2:
                        raise
                    continue
                if sent < len(raw):          # the rest of a request bigger than the socket buffer
                    spare.sendall(raw[sent:])
                return
            finally:
                spare.close()

    def fork_spare(self) -> None:
        """Double-fork a worker that waits for one request on a socketpair."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        first = os.fork()
        if first == 0:
            try:
                ours.close()
                os.setsid()
                if os.fork() == 0:
                    if self.listener is not None:
                        self.listener.close()
                    if self.spare is not None:
                        self.spare.close()
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    self.work(theirs)
            finally:
                os._exit(0)
        theirs.close()
        os.waitpid(first, 0)
        self.spare = ours

    def work(self, channel: socket.socket) -> None:
        """In the spare: wait for a request, carry it out, never return to the server's code."""
        conn = None
        try:
            raw, fds = read_message(channel)
            channel.close()
            if not raw:                      # the server went away
                return
            conn = socket.socket(fileno=fds[0])
            conn.settimeout(None)
            request, fds = json.loads(raw), fds[1:]
            op = request["op"]
            if op == "start":
                supervisor.supervise(request["plan"], conn, self.cgroups)
            elif op == "exec":
                execution.run_exec(request, conn, fds, self.cgroups)
            elif op == "sandbox":
                sandbox.make_namespaces(directory=request["directory"], kinds=request["kinds"],
                                        hostname=request["hostname"])
                supervisor.reply(conn, {"ok": True})
        except BaseException as exc:  # noqa: BLE001
            supervisor.reply(conn, {"ok": False, "error": f"fork server worker: {exc}"})
        finally:
            os._exit(0)


def _announce_ready() -> None:
    """Tell the agent (reading our stdout) that we listen, then let go of that pipe:
    workers and supervisors must not hold a pipe to an agent that may die."""
    print(f"ready {os.getpid()}", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agent.runtime.forkserver", description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--cgroup-parent", required=True)
    parser.add_argument("--cgroup-root", default="/sys/fs/cgroup")
    parser.add_argument("--agent-pid", type=int, help="exit when this process (the agent) dies")
    args = parser.parse_args(argv)

    if args.agent_pid:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL, what="PR_SET_PDEATHSIG")
        if os.getppid() != args.agent_pid:        # the agent died before prctl
            sys.exit(1)
    # A clean process state for everything forked from here, whatever the agent had:
    # no blocked signals, the usual umask, and a working directory that is never unmounted.
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    os.umask(0o022)
    os.chdir("/")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cgroups = open_manager(parent=args.cgroup_parent, root=args.cgroup_root)
    # Everything is imported; keep the cyclic GC from touching (and so copying) the
    # whole heap in every forked child.
    gc.freeze()
    ForkServer(args.root, cgroups).serve()


if __name__ == "__main__":
    main()
