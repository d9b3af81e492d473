"""Writing files that hold keys or credentials: atomically, durably, never readable by others.

One helper for the cluster's key files (controlplane/pki, agent/certificates.py) and client
configs (kubeconfig.py): api/atomicfile.py's write_atomic, owner-only; the temporary file has its final mode before the first byte is
written, is fsync'd, renamed over the target, and the directory is fsync'd.
"""

from __future__ import annotations

from pathlib import Path

from api.atomicfile import write_atomic


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, mode=mode)
