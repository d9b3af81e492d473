"""The ReplicaSet controller: keeps spec.replicas pods matching the selector alive.

For each ReplicaSet key (namespace, name), reconcile:

1. claims pods (controllerref.py): its own pods whose labels still match,
   plus orphans that match (adopted); owned pods that stopped matching are
   released. Only active pods count (not finished, not terminating).
2. if its expectations are met (owned.Expectations: the informer has seen every
   pod it created or deleted), creates the missing pods from the template — in
   "slow start" batches of 1, 2, 4, ... so a template the server refuses fails
   once, not 500 times — or deletes the surplus, least valuable first
   (podcontrol.pods_to_delete);
3. writes status: replicas, fullyLabeledReplicas, readyReplicas,
   availableReplicas (ready for minReadySeconds), observedGeneration, and a
   ReplicaFailure condition while creating pods fails.

Pod events are mapped to their owner's key: a pod's controller reference names
its ReplicaSet; an orphan wakes every ReplicaSet in its namespace whose
selector matches it (one of them may adopt it). The Deployment controller
(deployment.py) drives ReplicaSets only by changing their spec.replicas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from api.selectors import Selector, selector_from_spec
from controlplane.client import ApiError, Conflict, FailedPrecondition, NotFound
from controlplane.client.events import NORMAL, WARNING
from controlplane.client.informer import Informer
from controlplane.controllers import controllerref
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.owned import (POD_BY_CONTROLLER, Expectations, add_pod_indexes, controller_of,
                                            is_active, is_available, is_ready)
from controlplane.controllers.podcontrol import pod_from_template, pods_to_delete
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
POD_ORPHANS = "pod-orphans-by-namespace"   # index: namespace of pods without a controller
BURST = 500                                # at most this many creates or deletes per reconcile
RETRY_SOON = 0.05


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def replicaset_status(rs: Obj, pods: list[Obj], *, now: float, create_error: str | None = None) -> dict[str, Any]:
    """The status a ReplicaSet should report for its claimed, active pods."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    status: dict[str, Any] = {
        "replicas": len(pods),
        "fullyLabeledReplicas": sum(1 for p in pods if template_labels.items() <= controllerref.labels_of(p).items()),
        "readyReplicas": sum(1 for p in pods if is_ready(p)),
        "availableReplicas": sum(1 for p in pods if is_available(p, min_ready, now)),
        "observedGeneration": (rs.get("metadata") or {}).get("generation") or 0,
    }
    old = [c for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if create_error:
        previous = next((c for c in (rs.get("status") or {}).get("conditions") or []
                         if c.get("type") == "ReplicaFailure"), None)
        stamp = previous.get("lastTransitionTime") if previous else _rfc3339(now)
        old.append({"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                    "message": create_error, "lastTransitionTime": stamp})
    if old:
        status["conditions"] = old
    return status


def _rfc3339(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def status_changed(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    current = current or {}
    keys = set(wanted) | {"conditions"}
    return any((current.get(k) or 0) != (wanted.get(k) or 0) for k in keys)


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class ReplicaSetController(QueueController):
    def __init__(self, settings: ControllerSettings | None = None, *, namespace: str = "",
                 clock: Callable[[], float] = time.time):
        settings = settings or ControllerSettings()
        super().__init__(name="replicaset", workers=settings.workers)
        self.namespace = namespace   # "" watches every namespace; tests narrow it to their own
        self.clock = clock
        self.expectations = Expectations()

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.client = ctx.client
        self.recorder = ctx.recorder
        self.replicasets: Informer = ctx.informers.get("ReplicaSet", namespace=self.namespace)
        self.pods: Informer = ctx.informers.get("Pod", namespace=self.namespace)
        add_pod_indexes(self.pods)
        self.pods.add_index(POD_ORPHANS, controllerref.orphan_namespace)
        self.replicasets.add_handlers(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                      on_delete=self._rs_deleted)
        self.pods.add_handlers(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    # -- events -> keys ---------------------------------------------------------------

    def _enqueue(self, rs: Obj) -> None:
        self.queue.add(_key(rs))

    def _rs_deleted(self, rs: Obj) -> None:
        self.expectations.forget(_key(rs))
        self.queue.add(_key(rs))

    def _owner(self, pod: Obj) -> Obj | None:
        """The ReplicaSet named by the pod's controller reference, if it is one we know (same uid)."""
        ref = controller_of(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return None
        rs = self.replicasets.get((pod.get("metadata") or {}).get("namespace") or "", ref.get("name", ""))
        return rs if rs is not None and controllerref.uid_of(rs) == ref.get("uid") else None

    def _matching(self, pod: Obj) -> list[Obj]:
        ns = (pod.get("metadata") or {}).get("namespace") or ""
        labels = controllerref.labels_of(pod)
        return [rs for rs in self.replicasets.list(ns)
                if selector_from_spec((rs.get("spec") or {}).get("selector")).matches(labels)]

    def _pod_added(self, pod: Obj) -> None:
        if controllerref.is_deleting(pod):
            self._pod_deleted(pod)  # e.g. seen for the first time after a restart, already terminating
            return
        rs = self._owner(pod)
        if rs is not None:
            self.expectations.creation_observed(_key(rs))
            self._enqueue(rs)
        elif controller_of(pod) is None:
            for candidate in self._matching(pod):
                self._enqueue(candidate)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if (old.get("metadata") or {}).get("resourceVersion") == (new.get("metadata") or {}).get("resourceVersion"):
            return
        labels_changed = controllerref.labels_of(old) != controllerref.labels_of(new)
        if controllerref.is_deleting(new):
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        if controller_of(old) != controller_of(new):
            previous = self._owner(old)
            if previous is not None:
                self._enqueue(previous)
        rs = self._owner(new)
        if rs is not None:
            self._enqueue(rs)
            min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready and is_ready(new) and not is_ready(old):
                self.queue.add_after(_key(rs), min_ready + 0.5)  # it becomes available then
        elif controller_of(new) is None:
            for candidate in self._matching(new):
                self._enqueue(candidate)

    def _pod_deleted(self, pod: Obj) -> None:
        rs = self._owner(pod)
        if rs is not None:
            self.expectations.deletion_observed(_key(rs), controllerref.uid_of(pod))
            self._enqueue(rs)

    # -- reconcile ------------------------------------------------------------------

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        rs = self.replicasets.get(namespace, name)
        if rs is None:
            self.expectations.forget(key)
            return None
        try:
            return await self._sync(key, rs)
        except Conflict:
            # A pod or the ReplicaSet changed under us (adopting, releasing, writing status):
            # look again soon, with the cache that has seen the change.
            return RETRY_SOON

    async def _sync(self, key: Key, rs: Obj) -> float | None:
        needs_sync = self.expectations.satisfied(key)
        spec = rs.get("spec") or {}
        pods = await self._claim_pods(rs, selector_from_spec(spec.get("selector")))
        create_error: str | None = None
        if needs_sync and not controllerref.is_deleting(rs):
            create_error = await self._manage_replicas(key, rs, pods)
        status = replicaset_status(rs, pods, now=self.clock(), create_error=create_error)
        if status_changed(rs.get("status"), status):
            try:
                await self.client.update_status({**rs, "status": status})
            except NotFound:
                return None
        min_ready = int(spec.get("minReadySeconds") or 0)
        if min_ready and status["readyReplicas"] > status["availableReplicas"]:
            return float(min_ready)  # look again when the ready pods have become available
        return None

    async def _claim_pods(self, rs: Obj, selector: Selector) -> list[Obj]:
        namespace = (rs.get("metadata") or {}).get("namespace") or ""
        candidates = self.pods.by_index(POD_BY_CONTROLLER, controllerref.uid_of(rs))
        candidates += self.pods.by_index(POD_ORPHANS, namespace)
        candidates = [p for p in candidates if is_active(p)]
        return await controllerref.claim(self.client, owner=rs, selector=selector, candidates=candidates,
                                         can_adopt=controllerref.can_adopt_check(self.client, rs))

    async def _manage_replicas(self, key: Key, rs: Obj, pods: list[Obj]) -> str | None:
        """Create or delete pods to reach spec.replicas; an error message if creating failed."""
        diff = len(pods) - int((rs.get("spec") or {}).get("replicas", 1))
        if diff < 0:
            return await self._create_pods(key, rs, min(-diff, BURST))
        if diff > 0:
            await self._delete_pods(key, rs, pods_to_delete(pods, min(diff, BURST)))
        return None

    async def _create_pods(self, key: Key, rs: Obj, count: int) -> str | None:
        meta = rs["metadata"]
        template = (rs.get("spec") or {}).get("template") or {}
        self.expectations.expect_creations(key, count)
        remaining, batch = count, 1
        while remaining > 0:
            size = min(batch, remaining)
            results = await asyncio.gather(*(self._create_one(rs, template) for _ in range(size)),
                                           return_exceptions=True)
            remaining -= size
            errors = [r for r in results if isinstance(r, BaseException)]
            for _ in errors:
                self.expectations.creation_failed(key)
            if errors:
                for _ in range(remaining):   # never attempted: stop waiting for them
                    self.expectations.creation_failed(key)
                error = errors[0]
                if isinstance(error, FailedPrecondition):
                    return None  # the namespace is being deleted: nothing to do
                if not isinstance(error, ApiError):
                    raise error
                return error.message
            batch *= 2
        log.debug("replicaset %s/%s: created %d pods", meta.get("namespace"), meta.get("name"), count)
        return None

    async def _create_one(self, rs: Obj, template: Obj) -> None:
        meta = rs["metadata"]
        pod = pod_from_template(template, owner=rs, namespace=meta["namespace"], generate_name=f"{meta['name']}-")
        try:
            created = await self.client.create(pod)
        except ApiError as exc:
            if not isinstance(exc, FailedPrecondition):
                self.recorder.event(rs, WARNING, "FailedCreate", f"Error creating: {exc.message}")
            raise
        self.recorder.event(rs, NORMAL, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    async def _delete_pods(self, key: Key, rs: Obj, victims: list[Obj]) -> None:
        for pod in victims:
            self.expectations.expect_deletion(key, controllerref.uid_of(pod))
        results = await asyncio.gather(*(self._delete_one(key, rs, pod) for pod in victims), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]

    async def _delete_one(self, key: Key, rs: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("Pod", meta["name"], meta["namespace"])
        except NotFound:
            self.expectations.deletion_observed(key, meta.get("uid", ""))
            return
        except ApiError as exc:
            self.expectations.deletion_observed(key, meta.get("uid", ""))  # it will not happen
            self.recorder.event(rs, WARNING, "FailedDelete", f"Error deleting: {exc.message}")
            raise
        self.recorder.event(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")
