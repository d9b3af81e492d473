"""Small netlink helpers shared by bridge.py, podlink.py and routes.py.

Everything here works on a synchronous pyroute2 `IPRoute`, whose socket lives in
the namespace it was opened in, and is called from NodeNetwork's worker thread
(netns.py) - never on the event loop.
"""

from __future__ import annotations

import errno
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

LOOPBACK_INDEX = 1          # the loopback device has index 1 in every network namespace


def open_iproute() -> IPRoute:
    """An rtnetlink socket in the calling thread's namespace, subscribed to no events
    (the default subscribes to every link, address and route change)."""
    return IPRoute(groups=0)


def get_link(ipr: IPRoute, name: str) -> Any | None:
    """The link called `name`, or None if there is none."""
    try:
        return ipr.link("get", ifname=name)[0]
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return None
        raise


def link_kind(link: Any) -> str | None:
    return link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")


def is_up(link: Any) -> bool:
    return bool(link["flags"] & 1)       # IFF_UP


def delete_link(ipr: IPRoute, name: str) -> bool:
    """Delete the link called `name`; whether there was one."""
    try:
        ipr.link("del", ifname=name)
        return True
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            return False
        raise


def add_address(ipr: IPRoute, *, index: int, address: str, prefixlen: int) -> None:
    """Add an address to a link unless it is already there."""
    try:
        ipr.addr("add", index=index, address=address, prefixlen=prefixlen)
    except NetlinkError as exc:
        if exc.code != errno.EEXIST:
            raise
