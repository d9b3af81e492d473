"""Helpers for integration tests that run controllers against hollow nodes in the test's event loop.

- `private_control_plane`: a real `skiff-controlplane` (API only) on the session
  etcd with its own key prefix, so node-wide controllers (node lifecycle,
  DaemonSet) see only this module's nodes, not nodes other tests left behind.
- `hollow_nodes`: a HollowCluster running for the duration of a `with` block,
  whose Nodes and Leases are deleted afterwards.
- `controllers`: a controller Manager running in the background.
- `scheduling`: the real scheduler (controlplane/scheduler) when it can be
  imported; otherwise `SimpleBinder`, a first-fit binder that honours what the
  tests rely on (nodeSelector, required node affinity incl. matchFields, taints,
  cordoned nodes) and lets the API server's Bind refuse full nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

from agent.hollow import HollowCluster
from api.affinity import NodeSelector
from controlplane.client import ApiError, Client, Conflict, FailedPrecondition, NotFound
from controlplane.client.informer import Informer
from controlplane.controllers.manager import Manager
from controlplane.controllers.settings import ControllerSettings
from api.taints import scheduling_taints, untolerated

log = logging.getLogger(__name__)


def private_control_plane(tmp: Path, etcd_endpoint: str, *extra: str) -> Any:
    from procs import ControlPlane
    return ControlPlane(tmp, etcd_endpoints=etcd_endpoint,
                        extra_args=["--etcd-prefix", f"/hollow-{uuid.uuid4().hex[:8]}", "--no-scheduler",
                                    "--no-controllers", *extra]).start()


async def until(condition: Callable[[], Any], *, timeout: float = 20.0, what: str = "condition",
                interval: float = 0.05) -> Any:
    """Poll a (sync or async) condition until truthy; fail with `what` after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        last = value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")
        await asyncio.sleep(interval)


async def modify(client: Client, kind: str, name: str, namespace: str,
                 change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read, change, update; again on Conflict (controllers write status meanwhile)."""
    for _ in range(20):
        obj = await client.get(kind, name, namespace)
        change(obj)
        try:
            return await client.update(obj)
        except Conflict:
            continue
    raise AssertionError(f"{kind} {name} kept changing")


@contextlib.asynccontextmanager
async def hollow_nodes(client: Client, count: int, **options: Any) -> AsyncIterator[HollowCluster]:
    cluster = HollowCluster(client, count, **options)
    task = asyncio.create_task(cluster.run(), name="hollow-cluster")
    try:
        await asyncio.wait({task, asyncio.create_task(cluster.registered.wait())}, timeout=60,
                           return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        assert cluster.registered.is_set(), "hollow nodes did not register within 60s"
        yield cluster
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await cluster.deregister()


@contextlib.asynccontextmanager
async def background(*coros: Awaitable[Any]) -> AsyncIterator[list[asyncio.Task]]:
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, asyncio.CancelledError):
                log.error("background task failed: %r", result)


@contextlib.asynccontextmanager
async def controllers(client: Client, items: list[Any], settings: ControllerSettings) -> AsyncIterator[Manager]:
    manager = Manager(client, items, settings=settings)
    async with background(manager.run()) as (task,):
        await until(lambda: task.done() or manager.ctx.informers.started and all(
            i.synced.is_set() for i in manager.ctx.informers._informers.values()), what="controller caches")
        if task.done():
            task.result()
        yield manager


def real_scheduler(client: Client) -> Any | None:
    try:
        from controlplane.scheduler.config import load_config
        from controlplane.scheduler.scheduler import Scheduler
    except ImportError:
        return None
    return Scheduler(client, load_config(None))


@contextlib.asynccontextmanager
async def scheduling(client: Client) -> AsyncIterator[Any]:
    scheduler = real_scheduler(client) or SimpleBinder(client)
    async with background(scheduler.run()):
        yield scheduler


class SimpleBinder:
    """First-fit binding for tests, used only when controlplane/scheduler is not importable."""

    def __init__(self, client: Client):
        self.client = client
        self.pods = Informer(client, "pods", field_selector="spec.nodeName=")
        self.nodes = Informer(client, "nodes")

    def feasible(self, pod: dict[str, Any], node: dict[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
            return False
        required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                    .get("requiredDuringSchedulingIgnoredDuringExecution"))
        if required and not NodeSelector.model_validate(required).matches(labels, node["metadata"]["name"]):
            return False
        return not untolerated(scheduling_taints(node), spec.get("tolerations"))

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.pods.run()), asyncio.create_task(self.nodes.run())]
        try:
            await self.pods.wait_synced()
            await self.nodes.wait_synced()
            turn = 0
            while True:
                for pod in list(self.pods.store.values()):
                    if pod["metadata"].get("deletionTimestamp"):
                        continue
                    nodes = sorted(self.nodes.store.values(), key=lambda n: n["metadata"]["name"])
                    turn += 1
                    nodes = nodes[turn % len(nodes):] + nodes[:turn % len(nodes)] if nodes else []
                    for node in nodes:
                        if not self.feasible(pod, node):
                            continue
                        try:
                            await self.client.bind(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                                   node["metadata"]["name"], uid=pod["metadata"]["uid"])
                            break
                        except FailedPrecondition:
                            continue
                        except (Conflict, NotFound):
                            break
                        except ApiError as exc:
                            log.warning("bind failed: %s", exc.message)
                            break
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
