"""The agent's image garbage collector: the loop that keeps the image store's disk in bounds.

The store knows how to collect (agent/images/store.py `gc`, policy in agent/images/gc.py);
this module decides when, as the kubelet's image GC manager does: every few minutes it
looks at the disk holding the store, and when it is more than `high_percent` full it
removes unused images, least recently used first, until use is down to `low_percent`
(kubelet's `--image-gc-high-threshold` 85 / `--image-gc-low-threshold` 80).

"Used" means referenced by a pod bound to this node — running, starting or waiting —
so an image a pending pod is about to start is never collected under it. A pod being
deleted keeps its object (with a deletionTimestamp) until this agent has stopped its
containers, so their images stay in use until then too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable

from agent.images import ImageStore

log = logging.getLogger(__name__)


def images_of(pods: Iterable[dict[str, Any]]) -> set[str]:
    """Every image reference the pods' containers and init containers name."""
    refs: set[str] = set()
    for pod in pods:
        spec = pod.get("spec") or {}
        for container in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
            if container.get("image"):
                refs.add(container["image"])
    return refs


class ImageGarbageCollector:
    def __init__(self, images: ImageStore, pods: Callable[[], Iterable[dict[str, Any]]], *,
                 interval: float = 300.0, high_percent: int = 85, low_percent: int = 80):
        self.images = images
        self.pods = pods
        self.interval = interval
        self.high_percent = high_percent
        self.low_percent = low_percent

    async def collect(self) -> list[str]:
        """One pass; returns the digests of the images removed. The store's work (statvfs,
        deleting layer trees) is file-heavy, so it runs in a thread."""
        in_use = images_of(self.pods())
        return await asyncio.to_thread(self.images.gc, in_use=in_use, high_percent=self.high_percent,
                                       low_percent=self.low_percent)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                removed = await self.collect()
                if removed:
                    log.info("image GC: disk above %d%%, removed %d unused image(s)", self.high_percent,
                             len(removed))
            except Exception:   # a failed pass must not stop the agent; try again next interval
                log.exception("image GC pass failed")
