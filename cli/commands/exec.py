"""`ctl exec POD [-c C] [-i] [-t] -- COMMAND [ARGS...]`.

The command runs inside the container's namespaces and cgroup (started by the
agent of the pod's node, reached through the API server). Flags may come anywhere
before `--` (`ctl exec web -c sidecar -n dev -- ls`). With -i, stdin is forwarded,
whatever it is (a terminal, a pipe, a regular file: read by a thread, since a
regular file cannot be polled); with -t, a terminal is allocated in the container
and the local one is put in raw mode while the session lasts. -t without a local
terminal on stdin goes on without one, with kubectl's warning. The exit code of the
remote command is ctl's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import threading

import click

from cli.errors import CliError
from cli.session import global_options, run_async, session
from controlplane.client import ApiError


@click.command(context_settings={"allow_interspersed_args": True})
@click.argument("pod")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-c", "--container", default="", help="Container name (needed when the pod has several).")
@click.option("-i", "--stdin", "stdin", is_flag=True, help="Pass stdin to the command.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a terminal.")
@global_options
def exec_(pod: str, command: tuple[str, ...], container: str, stdin: bool, tty: bool) -> int:
    """Run a command in a container."""
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise CliError("you must specify at least one command for the container")
    s = session()
    name = pod.split("/", 1)[1] if pod.startswith(("pod/", "pods/", "po/")) else pod
    if tty and stdin and not sys.stdin.isatty():
        print("Unable to use a TTY - input is not a terminal or the right kind of file", file=sys.stderr)
        tty = False
    raw = tty and stdin
    old_mode = None
    if raw:
        import termios
        import tty as ttymod
        old_mode = termios.tcgetattr(sys.stdin.fileno())
        ttymod.setraw(sys.stdin.fileno())
    try:
        code = run_async(_session(s, name, container, list(command), stdin=stdin, tty=tty))
    finally:
        if old_mode is not None:
            import termios
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, old_mode)
    sys.exit(code)


async def _session(s, name: str, container: str, command: list[str], *, stdin: bool, tty: bool) -> int:
    loop = asyncio.get_running_loop()
    size = shutil.get_terminal_size()
    code = 0
    async with s.client() as c:
        stream = c.exec_session(namespace=s.namespace, pod=name, container=container, command=command,
                                tty=tty, stdin=stdin, rows=size.lines, cols=size.columns)
        if stdin:
            pump_stdin(loop, stream)
        async for kind, data in stream.outputs():
            if kind == "stdout":
                sys.stdout.buffer.write(data)
                sys.stdout.buffer.flush()
            elif kind == "stderr":
                sys.stderr.buffer.write(data)
                sys.stderr.buffer.flush()
            else:
                code = int(data)
    return code


def pump_stdin(loop: asyncio.AbstractEventLoop, stream) -> None:
    """Send stdin to the session from a daemon thread (blocking reads work on terminals,
    pipes and regular files alike; the event loop's add_reader refuses regular files)."""
    fd = sys.stdin.fileno()

    def pump() -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if loop.is_closed():
                return
            try:
                loop.call_soon_threadsafe(stream.send_stdin if data else stream.close_stdin, *([data] if data else []))
            except RuntimeError:     # the loop closed meanwhile: the session is over
                return
            if not data:
                return
    threading.Thread(target=pump, name="ctl-stdin", daemon=True).start()


exec_.name = "exec"
__all__ = ["exec_", "ApiError"]
