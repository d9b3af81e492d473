"""LimitRange admission: default requests and limits for a namespace's containers, and their bounds.

On every pod create, for each LimitRange of the pod's namespace (from the API server's
watch cache), as Kubernetes' LimitRanger:
1. `type: Container` items fill what a container leaves out: `default` → limits,
   `defaultRequest` (else `default`) → requests; the pod's QoS class is worked out again;
2. then bounds are checked and a pod outside them is refused (Forbidden), worded as
   Kubernetes words it: `maximum cpu usage per Container is 1, but limit is 2`,
   `minimum memory usage per Container is 100Mi, but request is 50Mi`,
   `cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000`;
   `type: Pod` items bound the sums over the pod's containers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from api.quantity import parse_quantity
from api.registry import ResourceInfo, lookup
from controlplane.auth.authz import Forbidden

if TYPE_CHECKING:
    from controlplane.apiserver.handlers import Handlers

Obj = dict[str, Any]


def apply_defaults(pod: Obj, ranges: Iterable[Mapping[str, Any]]) -> bool:
    """Fill containers' missing requests and limits from `type: Container` items; True if changed."""
    changed = False
    for limit_range in ranges:
        for item in (limit_range.get("spec") or {}).get("limits") or []:
            if item.get("type") != "Container":
                continue
            default = item.get("default") or {}
            default_request = {**default, **(item.get("defaultRequest") or {})}
            for c in (pod.get("spec") or {}).get("containers") or []:
                res = c.setdefault("resources", {}) or {}
                c["resources"] = res
                limits, requests = dict(res.get("limits") or {}), dict(res.get("requests") or {})
                for name, value in default.items():
                    if name not in limits:
                        limits[name] = value
                        changed = True
                for name, value in default_request.items():
                    if name not in requests:
                        # A limit the user gave and no request: the request is that limit (as the model does).
                        requests[name] = (res.get("limits") or {}).get(name, value)
                        changed = True
                if limits:
                    res["limits"] = limits
                if requests:
                    res["requests"] = requests
    return changed


def _show(value: Any) -> str:
    return str(value)


def violations(pod: Obj, ranges: Iterable[Mapping[str, Any]]) -> list[str]:
    out: list[str] = []
    containers = (pod.get("spec") or {}).get("containers") or []
    for limit_range in ranges:
        for item in (limit_range.get("spec") or {}).get("limits") or []:
            kind = item.get("type")
            if kind == "Container":
                for c in containers:
                    res = c.get("resources") or {}
                    out += _check(kind, res.get("requests") or {}, res.get("limits") or {}, item)
            elif kind == "Pod":
                requests: dict[str, Any] = {}
                limits: dict[str, Any] = {}
                for c in containers:
                    res = c.get("resources") or {}
                    for total, values in ((requests, res.get("requests") or {}), (limits, res.get("limits") or {})):
                        for name, value in values.items():
                            total[name] = total.get(name, 0) + parse_quantity(value)
                out += _check(kind, requests, limits, item)
    return out


def _check(kind: str, requests: Mapping[str, Any], limits: Mapping[str, Any], item: Mapping[str, Any]) -> list[str]:
    out = []
    for name, low in (item.get("min") or {}).items():
        if name not in requests:
            out.append(f"minimum {name} usage per {kind} is {low}.  No request is specified")
        elif parse_quantity(requests[name]) < parse_quantity(low):
            out.append(f"minimum {name} usage per {kind} is {low}, but request is {_show(requests[name])}")
    for name, high in (item.get("max") or {}).items():
        if name not in limits:
            out.append(f"maximum {name} usage per {kind} is {high}.  No limit is specified")
        elif parse_quantity(limits[name]) > parse_quantity(high):
            out.append(f"maximum {name} usage per {kind} is {high}, but limit is {_show(limits[name])}")
    for name, ratio in (item.get("maxLimitRequestRatio") or {}).items():
        if name in limits and name in requests and parse_quantity(requests[name]) > 0:
            actual = parse_quantity(limits[name]) / parse_quantity(requests[name])
            if actual > parse_quantity(ratio):
                out.append(f"{name} max limit to request ratio per {kind} is {ratio}, but provided ratio is "
                           f"{float(actual):f}")
    return out


class LimitRangeAdmission:
    def __init__(self, handlers: "Handlers"):
        self.h = handlers

    def ranges(self, namespace: str) -> list[Mapping[str, Any]]:
        cache = self.h.cache(lookup("limitranges"))
        prefix = self.h.store.key("limitranges", namespace, "")
        return [obj for key, obj in list(cache.objects.items()) if key.startswith(prefix)]

    async def __call__(self, operation: str, info: ResourceInfo, obj: Obj, old: Obj | None, *,
                       dry_run: bool = False) -> None:
        if operation != "CREATE" or info.kind != "Pod":
            return
        ranges = self.ranges((obj.get("metadata") or {}).get("namespace") or "default")
        if not ranges:
            return
        if apply_defaults(obj, ranges):
            from controlplane.apiserver.strategy import PodStrategy
            PodStrategy().prepare_for_create(obj)   # the QoS class follows the defaulted resources
        problems = violations(obj, ranges)
        if problems:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise Forbidden(f'pods "{name}" is forbidden: ' + ", ".join(problems))
