"""The store of unpacked layers, keyed by diff_id and shared by every image.

``layers/sha256/<diff_id hex>/fs`` is one layer's tree in overlayfs form (see
unpack.py) and ``layer.json`` beside it records its size and, where whiteouts
could not be written as devices, the whiteouts themselves. Because a layer is
unpacked on its own, a layer present for one image is never downloaded or
unpacked again for another.

A layer appears atomically: it is unpacked into a temp directory inside the
store (same filesystem), checked against its diff_id, and renamed into place,
so a failure at any point leaves nothing half-written. Methods here block;
the image store calls them in a thread.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from agent.images.blobs import write_atomic
from agent.images.digest import digest_hex
from agent.images.errors import DigestMismatch
from agent.images.unpack import UnpackLimits, overlay_whiteouts_supported, remove_tree, unpack_layer


@dataclass(frozen=True)
class LayerInfo:
    diff_id: str
    size: int
    whiteout_format: str


class LayerStore:
    def __init__(self, root: Path, *, tmp: Path, limits: UnpackLimits = UnpackLimits(),
                 whiteout_format: str | None = None) -> None:
        self.root = root / "sha256"
        self.tmp = tmp
        self.limits = limits
        self.root.mkdir(parents=True, exist_ok=True)
        if whiteout_format is None:
            whiteout_format = "overlay" if overlay_whiteouts_supported(tmp) else "sidecar"
        self.whiteout_format = whiteout_format

    def dir(self, diff_id: str) -> Path:
        return self.root / digest_hex(diff_id)

    def fs(self, diff_id: str) -> Path:
        """The directory to use as an overlayfs lowerdir."""
        return self.dir(diff_id) / "fs"

    def has(self, diff_id: str) -> bool:
        return (self.dir(diff_id) / "layer.json").exists()

    def info(self, diff_id: str) -> LayerInfo:
        doc = json.loads((self.dir(diff_id) / "layer.json").read_text())
        return LayerInfo(diff_id=doc["diff_id"], size=doc["size"], whiteout_format=doc["whiteout_format"])

    def diff_ids(self) -> set[str]:
        return {"sha256:" + p.name for p in self.root.iterdir() if (p / "layer.json").exists()}

    def unpack(self, stream: BinaryIO, diff_id: str, *, verify: Callable[[], None] | None = None) -> LayerInfo:
        """Unpack `stream` as the layer `diff_id`; `verify` (e.g. the compressed digest) runs before it is kept."""
        if self.has(diff_id):
            return self.info(diff_id)
        work = Path(tempfile.mkdtemp(prefix="layer-", dir=self.tmp))
        try:
            (work / "fs").mkdir()
            result = unpack_layer(stream, work / "fs", whiteout_format=self.whiteout_format, limits=self.limits)
            if verify is not None:
                verify()
            if result.diff_id != diff_id:
                raise DigestMismatch(f"layer content hashes to {result.diff_id}, "
                                     f"but the image config says {diff_id}")
            doc = {"diff_id": diff_id, "size": result.size, "entries": result.entries,
                   "compression": result.compression, "whiteout_format": result.whiteout_format,
                   "whiteouts": result.whiteouts, "opaque_dirs": result.opaque_dirs}
            write_atomic(work / "layer.json", json.dumps(doc, indent=1).encode(), tmp=work)
            os.chmod(work, 0o755)
            try:
                os.rename(work, self.dir(diff_id))
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                remove_tree(work)  # another pull unpacked the same layer first
            return LayerInfo(diff_id=diff_id, size=result.size, whiteout_format=result.whiteout_format)
        except BaseException:
            remove_tree(work)
            raise

    def remove(self, diff_id: str) -> int:
        """Delete a layer (renamed away first, so it vanishes at once); returns the bytes freed."""
        path = self.dir(diff_id)
        if not path.exists():
            return 0
        size = self.info(diff_id).size if self.has(diff_id) else 0
        trash = Path(tempfile.mkdtemp(prefix="trash-", dir=self.tmp))
        os.rename(path, trash / "layer")
        remove_tree(trash)
        return size
