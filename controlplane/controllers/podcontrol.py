"""Making and removing a workload's pods: the pod stamped from a template, and which pods go first.

The ReplicaSet controller (replicaset.py) creates pods with `pod_from_template`
and, when it has too many, deletes the ones `pods_to_delete` ranks least
valuable. The ranking is kube-controller-manager's (`controller.ActivePods`):
a pod that costs the least to lose goes first —

1. not yet scheduled to a node, before scheduled;
2. Pending, before Unknown, before Running;
3. not ready, before ready;
4. lower `controller.kubernetes.io/pod-deletion-cost` annotation first;
5. ready for a shorter time, before ready for longer;
6. more container restarts, before fewer;
7. newer, before older.

`create_pods` and `delete_pods` are the writes the DaemonSet, Job and
StatefulSet controllers share: each create or delete is announced to the
controller's `owned.Expectations` before it is made, recorded as an Event on
the owner, and taken back from the expectations when it does not happen.

Predicates on pod state (active, ready, available) live in owned.py, shared
with the DaemonSet and Job controllers.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any, Callable, Hashable, Mapping

from api.nodelease import parse_time
from controlplane.client import ApiError, NotFound
from controlplane.client.events import NORMAL, WARNING
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.owned import (
    Expectations,
    OwnedPodEvents,
    add_pod_indexes,
    owner_reference,
    phase,
    ready_since,
)
from controlplane.controllers.settings import ControllerSettings

Obj = Mapping[str, Any]
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}
CREATE_BURST = 16  # creations in flight at once per owner


def _deleted_pod(name: str) -> str:
    return f"Deleted pod: {name}"


async def create_pods(ctx: Any, owner: Obj, key: Hashable, expectations: Expectations, pods: list[dict[str, Any]],
                      *, what: str = "pods", burst: int = CREATE_BURST) -> None:
    """Create `pods` for `owner` (at most `burst` at once), each expected under `key` and recorded as an
    Event; raises RuntimeError naming how many of the `what` were not created."""
    if not pods:
        return
    expectations.expect_creations(key, len(pods))
    limit = asyncio.Semaphore(burst)
    failures: list[str] = []

    async def one(pod: dict[str, Any]) -> None:
        async with limit:
            try:
                created = await ctx.client.create(pod)
                ctx.recorder.event(owner, NORMAL, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
            except ApiError as exc:
                expectations.creation_failed(key)
                failures.append(exc.message)
                ctx.recorder.event(owner, WARNING, "FailedCreate", f"Error creating: {exc.message}")
    await asyncio.gather(*(one(p) for p in pods))
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(pods)} {what} not created: {failures[0]}")


async def delete_pods(ctx: Any, owner: Obj, key: Hashable, expectations: Expectations, pods: list[Obj], *,
                      grace: int | None = None, message: Callable[[str], str] = _deleted_pod) -> None:
    """Delete `pods` one after another (with `grace` seconds, or each pod's own), each expected under `key`
    and recorded as an Event (`message(pod name)`); a pod already gone counts as deleted."""
    for pod in pods:
        meta = pod["metadata"]
        expectations.expect_deletion(key, meta.get("uid", ""))
        try:
            await ctx.client.delete("pods", meta["name"], meta.get("namespace", ""), grace_seconds=grace)
            ctx.recorder.event(owner, NORMAL, "SuccessfulDelete", message(meta["name"]))
        except NotFound:
            expectations.deletion_observed(key, meta.get("uid", ""))


def pod_from_template(template: Obj, *, owner: Obj, namespace: str, generate_name: str) -> dict[str, Any]:
    """A new Pod from a workload's template, owned (controller, blockOwnerDeletion) by `owner`."""
    tmeta = template.get("metadata") or {}
    meta: dict[str, Any] = {"generateName": generate_name, "namespace": namespace,
                            "ownerReferences": [owner_reference(owner)]}
    for key in ("labels", "annotations"):
        if tmeta.get(key):
            meta[key] = dict(tmeta[key])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(template.get("spec") or {})}


def _deletion_cost(pod: Obj) -> int:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def deletion_rank(pod: Obj) -> tuple:
    """Sort key: pods with a smaller key are deleted first."""
    meta = pod.get("metadata") or {}
    since = ready_since(pod)
    created = parse_time(meta.get("creationTimestamp")) or 0.0
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        _PHASE_RANK.get(phase(pod), 3),
        0 if since is None else 1,
        _deletion_cost(pod),
        -(since or 0.0),          # ready more recently first
        -_restarts(pod),          # more restarts first
        -created,                 # newer first
        meta.get("name") or "",   # a stable order for ties
    )


def pods_to_delete(pods: list[Obj], count: int) -> list[Obj]:
    """The `count` least valuable pods (see the module docstring for the order)."""
    if count <= 0:
        return []
    return sorted(pods, key=deletion_rank)[:count]


class PodOwnerController(QueueController):
    """Base for a controller that creates and deletes its own pods (DaemonSet, Job, StatefulSet):
    settings, clock and Expectations; setup() gets the pods informer (`self.pods`, with owned.py's
    indexes) and wakes the owner named `owner_kind` on its pods' events (owned.OwnedPodEvents)."""

    owner_kind = ""

    def __init__(self, name: str, settings: ControllerSettings | None = None, *, clock: Callable[[], float] = time.time):
        super().__init__(name=name)
        self.settings = settings or ControllerSettings()
        self.workers = self.settings.workers
        self.clock = clock
        self.expectations = Expectations()

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.pods = ctx.informers.get("Pod")
        add_pod_indexes(self.pods)
        self.pod_events = OwnedPodEvents(self.owner_kind, self.queue.add, self.expectations)
        self.pod_events.register(self.pods)
