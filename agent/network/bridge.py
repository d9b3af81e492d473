"""The node's bridge: the pods' gateway and the L2 segment their veths plug into.

    pod A eth0 ─ veth ─┐
    pod B eth0 ─ veth ─┼─ skiff0 (198.19.1.1/24, the gateway) ─ routing ─ uplink (node IP)
    pod C eth0 ─ veth ─┘

The bridge holds the first address of the node's pod CIDR. Its MAC address is
derived from that address (0a:58:<IPv4 bytes>, as Kubernetes' bridge plugins do) and
set explicitly, so it never changes as pods come and go - otherwise a bridge takes
the lowest MAC of its ports and the pods' neighbour entries for the gateway go stale.
Its MTU, and every pod's, is the uplink's: a pod packet must fit the LAN it crosses.

`ensure_bridge` is idempotent and changes only what differs, so running it when an
agent restarts leaves the bridge, its ports and the running pods alone. Also here:
IPv4 forwarding for the node's namespace (/proc/sys is per network namespace; the
thread's namespace is the one written).
"""

from __future__ import annotations

import logging
import socket
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from pyroute2 import IPRoute

from .errors import NetworkError
from .links import add_address, get_link, is_up, link_kind

log = logging.getLogger(__name__)
DEFAULT_MTU = 1500
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def bridge_mac(gateway: IPv4Address) -> str:
    return "0a:58:" + ":".join(f"{b:02x}" for b in gateway.packed)


def ensure_bridge(ipr: IPRoute, *, name: str, gateway: IPv4Interface, mtu: int) -> int:
    """Make `name` a bridge that is up, holds `gateway` and has `mtu`; its index."""
    link = get_link(ipr, name)
    if link is None:
        ipr.link("add", ifname=name, kind="bridge", address=bridge_mac(gateway.ip), mtu=mtu)
        link = get_link(ipr, name)
        log.info("created bridge %s (%s, MTU %d)", name, gateway, mtu)
    elif link_kind(link) != "bridge":
        raise NetworkError(f"interface {name} exists and is not a bridge ({link_kind(link) or 'no kind'}); "
                           f"choose another bridge name or remove it")
    index = link["index"]
    if link.get("mtu") != mtu:
        ipr.link("set", index=index, mtu=mtu)
    have = {(a.get("address"), a["prefixlen"]) for a in ipr.addr("dump", index=index, family=socket.AF_INET)}
    if (str(gateway.ip), gateway.network.prefixlen) not in have:
        add_address(ipr, index=index, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
        others = sorted(f"{a}/{p}" for a, p in have)
        if others:
            log.warning("bridge %s also holds %s (not this node's pod gateway %s); left alone",
                        name, ", ".join(others), gateway)
    if not is_up(link):
        ipr.link("set", index=index, state="up")
    return index


def uplink_mtu(ipr: IPRoute, node_ip: IPv4Address) -> int:
    """The MTU of the interface that holds `node_ip` (the uplink)."""
    for address in ipr.addr("dump", family=socket.AF_INET):
        if address.get("address") == str(node_ip):
            link = ipr.link("get", index=address["index"])[0]
            return int(link.get("mtu"))
    log.warning("no interface holds the node IP %s; using MTU %d for pods", node_ip, DEFAULT_MTU)
    return DEFAULT_MTU


def enable_forwarding() -> None:
    """net.ipv4.ip_forward=1 in the calling thread's network namespace."""
    try:
        if IP_FORWARD.read_text().strip() != "1":
            IP_FORWARD.write_text("1\n")
    except OSError as exc:
        raise NetworkError(f"cannot enable IPv4 forwarding ({IP_FORWARD}): {exc.strerror}") from None
