"""What the proxy needs of a Service and its EndpointSlices, read from Kubernetes' own shapes.

A Service (v1) and the EndpointSlices (discovery.k8s.io/v1) labelled
`kubernetes.io/service-name: <service>` in its namespace become one `ServicePort` per
port of the Service: its cluster IP, port, protocol, nodePort, traffic policy,
affinity, and the endpoints (address, target port, node, conditions) the slices list
for a slice port of the same name and protocol.

Which endpoints take traffic (kube-proxy's `CategorizeEndpoints`): the ready ones; when
none is ready, the serving ones that are terminating (so a rolling update never leaves a
moment with nothing to send to). A missing `ready` or `serving` condition counts as
true, a missing `terminating` as false, as the API documents. An endpoint address
appears once per port even if several slices list it (the ready copy wins).

Pure functions over plain dicts: no API client, no nftables. ruleset.py turns the
result into the rules.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
DEFAULT_AFFINITY_SECONDS = 10800          # Kubernetes' default sessionAffinityConfig.clientIP.timeoutSeconds
PROXIED_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")


@dataclass(frozen=True, order=True, slots=True)
class Endpoint:
    ip: str
    port: int
    node: str = ""
    ready: bool = True
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True, slots=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str                  # nft's spelling: tcp, udp, sctp
    cluster_ip: str
    port: int
    node_port: int = 0             # 0: none
    external_local: bool = False   # externalTrafficPolicy: Local
    affinity_seconds: int = 0      # 0: sessionAffinity None
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def key(self) -> str:
        """kube-proxy's ServicePortName: namespace/name/protocol/portname."""
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name}"

    def usable_endpoints(self) -> tuple[Endpoint, ...]:
        """Endpoints that take new connections: ready ones, else serving terminating ones."""
        ready = tuple(e for e in self.endpoints if e.ready)
        if ready:
            return ready
        return tuple(e for e in self.endpoints if e.serving and e.terminating)

    def local_endpoints(self, node_name: str) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.usable_endpoints() if e.node == node_name)


def service_key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "default", meta.get("name") or ""


def slice_service_key(endpoint_slice: dict[str, Any]) -> tuple[str, str] | None:
    """(namespace, service name) of the slice, None when it names no Service."""
    meta = endpoint_slice.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not service:
        return None
    return meta.get("namespace") or "default", service


def _ipv4(value: Any) -> str | None:
    try:
        address = ipaddress.ip_address(value)
    except (TypeError, ValueError):
        return None
    return str(address) if address.version == 4 else None


def _condition(conditions: dict[str, Any], name: str, default: bool) -> bool:
    value = conditions.get(name)
    return default if value is None else bool(value)


def _slice_endpoints(slices: Iterable[dict[str, Any]], port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    found: dict[tuple[str, int], Endpoint] = {}
    for endpoint_slice in slices:
        if endpoint_slice.get("addressType", "IPv4") != "IPv4":
            continue
        ports = [p for p in endpoint_slice.get("ports") or []
                 if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol]
        for slice_port in ports:
            number = slice_port.get("port")
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
                continue
            for endpoint in endpoint_slice.get("endpoints") or []:
                addresses = endpoint.get("addresses") or []
                ip = _ipv4(addresses[0]) if addresses else None
                if ip is None:
                    continue
                conditions = endpoint.get("conditions") or {}
                ready = _condition(conditions, "ready", True)
                candidate = Endpoint(ip=ip, port=number, node=endpoint.get("nodeName") or "", ready=ready,
                                     serving=_condition(conditions, "serving", ready),
                                     terminating=_condition(conditions, "terminating", False))
                earlier = found.get((ip, number))
                if earlier is None or (candidate.ready and not earlier.ready):
                    found[(ip, number)] = candidate
    return tuple(sorted(found.values()))


def service_ports(service: dict[str, Any], slices: Iterable[dict[str, Any]]) -> list[ServicePort]:
    """The proxied ports of `service` with their endpoints; [] for headless, ExternalName or IP-less Services."""
    spec = service.get("spec") or {}
    if (spec.get("type") or "ClusterIP") not in PROXIED_TYPES:
        return []
    cluster_ip = _ipv4(spec.get("clusterIP"))
    if cluster_ip is None:            # headless ("None"), not allocated yet, or IPv6
        return []
    namespace, name = service_key(service)
    slices = list(slices)
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        affinity = int(config.get("timeoutSeconds") or DEFAULT_AFFINITY_SECONDS)
    external_local = spec.get("externalTrafficPolicy") == "Local"
    has_node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
    result = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        number = port.get("port")
        if protocol not in PROTOCOLS or not isinstance(number, int) or not 1 <= number <= 65535:
            continue
        port_name = port.get("name") or ""
        node_port = (port.get("nodePort") or 0) if has_node_ports else 0
        result.append(ServicePort(
            namespace=namespace, name=name, port_name=port_name, protocol=PROTOCOLS[protocol],
            cluster_ip=cluster_ip, port=number,
            node_port=node_port if isinstance(node_port, int) and 1 <= node_port <= 65535 else 0,
            external_local=external_local, affinity_seconds=affinity,
            endpoints=_slice_endpoints(slices, port_name, protocol)))
    return result
