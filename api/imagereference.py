"""Image references, normalised the way Docker does (for the agent's image store, and for
the API server, which refuses a pod whose image no registry could name: kubelet's InvalidImageName).

A reference names an image in a registry: ``busybox`` means
``docker.io/library/busybox:latest``; ``host:5000/team/app:v2`` keeps its
registry host; ``name@sha256:...`` pins content by digest. Every other module
of the image package works with the normalised `Reference`, whose ``str()`` is
the full form stored in the image store and shown in the Node's status.

The rules are those of distribution's ``ParseNormalizedNamed``: the first path
component is a registry host only if it contains a ``.`` or a ``:`` or is
``localhost``; Docker Hub images without a namespace live under ``library/``;
the tag ``latest`` is implied when neither tag nor digest is given.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io"}
DEFAULT_TAG = "latest"

# Grammar from distribution/reference (regexp.go), written out piece by piece.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"^{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*$")
_HOST_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^(?:{_HOST_COMPONENT}(?:\.{_HOST_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_MAX_NAME = 255


class InvalidReference(ValueError):
    """An image reference that does not follow the reference grammar."""


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: ``domain/repository[:tag][@digest]``."""

    domain: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Registry host and repository, without tag or digest."""
        return f"{self.domain}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def normalize_reference(ref: str) -> Reference:
    """Parse `ref` and fill in Docker's defaults; raises InvalidReference."""
    if not isinstance(ref, str) or not ref or ref != ref.strip():
        raise InvalidReference(f"invalid image reference {ref!r}: must be a non-empty string without spaces")
    return _parse(ref)


@functools.lru_cache(maxsize=4096)
def _parse(ref: str) -> Reference:
    """normalize_reference's parsing, cached: every create and update of a pod parses each of its
    images twice (pull-policy defaulting, then validation), and the same few images recur.
    A Reference is frozen, so sharing one is safe; a refusal is not cached (it raises)."""
    remainder, digest = ref, None
    if "@" in ref:
        remainder, digest = ref.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReference(
                f"invalid image reference {ref!r}: digest {digest!r} is not sha256:<64 lowercase hex digits>")
    name, tag = remainder, None
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG.match(tag):
            raise InvalidReference(f"invalid image reference {ref!r}: bad tag {tag!r}")
    domain, path = _split_domain(name, ref)
    if not path:
        raise InvalidReference(f"invalid image reference {ref!r}: missing repository name")
    if path != path.lower():
        raise InvalidReference(f"invalid image reference {ref!r}: repository name must be lowercase")
    for component in path.split("/"):
        if not _PATH_COMPONENT.match(component):
            raise InvalidReference(f"invalid image reference {ref!r}: bad path component {component!r}")
    if len(domain) + 1 + len(path) > _MAX_NAME:
        raise InvalidReference(f"invalid image reference {ref!r}: name longer than {_MAX_NAME} characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain=domain, repository=path, tag=tag, digest=digest)


def _split_domain(name: str, ref: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.match(first):
            raise InvalidReference(f"invalid image reference {ref!r}: bad registry host {first!r}")
        domain, path = first, rest
        if domain in _DOCKER_HUB_ALIASES:
            domain = DOCKER_HUB
    else:
        domain, path = DOCKER_HUB, name
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return domain, path


def default_pull_policy(image: str) -> str:
    """Kubernetes' defaulting: ``:latest`` or no tag (and no digest) → Always, else IfNotPresent.
    An invalid reference is refused by validation; it gets IfNotPresent here."""
    try:
        ref = normalize_reference(image)
    except InvalidReference:
        return "IfNotPresent"
    if ref.tag == DEFAULT_TAG:          # Kubernetes looks at the tag only (`:latest@sha256:…` too)
        return "Always"
    return "IfNotPresent"
