"""`ctl get` columns of CronJob, HorizontalPodAutoscaler, PodDisruptionBudget, ResourceQuota and
LimitRange, as kubectl prints them (its printers in k8s.io/kubernetes/pkg/printers/internalversion)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from api.printing.columns import AGE, NAME, Column, get
from api.printing.timefmt import since

Obj = dict[str, Any]


def _cron_last_schedule(cj: Obj, at: datetime) -> str:
    last = get(cj, "status.lastScheduleTime")
    return since(last, at) if last else "<none>"


def _hpa_reference(hpa: Obj, _now: datetime) -> str:
    ref = get(hpa, "spec.scaleTargetRef", {})
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def hpa_targets(hpa: Obj) -> str:
    """kubectl's TARGETS: `cpu: 45%/50%` per metric (`<unknown>` before the first reading)."""
    metrics = get(hpa, "spec.metrics") or [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    current = {m.get("resource", {}).get("name"): m.get("resource", {}).get("current", {})
               for m in get(hpa, "status.currentMetrics", []) or [] if m.get("type") == "Resource"}
    out = []
    for metric in metrics:
        res = metric.get("resource") or {}
        target = res.get("target") or {}
        now = current.get(res.get("name")) or {}
        if target.get("type") == "Utilization":
            have = f"{now['averageUtilization']}%" if now.get("averageUtilization") is not None else "<unknown>"
            out.append(f"{res.get('name')}: {have}/{target.get('averageUtilization')}%")
        else:
            have = str(now["averageValue"]) if now.get("averageValue") is not None else "<unknown>"
            out.append(f"{res.get('name')}: {have}/{target.get('averageValue')}")
    return ", ".join(out)


def _pdb_value(path: str) -> Callable[[Obj, datetime], str]:
    return lambda obj, _now: "N/A" if get(obj, path) is None else str(get(obj, path))


def _quota_request(quota: Obj, _now: datetime) -> str:
    hard, used = get(quota, "status.hard") or get(quota, "spec.hard", {}), get(quota, "status.used", {})
    parts = [f"{name}: {used.get(name, '0')}/{value}" for name, value in sorted(hard.items())
             if not name.startswith("limits.")]
    return ", ".join(parts)


def _quota_limit(quota: Obj, _now: datetime) -> str:
    hard, used = get(quota, "status.hard") or get(quota, "spec.hard", {}), get(quota, "status.used", {})
    return ", ".join(f"{name}: {used.get(name, '0')}/{value}" for name, value in sorted(hard.items())
                     if name.startswith("limits."))


COLUMNS: dict[str, list[Column]] = {
    "CronJob": [NAME, Column("SCHEDULE", lambda o, _: get(o, "spec.schedule", "")),
                Column("TIMEZONE", lambda o, _: get(o, "spec.timeZone") or "<none>"),
                Column("SUSPEND", lambda o, _: str(bool(get(o, "spec.suspend", False)))),
                Column("ACTIVE", lambda o, _: str(len(get(o, "status.active", []) or []))),
                Column("LAST SCHEDULE", _cron_last_schedule), AGE],
    "HorizontalPodAutoscaler": [NAME, Column("REFERENCE", _hpa_reference),
                                Column("TARGETS", lambda o, _: hpa_targets(o)),
                                Column("MINPODS", lambda o, _: str(get(o, "spec.minReplicas", 1))),
                                Column("MAXPODS", lambda o, _: str(get(o, "spec.maxReplicas", 0))),
                                Column("REPLICAS", lambda o, _: str(get(o, "status.currentReplicas", 0))), AGE],
    "PodDisruptionBudget": [NAME, Column("MIN AVAILABLE", _pdb_value("spec.minAvailable")),
                            Column("MAX UNAVAILABLE", _pdb_value("spec.maxUnavailable")),
                            Column("ALLOWED DISRUPTIONS", lambda o, _: str(get(o, "status.disruptionsAllowed", 0))),
                            AGE],
    "ResourceQuota": [NAME, AGE, Column("REQUEST", _quota_request), Column("LIMIT", _quota_limit)],
    "LimitRange": [NAME, Column("CREATED AT", lambda o, _: get(o, "metadata.creationTimestamp", ""))],
}

