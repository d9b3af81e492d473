"""The arithmetic of a rolling update: how far to scale each ReplicaSet, as pure functions.

The Deployment controller (deployment.py) turns its ReplicaSets into
`RSState`s — spec.replicas and how many of those pods are available — and asks
these functions for a plan: {ReplicaSet name: new spec.replicas}. The rules
are kube-controller-manager's (deployment/rolling.go, util/deployment_util.go):

- Budgets (`resolve_fenceposts`): maxSurge is rounded up, maxUnavailable down;
  if both come out 0 (e.g. 1% of 3), maxUnavailable becomes 1 so the rollout
  can move at all.
- Scale up the new ReplicaSet while the total (sum of spec.replicas) stays
  within replicas + maxSurge (`new_replicas`).
- Scale down old ReplicaSets while the available pods stay at least
  replicas - maxUnavailable (`scale_down_old`): first pods that are not
  available anyway (oldest ReplicaSet first), then available ones.
- A change of spec.replicas in mid-rollout is spread over the active
  ReplicaSets in proportion to their size (`proportional_scale`).

`available` must never be over-counted, or the rollout would go below its
budget: the controller passes min(spec.replicas, available pods), which is
what the ReplicaSet will have once it has removed its surplus (it removes pods
that are not ready first).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from api.fieldtypes import resolve_int_or_percent


@dataclass(frozen=True)
class RSState:
    name: str
    replicas: int            # spec.replicas
    available: int = 0       # available pods, at most `replicas`
    created: float = 0.0     # creation time, for "oldest first"
    max_replicas: int | None = None  # deployment.kubernetes.io/max-replicas annotation


def resolve_fenceposts(max_surge: int | str, max_unavailable: int | str, desired: int) -> tuple[int, int]:
    surge = resolve_int_or_percent(max_surge, desired, True)
    unavailable = resolve_int_or_percent(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def budgets(strategy: dict, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as pod counts for a Deployment's spec.strategy. Recreate has neither
    (it stops everything first); maxUnavailable never exceeds the replicas."""
    if (strategy or {}).get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge, unavailable = resolve_fenceposts(rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%"),
                                            desired)
    if desired == 0:
        return surge, 0
    return surge, min(unavailable, desired)


def new_replicas(*, desired: int, max_surge: int, all_rs: list[RSState], new_rs: RSState) -> int:
    """The new ReplicaSet's size for this step of a rolling update."""
    current = sum(rs.replicas for rs in all_rs)
    max_total = desired + max_surge
    if current >= max_total:
        return new_rs.replicas
    step = min(max_total - current, desired - new_rs.replicas)
    return new_rs.replicas + max(step, 0)


def scale_down_old(*, desired: int, max_unavailable: int, new_rs: RSState, old_rs: list[RSState]) -> dict[str, int]:
    """How far to scale the old ReplicaSets down now; {} when they must wait."""
    old_total = sum(rs.replicas for rs in old_rs)
    if old_total == 0:
        return {}
    min_available = desired - max_unavailable
    new_unavailable = new_rs.replicas - new_rs.available
    max_scaled_down = old_total + new_rs.replicas - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    plan: dict[str, int] = {}
    # 1. Pods that are not available anyway: losing them costs nothing (and they may never become ready).
    done = 0
    for rs in sorted(old_rs, key=lambda r: r.created):
        if done >= max_scaled_down:
            break
        unhealthy = rs.replicas - rs.available
        if rs.replicas == 0 or unhealthy <= 0:
            continue
        step = min(max_scaled_down - done, unhealthy)
        plan[rs.name] = rs.replicas - step
        done += step
    old_rs = [replace(rs, replicas=plan.get(rs.name, rs.replicas)) for rs in old_rs]
    # 2. Available pods, only as far as the budget allows.
    available = sum(min(rs.available, rs.replicas) for rs in old_rs) + new_rs.available
    to_remove = available - min_available
    done = 0
    for rs in sorted(old_rs, key=lambda r: r.created):
        if done >= to_remove:
            break
        if rs.replicas == 0:
            continue
        step = min(rs.replicas, to_remove - done)
        plan[rs.name] = rs.replicas - step
        done += step
    return plan


def _fraction(rs: RSState, *, desired: int, max_surge: int, status_replicas: int) -> int:
    """How much this ReplicaSet should grow (or shrink) so that it keeps its share of the Deployment."""
    if desired == 0:
        return -rs.replicas
    allowed = desired + max_surge
    annotated = rs.max_replicas if rs.max_replicas else status_replicas
    if not annotated:
        return 0
    return int(rs.replicas * allowed / annotated + 0.5) - rs.replicas


def proportional_scale(*, desired: int, max_surge: int, status_replicas: int,
                       active: list[RSState]) -> dict[str, int]:
    """Spread a change of replicas over the active ReplicaSets; the first of the largest takes
    what rounding leaves over. `active` are the ReplicaSets with spec.replicas > 0."""
    allowed = desired + max_surge if desired > 0 else 0
    to_add = allowed - sum(rs.replicas for rs in active)
    if to_add == 0 or not active:
        return {rs.name: rs.replicas for rs in active}
    if to_add > 0:   # grow the largest first, newer before older
        ordered = sorted(active, key=lambda r: (-r.replicas, -r.created))
    else:            # shrink the largest first, older before newer
        ordered = sorted(active, key=lambda r: (-r.replicas, r.created))
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        proportion = 0
        if rs.replicas and to_add != added:
            fraction = _fraction(rs, desired=desired, max_surge=max_surge, status_replicas=status_replicas)
            left = to_add - added
            proportion = min(fraction, left) if to_add > 0 else max(fraction, left)
        sizes[rs.name] = rs.replicas + proportion
        added += proportion
    first = ordered[0].name
    sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes
