"""A rate-limited work queue, as controllers use it (client-go's workqueue, in asyncio).

- **Dedup**: a key added many times before a worker takes it is processed once.
- **One worker per key**: a key being processed is not handed to another worker;
  if it is added meanwhile, it is queued again when the first worker is `done`.
- **Delayed requeue**: `add_after(key, seconds)`; `add_rate_limited(key)` backs off
  exponentially per key (base doubling to max) until `forget(key)`.

The clock is injectable (`loop.time` by default) only through asyncio's own timers,
so tests can use small delays.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
log = logging.getLogger(__name__)


class ShutDown(Exception):
    pass


class WorkQueue(Generic[K]):
    def __init__(self, *, name: str = "queue", base_delay: float = 0.005, max_delay: float = 60.0):
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: asyncio.Queue[K | _Stop] = asyncio.Queue()
        self._dirty: set[K] = set()        # waiting to be processed
        self._processing: set[K] = set()   # held by a worker now
        self._failures: dict[K, int] = {}
        self._waiting: dict[K, asyncio.TimerHandle] = {}
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._dirty)

    def add(self, key: K) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again when its worker calls done()
        self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        existing = self._waiting.get(key)
        when = loop.time() + delay
        if existing is not None:
            if existing.when() <= when:
                return  # already due sooner
            existing.cancel()

        def fire() -> None:
            self._waiting.pop(key, None)
            self.add(key)
        self._waiting[key] = loop.call_at(when, fire)

    def add_rate_limited(self, key: K) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self.base_delay * (2 ** failures), self.max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> K:
        key = await self._queue.get()
        if isinstance(key, _Stop):
            self._queue.put_nowait(key)  # wake the next worker too
            raise ShutDown(self.name)
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutdown:
            self._queue.put_nowait(key)

    async def shut_down(self) -> None:
        self._shutdown = True
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        self._queue.put_nowait(_Stop())


class _Stop:
    """Sentinel telling workers the queue is shut down."""


async def run_workers(queue: WorkQueue[K], reconcile: Callable[[K], Awaitable[Any]], *, workers: int = 1) -> None:
    """Run `workers` loops: take a key, reconcile it, then finish, requeue or back off.

    reconcile returns None when done, or a number of seconds after which to look
    again; an exception is logged and retried with per-key backoff.
    """
    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                requeue_after = await reconcile(key)
                queue.forget(key)
                if requeue_after is not None:
                    queue.add_after(key, float(requeue_after))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = queue.add_rate_limited(key)
                log.warning("%s: reconciling %s failed (%s: %s); retrying in %.2fs", queue.name, key,
                            type(exc).__name__, exc, delay)
            finally:
                queue.done(key)

    await asyncio.gather(*(worker() for _ in range(workers)))
