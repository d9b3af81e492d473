"""`describe secret`, following kubectl's describeSecret: the type and each key's size in
bytes, never the values (a describe is often pasted into a ticket or a chat)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cli.describe.writer import Out, identity


def _size(encoded: Any) -> int:
    try:
        return len(base64.b64decode(str(encoded), validate=True))
    except (binascii.Error, ValueError):
        return len(str(encoded))


def describe_secret(secret: dict[str, Any]) -> str:
    w = Out()
    identity(w, secret.get("metadata") or {})
    w(0, f"\nType:\t{secret.get('type') or 'Opaque'}\n")
    w(0, "\nData\n====\n")
    for key, value in sorted((secret.get("data") or {}).items()):
        w(0, f"{key}:\t{_size(value)} bytes\n")
    return w.text()
