"""Cluster DNS on real network namespaces: a pod resolves names through its node's server.

A virtual LAN (tests/netlab.py) with node "a" (a real NodeNetwork: bridge, gateway
198.19.1.1, a pod attached) and a second namespace "up" on the LAN playing the outside
world's resolver (a fake upstream: the upstream lies outside the system). On node a's
thread - in its namespace, as the agent would - the real DnsServer listens on the pod
gateway's address, port 53, answering from a record index fed Kubernetes-shaped
Services and EndpointSlices, and forwarding other names to "up".

Clients are real resolvers: glibc's (`getent ahostsv4`, reading the resolv.conf the
agent writes for the pod, bind-mounted over /etc/resolv.conf in a private mount
namespace, so the short name "web" goes through the search path) and busybox nslookup.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from agent.dns.answer import ZoneAnswerer
from agent.dns.forward import Forwarder
from agent.dns.records import RecordIndex
from agent.dns.resolvconf import pod_resolv_conf
from agent.dns.responder import Responder
from agent.dns.server import DnsServer

import netlab
from dnsobjects import FakeUpstream, endpoint, endpoint_slice, service
from netlab import Lab

pytestmark = pytest.mark.root


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    reason = netlab.skip_reason()
    if reason:
        pytest.skip(reason)
    the_lab = Lab(tmp_path, tag="dns")
    try:
        yield the_lab
    finally:
        the_lab.close()
        assert the_lab.leftovers() == []


def in_pod(netns: netlab.Netns, resolv_conf: Path, *argv: str) -> str:
    """Run argv in the pod's network namespace with `resolv_conf` as its /etc/resolv.conf."""
    script = f'mount --bind "$0" /etc/resolv.conf && exec nsenter --net={netns.path} "$@"'
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(resolv_conf),
                           *argv], capture_output=True, text=True, timeout=30, check=False)
    return done.stdout + done.stderr


def test_pod_resolves_cluster_and_outside_names_via_its_node(lab: Lab, tmp_path: Path) -> None:
    node = lab.add_node("a", number=1)
    node.call(node.net.setup())
    client = lab.add_pod(node, "client")
    outside = lab.add_node("up", number=2)                 # only its namespace and LAN address are used
    upstream = FakeUpstream(host=outside.ip, port=53)
    outside.call(upstream.start())

    index = RecordIndex("cluster.local")
    index.set_service(service("web", "default", cluster_ip="10.96.0.10"))
    index.set_service(service("db", "default", cluster_ip="None"))
    index.set_slice(endpoint_slice("db-1", "db", [endpoint("198.19.1.7", hostname="db-0"),
                                                  endpoint("198.19.2.8")]))
    gateway = str(node.net.gateway.ip)
    server = DnsServer(Responder(ZoneAnswerer(index, address=gateway), Forwarder([(outside.ip, 53)])),
                       host=gateway, port=53)
    node.call(server.start())
    try:
        resolv = tmp_path / "resolv.conf"
        pod = {"metadata": {"name": "client", "namespace": "default"}, "spec": {}}
        resolv.write_text(pod_resolv_conf(pod, host_resolv="nameserver 127.0.0.53\n", cluster_dns=gateway))
        assert resolv.read_text().startswith(f"nameserver {gateway}\nsearch default.svc.cluster.local")

        # glibc, through the search path: "web" -> web.default.svc.cluster.local.
        out = in_pod(client.netns, resolv, "getent", "ahostsv4", "web")
        assert "10.96.0.10" in out, out
        out = in_pod(client.netns, resolv, "getent", "ahostsv4", "db.default")
        assert {"198.19.1.7", "198.19.2.8"} <= set(out.split()), out
        out = in_pod(client.netns, resolv, "getent", "ahostsv4", "db-0.db.default.svc.cluster.local")
        assert "198.19.1.7" in out, out
        # A name outside the cluster: answered by the upstream through the node's server.
        out = in_pod(client.netns, resolv, "getent", "ahostsv4", "example.org")
        assert "192.0.2.1" in out, out
        assert ("example.org.", "udp") in upstream.queries
        # An unknown cluster name: no address (NXDOMAIN for every search-path expansion).
        done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               f'mount --bind "$0" /etc/resolv.conf && exec nsenter --net={client.netns.path} '
                               f'getent ahostsv4 nope.default.svc.cluster.local', str(resolv)],
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 2 and not done.stdout        # getent: key not found

        # busybox's resolver, asking the server by address; PTR of the cluster IP.
        out = in_pod(client.netns, resolv, "busybox", "nslookup", "10.96.0.10", gateway)
        assert "web.default.svc.cluster.local" in out, out
        # The node itself (and so hostNetwork pods) reaches the server on the gateway address.
        done = subprocess.run(["nsenter", f"--net={node.netns.path}", "busybox", "nslookup",
                               "web.default.svc.cluster.local", gateway],
                              capture_output=True, text=True, timeout=30, check=False)
        assert "10.96.0.10" in done.stdout, done.stdout + done.stderr
    finally:
        node.call(server.close())
        outside.call(upstream.close())
