"""The disruption controller: keep each PodDisruptionBudget's status, which the Eviction subresource obeys.

Keys are (namespace, name) of PodDisruptionBudgets, queued when a budget changes and when
a pod its selector picks changes. A reconcile, as Kubernetes' disruption controller:
- pods: the namespace's pods the selector matches, not being deleted;
- expectedPods: with an integer `minAvailable`, the number of those pods; otherwise (a
  percentage, or `maxUnavailable`) the sum of the replicas their controllers ask for
  (each ReplicaSet's — a Deployment's pods belong to its ReplicaSets — a Job's
  parallelism), a pod without a controller counting as one;
- desiredHealthy: `minAvailable` (a percentage rounded up), or expected − `maxUnavailable`;
- currentHealthy: Ready pods, minus those an eviction recorded in `disruptedPods` that
  are still there (an entry is dropped when its pod is gone or after 2 minutes);
- disruptionsAllowed = max(0, currentHealthy − desiredHealthy); condition
  DisruptionAllowed (SufficientPods / InsufficientPods); observedGeneration.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from api.fieldtypes import resolve_int_or_percent
from api.nodelease import now_micro, parse_time
from api.selectors import selector_from_spec
from controlplane.client import Conflict, NotFound
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.owned import controller_of, is_ready
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]
DELETION_TIMEOUT = 120.0


def _percent(value: Any) -> bool:
    return isinstance(value, str) and value.endswith("%")


def budget_status(pdb: Obj, pods: list[Obj], expected_scale: int, now: float) -> Obj:
    """The status a budget should have for these pods (pure: the unit tests call it)."""
    spec = pdb.get("spec") or {}
    old = pdb.get("status") or {}
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and not _percent(min_available):
        expected = len(pods)
        desired = int(min_available)
    elif min_available is not None:
        expected = expected_scale
        desired = resolve_int_or_percent(min_available, expected, round_up=True)
    else:
        expected = expected_scale
        unavailable = resolve_int_or_percent(max_unavailable if max_unavailable is not None else 0, expected,
                                             round_up=True)
        desired = max(0, expected - unavailable)
    names = {p["metadata"]["name"] for p in pods}
    disrupted = {name: at for name, at in (old.get("disruptedPods") or {}).items()
                 if name in names and (parse_time(at) or 0) + DELETION_TIMEOUT > now}
    healthy = sum(1 for p in pods if is_ready(p) and p["metadata"]["name"] not in disrupted)
    allowed = max(0, healthy - desired)
    condition_status = "True" if allowed > 0 else "False"
    previous = next((c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
    transition = previous.get("lastTransitionTime") if previous and previous.get("status") == condition_status \
        else now_micro(now)
    status: Obj = {"observedGeneration": (pdb.get("metadata") or {}).get("generation") or 1,
                   "disruptionsAllowed": allowed, "currentHealthy": healthy, "desiredHealthy": desired,
                   "expectedPods": expected,
                   "conditions": [{"type": "DisruptionAllowed", "status": condition_status,
                                   "reason": "SufficientPods" if allowed > 0 else "InsufficientPods",
                                   "message": "", "lastTransitionTime": transition,
                                   "observedGeneration": (pdb.get("metadata") or {}).get("generation") or 1}]}
    if disrupted:
        status["disruptedPods"] = disrupted
    return status


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class DisruptionController(QueueController):
    def __init__(self, settings: ControllerSettings | None = None, *, namespace: str = "",
                 clock: Callable[[], float] = time.time):
        super().__init__(name="disruption")
        self.settings = settings or ControllerSettings()
        self.workers = self.settings.workers
        self.namespace = namespace
        self.clock = clock

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.pdbs = ctx.informers.get("PodDisruptionBudget", namespace=self.namespace)
        self.pods = ctx.informers.get("Pod", namespace=self.namespace)
        self.replicasets = ctx.informers.get("ReplicaSet", namespace=self.namespace)
        self.jobs = ctx.informers.get("Job", namespace=self.namespace)
        self.pdbs.add_handlers(on_add=self._enqueue, on_update=lambda _o, new: self._enqueue(new),
                               on_delete=self._enqueue)
        self.pods.add_handlers(on_add=self._pod_event, on_update=lambda _o, new: self._pod_event(new),
                               on_delete=self._pod_event)
        self.replicasets.add_handlers(on_update=lambda old, new: self._scale_event(old, new))

    def _enqueue(self, pdb: Obj) -> None:
        self.queue.add((pdb["metadata"].get("namespace", ""), pdb["metadata"]["name"]))

    def _pod_event(self, pod: Obj) -> None:
        labels = pod["metadata"].get("labels") or {}
        for pdb in self.pdbs.list(pod["metadata"].get("namespace", "")):
            spec = (pdb.get("spec") or {}).get("selector")
            if spec and selector_from_spec(spec).matches(labels):
                self._enqueue(pdb)

    def _scale_event(self, old: Obj, new: Obj) -> None:
        if (old.get("spec") or {}).get("replicas") != (new.get("spec") or {}).get("replicas"):
            for pdb in self.pdbs.list(new["metadata"].get("namespace", "")):
                self._enqueue(pdb)

    def _expected_scale(self, namespace: str, pods: list[Obj]) -> int:
        total, seen = 0, set()
        for pod in pods:
            ref = controller_of(pod)
            if ref is None:
                total += 1
                continue
            if ref.get("uid") in seen:
                continue
            seen.add(ref.get("uid"))
            if ref.get("kind") == "ReplicaSet":
                owner = self.replicasets.get(namespace, ref.get("name", ""))
                total += int(((owner or {}).get("spec") or {}).get("replicas", 1)) if owner else 1
            elif ref.get("kind") == "Job":
                owner = self.jobs.get(namespace, ref.get("name", ""))
                total += int(((owner or {}).get("spec") or {}).get("parallelism", 1)) if owner else 1
            else:
                total += sum(1 for p in pods if (controller_of(p) or {}).get("uid") == ref.get("uid"))
        return total

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        pdb = self.pdbs.get(namespace, name)
        if pdb is None:
            return None
        spec = (pdb.get("spec") or {}).get("selector")
        selector = selector_from_spec(spec) if spec else None
        pods = [p for p in self.pods.list(namespace) if selector is not None and not p["metadata"].get(
            "deletionTimestamp") and selector.matches(p["metadata"].get("labels") or {})]
        now = self.clock()
        status = budget_status(pdb, pods, self._expected_scale(namespace, pods), now)
        old = pdb.get("status") or {}
        if status != old:
            try:
                await self.ctx.client.update_status({**pdb, "status": status})
            except Conflict:
                return 0.05   # an eviction took one meanwhile: count again
            except NotFound:
                return None
        if status.get("disruptedPods"):   # look again when the oldest record expires
            oldest = min(parse_time(t) or now for t in status["disruptedPods"].values())
            return max(0.5, math.ceil(oldest + DELETION_TIMEOUT - now))
        return None
