"""The Eviction subresource (`pods/NAME/eviction`): a pod deletion its PodDisruptionBudget allows.

As Kubernetes' eviction REST handler (pkg/registry/core/pod/storage/eviction.go):
- a pod that has finished (Succeeded/Failed), or that no budget covers, is deleted at once;
- more than one budget over the pod: refused (500, as Kubernetes);
- a budget whose status is older than its spec (`observedGeneration` behind) or that
  allows no disruption: refused with RESOURCE_EXHAUSTED — Kubernetes' 429 TooManyRequests,
  "Cannot evict pod as it would violate the pod's disruption budget." — so `ctl drain`
  retries;
- a pod that is not Ready may go without using the budget when the budget is met
  (`unhealthyPodEvictionPolicy` IfHealthyBudget, the default) or always (AlwaysAllow);
- otherwise one disruption is taken: `status.disruptionsAllowed` − 1 and the pod recorded
  in `status.disruptedPods`, written with a compare on the budget's resourceVersion (a
  concurrent eviction retries with the new count, so two evictions never share one
  allowance), then the pod is deleted. The disruption controller counts a recorded pod
  as gone until it is, or for 2 minutes.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import grpc

from api.nodelease import now_micro
from api.selectors import selector_from_spec
from controlplane.apiserver.errors import ApiError, TooManyRequests
from controlplane.storage import Conflict

if TYPE_CHECKING:
    from controlplane.apiserver.handlers import Handlers

Obj = dict[str, Any]
ATTEMPTS = 5
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


class InternalError(ApiError):
    code = grpc.StatusCode.INTERNAL


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def budgets_for(handlers: "Handlers", pod: Obj) -> list[Obj]:
    """The PodDisruptionBudgets of the pod's namespace whose selector picks it (watch cache)."""
    from api.registry import lookup
    namespace = pod["metadata"].get("namespace", "")
    labels = pod["metadata"].get("labels") or {}
    prefix = handlers.store.key("poddisruptionbudgets", namespace, "")
    out = []
    for key, pdb in list(handlers.cache(lookup("poddisruptionbudgets")).objects.items()):
        if not key.startswith(prefix):
            continue
        spec = (pdb.get("spec") or {}).get("selector")
        if not spec:
            continue     # policy/v1: a null selector selects nothing
        if selector_from_spec(spec).matches(labels):
            out.append(pdb)
    return out


async def evict(handlers: "Handlers", namespace: str, name: str, *, grace_seconds: int | None = None,
                dry_run: bool = False) -> Obj:
    """Delete the pod if its budget allows; the pod as last seen."""
    for _attempt in range(ATTEMPTS):
        pod = await handlers.get("pods", namespace, name)
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return await _delete(handlers, pod, grace_seconds, dry_run)
        budgets = budgets_for(handlers, pod)
        if not budgets:
            return await _delete(handlers, pod, grace_seconds, dry_run)
        if len(budgets) > 1:
            raise InternalError("This pod has more than one PodDisruptionBudget, which the eviction subresource "
                                "does not support.")
        pdb = await handlers.get("poddisruptionbudgets", namespace, budgets[0]["metadata"]["name"])
        status = pdb.get("status") or {}
        policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
        if not _ready(pod) and (policy == "AlwaysAllow"
                                or status.get("currentHealthy", 0) >= status.get("desiredHealthy", 0) > 0):
            return await _delete(handlers, pod, grace_seconds, dry_run)
        if (status.get("observedGeneration") or 0) < (pdb["metadata"].get("generation") or 1):
            raise TooManyRequests("Cannot evict pod as it would violate the pod's disruption budget. The disruption "
                                  "budget " + pdb["metadata"]["name"] + " is still being processed by the server.")
        if (status.get("disruptionsAllowed") or 0) <= 0:
            raise TooManyRequests(f"{VIOLATION} The disruption budget {pdb['metadata']['name']} needs "
                                  f"{status.get('desiredHealthy', 0)} healthy pods and has "
                                  f"{status.get('currentHealthy', 0)} currently")
        if dry_run:
            return pod
        taken = copy.deepcopy(pdb)
        taken_status = taken.setdefault("status", {})
        taken_status["disruptionsAllowed"] = status["disruptionsAllowed"] - 1
        taken_status["disruptedPods"] = {**(status.get("disruptedPods") or {}), name: now_micro()}
        try:
            await handlers.update_status(taken)
        except Conflict:
            continue   # another eviction took one meanwhile: look at the budget again
        return await _delete(handlers, pod, grace_seconds, dry_run)
    raise TooManyRequests(f"{VIOLATION} The budget kept changing; try again")


async def _delete(handlers: "Handlers", pod: Obj, grace_seconds: int | None, dry_run: bool) -> Obj:
    meta = pod["metadata"]
    obj, _finished = await handlers.delete("pods", meta.get("namespace", ""), meta["name"],
                                           grace_seconds=grace_seconds, dry_run=dry_run,
                                           resource_version="")
    return obj
