"""Taints and tolerations as the controllers use them: on JSON dicts, pure functions.

The meaning of "a toleration tolerates a taint" is Kubernetes' ToleratesTaint,
the same rule as api/affinity.Toleration.tolerates (which the scheduler uses on
models); here it works on the dicts controllers read from their informers.

- The node lifecycle controller (controlplane/controllers/nodelifecycle.py) turns a node's Ready
  condition into the `not-ready` / `unreachable` taints (`condition_taints`) and
  decides when a pod on a NoExecute-tainted node must go (`eviction_time`).
- The DaemonSet controller (controlplane/controllers/daemonset.py) adds the tolerations Kubernetes gives
  every daemon pod (`daemon_tolerations`) and asks which taints a pod would not
  tolerate (`untolerated`).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
PID_PRESSURE = "node.kubernetes.io/pid-pressure"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE = "NoSchedule", "NoExecute", "PreferNoSchedule"

# The taints that follow the Ready condition, in both effects (Kubernetes' node
# lifecycle controller: NoSchedule keeps new pods away, NoExecute evicts).
CONDITION_TAINT_KEYS = (NOT_READY, UNREACHABLE)
_KEY_FOR_READY = {"False": NOT_READY, "Unknown": UNREACHABLE}

Obj = Mapping[str, Any]


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Kubernetes' ToleratesTaint, on dicts: effect (if set) and key (if set) must match; Exists
    ignores the value, Equal (the default) compares it; any other operator tolerates nothing.
    The one implementation: the scheduler's TaintToleration plugin and `api.affinity.Toleration`
    use it."""
    effect = toleration.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key")
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated(taints: Iterable[Obj], tolerations: Iterable[Obj] | None, *,
                effects: tuple[str, ...] = (NO_SCHEDULE, NO_EXECUTE)) -> list[Obj]:
    """The taints with one of `effects` that no toleration tolerates."""
    tolerations = list(tolerations or [])
    return [t for t in taints if t.get("effect") in effects and not any(tolerates(tl, t) for tl in tolerations)]


def scheduling_taints(node: Obj) -> list[Obj]:
    """The node's taints, plus `unschedulable:NoSchedule` when it is cordoned (as the
    scheduler's NodeUnschedulable plugin sees spec.unschedulable)."""
    spec = node.get("spec") or {}
    taints = list(spec.get("taints") or [])
    if spec.get("unschedulable") and not any(t.get("key") == UNSCHEDULABLE for t in taints):
        taints.append({"key": UNSCHEDULABLE, "effect": NO_SCHEDULE})
    return taints


def condition_taints(taints: Iterable[Obj], ready_status: str | None, *, now: str) -> list[dict[str, Any]]:
    """The node's taints with the not-ready/unreachable pair set to match its Ready condition.

    Ready True or absent: neither; False: `not-ready`; Unknown: `unreachable` — each as
    NoSchedule and NoExecute. Taints already present keep their timeAdded; other taints
    are kept as they are.
    """
    wanted_key = _KEY_FOR_READY.get(ready_status or "")
    out: list[dict[str, Any]] = []
    have = set()
    for taint in taints:
        key = taint.get("key")
        if key in CONDITION_TAINT_KEYS and key != wanted_key:
            continue
        out.append(dict(taint))
        have.add((key, taint.get("effect")))
    if wanted_key:
        for effect in (NO_SCHEDULE, NO_EXECUTE):
            if (wanted_key, effect) not in have:
                taint = {"key": wanted_key, "effect": effect}
                if effect == NO_EXECUTE:
                    taint["timeAdded"] = now
                out.append(taint)
    return out


def eviction_delay(taint: Obj, tolerations: Iterable[Obj] | None, *, default_seconds: float) -> float | None:
    """Seconds a pod may stay after a NoExecute `taint` appears; None means forever.

    No matching toleration: at once — except for the not-ready and unreachable taints,
    where a pod without its own toleration gets `default_seconds` (Kubernetes adds
    that toleration to every pod at admission, DefaultTolerationSeconds, 300 s; our
    default is the controller's pod eviction timeout). Matching tolerations: the
    smallest tolerationSeconds among them; none has one: forever.
    """
    matching = [t for t in tolerations or [] if tolerates(t, taint)]
    if not matching:
        return float(default_seconds) if taint.get("key") in CONDITION_TAINT_KEYS else 0.0
    seconds = [t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None]
    if not seconds:
        return None
    return max(0.0, float(min(seconds)))


def eviction_time(pod: Obj, taints: Iterable[Obj], *, default_seconds: float,
                  added_at: Mapping[tuple[str, str], float]) -> float | None:
    """When (clock seconds) the pod must be evicted because of the node's NoExecute
    taints; None when it tolerates them all forever. `added_at` maps (key, effect) of
    each NoExecute taint to when it was added."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    when: float | None = None
    for taint in taints:
        if taint.get("effect") != NO_EXECUTE:
            continue
        delay = eviction_delay(taint, tolerations, default_seconds=default_seconds)
        if delay is None:
            continue
        at = added_at.get((taint.get("key", ""), NO_EXECUTE), 0.0) + delay
        when = at if when is None else min(when, at)
    return when


def daemon_tolerations(pod_spec: Obj) -> list[dict[str, Any]]:
    """The pod's tolerations plus those Kubernetes adds to every DaemonSet pod: stay on
    not-ready and unreachable nodes, run on cordoned nodes and under resource pressure
    (and without a pod network when the pod uses the host's)."""
    tolerations = [dict(t) for t in pod_spec.get("tolerations") or []]
    wanted = [(NOT_READY, NO_EXECUTE), (UNREACHABLE, NO_EXECUTE), (DISK_PRESSURE, NO_SCHEDULE),
              (MEMORY_PRESSURE, NO_SCHEDULE), (PID_PRESSURE, NO_SCHEDULE), (UNSCHEDULABLE, NO_SCHEDULE)]
    if pod_spec.get("hostNetwork"):
        wanted.append((NETWORK_UNAVAILABLE, NO_SCHEDULE))
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("operator") == "Exists" and t.get("effect") == effect
                   and t.get("tolerationSeconds") is None for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    return tolerations
