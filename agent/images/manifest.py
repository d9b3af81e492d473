"""Manifests, indexes and image configs: the JSON documents that describe an image.

Four manifest formats are in use and all four are understood:

=====================  ===============================================================
OCI image manifest     application/vnd.oci.image.manifest.v1+json
OCI image index        application/vnd.oci.image.index.v1+json
Docker schema2         application/vnd.docker.distribution.manifest.v2+json
Docker manifest list   application/vnd.docker.distribution.manifest.list.v2+json
=====================  ===============================================================

A manifest names one config blob and the layer blobs (lowest first); an index
names one manifest per platform (see platform.py). The config carries the
process defaults (`ImageConfig`) and ``rootfs.diff_ids``, the digests of the
*uncompressed* layers, by which the store keys unpacked layers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent.images.digest import check_digest
from agent.images.errors import ImageError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
# Always ask for all four: some registries answer 404 to a request that lacks the
# OCI types, and convert schema2 to the old schema1 when Accept is missing.
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST))
MAX_MANIFEST_BYTES = 4 << 20
MAX_CONFIG_BYTES = 8 << 20
_LAYER_TYPES_ACCEPTED = ("tar", "tar+gzip", "tar+zstd", "tar.gzip")  # OCI and Docker layer suffixes


class ManifestError(ImageError):
    """A manifest, index or config that cannot be used; the message names the field."""


@dataclass(frozen=True)
class Descriptor:
    """A pointer to content: media type, digest and size (OCI descriptor)."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()

    @classmethod
    def parse(cls, value: Any, *, where: str) -> Descriptor:
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: expected an object")
        try:
            digest = check_digest(value.get("digest"), what=f"{where}.digest")
        except ValueError as exc:
            raise ManifestError(str(exc)) from None
        size = value.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{where}.size: expected a non-negative integer, got {size!r}")
        return cls(media_type=str(value.get("mediaType", "")), digest=digest, size=size,
                   urls=tuple(value.get("urls") or ()))

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[dict[str, Any], ...]  # raw entries, with "platform" and "annotations"


@dataclass
class ImageConfig:
    """What an image says about the process to run (the ``config`` of the image config)."""

    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    user: str = ""
    exposed_ports: list[str] = field(default_factory=list)  # "80/tcp"
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    os: str = ""
    architecture: str = ""
    variant: str = ""


def load_json(data: bytes, *, what: str, error: type[ImageError] = ManifestError) -> dict[str, Any]:
    """A JSON object from bytes; anything else raises `error` (ManifestError unless the caller,
    e.g. the image archive reader, names its own) saying what `what` was and what was wrong."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise error(f"{what}: expected a JSON object")
    return value


def parse_manifest(data: bytes, media_type: str = "") -> Manifest | Index:
    """Parse a manifest or index; `media_type` is the Content-Type if known."""
    doc = load_json(data, what="manifest")
    declared = doc.get("mediaType") or ""
    kind = declared or media_type
    if not kind or kind in ("application/json", "text/plain"):
        kind = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if kind in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise ManifestError("Docker schema1 manifests are not supported (deprecated format); "
                            "push the image again with a current client")
    if kind in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise ManifestError("index.manifests: expected a list")
        for position, entry in enumerate(entries):
            Descriptor.parse(entry, where=f"index.manifests[{position}]")
        return Index(media_type=kind, manifests=tuple(entries))
    if kind in MANIFEST_TYPES:
        config = Descriptor.parse(doc.get("config"), where="manifest.config")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise ManifestError("manifest.layers: expected a list")
        parsed = tuple(Descriptor.parse(layer, where=f"manifest.layers[{i}]") for i, layer in enumerate(layers))
        for i, layer in enumerate(parsed):
            if "nondistributable" in layer.media_type or "foreign" in layer.media_type:
                raise ManifestError(f"manifest.layers[{i}]: non-distributable layer {layer.media_type} "
                                    "is not supported")
        return Manifest(media_type=kind, config=config, layers=parsed)
    raise ManifestError(f"manifest: unsupported media type {kind!r}")


def parse_config(data: bytes) -> tuple[ImageConfig, list[str]]:
    """The process defaults and the layer diff_ids of an image config blob."""
    doc = load_json(data, what="image config")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise ManifestError("image config: rootfs.diff_ids missing")
    diff_ids = []
    for i, value in enumerate(rootfs["diff_ids"]):
        try:
            diff_ids.append(check_digest(value, what=f"image config: rootfs.diff_ids[{i}]"))
        except ValueError as exc:
            raise ManifestError(str(exc)) from None
    cfg = doc.get("config") or {}
    if not isinstance(cfg, dict):
        raise ManifestError("image config: config must be an object")
    config = ImageConfig(
        entrypoint=_strings(cfg.get("Entrypoint"), "config.Entrypoint"),
        cmd=_strings(cfg.get("Cmd"), "config.Cmd"),
        env=_strings(cfg.get("Env"), "config.Env"),
        working_dir=str(cfg.get("WorkingDir") or ""),
        user=str(cfg.get("User") or ""),
        exposed_ports=sorted((cfg.get("ExposedPorts") or {}).keys()),
        labels={str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()},
        stop_signal=str(cfg.get("StopSignal") or ""),
        os=str(doc.get("os") or ""),
        architecture=str(doc.get("architecture") or ""),
        variant=str(doc.get("variant") or ""),
    )
    return config, diff_ids


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"image config: {where} must be a list of strings")
    return list(value)


def check_layers_match(manifest: Manifest, diff_ids: list[str]) -> None:
    if len(manifest.layers) != len(diff_ids):
        raise ManifestError(f"manifest has {len(manifest.layers)} layers but its config lists "
                            f"{len(diff_ids)} rootfs.diff_ids")
    for i, layer in enumerate(manifest.layers):
        if layer.media_type and not any(layer.media_type.endswith(t) for t in _LAYER_TYPES_ACCEPTED):
            raise ManifestError(f"manifest.layers[{i}]: unsupported layer media type {layer.media_type!r}")
