"""API errors and their gRPC status codes, used consistently by every verb:

NOT_FOUND (no such object or namespace), ALREADY_EXISTS (create of an existing
name), ABORTED (a stale resourceVersion: "conflict"), INVALID_ARGUMENT (a bad
object or request; each line names a field path), FAILED_PRECONDITION (the
request is valid but the object's state forbids it: a terminating namespace,
an already bound pod), OUT_OF_RANGE (watch from a resourceVersion too old),
UNAVAILABLE (etcd cannot be reached), RESOURCE_EXHAUSTED (Kubernetes' 429 TooManyRequests:
an eviction its disruption budget refuses for now).
"""

from __future__ import annotations

import logging

import grpc

from api.errors import ValidationFailed
from controlplane.storage import errors as storage


class ApiError(Exception):
    code = grpc.StatusCode.UNKNOWN


class FailedPrecondition(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Invalid(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class TooManyRequests(ApiError):
    """Kubernetes' 429: try again later (an eviction a PodDisruptionBudget does not allow now)."""
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The gRPC code and message for an exception, or None for a bug (INTERNAL)."""
    if isinstance(exc, ApiError):
        return exc.code, str(exc)
    if isinstance(exc, ValidationFailed):
        what = f"{exc.kind} \"{exc.name}\" is invalid: " if exc.kind else ""
        return grpc.StatusCode.INVALID_ARGUMENT, what + "; ".join(str(e) for e in exc.errors)
    table = {
        storage.NotFound: grpc.StatusCode.NOT_FOUND,
        storage.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        storage.Conflict: grpc.StatusCode.ABORTED,
        storage.TooOld: grpc.StatusCode.OUT_OF_RANGE,
        storage.Unavailable: grpc.StatusCode.UNAVAILABLE,
    }
    for cls, code in table.items():
        if isinstance(exc, cls):
            return code, str(exc)
    return None


def status_or_internal(exc: BaseException, what: str = "") -> tuple[grpc.StatusCode, str]:
    """status_of, with a bug (no mapping) logged with its traceback and answered INTERNAL."""
    mapped = status_of(exc)
    if mapped is None:
        logging.getLogger(__name__).exception("internal error%s", f" in {what}" if what else "", exc_info=exc)
        mapped = (grpc.StatusCode.INTERNAL, f"internal error: {exc!r}")
    return mapped
