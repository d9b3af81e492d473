"""Storage errors: the API's own (api/apierrors.py), raised by the store, so that the API server
answers each with its status and code above catches them by the one name (`NotFound`).

`StorageError` marks what the store raised (store._call lets these through unmapped);
`ClaimsTaken` is the store's alone: the strategy that made the claims says what it means.
"""

from __future__ import annotations

from api import apierrors


class StorageError(Exception):
    pass


class NotFound(StorageError, apierrors.NotFound):
    """The object does not exist (NOT_FOUND)."""


class AlreadyExists(StorageError, apierrors.AlreadyExists):
    """Create of an object that exists (ALREADY_EXISTS)."""


class Conflict(StorageError, apierrors.Conflict):
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


class TooOld(StorageError, apierrors.TooOld):
    """A watch asked for a resourceVersion the server no longer holds (OUT_OF_RANGE)."""


class Unavailable(StorageError, apierrors.Unavailable):
    """etcd cannot be reached (UNAVAILABLE)."""
