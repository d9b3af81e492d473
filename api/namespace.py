"""Namespace: a name scope for namespaced objects. `default` exists from the start.

Deleting a namespace sets status.phase to Terminating; the namespace controller
removes its contents and then the namespace itself.
"""

from __future__ import annotations

from typing import Literal, Optional

from api.base import ApiModel
from api.names import check_dns1123_label
from api.registry import ResourceInfo, register
from api.resource import Resource


class NamespaceSpec(ApiModel):
    finalizers: Optional[list[str]] = None


class NamespaceStatus(ApiModel):
    phase: Optional[Literal["Active", "Terminating"]] = None


class Namespace(Resource):
    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["Namespace"] = "Namespace"
    spec: Optional[NamespaceSpec] = None
    status: Optional[NamespaceStatus] = None


register(ResourceInfo(kind="Namespace", plural="namespaces", model=Namespace, namespaced=False,
                      short_names=("ns",), name_rule=check_dns1123_label))
