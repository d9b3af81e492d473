"""The catalog: which images the store holds, under which names, persisted in images.json.

Blobs (blobs.py) and layers (layers.py) are shared content; the catalog ties
them together into images. One `ImageRecord` per manifest digest lists the
image's names, its config digest and its layers' diff_ids. A name belongs to
one image at a time: pulling ``busybox:latest`` again after the tag moved
takes the name off the old image (which stays, nameless, until garbage
collection or removal, since a container may still run from it).

The file is rewritten atomically after each change; a lock makes the catalog
safe to use from the event loop and from worker threads (archive import, GC).
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.images.blobs import write_atomic
from agent.images.errors import ImageError

_VERSION = 1


@dataclass
class ImageRecord:
    digest: str  # manifest digest
    config_digest: str
    diff_ids: list[str]
    layer_digests: list[str]  # compressed blobs, as the manifest names them
    media_type: str
    names: list[str] = field(default_factory=list)
    size: int = 0
    created: float = 0.0
    last_used: float = 0.0


class Catalog:
    def __init__(self, path: Path, *, tmp: Path) -> None:
        self.path = path
        self.tmp = tmp
        self.lock = threading.RLock()
        self.records: dict[str, ImageRecord] = {}
        if path.exists():
            try:
                doc = json.loads(path.read_text())
                for digest, value in doc.get("images", {}).items():
                    self.records[digest] = ImageRecord(**value)
            except (ValueError, TypeError, AttributeError) as exc:
                raise ImageError(f"{path}: corrupt image catalog ({exc}); move it away to start "
                                 "with an empty image store") from None

    def save(self) -> None:
        with self.lock:
            doc = {"version": _VERSION, "images": {d: asdict(r) for d, r in sorted(self.records.items())}}
            write_atomic(self.path, json.dumps(doc, indent=1).encode(), tmp=self.tmp)

    def by_name(self, name: str) -> ImageRecord | None:
        with self.lock:
            for record in self.records.values():
                if name in record.names:
                    return record
        return None

    def by_digest(self, digest: str) -> ImageRecord | None:
        """By manifest digest, or by image ID (config digest)."""
        with self.lock:
            record = self.records.get(digest)
            if record is None:
                record = next((r for r in self.records.values() if r.config_digest == digest), None)
            return record

    def add(self, record: ImageRecord, names: list[str]) -> ImageRecord:
        """Store `record` (or merge into the one with its digest) and give it `names`."""
        with self.lock:
            current = self.records.setdefault(record.digest, record)
            current.last_used = max(current.last_used, record.last_used)
            for name in names:
                for other in self.records.values():
                    if other is not current and name in other.names:
                        other.names.remove(name)
                if name not in current.names:
                    current.names.append(name)
            current.names.sort()
            self.save()
            return current

    def delete(self, digest: str) -> ImageRecord | None:
        with self.lock:
            record = self.records.pop(digest, None)
            self.save()
            return record

    def referenced(self) -> tuple[set[str], set[str]]:
        """Diff_ids and blob digests that some image still uses."""
        with self.lock:
            layers = {d for r in self.records.values() for d in r.diff_ids}
            blobs = {b for r in self.records.values() for b in (r.digest, r.config_digest)}
            return layers, blobs
