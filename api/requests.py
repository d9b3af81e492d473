"""Resource arithmetic on pods in their JSON (dict) form — the hot path of scheduling
and binding, where parsing every pod into a model would cost too much.

`pod_requests_dict` follows Kubernetes: the sum over containers, but at least the
largest request of any single init container. cpu is in millicores, memory in bytes,
other resources in whole units. Every pod also takes one of the node's `pods`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from api.quantity import cpu_millis, memory_bytes


def amount(resource: str, value: Any) -> int:
    return cpu_millis(value) if resource == "cpu" else memory_bytes(value)


def container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    res = container.get("resources") or {}
    # A limit without a request means request == limit (defaulted by api/, repeated for raw input).
    merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
    return {name: amount(name, value) for name, value in merged.items()}


def pod_requests_dict(pod: Mapping[str, Any]) -> dict[str, int]:
    return {"cpu": 0, "memory": 0, **pod_total(pod, container_requests), "pods": 1}


def pod_total(pod: Mapping[str, Any], of: Callable[[Mapping[str, Any]], dict[str, int]]) -> dict[str, int]:
    """Kubernetes' pod total of a per-container amount `of` (requests here; requests or limits for
    quota admission): the containers' sum, but at least the largest single init container's."""
    spec = pod.get("spec") or {}
    total: dict[str, int] = {}
    for c in spec.get("containers") or []:
        for name, value in of(c).items():
            total[name] = total.get(name, 0) + value
    for c in spec.get("initContainers") or []:
        for name, value in of(c).items():
            total[name] = max(total.get(name, 0), value)
    return total


def allocatable_dict(node: Mapping[str, Any]) -> dict[str, int]:
    status = node.get("status") or {}
    alloc = status.get("allocatable") or status.get("capacity") or {}
    return {name: amount(name, value) for name, value in alloc.items()}
