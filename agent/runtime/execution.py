"""`exec` into a running container: the worker the fork server runs for it.

The agent makes the pipes (or a pty) itself and hands their far ends to the fork
server over the unix socket (SCM_RIGHTS), so the exec'd process talks straight to
the agent with no copying in between. The fork server double-forks a worker
(forkserver.py) that

1. opens /proc/<pid>/ns/{ipc,uts,net,pid,mnt} of the container's PID 1 and checks
   the PID still has its recorded start time (a recycled PID is refused);
2. joins ipc, uts, net and pid (a PID namespace applies to children only) and forks;
3. the child joins the container's cgroup (its PID, as it sees it, resolves in the
   container's PID namespace), then the mount namespace - setns puts it at the
   container's root - and continues like the container's own process: working
   directory, uid/gid/capabilities (container_init.become_user), execve;
4. the worker replies `{"ok": true, "pid": ...}` (or the reason exec failed), waits
   for the process and replies its exit code.

On the agent side `ExecProcess` (execprocess.py) wraps the pipes in asyncio
streams and reads the exit code from the socket.
"""

from __future__ import annotations

import fcntl
import os
import socket
from typing import NoReturn

from agent.runtime import container_init, linux
from agent.runtime.supervisor import reply, seccomp_of

EXEC_NAMESPACES = ("ipc", "uts", "net", "pid", "mnt")


# --- in the fork server's worker process ---------------------------------------------------

def run_exec(request: dict, conn: socket.socket, fds: list[int], cgroups) -> NoReturn:
    try:
        _run_exec(request, conn, fds, cgroups)
    except BaseException as exc:  # noqa: BLE001 - a worker must never return to the fork server
        reply(conn, {"ok": False, "error": f"exec: {exc}"})
        os._exit(1)
    os._exit(0)


def _run_exec(request: dict, conn: socket.socket, fds: list[int], cgroups) -> None:
    plan = request["plan"]
    pid, pid_start = request["pid"], request["pid_start"]
    ns_fds = {}
    for kind in EXEC_NAMESPACES:
        ns_fds[kind] = os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC)
    if linux.start_time(pid) != pid_start:
        raise RuntimeError(f"container {plan['id']} is not running")
    for kind in EXEC_NAMESPACES[:-1]:     # mnt last, in the child
        linux.setns(ns_fds[kind], linux.NAMESPACE_FLAGS[kind], what=f"into the container's {kind} namespace")
    tty = request["tty"]
    stdio = (fds[0], fds[0], fds[0]) if tty else (fds[0], fds[1], fds[2])
    error_r, error_w = os.pipe()
    seccomp_filter = seccomp_of(plan)       # the container's own filter applies to exec'd processes too

    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
            if tty:
                fcntl.ioctl(0, linux.TIOCSCTTY, 0)
            cgroups.add_process(plan["cgroup"], os.getpid())
            linux.setns(ns_fds["mnt"], linux.CLONE_NEWNS, what="into the container's mount namespace")
            os.chdir(plan["cwd"])
            container_init.become_user(plan, seccomp_filter)
            container_init.exec_command(request["args"], request["env"])
        except BaseException as exc:  # noqa: BLE001
            container_init.report_and_exit(exc, error_w)

    for fd in (*fds, error_w, *ns_fds.values()):
        os.close(fd)
    error = b""
    while chunk := os.read(error_r, 4096):
        error += chunk
    if error:
        os.waitpid(child, 0)
        reply(conn, {"ok": False, "error": error.decode(errors="replace")})
        return
    reply(conn, {"ok": True, "pid": child})
    _, status = os.waitpid(child, 0)
    reply(conn, {"exit_code": os.waitstatus_to_exitcode(status) if os.WIFEXITED(status)
                 else 128 + os.WTERMSIG(status),
                 "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None})
