"""One serial worker per pod.

A pod's syncs never overlap: each pod has a task that waits for a trigger (the
pod changed, a container exited, a probe flipped, a timer fired) and then runs
one sync. Triggers that arrive during a sync coalesce into one more sync.
Different pods sync in parallel. When sync answers DONE (the pod is gone and
cleaned up), the worker ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from api.tasks import cancel_and_wait

log = logging.getLogger(__name__)
DONE = "done"


class PodWorkers:
    def __init__(self, sync: Callable[[str], Awaitable[float | str | None]], *, resync_seconds: float = 10.0):
        self.sync = sync
        self.resync_seconds = resync_seconds
        self._events: dict[str, asyncio.Event] = {}
        self._tasks: dict[str, asyncio.Task] = {}

    def trigger(self, uid: str) -> None:
        event = self._events.get(uid)
        if event is None:
            event = self._events[uid] = asyncio.Event()
            self._tasks[uid] = asyncio.get_running_loop().create_task(self._work(uid, event), name=f"pod-{uid}")
        event.set()

    @property
    def uids(self) -> list[str]:
        return list(self._events)

    async def _work(self, uid: str, event: asyncio.Event) -> None:
        timeout: float | None = None
        try:
            while True:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
                # arrives as the event is set, and stop() then waits for a worker that never ends.
                try:
                    async with asyncio.timeout(timeout if timeout is not None else self.resync_seconds):
                        await event.wait()
                except TimeoutError:
                    pass
                event.clear()
                try:
                    result = await self.sync(uid)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("sync of pod %s failed; retrying", uid)
                    result = 2.0
                if result == DONE:
                    return
                timeout = float(result) if isinstance(result, (int, float)) else None
        finally:
            if self._events.get(uid) is event:
                del self._events[uid]
                self._tasks.pop(uid, None)

    async def stop(self) -> None:
        await cancel_and_wait(list(self._tasks.values()))
