"""Self reviews: `kubectl auth can-i` (SelfSubjectAccessReview) and `kubectl auth whoami`
(SelfSubjectReview).

    POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews
    POST /apis/authentication.k8s.io/v1/selfsubjectreviews

Any authenticated caller may ask about itself (Kubernetes' `system:basic-user`). The answer
is the authorizer chain's own (`AccessControl.allowed`, as the gRPC `AccessReview` asks it).

kubectl sends these two in Kubernetes' protobuf (the envelope: protobuf.py); the few
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
from controlplane.rest import protobuf
from controlplane.rest.protobuf import last_fields

ACCESS_REVIEW_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
SELF_REVIEW_PATH = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
_RESOURCE_ATTRIBUTES = {1: "namespace", 2: "verb", 3: "group", 4: "version", 5: "resource", 6: "subresource", 7: "name"}


def _protobuf_spec(body: bytes) -> dict[str, Any]:
    """The `spec.resourceAttributes` of a protobuf SelfSubjectAccessReview, as JSON would have it."""
    raw = last_fields(protobuf.envelope(body)[2])               # Unknown.raw: the review
    spec = last_fields(raw.get(2, b""))                           # SelfSubjectAccessReview.spec
    if 1 not in spec:
        return {}
    attributes = last_fields(spec[1])
    return {"resourceAttributes": {name: attributes[n].decode() for n, name in _RESOURCE_ATTRIBUTES.items()
                                   if n in attributes}}


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
