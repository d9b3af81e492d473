"""The API's errors, one class per status the API server answers with: the one hierarchy that
the storage layer, the API server and the client all raise and catch.

Each class names its status as the gRPC status code's name (`status = "NOT_FOUND"`), so this
module needs no gRPC (api/ imports no component): the API server maps `status` to its answer
(controlplane/apiserver/errors.py), the client maps an answer back to the class
(controlplane/client/errors.py). A client's `except NotFound` therefore catches what the server
meant by NotFound, and server code catches the storage layer's NotFound by the same name
(controlplane/storage/errors.py subclasses these, adding only what storage knows).

NOT_FOUND (no such object or namespace), ALREADY_EXISTS (create of an existing name), ABORTED
(a stale resourceVersion: "conflict"), INVALID_ARGUMENT (a bad object or request; each line
names a field path), FAILED_PRECONDITION (the request is valid but the object's state forbids
it: a terminating namespace, an already bound pod), PERMISSION_DENIED (RBAC, the Node
authorizer, Pod Security), UNAUTHENTICATED, OUT_OF_RANGE (a watch from a resourceVersion too
old), UNAVAILABLE (etcd or the server cannot be reached), RESOURCE_EXHAUSTED (Kubernetes' 429
TooManyRequests: an eviction its disruption budget refuses for now), INTERNAL.
"""

from __future__ import annotations


class ApiError(Exception):
    """An answer other than OK; `message` is what the user is shown."""

    status: str = "UNKNOWN"   # the gRPC status code's name

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


# One class per status, alike by design (the `duplicates` tool pairs them by shape): callers
# catch them by name, as client-go's apierrors.IsNotFound and friends test them.
class NotFound(ApiError):
    status = "NOT_FOUND"


class AlreadyExists(ApiError):
    status = "ALREADY_EXISTS"


class Conflict(ApiError):
    """The object changed since it was read (a stale resourceVersion or uid precondition)."""
    status = "ABORTED"


class Invalid(ApiError):
    status = "INVALID_ARGUMENT"


class FailedPrecondition(ApiError):
    status = "FAILED_PRECONDITION"


class Forbidden(ApiError):
    """The caller may not do this (RBAC, the Node authorizer, Pod Security): the message says who,
    which verb and which resource."""
    status = "PERMISSION_DENIED"


class Unauthenticated(ApiError):
    """The server does not know who is calling: no credential, or one it does not accept."""
    status = "UNAUTHENTICATED"


class TooOld(ApiError):
    """A watch asked for a resourceVersion the server no longer holds."""
    status = "OUT_OF_RANGE"


class Unavailable(ApiError):
    status = "UNAVAILABLE"


class TooManyRequests(ApiError):
    """Try again later: an eviction that a PodDisruptionBudget does not allow now (HTTP 429)."""
    status = "RESOURCE_EXHAUSTED"


class RequestEntityTooLarge(ApiError):
    """A request over the message size limit (HTTP 413). gRPC says RESOURCE_EXHAUSTED for it too,
    so it is told from TooManyRequests by gRPC's own wording ("... larger than max ...")."""
    status = "RESOURCE_EXHAUSTED"


class InternalError(ApiError):
    status = "INTERNAL"


BY_STATUS: dict[str, type[ApiError]] = {cls.status: cls for cls in (
    NotFound, AlreadyExists, Conflict, Invalid, FailedPrecondition, Forbidden, Unauthenticated, TooOld, Unavailable,
    TooManyRequests, InternalError)}


def error_for(status: str, message: str) -> ApiError:
    """The ApiError subclass for a status name (ApiError itself for the others)."""
    if status == "RESOURCE_EXHAUSTED" and "larger than max" in (message or ""):
        return RequestEntityTooLarge(message, status)
    return BY_STATUS.get(status, ApiError)(message or status, status)
