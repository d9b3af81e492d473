"""The proxy's netlink writer (agent/proxy/netlink.py, expressions.py) on a real kernel: the
same Service changes applied as nf_tables netlink batches (no nft) and as nft text through
libnftables leave tables that `nft -j list table` reads back identically - chains, rules,
sets, map elements - and both equal a table built from scratch by a full sync. A batch the
kernel refuses changes nothing. One network namespace of the test's own (tests/netlab.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent.proxy import ServiceProxy
from agent.proxy.nft import Nft, NftError
from agent.proxy.transaction import Op

import netlab
from netlab import Lab, NodeThread, sh

pytestmark = pytest.mark.root
CIDR = netlab.CLUSTER_CIDR


class Bed:
    """A namespace with a thread running an event loop in it, and proxies writing tables there."""

    def __init__(self, lab: Lab) -> None:
        self.ns = lab.netns("nl")
        self.thread = NodeThread(self.ns)
        self.proxies: list[ServiceProxy] = []

    def proxy(self, table: str, *, netlink: bool) -> ServiceProxy:
        made = ServiceProxy(node_name="a", cluster_cidr=CIDR, table=table, flush_conntrack=False,
                            nft=Nft(f"nl-test-{table}", use_netlink=netlink))
        self.proxies.append(made)
        return made

    def listing(self, table: str) -> dict[str, Any]:
        """`nft -j list table` without what differs by table name or creation order (handles)."""
        out: dict[str, Any] = {"chains": {}, "rules": {}, "sets": {}}
        for item in json.loads(sh("ip", "netns", "exec", self.ns.name, "nft", "-j", "list", "table", "ip",
                                  table))["nftables"]:
            [(kind, body)] = item.items()
            body = {k: v for k, v in body.items() if k not in ("handle", "table", "family")}
            if kind == "rule":
                out["rules"].setdefault(body.pop("chain"), []).append(body)
            elif kind in ("set", "map"):
                body["elem"] = sorted(json.dumps(e, sort_keys=True) for e in body.get("elem", []))
                out["sets"][body.pop("name")] = body
            elif kind == "chain":
                out["chains"][body.pop("name")] = body
        return out

    def tables(self) -> list[str]:
        return sh("ip", "netns", "exec", self.ns.name, "nft", "list", "tables").split()

    def close(self) -> None:
        try:
            for proxy in self.proxies:
                try:
                    self.thread.call(proxy.delete_table())
                finally:
                    self.thread.call(proxy.close())
        finally:
            self.thread.stop()


@pytest.fixture
def bed(tmp_path: Path) -> Iterator[Bed]:
    with netlab.lab_for_test(tmp_path, tag="nl") as lab:
        made = Bed(lab)
        try:
            yield made
        finally:
            made.close()


def service(name: str, ip: str, *, port: int = 80, protocol: str = "TCP", node_port: int = 0,
            **spec: Any) -> dict[str, Any]:
    ports = [{"name": "p", "port": port, "protocol": protocol, "targetPort": 8080}]
    if node_port:
        ports[0]["nodePort"] = node_port
        spec.setdefault("type", "NodePort")
    return {"metadata": {"namespace": "default", "name": name}, "spec": {"clusterIP": ip, "ports": ports, **spec}}


def endpoint_slice(name: str, endpoints: list[tuple[str, str, bool]], protocol: str = "TCP") -> dict[str, Any]:
    """endpoints: (ip, node, ready)."""
    return {"addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": ready}}
                          for ip, node, ready in endpoints],
            "metadata": {"namespace": "default", "name": f"{name}-x", "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": "p", "port": 8080, "protocol": protocol}]}


A1, A2, B1 = ("198.19.1.2", "a", True), ("198.19.1.3", "a", True), ("198.19.2.2", "b", True)
AFFINITY = {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}

# Each step: Services (name -> spec, None: deleted) and slices (name -> endpoints, None: deleted).
STEPS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"web": service("web", "10.96.0.10"),
      "dns": service("dns", "10.96.0.53", port=53, protocol="UDP"),
      "np": service("np", "10.96.0.20", node_port=30080),
      "local": service("local", "10.96.0.21", node_port=30081, externalTrafficPolicy="Local"),
      "sticky": service("sticky", "10.96.0.30", **AFFINITY),
      "empty": service("empty", "10.96.0.40", node_port=30082)},
     {"web": [A1, A2, B1], "dns": ([A1], "UDP"), "np": [B1], "local": [A1, B1], "sticky": [A1, A2],
      "empty": [("198.19.1.9", "a", False)]}),
    ({}, {"web": [A1, (A2[0], "a", False), B1],            # one endpoint not ready
          "local": [B1],                                   # no local endpoint left: drop from outside
          "sticky": [A2, B1],                              # one affinity set goes, one comes
          "empty": [("198.19.1.9", "a", True)]}),          # first endpoint: reject -> service chain
    ({}, {"web": [], "dns": None}),                        # lost every endpoint: chain goes, rejects
    ({"np": None, "web2": service("web2", "10.96.0.20")}, {"web2": [A1]}),   # a cluster IP passed on
    ({"sticky": service("sticky", "10.96.0.30")}, {}),     # affinity off
]


def feed(proxies: list[ServiceProxy], services: dict[str, Any], slices: dict[str, Any]) -> None:
    for proxy in proxies:
        for name, svc in services.items():
            if svc is None:
                proxy.service_deleted(service(name, "0.0.0.0"))
            else:
                proxy.service_changed(svc)
        for name, endpoints in slices.items():
            if endpoints is None:
                proxy.slice_deleted(endpoint_slice(name, []))
            elif isinstance(endpoints, tuple):
                proxy.slice_changed(endpoint_slice(name, endpoints[0], endpoints[1]))
            else:
                proxy.slice_changed(endpoint_slice(name, endpoints))


def test_netlink_batches_leave_the_same_table_as_nft(bed: Bed) -> None:
    by_netlink = bed.proxy("skiff-nltest-nl", netlink=True)
    by_nft = bed.proxy("skiff-nltest-nft", netlink=False)
    for proxy in (by_netlink, by_nft):
        bed.thread.call(proxy.sync())                       # the skeleton, by a full sync (nft)
    for number, (services, slices) in enumerate(STEPS):
        feed([by_netlink, by_nft], services, slices)
        for proxy in (by_netlink, by_nft):
            bed.thread.call(proxy.sync())
        assert (by_netlink.full_syncs, by_nft.full_syncs) == (1, 1)      # incremental, both
        assert by_netlink.nft.writer == "netlink" and by_nft.nft.writer == "libnftables"
        written = bed.listing("skiff-nltest-nl")
        assert written == bed.listing("skiff-nltest-nft"), f"step {number}"

    scratch = bed.proxy("skiff-nltest-full", netlink=True)          # the same objects, from scratch
    feed([scratch], {k: v for step in STEPS for k, v in step[0].items()},
         {k: v for step in STEPS for k, v in step[1].items()})
    bed.thread.call(scratch.sync())
    assert scratch.full_syncs == 1
    assert bed.listing("skiff-nltest-nl") == bed.listing("skiff-nltest-full")
    rules = bed.listing("skiff-nltest-nl")["rules"]
    web2 = next(chain for chain in rules if chain.endswith("default/web2/tcp/p"))
    assert "dnat" in json.dumps(rules[web2][-1])


def test_a_refused_batch_changes_nothing_and_says_what_failed(bed: Bed) -> None:
    proxy = bed.proxy("skiff-nltest-err", netlink=True)
    bed.thread.call(proxy.sync())
    before = bed.listing("skiff-nltest-err")
    ops = [Op("add", "chain", "half-done"),
           Op("delete", "element", "service-ips", elements=(("10.96.9.9 . tcp . 80", None),))]   # not there
    with pytest.raises(NftError, match=r"delete element .*service-ips.*No such file"):
        bed.thread.call(proxy.nft.apply(proxy.table, ops))
    assert bed.listing("skiff-nltest-err") == before            # the chain of the same batch is not there
    bed.thread.call(proxy.nft.apply(proxy.table, [Op("add", "chain", "next")]))   # the socket still works
    assert "next" in bed.listing("skiff-nltest-err")["chains"]


def test_a_rule_without_netlink_encoding_goes_through_nft(bed: Bed) -> None:
    proxy = bed.proxy("skiff-nltest-text", netlink=True)
    bed.thread.call(proxy.sync())
    bed.thread.call(proxy.nft.apply(proxy.table, [Op("add", "chain", "plain"),
                                                  Op("add", "rule", "plain", rule="meta l4proto udp drop")]))
    assert proxy.nft.writer == "libnftables"
    assert len(bed.listing("skiff-nltest-text")["rules"]["plain"]) == 1
