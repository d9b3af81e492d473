"""A virtual LAN on one machine, so a local cluster can have several nodes without Docker or VMs.

Each node of `ctl cluster up --nodes N` is a network namespace — a "host" with
its own interfaces, routes and nftables — plugged into one bridge, the LAN:

    this machine (root netns)                     node netns "skiff-<tag>-node-1"
    bridge skb<tag> 198.18.K.1/24  ── veth ──▶   eth0 198.18.K.11/24 (agent, its pods' bridge)
                                   ── veth ──▶   eth0 198.18.K.12/24 in "skiff-<tag>-node-2" ...

The API server listens on the bridge address as well as on loopback, so agents
inside the namespaces reach it while `ctl` on this machine keeps using
127.0.0.1. Only the network is per node: agents share this machine's mount
namespace and cgroup tree (each with its own state directory and cgroup
parent), and pod networks and routes live inside the node namespaces.

Addresses come from 198.18.0.0/15, the range RFC 2544 reserves for
benchmarking, which no real LAN uses: the LAN is a /24 in 198.18.0.0/16 (K is
picked from the cluster directory and skips subnets already on this machine),
pod CIDRs come from 198.19.0.0/16. The commands run are the `ip` commands a
reader would type, printed in the error when one fails.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cli.errors import CliError

LAN_RANGE = ipaddress.ip_network("198.18.0.0/16")
POD_RANGE = "198.19.0.0/16"       # --cluster-cidr of a local cluster
NETNS_DIR = Path("/run/netns")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["ip", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise CliError("`ip` was not found on PATH; install iproute2 (apt install iproute2)") from None
    if check and result.returncode != 0:
        raise CliError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def host_networks() -> list[ipaddress.IPv4Network]:
    """IPv4 networks configured on this machine's interfaces."""
    out = ip("-j", "-4", "addr", "show").stdout or "[]"
    nets = []
    for link in json.loads(out):
        for addr in link.get("addr_info", []):
            nets.append(ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    return nets


def service_range_for(lan_octet: int) -> str:
    """A local cluster's Service range from its LAN's third octet (see Lan.service_range)."""
    return f"198.18.{(lan_octet + 128) % 256}.0/24"


@dataclass(frozen=True)
class Lan:
    tag: str                          # 6 hex digits from the cluster directory
    subnet: ipaddress.IPv4Network     # a /24 in 198.18.0.0/16

    @classmethod
    def for_directory(cls, root: Path) -> "Lan":
        tag = hashlib.sha256(str(root).encode()).hexdigest()[:6]
        taken = host_networks()
        subnets = list(LAN_RANGE.subnets(new_prefix=24))
        start = int(tag, 16) % len(subnets)
        for i in range(len(subnets)):
            subnet = subnets[(start + i) % len(subnets)]
            if not any(subnet.overlaps(t) for t in taken):
                return cls(tag, subnet)
        raise CliError("no free /24 left in 198.18.0.0/16 for the local cluster's LAN")

    @classmethod
    def from_record(cls, record: dict) -> "Lan":
        return cls(str(record["tag"]), ipaddress.ip_network(record["subnet"]))

    def record(self) -> dict:
        return {"tag": self.tag, "subnet": str(self.subnet)}

    @property
    def bridge(self) -> str:
        return f"skb{self.tag}"

    @property
    def host_ip(self) -> str:
        return str(self.subnet[1])

    @property
    def service_range(self) -> str:
        """The cluster's Service cluster IPs (--service-cluster-ip-range): the /24 128 above
        the LAN's in 198.18.0.0/16 — never the LAN itself nor the pods' 198.19.0.0/16. The
        addresses are virtual: only the nodes' service proxies answer for them."""
        return service_range_for(int(self.subnet.network_address.packed[2]))

    def node_ip(self, index: int) -> str:
        """Node 1 is .11, node 2 .12, ... (up to 200 nodes)."""
        if not 1 <= index <= 200:
            raise CliError(f"--nodes: at most 200 nodes on one LAN, got node number {index}")
        return str(self.subnet[10 + index])

    def netns(self, node: str) -> str:
        return f"skiff-{self.tag}-{node}"

    def netns_path(self, node: str) -> Path:
        return NETNS_DIR / self.netns(node)

    def veth(self, index: int) -> str:
        return f"skv{self.tag}n{index}"

    # -- bring up --

    def create(self) -> None:
        """The bridge on this machine, with the cluster's host address."""
        if ip("link", "show", self.bridge, check=False).returncode != 0:
            ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "replace", f"{self.host_ip}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_node(self, index: int, node: str) -> str:
        """A network namespace for the node, cabled to the LAN; returns its address."""
        ns, veth, address = self.netns(node), self.veth(index), self.node_ip(index)
        if not self.netns_path(node).exists():
            ip("netns", "add", ns)
        if ip("link", "show", veth, check=False).returncode != 0:
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", veth, "master", self.bridge, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "addr", "replace", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "route", "replace", "default", "via", self.host_ip)
        return address

    # -- tear down --

    def remove_node(self, index: int, node: str) -> None:
        if self.netns_path(node).exists():
            ip("netns", "delete", self.netns(node), check=False)
        ip("link", "delete", self.veth(index), check=False)

    def remove(self) -> None:
        ip("link", "delete", self.bridge, check=False)

    def leftovers(self, nodes: list[str]) -> list[str]:
        """What of this LAN still exists (for `down` to report and for tests)."""
        left = [f"netns {self.netns(n)}" for n in nodes if self.netns_path(n).exists()]
        if ip("link", "show", self.bridge, check=False).returncode == 0:
            left.append(f"bridge {self.bridge}")
        return left
