"""Image garbage collection policy, as the kubelet's image GC manager does it.

When the disk holding the store is more than `high_percent` full, unused
images are removed, least recently used first, until enough is freed to bring
use down to `low_percent`. An image counts as freed space only for the layers
no remaining image shares. This module only plans; store.py deletes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from agent.images.catalog import ImageRecord


@dataclass(frozen=True)
class DiskUsage:
    total: int
    used: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.total if self.total else 0.0


def disk_usage(path: Path) -> DiskUsage:
    """Use of the filesystem holding `path`, as df shows it."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    return DiskUsage(total=total, used=total - st.f_bavail * st.f_frsize)


def check_thresholds(high_percent: int, low_percent: int) -> None:
    if not (0 <= low_percent <= high_percent <= 100):
        raise ValueError(f"image GC thresholds: need 0 <= low_percent ({low_percent}) <= "
                         f"high_percent ({high_percent}) <= 100")


def bytes_to_free(usage: DiskUsage, *, high_percent: int, low_percent: int) -> int:
    """0 below the high threshold, else what brings use down to the low one."""
    check_thresholds(high_percent, low_percent)
    if usage.percent < high_percent:
        return 0
    return max(0, usage.used - usage.total * low_percent // 100)


def plan(records: Iterable[ImageRecord], *, in_use: set[str], layer_sizes: dict[str, int],
         amount: int) -> list[str]:
    """Digests of the unused images to remove, oldest use first, until `amount` bytes are freed."""
    remaining = {r.digest: r for r in records}
    candidates = sorted((r for r in remaining.values() if r.digest not in in_use),
                        key=lambda r: (r.last_used, r.digest))
    chosen: list[str] = []
    freed = 0
    for record in candidates:
        if freed >= amount:
            break
        del remaining[record.digest]
        still_used = {d for r in remaining.values() for d in r.diff_ids}
        freed += sum(layer_sizes.get(d, 0) for d in set(record.diff_ids) - still_used)
        chosen.append(record.digest)
    return chosen
