"""EndpointSlice (discovery.k8s.io/v1): a slice of the network endpoints behind a Service.

What service proxies and cluster DNS read. The EndpointSlice controller keeps
the slices of every Service with a selector (label `kubernetes.io/service-name`,
at most 100 endpoints each, one set of ports per slice); a Service without a
selector is left to slices its user writes. Each endpoint carries the
conditions Kubernetes defines: `ready` (serving and not terminating),
`serving` (the pod's Ready condition) and `terminating` (being deleted).
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, invalid, required
from api.event import ObjectReference
from api.fieldtypes import check_port_number
from api.names import check_dns1123_label, check_dns1123_subdomain
from api.registry import ResourceInfo, register
from api.resource import Resource

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MAX_ENDPOINTS = 1000          # per slice, as the Kubernetes API allows
MAX_ADDRESSES = 100           # per endpoint
MAX_PORTS = 100               # per slice


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class EndpointConditions(ApiModel):
    """The state of an endpoint."""

    ready: Optional[bool] = Field(None, description="Ready to receive traffic: serving and not terminating "
                                                    "(unset means ready).")
    serving: Optional[bool] = Field(None, description="The pod is ready, whether or not it is terminating.")
    terminating: Optional[bool] = Field(None, description="The pod is being deleted.")


class ForZone(ApiModel):
    """A zone an endpoint should serve."""

    name: str = Field(description="Name of the zone.")


class EndpointHints(ApiModel):
    """Topology hints for consumers."""

    for_zones: Optional[list[ForZone]] = Field(None, description="Zones this endpoint should serve.")


class Endpoint(ApiModel):
    """One network endpoint: a pod's addresses and state."""

    addresses: list[str] = Field(description="Addresses of the endpoint (1 to 100, of the slice's addressType).")
    conditions: EndpointConditions = Field(default_factory=EndpointConditions,
                                           description="The state of the endpoint.")
    hostname: Optional[str] = Field(None, description="Host name of the endpoint (a pod's hostname when its "
                                                      "subdomain is the Service's name).")
    target_ref: Optional[ObjectReference] = Field(None, description="The object behind the endpoint (a Pod).")
    node_name: Optional[str] = Field(None, description="Node hosting the endpoint.")
    zone: Optional[str] = Field(None, description="Zone of the endpoint.")
    hints: Optional[EndpointHints] = Field(None, description="Topology hints.")
    deprecated_topology: Optional[dict[str, str]] = Field(None, description="Deprecated topology labels.")


class EndpointPort(ApiModel):
    """A port every endpoint of the slice serves."""

    name: Optional[str] = Field(None, description="Name of the port: the Service port's name (\"\" if it has none).")
    protocol: Literal["TCP", "UDP", "SCTP"] = Field("TCP", description="TCP, UDP or SCTP.")
    port: Optional[int] = Field(None, description="Port number on the endpoints.")
    app_protocol: Optional[str] = Field(None, description="Application protocol hint.")


class EndpointSlice(Resource):
    """A slice of the endpoints of a Service."""

    api_version: Literal["discovery.k8s.io/v1"] = "discovery.k8s.io/v1"  # type: ignore[assignment]
    kind: Literal["EndpointSlice"] = "EndpointSlice"
    address_type: Literal["IPv4", "IPv6", "FQDN"] = Field(description="IPv4, IPv6 or FQDN: the type of every "
                                                                     "address in the slice.")
    endpoints: list[Endpoint] = Field(default_factory=list, description="The endpoints (at most 1000).")
    ports: Optional[list[EndpointPort]] = Field(None, description="Ports of the endpoints; none means no ports "
                                                                  "(not all).")

    def validate_semantics(self) -> list[FieldError]:
        errors: list[FieldError] = []
        if len(self.endpoints) > MAX_ENDPOINTS:
            errors.append(FieldError("endpoints", f"Too many: {len(self.endpoints)}: must have at most "
                                                  f"{MAX_ENDPOINTS} items"))
        for i, ep in enumerate(self.endpoints):
            path = f"endpoints[{i}]"
            if not ep.addresses:
                errors.append(required(f"{path}.addresses", "must contain at least 1 address"))
            elif len(ep.addresses) > MAX_ADDRESSES:
                errors.append(FieldError(f"{path}.addresses", f"Too many: {len(ep.addresses)}: must have at most "
                                                              f"{MAX_ADDRESSES} items"))
            for j, address in enumerate(ep.addresses):
                errors += _check_address(self.address_type, address, f"{path}.addresses[{j}]")
            if ep.hostname and (msg := check_dns1123_label(ep.hostname)):
                errors.append(invalid(f"{path}.hostname", ep.hostname, msg))
            if ep.node_name and (msg := check_dns1123_subdomain(ep.node_name)):
                errors.append(invalid(f"{path}.nodeName", ep.node_name, msg))
        ports = self.ports or []
        if len(ports) > MAX_PORTS:
            errors.append(FieldError("ports", f"Too many: {len(ports)}: must have at most {MAX_PORTS} items"))
        seen: set[str] = set()
        for i, port in enumerate(ports):
            name = port.name or ""
            if name and (msg := check_dns1123_label(name)):
                errors.append(invalid(f"ports[{i}].name", name, msg))
            if name in seen:
                errors.append(FieldError(f"ports[{i}].name", f'Duplicate value: "{name}"'))
            seen.add(name)
            if port.port is not None:
                errors += check_port_number(port.port, f"ports[{i}].port")
        return errors


def _check_address(address_type: str, address: str, path: str) -> list[FieldError]:
    if address_type == "FQDN":
        if msg := check_dns1123_subdomain(address):
            return [invalid(path, address, msg)]
        return []
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return [invalid(path, address, "must be a valid IP address")]
    if (ip.version == 4) != (address_type == "IPv4"):
        return [invalid(path, address, f"must be an {address_type} address")]
    return []


register(ResourceInfo(kind="EndpointSlice", plural="endpointslices", model=EndpointSlice, group="discovery.k8s.io",
                      short_names=("eps",),
                      has_status=False, spec_fields=()))
