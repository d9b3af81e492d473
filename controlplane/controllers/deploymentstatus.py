"""What a Deployment reports: replica counts and the Available / Progressing conditions.

Pure functions used by the Deployment controller (deployment.py), after
kube-controller-manager's deployment/progress.go and util/deployment_util.go.

Counts come from the pods of the Deployment's ReplicaSets (`RSCounts`):
replicas (active pods), updatedReplicas (pods of the new ReplicaSet),
readyReplicas, availableReplicas, unavailableReplicas.

Conditions:
- Available: True (MinimumReplicasAvailable) while at least
  replicas - maxUnavailable pods are available, else False
  (MinimumReplicasUnavailable).
- Progressing: True with reason NewReplicaSetCreated / FoundNewReplicaSet /
  ReplicaSetUpdated while the rollout moves, NewReplicaSetAvailable once it is
  complete; False with ProgressDeadlineExceeded when nothing moved for
  progressDeadlineSeconds; Unknown with DeploymentPaused / DeploymentResumed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

from api.nodelease import parse_time

Obj = Mapping[str, Any]
AVAILABLE, PROGRESSING = "Available", "Progressing"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


@dataclass(frozen=True)
class RSCounts:
    replicas: int = 0     # active pods
    ready: int = 0
    available: int = 0


def rfc3339(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def get_condition(status: Obj | None, type_: str) -> dict[str, Any] | None:
    for c in (status or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def set_condition(status: dict[str, Any], *, type_: str, value: str, reason: str, message: str,
                  now: float) -> None:
    """Set a condition; unchanged status and reason keep their times, unchanged status keeps
    lastTransitionTime (as Kubernetes' SetDeploymentCondition)."""
    current = get_condition(status, type_)
    if current is not None and current.get("status") == value and current.get("reason") == reason:
        return
    stamp = rfc3339(now)
    condition = {"type": type_, "status": value, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
                 "reason": reason, "message": message}
    if current is not None and current.get("status") == value:
        condition["lastTransitionTime"] = current.get("lastTransitionTime") or stamp
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != type_] + [condition]


def calculate_status(deployment: Obj, *, new_rs: RSCounts | None, all_rs: list[RSCounts], spec_total: int,
                     max_unavailable: int, now: float) -> dict[str, Any]:
    """The status without the Progressing decision (that needs the previous status; see rollout_progress)."""
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    old = dict(deployment.get("status") or {})
    available = sum(c.available for c in all_rs)
    status: dict[str, Any] = {
        "observedGeneration": (deployment.get("metadata") or {}).get("generation") or 0,
        "replicas": sum(c.replicas for c in all_rs),
        "updatedReplicas": new_rs.replicas if new_rs else 0,
        "readyReplicas": sum(c.ready for c in all_rs),
        "availableReplicas": available,
        "unavailableReplicas": max(spec_total - available, 0),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= desired - max_unavailable:
        set_condition(status, type_=AVAILABLE, value="True", reason=MIN_AVAILABLE,
                      message="Deployment has minimum availability.", now=now)
    else:
        set_condition(status, type_=AVAILABLE, value="False", reason=MIN_UNAVAILABLE,
                      message="Deployment does not have minimum availability.", now=now)
    return status


def is_complete(deployment: Obj, status: Obj) -> bool:
    """Every pod updated and available, no old pods, and the latest spec observed."""
    desired = int((deployment.get("spec") or {}).get("replicas", 1))
    generation = (deployment.get("metadata") or {}).get("generation") or 0
    return (status.get("updatedReplicas") == desired and status.get("replicas") == desired
            and status.get("availableReplicas") == desired
            and (status.get("observedGeneration") or 0) >= generation)


def is_progressing(old: Obj, new: Obj) -> bool:
    def n(s: Obj, k: str) -> int:
        return int(s.get(k) or 0)
    return (n(new, "updatedReplicas") > n(old, "updatedReplicas")
            or n(new, "replicas") - n(new, "updatedReplicas") < n(old, "replicas") - n(old, "updatedReplicas")
            or n(new, "readyReplicas") > n(old, "readyReplicas")
            or n(new, "availableReplicas") > n(old, "availableReplicas"))


def deadline_left(deployment: Obj, status: Obj, now: float) -> float | None:
    """Seconds until the progress deadline; None when no deadline runs (complete, or already failed)."""
    condition = get_condition(status, PROGRESSING)
    if condition is None or condition.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT):
        return None
    since = parse_time(condition.get("lastUpdateTime")) or now
    deadline = int((deployment.get("spec") or {}).get("progressDeadlineSeconds") or 600)
    return since + deadline - now


def rollout_progress(deployment: Obj, status: dict[str, Any], *, new_rs_name: str | None, now: float) -> float | None:
    """Update the Progressing condition in `status`; seconds after which to look again (the
    progress deadline), or None."""
    old = deployment.get("status") or {}
    current = get_condition(status, PROGRESSING)
    if status.get("replicas") == status.get("updatedReplicas") and current is not None \
            and current.get("reason") == NEW_RS_AVAILABLE:
        return None  # complete earlier; a scale-only change keeps it complete
    if is_complete(deployment, status):
        message = f'ReplicaSet "{new_rs_name}" has successfully progressed.' if new_rs_name else \
            f'Deployment "{(deployment.get("metadata") or {}).get("name")}" has successfully progressed.'
        set_condition(status, type_=PROGRESSING, value="True", reason=NEW_RS_AVAILABLE, message=message, now=now)
        return None
    if is_progressing(old, status):
        message = f'ReplicaSet "{new_rs_name}" is progressing.' if new_rs_name else \
            f'Deployment "{(deployment.get("metadata") or {}).get("name")}" is progressing.'
        set_condition(status, type_=PROGRESSING, value="True", reason=RS_UPDATED, message=message, now=now)
        refreshed = get_condition(status, PROGRESSING)
        if refreshed is not None:
            refreshed["lastUpdateTime"] = rfc3339(now)  # progress restarts the deadline
            refreshed["message"] = message
    left = deadline_left(deployment, status, now)
    if left is not None and left <= 0:
        message = f'ReplicaSet "{new_rs_name}" has timed out progressing.' if new_rs_name else \
            f'Deployment "{(deployment.get("metadata") or {}).get("name")}" has timed out progressing.'
        set_condition(status, type_=PROGRESSING, value="False", reason=TIMED_OUT, message=message, now=now)
        return None
    return max(left, 1.0) if left is not None else None
