"""Keeping Python's cycle collector from pausing a long-running process for a tenth of a second.

The API server's watch caches hold every object of the cluster, and their recent history,
as trees of dicts and lists: hundreds of thousands of container objects that live
for a long time. A full (generation 2) collection walks all of them, and it runs
whenever the long-lived objects have grown by a quarter — measured at 30-130 ms
with a few thousand pods, stalling every request on the event loop for as long
(the p99 of the API bench's mixed load). The agent's service proxy is the same case on a
node: with 1,000 Services x 10 endpoints a full collection took 152 ms and a middle one
65 ms, with cluster DNS answering in the same loop (docs/PERFORMANCE.md, cluster DNS).

So after each full collection everything that survived it is frozen (`gc.freeze`):
later collections walk only what is newer. Frozen objects are still freed by
reference counting when dropped — the cached objects are trees, without cycles —
but a frozen object in a garbage cycle is not collected; to bound that, every
`unfreeze_every` seconds the frozen objects are handed back and the next full
collection walks everything once. (Instagram's recipe for its Python servers.)
"""

from __future__ import annotations

import gc
import time
from typing import Any

_installed = False


def install(*, unfreeze_every: float = 600.0) -> None:
    """Once per process; later calls do nothing."""
    global _installed
    if _installed:
        return
    _installed = True
    last_unfreeze = time.monotonic()

    def after_collection(phase: str, info: dict[str, Any]) -> None:
        nonlocal last_unfreeze
        if phase != "stop" or info.get("generation") != 2:
            return
        now = time.monotonic()
        if now - last_unfreeze >= unfreeze_every:
            gc.unfreeze()   # the next full collection sees everything again
            last_unfreeze = now
        else:
            gc.freeze()
    gc.callbacks.append(after_collection)
