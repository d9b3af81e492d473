"""The arithmetic of the HorizontalPodAutoscaler, as Kubernetes' replica calculator does it (pure functions).

`replicas_for_metric` is kube-controller-manager's GetResourceReplicas: the usage ratio
(average use over average request, over the target) over the Ready pods that have a
sample; within TOLERANCE (10 %) nothing changes; else, when some pods have no sample
yet they are assumed to use 100 % of their request on a scale down and 0 % on a scale
up, and pods not Ready count as 0 % on a scale up — then the ratio is worked out again
and a change that flips direction or falls within tolerance is dropped.

`stabilize` is the stabilisation window: a scale down goes only to the highest
recommendation of the last `scaleDown.stabilizationWindowSeconds` (300 s by default), a
scale up only to the lowest of the last `scaleUp` window (0 s by default).
`rate_limit` bounds one step: by default up to max(2 × current, current + 4) (Kubernetes'
100 % or 4 pods per 15 s), down without limit; `behavior.*.policies` replace these
(Pods: ± value, Percent: ± value % of current; selectPolicy Max, Min or Disabled) — the
policies' periods are not tracked across steps (one step per sync).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

TOLERANCE = 0.1
DEFAULT_METRIC = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                              "averageUtilization": 80}}}
DEFAULT_DOWN_WINDOW = 300.0


@dataclass
class PodSample:
    """One pod as the calculator sees it: its request and usage of the metric's resource
    (cpu in millicores, memory in bytes), None usage when there is no sample yet."""

    name: str
    request: int
    usage: int | None
    ready: bool


@dataclass
class Result:
    replicas: int
    utilization: int | None          # percent of requests, over the pods with samples
    average: int | None              # average usage per pod (millicores or bytes)


def replicas_for_metric(current: int, pods: list[PodSample], target: Mapping[str, Any],
                        tolerance: float = TOLERANCE) -> Result:
    """Desired replicas for one Resource metric (target: its MetricTarget)."""
    with_sample = [p for p in pods if p.usage is not None and p.ready]
    unready = [p for p in pods if not p.ready]
    missing = [p for p in pods if p.usage is None and p.ready]
    if not with_sample:
        raise ValueError("did not receive metrics for targeted pods (pods might be unready)")
    usage = sum(p.usage or 0 for p in with_sample)
    requests = sum(p.request for p in with_sample)
    by_utilization = target.get("type") == "Utilization"
    if by_utilization:
        if requests <= 0:
            raise ValueError("missing request for the resource")
        utilization = usage * 100 / requests
        ratio = utilization / float(target["averageUtilization"])
    else:
        utilization = None
        ratio = (usage / len(with_sample)) / float(target["averageValue"])
    shown_util = int(utilization) if utilization is not None else None
    average = usage // len(with_sample)
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not missing and not scale_up_with_unready:
        if abs(1.0 - ratio) <= tolerance:
            return Result(current, shown_util, average)
        return Result(math.ceil(ratio * len(with_sample)), shown_util, average)
    # Fill the gaps conservatively and look again.
    filled_usage, filled_requests, count = usage, requests, len(with_sample)
    for p in missing:
        filled_usage += p.request if ratio < 1.0 else 0
        filled_requests += p.request
        count += 1
    if scale_up_with_unready:
        for p in unready:
            filled_requests += p.request
            count += 1
    if by_utilization:
        new_ratio = (filled_usage * 100 / filled_requests) / float(target["averageUtilization"])
    else:
        new_ratio = (filled_usage / count) / float(target["averageValue"])
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Result(current, shown_util, average)
    replicas = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Result(current, shown_util, average)
    return Result(replicas, shown_util, average)


def windows(behavior: Mapping[str, Any] | None) -> tuple[float, float]:
    """(scale-up window, scale-down window) in seconds."""
    behavior = behavior or {}
    up = (behavior.get("scaleUp") or {}).get("stabilizationWindowSeconds")
    down = (behavior.get("scaleDown") or {}).get("stabilizationWindowSeconds")
    return float(up or 0), float(DEFAULT_DOWN_WINDOW if down is None else down)


def stabilize(current: int, desired: int, history: Iterable[tuple[float, int]], now: float,
              behavior: Mapping[str, Any] | None) -> int:
    """Kubernetes' stabilizeRecommendationWithBehaviors over past (time, recommendation) pairs."""
    up_window, down_window = windows(behavior)
    up, down = desired, desired
    for at, recommendation in history:
        if at > now - up_window:
            up = min(up, recommendation)
        if at > now - down_window:
            down = max(down, recommendation)
    out = current
    if out < up:
        out = up
    if out > down:
        out = down
    return out


def rate_limit(current: int, desired: int, behavior: Mapping[str, Any] | None) -> int:
    """Bound one step by the scaling policies (see the module docstring)."""
    behavior = behavior or {}
    if desired > current:
        rules = behavior.get("scaleUp") or {}
        if rules.get("selectPolicy") == "Disabled":
            return current
        policies = rules.get("policies") or [{"type": "Percent", "value": 100}, {"type": "Pods", "value": 4}]
        limits = [current + (p["value"] if p["type"] == "Pods" else math.ceil(current * p["value"] / 100))
                  for p in policies]
        cap = min(limits) if rules.get("selectPolicy") == "Min" else max(limits)
        return min(desired, cap)
    if desired < current:
        rules = behavior.get("scaleDown") or {}
        if rules.get("selectPolicy") == "Disabled":
            return current
        policies = rules.get("policies") or [{"type": "Percent", "value": 100}]
        floors = [current - (p["value"] if p["type"] == "Pods" else math.floor(current * p["value"] / 100))
                  for p in policies]
        floor = max(floors) if rules.get("selectPolicy") == "Min" else min(floors)
        return max(desired, floor)
    return desired
