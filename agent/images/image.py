"""`Image`: what the runtime gets for a pulled image.

An image is a stack of read-only layers plus the process defaults of its
config. `layers` are unpacked layer directories, lowest first; overlayfs wants
its ``lowerdir=`` option highest first, so the runtime joins them reversed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.images.manifest import ImageConfig


@dataclass
class Image:
    digest: str  # manifest digest (of this node's platform)
    names: list[str]  # normalised references: "docker.io/library/busybox:1.36", "…/busybox@sha256:…"
    config: ImageConfig
    layers: list[Path]  # unpacked layer dirs, lowest first (overlayfs lowerdirs, reversed)
    size: int  # bytes of the unpacked layers
    id: str = ""  # the config digest, which `docker images` calls IMAGE ID
    diff_ids: list[str] = field(default_factory=list)
    last_used: float = 0.0
