"""The garbage collector: deletes what lost its owner, and carries out cascading deletion.

Objects name their owners in metadata.ownerReferences (a ReplicaSet's pods, a
Deployment's ReplicaSets). The API server only marks; this controller does the
cascade, for the three propagation policies of a delete:

- Background (the default): the owner disappears at once. Its dependents now
  point at an owner that does not exist, so each is deleted in turn — and
  their own dependents after them.
- Foreground: the owner stays, with a deletionTimestamp and the
  `foregroundDeletion` finalizer, until its dependents are gone. This
  controller deletes the dependents (in foreground too, if they have dependents
  of their own), waits until none with `blockOwnerDeletion: true` remains,
  then removes the finalizer and the API server removes the owner.
- Orphan: the owner stays with the `orphan` finalizer until this controller has
  removed the references to it from every dependent; then the finalizer goes,
  and the dependents live on without an owner.

An object with several owners is deleted only when none of them remains
(Kubernetes' "solid" owners); references to owners that are gone, or waiting in
foreground deletion, are removed from it instead.

Absence is never trusted to the cache: before deleting a dependent, the owner
is read from the API server, and the dependent is deleted with its
resourceVersion as a precondition (it may have been adopted meanwhile).
Dependents are found through the informers of `MONITORED_KINDS`, indexed by
owner uid; objects of other kinds are not collected (a difference from
Kubernetes, which watches every kind).
"""

from __future__ import annotations

import logging
from typing import Any

from api.errors import ValidationFailed
from api.registry import lookup
from controlplane.client import Conflict, NotFound
from controlplane.client.informer import Informer
from controlplane.controllers.controllerref import is_deleting, uid_of
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str, str]   # (kind, namespace, name)
MONITORED_KINDS = ("Deployment", "ReplicaSet", "Pod", "DaemonSet", "Job")
FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"
BY_OWNER = "by-owner-uid"
SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"
WAIT_RECHECK = 5.0    # a foreground owner looks again this often even without events


def owner_uids(obj: Obj) -> list[str]:
    return [r["uid"] for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("uid")]


def finalizers(obj: Obj) -> list[str]:
    return list((obj.get("metadata") or {}).get("finalizers") or [])


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind")), meta.get("namespace") or "", meta.get("name") or ""


def blocks(dependent: Obj, owner_uid: str) -> bool:
    """Does the dependent keep its owner (in foreground deletion) from going away?"""
    return any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion")
               for r in (dependent.get("metadata") or {}).get("ownerReferences") or [])


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class GarbageCollector(QueueController):
    def __init__(self, settings: ControllerSettings | None = None, *, namespace: str = ""):
        settings = settings or ControllerSettings()
        super().__init__(name="garbagecollector", workers=settings.workers)
        self.namespace = namespace   # "" watches every namespace; tests narrow it to their own

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.client = ctx.client
        self.informers: dict[str, Informer] = {}
        for kind in MONITORED_KINDS:
            informer = ctx.informers.get(kind, namespace=self.namespace)
            informer.add_index(BY_OWNER, owner_uids)
            informer.add_handlers(on_add=self._added, on_update=self._updated, on_delete=self._deleted)
            self.informers[kind] = informer

    # -- events -> keys ---------------------------------------------------------------

    def _added(self, obj: Obj) -> None:
        if owner_uids(obj) or (is_deleting(obj) and {FOREGROUND, ORPHAN} & set(finalizers(obj))):
            self.queue.add(_key(obj))

    def _updated(self, old: Obj, new: Obj) -> None:
        old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
        if (old_meta.get("ownerReferences") != new_meta.get("ownerReferences")
                or old_meta.get("deletionTimestamp") != new_meta.get("deletionTimestamp")
                or old_meta.get("finalizers") != new_meta.get("finalizers")):
            self._added(new)

    def _deleted(self, obj: Obj) -> None:
        for dependent in self.dependents(uid_of(obj)):
            self.queue.add(_key(dependent))       # its owner is gone (or finished foreground deletion)
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("kind") in self.informers:  # an owner in foreground deletion may be waiting for this
                self.queue.add((ref["kind"], ns, ref.get("name", "")))

    def dependents(self, owner_uid: str) -> list[Obj]:
        return [o for informer in self.informers.values() for o in informer.by_index(BY_OWNER, owner_uid)]

    # -- reconcile ------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        kind, ns, name = key
        obj = self.informers[kind].get(ns, name)
        if obj is None:
            return None
        try:
            if is_deleting(obj):
                if ORPHAN in finalizers(obj):
                    await self._orphan_dependents(obj)
                elif FOREGROUND in finalizers(obj):
                    return await self._delete_dependents_first(obj)
                return None
            if owner_uids(obj):
                await self._attempt_to_delete(obj)
        except Conflict:
            return 0.05   # it changed under us: look again with a fresh cache
        return None

    async def _owner_state(self, ref: dict[str, Any], namespace: str) -> str:
        try:
            info = lookup(str(ref.get("kind")))
        except ValidationFailed:
            log.warning("ownerReference to unknown kind %s; keeping the dependent", ref.get("kind"))
            return SOLID
        owner_ns = namespace if info.namespaced else ""
        owner = None
        informer = self.informers.get(info.kind)
        if informer is not None:
            cached = informer.get(owner_ns, ref.get("name", ""))
            if cached is not None and uid_of(cached) == ref.get("uid"):
                owner = cached
        if owner is None:   # not in the cache: ask the server before believing it is gone
            try:
                owner = await self.client.get(info.kind, ref.get("name", ""), owner_ns)
            except NotFound:
                return DANGLING
            if uid_of(owner) != ref.get("uid"):
                return DANGLING
        if is_deleting(owner) and FOREGROUND in finalizers(owner):
            return WAITING
        return SOLID

    async def _attempt_to_delete(self, obj: Obj) -> None:
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        states: dict[str, str] = {}
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
            states[ref.get("uid", "")] = await self._owner_state(ref, ns)
        if SOLID in states.values():
            gone = {uid for uid, state in states.items() if state != SOLID}
            if gone:
                await self._remove_owner_refs(obj, gone)
            return
        if WAITING in states.values() and self.dependents(uid_of(obj)):
            policy = "Foreground"   # its owner waits for it, so it must wait for its own dependents
        elif ORPHAN in finalizers(obj):
            policy = "Orphan"
        elif FOREGROUND in finalizers(obj):
            policy = "Foreground"
        else:
            policy = "Background"
        await self._delete(obj, policy)

    async def _delete(self, obj: Obj, policy: str) -> None:
        kind, ns, name = _key(obj)
        try:
            fresh = await self.client.get(kind, name, ns)
            if uid_of(fresh) != uid_of(obj):
                return
            await self.client.delete(kind, name, ns, propagation=policy,
                                     resource_version=fresh["metadata"].get("resourceVersion", ""))
        except NotFound:
            return
        log.info("garbage collector: deleted %s %s/%s (%s)", kind, ns, name, policy)

    async def _delete_dependents_first(self, owner: Obj) -> float | None:
        owner_uid = uid_of(owner)
        dependents = self.dependents(owner_uid)
        blocking = [d for d in dependents if blocks(d, owner_uid)]
        if not blocking:
            await self._remove_finalizer(owner, FOREGROUND)
            return None
        for dependent in blocking:
            if not (is_deleting(dependent) and FOREGROUND in finalizers(dependent)):
                self.queue.add(_key(dependent))   # _attempt_to_delete sees this owner waiting
        return WAIT_RECHECK

    async def _orphan_dependents(self, owner: Obj) -> None:
        owner_uid = uid_of(owner)
        for dependent in self.dependents(owner_uid):
            await self._remove_owner_refs(dependent, {owner_uid})
        await self._remove_finalizer(owner, ORPHAN)

    async def _remove_owner_refs(self, obj: Obj, uids: set[str]) -> None:
        kind, ns, name = _key(obj)
        try:
            fresh = await self.client.get(kind, name, ns)
        except NotFound:
            return
        if uid_of(fresh) != uid_of(obj):
            return
        meta = fresh["metadata"]
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") not in uids]
        if len(refs) == len(meta.get("ownerReferences") or []):
            return
        if refs:
            meta["ownerReferences"] = refs
        else:
            meta.pop("ownerReferences", None)
        try:
            await self.client.update(fresh)
        except NotFound:
            return

    async def _remove_finalizer(self, obj: Obj, finalizer: str) -> None:
        kind, ns, name = _key(obj)
        try:
            fresh = await self.client.get(kind, name, ns)
        except NotFound:
            return
        if uid_of(fresh) != uid_of(obj) or finalizer not in finalizers(fresh):
            return
        fresh["metadata"]["finalizers"] = [f for f in finalizers(fresh) if f != finalizer]
        try:
            await self.client.update(fresh)
        except NotFound:
            return
        log.info("garbage collector: removed finalizer %s from %s %s/%s", finalizer, kind, ns, name)
