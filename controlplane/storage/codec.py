"""How objects are encoded in etcd: compact JSON without metadata.resourceVersion,
which is the key's mod_revision and is filled in on every read."""

from __future__ import annotations

import json
from typing import Any


def encode(obj: dict[str, Any]) -> bytes:
    meta = obj.get("metadata")
    if meta and "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def decode(value: bytes, mod_revision: int) -> dict[str, Any]:
    obj = json.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(mod_revision)
    return obj
