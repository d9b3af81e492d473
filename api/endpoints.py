"""Endpoints (v1): the addresses behind a Service, as `kubectl get endpoints` shows them.

The older form of EndpointSlice, kept by the Endpoints controller for the same
Services (the object has the Service's name): `subsets` group addresses by the
ports they serve; ready pods are in `addresses`, the others in
`notReadyAddresses`. Proxies and DNS read EndpointSlices; this kind is for
people and for tools that still read it.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Optional

from pydantic import Field

from api.base import ApiModel
from api.errors import FieldError, invalid
from api.event import ObjectReference
from api.fieldtypes import check_port_number
from api.registry import ResourceInfo, register
from api.resource import Resource


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class EndpointAddress(ApiModel):
    """One address of an endpoint."""

    ip: str = Field(description="The IP address.")
    hostname: Optional[str] = Field(None, description="Host name of the endpoint.")
    node_name: Optional[str] = Field(None, description="Node hosting the endpoint.")
    target_ref: Optional[ObjectReference] = Field(None, description="The object behind the address (a Pod).")


class EndpointPort(ApiModel):
    """A port the addresses of a subset serve."""

    name: Optional[str] = Field(None, description="The Service port's name.")
    port: int = Field(description="Port number.")
    protocol: Literal["TCP", "UDP", "SCTP"] = Field("TCP", description="TCP, UDP or SCTP.")
    app_protocol: Optional[str] = Field(None, description="Application protocol hint.")


class EndpointSubset(ApiModel):
    """Addresses that serve the same ports."""

    addresses: Optional[list[EndpointAddress]] = Field(None, description="Ready addresses.")
    not_ready_addresses: Optional[list[EndpointAddress]] = Field(None, description="Addresses not (yet) ready.")
    ports: Optional[list[EndpointPort]] = Field(None, description="Ports of the addresses.")


class Endpoints(Resource):
    """The endpoints of the Service of the same name."""

    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["Endpoints"] = "Endpoints"
    subsets: Optional[list[EndpointSubset]] = Field(None, description="Sets of addresses and the ports they serve.")

    def validate_semantics(self) -> list[FieldError]:
        errors: list[FieldError] = []
        for i, subset in enumerate(self.subsets or []):
            for field, addresses in (("addresses", subset.addresses), ("notReadyAddresses",
                                                                        subset.not_ready_addresses)):
                for j, address in enumerate(addresses or []):
                    try:
                        ipaddress.ip_address(address.ip)
                    except ValueError:
                        errors.append(invalid(f"subsets[{i}].{field}[{j}].ip", address.ip,
                                              "must be a valid IP address"))
            for j, port in enumerate(subset.ports or []):
                errors += check_port_number(port.port, f"subsets[{i}].ports[{j}].port")
        return errors


register(ResourceInfo(kind="Endpoints", plural="endpoints", model=Endpoints, short_names=("ep",),
                      has_status=False, spec_fields=()))
