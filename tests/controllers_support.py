"""Helpers for the controller integration tests (test_controllers_*.py).

The session API server runs without scheduler, controllers or agents, so a
test runs the controllers it needs in-process (`running`), narrowed to its
own namespace, and plays the agent itself: `FakeKubelet` marks the pods of the
namespace Running and Ready a moment after they appear, as an agent would
once their containers run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, AsyncIterator, Awaitable, Callable

from controlplane.client import ApiError, Client, Conflict
from controlplane.client.informer import Informer
from controlplane.controllers.manager import Manager

Obj = dict[str, Any]


def stamp(moment: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if moment is None else moment))


def template(labels: dict[str, str], image: str = "busybox:1") -> Obj:
    return {"metadata": {"labels": dict(labels)},
            "spec": {"containers": [{"name": "main", "image": image, "command": ["sleep", "3600"]}]}}


def replicaset(name: str, namespace: str, *, replicas: int, labels: dict[str, str] | None = None,
               min_ready: int = 0) -> Obj:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready, "selector": {"matchLabels": labels},
                     "template": template(labels)}}


def deployment(name: str, namespace: str, *, replicas: int, image: str = "busybox:1",
               strategy: Obj | None = None, history: int | None = None) -> Obj:
    labels = {"app": name}
    spec: Obj = {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template(labels, image)}
    if strategy is not None:
        spec["strategy"] = strategy
    if history is not None:
        spec["revisionHistoryLimit"] = history
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def pod(name: str, namespace: str, labels: dict[str, str], **meta: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels,
                                                            **meta},
            "spec": {"containers": [{"name": "main", "image": "busybox:1"}]}}


def is_ready(p: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (p.get("status") or {}).get("conditions") or [])


def ready_status(p: Obj, *, since: float | None = None) -> Obj:
    """The status an agent reports for a pod whose containers run and pass readiness."""
    now = stamp(since)
    containers = (p.get("spec") or {}).get("containers") or []
    return {**(p.get("status") or {}), "phase": "Running", "startTime": now,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": c["name"], "image": c["image"], "ready": True, "restartCount": 0,
                                   "started": True, "state": {"running": {"startedAt": now}}} for c in containers]}


async def mark_ready(client: Client, p: Obj, *, since: float | None = None) -> Obj:
    return await client.update_status({**p, "status": ready_status(p, since=since)})


async def until(condition: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, message: str = "") -> Any:
    """Poll an async condition until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = await condition()
        if result:
            return result
        assert time.monotonic() < deadline, message or "condition not met before the deadline"
        await asyncio.sleep(0.05)


async def modify(client: Client, kind: str, name: str, namespace: str, change: Callable[[Obj], None]) -> Obj:
    """Read, change, write; again if a controller wrote in between (Conflict)."""
    for _ in range(20):
        obj = await client.get(kind, name, namespace)
        change(obj)
        try:
            return await client.update(obj)
        except Conflict:
            await asyncio.sleep(0.01)
    raise AssertionError(f"{kind} {name} kept changing")


def set_replicas(n: int) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        obj["spec"]["replicas"] = n
    return change


async def pods_of(client: Client, namespace: str, selector: str = "") -> list[Obj]:
    return (await client.list("Pod", namespace, label_selector=selector)).items


@contextlib.asynccontextmanager
async def running(client: Client, *controllers: Any) -> AsyncIterator[Manager]:
    """Run controllers (already narrowed to the test's namespace) until the block ends."""
    manager = Manager(client, list(controllers))
    task = asyncio.create_task(manager.run(), name="test-controllers")
    try:
        yield manager
    finally:
        await manager.ctx.recorder.flush(2.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await manager.ctx.recorder.flush(2.0)


class FakeKubelet:
    """Plays the agents: pods of the namespace become Running and Ready `delay` seconds after
    they are first seen, unless `hold(pod)` says to keep them unready."""

    def __init__(self, client: Client, namespace: str, *, delay: float = 0.2,
                 hold: Callable[[Obj], bool] = lambda _pod: False):
        self.client = client
        self.namespace = namespace
        self.delay = delay
        self.hold = hold
        self.informer = Informer(client, "Pod", namespace=namespace)
        self.first_seen: dict[str, float] = {}
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> "FakeKubelet":
        self._tasks = [asyncio.create_task(self.informer.run(), name="kubelet-informer"),
                       asyncio.create_task(self._loop(), name="kubelet")]
        await self.informer.wait_synced()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            now = time.monotonic()
            for p in self.informer.list(self.namespace):
                uid = p["metadata"]["uid"]
                self.first_seen.setdefault(uid, now)
                if is_ready(p) or p["metadata"].get("deletionTimestamp") or self.hold(p):
                    continue
                if now - self.first_seen[uid] >= self.delay:
                    try:
                        await mark_ready(self.client, p)
                    except ApiError:
                        pass  # changed or gone meanwhile: the next round sees the new state
            await asyncio.sleep(0.03)
