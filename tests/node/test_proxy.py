"""The service proxy (agent/proxy) on real nftables, in a virtual LAN of network namespaces.

Two nodes (tests/netlab.py) with their pod networks; echo servers in pods answer with
their name; a ServiceProxy runs on node a's event loop (so in node a's namespace) and is
fed Services and EndpointSlices in Kubernetes' shapes, as the agent's informers would.
Clients are a pod of node a, node a itself, and node b (for NodePorts). Only 198.18.0.0/15
addresses plus the cluster IPs, which exist only inside node a's rules. Each node has a
default route, as real nodes do (a cluster IP is routed before it is translated).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent.proxy import ServiceProxy
from agent.proxy.ruleset import service_chain
from agent.proxy.model import service_ports

import netlab
from netlab import Lab, call, eventually, open_socket, sh

pytestmark = pytest.mark.root
ECHO = 7000
CIDR = netlab.CLUSTER_CIDR


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    with netlab.lab_for_test(tmp_path, tag="px") as the_lab:
        yield the_lab


class Cluster:
    """Nodes a and b, pods web1 web2 (a) and web3 (b) serving echo, a client pod on a, a proxy on a."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.a = lab.add_node("a", number=1)
        self.b = lab.add_node("b", number=2)
        for node, peer in ((self.a, self.b), (self.b, self.a)):
            node.call(node.net.setup())
            node.call(node.net.sync_routes({peer.name: (peer.pod_cidr, peer.ip)}))
            node.netns.ip("route", "add", "default", "via", "198.18.0.1")
        self.pods = {name: lab.add_pod(node, name) for name, node in
                     (("web1", self.a), ("web2", self.a), ("web3", self.b), ("client", self.a))}
        for name in ("web1", "web2", "web3"):
            lab.spawn(self.pods[name].netns, "echo", "--port", str(ECHO), "--tag", name)
        self.proxy = ServiceProxy(node_name="a", cluster_cidr=CIDR, table="skiff-proxy", check_interval=0.2)
        self.task: Any = None

    def endpoint(self, pod: str, **conditions: bool) -> dict[str, Any]:
        node = "a" if pod != "web3" else "b"
        return {"addresses": [self.pods[pod].ip], "nodeName": node, "conditions": conditions or {"ready": True}}

    def sync(self) -> None:
        self.a.call(self.proxy.sync())

    def nft(self, *args: str) -> str:
        return sh("ip", "netns", "exec", self.a.netns.name, "nft", *args)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        try:
            self.a.call(self.proxy.delete_table())
        finally:
            self.a.call(self.proxy.close())


@pytest.fixture
def cluster(lab: Lab) -> Iterator[Cluster]:
    c = Cluster(lab)
    try:
        yield c
    finally:
        c.close()


def service(name: str, ip: str, *, port: int = 80, protocol: str = "TCP", **spec: Any) -> dict[str, Any]:
    ports = [{"name": "p", "port": port, "protocol": protocol, "targetPort": ECHO}]
    if spec.get("type") == "NodePort":
        ports[0]["nodePort"] = spec.pop("node_port")
    return {"metadata": {"namespace": "default", "name": name}, "spec": {"clusterIP": ip, "ports": ports, **spec}}


def endpoint_slice(service_name: str, endpoints: list[dict], protocol: str = "TCP") -> dict[str, Any]:
    return {"addressType": "IPv4", "endpoints": endpoints,
            "metadata": {"namespace": "default", "name": f"{service_name}-x",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "ports": [{"name": "p", "port": ECHO, "protocol": protocol}]}


def tag(reply: str) -> str:
    return reply.split(":", 1)[0]


def tags(ns: netlab.Netns, host: str, port: int, count: int) -> Counter:
    return Counter(tag(call(ns, host, port)) for _ in range(count))


def programmed_both_ways(cluster: Cluster, name: str, pods: tuple[str, ...]) -> None:
    """The Service's first endpoint by a full sync (nft text), then all of `pods` by an incremental
    change (a netlink batch: the rule choosing among them and its anonymous map)."""
    cluster.proxy.slice_changed(endpoint_slice(name, [cluster.endpoint(pods[0])]))
    cluster.sync()
    cluster.proxy.slice_changed(endpoint_slice(name, [cluster.endpoint(p) for p in pods]))
    cluster.sync()
    assert cluster.proxy.full_syncs == 1 and cluster.proxy.nft.writer == "netlink"


def test_cluster_ip_spreads_over_every_endpoint_from_pods_and_the_node(cluster: Cluster) -> None:
    cluster.proxy.service_changed(service("web", "10.96.0.10"))
    programmed_both_ways(cluster, "web", ("web1", "web2", "web3"))
    [port] = service_ports(service("web", "10.96.0.10"), [])
    chain = cluster.nft("list", "chain", "ip", "skiff-proxy", service_chain(port))
    assert chain.count("\n\t\t") == 2 and "dnat ip to numgen random mod 3 map {" in chain   # 2 rules: mark, pick
    client = cluster.pods["client"].netns
    seen = eventually(lambda: (c := tags(client, "10.96.0.10", 80, 60)) and len(c) == 3 and c,
                      timeout=10, what="replies from all three endpoints")
    assert set(seen) == {"web1", "web2", "web3"}
    assert min(seen.values()) >= 5, seen                      # random, not stuck on one
    from_node = tags(cluster.a.netns, "10.96.0.10", 80, 30)     # the node itself (output chain)
    assert set(from_node) <= {"web1", "web2", "web3"} and len(from_node) >= 2


def test_node_port_answers_on_the_node_address(cluster: Cluster) -> None:
    cluster.proxy.service_changed(service("np", "10.96.0.11", type="NodePort", node_port=30080))
    cluster.proxy.slice_changed(endpoint_slice("np", [cluster.endpoint("web3")]))
    cluster.sync()
    assert tag(call(cluster.b.netns, cluster.a.ip, 30080)) == "web3"     # from another machine of the LAN
    assert tag(call(cluster.a.netns, cluster.a.ip, 30080)) == "web3"     # from the node itself


def test_external_traffic_policy_local_keeps_the_client_address(cluster: Cluster) -> None:
    cluster.lab.spawn(cluster.pods["web1"].netns, "echo", "--port", "7001", "--tag", "peer")
    cluster.proxy.service_changed(service("local", "10.96.0.12", type="NodePort", node_port=30081,
                                          externalTrafficPolicy="Local"))
    cluster.proxy.slice_changed(endpoint_slice("local", [cluster.endpoint("web1"), cluster.endpoint("web3")]))
    cluster.sync()
    assert tags(cluster.b.netns, cluster.a.ip, 30081, 20) == Counter({"web1": 20})   # only node a's endpoint


def test_no_ready_endpoint_is_refused_at_once(cluster: Cluster) -> None:
    cluster.proxy.service_changed(service("empty", "10.96.0.13", type="NodePort", node_port=30082))
    cluster.proxy.slice_changed(endpoint_slice("empty", [cluster.endpoint("web1", ready=False)]))
    cluster.sync()
    for ns, host, port in ((cluster.pods["client"].netns, "10.96.0.13", 80), (cluster.a.netns, "10.96.0.13", 80),
                           (cluster.b.netns, cluster.a.ip, 30082)):
        started = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            call(ns, host, port, timeout=5)
        assert time.monotonic() - started < 1.0
    cluster.proxy.slice_changed(endpoint_slice("empty", [cluster.endpoint("web1")]))
    cluster.sync()
    assert tag(call(cluster.pods["client"].netns, "10.96.0.13", 80)) == "web1"


def test_session_affinity_client_ip_sticks_to_one_endpoint(cluster: Cluster) -> None:
    cluster.proxy.service_changed(service("sticky", "10.96.0.14", sessionAffinity="ClientIP"))
    programmed_both_ways(cluster, "sticky", ("web1", "web2", "web3"))
    seen = tags(cluster.pods["client"].netns, "10.96.0.14", 80, 20)
    assert len(seen) == 1, seen
    from_node = tags(cluster.a.netns, "10.96.0.14", 80, 10)     # another client, its own (single) choice
    assert len(from_node) == 1


def test_hairpin_a_pod_reaches_itself_through_its_service(cluster: Cluster) -> None:
    cluster.nft("flush", "chain", "inet", "skiff", "postrouting")    # the pod network's own hairpin rule: not this
    cluster.proxy.service_changed(service("self", "10.96.0.15"))
    cluster.proxy.slice_changed(endpoint_slice("self", [cluster.endpoint("web1")]))
    cluster.sync()
    assert tag(call(cluster.pods["web1"].netns, "10.96.0.15", 80)) == "web1"


def test_update_leaves_other_services_alone(cluster: Cluster) -> None:
    for name, ip in (("one", "10.96.0.16"), ("two", "10.96.0.17")):
        cluster.proxy.service_changed(service(name, ip))
        cluster.proxy.slice_changed(endpoint_slice(name, [cluster.endpoint("web1")]))
    cluster.sync()
    [two] = service_ports(service("two", "10.96.0.17"), [])
    before = cluster.nft("-a", "list", "chain", "ip", "skiff-proxy", service_chain(two))
    ips_before = cluster.nft("-a", "list", "map", "ip", "skiff-proxy", "service-ips")
    cluster.proxy.slice_changed(endpoint_slice("one", [cluster.endpoint("web2")]))
    cluster.sync()
    assert cluster.proxy.full_syncs == 1                        # the second pass was incremental
    assert cluster.nft("-a", "list", "chain", "ip", "skiff-proxy", service_chain(two)) == before   # same handles
    assert cluster.nft("-a", "list", "map", "ip", "skiff-proxy", "service-ips") == ips_before
    assert tag(call(cluster.pods["client"].netns, "10.96.0.16", 80)) == "web2"
    cluster.proxy.service_deleted(service("one", "10.96.0.16"))
    cluster.sync()
    assert "10.96.0.16" not in cluster.nft("list", "table", "ip", "skiff-proxy")
    assert tag(call(cluster.pods["client"].netns, "10.96.0.17", 80)) == "web1"


def test_stale_udp_flows_follow_the_endpoint(cluster: Cluster) -> None:
    cluster.proxy.service_changed(service("dns", "10.96.0.18", port=53, protocol="UDP"))
    cluster.proxy.slice_changed(endpoint_slice("dns", [cluster.endpoint("web1")], protocol="UDP"))
    cluster.sync()
    with open_socket(cluster.pods["client"].netns, socket.SOCK_DGRAM) as s:     # one flow: same source port
        s.settimeout(3)

        def ask() -> str:
            s.sendto(b"q", ("10.96.0.18", 53))
            return tag(s.recv(100).decode())
        assert ask() == "web1"
        cluster.proxy.slice_changed(endpoint_slice("dns", [cluster.endpoint("web2")], protocol="UDP"))
        cluster.sync()
        assert ask() == "web2"          # web1 still answers: only the conntrack flush moves the flow


def test_table_removed_by_hand_is_rebuilt(cluster: Cluster) -> None:
    cluster.proxy.service_changed(service("web", "10.96.0.19"))
    cluster.proxy.slice_changed(endpoint_slice("web", [cluster.endpoint("web2")]))

    async def start() -> Any:
        return asyncio.get_running_loop().create_task(cluster.proxy.run())
    cluster.task = cluster.a.call(start())
    client = cluster.pods["client"].netns
    assert tag(eventually(lambda: call(client, "10.96.0.19", 80), what="the service")) == "web2"
    cluster.nft("delete", "table", "ip", "skiff-proxy")
    eventually(lambda: "skiff-proxy" in cluster.nft("list", "tables"), timeout=5, what="the table to come back")
    assert tag(eventually(lambda: call(client, "10.96.0.19", 80), what="the service again")) == "web2"
    # the counter goes up on the proxy's loop just after the commit the client already sees
    eventually(lambda: cluster.proxy.full_syncs >= 2, timeout=5, what="the rebuild to be counted")
    assert cluster.proxy.full_syncs == 2
    cluster.a.call(_cancel(cluster.task))
    cluster.task = None


async def _cancel(task: Any) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_a_new_proxy_replaces_the_table_without_a_gap(cluster: Cluster) -> None:
    """An agent restart: the old table answers until the new one replaces it in one transaction."""
    cluster.proxy.service_changed(service("web", "10.96.0.20"))
    cluster.proxy.slice_changed(endpoint_slice("web", [cluster.endpoint("web1")]))
    cluster.sync()
    restarted = ServiceProxy(node_name="a", cluster_cidr=CIDR, table="skiff-proxy")
    restarted.service_changed(service("web", "10.96.0.20"))
    restarted.slice_changed(endpoint_slice("web", [cluster.endpoint("web1"), cluster.endpoint("web2")]))
    client = cluster.pods["client"].netns
    future = asyncio.run_coroutine_threadsafe(restarted.sync(), cluster.a.thread.loop)
    failures = 0
    answers = Counter()
    try:
        while not future.done() or sum(answers.values()) < 20:
            try:
                answers[tag(call(client, "10.96.0.20", 80, timeout=1))] += 1
            except OSError:
                failures += 1
        future.result()
    finally:
        cluster.a.call(restarted.close())
    assert failures == 0
    eventually(lambda: "web2" in tags(client, "10.96.0.20", 80, 20), what="the new table's endpoint")


def test_without_libnftables_the_nft_program_applies_the_same_table(cluster: Cluster) -> None:
    from agent.proxy.nft import Nft
    program = ServiceProxy(node_name="a", cluster_cidr=CIDR, table="skiff-proxy", nft=Nft(use_library=False))
    try:
        program.service_changed(service("web", "10.96.0.21"))
        program.slice_changed(endpoint_slice("web", [cluster.endpoint("web2")]))
        cluster.a.call(program.sync())
        program.slice_changed(endpoint_slice("web", [cluster.endpoint("web3")]))
        cluster.a.call(program.sync())                       # incremental, through `nft -f -`
        assert tag(call(cluster.pods["client"].netns, "10.96.0.21", 80)) == "web3"
        assert cluster.a.call(program.table_exists())
    finally:
        cluster.a.call(program.close())
