"""Child processes for the real-kernel cgroup driver tests (tests/node/test_cgroups_v1.py, _v2.py).

`children` is a fixture function (the test modules import it by name): `start(argv)` starts a
child with pipes; every child is killed and reaped at the end. Children that must start their
work only once inside a group wait for a line on stdin (`go`) first.
"""

from __future__ import annotations

import select
import subprocess
import time

import pytest


@pytest.fixture
def children():
    """Start child processes; every one is killed and reaped at the end."""
    started: list[subprocess.Popen] = []

    def start(argv: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kwargs)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream:
                    stream.close()


def wait_for(predicate, *, timeout: float = 10.0, what: str):
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def read_line(proc: subprocess.Popen, *, timeout: float = 10.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "child printed nothing before the deadline"
    return proc.stdout.readline().strip()


def go(proc: subprocess.Popen) -> None:
    """Children wait on stdin so they start their work only once inside the group."""
    proc.stdin.write("go\n")
    proc.stdin.flush()
