"""Content-addressed storage of small blobs: manifests and image configs.

``blobs/sha256/<hex>`` holds the bytes whose SHA-256 is <hex>, so one blob
serves every image that refers to it. Layer blobs do not stay here: they are
downloaded to ``ingest/`` and, once unpacked into layers.py's store, deleted;
the unpacked layer is what a node needs, and keeping both would double the
disk used by images. Writes are atomic (temp file, fsync, rename).
"""

from __future__ import annotations

from pathlib import Path

from agent.images.digest import digest_hex, sha256_digest
from api import atomicfile


class BlobStore:
    def __init__(self, root: Path, *, tmp: Path) -> None:
        self.root = root / "sha256"
        self.tmp = tmp
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / digest_hex(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def get(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def put(self, data: bytes) -> str:
        """Store `data` under its digest (a no-op when present) and return the digest."""
        digest = sha256_digest(data)
        target = self.path(digest)
        if not target.exists():
            write_atomic(target, data, tmp=self.tmp)
        return digest

    def remove(self, digest: str) -> int:
        """Delete a blob; returns the bytes freed."""
        try:
            size = self.path(digest).stat().st_size
            self.path(digest).unlink()
            return size
        except FileNotFoundError:
            return 0

    def digests(self) -> set[str]:
        return {"sha256:" + p.name for p in self.root.iterdir() if len(p.name) == 64}


def write_atomic(target: Path, data: bytes, *, tmp: Path) -> None:
    """Write `data` to `target` so readers see the old content or the new, never a part (api/atomicfile.py)."""
    atomicfile.write_atomic(target, data, tmp_dir=tmp)
