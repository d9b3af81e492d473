"""Forgetting stale UDP flows when a Service's endpoint goes.

A UDP "connection" is conntrack's entry for (client, cluster IP:port); while packets keep
coming it stays, with its DNAT to the endpoint chosen for the first packet. When that
endpoint goes away the client would keep sending into nothing, so - as kube-proxy does
with `conntrack -D --orig-dst <cluster IP> --dst-nat <endpoint> -p udp` - the entries
whose original destination is the Service (or its nodePort) and whose reply comes from
the gone endpoint are deleted; the next packet goes through the rules again. Entries of
a Service that had no endpoint (its packets were rejected) are deleted when it gets one.

Uses pyroute2's conntrack netlink socket (no `conntrack` program needed); blocking, so it
runs on the proxy's worker thread, in the node's network namespace.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StaleFlow:
    """UDP flows to `address`:`port` (address "": any node address, a nodePort) DNATed to `endpoint`
    ("" : whatever their endpoint)."""
    address: str
    port: int
    endpoint: str = ""


def delete_flows(flows: list[StaleFlow]) -> int:
    """Delete the conntrack entries of `flows`; how many went."""
    from pyroute2 import Conntrack
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    deleted = 0
    ct = Conntrack()
    try:
        for flow in flows:
            wanted = NFCTAttrTuple(proto=socket.IPPROTO_UDP, daddr=flow.address or None, dport=flow.port)
            for entry in list(ct.dump_entries(tuple_orig=wanted)):
                if flow.endpoint and entry.tuple_reply.saddr != flow.endpoint:
                    continue
                try:
                    ct.delete(entry)
                    deleted += 1
                except Exception as exc:  # noqa: BLE001 - already gone: the goal is reached
                    log.debug("conntrack entry %s not deleted: %s", entry, exc)
    finally:
        ct.close()
    return deleted
