"""Storage errors; the API server maps each to one gRPC status code."""

from __future__ import annotations


class StorageError(Exception):
    pass


class NotFound(StorageError):
    """The object does not exist (NOT_FOUND)."""


class AlreadyExists(StorageError):
    """Create of an object that exists (ALREADY_EXISTS)."""


class Conflict(StorageError):
    """A compare-and-swap precondition failed: the object changed since it was read (ABORTED)."""

    def __init__(self, message: str, *, current_version: str = ""):
        super().__init__(message)
        self.current_version = current_version


class ClaimsTaken(StorageError):
    """A write's claims (store.Claims) lost: some of their keys are held; `taken` maps each
    such key to its holder's value. The strategy that made the claims says what it means."""

    def __init__(self, taken: dict[bytes, bytes]):
        super().__init__(f"{len(taken)} claimed key(s) already held")
        self.taken = taken


class TooOld(StorageError):
    """A watch asked for a resourceVersion the server no longer holds (OUT_OF_RANGE)."""


class Unavailable(StorageError):
    """etcd cannot be reached (UNAVAILABLE)."""
