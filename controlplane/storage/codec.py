"""How objects are encoded in etcd: compact JSON without metadata.resourceVersion,
which is the key's mod_revision and is filled in on every read."""

from __future__ import annotations

import json
import re
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


# The start of every object the API server writes: apiVersion, kind, then metadata
# (the order of the models' fields). Objects of that shape get their resourceVersion
# spliced in without a JSON round trip; anything else is decoded and encoded.
_HEAD = re.compile(rb'\{"apiVersion":"[^"\\]*","kind":"[^"\\]*","metadata":\{')


def encode_with_version(value: bytes, mod_revision: int, obj: dict[str, Any] | None = None) -> bytes:
    """The JSON a client receives for a stored value: the value with metadata.resourceVersion
    set to mod_revision. `obj`, the decoded form (if at hand), saves a decode on the slow path."""
    head = _HEAD.match(value)
    if head is not None:
        end = head.end()
        sep = b"" if value[end:end + 1] == b"}" else b","
        return b'%s"resourceVersion":"%d"%s%s' % (value[:end], mod_revision, sep, value[end:])
    if obj is None:
        obj = decode(value, mod_revision)
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
