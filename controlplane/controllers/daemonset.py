"""The DaemonSet controller: one pod on every eligible node, following nodes as they come and go.

Events become keys (namespace, name) of DaemonSets: a DaemonSet changed; one
of its pods changed (found through the pod's controller ownerReference); or a
node joined, left, or changed what decides eligibility (labels, taints,
cordon, readiness) — then every DaemonSet is looked at again.

A reconcile asks daemonset_plan.plan() what to do on the current snapshot and
does it: creates pods (placed through a required node affinity on the node's
name; the scheduler binds them), deletes pods (gracefully; with grace 0 when
their node is gone, since no agent will finish them), and writes the status.
While its own creations and deletions are not yet visible in the cache
(owned.Expectations) it only writes status, so it never creates twice.

Pods are only ever matched by ownerReference, not adopted by label: a pod the
controller did not create is not its business (Kubernetes also adopts orphans
matching the selector; we leave that out).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from controlplane.client import ApiError, Conflict, NotFound
from controlplane.client.events import NORMAL, WARNING
from controlplane.controllers.daemonset_plan import new_pod, plan
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.owned import POD_BY_CONTROLLER, Expectations, OwnedPodEvents, add_pod_indexes
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
CONFLICT_RETRY_SECONDS = 0.05
Obj = dict[str, Any]
Key = tuple[str, str]
CREATE_BURST = 16  # creations in flight at once per DaemonSet


def _node_facts(node: Obj) -> tuple:
    """What about a node can change where daemon pods belong."""
    spec = node.get("spec") or {}
    ready = [c.get("status") for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
    return ((node.get("metadata") or {}).get("labels"), spec.get("taints"), spec.get("unschedulable"), ready)


class DaemonSetController(QueueController):
    def __init__(self, settings: ControllerSettings | None = None, *, clock: Callable[[], float] = time.time):
        super().__init__(name="daemonset")
        self.settings = settings or ControllerSettings()
        self.workers = self.settings.workers
        self.clock = clock
        self.expectations = Expectations()

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.daemonsets = ctx.informers.get("DaemonSet")
        self.nodes = ctx.informers.get("Node")
        self.pods = ctx.informers.get("Pod")
        add_pod_indexes(self.pods)
        self.daemonsets.add_handlers(on_add=self._ds_event, on_update=lambda _o, new: self._ds_event(new),
                                     on_delete=self._ds_event)
        OwnedPodEvents("DaemonSet", self.queue.add, self.expectations).register(self.pods)
        self.nodes.add_handlers(on_add=lambda _n: self._all(), on_delete=lambda _n: self._all(),
                                on_update=lambda old, new: _node_facts(old) != _node_facts(new) and self._all())

    # -- events -> keys --------------------------------------------------------------------

    def _ds_event(self, ds: Obj) -> None:
        self.queue.add((ds["metadata"].get("namespace", ""), ds["metadata"]["name"]))

    def _all(self) -> None:
        for ds in self.daemonsets.store.values():
            self._ds_event(ds)

    # -- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        try:
            return await self._reconcile(key)
        except Conflict:
            # Our cache has not caught up with a write (often our own): look again shortly.
            log.debug("%s: %s changed meanwhile; retrying", self.name, key)
            return CONFLICT_RETRY_SECONDS

    async def _reconcile(self, key: Key) -> float | None:
        namespace, name = key
        ds = self.daemonsets.get(namespace, name)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            self.expectations.forget(key)
            return None
        pods = [p for p in self.pods.by_index(POD_BY_CONTROLLER, ds["metadata"]["uid"])
                if p["metadata"].get("namespace") == namespace]
        todo = plan(ds, list(self.nodes.store.values()), pods, now=self.clock())
        if self.expectations.satisfied(key):
            await self._delete(ds, key, todo.force_delete, grace=0)
            await self._delete(ds, key, todo.delete, grace=None)
            await self._create(ds, key, todo.create)
        await self._write_status(ds, todo.status)
        return todo.requeue_after

    async def _create(self, ds: Obj, key: Key, node_names: list[str]) -> None:
        if not node_names:
            return
        self.expectations.expect_creations(key, len(node_names))
        limit = asyncio.Semaphore(CREATE_BURST)
        failures: list[str] = []

        async def one(node_name: str) -> None:
            async with limit:
                try:
                    created = await self.ctx.client.create(new_pod(ds, node_name))
                    self.ctx.recorder.event(ds, NORMAL, "SuccessfulCreate",
                                            f"Created pod: {created['metadata']['name']}")
                except ApiError as exc:
                    self.expectations.creation_failed(key)
                    failures.append(exc.message)
                    self.ctx.recorder.event(ds, WARNING, "FailedCreate", f"Error creating: {exc.message}")
        await asyncio.gather(*(one(n) for n in node_names))
        if failures:
            raise RuntimeError(f"{len(failures)} of {len(node_names)} daemon pods not created: {failures[0]}")

    async def _delete(self, ds: Obj, key: Key, pods: list[Obj], *, grace: int | None) -> None:
        for pod in pods:
            meta = pod["metadata"]
            self.expectations.expect_deletion(key, meta.get("uid", ""))
            try:
                await self.ctx.client.delete("pods", meta["name"], meta.get("namespace", ""), grace_seconds=grace)
                self.ctx.recorder.event(ds, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")
            except NotFound:
                self.expectations.deletion_observed(key, meta.get("uid", ""))

    async def _write_status(self, ds: Obj, status: dict[str, Any]) -> None:
        current = ds.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        try:
            await self.ctx.client.update_status({**ds, "status": {**current, **status}})
        except NotFound:
            pass  # deleted meanwhile
