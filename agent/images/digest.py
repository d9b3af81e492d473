"""Digests: validating ``sha256:<hex>`` strings and hashing streams while they pass.

Every blob in the store is named by the SHA-256 of its bytes. `DigestReader`
wraps a readable stream, hashes and counts what is read through it and refuses
to read past an expected size; the store uses it to verify archives' blobs as it
copies or unpacks them, so bad content is noticed before anything is kept.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from agent.images.errors import DigestMismatch
from agent.images.reference import DIGEST_RE


def check_digest(digest: str, *, what: str = "digest") -> str:
    """Return `digest` if it is ``sha256:<64 hex>``, else raise ValueError naming `what`."""
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        raise ValueError(f"{what}: {digest!r} is not a sha256 digest (sha256:<64 lowercase hex digits>)")
    return digest


def digest_hex(digest: str) -> str:
    """The hex part of a checked digest, used as a file name."""
    return check_digest(digest).split(":", 1)[1]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class DigestReader:
    """A read-only stream that hashes and counts the bytes read through it.

    With `expected_size`, reading more than that many bytes raises DigestMismatch
    at once (a blob that claims to be small cannot fill the disk); `verify()`
    checks size and digest after the stream has been read to its end.
    """

    def __init__(self, raw: BinaryIO, *, expected_digest: str, expected_size: int | None = None,
                 what: str = "blob") -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.expected_digest = check_digest(expected_digest, what=what)
        self.expected_size = expected_size
        self.what = what
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.count += len(data)
        if self.expected_size is not None and self.count > self.expected_size:
            raise DigestMismatch(f"{self.what} {self.expected_digest}: more than the declared {self.expected_size} bytes")
        self._hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def verify(self) -> None:
        if self.expected_size is not None and self.count != self.expected_size:
            raise DigestMismatch(
                f"{self.what} {self.expected_digest}: got {self.count} bytes, expected {self.expected_size}")
        if self.digest != self.expected_digest:
            raise DigestMismatch(f"{self.what}: content hashes to {self.digest}, expected {self.expected_digest}")
