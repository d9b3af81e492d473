"""The proxy's nftables table, as data: fixed skeleton + one `Fragment` per Service.

    table ip skiff-proxy {
      map service-ips           { ipv4_addr . inet_proto . inet_service : verdict }   # cluster IP:port -> goto svc-…
      map service-nodeports     { inet_proto . inet_service : verdict }               # nodePort -> goto ext-…
      map no-endpoint-services  { … : verdict }     # Services without a usable endpoint -> goto reject-chain
      map no-endpoint-nodeports { … : verdict }
      set hairpin               { ipv4_addr . ipv4_addr }    # (pod, pod) for this node's endpoints
      chain nat-prerouting  { type nat hook prerouting priority dstnat;  jump services }
      chain nat-output      { type nat hook output priority -100;        jump services }   # the node, hostNetwork pods
      chain nat-postrouting { type nat hook postrouting priority srcnat; jump masquerading }
      chain filter-{input,forward,output} { type filter hook … priority -110; ct state new jump endpoints-check }
      chain services {
        ip daddr . meta l4proto . th dport vmap @service-ips
        fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
      }
      chain endpoints-check { …the same two lookups in the no-endpoint maps… }
      chain reject-chain    { reject with tcp reset; reject }           # connection refused, at once
      chain masquerading {
        ct status dnat ip saddr . ip daddr @hairpin masquerade          # a pod reaching itself via its Service
        meta mark & 0x4000 == 0 return;  meta mark set meta mark ^ 0x4000;  masquerade fully-random
      }
      chain svc-HASH-ns/name/tcp/port {                   # one per Service port with endpoints: 2 rules
        ip saddr != <cluster CIDR> meta mark set meta mark | 0x4000   # from outside the pod network
        meta l4proto tcp dnat ip to numgen random mod 3 map { 0 : 198.19.1.2 . 8080, 1 : 198.19.1.3 . 8080,
                                                              2 : 198.19.2.2 . 8080 }   # 1/3 each
      }
      chain ext-HASH-ns/name/tcp/port { meta mark set meta mark | 0x4000; goto svc-… }   # NodePort, policy Cluster
    }

Like kube-proxy's nftables mode (pkg/proxy/nftables/proxier.go), the first packet of a
connection costs one hash lookup in a verdict map whatever the number of Services; the
rest of the connection is conntrack's. Unlike it, the endpoint is chosen by one rule that
looks numgen's random number up in an anonymous map of the endpoints' `ip . port` and
DNATs there, not by `numgen random mod N vmap { 0 : goto endpoint-chain, … }` with a chain
per endpoint. Why: on every commit that adds a rule or a `goto` element, the kernel checks
every chain reachable from each base chain (here from both nat hooks), and its time grows
with the rules and chains it walks. With 1,000 Services x 10 endpoints a small change's
commit took (bench/proxy_shapes.py at load 2, docs/PERFORMANCE.md) 6.8 ms with one rule per
endpoint (the shape before: `numgen random mod k == 0` for k = N, N-1, …), 17 ms with
kube-proxy's chain per endpoint, 0.8 ms with this one. A one-endpoint Service gets a plain `dnat ip to IP:PORT`.
Endpoint chains exist only for `sessionAffinity: ClientIP`, where each endpoint keeps a
dynamic set of the clients it served (`update @aff-… { ip saddr }`, with the Service's
timeout): the Service's chain sends a known client back to its endpoint first, and a new
one to `numgen random mod N vmap { 0 : goto ep-…, … }`.

`externalTrafficPolicy: Local`: a NodePort connection from outside goes only to this
node's endpoints, without masquerade (the pod sees the client's address); none here:
dropped. Pods and the node itself still get every endpoint.

Everything here is pure (`fragment`, `Ruleset.build`); transaction.py turns it into nft scripts
and netlink batches. Each rule of a Service's chains is an expressions.Rule: its nft text,
which also carries the same rule as netlink expressions.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Iterable

from .expressions import (DynamicSet, Piece, Rule, dnat, dnat_one_of, drop, fib_saddr_local, goto, goto_one_of,
                          l4proto, mark_or, saddr_in, saddr_lookup, update_saddr)
from .model import Endpoint, ServicePort

TABLE = "skiff-proxy"
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
NO_ENDPOINT_SERVICES = "no-endpoint-services"
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
HAIRPIN = "hairpin"
REJECT_CHAIN = "reject-chain"
MASQ_MARK = "0x4000"

IP_PORT_MAP = "ipv4_addr . inet_proto . inet_service : verdict"
NODEPORT_MAP = "inet_proto . inet_service : verdict"
MAPS = {SERVICE_IPS: IP_PORT_MAP, SERVICE_NODEPORTS: NODEPORT_MAP,
        NO_ENDPOINT_SERVICES: IP_PORT_MAP, NO_ENDPOINT_NODEPORTS: NODEPORT_MAP}

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_./-]{1,200}$")


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest())[:8].decode()


def _chain_name(prefix: str, text: str) -> str:
    """`prefix-HASH-text`: unique by the hash, readable by the text (left out if nft could not parse it)."""
    return f"{prefix}-{_hash(text)}-{text}" if _SAFE_NAME.match(text) else f"{prefix}-{_hash(text)}"


def service_chain(port: ServicePort) -> str:
    return _chain_name("svc", port.key)


def external_chain(port: ServicePort) -> str:
    return _chain_name("ext", port.key)


def endpoint_chain(port: ServicePort, endpoint: Endpoint) -> str:
    return _chain_name("ep", f"{port.key}__{endpoint.ip}/{endpoint.port}")


def affinity_set(port: ServicePort, endpoint: Endpoint) -> str:
    return f"aff-{_hash(f'{port.key}__{endpoint.ip}/{endpoint.port}')}"


def service_ip_key(port: ServicePort) -> str:
    return f"{port.cluster_ip} . {port.protocol} . {port.port}"


def node_port_key(port: ServicePort) -> str:
    return f"{port.protocol} . {port.node_port}"


@dataclass
class Fragment:
    """The part of the table one Service owns (all its ports)."""
    chains: dict[str, tuple[Rule, ...]] = field(default_factory=dict)   # name -> rules
    sets: dict[str, DynamicSet] = field(default_factory=dict)            # affinity set -> declaration
    elements: dict[tuple[str, str], str] = field(default_factory=dict)   # (map, key) -> verdict
    hairpin: frozenset[str] = frozenset()                                 # this node's endpoint IPs


def _dnat(port: ServicePort, endpoint: Endpoint) -> tuple[Piece, ...]:
    return l4proto(port.protocol), dnat(endpoint.ip, endpoint.port)


def _pick(port: ServicePort, endpoints: tuple[Endpoint, ...]) -> list[Rule]:
    """Rules choosing one of `endpoints` at random, each with chance 1/N: one rule, numgen's number
    looked up in an anonymous map (with affinity, the client's earlier endpoint first)."""
    if not port.affinity_seconds:
        return [Rule(l4proto(port.protocol), dnat_one_of(tuple((e.ip, e.port) for e in endpoints)))]
    chains = tuple(endpoint_chain(port, e) for e in endpoints)
    rules = [Rule(saddr_lookup(affinity_set(port, e)), goto(chain)) for e, chain in zip(endpoints, chains)]
    return rules + [Rule(goto_one_of(chains))]


def fragment(ports: Iterable[ServicePort], *, node_name: str, cluster_cidr: str) -> Fragment:
    """The chains, sets and map elements for the ports of one Service."""
    out = Fragment()
    hairpin: set[str] = set()
    for port in ports:
        usable = port.usable_endpoints()
        svc = service_chain(port)
        if not usable:
            out.elements[(NO_ENDPOINT_SERVICES, service_ip_key(port))] = f"goto {REJECT_CHAIN}"
            if port.node_port:
                out.elements[(NO_ENDPOINT_NODEPORTS, node_port_key(port))] = f"goto {REJECT_CHAIN}"
            continue
        out.chains[svc] = (Rule(saddr_in(cluster_cidr, negate=True), mark_or(MASQ_MARK)), *_pick(port, usable))
        out.elements[(SERVICE_IPS, service_ip_key(port))] = f"goto {svc}"
        if port.affinity_seconds:
            for endpoint in usable:
                name = affinity_set(port, endpoint)
                out.sets[name] = DynamicSet(port.affinity_seconds)
                out.chains[endpoint_chain(port, endpoint)] = (Rule(update_saddr(name)),
                                                              Rule(*_dnat(port, endpoint)))
        hairpin.update(e.ip for e in usable if e.node in ("", node_name))
        if port.node_port:
            ext = external_chain(port)
            if port.external_local:
                local = port.local_endpoints(node_name)
                out.chains[ext] = (Rule(saddr_in(cluster_cidr), goto(svc)),
                                   Rule(fib_saddr_local(), mark_or(MASQ_MARK), goto(svc)),
                                   *(_pick(port, local) if local else [Rule(drop())]))
            else:
                out.chains[ext] = (Rule(mark_or(MASQ_MARK)), Rule(goto(svc)))
            out.elements[(SERVICE_NODEPORTS, node_port_key(port))] = f"goto {ext}"
    out.hairpin = frozenset(hairpin)
    return out


@dataclass
class Ruleset:
    """The whole table's variable part: every Service's fragment, merged."""
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    elements: dict[tuple[str, str], str] = field(default_factory=dict)
    hairpin: frozenset[str] = frozenset()

    @classmethod
    def build(cls, fragments: Iterable[Fragment]) -> "Ruleset":
        ruleset, hairpin = cls(), set()
        for part in fragments:
            ruleset.chains.update(part.chains)
            ruleset.sets.update(part.sets)
            ruleset.elements.update(part.elements)
            hairpin |= part.hairpin
        ruleset.hairpin = frozenset(hairpin)
        return ruleset


def skeleton(table: str, *, cluster_cidr: str) -> list[str]:
    """nft commands that create (or restore) the fixed part of the table; idempotent, keeps elements."""
    t = f"ip {table}"
    lookups = ("ip daddr . meta l4proto . th dport vmap @{ips}",
               "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{nodeports}")
    chains: dict[str, tuple[str | None, list[str]]] = {
        REJECT_CHAIN: (None, ["meta l4proto tcp reject with tcp reset", "reject"]),
        "services": (None, [rule.format(ips=SERVICE_IPS, nodeports=SERVICE_NODEPORTS) for rule in lookups]),
        "endpoints-check": (None, [rule.format(ips=NO_ENDPOINT_SERVICES, nodeports=NO_ENDPOINT_NODEPORTS)
                                   for rule in lookups]),
        "masquerading": (None, [f"ct status dnat ip saddr . ip daddr @{HAIRPIN} masquerade",
                                f"meta mark & {MASQ_MARK} == 0 return",
                                f"meta mark set meta mark ^ {MASQ_MARK}",
                                "masquerade fully-random"]),
        "nat-prerouting": ("type nat hook prerouting priority dstnat", ["jump services"]),
        "nat-output": ("type nat hook output priority -100", ["jump services"]),
        "nat-postrouting": ("type nat hook postrouting priority srcnat", ["jump masquerading"]),
        "filter-input": ("type filter hook input priority -110", ["ct state new jump endpoints-check"]),
        "filter-forward": ("type filter hook forward priority -110", ["ct state new jump endpoints-check"]),
        "filter-output": ("type filter hook output priority -110", ["ct state new jump endpoints-check"]),
    }
    lines = [f"add table {t} {{ comment \"Skiff service proxy (agent/proxy); rebuilt by the agent\"; }}"]
    lines += [f"add map {t} {name} {{ type {kind}; }}" for name, kind in MAPS.items()]
    lines.append(f"add set {t} {HAIRPIN} {{ type ipv4_addr . ipv4_addr; }}")
    for name, (hook, rules) in chains.items():
        lines.append(f"add chain {t} {name}" + (f" {{ {hook}; policy accept; }}" if hook else ""))
        lines.append(f"flush chain {t} {name}")
        lines += [f"add rule {t} {name} {rule}" for rule in rules]
    return lines
