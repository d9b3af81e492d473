"""Reading image archives: OCI layouts (directory or tarball) and `docker save` tarballs.

This is how images reach a node without a registry, as ``kind load`` and
``k3s ctr images import`` do. `open_archive` recognises the format and yields
`ArchiveImage`s: names, manifest and config bytes (already verified against
their digests) and, per layer, a way to open its blob. The store (store.py)
unpacks the layers it lacks, verifying each blob as it reads it.

* OCI layout: ``oci-layout``, ``index.json`` and ``blobs/sha256/<hex>``. Names
  come from the annotations ``io.containerd.image.name`` (a full reference) or
  ``org.opencontainers.image.ref.name`` (a full reference, or a bare tag that
  needs a `base_name`). Index entries that are multi-platform indexes give the
  node's platform.
* ``docker save``: ``manifest.json`` lists config file, ``RepoTags`` and
  uncompressed layer tars; an OCI manifest is made up for it (its digest is the
  image's digest in this store).

The archive's own member names are never used as paths on disk: blobs are
looked up by validated digests, and nothing is extracted except through the
layer unpacker.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from agent.images.digest import check_digest, digest_hex, sha256_digest
from agent.images.errors import ArchiveError, ImageError
from agent.images.manifest import (DOCKER_CONFIG, MAX_CONFIG_BYTES, MAX_MANIFEST_BYTES, OCI_MANIFEST,
                                   Descriptor, Index, Manifest, check_layers_match, load_json, parse_config,
                                   parse_manifest)
from agent.images.platform import Platform, select_manifest
from agent.images.reference import InvalidReference, normalize_reference

log = logging.getLogger(__name__)

CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"
_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"


@dataclass
class ArchiveLayer:
    descriptor: Descriptor  # the blob as stored in the archive
    diff_id: str
    member: str  # where the blob is in the archive


@dataclass
class ArchiveImage:
    names: list[str]
    top_digests: list[str]  # digests the names were given to (an index or the manifest)
    digest: str
    media_type: str
    manifest_bytes: bytes
    config_bytes: bytes
    config_digest: str
    layers: list[ArchiveLayer] = field(default_factory=list)


class _Source:
    """Files of an archive, by name relative to its top."""

    def open(self, name: str) -> BinaryIO:
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def read(self, name: str, *, limit: int) -> bytes:
        with self.open(name) as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ArchiveError(f"{name}: larger than {limit} bytes")
        return data

    def close(self) -> None:
        pass


class _DirSource(_Source):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, name: str) -> Path:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root):
            raise ArchiveError(f"{name!r} points outside the archive directory")
        return path

    def open(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError:
            raise ArchiveError(f"{name}: missing from the archive") from None

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()


class _TarSource(_Source):
    def __init__(self, path: Path) -> None:
        try:
            self.tar = tarfile.open(path, "r:*")
            self.members = {_clean(m.name): m for m in self.tar.getmembers()}
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ArchiveError(f"{path}: not a readable tar archive: {exc}") from None

    def open(self, name: str) -> BinaryIO:
        member = self.members.get(_clean(name))
        if member is None:
            raise ArchiveError(f"{name}: missing from the archive")
        try:
            f = self.tar.extractfile(member)
        except (tarfile.TarError, KeyError) as exc:
            raise ArchiveError(f"{name}: cannot be read from the archive: {exc}") from None
        if f is None:
            raise ArchiveError(f"{name}: not a file in the archive")
        return f  # type: ignore[return-value]

    def exists(self, name: str) -> bool:
        return _clean(name) in self.members

    def close(self) -> None:
        self.tar.close()


def _clean(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


class Archive:
    """An opened archive; `images` lists what it holds. Use as a context manager."""

    def __init__(self, path: Path, *, platform: Platform, base_name: str | None = None) -> None:
        self.path = path
        self.platform = platform
        self.base_name = base_name
        self.source: _Source = _DirSource(path) if path.is_dir() else _TarSource(path)
        try:
            if self.source.exists("index.json"):
                self.images = self._oci_images()
            elif self.source.exists("manifest.json"):
                self.images = self._docker_images()
            else:
                raise ArchiveError(f"{path}: neither an OCI layout (index.json) nor a docker save archive "
                                   "(manifest.json)")
        except ArchiveError:
            self.source.close()
            raise
        except (ImageError, ValueError) as exc:
            self.source.close()
            raise ArchiveError(f"{path}: {exc}") from None

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.source.close()

    def open_layer(self, layer: ArchiveLayer) -> BinaryIO:
        return self.source.open(layer.member)

    # -- OCI layout ------------------------------------------------------------------------

    def _blob(self, digest: str, *, limit: int) -> bytes:
        data = self.source.read(f"blobs/sha256/{digest_hex(digest)}", limit=limit)
        if sha256_digest(data) != digest:
            raise ArchiveError(f"blob {digest} in {self.path} does not match its digest")
        return data

    def _oci_images(self) -> list[ArchiveImage]:
        doc = load_json(self.source.read("index.json", limit=MAX_MANIFEST_BYTES), what="index.json", error=ArchiveError)
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ArchiveError("index.json: manifests must be a list")
        images: dict[str, ArchiveImage] = {}
        for position, entry in enumerate(entries):
            where = f"index.json manifests[{position}]"
            descriptor = Descriptor.parse(entry, where=where)
            names = self._names(entry.get("annotations") or {}, where=where)
            data = self._blob(descriptor.digest, limit=MAX_MANIFEST_BYTES)
            parsed = parse_manifest(data, descriptor.media_type)
            digest = descriptor.digest
            while isinstance(parsed, Index):
                chosen = Descriptor.parse(select_manifest(parsed.manifests, self.platform), where=where)
                data = self._blob(chosen.digest, limit=MAX_MANIFEST_BYTES)
                parsed, digest = parse_manifest(data, chosen.media_type), chosen.digest
            image = images.get(digest) or self._oci_image(digest, data, parsed)
            images[digest] = image
            image.names += [n for n in names if n not in image.names]
            if descriptor.digest not in image.top_digests:
                image.top_digests.append(descriptor.digest)
        return list(images.values())

    def _oci_image(self, digest: str, data: bytes, manifest: Manifest) -> ArchiveImage:
        config_bytes = self._blob(manifest.config.digest, limit=MAX_CONFIG_BYTES)
        _, diff_ids = parse_config(config_bytes)
        check_layers_match(manifest, diff_ids)
        layers = [ArchiveLayer(descriptor=d, diff_id=diff_id, member=f"blobs/sha256/{digest_hex(d.digest)}")
                  for d, diff_id in zip(manifest.layers, diff_ids)]
        return ArchiveImage(names=[], top_digests=[], digest=digest, media_type=manifest.media_type,
                            manifest_bytes=data, config_bytes=config_bytes,
                            config_digest=manifest.config.digest, layers=layers)

    def _names(self, annotations: dict[str, Any], *, where: str) -> list[str]:
        raw = annotations.get(CONTAINERD_NAME) or annotations.get(OCI_REF_NAME)
        if not raw:
            return []
        raw = str(raw)
        if not any(c in raw for c in "/:@"):
            if self.base_name is None:
                log.warning("%s: %s names only the tag %r; image imported without a name "
                            "(pass base_name to name it)", self.path, where, raw)
                return []
            raw = f"{self.base_name}:{raw}"
        try:
            return [str(normalize_reference(raw))]
        except InvalidReference as exc:
            raise ArchiveError(f"{where}: annotation names an invalid reference: {exc}") from None

    # -- docker save -----------------------------------------------------------------------

    def _docker_images(self) -> list[ArchiveImage]:
        try:
            doc = json.loads(self.source.read("manifest.json", limit=MAX_MANIFEST_BYTES))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArchiveError(f"manifest.json: not valid JSON: {exc}") from None
        if not isinstance(doc, list):
            raise ArchiveError("manifest.json: expected a list of images")
        images = []
        for position, item in enumerate(doc):
            where = f"manifest.json[{position}]"
            if not isinstance(item, dict) or not isinstance(item.get("Config"), str) \
                    or not isinstance(item.get("Layers"), list):
                raise ArchiveError(f"{where}: needs Config (a file name) and Layers (a list)")
            config_bytes = self.source.read(item["Config"], limit=MAX_CONFIG_BYTES)
            config_digest = sha256_digest(config_bytes)
            _, diff_ids = parse_config(config_bytes)
            if len(diff_ids) != len(item["Layers"]):
                raise ArchiveError(f"{where}: {len(item['Layers'])} Layers but the config lists "
                                   f"{len(diff_ids)} rootfs.diff_ids")
            layers = []
            for member, diff_id in zip(item["Layers"], diff_ids):
                size = self._size(member)
                layers.append(ArchiveLayer(Descriptor(_DOCKER_LAYER, check_digest(diff_id), size), diff_id, member))
            manifest = {
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                "layers": [{"mediaType": _DOCKER_LAYER, "digest": layer.diff_id, "size": layer.descriptor.size}
                           for layer in layers],
            }
            manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
            names = []
            for tag in item.get("RepoTags") or []:
                try:
                    names.append(str(normalize_reference(str(tag))))
                except InvalidReference as exc:
                    raise ArchiveError(f"{where}: RepoTags: {exc}") from None
            images.append(ArchiveImage(names=names, top_digests=[], digest=sha256_digest(manifest_bytes),
                                       media_type=OCI_MANIFEST, manifest_bytes=manifest_bytes,
                                       config_bytes=config_bytes, config_digest=config_digest, layers=layers))
        return images

    def _size(self, member: str) -> int:
        with self.source.open(member) as f:
            return f.seek(0, os.SEEK_END)


