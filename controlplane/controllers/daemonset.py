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

import logging
import time
from typing import Any, Callable

from controlplane.client import NotFound
from controlplane.controllers.daemonset_plan import new_pod, plan
from controlplane.controllers.manager import Context
from controlplane.controllers.owned import POD_BY_CONTROLLER
from controlplane.controllers.podcontrol import PodOwnerController, create_pods, delete_pods
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]


def _node_facts(node: Obj) -> tuple:
    """What about a node can change where daemon pods belong."""
    spec = node.get("spec") or {}
    ready = [c.get("status") for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
    return ((node.get("metadata") or {}).get("labels"), spec.get("taints"), spec.get("unschedulable"), ready)


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class DaemonSetController(PodOwnerController):
    owner_kind = "DaemonSet"

    def __init__(self, settings: ControllerSettings | None = None, *, clock: Callable[[], float] = time.time):
        super().__init__("daemonset", settings, clock=clock)

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.daemonsets = ctx.informers.get("DaemonSet")
        self.nodes = ctx.informers.get("Node")
        self.daemonsets.add_handlers(on_add=self._ds_event, on_update=lambda _o, new: self._ds_event(new),
                                     on_delete=self._ds_event)
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
        return await self.retry_on_conflict(key, self._reconcile)

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
            await delete_pods(self.ctx, ds, key, self.expectations, todo.force_delete, grace=0)
            await delete_pods(self.ctx, ds, key, self.expectations, todo.delete)
            await create_pods(self.ctx, ds, key, self.expectations, [new_pod(ds, n) for n in todo.create],
                              what="daemon pods")
        await self._write_status(ds, todo.status)
        return todo.requeue_after

    async def _write_status(self, ds: Obj, status: dict[str, Any]) -> None:
        current = ds.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        try:
            await self.ctx.client.update_status({**ds, "status": {**current, **status}})
        except NotFound:
            pass  # deleted meanwhile
