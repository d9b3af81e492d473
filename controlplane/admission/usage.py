"""What an object uses of a namespace's quota, in the units quota arithmetic uses.

One place for "what does this object count as": the quota admission plugin charges it,
and the ResourceQuota controller sums it over what exists. CPU is in millicores, memory
and storage in bytes, counts in objects. A pod that has finished (Succeeded or Failed)
uses nothing, as in Kubernetes.
"""

from __future__ import annotations

from typing import Any, Mapping

from api.quantity import cpu_millis, format_bytes, format_cpu, memory_bytes
from api.registry import ResourceInfo
from api.requests import pod_total
from api.resourcequota import COUNTED

Obj = Mapping[str, Any]


def is_cpu(resource: str) -> bool:
    return resource == "cpu" or resource.endswith(".cpu")


def amount(resource: str, value: Any) -> int:
    """A quota quantity ("500m", "1Gi", 3) as an integer in the resource's unit."""
    return cpu_millis(value) if is_cpu(resource) else memory_bytes(value)


def show(resource: str, value: int) -> str:
    """An integer amount as Kubernetes prints it: cpu `500m`/`2`, memory `1Gi`, counts `3`."""
    if is_cpu(resource):
        return format_cpu(value)
    if resource.endswith(("memory", "storage")):
        return format_bytes(value)
    return str(value)


def _pod_resources(pod: Obj, which: str) -> dict[str, int]:
    """Kubernetes' pod total: the containers' sum, at least the largest init container."""
    def of(container: Obj) -> dict[str, int]:
        res = container.get("resources") or {}
        values = dict(res.get(which) or {})
        if which == "requests":   # a limit without a request means request == limit
            values = {**(res.get("limits") or {}), **values}
        return {name: amount(name, v) for name, v in values.items()}
    return pod_total(pod, of)


def pod_finished(pod: Obj) -> bool:
    return ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed")


def usage(info: ResourceInfo, obj: Obj) -> dict[str, int]:
    """Every quota resource the object uses (only the ones a quota caps matter)."""
    out: dict[str, int] = {f"count/{info.qualified_plural}": 1}
    if info.namespaced and info.plural in COUNTED:
        out[info.plural] = 1
    if info.kind == "Pod":
        if pod_finished(obj):
            return {}
        for name, value in _pod_resources(obj, "requests").items():
            out[f"requests.{name}"] = value
            if name in ("cpu", "memory", "ephemeral-storage"):
                out[name] = value
        for name, value in _pod_resources(obj, "limits").items():
            out[f"limits.{name}"] = value
    elif info.kind == "Service":
        spec = obj.get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        if kind in ("NodePort", "LoadBalancer"):
            out["services.nodeports"] = len(spec.get("ports") or [])
        if kind == "LoadBalancer":
            out["services.loadbalancers"] = 1
    return out


def missing_limits(pod: Obj, hard: Mapping[str, Any]) -> list[str]:
    """Kubernetes refuses a pod that gives no value for a compute resource a quota caps:
    `limits.cpu for: app; requests.memory for: app`."""
    out = []
    containers = (pod.get("spec") or {}).get("containers") or []
    for resource in sorted(("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory")):
        if resource not in hard:
            continue
        which, _, name = resource.rpartition(".")
        names = []
        for c in containers:
            res = c.get("resources") or {}
            present = dict(res.get("limits") or {}) if which == "limits" else \
                {**(res.get("limits") or {}), **(res.get("requests") or {})}
            if name not in present:
                names.append(c.get("name", ""))
        if names:
            out.append(f"{resource} for: {','.join(names)}")
    return out
