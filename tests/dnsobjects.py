"""Services and EndpointSlices as plain Kubernetes-shaped dicts, for the cluster DNS tests
(tests/unit/test_dns_*.py, tests/node/test_cluster_dns.py)."""

from __future__ import annotations

from typing import Any


def service(name: str, ns: str = "default", *, cluster_ip: str | None = "10.96.0.10",
            ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}],
                            **spec}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": body}


def endpoint(ip: str, *, ready: bool | None = True, hostname: str | None = None) -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": [ip], "targetRef": {"kind": "Pod", "name": f"pod-{ip}"}}
    if ready is not None:
        ep["conditions"] = {"ready": ready}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(name: str, service_name: str, endpoints: list[dict[str, Any]], ns: str = "default",
                   ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]}
