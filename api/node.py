"""Node (v1, cluster-scoped): a machine that runs pods, registered by its agent.

The agent creates its Node at start-up and keeps status current: capacity and
allocatable resources, conditions (Ready, MemoryPressure, ...), addresses and
system facts. spec holds what the cluster decides about the node: its pod
CIDR (from the IPAM controller), whether it is cordoned (`unschedulable`) and
its taints, which pods must tolerate (api/affinity.py) to run there.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, duplicate, invalid, required
from api.fieldtypes import ResourceList
from api.podstatus import ConditionStatus
from api.registry import ResourceInfo, register
from api.resource import Resource
from api.selectors import check_label_key, check_label_value


class Taint(ApiModel):
    """Repels pods that do not tolerate it."""

    key: str = Field(description="Taint key, a label key.")
    value: Optional[str] = Field(None, description="Taint value, a label value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        description="NoSchedule, PreferNoSchedule or NoExecute (also evicts running pods).")
    time_added: Optional[str] = Field(None, description="When a NoExecute taint was added (RFC 3339).")


class NodeSpec(ApiModel):
    """What the cluster decides about a node."""

    pod_cidr: Optional[str] = Field(None, alias="podCIDR", description="Pod IP range of the node, e.g. "
                                                                       "198.18.1.0/24.")
    pod_cidrs: Optional[list[str]] = Field(None, alias="podCIDRs", description="Pod IP ranges, at most one per "
                                                                               "IP family; the first is podCIDR.")
    unschedulable: Optional[bool] = Field(None, description="Cordoned: no new pods are scheduled here.")
    taints: Optional[list[Taint]] = Field(None, description="Taints that pods must tolerate.")
    provider_id: Optional[str] = Field(None, alias="providerID", description="ID of the node at its provider.")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class NodeCondition(ApiModel):
    """One aspect of a node's health: Ready, MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable."""

    type: str = Field(description="Condition type, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: Optional[str] = Field(None, description="One-word CamelCase reason, e.g. AgentReady.")
    message: Optional[str] = Field(None, description="Human-readable details.")
    last_heartbeat_time: Optional[str] = Field(None, description="When the agent last reported it (RFC 3339).")
    last_transition_time: Optional[str] = Field(None, description="When the status last changed (RFC 3339).")


class NodeAddress(ApiModel):
    """An address of the node."""

    type: Literal["InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS"] = Field(
        description="InternalIP, ExternalIP, Hostname, InternalDNS or ExternalDNS.")
    address: str = Field(description="The address.")


class NodeSystemInfo(ApiModel):
    """Facts about the node's system."""

    machine_id: str = Field("", alias="machineID", description="Contents of /etc/machine-id.")
    system_uuid: str = Field("", alias="systemUUID", description="SMBIOS system UUID.")
    boot_id: str = Field("", alias="bootID", description="ID of the current boot.")
    kernel_version: str = Field("", description="Kernel release (uname -r).")
    os_image: str = Field("", description="OS name from /etc/os-release.")
    container_runtime_version: str = Field("", description="Runtime name and version, e.g. skiff://0.1.0.")
    kubelet_version: str = Field("", description="Version of the node agent.")
    kube_proxy_version: Optional[str] = Field(None, description="Version of the service proxy, if any.")
    operating_system: str = Field("", description="Operating system, e.g. linux.")
    architecture: str = Field("", description="CPU architecture, e.g. amd64.")


class ContainerImage(ApiModel):
    """An image present on the node."""

    names: Optional[list[str]] = Field(None, description="Names (references and digests) of the image.")
    size_bytes: Optional[int] = Field(None, description="Size of the image in bytes.")


class DaemonEndpoint(ApiModel):
    """A port a node daemon listens on."""

    port: int = Field(alias="Port", description="Port number.")


class NodeDaemonEndpoints(ApiModel):
    """Ports of daemons on the node."""

    kubelet_endpoint: Optional[DaemonEndpoint] = Field(None, description="The agent's own gRPC port "
                                                                         "(logs, exec).")


class NodeStatus(ApiModel):
    """The observed state of a node, written by its agent."""

    capacity: Optional[ResourceList] = Field(None, description="Total resources of the node.")
    allocatable: Optional[ResourceList] = Field(None, description="Resources available to pods.")
    phase: Optional[str] = Field(None, description="Deprecated; unused.")
    conditions: Optional[list[NodeCondition]] = Field(None, description="Current conditions.")
    addresses: Optional[list[NodeAddress]] = Field(None, description="Addresses of the node.")
    daemon_endpoints: Optional[NodeDaemonEndpoints] = Field(None, description="Ports of daemons on the node.")
    node_info: Optional[NodeSystemInfo] = Field(None, description="Facts about the node's system.")
    images: Optional[list[ContainerImage]] = Field(None, description="Images present on the node.")

    def condition(self, type_: str) -> NodeCondition | None:
        for c in self.conditions or []:
            if c.type == type_:
                return c
        return None


class Node(Resource):
    """A machine that runs pods."""

    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["Node"] = "Node"
    spec: NodeSpec = Field(default_factory=NodeSpec, description="What the cluster decides about the node.")
    status: Optional[NodeStatus] = Field(None, description="Observed state, written by the node's agent.")

    def validate_semantics(self) -> list[FieldError]:
        errors = []
        spec = self.spec
        if spec.pod_cidr:
            errors += _check_cidr(spec.pod_cidr, "spec.podCIDR")
        if spec.pod_cidrs:
            for i, cidr in enumerate(spec.pod_cidrs):
                errors += _check_cidr(cidr, f"spec.podCIDRs[{i}]")
            if len(spec.pod_cidrs) > 2:
                errors.append(invalid("spec.podCIDRs", spec.pod_cidrs, "may specify no more than one CIDR for "
                                                                       "each IP family"))
            if spec.pod_cidr and spec.pod_cidrs[0] != spec.pod_cidr:
                errors.append(invalid("spec.podCIDRs[0]", spec.pod_cidrs[0], "must match spec.podCIDR"))
        seen = set()
        for i, taint in enumerate(spec.taints or []):
            p = f"spec.taints[{i}]"
            if not taint.key:
                errors.append(required(f"{p}.key"))
            elif msg := check_label_key(taint.key):
                errors.append(FieldError(f"{p}.key", msg))
            if taint.value and (msg := check_label_value(taint.value)):
                errors.append(FieldError(f"{p}.value", msg))
            if (taint.key, taint.effect) in seen:
                errors.append(duplicate(p, f"{taint.key}:{taint.effect}"))
            seen.add((taint.key, taint.effect))
        return errors


def _check_cidr(cidr: str, path: str) -> list[FieldError]:
    try:
        ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        return [invalid(path, cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]
    return []


register(ResourceInfo(kind="Node", plural="nodes", model=Node, namespaced=False, short_names=("no",)))
