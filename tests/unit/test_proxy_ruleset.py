"""The service proxy's ruleset as data: given Services and EndpointSlices (Kubernetes' shapes),
which chains, map elements and nft commands it writes (agent/proxy). Real nftables: tests/node/test_proxy.py."""

from __future__ import annotations

from typing import Any

import pytest

from agent.proxy.model import service_ports
from agent.proxy.ruleset import (NO_ENDPOINT_NODEPORTS, NO_ENDPOINT_SERVICES, SERVICE_IPS, SERVICE_NODEPORTS,
                                 Ruleset, affinity_set, endpoint_chain, external_chain, fragment, service_chain)
from agent.proxy.syncer import stale_flows
from agent.proxy.conntrack import StaleFlow
from agent.proxy.transaction import full_script, update_script

CIDR = "198.19.0.0/16"
NODE = "node-a"


def service(name: str = "web", *, ip: str = "10.96.0.10", ports: list[dict] | None = None,
            **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "default", "name": name},
            "spec": {"type": "ClusterIP", "clusterIP": ip,
                     "ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080}],
                     **spec}}


def endpoint(ip: str, node: str = NODE, **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node, "conditions": conditions or {"ready": True}}


def slice_(service_name: str = "web", endpoints: list[dict] | None = None, *, name: str = "",
           ports: list[dict] | None = None) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"namespace": "default", "name": name or f"{service_name}-abcde",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "endpoints": endpoints or [],
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def build(svc: dict, *slices: dict) -> tuple[list, Any]:
    ports = service_ports(svc, slices)
    return ports, fragment(ports, node_name=NODE, cluster_cidr=CIDR)


# ---- model -----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ({"clusterIP": "None"}, 0),                                  # headless
    ({"clusterIP": ""}, 0),                                      # not allocated yet
    ({"type": "ExternalName", "externalName": "example.com"}, 0),
    ({"clusterIP": "fd00::1"}, 0),                               # IPv6: not proxied
    ({}, 1),
])
def test_which_services_are_proxied(spec: dict, expected: int) -> None:
    assert len(service_ports(service(**spec), [])) == expected


@pytest.mark.parametrize("conditions, usable", [
    ([{"ready": True}, {"ready": False}], ["198.19.1.2"]),
    ([{}, {"ready": False}], ["198.19.1.2"]),                                   # missing ready = ready
    ([{"ready": False, "serving": True, "terminating": True},
      {"ready": False, "serving": False, "terminating": True}], ["198.19.1.2"]),  # fallback: serving terminating
    ([{"ready": True}, {"ready": False, "serving": True, "terminating": True}], ["198.19.1.2"]),
    ([{"ready": False}, {"ready": False}], []),
])
def test_usable_endpoints_follow_conditions(conditions: list[dict], usable: list[str]) -> None:
    eps = [{"addresses": [f"198.19.1.{i + 2}"], "conditions": c} for i, c in enumerate(conditions)]
    [port] = service_ports(service(), [slice_(endpoints=eps)])
    assert [e.ip for e in port.usable_endpoints()] == usable


def test_endpoints_are_matched_by_port_name_and_protocol_across_slices() -> None:
    svc = service(ports=[{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}])
    one = slice_(endpoints=[endpoint("198.19.1.2")], name="web-1",
                 ports=[{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "dns", "port": 5353,
                                                                            "protocol": "UDP"}])
    two = slice_(endpoints=[endpoint("198.19.2.2", "node-b"), endpoint("198.19.1.2")], name="web-2",
                 ports=[{"name": "http", "port": 8081, "protocol": "TCP"}])
    http, dns = service_ports(svc, [one, two])
    assert [(e.ip, e.port) for e in http.endpoints] == [("198.19.1.2", 8080), ("198.19.1.2", 8081),
                                                       ("198.19.2.2", 8081)]
    assert [(e.ip, e.port) for e in dns.endpoints] == [("198.19.1.2", 5353)]
    assert dns.protocol == "udp"


# ---- ruleset -----------------------------------------------------------------------------------

def test_each_of_n_endpoints_is_chosen_with_chance_one_in_n_by_one_rule() -> None:
    eps = [endpoint(f"198.19.1.{i}") for i in range(2, 6)]
    [port], part = build(service(), slice_(endpoints=eps))
    assert part.chains[service_chain(port)][1:] == (           # numgen's 0..3, one per endpoint: 1/4 each
        "meta l4proto tcp dnat ip to numgen random mod 4 map { 0 : 198.19.1.2 . 8080, 1 : 198.19.1.3 . 8080, "
        "2 : 198.19.1.4 . 8080, 3 : 198.19.1.5 . 8080 }",)


def test_cluster_ip_goes_to_the_service_chain_which_picks_an_endpoint_at_random() -> None:
    [port], part = build(service(), slice_(endpoints=[endpoint("198.19.1.2"), endpoint("198.19.2.2", "node-b")]))
    chain = service_chain(port)
    assert part.elements == {(SERVICE_IPS, "10.96.0.10 . tcp . 80"): f"goto {chain}"}
    assert part.chains == {chain: (                             # two rules, whatever the number of endpoints
        f"ip saddr != {CIDR} meta mark set meta mark | 0x4000",
        "meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 198.19.1.2 . 8080, 1 : 198.19.2.2 . 8080 }")}
    assert part.hairpin == frozenset({"198.19.1.2"})            # only this node's endpoints
    assert chain.startswith("svc-") and chain.endswith("-default/web/tcp/http")


def test_one_endpoint_is_a_plain_dnat() -> None:
    [port], part = build(service(), slice_(endpoints=[endpoint("198.19.1.2")]))
    assert part.chains[service_chain(port)][-1] == "meta l4proto tcp dnat ip to 198.19.1.2:8080"


@pytest.mark.parametrize("svc_type, node_port, expected", [
    ("ClusterIP", None, {(NO_ENDPOINT_SERVICES, "10.96.0.10 . tcp . 80"): "goto reject-chain"}),
    ("NodePort", 30080, {(NO_ENDPOINT_SERVICES, "10.96.0.10 . tcp . 80"): "goto reject-chain",
                         (NO_ENDPOINT_NODEPORTS, "tcp . 30080"): "goto reject-chain"}),
])
def test_no_usable_endpoint_rejects(svc_type: str, node_port: int | None, expected: dict) -> None:
    ports = [{"name": "http", "port": 80, "nodePort": node_port}]
    _, part = build(service(type=svc_type, ports=ports), slice_(endpoints=[endpoint("198.19.1.2", ready=False)]))
    assert part.elements == expected and part.chains == {}


def test_node_port_cluster_policy_masquerades_then_uses_the_service_chain() -> None:
    svc = service(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    [port], part = build(svc, slice_(endpoints=[endpoint("198.19.2.2", "node-b")]))
    ext = external_chain(port)
    assert part.elements[(SERVICE_NODEPORTS, "tcp . 30080")] == f"goto {ext}"
    assert part.chains[ext] == ("meta mark set meta mark | 0x4000", f"goto {service_chain(port)}")


def test_node_port_on_a_cluster_ip_service_is_ignored() -> None:
    _, part = build(service(ports=[{"name": "http", "port": 80, "nodePort": 30080}]),
                    slice_(endpoints=[endpoint("198.19.1.2")]))
    assert not any(m == SERVICE_NODEPORTS for m, _ in part.elements)


@pytest.mark.parametrize("endpoints, last_rule", [
    ([endpoint("198.19.1.2"), endpoint("198.19.2.2", "node-b")], "meta l4proto tcp dnat ip to 198.19.1.2:8080"),

    ([endpoint("198.19.2.2", "node-b")], "drop"),                  # no local endpoint: dropped, not forwarded
])
def test_external_traffic_policy_local(endpoints: list, last_rule: str) -> None:
    svc = service(type="NodePort", externalTrafficPolicy="Local",
                  ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    [port], part = build(svc, slice_(endpoints=endpoints))
    svc_chain = service_chain(port)
    assert part.chains[external_chain(port)] == (
        f"ip saddr {CIDR} goto {svc_chain}",                                  # pods: every endpoint
        f"fib saddr type local meta mark set meta mark | 0x4000 goto {svc_chain}",   # the node itself
        last_rule)                                                             # outside: local ones, no masquerade


def test_session_affinity_client_ip_remembers_the_client_per_endpoint() -> None:
    svc = service(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    [port], part = build(svc, slice_(endpoints=[endpoint("198.19.1.2"), endpoint("198.19.1.3")]))
    first, second = port.endpoints
    sets = [affinity_set(port, first), affinity_set(port, second)]
    chains = [endpoint_chain(port, first), endpoint_chain(port, second)]
    assert part.sets == {name: "type ipv4_addr; flags dynamic,timeout; timeout 60s;" for name in sets}
    assert part.chains[service_chain(port)][1:] == (
        f"ip saddr @{sets[0]} goto {chains[0]}", f"ip saddr @{sets[1]} goto {chains[1]}",     # known clients
        f"numgen random mod 2 vmap {{ 0 : goto {chains[0]}, 1 : goto {chains[1]} }}")      # new ones: 1/2 each
    assert part.chains[chains[1]] == (f"update @{sets[1]} {{ ip saddr }}",
                                      "meta l4proto tcp dnat ip to 198.19.1.3:8080")


def test_default_affinity_timeout_is_three_hours() -> None:
    [port] = service_ports(service(sessionAffinity="ClientIP"), [])
    assert port.affinity_seconds == 10800


# ---- transactions ---------------------------------------------------------------------------------

def test_full_script_replaces_the_table_atomically() -> None:
    _, part = build(service(), slice_(endpoints=[endpoint("198.19.1.2")]))
    script = full_script("skiff-proxy", Ruleset.build([part]), cluster_cidr=CIDR).splitlines()
    assert script[:2] == ["add table ip skiff-proxy", "delete table ip skiff-proxy"]
    assert "add element ip skiff-proxy hairpin { 198.19.1.2 . 198.19.1.2 }" in script
    assert all(" ip skiff-proxy" in line for line in script)      # never another table


def test_update_touches_only_what_changed() -> None:
    [port], before = build(service(), slice_(endpoints=[endpoint("198.19.1.2")]))
    _, after = build(service(), slice_(endpoints=[endpoint("198.19.1.2"), endpoint("198.19.1.3")]))
    chain = service_chain(port)
    assert update_script("t", [(before, after)]) == [
        f"flush chain ip t {chain}",
        f"add rule ip t {chain} ip saddr != {CIDR} meta mark set meta mark | 0x4000",
        f"add rule ip t {chain} meta l4proto tcp dnat ip to numgen random mod 2 map "
        "{ 0 : 198.19.1.2 . 8080, 1 : 198.19.1.3 . 8080 }"]     # the element of @service-ips stays
    assert update_script("t", [(after, after)]) == []


def test_losing_the_last_endpoint_moves_the_key_to_reject_and_deletes_the_chain_last() -> None:
    [port], before = build(service(), slice_(endpoints=[endpoint("198.19.1.2")]))
    _, after = build(service(), slice_(endpoints=[]))
    chain = service_chain(port)
    assert update_script("t", [(before, after)]) == [
        "delete element ip t service-ips { 10.96.0.10 . tcp . 80 }",
        "add element ip t no-endpoint-services { 10.96.0.10 . tcp . 80 : goto reject-chain }",
        f"flush chain ip t {chain}", f"delete chain ip t {chain}"]


def test_a_cluster_ip_passed_between_services_is_deleted_before_it_is_added() -> None:
    _, old = build(service("a"), slice_("a", [endpoint("198.19.1.2")]))
    [port], new = build(service("b"), slice_("b", [endpoint("198.19.1.3")]))
    lines = update_script("t", [(None, new), (old, None)])
    delete = lines.index("delete element ip t service-ips { 10.96.0.10 . tcp . 80 }")
    add = lines.index(f"add element ip t service-ips {{ 10.96.0.10 . tcp . 80 : goto {service_chain(port)} }}")
    assert delete < add


# ---- UDP conntrack -------------------------------------------------------------------------------

def test_stale_udp_flows_are_those_of_gone_endpoints() -> None:
    svc = service(type="NodePort", ports=[{"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053}])
    ports = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
    before = service_ports(svc, [slice_(endpoints=[endpoint("198.19.1.2"), endpoint("198.19.1.3")], ports=ports)])
    after = service_ports(svc, [slice_(endpoints=[endpoint("198.19.1.3")], ports=ports)])
    assert stale_flows(before, after) == [StaleFlow("10.96.0.10", 53, "198.19.1.2"), StaleFlow("", 30053, "198.19.1.2")]
    empty = service_ports(svc, [])
    assert stale_flows(empty, after) == [StaleFlow("10.96.0.10", 53)]      # rejected until now: start afresh
    assert stale_flows(before, before) == []

