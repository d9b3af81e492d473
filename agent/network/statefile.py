"""Small JSON state files written atomically: the IPAM allocations (ipam.py) and the
hostPort reservations (hostports.py) survive agent restarts and crashes through them.

A write goes to a temporary file in the same directory, is fsync'ed, renamed over
the old file, and the directory is fsync'ed: after a crash the file holds either the
old or the new document, never a mix and never nothing (controlplane/client/privatefile.py). Blocking file work: callers
run it off the event loop (NodeNetwork runs it on its worker thread).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from controlplane.client.privatefile import write_private

from .errors import NetworkError


def read_json(path: Path) -> dict[str, Any] | None:
    """The document at `path`, or None if there is no file. A damaged file is an error,
    never silently an empty state: that would hand out addresses that are in use."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise NetworkError(f"network state file {path} is damaged ({exc}); "
                           f"tear the node network down to start afresh") from None
    if not isinstance(document, dict):
        raise NetworkError(f"network state file {path} is damaged: expected a JSON object")
    return document


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Replace `path` with `document` atomically and durably (mode 0600, as before)."""
    write_private(path, json.dumps(document, indent=1, sort_keys=True).encode())
