"""host-gw routes: every other node's pod CIDR via that node's InternalIP.

    198.19.2.0/24 via 198.18.0.12 proto 115     (node b's pods, through node b)
    198.19.3.0/24 via 198.18.0.13 proto 115     (node c's pods, through node c)

All nodes share one L2 network (a LAN, a VM network, the local cluster's virtual
bridge), so a node can hand a packet for another node's pod straight to that node,
which forwards it to its bridge - no tunnel, no encapsulation, full MTU.

Our routes carry their own routing protocol number (RTPROT_SKIFF, shown by
`ip route` as "proto 115"), so `sync_routes` only ever replaces or withdraws routes
it made, never one an administrator or another program added.
"""

from __future__ import annotations

import logging
import socket
from ipaddress import IPv4Address, IPv4Network

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger(__name__)
RTPROT_SKIFF = 115
MAIN_TABLE = 254


def our_routes(ipr: IPRoute) -> dict[IPv4Network, IPv4Address | None]:
    """Our routes in the main table: destination -> gateway."""
    found = {}
    for route in ipr.route("dump", family=socket.AF_INET, table=MAIN_TABLE):
        if route["proto"] != RTPROT_SKIFF:
            continue
        dst = IPv4Network(f"{route.get('dst') or '0.0.0.0'}/{route['dst_len']}")
        gateway = route.get("gateway")
        found[dst] = IPv4Address(gateway) if gateway else None
    return found


def sync_routes(ipr: IPRoute, wanted: dict[IPv4Network, IPv4Address]) -> list[str]:
    """Make our routes exactly `wanted`; a message per route that could not be added."""
    problems = []
    have = our_routes(ipr)
    for dst, gateway in sorted(wanted.items()):
        if have.get(dst) == gateway:
            continue
        try:
            ipr.route("replace", dst=str(dst), gateway=str(gateway), proto=RTPROT_SKIFF, table=MAIN_TABLE)
            log.info("route %s via %s", dst, gateway)
        except NetlinkError as exc:
            problems.append(f"route {dst} via {gateway}: {exc.args[-1] if exc.args else exc}")
    for dst in sorted(set(have) - set(wanted)):
        remove_route(ipr, dst)
        log.info("route %s withdrawn", dst)
    return problems


def remove_route(ipr: IPRoute, dst: IPv4Network) -> None:
    try:
        ipr.route("del", dst=str(dst), proto=RTPROT_SKIFF, table=MAIN_TABLE)
    except NetlinkError as exc:
        if exc.code != 3:      # ESRCH: already gone
            raise


def remove_our_routes(ipr: IPRoute) -> None:
    for dst in our_routes(ipr):
        remove_route(ipr, dst)
