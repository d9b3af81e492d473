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
from typing import AsyncIterator

import click

from cli.errors import CliError
from cli.session import global_options, session
from controlplane.client import ApiError
from controlplane.client.errors import from_rpc_error
from protos import skiff_pb2 as pb


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
    import grpc
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[pb.ExecInput | None] = asyncio.Queue()
    size = shutil.get_terminal_size()
    await queue.put(pb.ExecInput(start=pb.ExecStart(namespace=s.namespace, pod=name, container=container,
                                                   command=command, tty=tty, stdin=stdin)))
    if tty:
        await queue.put(pb.ExecInput(resize=pb.TerminalSize(rows=size.lines, cols=size.columns)))
    if stdin:
        def readable() -> None:
            data = os.read(sys.stdin.fileno(), 65536)
            if data:
                queue.put_nowait(pb.ExecInput(stdin=data))
            else:
                loop.remove_reader(sys.stdin.fileno())
                queue.put_nowait(pb.ExecInput(stdin_closed=True))
        loop.add_reader(sys.stdin.fileno(), readable)
    else:
        await queue.put(pb.ExecInput(stdin_closed=True))

    async def inputs() -> AsyncIterator[pb.ExecInput]:
        while (item := await queue.get()) is not None:
            yield item

    code = 0
    async with s.client() as c:
        call = c.exec(inputs())
        try:
            async for out in call:
                if out.stdout:
                    sys.stdout.buffer.write(out.stdout)
                    sys.stdout.buffer.flush()
                if out.stderr:
                    sys.stderr.buffer.write(out.stderr)
                    sys.stderr.buffer.flush()
                if out.exited:
                    code = out.exit_code
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, server=c.server) from None
        finally:
            if stdin:
                loop.remove_reader(sys.stdin.fileno())
    return code


exec_.name = "exec"
__all__ = ["exec_", "ApiError"]
