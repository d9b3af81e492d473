"""API errors and their gRPC status codes, used consistently by every verb:

NOT_FOUND (no such object or namespace), ALREADY_EXISTS (create of an existing
name), ABORTED (a stale resourceVersion: "conflict"), INVALID_ARGUMENT (a bad
object or request; each line names a field path), FAILED_PRECONDITION (the
request is valid but the object's state forbids it: a terminating namespace,
an already bound pod), OUT_OF_RANGE (watch from a resourceVersion too old),
UNAVAILABLE (etcd cannot be reached), RESOURCE_EXHAUSTED (Kubernetes' 429 TooManyRequests:
an eviction its disruption budget refuses for now).

The error classes are api/apierrors.py's (one hierarchy for storage, server and client); this
module maps them, and validation errors, to the gRPC answer.
"""

from __future__ import annotations

import logging

import grpc

from api.apierrors import (ApiError, FailedPrecondition, InternalError, Invalid, NotFound, TooManyRequests)
from api.errors import ValidationFailed
from controlplane.client.errors import grpc_code

__all__ = ["ApiError", "FailedPrecondition", "InternalError", "Invalid", "NotFound", "NotFoundError",
           "TooManyRequests", "status_of", "status_or_internal"]

# The old name, still imported by handlers.py (being changed on another branch): the same class.
NotFoundError = NotFound


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The gRPC code and message for an exception, or None for a bug (INTERNAL). Storage errors
    are ApiErrors too (controlplane/storage/errors.py)."""
    if isinstance(exc, ApiError):
        return grpc_code(exc), str(exc)
    if isinstance(exc, ValidationFailed):
        what = f"{exc.kind} \"{exc.name}\" is invalid: " if exc.kind else ""
        return grpc.StatusCode.INVALID_ARGUMENT, what + "; ".join(str(e) for e in exc.errors)
    return None


def status_or_internal(exc: BaseException, what: str = "") -> tuple[grpc.StatusCode, str]:
    """status_of, with a bug (no mapping) logged with its traceback and answered INTERNAL."""
    mapped = status_of(exc)
    if mapped is None:
        logging.getLogger(__name__).exception("internal error%s", f" in {what}" if what else "", exc_info=exc)
        mapped = (grpc.StatusCode.INTERNAL, f"internal error: {exc!r}")
    return mapped
