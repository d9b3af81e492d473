"""The StatefulSet controller: pods with stable names and claims, made and updated in order.

Events become keys (namespace, name) of StatefulSets: a StatefulSet changed, or one of
its pods or ControllerRevisions did (found through the controller ownerReference).

A reconcile asks statefulset_plan.plan() what to do on the current snapshot and does
it, in this order: the ControllerRevision of the current template (created, or
renumbered on a rollback), the claims of every wanted ordinal (created if missing,
never deleted), pod deletions, pod creations, the status, and old revisions past
revisionHistoryLimit. While its own pod creations and deletions are not yet in the
cache (owned.Expectations) it only writes status, so it never acts twice on one gap.

Pods are found by ownerReference only (Kubernetes also adopts orphans that match the
selector and have the right name; we leave that out, as the DaemonSet controller does).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from controlplane.client import AlreadyExists, ApiError, Conflict, NotFound
from controlplane.client.events import NORMAL, WARNING
from controlplane.controllers.manager import Context
from controlplane.controllers.owned import (
    POD_BY_CONTROLLER,
    controller_of,
)
from controlplane.controllers.podcontrol import PodOwnerController, delete_pods
from controlplane.controllers.settings import ControllerSettings
from controlplane.controllers.statefulset_plan import plan, revisions_to_prune

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
REVISION_BY_OWNER = "revision-by-owner-uid"


def _owner_uid(obj: Obj) -> list[str]:
    ref = controller_of(obj)
    return [ref["uid"]] if ref and ref.get("uid") else []


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class StatefulSetController(PodOwnerController):
    owner_kind = "StatefulSet"

    def __init__(self, settings: ControllerSettings | None = None, *, clock: Callable[[], float] = time.time):
        super().__init__("statefulset", settings, clock=clock)

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.sets = ctx.informers.get("StatefulSet")
        self.claims = ctx.informers.get("PersistentVolumeClaim")
        self.revisions = ctx.informers.get("ControllerRevision")
        self.revisions.add_index(REVISION_BY_OWNER, _owner_uid)
        self.sets.add_handlers(on_add=self._set_event, on_update=lambda _o, new: self._set_event(new),
                               on_delete=self._set_event)
        self.revisions.add_handlers(on_add=self._owned_event, on_update=lambda _o, new: self._owned_event(new),
                                    on_delete=self._owned_event)
        self.claims.add_handlers(on_delete=self._claim_deleted)

    # -- events -> keys --------------------------------------------------------------------

    def _set_event(self, sts: Obj) -> None:
        self.queue.add((sts["metadata"].get("namespace", ""), sts["metadata"]["name"]))

    def _owned_event(self, obj: Obj) -> None:
        if (key := self.pod_events.owner_key(obj)) is not None:
            self.queue.add(key)

    def _claim_deleted(self, claim: Obj) -> None:
        namespace = claim["metadata"].get("namespace", "")
        for sts in self.sets.store.values():
            if sts["metadata"].get("namespace", "") == namespace:
                self._set_event(sts)

    # -- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        return await self.retry_on_conflict(key, self._reconcile)

    async def _reconcile(self, key: Key) -> float | None:
        namespace, name = key
        sts = self.sets.get(namespace, name)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            self.expectations.forget(key)
            return None
        uid = sts["metadata"]["uid"]
        pods = [p for p in self.pods.by_index(POD_BY_CONTROLLER, uid) if p["metadata"].get("namespace") == namespace]
        revisions = [r for r in self.revisions.by_index(REVISION_BY_OWNER, uid)
                     if r["metadata"].get("namespace") == namespace]
        claims = {c["metadata"]["name"]: c for c in self.claims.store.values()
                  if c["metadata"].get("namespace") == namespace}
        todo = plan(sts, pods, claims, revisions, now=self.clock())
        if todo.revision is not None:
            await self._save_revision(todo.revision, exists=todo.revision_exists)
        if self.expectations.satisfied(key):
            for claim in todo.claims:
                await self._create_claim(sts, claim)
            await delete_pods(self.ctx, sts, key, self.expectations, todo.delete,
                              message=lambda pod: f"delete Pod {pod} in StatefulSet {name} successful")
            await self._create(sts, key, todo.create)
        await self._write_status(sts, todo.status)
        for revision in revisions_to_prune(sts, revisions, pods, todo.status):
            try:
                await self.ctx.client.delete("controllerrevisions", revision["metadata"]["name"], namespace)
            except NotFound:
                pass
        return todo.requeue_after

    async def _save_revision(self, revision: Obj, *, exists: bool) -> None:
        try:
            if exists:
                await self.ctx.client.update(revision)
            else:
                await self.ctx.client.create(revision)
        except AlreadyExists:
            raise Conflict("ControllerRevision exists already; the cache is behind") from None

    async def _create_claim(self, sts: Obj, claim: Obj) -> None:
        meta = claim["metadata"]
        pod = meta["name"].split("-", 1)[-1]
        try:
            await self.ctx.client.create(claim)
            self.ctx.recorder.event(sts, NORMAL, "SuccessfulCreate",
                                    f"create Claim {meta['name']} Pod {pod} in StatefulSet "
                                    f"{sts['metadata']['name']} success")
        except AlreadyExists:
            pass
        except ApiError as exc:
            self.ctx.recorder.event(sts, WARNING, "FailedCreate",
                                    f"create Claim {meta['name']} for Pod {pod} in StatefulSet "
                                    f"{sts['metadata']['name']} failed error: {exc.message}")
            raise

    async def _create(self, sts: Obj, key: Key, pods: list[Obj]) -> None:
        for pod in pods:
            name = pod["metadata"]["name"]
            self.expectations.expect_creations(key, 1)
            try:
                await self.ctx.client.create(pod)
                self.ctx.recorder.event(sts, NORMAL, "SuccessfulCreate",
                                        f"create Pod {name} in StatefulSet {sts['metadata']['name']} successful")
            except AlreadyExists:
                self.expectations.creation_failed(key)     # still terminating, or the cache is behind
            except ApiError as exc:
                self.expectations.creation_failed(key)
                self.ctx.recorder.event(sts, WARNING, "FailedCreate",
                                        f"create Pod {name} in StatefulSet {sts['metadata']['name']} failed "
                                        f"error: {exc.message}")
                raise

    async def _write_status(self, sts: Obj, status: dict[str, Any]) -> None:
        current = sts.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        try:
            await self.ctx.client.update_status({**sts, "status": {**current, **status}})
        except NotFound:
            pass
