"""Lease (coordination.k8s.io/v1): a heartbeat or a lock.

Agents renew one Lease per node in namespace `skiff-node-lease`; the node
lifecycle controller reads renewTime to decide whether a node is alive. Leader
election of control planes uses etcd leases directly, not this kind.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.registry import ResourceInfo, register
from api.resource import Resource


class LeaseSpec(ApiModel):
    holder_identity: Optional[str] = None
    lease_duration_seconds: Optional[int] = Field(default=None, ge=1)
    acquire_time: Optional[str] = None
    renew_time: Optional[str] = None
    lease_transitions: Optional[int] = Field(default=None, ge=0)


class Lease(Resource):
    api_version: Literal["coordination.k8s.io/v1"] = "coordination.k8s.io/v1"  # type: ignore[assignment]
    kind: Literal["Lease"] = "Lease"
    spec: LeaseSpec = Field(default_factory=LeaseSpec)


register(ResourceInfo(kind="Lease", plural="leases", model=Lease, group="coordination.k8s.io",
                      has_status=False))
