"""One supervisor process per container: start it, report, log it, record its exit.

The fork server double-forks a supervisor for each container start (forkserver.py),
so the supervisor lives in its own session with init (or a subreaper) as parent:
SIGKILL of the agent or of the fork server does not touch it. It

1. makes the container's directory, prepares what the container process needs
   (pipes or a pty, the pod's namespace files, a new PID namespace so the child
   is PID 1 in it) and forks it (container_init.py); while the child builds its
   root, creates the cgroup, moves the child into it and lets it go on, and
   writes plan.json and the `created` state - all off the start's critical path.
   The group gets the device allow-list (agent/cgroups/devices.py) before the
   child is moved in; the child gets the compiled seccomp filter to load last;
2. waits for exec: an error message on the error pipe becomes state `exited`
   (reason StartError) and an error reply; end-of-file means the command runs;
3. records `running` with the PID and its start time (state.py), answers the
   starter over the socket the fork server handed down, and hangs up;
4. copies stdout/stderr into the CRI log (crilog.py) until the process exits
   (a pidfd says when), drains the pipes, and records `exited` with exit code,
   signal, finish time and OOMKilled (the cgroup's OOM-kill count went up);
5. exits. The agent learns of it by a pidfd on the supervisor, or, after a
   restart, from the state file.
"""

from __future__ import annotations

import binascii
import json
import os
import select
import signal
import socket
import time
from pathlib import Path
from typing import NoReturn

from agent.cgroups.devices import rules_from_json
from agent.cgroups.resources import Resources
from agent.runtime import container_init, linux, state
from agent.runtime.crilog import CriLogWriter
from agent.runtime.state import State

READ_SIZE = 65536


def reply(conn: socket.socket | None, message: dict) -> None:
    """Send one JSON line to the starter; a starter that went away is not an error."""
    if conn is None:
        return
    try:
        conn.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass


def supervise(plan: dict, conn: socket.socket, cgroups) -> NoReturn:
    """Run and watch one container; exits the process when the container has exited."""
    try:
        _supervise(plan, conn, cgroups)
    except BaseException as exc:  # noqa: BLE001 - a supervisor must never return to the fork server
        reply(conn, {"ok": False, "error": f"supervisor: {exc}"})
        os._exit(1)
    os._exit(0)


def _supervise(plan: dict, conn: socket.socket, cgroups) -> None:
    directory = Path(plan["container_dir"])
    state_dir = Path(plan["state_dir"])
    state_path = Path(plan["state_path"])
    try:
        state_dir.mkdir()
    except FileExistsError:
        reply(conn, {"ok": False, "error": f"container {plan['id']} already exists (remove it first)"})
        return
    directory.mkdir(exist_ok=True)
    for name in ("rootfs", "upper", "work"):
        (directory / name).mkdir()
    Path(plan["log_path"]).parent.mkdir(parents=True, exist_ok=True)

    # 1. what the child needs, opened before fork; the rest is done while it sets up
    tty_socket = None
    if plan["tty"]:
        stdio = None                             # the child makes its terminal (container_init.py)
        tty_socket, tty_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        outputs: dict[int, str] = {}
        child_ends = [tty_child.detach()]
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stdin = _open_stdin(plan)
        stdio = (stdin, out_w, err_w)
        outputs = {out_r: "stdout", err_r: "stderr"}
        child_ends = [stdin, out_w, err_w]
    error_r, error_w = os.pipe()
    go_r, go_w = os.pipe()
    namespace_fds = {kind: os.open(path, os.O_RDONLY | os.O_CLOEXEC) for kind, path in plan["namespaces"].items()}
    if plan["new_pid_ns"]:
        linux.unshare(linux.CLONE_NEWPID)       # affects children only: the next fork is PID 1

    seccomp_filter = seccomp_of(plan)

    pid = os.fork()
    if pid == 0:
        container_init.run(plan, stdio=stdio, tty_socket=socket.socket(fileno=child_ends[0]) if plan["tty"] else None,
                           error_fd=error_w, go_fd=go_r, namespace_fds=namespace_fds, seccomp_filter=seccomp_filter)
    for fd in (*child_ends, error_w, go_r, *namespace_fds.values()):
        os.close(fd)

    # While the child builds its root: the cgroup (and its OOM-kill count before the
    # container is in it), the move into it (see container_init.py, step 4), "go";
    # then the files that record the container.
    join_error = None
    oom_before = _oom_kills(cgroups, plan["cgroup"])
    try:
        cgroups.create(plan["cgroup"], Resources(**plan["resources"]))
        cgroups.set_devices(plan["cgroup"], rules_from_json(plan.get("devices")))
        cgroups.add_process(plan["cgroup"], pid)
    except Exception as exc:  # noqa: BLE001 - reported as the start error
        join_error = f"cgroup {plan['cgroup']}: {exc}"
        os.kill(pid, signal.SIGKILL)
    else:
        try:
            os.write(go_w, b"go")
        except BrokenPipeError:
            pass                                 # the child failed already; its error pipe says why
    os.close(go_w)
    me = os.getpid()
    # Not fsync'd: neither file holds a fact that would be lost (see state.py, "durable").
    state.write_atomic(state_dir / "plan.json", json.dumps(plan).encode(), durable=False)
    record = state.StateRecord(id=plan["id"], state=State.CREATED, created_at=plan["created_at"],
                               supervisor_pid=me, supervisor_start=linux.start_time(me))
    state.save(state_path, record, durable=False)
    log = CriLogWriter(plan["log_path"], max_bytes=plan["log_max_bytes"], max_files=plan["log_max_files"])

    # 2. did exec succeed?
    error = _read_all(error_r).decode(errors="replace") or join_error
    if error:
        _, status = os.waitpid(pid, 0)
        log.close()
        state.save(state_path, state.advance(
            record, State.EXITED, finished_at=time.time(), exit_code=os.waitstatus_to_exitcode(status),
            reason="StartError", message=error))
        reply(conn, {"ok": False, "error": error})
        return

    # 3. running: record, answer, hang up
    if tty_socket is not None:
        _msg, fds, _flags, _addr = socket.recv_fds(tty_socket, 16, 1)
        tty_socket.close()
        outputs = {fds[0]: "stdout"}
    pidfd = os.pidfd_open(pid)
    started_at = time.time()
    record = state.advance(record, State.RUNNING, pid=pid, pid_start=linux.start_time(pid), started_at=started_at)
    state.save(state_path, record)
    reply(conn, {"ok": True, "pid": pid, "pid_start": record.pid_start, "started_at": started_at,
                 "supervisor_pid": me, "supervisor_start": record.supervisor_start})
    conn.close()

    # 4. copy output until the process exits, then record how it ended
    _pump(outputs, pidfd, log)
    _, status = os.waitpid(pid, 0)
    finished_at = time.time()
    try:
        log.close()
    except OSError:
        pass
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
    oom_kills = _oom_kills(cgroups, plan["cgroup"]) - oom_before
    exit_code, reason = state.exit_outcome(code=code, signal=sig, oom_kills=oom_kills)
    state.save(state_path, state.advance(
        record, State.EXITED, finished_at=finished_at, exit_code=exit_code, signal=sig,
        oom_killed=reason == "OOMKilled", reason=reason))


def seccomp_of(plan: dict) -> linux.SeccompFilter | None:
    """The plan's compiled seccomp program, ready to load (None: unconfined)."""
    encoded = plan.get("seccomp")
    return None if encoded is None else linux.SeccompFilter(binascii.a2b_base64(encoded))


def _pump(outputs: dict[int, str], pidfd: int, log: CriLogWriter) -> None:
    """Feed the log from the output fds until the pidfd says the process exited."""
    poller = select.poll()
    for fd in outputs:
        os.set_blocking(fd, False)
        poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    open_fds = dict(outputs)
    exited = False
    while not exited:
        for fd, _events in poller.poll():
            if fd == pidfd:
                exited = True
            elif fd in open_fds and _read_into(fd, open_fds[fd], log) is False:
                poller.unregister(fd)
                del open_fds[fd]
    # The process is gone (and with PID 1 of a PID namespace, every process in it):
    # take what is still buffered in the pipes and stop.
    for fd, stream in open_fds.items():
        while _read_into(fd, stream, log) is True:
            pass
    for fd in outputs:
        os.close(fd)
    os.close(pidfd)


def _read_into(fd: int, stream: str, log: CriLogWriter) -> bool | None:
    """One read into the log: True if data came, None if none is there right now,
    False at end of file (or EIO: a pty whose other side has closed)."""
    try:
        data = os.read(fd, READ_SIZE)
    except BlockingIOError:
        return None
    except OSError:
        return False
    if not data:
        return False
    try:
        log.feed(stream, data)
    except OSError:
        pass            # a full disk loses log lines, never the container or its exit status
    return True


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _open_stdin(plan: dict) -> int:
    """/dev/null, or with `stdin: true` a FIFO in the container directory that an attach can write to."""
    if not plan["stdin"]:
        return os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    fifo = os.path.join(plan["state_dir"], "stdin")
    if not os.path.exists(fifo):
        os.mkfifo(fifo, 0o600)
    return os.open(fifo, os.O_RDWR | os.O_CLOEXEC)   # read-write: no EOF while nobody is attached


def _oom_kills(cgroups, path: str) -> int:
    try:
        return cgroups.oom_kills(path)
    except Exception:  # noqa: BLE001 - a missing counter must not stop a container
        return 0
