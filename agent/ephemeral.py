"""Ephemeral storage: measure what pods write to the node's disk, evict those past their limits.

As the kubelet does (pkg/kubelet/eviction, localStorageEviction), every
`--eviction-interval` seconds the agent measures, for each running pod with a
limit to enforce:

- each container's usage: its writable layers (the overlay `upper` directory of
  every instance still on disk) plus its logs;
- each local volume: emptyDir on disk (not `medium: Memory`, which is a tmpfs
  charged to the memory cgroup and capped in size, see agent/volumes.py),
  configMap and downwardAPI;

and compares, in the kubelet's order (the first verdict wins):

1. an emptyDir against its `sizeLimit`:
   `Usage of EmptyDir volume "x" exceeds the limit "50Mi". Usage: 61Mi.`
2. the pod's total against the sum of its containers' `limits.ephemeral-storage`
   (init containers: the largest): `Pod ephemeral local storage usage exceeds the
   total limit of containers 100Mi. Usage: 151Mi.`
3. each container against its own limit: `Container main exceeded its local
   ephemeral storage limit "100Mi". Usage: 151Mi.`

(the kubelet's sentences, with the measured usage added). A verdict goes to the
pod's worker (`PodSyncer.request_eviction`), which ends the pod: phase Failed,
reason Evicted, the message, a Warning event, containers killed with no grace
period, volumes torn down.

The measuring is a `du`: a walk of each directory counting allocated blocks
(hard links once, not crossing into other filesystems), which is blocking disk
I/O and runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from api.quantity import QuantityError, memory_bytes

log = logging.getLogger(__name__)
RESOURCE = "ephemeral-storage"


@dataclass
class StorageLimits:
    """The limits of one pod, each as (bytes, the text the pod spec gave)."""

    containers: dict[str, tuple[int, str]] = field(default_factory=dict)
    pod: tuple[int, str] | None = None
    empty_dirs: dict[str, tuple[int, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.containers or self.pod or self.empty_dirs)


def _quantity(value: Any) -> int | None:
    try:
        return memory_bytes(value)
    except (QuantityError, ValueError, TypeError):
        return None


def format_usage(n: int) -> str:
    """A usage figure as a quantity rounded to the unit that reads best ("151Mi")."""
    for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= size:
            return f"{n / size:.0f}{suffix}" if n >= 10 * size else f"{n / size:.1f}{suffix}"
    return str(n)


def limits_of(pod: dict[str, Any]) -> StorageLimits:
    """What there is to enforce for `pod` (empty when nothing)."""
    spec = pod.get("spec") or {}
    limits = StorageLimits()
    app_total, init_max, any_limit = 0, 0, False
    for init, containers in ((False, spec.get("containers") or []), (True, spec.get("initContainers") or [])):
        for c in containers:
            text = ((c.get("resources") or {}).get("limits") or {}).get(RESOURCE)
            value = _quantity(text) if text is not None else None
            if value is None:
                continue
            any_limit = True
            limits.containers[c["name"]] = (value, str(text))
            if init:
                init_max = max(init_max, value)
            else:
                app_total += value
    if any_limit:
        total = max(app_total, init_max)
        texts = [t for _, t in limits.containers.values()]
        limits.pod = (total, texts[0] if len(texts) == 1 else _format_limit(total))
    for volume in spec.get("volumes") or []:
        source = volume.get("emptyDir")
        if source is None or source.get("medium") == "Memory" or not source.get("sizeLimit"):
            continue
        value = _quantity(source["sizeLimit"])
        if value is not None:
            limits.empty_dirs[volume["name"]] = (value, str(source["sizeLimit"]))
    return limits


def _format_limit(n: int) -> str:
    for suffix, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n % size == 0:
            return f"{n // size}{suffix}"
    return str(n)


def disk_usage(paths: Iterable[Path]) -> int:
    """Bytes allocated under `paths` (like `du -s`): blocks of every file and directory,
    hard links counted once, mount points below each path not entered. Missing paths
    count 0. Blocking."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for top in paths:
        try:
            top_stat = os.lstat(top)
        except OSError:
            continue
        device = top_stat.st_dev
        stack = [str(top)]
        total += top_stat.st_blocks * 512
        seen.add((top_stat.st_dev, top_stat.st_ino))
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as entries:
                    for entry in entries:
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue            # gone meanwhile
                        key = (st.st_dev, st.st_ino)
                        if key in seen or st.st_dev != device:
                            continue
                        seen.add(key)
                        total += st.st_blocks * 512
                        if stat.S_ISDIR(st.st_mode):
                            stack.append(entry.path)
            except (NotADirectoryError, FileNotFoundError, PermissionError):
                continue
    return total


@dataclass
class PodPaths:
    """Where one pod's ephemeral storage lives on the node."""

    containers: dict[str, list[Path]] = field(default_factory=dict)   # name -> upper dirs + log dir
    local_volumes: dict[str, Path] = field(default_factory=dict)      # volume name -> its directory


def verdict(limits: StorageLimits, usage: dict[str, int], volumes: dict[str, int]) -> str | None:
    """The eviction message for these figures, or None: emptyDir, then pod, then container
    (the kubelet's order)."""
    for name, (limit, text) in limits.empty_dirs.items():
        used = volumes.get(name, 0)
        if used > limit:
            return f'Usage of EmptyDir volume "{name}" exceeds the limit "{text}". Usage: {format_usage(used)}.'
    if limits.pod is not None:
        used = sum(usage.values()) + sum(volumes.values())
        if used > limits.pod[0]:
            return (f"Pod ephemeral local storage usage exceeds the total limit of containers {limits.pod[1]}. "
                    f"Usage: {format_usage(used)}.")
    for name, (limit, text) in limits.containers.items():
        used = usage.get(name, 0)
        if used > limit:
            return (f'Container {name} exceeded its local ephemeral storage limit "{text}". '
                    f"Usage: {format_usage(used)}.")
    return None


def measure(limits: StorageLimits, paths: PodPaths) -> str | None:
    """Measure one pod and judge it (blocking: run in a thread)."""
    usage = {name: disk_usage(dirs) for name, dirs in paths.containers.items()}
    volumes = {name: disk_usage([path]) for name, path in paths.local_volumes.items()}
    return verdict(limits, usage, volumes)


class EphemeralStorageMonitor:
    """The periodic loop: which pods to measure comes from `pods()`, as (uid, pod, PodPaths);
    a verdict goes to `evict(uid, message)`."""

    def __init__(self, *, pods: Callable[[], list[tuple[str, dict[str, Any], PodPaths]]],
                 evict: Callable[[str, str], None], interval: float) -> None:
        self.pods = pods
        self.evict = evict
        self.interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:  # noqa: BLE001 - one bad round must not end the loop
                log.exception("ephemeral storage accounting failed; trying again next round")

    async def check(self) -> list[tuple[str, str]]:
        """One round; the (uid, message) evictions it asked for."""
        work = [(uid, limits, paths) for uid, pod, paths in self.pods() if (limits := limits_of(pod))]
        if not work:
            return []
        verdicts = await asyncio.to_thread(lambda: [(uid, measure(limits, paths)) for uid, limits, paths in work])
        evictions = [(uid, message) for uid, message in verdicts if message is not None]
        for uid, message in evictions:
            self.evict(uid, message)
        return evictions
