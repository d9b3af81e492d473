"""`describe` for any kind without a layout of its own: kubectl's generic describer.

Name, Namespace, Labels, Annotations, API Version, Kind, then every other
field as an indented `Key:  value` tree (keys in words: `matchLabels` ->
`Match Labels`), then Events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.registry import ResourceInfo
from cli.describe.writer import Out, controlled_by, describe_events, identity
from cli.timefmt import now, rfc1123z


def _title(key: str) -> str:
    """`matchLabels` -> `Match Labels`, as kubectl's generic describer prints field names."""
    out = ""
    for i, ch in enumerate(key):
        if ch.isupper() and i and not key[i - 1].isupper():
            out += " "
        out += ch
    return out[:1].upper() + out[1:]


# Maps whose keys are data (label keys, resource names), printed as they are.
FREE_FORM = {"labels", "annotations", "matchLabels", "nodeSelector", "selector", "data", "stringData", "binaryData",
             "limits", "requests", "capacity", "allocatable", "hard", "used"}


def _tree(w: Out, value: Any, level: int, *, raw_keys: bool = False) -> None:
    """Nested fields as `Key:  value` lines, keys sorted (kubectl's printUnstructuredContent).
    List items follow one another at the list's level."""
    if isinstance(value, dict):
        for key in sorted(value):
            item = value[key]
            label = key if raw_keys else _title(key)
            if isinstance(item, (dict, list)) and item:
                w(level, f"{label}:\n")
                raw = key in FREE_FORM and isinstance(item, dict) and \
                    not any(isinstance(v, (dict, list)) for v in item.values())
                _tree(w, item, level + 1, raw_keys=raw)
            else:
                w(level, f"{label}:\t{_scalar(item)}\n")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                _tree(w, item, level)
            else:
                w(level, f"{_scalar(item)}\n")


def _scalar(value: Any) -> str:
    if value is None or value == {} or value == []:
        return "<none>" if value is None else ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).replace("\n", "\\n")


def describe_generic(info: ResourceInfo, obj: dict[str, Any], events: list[dict[str, Any]], *,
                     at: datetime | None = None) -> str:
    at = at or now()
    w = Out()
    meta = obj.get("metadata") or {}
    identity(w, meta, namespaced=info.namespaced)
    w(0, f"API Version:\t{obj.get('apiVersion', info.api_version)}\n")
    w(0, f"Kind:\t{obj.get('kind', info.kind)}\n")
    if meta.get("creationTimestamp"):
        w(0, f"CreationTimestamp:\t{rfc1123z(meta['creationTimestamp'])}\n")
    if owner := controlled_by(obj):
        w(0, f"Controlled By:\t{owner}\n")
    rest = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    _tree(w, rest, 0)
    describe_events(w, events, at)
    return w.text()
