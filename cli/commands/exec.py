"""`ctl exec POD [-c C] [-i] [-t] -- COMMAND [ARGS...]`.

The command runs inside the container's namespaces and cgroup (started by the
agent of the pod's node, reached through the API server). With -i, stdin is
forwarded; with -t, a terminal is allocated and the local one is put in raw
mode while the session lasts. The exit code of the remote command is ctl's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import click

from cli.errors import CliError
from cli.session import global_options, session
from controlplane.client import ApiError


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("pod")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
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
    raw = tty and stdin and sys.stdin.isatty()
    old_mode = None
    if raw:
        import termios
        import tty as ttymod
        old_mode = termios.tcgetattr(sys.stdin.fileno())
        ttymod.setraw(sys.stdin.fileno())
    try:
        code = asyncio.run(_session(s, name, container, list(command), stdin=stdin, tty=tty))
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
            def readable() -> None:
                data = os.read(sys.stdin.fileno(), 65536)
                if data:
                    stream.send_stdin(data)
                else:
                    loop.remove_reader(sys.stdin.fileno())
                    stream.close_stdin()
            loop.add_reader(sys.stdin.fileno(), readable)
        try:
            async for kind, data in stream.outputs():
                if kind == "stdout":
                    sys.stdout.buffer.write(data)
                    sys.stdout.buffer.flush()
                elif kind == "stderr":
                    sys.stderr.buffer.write(data)
                    sys.stderr.buffer.flush()
                else:
                    code = int(data)
        finally:
            if stdin:
                loop.remove_reader(sys.stdin.fileno())
    return code


exec_.name = "exec"
__all__ = ["exec_", "ApiError"]
