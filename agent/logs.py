"""Reading container logs, as `kubectl logs` shows them.

The runtime's supervisor writes each container's output in the CRI format
(agent/runtime/crilog.py), one record per line:

    2026-11-22T10:00:00.123456789Z stdout F hello world
    <RFC 3339 time, UTC, ns>      <stream> <F full | P partial> <text>

A long line arrives as P records ended by an F record *of the same stream*
(stdout and stderr records may interleave), and the file rotates by size:
`container.log` -> `container.log.1` -> `container.log.2` ...

`read_logs` turns that back into the program's lines, with kubectl's options:
`tail` (last N lines), `since_seconds` (lines newer than that), `timestamps`
(each line prefixed with its record's time) and `follow` (keep reading new
lines, across rotations, until `stop` is set). Rotated files are read too,
oldest first, so tail and since can reach back into them. `previous` is the
caller's business: it passes the log path of the container's previous instance.

All file reads run in a thread; following polls the file every `poll_interval`.
"""

from __future__ import annotations

import asyncio
import calendar
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, BinaryIO

_CHUNK = 1 << 20


@dataclass
class LogLine:
    stamp: bytes        # the record's RFC 3339 time as written (the first fragment's, for joined lines)
    stream: bytes       # b"stdout" | b"stderr"
    text: bytes         # without the newline
    complete: bool = True

    def render(self, *, timestamps: bool) -> bytes:
        out = self.text + (b"\n" if self.complete else b"")
        return self.stamp + b" " + out if timestamps else out


def parse_time(stamp: bytes) -> float:
    """Seconds since the epoch of an RFC 3339 time like 2026-11-22T10:00:00.123456789Z (or +01:00)."""
    text = stamp.decode("ascii", errors="replace")
    base = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    rest = text[19:]
    fraction = 0.0
    if rest.startswith("."):
        digits = len(rest) - len(rest[1:].lstrip("0123456789"))
        fraction = float("0" + rest[:digits]) if digits > 1 else 0.0
        rest = rest[digits:]
    if rest not in ("Z", "z", ""):
        sign = -1 if rest[0] == "-" else 1
        hours, _, minutes = rest[1:].partition(":")
        base -= sign * (int(hours) * 3600 + int(minutes or 0) * 60)
    return base + fraction


class CriParser:
    """Turns CRI log bytes into whole lines; feed it chunks in file order."""

    def __init__(self) -> None:
        self._buffer = b""
        self._partial: dict[bytes, tuple[bytes, list[bytes]]] = {}   # stream -> (first stamp, fragments)

    def feed(self, data: bytes) -> list[LogLine]:
        records = (self._buffer + data).split(b"\n")
        self._buffer = records.pop()            # an unfinished record waits for its newline
        lines = []
        for record in records:
            fields = record.split(b" ", 3)
            if len(fields) < 3 or fields[2] not in (b"F", b"P"):
                continue                        # not a CRI record: skip it, as kubelet does
            stamp, stream, tag = fields[0], fields[1], fields[2]
            text = fields[3] if len(fields) == 4 else b""
            first_stamp, fragments = self._partial.pop(stream, (stamp, []))
            fragments.append(text)
            if tag == b"P":
                self._partial[stream] = (first_stamp, fragments)
            else:
                lines.append(LogLine(first_stamp, stream, b"".join(fragments)))
        return lines

    def flush(self) -> list[LogLine]:
        """Lines still waiting for their end (the program has not printed the newline yet)."""
        lines = [LogLine(stamp, stream, b"".join(fragments), complete=False)
                 for stream, (stamp, fragments) in self._partial.items()]
        self._partial.clear()
        return lines


def log_files(path: Path) -> list[Path]:
    """The rotated files of `path`, oldest first (container.log.2, container.log.1)."""
    rotated = []
    for candidate in path.parent.glob(path.name + ".*"):
        suffix = candidate.name[len(path.name) + 1:]
        if suffix.isdigit():
            rotated.append((int(suffix), candidate))
    return [p for _, p in sorted(rotated, reverse=True)]


def _open_all(path: Path) -> list[BinaryIO]:
    """Open the rotated files and the current one (last); the current one must exist."""
    current = open(path, "rb")
    handles = []
    for rotated in log_files(path):
        try:
            handles.append(open(rotated, "rb"))
        except FileNotFoundError:
            pass                                # rotated away meanwhile
    return handles + [current]


def _replaced(path: Path, handle: BinaryIO) -> bool | None:
    """Whether `path` is now another file than `handle` (rotation); None while no file is there."""
    try:
        return os.stat(path).st_ino != os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return None


async def read_logs(path: Path, *, tail: int | None = None, since_seconds: float | None = None,
                    timestamps: bool = False, follow: bool = False, stop: asyncio.Event | None = None,
                    poll_interval: float = 0.1) -> AsyncIterator[bytes]:
    """Yield the container's log lines (bytes, each ending in a newline) with kubectl's options.

    Raises FileNotFoundError when there is no log at `path`.
    """
    path = Path(path)
    cutoff = time.time() - since_seconds if since_seconds is not None else None
    parser = CriParser()

    def wanted(lines: list[LogLine]) -> list[LogLine]:
        if cutoff is None:
            return lines
        return [line for line in lines if parse_time(line.stamp) >= cutoff]

    handles = await asyncio.to_thread(_open_all, path)
    try:
        # What is there now: every file, oldest first; kept back only when tail needs the end.
        keep: deque[LogLine] | None = deque(maxlen=tail) if tail is not None and tail >= 0 else None
        for handle in handles:
            while chunk := await asyncio.to_thread(handle.read, _CHUNK):
                lines = wanted(parser.feed(chunk))
                if keep is not None:
                    keep.extend(lines)
                else:
                    for line in lines:
                        yield line.render(timestamps=timestamps)
        for handle in handles[:-1]:
            handle.close()
        current = handles[-1]
        handles = [current]
        if not follow:
            rest = wanted(parser.flush())
            if keep is not None:
                keep.extend(rest)
                rest = list(keep)
            for line in rest:
                yield line.render(timestamps=timestamps)
            return
        for line in keep or ():
            yield line.render(timestamps=timestamps)

        # Follow: read what gets appended; switch files when the writer rotates.
        while True:
            stopping = stop is not None and stop.is_set()
            while chunk := await asyncio.to_thread(current.read, _CHUNK):
                for line in wanted(parser.feed(chunk)):
                    yield line.render(timestamps=timestamps)
            if await asyncio.to_thread(_replaced, path, current):
                # At EOF of the old file and a new one is in place: nothing more comes to the old one.
                try:
                    new = await asyncio.to_thread(open, path, "rb")
                except FileNotFoundError:
                    new = None
                if new is not None:
                    while chunk := await asyncio.to_thread(current.read, _CHUNK):   # written just before
                        for line in wanted(parser.feed(chunk)):
                            yield line.render(timestamps=timestamps)
                    current.close()
                    current = handles[0] = new
                    continue
            if stopping:
                for line in wanted(parser.flush()):
                    yield line.render(timestamps=timestamps)
                return
            if stop is None:
                await asyncio.sleep(poll_interval)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), poll_interval)
                except TimeoutError:
                    pass
    finally:
        for handle in handles:
            handle.close()
