"""Service (v1): a stable virtual IP and DNS name in front of the pods a selector matches.

`type` chooses how it is reached: ClusterIP (inside the cluster), NodePort
(also on a port of every node), LoadBalancer (also through an external
balancer) or ExternalName (a DNS alias, no proxying). Each port forwards to a
`targetPort` on the pods, a number or a container port name, defaulting to
the service port. Service names are DNS-1123 labels because they become DNS
names.
"""

from __future__ import annotations

import ipaddress
from typing import Literal, Optional

from pydantic import Field, model_validator

from api.base import ApiModel
from api.errors import FieldError, duplicate, invalid, required
from api.fieldtypes import IntOrString, check_port_number, check_port_ref
from api.names import check_dns1123_label, check_dns1123_subdomain
from api.registry import ResourceInfo, register
from api.resource import Resource
from api.selectors import check_label_key, check_label_value


class ServicePort(ApiModel):
    """A port the service exposes."""

    name: Optional[str] = Field(None, description="Port name, required when there is more than one port.")
    protocol: Literal["TCP", "UDP", "SCTP"] = Field("TCP", description="TCP, UDP or SCTP.")
    app_protocol: Optional[str] = Field(None, description="Application protocol hint, e.g. http.")
    port: int = Field(description="Port the service listens on (1-65535).")
    target_port: Optional[IntOrString] = Field(None, description="Port number or container port name on the "
                                                                 "pods; defaults to port.")
    node_port: Optional[int] = Field(None, description="Port on every node, for NodePort and LoadBalancer; "
                                                       "allocated when unset.")

    @model_validator(mode="after")
    def _default_target_port(self) -> "ServicePort":
        if self.target_port is None:
            self.target_port = self.port
        return self


class ServiceSpec(ApiModel):
    """The desired state of a service."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"] = Field(
        "ClusterIP", description="ClusterIP, NodePort, LoadBalancer or ExternalName.")
    selector: Optional[dict[str, str]] = Field(None, description="Labels of the pods to send traffic to.")
    ports: Optional[list[ServicePort]] = Field(None, description="Ports the service exposes.")
    cluster_ip: Optional[str] = Field(None, alias="clusterIP", description="Virtual IP; allocated when unset, "
                                                                           "\"None\" for a headless service.")
    cluster_ips: Optional[list[str]] = Field(None, alias="clusterIPs", description="Virtual IPs, one per IP "
                                                                                   "family; the first is clusterIP.")
    external_ips: Optional[list[str]] = Field(None, alias="externalIPs", description="Node IPs that also accept "
                                                                                     "traffic for the service.")
    external_name: Optional[str] = Field(None, description="DNS name an ExternalName service aliases.")
    session_affinity: Literal["None", "ClientIP"] = Field("None", description="None, or ClientIP to keep a "
                                                                              "client on one pod.")
    load_balancer_ip: Optional[str] = Field(None, alias="loadBalancerIP", description="Deprecated: requested "
                                                                                      "load balancer IP.")
    external_traffic_policy: Optional[Literal["Cluster", "Local"]] = Field(
        None, description="Cluster, or Local to keep external traffic on the receiving node.")
    internal_traffic_policy: Optional[Literal["Cluster", "Local"]] = Field(
        None, description="Cluster, or Local to keep in-cluster traffic on the sending node.")
    ip_families: Optional[list[Literal["IPv4", "IPv6"]]] = Field(None, description="IP families of the "
                                                                                   "cluster IPs.")
    ip_family_policy: Optional[Literal["SingleStack", "PreferDualStack", "RequireDualStack"]] = Field(
        None, description="SingleStack, PreferDualStack or RequireDualStack.")
    publish_not_ready_addresses: Optional[bool] = Field(None, description="Include pods that are not ready.")


class LoadBalancerIngress(ApiModel):
    """An address of the external load balancer."""

    ip: Optional[str] = Field(None, description="IP address.")
    hostname: Optional[str] = Field(None, description="Host name.")


class LoadBalancerStatus(ApiModel):
    """The external load balancer's addresses."""

    ingress: Optional[list[LoadBalancerIngress]] = Field(None, description="Addresses of the load balancer.")


class ServiceStatus(ApiModel):
    """The observed state of a service."""

    load_balancer: Optional[LoadBalancerStatus] = Field(None, description="The load balancer, for type "
                                                                          "LoadBalancer.")


# The types below mirror Kubernetes' own, one per kind: their field declarations look like other
# kinds' (the `duplicates` tool pairs them by shape), but each is a separate API type; no logic to share.
class Service(Resource):
    """A stable address for a set of pods."""

    api_version: Literal["v1"] = "v1"  # type: ignore[assignment]
    kind: Literal["Service"] = "Service"
    spec: ServiceSpec = Field(default_factory=ServiceSpec, description="Desired state of the service.")
    status: Optional[ServiceStatus] = Field(None, description="Observed state of the service.")

    def validate_semantics(self) -> list[FieldError]:
        return check_service_spec(self.spec, "spec")


def _check_ip(value: str, path: str) -> list[FieldError]:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [invalid(path, value, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    return []


def check_service_spec(spec: ServiceSpec, path: str) -> list[FieldError]:
    errors = []
    ports = spec.ports or []
    if spec.type == "ExternalName":
        if not spec.external_name:
            errors.append(required(f"{path}.externalName"))
        elif msg := check_dns1123_subdomain(spec.external_name.rstrip(".")):
            errors.append(invalid(f"{path}.externalName", spec.external_name, msg))
    elif not ports and spec.cluster_ip != "None":
        errors.append(required(f"{path}.ports"))
    if spec.cluster_ip and spec.cluster_ip != "None":
        errors += _check_ip(spec.cluster_ip, f"{path}.clusterIP")
    elif spec.cluster_ip == "None" and spec.type in ("NodePort", "LoadBalancer"):
        errors.append(invalid(f"{path}.clusterIP", "None", f"may not be set to 'None' for {spec.type} services"))
    for i, ip in enumerate(spec.cluster_ips or []):
        if ip != "None":
            errors += _check_ip(ip, f"{path}.clusterIPs[{i}]")
    if spec.cluster_ip and spec.cluster_ips and spec.cluster_ips[0] != spec.cluster_ip:
        errors.append(invalid(f"{path}.clusterIPs[0]", spec.cluster_ips[0], "must be same as clusterIP"))
    for i, ip in enumerate(spec.external_ips or []):
        errors += _check_ip(ip, f"{path}.externalIPs[{i}]")
    for key, value in (spec.selector or {}).items():
        if msg := check_label_key(key) or check_label_value(value):
            errors.append(FieldError(f"{path}.selector", msg))
    names, ports_seen = set(), set()
    for i, port in enumerate(ports):
        p = f"{path}.ports[{i}]"
        if port.name:
            if msg := check_dns1123_label(port.name):
                errors.append(invalid(f"{p}.name", port.name, msg))
            if port.name in names:
                errors.append(duplicate(f"{p}.name", port.name))
            names.add(port.name)
        elif len(ports) > 1:
            errors.append(required(f"{p}.name", "names are required when there is more than one port"))
        errors += check_port_number(port.port, f"{p}.port")
        if port.target_port is not None and port.target_port != port.port:  # else defaulted, checked as port
            errors += check_port_ref(port.target_port, f"{p}.targetPort")
        if port.node_port is not None:
            if spec.type not in ("NodePort", "LoadBalancer"):
                errors.append(FieldError(f"{p}.nodePort", f"Forbidden: may not be used when `type` is "
                                                          f"'{spec.type}'"))
            else:
                errors += check_port_number(port.node_port, f"{p}.nodePort")
        if (port.port, port.protocol) in ports_seen:
            errors.append(duplicate(p, f"{port.port}/{port.protocol}"))
        ports_seen.add((port.port, port.protocol))
    return errors


register(ResourceInfo(kind="Service", plural="services", model=Service, short_names=("svc",),
                      name_rule=check_dns1123_label))
