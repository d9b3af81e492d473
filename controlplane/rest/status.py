"""Errors as Kubernetes `Status` objects.

The API's errors (controlplane/apiserver/errors.py maps each to a gRPC code) become the
HTTP code and `reason` Kubernetes uses for the same condition, so kubectl prints them as
it does for Kubernetes: `Error from server (NotFound): pods "web" not found`. A
validation failure carries one `cause` per field error (`details.causes[].field`).
"""

from __future__ import annotations

from typing import Any

import grpc

from api.errors import ValidationFailed
from controlplane.apiserver.errors import status_or_internal
from controlplane.apiserver.fieldmanager import ApplyConflict
from controlplane.auth.authn import AuthenticationError

# gRPC code -> (HTTP status, Kubernetes reason)
_BY_CODE: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.NOT_FOUND: (404, "NotFound"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "AlreadyExists"),
    grpc.StatusCode.ABORTED: (409, "Conflict"),
    grpc.StatusCode.INVALID_ARGUMENT: (422, "Invalid"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "Conflict"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "Forbidden"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "Unauthorized"),
    grpc.StatusCode.OUT_OF_RANGE: (410, "Expired"),
    grpc.StatusCode.UNAVAILABLE: (503, "ServiceUnavailable"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "TooManyRequests"),
    grpc.StatusCode.INTERNAL: (500, "InternalError"),
}


def status(code: int, reason: str, message: str, *, details: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason, "code": code}
    if details:
        out["details"] = details
    return out


def success(details: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def not_served(path: str) -> dict[str, Any]:
    """Kubernetes' answer for a URL no resource serves."""
    return status(404, "NotFound", "the server could not find the requested resource",
                  details={"causes": [{"reason": "UnexpectedServerResponse", "message": f"404 page not found: {path}"}]})


def bad_request(message: str) -> dict[str, Any]:
    return status(400, "BadRequest", message)


def of_exception(exc: BaseException, *, kind: str = "", name: str = "", group: str = "") -> dict[str, Any]:
    """The Status for an exception a verb raised (a bug is logged and answered 500)."""
    if isinstance(exc, AuthenticationError):
        return status(401, "Unauthorized", f"Unauthorized: {exc}")
    code, message = status_or_internal(exc, "a REST request")
    http, reason = _BY_CODE.get(code, (500, "InternalError"))
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if kind:
        details["kind"] = kind
    if group:
        details["group"] = group
    if isinstance(exc, ApplyConflict):
        details["causes"] = exc.causes
    if isinstance(exc, ValidationFailed):
        # Kubernetes' Invalid names the kind and the object's name (kubectl prints `The Deployment "web" is invalid`).
        if exc.kind:
            details["kind"] = exc.kind
        if exc.name:
            details["name"] = exc.name
        details["causes"] = [{"reason": _cause_reason(e.message), "message": e.message, "field": e.path}
                             for e in exc.errors]
    return status(http, reason, message, details=details or None)


def _cause_reason(message: str) -> str:
    """Kubernetes' CauseType for a field error, from how its message begins (api/errors.py's wording)."""
    for prefix, reason in (("Invalid value", "FieldValueInvalid"), ("Unsupported value", "FieldValueNotSupported"),
                           ("Duplicate value", "FieldValueDuplicate"), ("Not found", "FieldValueNotFound"),
                           ("field required", "FieldValueRequired"), ("Forbidden", "FieldValueForbidden"),
                           ("unknown field", "FieldValueInvalid")):
        if message.startswith(prefix):
            return reason
    return "FieldValueInvalid"
