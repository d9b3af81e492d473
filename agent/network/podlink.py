"""A pod's link: a veth pair from the node's bridge into the pod's network namespace.

    node namespace                      pod namespace
    skv3f9a0c1d2e4b (on the bridge) ─── eth0  198.19.1.7/24, default via 198.19.1.1
                                        lo    up

The host end's name is derived from the pod UID ("skv" + 12 hex digits of its
SHA-256: 15 characters, the kernel's limit), so it can be found again after an agent
restart without any state. The pair is created with its peer directly in the pod's
namespace (RTM_NEWLINK with the peer's IFLA_NET_NS_FD), named eth0 from the start;
the host end is put on the bridge, up, with hairpin mode on - so a pod can reach
itself through a hostPort of its own node (br_netfilter may hand the DNAT'd packet
back to the port it came from).

The pod side is configured from the calling thread moved into the pod namespace
(netns.in_netns): no forked helper. Every step is idempotent, so attaching a pod
again repairs whatever a crash left half done. Deleting the host end deletes both
ends; when a pod's namespace goes away the kernel deletes the pair by itself.
"""

from __future__ import annotations

import errno
import hashlib
import os
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .errors import NetworkError
from .links import LOOPBACK_INDEX, add_address, get_link, is_up, open_iproute
from .netns import in_netns

HOST_PREFIX = "skv"
POD_IFNAME = "eth0"
HAIRPIN = 1        # IFLA_BRPORT_MODE


def host_link_name(uid: str) -> str:
    """The host end's name for pod `uid` (15 characters)."""
    return HOST_PREFIX + hashlib.sha256(uid.encode()).hexdigest()[:12]


def create_pod_link(ipr: IPRoute, *, host_name: str, netns_path: Path, bridge_index: int, mtu: int) -> bool:
    """Create the veth pair: `host_name` on the bridge, eth0 in the pod's namespace.

    False (and nothing done) if a link called `host_name` exists already."""
    try:
        netns_fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(f"cannot open the pod's network namespace {netns_path}: {exc.strerror}") from None
    try:
        ipr.link("add", ifname=host_name, kind="veth", mtu=mtu, master=bridge_index, state="up",
                 peer={"ifname": POD_IFNAME, "net_ns_fd": netns_fd, "mtu": mtu})
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise
        if get_link(ipr, host_name) is not None:
            return False
        raise NetworkError(f"the pod's network namespace {netns_path} already has an {POD_IFNAME} "
                           f"that is not connected to this node's bridge") from None
    finally:
        os.close(netns_fd)
    ipr.brport("set", ifname=host_name, mode=HAIRPIN)
    return True


def configure_pod_side(netns_path: Path, *, address: IPv4Interface, gateway: IPv4Address, mtu: int) -> bool:
    """Give the pod's eth0 its address, MTU and default route, and bring eth0 and lo up.

    False if the namespace has no eth0 (the host end found belongs to another namespace)."""
    with in_netns(netns_path):
        # Opened, used and closed inside: the socket is in the pod's namespace.
        with open_iproute() as ipr:
            links = {link.get("ifname"): link for link in ipr.link("dump")}   # lo and eth0, one request
            eth0 = links.get(POD_IFNAME)
            if eth0 is None:
                return False
            index = eth0["index"]
            if eth0.get("mtu") != mtu:
                ipr.link("set", index=index, mtu=mtu)
            add_address(ipr, index=index, address=str(address.ip), prefixlen=address.network.prefixlen)
            if not is_up(eth0):
                ipr.link("set", index=index, state="up")
            if "lo" in links and not is_up(links["lo"]):
                ipr.link("set", index=LOOPBACK_INDEX, state="up")
            ipr.route("replace", dst="0.0.0.0/0", gateway=str(gateway), oif=index)
            return True
