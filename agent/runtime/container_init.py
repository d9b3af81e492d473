"""The container process between fork and exec: namespaces, rootfs, identity, exec.

`run()` is called in the child the supervisor forks (supervisor.py) and never
returns: it either execs the container's command or writes the reason it could
not to the error pipe and exits 127 (the command could not be executed) or 128
(the setup before it failed). The supervisor reads that pipe; end-of-file without
a message means exec succeeded (the pipe is close-on-exec).

The steps run in a fixed order, and the order is the design:

0. A new session and stdio first, so the container is not in its supervisor's
   session and anything printed from here on lands in the container's log (a
   terminal, if asked for, comes after step 3: it must be the container's own).
1. Join the pod's network, IPC and UTS namespaces (setns on the files the sandbox
   bind-mounted). The PID namespace is already new: the supervisor unshared it
   before forking, which makes this process PID 1 of it.
2. unshare a mount namespace of our own; then rootfs.build(): overlay, /proc,
   /sys (after step 1, so sysfs belongs to the pod's netns), /dev, /etc files,
   volumes, pivot_root, read-only root.
3. Working directory and rlimits, still as root (root can enter any directory
   and raise hard limits).
4. Wait for the supervisor's "go": it moves this process into the container's
   cgroup meanwhile. Moving a process between cgroup v1 groups waits for an RCU
   grace period (often 10-20 ms), so the supervisor does it from outside while
   steps 0-3 run, instead of this process doing it first and then the mounts.
   Nothing of the command runs outside its limits: the wait is before exec.
5. Identity: drop the bounding set (needs CAP_SETPCAP, so before the uid change);
   keep capabilities across setuid; setgroups and setgid (impossible after setuid);
   setuid; then set effective/permitted capabilities; no_new_privs last.
   A Localhost seccomp filter (compiled by the agent, seccomp.py) goes on as
   runc does it: with no_new_privs right after it, so only execve's own calls
   follow; without, first in this step, because loading a filter without
   no_new_privs needs CAP_SYS_ADMIN. The default profile, which is known to
   allow everything from step 4 on (read, the identity calls, execve), is
   loaded before step 4 instead (plan "seccomp_early"), still holding
   CAP_SYS_ADMIN: loading ~1,000 instructions costs about a millisecond, spent
   while the supervisor sets up the cgroup rather than after it. Every setup
   call that the profile forbids (mount, unshare, setns, pivot_root...) is
   behind us by then.
6. Signals Python ignores (SIGPIPE, SIGXFSZ) back to default - ignored signals
   survive execve - then look the command up in $PATH and execve.

Everything used here was imported and resolved before fork; nothing is imported now.
"""

from __future__ import annotations

import fcntl
import os
import resource
import signal
import socket
from typing import NoReturn

from agent.runtime import capabilities, linux, rootfs

EXIT_EXEC_FAILED = 127
EXIT_SETUP_FAILED = 128


class ExecFailed(Exception):
    """The command could not be executed (not found, not executable...)."""


def run(plan: dict, *, stdio: tuple[int, int, int] | None, tty_socket: socket.socket | None, error_fd: int,
        go_fd: int, namespace_fds: dict[str, int], seccomp_filter: linux.SeccompFilter | None = None) -> NoReturn:
    """Set up the container in this (freshly forked) process and exec its command.

    With a tty (`stdio` None, `tty_socket` given) the terminal is made after step 3,
    inside the container's own devpts, so `tty` and ttyname() work; its master side
    goes to the supervisor over `tty_socket`.
    """
    try:
        os.setsid()                                                     # 0
        if stdio is not None:
            _set_stdio(stdio, tty=False)
        for kind, fd in namespace_fds.items():                          # 1
            linux.setns(fd, linux.NAMESPACE_FLAGS[kind], what=f"into the pod's {kind} namespace")
        linux.unshare(linux.CLONE_NEWNS)                                # 2
        rootfs.build(plan)
        os.chdir(plan["cwd"])                                           # 3
        for name, soft, hard in plan["rlimits"]:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        if tty_socket is not None:
            master, slave = os.openpty()              # /dev/ptmx is now the container's
            socket.send_fds(tty_socket, [b"t"], [master])
            os.close(master)
            _set_stdio((slave, slave, slave), tty=True)
        if seccomp_filter is not None and plan.get("seccomp_early"):
            # The default profile allows every call left (read, the identity calls of step 5,
            # execve): load it now, while the supervisor still sets up the cgroup, not after.
            seccomp_filter.load()
            seccomp_filter = None
        if os.read(go_fd, 2) != b"go":                                  # 4
            raise RuntimeError("the supervisor did not let the container start")
        become_user(plan, seccomp_filter)                               # 5
        exec_command(plan["args"], plan["env"])                         # 6
    except BaseException as exc:  # noqa: BLE001 - everything must reach the starter
        report_and_exit(exc, error_fd)


def _set_stdio(stdio: tuple[int, int, int], *, tty: bool) -> None:
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)           # dup2'd fds are inheritable: they survive exec
    if tty:
        fcntl.ioctl(0, linux.TIOCSCTTY, 0)


def become_user(plan: dict, seccomp_filter: linux.SeccompFilter | None = None) -> None:
    """Step 5: capabilities bounding set, uid/gid/groups, capability sets, no_new_privs, seccomp."""
    caps = plan["caps"]
    if seccomp_filter is not None and not plan["no_new_privs"]:
        seccomp_filter.load()       # without no_new_privs loading needs CAP_SYS_ADMIN: while we have it
    capabilities.apply_bounding(caps, plan["last_cap"])
    linux.prctl(linux.PR_SET_KEEPCAPS, 1, what="keeping capabilities across setuid")
    os.setgroups(plan["groups"])
    os.setgid(plan["gid"])
    os.setuid(plan["uid"])
    capabilities.apply_sets(caps)
    if plan["no_new_privs"]:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1, what="setting no_new_privs")
        if seccomp_filter is not None:
            seccomp_filter.load()   # as late as possible: only execve's own calls are left


def exec_command(args: list[str], env: dict[str, str]) -> NoReturn:
    """Step 6: restore default signal dispositions, find args[0], execve."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    path = lookup(args[0], env.get("PATH", ""))
    try:
        os.execve(path, args, env)
    except OSError as err:
        raise ExecFailed(f'exec "{args[0]}": {err.strerror}') from None


def lookup(name: str, search_path: str) -> str:
    """args[0] as an executable path: itself if it contains "/", else the first match in $PATH."""
    if "/" in name:
        return name
    for directory in search_path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise ExecFailed(f'exec "{name}": executable file not found in $PATH')


def report_and_exit(exc: BaseException, error_fd: int) -> NoReturn:
    """Write the reason to the starter and exit; never returns into the forking code."""
    code = EXIT_EXEC_FAILED if isinstance(exc, ExecFailed) else EXIT_SETUP_FAILED
    message = str(exc) or type(exc).__name__
    try:
        os.write(error_fd, message.encode(errors="replace")[:4000])
    finally:
        os._exit(code)
