"""The command-line forms of a node's registration: `k=v,k2=v2` pairs (labels, reserved
resources) and `key[=value]:Effect,...` taints.

One parser for each, shared by `skiff-agent` (--node-labels, --register-with-taints,
--reserved) and the hollow nodes (--labels, --taints), so both read a flag alike. Each
raises ValueError naming the flag and the item it could not read. Pure stdlib.
"""

from __future__ import annotations

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def parse_pairs(text: str, flag: str) -> dict[str, str]:
    """"a=1, b=" -> {"a": "1", "b": ""}; an item without "=" or without a key is an error."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag}: expected key=value, got {item!r}")
        out[key] = value
    return out


def parse_taints(text: str, flag: str) -> list[dict[str, str]]:
    """"gpu=yes:NoSchedule,spot:NoExecute" -> taint dicts (no "value" key when none is given)."""
    taints = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        spec, sep, effect = item.rpartition(":")
        if not sep or effect not in TAINT_EFFECTS:
            raise ValueError(f"{flag}: expected key[=value]:Effect with Effect one of "
                             f"{', '.join(TAINT_EFFECTS)}; got {item!r}")
        key, _, value = spec.partition("=")
        taints.append({"key": key, **({"value": value} if value else {}), "effect": effect})
    return taints
