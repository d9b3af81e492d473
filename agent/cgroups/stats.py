"""What a cgroup (or the whole node) has used: the `Stats` record.

Both drivers fill the same record so `ctl top` and the pod status code never ask
which cgroup version a node runs. Memory usage is the *working set* (usage minus
inactive file cache), the figure kubelet and `kubectl top` report: page cache the
kernel could drop at once is not counted against a container.
"""

from __future__ import annotations

from dataclasses import dataclass

# v1 reports "no limit" as a huge page-aligned number (9223372036854771712 on x86-64);
# anything this large is treated as unlimited.
UNLIMITED_THRESHOLD = 1 << 62


@dataclass(frozen=True)
class Stats:
    cpu_usage_ns: int                  # total CPU time consumed, nanoseconds
    memory_usage_bytes: int            # working set: usage minus inactive file cache
    memory_limit_bytes: int | None     # None when unlimited
    pids_current: int                  # processes and threads in the group (and below)
    oom_kills: int                     # processes the OOM killer has killed in the group


def working_set(usage: int, memory_stat: dict[str, int], *, inactive_key: str) -> int:
    """usage minus inactive file pages (never below zero), as cAdvisor computes it."""
    return max(0, usage - memory_stat.get(inactive_key, 0))


def limit_or_none(value: int) -> int | None:
    return None if value >= UNLIMITED_THRESHOLD else value
