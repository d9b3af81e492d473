"""Running controllers together: shared informers, one context, orderly start and stop.

`SharedInformers` keeps one informer per (kind, namespace, selectors) for the whole
process, so five controllers that all look at pods hold one pods cache and one
watch. `QueueController` is the base of most controllers: a work queue of keys,
`reconcile(key)` to implement, and N workers. The `Manager` sets every
controller up, starts the informers, waits until their caches are synced, then
runs the controllers' workers until cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Hashable, Protocol

from api.registry import lookup
from api.tasks import run_together
from controlplane.client import Client, Conflict
from controlplane.client.events import EventRecorder
from controlplane.client.informer import Informer
from controlplane.client.workqueue import WorkQueue, run_workers

log = logging.getLogger(__name__)
CONFLICT_RETRY_SECONDS = 0.05  # QueueController.retry_on_conflict: look again this soon


class SharedInformers:
    def __init__(self, client: Client):
        self.client = client
        self._informers: dict[tuple[str, str, str, str], Informer] = {}
        self._tasks: list[asyncio.Task] = []
        self.started = False

    def get(self, kind: str, *, namespace: str = "", label_selector: str = "", field_selector: str = "") -> Informer:
        # "Node", "nodes" and "no" are one informer: key on the plural the registry knows.
        try:
            kind = lookup(kind).plural
        except Exception:
            pass    # not a registered kind: the informer's first list reports it
        key = (kind, namespace, label_selector, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, kind, namespace=namespace, label_selector=label_selector,
                                field_selector=field_selector)
            self._informers[key] = informer
            if self.started:
                self._start(informer)
        return informer

    def _start(self, informer: Informer) -> None:
        task = asyncio.get_running_loop().create_task(informer.run(), name=f"informer-{informer.kind}")
        task.add_done_callback(_log_failure)
        self._tasks.append(task)

    async def start(self, timeout: float = 60.0) -> None:
        self.started = True
        for informer in self._informers.values():
            self._start(informer)
        await asyncio.gather(*(i.wait_synced(timeout) for i in self._informers.values()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())


@dataclass
class Context:
    """What every controller gets: the client, shared informers, an event recorder, settings."""

    client: Client
    informers: SharedInformers
    recorder: EventRecorder
    settings: Any = None


class Controller(Protocol):
    name: str

    def setup(self, ctx: Context) -> None:
        """Get informers and register handlers (before the informers start)."""

    async def run(self) -> None:
        """Run until cancelled (after the caches have synced)."""


@dataclass
class QueueController:
    """Base for controllers with a work queue of keys and a reconcile function."""

    name: str = "controller"
    workers: int = 2
    queue: WorkQueue = field(default_factory=WorkQueue)
    ctx: Context | None = None

    def setup(self, ctx: Context) -> None:
        self.ctx = ctx
        self.queue = WorkQueue(name=self.name)

    async def reconcile(self, key: Hashable) -> float | None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def retry_on_conflict(self, key: Any, sync: Callable[[Any], Awaitable[float | None]]) -> float | None:
        """`sync(key)`, but a Conflict (our cache has not caught up with a write, often our own) means
        look again shortly rather than an error with backoff."""
        try:
            return await sync(key)
        except Conflict:
            log.debug("%s: %s changed meanwhile; retrying", self.name, key)
            return CONFLICT_RETRY_SECONDS

    async def run(self) -> None:
        try:
            await run_workers(self.queue, self.reconcile, workers=self.workers)
        finally:
            await self.queue.shut_down()


class Manager:
    def __init__(self, client: Client, controllers: list[Controller], *, settings: Any = None,
                 component: str = "controller-manager"):
        self.ctx = Context(client=client, informers=SharedInformers(client),
                           recorder=EventRecorder(client, component=component), settings=settings)
        self.controllers = controllers

    async def run(self) -> None:
        for controller in self.controllers:
            controller.setup(self.ctx)
        await self.ctx.informers.start()
        log.info("caches synced; starting %s", ", ".join(c.name for c in self.controllers))
        tasks = [asyncio.create_task(_named(c.name, c.run), name=c.name) for c in self.controllers]
        try:
            await run_together(tasks)
        finally:
            await self.ctx.informers.stop()


async def _named(name: str, fn: Callable[[], Awaitable[None]]) -> None:
    try:
        await fn()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("controller %s crashed", name)
        raise
