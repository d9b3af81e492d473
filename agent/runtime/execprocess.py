"""ExecProcess: the agent's handle on a process started by `Runtime.exec()`.

The agent made the pipes (or the pty) and sent their far ends to the fork server
(execution.py has the other side); here the near ends become asyncio streams, and
the exit code arrives as a JSON line on the request's socket.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
import signal
import struct
import termios


class _EofOnEioProtocol(asyncio.StreamReaderProtocol):
    """Reading a pty master whose other side closed fails with EIO: that is end of file."""

    def connection_lost(self, exc: Exception | None) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.EIO:
            exc = None
        super().connection_lost(exc)


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: _EofOnEioProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    return reader


async def _writer(fd: int) -> asyncio.StreamWriter:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin,
                                                        os.fdopen(fd, "wb", buffering=0))
    return asyncio.StreamWriter(transport, protocol, None, loop)


class ExecProcess:
    """A process started by `Runtime.exec()`.

    Without a tty: `stdin` (StreamWriter), `stdout` and `stderr` (StreamReaders).
    With a tty: `stdout` reads and `stdin` writes the terminal; `stderr` is None;
    `resize()` sets its size.
    """

    # Plain attribute declarations: alike in shape to other classes' (the `duplicates` tool pairs
    # them), with nothing to share.
    def __init__(self, *, pid: int, stdin: asyncio.StreamWriter, stdout: asyncio.StreamReader,
                 stderr: asyncio.StreamReader | None, control: asyncio.StreamReader,
                 control_writer: asyncio.StreamWriter, pty_fd: int | None) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self._control = control
        self._control_writer = control_writer
        self._pty_fd = pty_fd
        self.returncode: int | None = None

    @classmethod
    async def attach(cls, *, pid: int, local_fds: list[int], tty: bool, control: asyncio.StreamReader,
                     control_writer: asyncio.StreamWriter) -> "ExecProcess":
        if tty:
            master = local_fds[0]
            # one fd each for reading, writing and resizing: each is closed on its own schedule
            return cls(pid=pid, stdin=await _writer(os.dup(master)), stdout=await _reader(os.dup(master)),
                       stderr=None, control=control, control_writer=control_writer, pty_fd=master)
        stdin_w, stdout_r, stderr_r = local_fds
        return cls(pid=pid, stdin=await _writer(stdin_w), stdout=await _reader(stdout_r),
                   stderr=await _reader(stderr_r), control=control, control_writer=control_writer, pty_fd=None)

    async def wait(self) -> int:
        """The exit code (128+n when killed by signal n)."""
        if self.returncode is None:
            line = await self._control.readline()
            if not line:
                raise RuntimeError(f"exec {self.pid}: the fork server worker went away")
            self.returncode = json.loads(line)["exit_code"]
            self._control_writer.close()
            self.stdin.close()                   # the process is gone; nothing can read it any more
            if self._pty_fd is not None:
                os.close(self._pty_fd)
                self._pty_fd = None
        return self.returncode

    def resize(self, *, rows: int, cols: int) -> None:
        if self._pty_fd is None:
            raise RuntimeError("resize needs a running exec with tty=True")
        fcntl.ioctl(self._pty_fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send_signal(self, sig: int = signal.SIGKILL) -> None:
        if self.returncode is not None:          # reaped: the PID may belong to someone else now
            return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass
