"""Resource usage of this node and its pods, for `ctl top` (the agent's share of metrics-server).

`MetricsCollector.run()` samples every `interval` seconds (5 s by default; the
first two samples are one second apart so `ctl top` has figures soon after the
agent starts):

- the node, from /proc (agent.cgroups.node_stats: busy CPU time, MemTotal - MemAvailable);
- each pod group "pod-<uid>" under the agent's cgroup parent, and each container
  group "pod-<uid>/<name>" below it (CgroupManager.stats: CPU time, working set).

Only the last two samples are kept. CPU is a *rate*: the CPU time used between
them divided by the wall time between them, in nanocores (1e9 = one core busy),
as metrics-server reports it. Memory is the working set of the latest sample
(usage minus inactive file cache, like kubelet). A pod's figures are the sum of
its running containers' (a container group with no process left is not
running); a pod or container needs two samples before it has a rate, so a
brand-new one appears one interval later. A container restarted between two
samples starts its counter again at zero; its rate waits for the next window.

Reading is file I/O only (a few small files per group), done in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from agent.cgroups import CgroupError, Stats, node_stats

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
FIRST_INTERVAL = 1.0
POD_PREFIX = "pod-"


@dataclass(frozen=True)
class Usage:
    cpu_nanocores: int
    memory_bytes: int


@dataclass(frozen=True)
class PodUsage:
    uid: str
    containers: dict[str, Usage]          # running containers only

    @property
    def total(self) -> Usage:
        return Usage(sum(u.cpu_nanocores for u in self.containers.values()),
                     sum(u.memory_bytes for u in self.containers.values()))


@dataclass
class Sample:
    monotonic: float                      # when it was taken (time.monotonic)
    wall: float                           # the same moment, time.time()
    node: Stats
    containers: dict[str, Stats] = field(default_factory=dict)   # "pod-<uid>/<name>" -> Stats


@dataclass(frozen=True)
class Window:
    """What the last two samples say, ready to serve."""

    timestamp: str                        # RFC 3339 end of the window
    seconds: float
    node: Usage
    pods: dict[str, PodUsage]             # by pod uid


def cpu_rate(before_ns: int, after_ns: int, seconds: float) -> int | None:
    """Nanocores used between two readings of a CPU-time counter; None when the counter went
    backwards (the group was made again) or no time passed."""
    if seconds <= 0 or after_ns < before_ns:
        return None
    return round((after_ns - before_ns) / seconds)


def rfc3339(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class MetricsCollector:
    # Plain attribute declarations: alike in shape to other classes' (the `duplicates` tool pairs
    # them), with nothing to share.
    def __init__(self, cgroups: Any, *, interval: float = DEFAULT_INTERVAL, first_interval: float = FIRST_INTERVAL,
                 proc: str | Path = "/proc", monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.cgroups = cgroups
        self.interval = interval
        self.first_interval = first_interval
        self.proc = proc
        self._monotonic = monotonic
        self._wall = wall
        self.previous: Sample | None = None
        self.latest: Sample | None = None
        self._window: Window | None = None

    # -- sampling ------------------------------------------------------------------------------

    def take(self) -> Sample:
        """Read the node and every container group once (blocking file I/O)."""
        sample = Sample(monotonic=self._monotonic(), wall=self._wall(), node=node_stats(self.proc))
        for pod in self.cgroups.list_children(""):
            if not pod.startswith(POD_PREFIX):
                continue
            for name in self.cgroups.list_children(pod):
                path = f"{pod}/{name}"
                try:
                    stats = self.cgroups.stats(path)
                except CgroupError:
                    continue        # removed while we read
                if stats.pids_current > 0:
                    sample.containers[path] = stats
        return sample

    def record(self, sample: Sample) -> None:
        """Make `sample` the latest; the window is computed from it and the one before."""
        self.previous, self.latest = self.latest, sample
        self._window = None

    def sample(self) -> None:
        self.record(self.take())

    async def run(self) -> None:
        """Sample forever (until cancelled); a failed sample is logged and retried next time."""
        delay = self.first_interval
        while True:
            try:
                await asyncio.to_thread(self.sample)
            except Exception:  # noqa: BLE001 - keep sampling; `ctl top` shows the last good figures
                log.exception("sampling resource usage failed")
            await asyncio.sleep(delay)
            delay = self.interval

    # -- serving ---------------------------------------------------------------------------------

    def window(self) -> Window | None:
        """The usage over the last window; None until there are two samples."""
        if self.previous is None or self.latest is None:
            return None
        if self._window is None:
            self._window = self._compute(self.previous, self.latest)
        return self._window

    @staticmethod
    def _compute(before: Sample, after: Sample) -> Window:
        seconds = after.monotonic - before.monotonic
        node = Usage(cpu_rate(before.node.cpu_usage_ns, after.node.cpu_usage_ns, seconds) or 0,
                     after.node.memory_usage_bytes)
        pods: dict[str, dict[str, Usage]] = {}
        for path, stats in after.containers.items():
            earlier = before.containers.get(path)
            if earlier is None:
                continue
            rate = cpu_rate(earlier.cpu_usage_ns, stats.cpu_usage_ns, seconds)
            if rate is None:
                continue
            pod, _, name = path.partition("/")
            pods.setdefault(pod[len(POD_PREFIX):], {})[name] = Usage(rate, stats.memory_usage_bytes)
        return Window(timestamp=rfc3339(after.wall), seconds=round(seconds, 3), node=node,
                      pods={uid: PodUsage(uid, containers) for uid, containers in pods.items()})
