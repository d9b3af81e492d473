"""The downward API, resolved: the values a pod's own fields and resources stand for.

A container can learn facts about itself in two ways, and both name them the
same way (api/downward.py): an environment variable with `valueFrom.fieldRef` /
`valueFrom.resourceFieldRef` (agent/envs.py), or a file of a `downwardAPI`
volume (agent/volumes.py). This module turns such a reference into its text,
with Kubernetes' rules:

- `metadata.labels['app']` is one label's value ("" when the label is missing);
  plain `metadata.labels` (volumes only) is every label as `key="value"` lines,
  sorted by key, as Kubernetes' FormatMap writes them.
- `status.podIPs` / `status.hostIPs` are comma-separated.
- `limits.cpu` and friends are divided by the divisor (default 1) and rounded
  *up* to a whole number: 250m of cpu is "1" with divisor 1 and "250" with
  divisor 1m. A limit that is not set is the node's allocatable amount.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from fractions import Fraction
from typing import Any

from api.quantity import QuantityError, parse_quantity


class DownwardError(ValueError):
    """A field or resource reference that cannot be resolved; the message says which."""


def _subscript(field_path: str) -> tuple[str, str] | None:
    """("metadata.labels", "app") for "metadata.labels['app']", else None."""
    for prefix in ("metadata.labels[", "metadata.annotations["):
        if field_path.startswith(prefix) and field_path.endswith("]"):
            key = field_path[len(prefix):-1]
            if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"":
                key = key[1:-1]
            return prefix[:-1], key
    return None


def format_map(values: dict[str, str]) -> str:
    """Kubernetes' FormatMap: `key="value"` lines sorted by key, no trailing newline.

    Go's %q quoting is approximated with JSON string quoting (identical for
    printable text; control characters are escaped slightly differently)."""
    return "\n".join(f"{key}={json.dumps(values[key], ensure_ascii=False)}" for key in sorted(values))


def _node_ips(node: dict[str, Any] | None) -> list[str]:
    addresses = ((node or {}).get("status") or {}).get("addresses") or []
    return [a["address"] for a in addresses if a.get("type") == "InternalIP"] or \
           [a["address"] for a in addresses if a.get("type") == "ExternalIP"]


def field_value(pod: dict[str, Any], field_path: str, *, node: dict[str, Any] | None = None) -> str:
    """The text of one pod field, e.g. field_value(pod, "status.podIP") -> "198.18.0.5"."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    subscripted = _subscript(field_path)
    if subscripted is not None:
        where, key = subscripted
        return str((meta.get(where.split(".")[1]) or {}).get(key, ""))
    if field_path == "metadata.name":
        return meta.get("name", "")
    if field_path == "metadata.namespace":
        return meta.get("namespace", "")
    if field_path == "metadata.uid":
        return meta.get("uid", "")
    if field_path == "metadata.labels":
        return format_map(meta.get("labels") or {})
    if field_path == "metadata.annotations":
        return format_map(meta.get("annotations") or {})
    if field_path == "spec.nodeName":
        return spec.get("nodeName") or ""
    if field_path == "spec.serviceAccountName":
        return spec.get("serviceAccountName") or ""
    if field_path in ("status.hostIP", "status.hostIPs"):
        ips = [ip["ip"] for ip in status.get("hostIPs") or []] or \
              ([status["hostIP"]] if status.get("hostIP") else _node_ips(node))
        return ips[0] if field_path == "status.hostIP" and ips else ",".join(ips)
    if field_path in ("status.podIP", "status.podIPs"):
        ips = [ip["ip"] for ip in status.get("podIPs") or []] or ([status["podIP"]] if status.get("podIP") else [])
        return ips[0] if field_path == "status.podIP" and ips else ",".join(ips)
    raise DownwardError(f"unsupported fieldPath: {field_path}")


# ---- resources ----

def _machine_allocatable(resource: str) -> str | None:
    """What this machine has, for when no Node object is at hand."""
    if resource == "cpu":
        return str(os.cpu_count() or 1)
    if resource == "memory":
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1])}Ki"
        return None
    if resource == "ephemeral-storage":
        return str(shutil.disk_usage("/").total)
    return None


def _quantity(text: str, what: str) -> Fraction:
    try:
        return parse_quantity(text)
    except QuantityError as e:
        raise DownwardError(f"{what}: {e}") from None


def resource_value(container: dict[str, Any], resource: str, *, divisor: str | None = None,
                   node: dict[str, Any] | None = None) -> str:
    """The text of `limits.cpu`, `requests.memory`, ... of one container, divided and rounded up.

    An unset limit is the node's allocatable amount (node=None: this machine's
    capacity); an unset request is 0.
    """
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise DownwardError(f"unsupported container resource: {resource}")
    amounts = (container.get("resources") or {}).get(kind) or {}
    text = amounts.get(name)
    if text is None and kind == "limits":
        allocatable = ((node or {}).get("status") or {}).get("allocatable") or {}
        text = allocatable.get(name) if node is not None else _machine_allocatable(name)
    value = _quantity(str(text), resource) if text is not None else Fraction(0)
    unit = _quantity(divisor, f"{resource} divisor") if divisor else Fraction(1)
    if name == "cpu":
        # Kubernetes: ceil(MilliValue(value) / MilliValue(divisor)).
        value_millis, unit_millis = math.ceil(value * 1000), math.ceil(unit * 1000)
        if unit_millis <= 0:
            raise DownwardError(f"{resource} divisor {divisor!r}: must be greater than 0")
        return str(math.ceil(Fraction(value_millis, unit_millis)))
    whole, unit_whole = math.ceil(value), math.ceil(unit)
    if unit_whole <= 0:
        raise DownwardError(f"{resource} divisor {divisor!r}: must be at least 1")
    return str(math.ceil(Fraction(whole, unit_whole)))


def find_container(pod: dict[str, Any], name: str) -> dict[str, Any] | None:
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if container.get("name") == name:
            return container
    return None
