"""agent/logs.py: reading CRI log files (with partial lines and rotation) the way kubectl logs shows them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.logs import CriParser, parse_time, read_logs
from agent.runtime.crilog import CriLogWriter, timestamp


def stamp(seconds_ago: float) -> bytes:
    return timestamp(int((time.time() - seconds_ago) * 1e9))


def record(seconds_ago: float, stream: str, tag: str, text: str) -> bytes:
    return b"%s %s %s %s\n" % (stamp(seconds_ago), stream.encode(), tag.encode(), text.encode())


async def collect(path: Path, **options) -> list[bytes]:
    return [line async for line in read_logs(path, **options)]


async def wait_for(condition, *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


@pytest.fixture
def rotated_log(tmp_path: Path) -> Path:
    """container.log.1 holds lines one..three (100-80 s ago), container.log four..five (50 and 5 s ago)."""
    path = tmp_path / "container.log"
    (tmp_path / "container.log.1").write_bytes(
        record(100, "stdout", "F", "one") + record(90, "stderr", "F", "two")
        + record(80, "stdout", "P", "thr"))                       # a partial line continued after rotation
    path.write_bytes(record(79, "stdout", "F", "ee") + record(50, "stdout", "F", "four")
                     + record(5, "stdout", "F", "five"))
    return path


def test_parser_joins_partial_lines_per_stream() -> None:
    parser = CriParser()
    data = (b"2026-01-01T00:00:00.000000001Z stdout P hel\n"
            b"2026-01-01T00:00:00.000000002Z stderr F oops\n"
            b"2026-01-01T00:00:00.000000003Z stdout P lo wo\n"
            b"2026-01-01T00:00:00.000000004Z stdout F rld\n"
            b"2026-01-01T00:00:00.000000005Z stdout F \n"
            b"garbage line\n"
            b"2026-01-01T00:00:00.000000006Z stdout F with  double  spaces\n"
            b"2026-01-01T00:00:00.000000007Z stdout F unfinis")
    lines = parser.feed(data[:50]) + parser.feed(data[50:])
    assert [(line.stream, line.text) for line in lines] == [
        (b"stderr", b"oops"), (b"stdout", b"hello world"), (b"stdout", b""),
        (b"stdout", b"with  double  spaces")]
    assert lines[1].stamp == b"2026-01-01T00:00:00.000000001Z"      # a joined line keeps its first time
    assert parser.feed(b"hed\n")[0].text == b"unfinished"


def test_parse_time() -> None:
    assert parse_time(b"1970-01-01T00:01:00.5Z") == 60.5
    assert parse_time(b"1970-01-01T01:00:00.000000000+01:00") == 0.0
    assert parse_time(b"2026-11-22T10:00:00Z") == 1795341600.0


async def test_read_all_including_rotated(rotated_log: Path) -> None:
    assert await collect(rotated_log) == [b"one\n", b"two\n", b"three\n", b"four\n", b"five\n"]


@pytest.mark.parametrize("tail, expected", [
    (0, []),
    (1, [b"five\n"]),
    (3, [b"three\n", b"four\n", b"five\n"]),          # reaches back into container.log.1
    (100, [b"one\n", b"two\n", b"three\n", b"four\n", b"five\n"]),
    (-1, [b"one\n", b"two\n", b"three\n", b"four\n", b"five\n"]),   # kubectl's "all"
])
async def test_tail(rotated_log: Path, tail: int, expected: list[bytes]) -> None:
    assert await collect(rotated_log, tail=tail) == expected


@pytest.mark.parametrize("since, expected", [
    (10, [b"five\n"]),
    (60, [b"four\n", b"five\n"]),
    (85, [b"three\n", b"four\n", b"five\n"]),         # the line started 80 s ago, in the rotated file
    (1000, [b"one\n", b"two\n", b"three\n", b"four\n", b"five\n"]),
])
async def test_since(rotated_log: Path, since: float, expected: list[bytes]) -> None:
    assert await collect(rotated_log, since_seconds=since) == expected
    assert await collect(rotated_log, since_seconds=since, tail=1) == expected[-1:]


async def test_timestamps(rotated_log: Path) -> None:
    lines = await collect(rotated_log, timestamps=True, tail=2)
    stamps = [line.split(b" ", 1) for line in lines]
    assert [text for _, text in stamps] == [b"four\n", b"five\n"]
    assert all(abs(parse_time(s) - (time.time() - ago)) < 2 for (s, _), ago in zip(stamps, (50, 5)))
    assert len(stamps[0][0]) == len(b"2026-11-22T10:00:00.123456789Z")


async def test_unfinished_line_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    path.write_bytes(record(1, "stdout", "F", "done") + record(1, "stdout", "P", "prompt> "))
    assert await collect(path) == [b"done\n", b"prompt> "]
    with pytest.raises(FileNotFoundError):
        await collect(tmp_path / "nope.log")


async def test_follow_appends_rotation_and_stop(tmp_path: Path) -> None:
    path = tmp_path / "container.log"
    writer = CriLogWriter(str(path), max_bytes=4096, max_files=1, max_line=64)
    writer.feed("stdout", b"before\n")
    stop = asyncio.Event()
    got: list[bytes] = []

    async def follow() -> None:
        async for line in read_logs(path, follow=True, tail=10, stop=stop, poll_interval=0.01):
            got.append(line)

    task = asyncio.create_task(follow())
    try:
        await wait_for(lambda: got == [b"before\n"])
        writer.feed("stdout", b"after\n")
        writer.feed("stderr", b"x" * 100 + b"\n")                    # split into P + F records
        await wait_for(lambda: len(got) == 3)
        assert got[1:] == [b"after\n", b"x" * 100 + b"\n"]
        # Enough lines to rotate the file (4 KiB) a few times, in batches the reader keeps up with
        # (a file rotated away twice between two polls is gone, for kubelet too): nothing lost or doubled.
        expected = [b"line %d\n" % i for i in range(200)]
        for start in range(0, 200, 20):
            for line in expected[start:start + 20]:
                writer.feed("stdout", line)
            await wait_for(lambda: len(got) == 3 + start + 20)
        assert got[3:] == expected
        assert (tmp_path / "container.log.1").exists()
        writer.feed("stdout", b"last words")                          # no newline yet
        writer.close()                                                # written as a full line
        stop.set()
        await asyncio.wait_for(task, 5)
        assert got[-1] == b"last words\n"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_follow_stop_flushes_partial_and_ends(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    path.write_bytes(record(1, "stdout", "P", "half"))
    stop = asyncio.Event()
    stop.set()
    assert await asyncio.wait_for(collect(path, follow=True, stop=stop), 5) == [b"half"]
