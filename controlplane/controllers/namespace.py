"""The namespace controller: empties a namespace that is being deleted, then lets it go.

Deleting a Namespace only marks it: the API server sets status.phase
Terminating (and refuses new objects in it) and keeps it while
spec.finalizers still lists "kubernetes". For such a namespace, reconcile:

1. lists every namespaced kind (api.registry.all_resources) in it and deletes
   what it finds (background propagation; the garbage collector and the other
   controllers see the owners go);
2. requeues until a pass finds nothing left — pods may take their grace period,
   finalizers (foregroundDeletion, orphan) their garbage collector;
3. removes "kubernetes" from spec.finalizers; with no finalizer left the API
   server deletes the Namespace.

Pods bound to a node are deleted gracefully and finished by that node's agent.
If the node does not exist, or is not Ready (its agent is gone or unreachable),
no agent will ever finish them, and the namespace would hang in Terminating: such
pods are force-deleted (grace 0), as `ctl delete --force` would do. A pod on a
Ready node waits for its agent.
"""

from __future__ import annotations

import logging
from typing import Any

from api.registry import all_resources
from controlplane.client import ApiError, NotFound
from controlplane.client.informer import Informer
from controlplane.controllers.controllerref import is_deleting
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
FINALIZER = "kubernetes"
POLL_SECONDS = 1.0   # look again this often while objects are still going away


def is_terminating(ns: Obj) -> bool:
    return (ns.get("status") or {}).get("phase") == "Terminating" or is_deleting(ns)


def node_is_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class NamespaceController(QueueController):
    def __init__(self, settings: ControllerSettings | None = None, *, only: str = ""):
        settings = settings or ControllerSettings()
        super().__init__(name="namespace", workers=settings.workers)
        self.only = only   # "" handles every namespace; tests narrow it to their own

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.client = ctx.client
        self.namespaces: Informer = ctx.informers.get("Namespace")
        self.namespaces.add_handlers(on_add=self._changed, on_update=lambda old, new: self._changed(new))

    def _changed(self, ns: Obj) -> None:
        name = (ns.get("metadata") or {}).get("name") or ""
        if is_terminating(ns) and (not self.only or name == self.only):
            self.queue.add(name)

    async def reconcile(self, name: str) -> float | None:
        ns = self.namespaces.get("", name)
        if ns is None or not is_terminating(ns):
            return None
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return None
        # Two passes when the first one finished everything at once, so that an object created
        # just before the namespace turned Terminating is not missed.
        for _ in range(2):
            remaining = await self._delete_contents(name)
            if remaining:
                return POLL_SECONDS
            if not await self._anything_left(name):
                await self._finalize(name)
                return None
        return POLL_SECONDS

    async def _anything_left(self, namespace: str) -> bool:
        for info in all_resources():
            if info.namespaced and (await self.client.list(info.kind, namespace)).items:
                return True
        return False

    async def _delete_contents(self, namespace: str) -> int:
        """Delete everything in the namespace; how many objects are still on their way out."""
        remaining = 0
        nodes: dict[str, bool] = {}
        for info in all_resources():
            if not info.namespaced:
                continue
            for obj in (await self.client.list(info.kind, namespace)).items:
                name = obj["metadata"]["name"]
                grace: int | None = None
                if info.kind == "Pod" and not await self._agent_can_finish(obj, nodes):
                    grace = 0
                elif is_deleting(obj):
                    remaining += 1
                    continue
                try:
                    _, finished = await self.client.delete(info.kind, name, namespace, grace_seconds=grace)
                except NotFound:
                    continue
                except ApiError as exc:
                    log.warning("namespace %s: cannot delete %s %s: %s", namespace, info.kind, name, exc.message)
                    finished = False
                if not finished:
                    remaining += 1
        return remaining

    async def _agent_can_finish(self, pod: Obj, nodes: dict[str, bool]) -> bool:
        """True unless the pod is bound to a node that is missing or not Ready."""
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return True   # the API server deletes these at once anyway
        if node_name not in nodes:
            try:
                nodes[node_name] = node_is_ready(await self.client.get("Node", node_name))
            except NotFound:
                nodes[node_name] = False
        if not nodes[node_name]:
            log.info("namespace controller: force-deleting pod %s/%s: node %s is missing or not Ready",
                     pod["metadata"].get("namespace"), pod["metadata"]["name"], node_name)
        return nodes[node_name]

    async def _finalize(self, name: str) -> None:
        try:
            fresh = await self.client.get("Namespace", name)
        except NotFound:
            return
        spec = dict(fresh.get("spec") or {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != FINALIZER]
        fresh["spec"] = spec
        await self.client.update(fresh)
        log.info("namespace %s is empty; removed finalizer %s", name, FINALIZER)
