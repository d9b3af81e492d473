"""Self reviews: `kubectl auth can-i` (SelfSubjectAccessReview) and `kubectl auth whoami`
(SelfSubjectReview).

    POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews
    POST /apis/authentication.k8s.io/v1/selfsubjectreviews

Any authenticated caller may ask about itself (Kubernetes' `system:basic-user`). The answer
is the authorizer chain's own (`AccessControl.allowed`, as the gRPC `AccessReview` asks it).

kubectl sends these two in Kubernetes' protobuf, which Skiff does not otherwise speak: the
envelope (`k8s\\0`, a `runtime.Unknown` holding the type and the raw message) and the few
fields of the review are read here by their field numbers in Kubernetes' generated.proto
(ResourceAttributes: namespace 1, verb 2, group 3, version 4, resource 5, subresource 6,
name 7). The answer is JSON, which kubectl also accepts.
"""

from __future__ import annotations

import json
from typing import Any

from api.errors import FieldError, ValidationFailed
from controlplane.auth.access import AccessControl
from controlplane.auth.authz import Attributes
from controlplane.auth.identity import UserInfo

ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
SELF_REVIEW_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
MAGIC = b"k8s\x00"
_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _fields(data: bytes, *, varints: bool = False) -> dict[int, Any]:
    """The length-delimited fields of a protobuf message (the last of each number) as bytes; varints
    skipped, or with `varints` kept as ints."""
    out: dict[int, Any] = {}
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            if varints:
                out[number] = value
        elif wire == 2:
            size, at = _varint(data, at)
            out[number] = data[at:at + size]
            at += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    return out


def _protobuf_spec(body: bytes) -> dict[str, Any]:
    """The `spec.resourceAttributes` of a protobuf SelfSubjectAccessReview, as JSON would have it."""
    if not body.startswith(MAGIC):
        raise ValueError("not Kubernetes' protobuf envelope")
    raw = _fields(_fields(body[len(MAGIC):]).get(2, b""))      # Unknown.raw: the review
    spec = _fields(raw.get(2, b""))                               # SelfSubjectAccessReview.spec
    if 1 not in spec:
        return {}
    attributes = _fields(spec[1])
    return {"resourceAttributes": {name: attributes[n].decode() for n, name in _RESOURCE_ATTRIBUTES.items()
                                   if n in attributes}}


def protobuf_eviction(body: bytes) -> dict[str, Any]:
    """A protobuf Eviction (policy/v1, as `kubectl drain` sends it) as its JSON: only
    deleteOptions.gracePeriodSeconds (DeleteOptions field 1) is read; the pod comes from the URL."""
    if not body.startswith(MAGIC):
        raise ValueError("not Kubernetes' protobuf envelope")
    raw = _fields(_fields(body[len(MAGIC):]).get(2, b""))       # Unknown.raw: the Eviction
    options = _fields(raw.get(2, b""), varints=True)              # Eviction.deleteOptions
    out: dict[str, Any] = {"apiVersion": "policy/v1", "kind": "Eviction", "deleteOptions": {}}
    if 1 in options:
        grace = options[1]
        out["deleteOptions"]["gracePeriodSeconds"] = grace - (1 << 64) if grace >= 1 << 63 else grace
    return out


def decode_spec(body: bytes, content_type: str) -> dict[str, Any]:
    try:
        if "protobuf" in content_type:
            return _protobuf_spec(body)
        review = json.loads(body or b"{}")
        return review.get("spec") or {} if isinstance(review, dict) else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationFailed(FieldError("", f"the review cannot be decoded: {exc}")) from None


def access_review(access: AccessControl, user: UserInfo, spec: dict[str, Any]) -> dict[str, Any]:
    attributes = spec.get("resourceAttributes")
    if not isinstance(attributes, dict):
        raise ValidationFailed(FieldError("spec.resourceAttributes", "field required (non-resource URLs are not "
                                                                     "served by Skiff)"),
                               kind="SelfSubjectAccessReview")
    if not attributes.get("verb") or not attributes.get("resource"):
        raise ValidationFailed([FieldError(f"spec.resourceAttributes.{f}", "field required")
                                for f in ("verb", "resource") if not attributes.get(f)], kind="SelfSubjectAccessReview")
    allowed, reason = access.allowed(Attributes(user, attributes["verb"], attributes["resource"],
                                                attributes.get("group", ""), attributes.get("subresource", ""),
                                                attributes.get("namespace", ""), attributes.get("name", "")))
    status: dict[str, Any] = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
            "spec": spec, "status": status}


def self_review(user: UserInfo) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
            "status": {"userInfo": info}}
