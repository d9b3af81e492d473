"""kubectl apply's three-way merge.

The live object keeps a copy of the last manifest applied to it (annotation
`kubectl.kubernetes.io/last-applied-configuration`). A new apply changes only
what the user's manifests own: fields in the new manifest are set, fields that
were in the last manifest but are gone from the new one are removed, and every
other live field — set by the server, a controller or the scheduler, like
`spec.nodeName` or a scaled `spec.replicas` — is kept.

Maps merge key by key; lists are replaced whole (kubectl's strategic merge
of lists by key, e.g. containers by name, is a refinement left for later).
"""

from __future__ import annotations

import json
from typing import Any

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def three_way_merge(last: dict[str, Any], new: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    result = dict(live)
    for key in last:
        if key not in new:
            result.pop(key, None)
    for key, value in new.items():
        live_value = live.get(key)
        if isinstance(value, dict) and isinstance(live_value, dict):
            last_value = last.get(key)
            result[key] = three_way_merge(last_value if isinstance(last_value, dict) else {}, value, live_value)
        else:
            result[key] = value
    return result


def last_applied(live: dict[str, Any]) -> dict[str, Any]:
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def with_last_applied(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest carrying its own text in the last-applied annotation."""
    clean = json.loads(json.dumps(manifest))
    annotations = (clean.get("metadata") or {}).get("annotations") or {}
    annotations.pop(LAST_APPLIED, None)
    if not annotations and "metadata" in clean:
        clean["metadata"].pop("annotations", None)
    text = json.dumps(clean, separators=(",", ":"), sort_keys=True)
    out = json.loads(json.dumps(manifest))
    out.setdefault("metadata", {}).setdefault("annotations", {})[LAST_APPLIED] = text
    return out
