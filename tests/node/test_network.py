"""The pod network library (agent/network) on real network namespaces.

Each test builds its own virtual LAN (tests/netlab.py): a bridge in a namespace of its
own, "node" namespaces plugged into it, NodeNetwork running in each node's namespace
on a thread, and "pod" namespaces attached to the nodes. Servers in pods are real
processes (tests/nettool.py via nsenter). Only 198.18.0.0/15 addresses; every wait has
a deadline; the `lab` fixture checks that no namespace, thread, process, host link or
nftables table is left, even when the test failed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from agent.network import IPAMExhausted, NetworkError, teardown_node_network
from agent.network.netns import in_netns
from agent.network.podlink import host_link_name
from agent.network.routes import RTPROT_SKIFF

import netlab
from netlab import Lab, call, eventually, open_socket, sh

pytestmark = pytest.mark.root
ECHO = 7000


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    reason = netlab.skip_reason()
    if reason:
        pytest.skip(reason)
    the_lab = Lab(tmp_path)
    try:
        yield the_lab
    finally:
        the_lab.close()
        assert the_lab.leftovers() == []


def ip_json(ns: netlab.Netns, *args: str) -> list[dict]:
    return json.loads(ns.ip("-j", *args) or "[]")


def links(ns: netlab.Netns) -> dict[str, dict]:
    return {link["ifname"]: link for link in ip_json(ns, "link", "show")}


def hostports_map(node: netlab.Node) -> str:
    return sh("ip", "netns", "exec", node.netns.name, "nft", "list", "map", "inet", "skiff", "hostports")


def reply(ns: netlab.Netns, host: str, port: int, data: str = "hello", **kwargs) -> str:
    """The reply to `data`, retried until the deadline (a fresh path may need a moment)."""
    return eventually(lambda: call(ns, host, port, data, **kwargs), timeout=5,
                      what=f"a reply from {host}:{port}")


def echo_in(lab: Lab, pod: netlab.Pod) -> None:
    lab.spawn(pod.netns, "echo", "--port", str(ECHO), "--tag", pod.name)


def unreachable(ns: netlab.Netns, host: str, port: int) -> bool:
    try:
        call(ns, host, port, timeout=0.5)
    except OSError:
        return True
    return False


# -- one node ----------------------------------------------------------------------------------

def test_pod_gets_eth0_with_address_default_route_and_uplink_mtu(lab: Lab) -> None:
    node = lab.add_node("a", number=1, lan_mtu=1450)        # MTU taken from the uplink
    node.call(node.net.setup())
    pod = lab.add_pod(node, "web")
    assert pod.ip == "198.19.1.2"
    eth0 = ip_json(pod.netns, "addr", "show", "eth0")[0]
    assert [(a["local"], a["prefixlen"]) for a in eth0["addr_info"] if a["family"] == "inet"] == [("198.19.1.2", 24)]
    assert eth0["mtu"] == 1450 and "UP" in eth0["flags"]
    assert "UP" in links(pod.netns)["lo"]["flags"]
    assert [(r["dst"], r.get("gateway")) for r in ip_json(pod.netns, "route", "show", "default")] == \
        [("default", "198.19.1.1")]
    # The node side: the bridge holds the gateway, the host end is on it, forwarding is on.
    bridge = ip_json(node.netns, "addr", "show", "skiff0")[0]
    assert [(a["local"], a["prefixlen"]) for a in bridge["addr_info"] if a["family"] == "inet"] == [("198.19.1.1", 24)]
    assert bridge["mtu"] == 1450
    host_end = links(node.netns)[host_link_name(pod.uid)]
    assert host_end["master"] == "skiff0" and host_end["mtu"] == 1450
    assert sh("ip", "netns", "exec", node.netns.name, "cat", "/proc/sys/net/ipv4/ip_forward").strip() == "1"
    # Attaching again (the agent retrying) gives the same address and changes nothing.
    assert node.call(node.net.attach(pod.manifest, pod.netns.path)) == pod.ip
    assert node.net.pod_ip(pod.uid) == pod.ip
    assert [a["local"] for a in ip_json(pod.netns, "addr", "show", "eth0")[0]["addr_info"]
            if a["family"] == "inet"] == [pod.ip]


def test_pods_on_one_node_reach_each_other(lab: Lab) -> None:
    node = lab.add_node("a", number=1)
    node.call(node.net.setup())
    web, client = lab.add_pod(node, "web"), lab.add_pod(node, "client")
    assert web.ip != client.ip
    echo_in(lab, web)
    assert reply(client.netns, web.ip, ECHO) == "web:hello"


def test_attach_without_setup_or_with_bad_input_is_refused(lab: Lab) -> None:
    node = lab.add_node("a", number=1)
    pod = lab.add_pod(node, "web", attach=False)
    with pytest.raises(NetworkError, match="call NodeNetwork.setup"):
        node.call(node.net.attach(pod.manifest, pod.netns.path))
    node.call(node.net.setup())
    with pytest.raises(NetworkError, match="cannot open the pod's network namespace"):
        node.call(node.net.attach(pod.manifest, Path("/run/netns/no-such-namespace")))
    assert node.net.pod_ip(pod.uid) is None, "a failed first attach keeps no address"
    assert host_link_name(pod.uid) not in links(node.netns)
    bad = dict(pod.manifest, spec={"containers": [{"ports": [{"containerPort": 80, "hostPort": 0x10000}]}]})
    with pytest.raises(NetworkError, match=r"spec.containers\[0\].ports\[0\].hostPort"):
        node.call(node.net.attach(bad, pod.netns.path))


def test_full_pod_cidr_waits_and_gone_pods_are_reclaimed(lab: Lab) -> None:
    node = lab.add_node("a", number=1, pod_cidr="198.19.1.0/29")        # 5 pod addresses
    node.call(node.net.setup())
    pods = [lab.add_pod(node, f"p{i}") for i in range(5)]
    extra = lab.add_pod(node, "extra", attach=False)
    with pytest.raises(IPAMExhausted, match=r"no free IP address left in pod CIDR 198.19.1.0/29 \(5 in use\)"):
        node.call(node.net.attach(extra.manifest, extra.netns.path))
    assert host_link_name(extra.uid) not in links(node.netns)
    # A pod's namespace deleted without a detach (the agent missed it): its link goes with
    # it, and its address is reclaimed when the pool runs out.
    lab.delete_netns(pods[0].netns)
    eventually(lambda: host_link_name(pods[0].uid) not in links(node.netns), what="the veth to go")
    assert node.call(node.net.attach(extra.manifest, extra.netns.path)) == pods[0].ip
    assert node.net.pod_ip(pods[0].uid) is None


# -- two nodes -----------------------------------------------------------------------------------

def test_pods_reach_pods_on_other_nodes_through_host_gw_routes(lab: Lab) -> None:
    a, b = lab.add_node("a", number=1), lab.add_node("b", number=2)
    for node in (a, b):
        node.call(node.net.setup())
    pa, pb = lab.add_pod(a, "pa"), lab.add_pod(b, "pb")
    echo_in(lab, pa)
    echo_in(lab, pb)
    assert unreachable(pa.netns, pb.ip, ECHO), "no route yet"
    a.call(a.net.sync_routes({"b": (b.pod_cidr, b.ip)}))
    b.call(b.net.sync_routes({"a": (a.pod_cidr, a.ip)}))
    assert reply(pa.netns, pb.ip, ECHO) == "pb:hello"
    assert reply(pb.netns, pa.ip, ECHO) == "pa:hello"
    # The pod sees the other pod's address, not the node's: no NAT inside the cluster network.
    assert [r["dst"] for r in ip_json(a.netns, "route", "show", "proto", str(RTPROT_SKIFF))] == ["198.19.2.0/24"]

    # Routes we did not make are never touched; a node that goes away has its route withdrawn.
    a.netns.ip("route", "add", "198.19.9.0/24", "via", b.ip)
    a.call(a.net.sync_routes({}))
    assert ip_json(a.netns, "route", "show", "proto", str(RTPROT_SKIFF)) == []
    assert [r["dst"] for r in ip_json(a.netns, "route", "show", "198.19.9.0/24")] == ["198.19.9.0/24"]
    assert unreachable(pa.netns, pb.ip, ECHO)


def test_sync_routes_reports_bad_peers_and_sets_the_good_ones(lab: Lab) -> None:
    a, b = lab.add_node("a", number=1), lab.add_node("b", number=2)
    a.call(a.net.setup())
    with pytest.raises(NetworkError) as info:
        a.call(a.net.sync_routes({"b": (b.pod_cidr, b.ip), "self-overlap": ("198.19.1.0/25", b.ip),
                                  "junk": ("not-a-cidr", b.ip), "twin": (b.pod_cidr, "198.18.0.99")}))
    message = str(info.value)
    assert "node self-overlap: podCIDR 198.19.1.0/25 overlaps this node's 198.19.1.0/24" in message
    assert "node junk:" in message and "node twin: podCIDR 198.19.2.0/24 is also node b's" in message
    assert [(r["dst"], r["gateway"]) for r in ip_json(a.netns, "route", "show", "proto", str(RTPROT_SKIFF))] == \
        [("198.19.2.0/24", b.ip)]


def test_host_ports_reach_the_pod_from_everywhere_and_conflicts_are_refused(lab: Lab) -> None:
    a, b = lab.add_node("a", number=1), lab.add_node("b", number=2)
    for node in (a, b):
        node.call(node.net.setup())
    a.call(a.net.sync_routes({"b": (b.pod_cidr, b.ip)}))
    b.call(b.net.sync_routes({"a": (a.pod_cidr, a.ip)}))
    web = lab.add_pod(a, "web", ports=[{"containerPort": ECHO, "hostPort": 8080},
                                        {"containerPort": ECHO, "hostPort": 5353, "protocol": "UDP"}])
    neighbour, remote = lab.add_pod(a, "neighbour"), lab.add_pod(b, "remote")
    echo_in(lab, web)
    assert reply(b.netns, a.ip, 8080) == "web:hello", "from another node"
    assert reply(b.netns, a.ip, 5353, udp=True) == "web:hello", "UDP from another node"
    assert reply(a.netns, a.ip, 8080) == "web:hello", "from the node itself"
    assert reply(remote.netns, a.ip, 8080) == "web:hello", "from a pod on another node"
    assert reply(neighbour.netns, a.ip, 8080) == "web:hello", "from a pod on the same node (hairpin)"
    assert reply(web.netns, a.ip, 8080) == "web:hello", "from the pod itself (hairpin)"
    # Another pod wanting the same node port is refused, naming the port and its holder.
    rival = lab.add_pod(a, "rival", attach=False)
    rival.manifest["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    with pytest.raises(NetworkError, match="hostPort 8080/TCP is already used by pod default/web on this node"):
        a.call(a.net.attach(rival.manifest, rival.netns.path))
    assert a.net.pod_ip(rival.uid) is None and host_link_name(rival.uid) not in links(a.netns)
    assert "tcp . 8080 : 198.19.1.2 . 7000" in hostports_map(a)


def test_detach_removes_link_address_and_host_ports(lab: Lab) -> None:
    node = lab.add_node("a", number=1)
    node.call(node.net.setup())
    web = lab.add_pod(node, "web", ports=[{"containerPort": ECHO, "hostPort": 8080}])
    other = lab.add_pod(node, "other", ports=[{"containerPort": ECHO, "hostPort": 8081}])
    node.call(node.net.detach(web.uid))
    assert host_link_name(web.uid) not in links(node.netns)
    assert "eth0" not in links(web.netns)
    assert node.net.pod_ip(web.uid) is None
    assert "8080" not in hostports_map(node) and "tcp . 8081" in hostports_map(node)
    node.call(node.net.detach(web.uid))                      # idempotent
    node.call(node.net.detach("never-attached"))
    # The port is free for another pod now; the address comes back only after the others.
    again = lab.add_pod(node, "again", ports=[{"containerPort": ECHO, "hostPort": 8080}])
    assert again.ip not in (web.ip, other.ip)


# -- restarts and teardown ---------------------------------------------------------------------------

def test_restarted_agent_keeps_running_pods_untouched(lab: Lab) -> None:
    a, b = lab.add_node("a", number=1), lab.add_node("b", number=2)
    for node in (a, b):
        node.call(node.net.setup())
    web = lab.add_pod(a, "web", ports=[{"containerPort": ECHO, "hostPort": 8080}])
    doomed = lab.add_pod(a, "doomed")
    echo_in(lab, web)
    before = links(a.netns)[host_link_name(web.uid)]
    with open_socket(b.netns) as conn:                      # an open connection through the hostPort
        conn.settimeout(3)
        conn.connect((a.ip, 8080))
        conn.sendall(b"one")
        assert conn.recv(100) == b"web:one"

        lab.delete_netns(doomed.netns)                       # a pod deleted while the agent was down
        eventually(lambda: host_link_name(doomed.uid) not in links(a.netns), what="the veth to go")
        net = a.new_network()                                # the agent restarts: new object, same state
        a.call(net.setup())

        conn.sendall(b"two")
        assert conn.recv(100) == b"web:two", "an established connection survives the restart"
    assert links(a.netns)[host_link_name(web.uid)]["ifindex"] == before["ifindex"], "the veth was not recreated"
    assert net.pod_ip(web.uid) == web.ip
    assert net.pod_ip(doomed.uid) is None, "the deleted pod's address is released"
    assert reply(b.netns, a.ip, 8080) == "web:hello"
    assert a.call(net.attach(web.manifest, web.netns.path)) == web.ip
    newcomer = lab.add_pod(a, "newcomer")
    assert newcomer.ip not in (web.ip,)
    with pytest.raises(NetworkError, match="8080/TCP is already used by pod default/web"):
        lab.add_pod(a, "rival", ports=[{"containerPort": 80, "hostPort": 8080}])


def test_teardown_leaves_nothing_and_is_idempotent(lab: Lab) -> None:
    a, b = lab.add_node("a", number=1), lab.add_node("b", number=2)
    for node in (a, b):
        node.call(node.net.setup())
    a.call(a.net.sync_routes({"b": (b.pod_cidr, b.ip)}))
    pods = [lab.add_pod(a, "web", ports=[{"containerPort": ECHO, "hostPort": 8080}]), lab.add_pod(a, "db")]
    a.call(a.net.teardown())
    assert set(links(a.netns)) == {"lo", "eth0"}
    assert all("eth0" not in links(p.netns) for p in pods)
    assert "skiff" not in sh("ip", "netns", "exec", a.netns.name, "nft", "list", "tables")
    assert ip_json(a.netns, "route", "show", "proto", str(RTPROT_SKIFF)) == []
    assert not a.state_dir.exists()
    a.call(a.net.teardown())                                 # again: nothing to do, no error

    # The synchronous teardown (`python -m agent.cleanup`) does the same from the node's namespace.
    lab.add_pod(b, "web", ports=[{"containerPort": ECHO, "hostPort": 8080}])
    b.call(b.net.close())
    with in_netns(b.netns.path):
        teardown_node_network(b.state_dir)
        teardown_node_network(b.state_dir)
    assert set(links(b.netns)) == {"lo", "eth0"}
    assert "skiff" not in sh("ip", "netns", "exec", b.netns.name, "nft", "list", "tables")
    assert not b.state_dir.exists()

