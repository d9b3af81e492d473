"""Container logs in the CRI format, with size-based rotation.

Each line a container prints becomes one record, as kubelet and containerd write
them and `kubectl logs` reads them:

    2024-05-01T12:00:00.123456789Z stdout F hello world
    <RFC 3339 timestamp, nanoseconds, UTC> <stream> <F full line | P partial> <text>

A line longer than `max_line` is cut into P records ended by an F record. When a
record would take the file past `max_bytes`, the file is rotated: container.log
becomes container.log.1 (older ones shift up to `max_files`, the oldest is
dropped) and a new container.log starts. The supervisor (supervisor.py) owns one
`CriLogWriter` per container and feeds it whatever the pipes deliver.
"""

from __future__ import annotations

import os
import time
from typing import Callable

MAX_LINE = 16 * 1024     # containerd's default buffer; longer lines become P records


def timestamp(ns: int) -> bytes:
    seconds, fraction = divmod(ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z").encode()


class CriLogWriter:
    def __init__(self, path: str, *, max_bytes: int, max_files: int,
                 clock_ns: Callable[[], int] = time.time_ns, max_line: int = MAX_LINE) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.max_line = max_line
        self._clock_ns = clock_ns
        self._pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def feed(self, stream: str, data: bytes) -> None:
        """Add bytes read from a stream; complete lines are written at once."""
        buffer = self._pending[stream] + data
        records: list[bytes] = []
        stamp = timestamp(self._clock_ns())
        while True:
            newline = buffer.find(b"\n")
            if newline == -1 or newline > self.max_line:
                if len(buffer) <= self.max_line:
                    break
                records.append(b"%s %s P %s\n" % (stamp, stream.encode(), buffer[:self.max_line]))
                buffer = buffer[self.max_line:]
                continue
            records.append(b"%s %s F %s\n" % (stamp, stream.encode(), buffer[:newline]))
            buffer = buffer[newline + 1:]
        self._pending[stream] = buffer
        self._write(records)

    def close(self) -> None:
        """Write what is left of unterminated lines as full lines and close the file."""
        stamp = timestamp(self._clock_ns())
        self._write([b"%s %s F %s\n" % (stamp, stream.encode(), rest)
                     for stream, rest in self._pending.items() if rest])
        self._pending = {"stdout": b"", "stderr": b""}
        os.close(self._fd)

    def _write(self, records: list[bytes]) -> None:
        chunk = bytearray()
        for record in records:
            if self._size + len(chunk) + len(record) > self.max_bytes and self._size + len(chunk) > 0:
                self._flush(chunk)
                chunk = bytearray()
                self._rotate()
            chunk += record
        self._flush(chunk)

    def _flush(self, chunk: bytearray) -> None:
        view = memoryview(chunk)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written

    def _rotate(self) -> None:
        os.close(self._fd)
        if self.max_files == 0:
            os.unlink(self.path)
        else:
            for n in range(self.max_files, 1, -1):
                older = f"{self.path}.{n - 1}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{n}")
            os.replace(self.path, f"{self.path}.1")
        self._fd = self._open()
        self._size = 0
