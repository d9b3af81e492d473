"""ServiceAccount (v1): an identity for processes in pods.

A pod runs as the ServiceAccount named in `spec.serviceAccountName` (`default` when
unset). Its token — a JWT bound to the pod, issued by the API server
(controlplane/auth/serviceaccount_tokens.py) — is mounted at
/var/run/secrets/kubernetes.io/serviceaccount unless `automountServiceAccountToken`
is false on the ServiceAccount or the pod. The identity it authenticates as is
`system:serviceaccount:<namespace>:<name>`. A controller keeps a `default` one in
every namespace (controlplane/controllers/serviceaccount.py).
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.registry import ResourceInfo, register
from api.resource import Resource


class LocalObjectReference(ApiModel):
    name: str


class ServiceAccount(Resource):
    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["ServiceAccount"] = "ServiceAccount"
    automount_service_account_token: Optional[bool] = Field(
        default=None, description="Whether pods running as this account get its token mounted (default true).")
    secrets: Optional[list[LocalObjectReference]] = None
    image_pull_secrets: Optional[list[LocalObjectReference]] = None


register(ResourceInfo(kind="ServiceAccount", plural="serviceaccounts", model=ServiceAccount, short_names=("sa",),
                      has_status=False, spec_fields=()))
