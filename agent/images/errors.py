"""Errors of the image package.

`PullError` is what the agent sees: its message is written for a pod's
``waiting.message`` and its ``reason`` is the pod's waiting reason
(``ErrImagePull``, ``ErrImageNeverPull``, ``InvalidImageName``). The other
errors describe one failed step (an unsafe layer, a bad archive, a blob whose
digest does not match) and are wrapped into a `PullError` by the store when
they happen during a pull.
"""

from __future__ import annotations


class ImageError(Exception):
    """Base class of every error raised by agent.images."""


class PullError(ImageError):
    """An image could not be made present; `reason` is the pod waiting reason."""

    def __init__(self, message: str, *, reason: str = "ErrImagePull") -> None:
        super().__init__(message)
        self.reason = reason


class RegistryError(ImageError):
    """The registry answered with an error, or could not be reached.

    `status` is the HTTP status (0 when no answer came), `code` the registry's
    error code such as MANIFEST_UNKNOWN, `retriable` says whether another
    endpoint (a mirror, then the registry itself) is worth trying.
    """

    def __init__(self, message: str, *, status: int = 0, code: str = "", retriable: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retriable = retriable


class DigestMismatch(ImageError):
    """Content did not hash to the digest (or size) that named it; nothing was stored."""


class LayerError(ImageError):
    """A layer tarball that is corrupt, truncated or unsafe; nothing of it was kept."""


class ArchiveError(ImageError):
    """An image archive (OCI layout or `docker save` tarball) that cannot be imported."""
