"""Platforms (os/architecture/variant) and choosing one image from an index.

A multi-platform image is an index (OCI) or manifest list (Docker) whose
entries each name a platform. The node picks the entry matching its own
platform as containerd's default matcher does: same os and architecture; for
variants, the node's own variant first and then older ones it can also run
(an arm/v7 node runs arm/v6 and arm/v5 images; arm64 means arm64/v8).
"""

from __future__ import annotations

import platform as _host
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

_ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
    "i386": "386", "i686": "386",
}


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    def __post_init__(self) -> None:
        arch, variant = normalize_arch(self.architecture, self.variant)
        object.__setattr__(self, "architecture", arch)
        object.__setattr__(self, "variant", variant)
        object.__setattr__(self, "os", self.os.lower())

    @classmethod
    def host(cls) -> Platform:
        """The platform of the machine this runs on."""
        machine = _host.machine().lower()
        if machine.startswith("armv"):
            return cls("linux", "arm", "v" + machine[4])  # armv7l → arm/v7
        return cls("linux", machine)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/arm64``, ``linux/arm/v7``."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r}: expected os/architecture[/variant]")
        return cls(*parts)

    @classmethod
    def from_descriptor(cls, descriptor: Mapping[str, Any]) -> Platform | None:
        value = descriptor.get("platform")
        if not isinstance(value, Mapping):
            return None
        return cls(str(value.get("os", "")), str(value.get("architecture", "")), str(value.get("variant", "")))

    def compatible_variants(self) -> list[str]:
        """Variants this platform runs, best first."""
        if self.architecture == "arm" and self.variant.startswith("v") and self.variant[1:].isdigit():
            return [f"v{n}" for n in range(int(self.variant[1:]), 4, -1)]
        if self.architecture == "arm64":
            return ["v8", ""]
        return [self.variant, ""] if self.variant else [""]

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    arch = _ARCH_ALIASES.get(arch.lower(), arch.lower())
    variant = variant.lower()
    if arch == "arm64" and variant in ("", "8"):
        variant = "v8"
    if arch == "arm":
        variant = "v7" if variant == "" else ("v" + variant if variant.isdigit() else variant)
    if arch == "amd64" and variant == "v1":
        variant = ""
    return arch, variant


def select_manifest(manifests: Sequence[Mapping[str, Any]], want: Platform) -> Mapping[str, Any]:
    """The index entry to pull for platform `want`; ValueError lists what the index offers."""
    ranked: list[tuple[int, int, Mapping[str, Any]]] = []
    variants = want.compatible_variants()
    offered: list[str] = []
    for position, entry in enumerate(manifests):
        found = Platform.from_descriptor(entry)
        if found is None:
            continue
        offered.append(str(found))
        if found.os != want.os or found.architecture != want.architecture:
            continue
        if found.variant in variants:
            ranked.append((variants.index(found.variant), position, entry))
    if not ranked:
        choices = ", ".join(o for o in offered if "unknown" not in o) or "no platforms"
        raise ValueError(f"no image for platform {want} in the index (it has: {choices})")
    ranked.sort(key=lambda item: (item[0], item[1]))
    return ranked[0][2]
