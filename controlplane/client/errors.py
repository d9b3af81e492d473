"""Client-side errors: the API's one hierarchy (api/apierrors.py), from a gRPC answer.

The classes are api/apierrors.py's, re-exported so `from controlplane.client import NotFound`
catches exactly what the server and storage raise as NotFound; this module adds only the
mapping from a gRPC status code (and an unreachable server) to the class.
"""

from __future__ import annotations

import grpc

from api.apierrors import (AlreadyExists, ApiError, Conflict, FailedPrecondition, Forbidden, Invalid, NotFound,
                           RequestEntityTooLarge, TooManyRequests, TooOld, Unauthenticated, Unavailable)
from api.apierrors import error_for as _error_for_status

__all__ = ["ApiError", "NotFound", "AlreadyExists", "Conflict", "Invalid", "FailedPrecondition", "Forbidden",
           "TooOld", "Unavailable", "Unauthenticated", "TooManyRequests", "RequestEntityTooLarge", "error_for", "from_rpc_error",
           "grpc_code"]


def grpc_code(exc: ApiError) -> grpc.StatusCode:
    """The gRPC status code an ApiError stands for."""
    return grpc.StatusCode[exc.status] if exc.status in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN


def error_for(code: grpc.StatusCode, message: str) -> ApiError:
    """The ApiError subclass for a status code (ApiError itself for the others)."""
    return _error_for_status(code.name, message or code.name)


def from_rpc_error(exc: grpc.aio.AioRpcError, *, server: str = "") -> ApiError:
    code = exc.code()
    message = exc.details() or code.name
    if code == grpc.StatusCode.UNAVAILABLE and server and "etcd" not in message:
        message = f"the server at {server} is unreachable ({message}); is the control plane running?"
    return error_for(code, message)
