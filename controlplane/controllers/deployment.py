"""The Deployment controller: rolls a pod template out through ReplicaSets.

A Deployment owns one ReplicaSet per template (revisions.py names and numbers
them). For each Deployment key, reconcile:

1. claims ReplicaSets by selector (controllerref.py);
2. if the Deployment is being deleted: only reports status;
3. if paused, or spec.replicas changed in mid-rollout ("scaling event"): only
   scales — one active ReplicaSet takes the new size, several share it in
   proportion (rollingupdate.proportional_scale); no new ReplicaSet is made;
4. otherwise rolls out:
   - RollingUpdate: scale the new ReplicaSet up within maxSurge, then the old
     ones down within maxUnavailable (rollingupdate.py), one step per
     reconcile; pods becoming ready trigger the next step;
   - Recreate: scale every old ReplicaSet to 0, wait until their pods are
     gone, then create / scale the new one to spec.replicas;
5. once complete, deletes the oldest scaled-down ReplicaSets beyond
   revisionHistoryLimit;
6. writes status and conditions (deploymentstatus.py), and looks again at the
   progress deadline.

Availability is counted from the pods of each ReplicaSet (shared pod cache),
never above its spec.replicas, so a rollout cannot overshoot maxUnavailable
while a ReplicaSet's own status lags. Every write carries the cached
resourceVersion: a stale view ends in Conflict and a fresh reconcile.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any, Callable

from api.selectors import selector_from_spec
from controlplane.client import AlreadyExists, Conflict, NotFound
from controlplane.client.events import NORMAL
from controlplane.client.informer import Informer
from controlplane.controllers import controllerref, deploymentstatus as dstatus, revisions, rollingupdate
from controlplane.controllers.controllerref import is_deleting, uid_of
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.owned import (POD_BY_CONTROLLER, add_pod_indexes, controller_of, is_active,
                                            is_available, is_finished, is_ready, pod_controller_uid)
from controlplane.controllers.rollingupdate import RSState
from controlplane.controllers.settings import ControllerSettings

# Module constants: alike in shape to other controllers' (the `duplicates` tool pairs them), each its own.
log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
RS_BY_CONTROLLER = "rs-by-controller-uid"
RS_ORPHANS = "rs-orphans-by-namespace"
RETRY_SOON = 0.05


class _Requeue(Exception):
    """Stop this reconcile and look again shortly (e.g. after bumping collisionCount)."""


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _name(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def _replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class DeploymentController(QueueController):
    def __init__(self, settings: ControllerSettings | None = None, *, namespace: str = "",
                 clock: Callable[[], float] = time.time):
        settings = settings or ControllerSettings()
        super().__init__(name="deployment", workers=settings.workers)
        self.namespace = namespace   # "" watches every namespace; tests narrow it to their own
        self.clock = clock

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.client = ctx.client
        self.recorder = ctx.recorder
        self.deployments: Informer = ctx.informers.get("Deployment", namespace=self.namespace)
        self.replicasets: Informer = ctx.informers.get("ReplicaSet", namespace=self.namespace)
        self.pods: Informer = ctx.informers.get("Pod", namespace=self.namespace)
        add_pod_indexes(self.pods)
        self.replicasets.add_index(RS_BY_CONTROLLER, pod_controller_uid)
        self.replicasets.add_index(RS_ORPHANS, controllerref.orphan_namespace)
        self.deployments.add_handlers(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                      on_delete=self._enqueue)
        self.replicasets.add_handlers(on_add=self._rs_changed, on_update=self._rs_updated, on_delete=self._rs_changed)
        self.pods.add_handlers(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)

    # -- events -> keys ---------------------------------------------------------------

    def _enqueue(self, deployment: Obj) -> None:
        self.queue.add(_key(deployment))

    def _owner(self, obj: Obj, kind: str, informer: Informer) -> Obj | None:
        ref = controller_of(obj)
        if ref is None or ref.get("kind") != kind:
            return None
        owner = informer.get((obj.get("metadata") or {}).get("namespace") or "", ref.get("name", ""))
        return owner if owner is not None and uid_of(owner) == ref.get("uid") else None

    def _rs_changed(self, rs: Obj) -> None:
        deployment = self._owner(rs, "Deployment", self.deployments)
        if deployment is not None:
            self._enqueue(deployment)
        elif controller_of(rs) is None:   # an orphan: a Deployment whose selector matches may adopt it
            ns = (rs.get("metadata") or {}).get("namespace") or ""
            for d in self.deployments.list(ns):
                if selector_from_spec((d.get("spec") or {}).get("selector")).matches(controllerref.labels_of(rs)):
                    self._enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        if controller_of(old) != controller_of(new):
            self._rs_changed(old)
        self._rs_changed(new)

    def _pod_changed(self, pod: Obj) -> None:
        rs = self._owner(pod, "ReplicaSet", self.replicasets)
        if rs is not None:
            deployment = self._owner(rs, "Deployment", self.deployments)
            if deployment is not None:
                self._enqueue(deployment)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if is_ready(old) != is_ready(new) or is_active(old) != is_active(new) or is_finished(old) != is_finished(new):
            self._pod_changed(new)

    # -- reconcile ------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        cached = self.deployments.get(*key)
        if cached is None:
            return None
        d = copy.deepcopy(cached)
        d.setdefault("status", {})
        try:
            rs_list = await self._claim_replicasets(d)
            if is_deleting(d):
                new, old = self._split(d, rs_list)
                return await self._write_status(d, cached, new, old, with_progress=False)
            self._check_paused_condition(d)
            if (d.get("spec") or {}).get("paused") or self._is_scaling_event(d, rs_list):
                return await self._sync_scale(d, cached, rs_list)
            if ((d.get("spec") or {}).get("strategy") or {}).get("type") == "Recreate":
                return await self._rollout_recreate(d, cached, rs_list)
            return await self._rollout_rolling(d, cached, rs_list)
        except (Conflict, _Requeue) as exc:
            log.debug("deployment %s/%s: %s; retrying", key[0], key[1], exc)
            return RETRY_SOON

    async def _claim_replicasets(self, d: Obj) -> list[Obj]:
        ns = d["metadata"].get("namespace") or ""
        candidates = self.replicasets.by_index(RS_BY_CONTROLLER, uid_of(d)) + self.replicasets.by_index(RS_ORPHANS, ns)
        selector = selector_from_spec((d.get("spec") or {}).get("selector"))
        return await controllerref.claim(self.client, owner=d, selector=selector, candidates=candidates,
                                         can_adopt=controllerref.can_adopt_check(self.client, d))

    def _split(self, d: Obj, rs_list: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        new = revisions.find_new_replicaset(d, rs_list)
        return new, [rs for rs in rs_list if new is None or uid_of(rs) != uid_of(new)]

    def _budgets(self, d: Obj) -> tuple[int, int]:
        return rollingupdate.budgets((d.get("spec") or {}).get("strategy") or {}, _replicas(d))

    def _counts(self, d: Obj, rs: Obj) -> dstatus.RSCounts:
        min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
        now = self.clock()
        pods = [p for p in self.pods.by_index(POD_BY_CONTROLLER, uid_of(rs)) if is_active(p)]
        return dstatus.RSCounts(replicas=len(pods), ready=sum(1 for p in pods if is_ready(p)),
                                available=sum(1 for p in pods if is_available(p, min_ready, now)))

    def _state(self, d: Obj, rs: Obj) -> RSState:
        replicas = _replicas(rs)
        return RSState(name=_name(rs), replicas=replicas, available=min(replicas, self._counts(d, rs).available),
                       created=revisions.created_at(rs),
                       max_replicas=revisions.annotation_int(rs, revisions.MAX_REPLICAS))

    # -- the new ReplicaSet and revisions ----------------------------------------------

    async def _new_and_old(self, d: Obj, rs_list: list[Obj], *, create: bool) -> tuple[Obj | None, list[Obj]]:
        """The new ReplicaSet (created if asked and missing, annotations brought up to date) and the old ones."""
        new, old = self._split(d, rs_list)
        revision = revisions.max_revision(old) + 1
        now = self.clock()
        if new is not None:
            fresh = copy.deepcopy(new)
            changed = revisions.set_new_revision(fresh, d, revision)
            min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
            if int(fresh["spec"].get("minReadySeconds") or 0) != min_ready:
                fresh["spec"]["minReadySeconds"] = min_ready
                changed = True
            if changed:
                new = await self.client.update(fresh)
            await self._set_deployment_revision(d, revisions.revision_of(new))
            if dstatus.get_condition(d["status"], dstatus.PROGRESSING) is None:
                dstatus.set_condition(d["status"], type_=dstatus.PROGRESSING, value="True",
                                      reason=dstatus.FOUND_NEW_RS, message=f'Found new replica set "{_name(new)}"',
                                      now=now)
            return new, old
        if not create:
            return None, old
        return await self._create_new(d, old, revision, now), old

    async def _create_new(self, d: Obj, old: list[Obj], revision: int, now: float) -> Obj:
        spec = d.get("spec") or {}
        collisions = d["status"].get("collisionCount")
        pod_hash = revisions.template_hash(spec.get("template") or {}, collisions)
        surge, _ = self._budgets(d)
        desired = _replicas(d)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            replicas = desired
        else:
            replicas = rollingupdate.new_replicas(desired=desired, max_surge=surge,
                                                  all_rs=[self._state(d, rs) for rs in old],
                                                  new_rs=RSState(name="", replicas=0))
        rs = revisions.new_replicaset(d, pod_hash=pod_hash, revision=revision, replicas=replicas, max_surge=surge)
        try:
            created = await self.client.create(rs)
        except AlreadyExists:
            existing = await self.client.get("ReplicaSet", rs["metadata"]["name"], rs["metadata"]["namespace"])
            ref = controller_of(existing)
            if ref is not None and ref.get("uid") == uid_of(d) and revisions.equal_ignore_hash(
                    (existing.get("spec") or {}).get("template") or {}, spec.get("template") or {}):
                raise _Requeue("the new ReplicaSet exists; waiting for the cache to see it")
            # Another template hashed to the same name: bump collisionCount for a new name.
            status = {**d["status"], "collisionCount": int(collisions or 0) + 1}
            await self.client.update_status({**d, "status": status})
            raise _Requeue(f'hash collision on ReplicaSet "{rs["metadata"]["name"]}"')
        if replicas > 0:
            self.recorder.event(d, NORMAL, "ScalingReplicaSet", f"Scaled up replica set {_name(created)} to {replicas}")
        await self._set_deployment_revision(d, revision)
        dstatus.set_condition(d["status"], type_=dstatus.PROGRESSING, value="True", reason=dstatus.NEW_RS_CREATED,
                              message=f'Created new replica set "{_name(created)}"', now=now)
        return created

    async def _set_deployment_revision(self, d: Obj, revision: int) -> None:
        annotations = dict(d["metadata"].get("annotations") or {})
        if annotations.get(revisions.REVISION) == str(revision):
            return
        annotations[revisions.REVISION] = str(revision)
        updated = await self.client.update({**d, "metadata": {**d["metadata"], "annotations": annotations}})
        d["metadata"], d["spec"] = updated["metadata"], updated["spec"]

    # -- scaling -----------------------------------------------------------------------

    async def _scale(self, d: Obj, rs: Obj, size: int) -> Obj:
        """Set a ReplicaSet's replicas (and the Deployment size it was scaled for); the updated ReplicaSet."""
        surge, _ = self._budgets(d)
        fresh = copy.deepcopy(rs)
        before = _replicas(rs)
        annotated = revisions.set_replicas_annotations(fresh, desired=_replicas(d), max_replicas=_replicas(d) + surge)
        if before == size and not annotated:
            return rs
        fresh["spec"]["replicas"] = size
        updated = await self.client.update(fresh)
        if before != size:
            direction = "up" if size > before else "down"
            self.recorder.event(d, NORMAL, "ScalingReplicaSet",
                                f"Scaled {direction} replica set {_name(rs)} to {size} from {before}")
        return updated

    def _is_scaling_event(self, d: Obj, rs_list: list[Obj]) -> bool:
        desired = _replicas(d)
        for rs in rs_list:
            if _replicas(rs) > 0:
                annotated = revisions.annotation_int(rs, revisions.DESIRED_REPLICAS)
                if annotated is not None and annotated != desired:
                    return True
        return False

    async def _sync_scale(self, d: Obj, cached: Obj, rs_list: list[Obj]) -> float | None:
        """Paused, or a scaling event: resize without rolling out."""
        new, old = await self._new_and_old(d, rs_list, create=False)
        desired = _replicas(d)
        every = ([new] if new is not None else []) + revisions.by_age(old)
        active = [rs for rs in every if _replicas(rs) > 0]
        target = None
        if len(active) == 1:
            target = active[0]
        elif not active and every:
            target = new if new is not None else every[-1]
        sizes: dict[str, int] = {}
        if target is not None:
            sizes[_name(target)] = desired
        elif new is not None and _replicas(new) == desired and self._counts(d, new).available >= desired:
            sizes = {_name(rs): 0 for rs in active if rs is not new}   # the new one is saturated
        elif ((d.get("spec") or {}).get("strategy") or {}).get("type") != "Recreate":
            surge, _ = self._budgets(d)
            sizes = rollingupdate.proportional_scale(
                desired=desired, max_surge=surge, status_replicas=int(d["status"].get("replicas") or 0),
                active=[self._state(d, rs) for rs in active])
        by_name = {_name(rs): rs for rs in every}
        for name, size in sizes.items():
            by_name[name] = await self._scale(d, by_name[name], size)
        new = by_name.get(_name(new)) if new is not None else None
        old = [by_name[_name(rs)] for rs in old]
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, old)
        return await self._write_status(d, cached, new, old, with_progress=False)

    # -- rolling out --------------------------------------------------------------------

    async def _rollout_rolling(self, d: Obj, cached: Obj, rs_list: list[Obj]) -> float | None:
        new, old = await self._new_and_old(d, rs_list, create=True)
        assert new is not None
        desired = _replicas(d)
        surge, unavailable = self._budgets(d)
        new_state = self._state(d, new)
        if new_state.replicas > desired:
            target = desired
        else:
            target = rollingupdate.new_replicas(desired=desired, max_surge=surge,
                                                all_rs=[self._state(d, rs) for rs in old] + [new_state],
                                                new_rs=new_state)
        if target != new_state.replicas:
            new = await self._scale(d, new, target)
            return await self._write_status(d, cached, new, old)
        plan = rollingupdate.scale_down_old(desired=desired, max_unavailable=unavailable, new_rs=new_state,
                                            old_rs=[self._state(d, rs) for rs in old if _replicas(rs) > 0])
        old = [await self._scale(d, rs, plan[_name(rs)]) if _name(rs) in plan else rs for rs in old]
        if plan:
            return await self._write_status(d, cached, new, old)
        return await self._write_status(d, cached, new, old, cleanup=True)

    async def _rollout_recreate(self, d: Obj, cached: Obj, rs_list: list[Obj]) -> float | None:
        new, old = await self._new_and_old(d, rs_list, create=False)
        if any(_replicas(rs) > 0 for rs in old):
            old = [await self._scale(d, rs, 0) if _replicas(rs) > 0 else rs for rs in old]
            return await self._write_status(d, cached, new, old)
        if self._old_pods_running(old):
            return await self._write_status(d, cached, new, old)
        if new is None:
            new, old = await self._new_and_old(d, rs_list, create=True)
            assert new is not None
        if _replicas(new) != _replicas(d):
            new = await self._scale(d, new, _replicas(d))
        return await self._write_status(d, cached, new, old, cleanup=True)

    def _old_pods_running(self, old: list[Obj]) -> bool:
        """Recreate waits until no pod of an old ReplicaSet exists (terminating ones included)."""
        for rs in old:
            if int((rs.get("status") or {}).get("replicas") or 0) > 0:
                return True
            if any(not is_finished(p) for p in self.pods.by_index(POD_BY_CONTROLLER, uid_of(rs))):
                return True
        return False

    async def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        """Delete the oldest scaled-down ReplicaSets beyond revisionHistoryLimit."""
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        alive = [rs for rs in old if not is_deleting(rs)]
        excess = len(alive) - limit
        for rs in revisions.by_revision(alive)[:max(excess, 0)]:
            status = rs.get("status") or {}
            if _replicas(rs) or status.get("replicas") or self._counts(d, rs).replicas \
                    or (rs["metadata"].get("generation") or 0) > (status.get("observedGeneration") or 0):
                continue
            try:
                await self.client.delete("ReplicaSet", _name(rs), rs["metadata"]["namespace"],
                                         resource_version=rs["metadata"].get("resourceVersion", ""))
            except NotFound:
                continue
            log.info("deployment %s: deleted old replica set %s (revisionHistoryLimit %d)", _name(d), _name(rs), limit)

    # -- status -------------------------------------------------------------------------

    def _check_paused_condition(self, d: Obj) -> None:
        condition = dstatus.get_condition(d["status"], dstatus.PROGRESSING)
        if condition is not None and condition.get("reason") == dstatus.TIMED_OUT:
            return  # a reported failure stays visible
        paused_shown = condition is not None and condition.get("reason") == dstatus.PAUSED
        now = self.clock()
        if (d.get("spec") or {}).get("paused") and not paused_shown:
            dstatus.set_condition(d["status"], type_=dstatus.PROGRESSING, value="Unknown", reason=dstatus.PAUSED,
                                  message="Deployment is paused", now=now)
        elif not (d.get("spec") or {}).get("paused") and paused_shown:
            dstatus.set_condition(d["status"], type_=dstatus.PROGRESSING, value="Unknown", reason=dstatus.RESUMED,
                                  message="Deployment is resumed", now=now)

    async def _write_status(self, d: Obj, cached: Obj, new: Obj | None, old: list[Obj], *,
                            with_progress: bool = True, cleanup: bool = False) -> float | None:
        now = self.clock()
        every = ([new] if new is not None else []) + old
        counts = {uid_of(rs): self._counts(d, rs) for rs in every}
        _, unavailable = self._budgets(d)
        status = dstatus.calculate_status(d, new_rs=counts[uid_of(new)] if new is not None else None,
                                          all_rs=list(counts.values()), spec_total=sum(_replicas(rs) for rs in every),
                                          max_unavailable=unavailable, now=now)
        requeue = None
        if with_progress:
            requeue = dstatus.rollout_progress(d, status, new_rs_name=_name(new) if new is not None else None, now=now)
        if cleanup and dstatus.is_complete(d, status):
            await self._cleanup(d, old)
        if status != (cached.get("status") or {}):
            try:
                await self.client.update_status({**d, "status": status})
            except NotFound:
                return None
        min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready and any(c.ready > c.available for c in counts.values()):
            requeue = min(requeue, float(min_ready)) if requeue is not None else float(min_ready)
        return requeue
