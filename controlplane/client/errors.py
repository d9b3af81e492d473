"""Client-side errors, one per gRPC status code the API server uses."""

from __future__ import annotations

import grpc


class ApiError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS


class Conflict(ApiError):
    code = grpc.StatusCode.ABORTED


class Invalid(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class FailedPrecondition(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Forbidden(ApiError):
    """The caller may not do this (RBAC, the Node authorizer, Pod Security): the message says who,
    which verb and which resource."""
    code = grpc.StatusCode.PERMISSION_DENIED


class TooOld(ApiError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(ApiError):
    """The server does not know who is calling: no credential, or one it does not accept."""
    code = grpc.StatusCode.UNAUTHENTICATED


class TooManyRequests(ApiError):
    """Try again later: an eviction that a PodDisruptionBudget does not allow now (HTTP 429)."""
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


_BY_CODE = {cls.code: cls for cls in (NotFound, AlreadyExists, Conflict, Invalid, FailedPrecondition, TooOld,
                                      Unavailable, Unauthenticated, Forbidden, TooManyRequests)}


def error_for(code: grpc.StatusCode, message: str) -> ApiError:
    """The ApiError subclass for a status code (ApiError itself for the others)."""
    return _BY_CODE.get(code, ApiError)(message or code.name, code)


def from_rpc_error(exc: grpc.aio.AioRpcError, *, server: str = "") -> ApiError:
    code = exc.code()
    message = exc.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE and server and "etcd" not in message:
        message = f"the server at {server} is unreachable ({message}); is the control plane running?"
    return error_for(code, message)
