"""Emptying and removing a group: the part of the lifecycle both drivers share.

A cgroup directory can only be removed once no process is left in it or below it,
and processes do not vanish the instant they are sent SIGKILL. So removal is:

1. the driver's `kill_all` (freezer/cgroup.kill tricks differ per version);
2. poll until the group tree holds no pid, re-sending SIGKILL to stragglers (a
   process that was forking when the first signal came), until a deadline;
3. rmdir every directory bottom-up, retrying EBUSY until the same deadline (the
   kernel may still be releasing a process that just exited).

Time comes from an injectable `Clock` so tests of the deadline run fast.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agent.cgroups import fsio
from agent.cgroups.errors import CgroupError
from api.backoff import Backoff

POLL_START_S = 0.005
POLL_MAX_S = 0.1


@dataclass(frozen=True)
class Clock:
    """Where the drivers get time from; tests pass fakes."""

    now: Callable[[], float] = field(default=time.monotonic)
    sleep: Callable[[float], None] = field(default=time.sleep)


def signal_pids(pids: list[int], sig: int = signal.SIGKILL) -> None:
    """Send a signal to each pid, ignoring those already gone."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue


def wait_until_empty(*, list_pids: Callable[[], list[int]], deadline: float, clock: Clock, what: str) -> None:
    """Poll until list_pids() is empty, SIGKILLing whatever is still listed."""
    delay = Backoff(POLL_START_S, POLL_MAX_S)
    while True:
        pids = list_pids()
        if not pids:
            return
        if clock.now() >= deadline:
            raise CgroupError(f"cgroup {what} still has processes {pids} after the removal deadline")
        signal_pids(pids)
        clock.sleep(delay.next())


def remove_tree(top: Path, *, deadline: float, clock: Clock) -> None:
    """rmdir `top` and every group below it, deepest first, retrying EBUSY until the deadline."""
    for group in reversed(walk_groups(top)):
        delay = Backoff(POLL_START_S, POLL_MAX_S)
        while True:
            try:
                fsio.remove_dir(group)
                break
            except OSError as err:
                if not fsio.is_busy(err) or clock.now() >= deadline:
                    raise CgroupError(f"removing cgroup {group}: {err.strerror or err}") from err
                clock.sleep(delay.next())


def walk_groups(top: Path) -> list[Path]:
    """`top` and its descendant groups, parents before children."""
    if not top.is_dir():
        return []
    found = [top]
    for name in fsio.subdirs(top):
        found.extend(walk_groups(top / name))
    return found
