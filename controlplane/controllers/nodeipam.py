"""Node IPAM: give every node a slice of the cluster's pod network (`spec.podCIDR`).

The cluster CIDR (`--cluster-cidr`, 10.244.0.0/16 by default; local clusters on
one machine use 198.18.0.0/15's upper half) is cut into subnets of
`--node-cidr-mask-size` (/24: 254 pods per node). A node without a podCIDR gets
the lowest free subnet. Which subnets are taken is read from the nodes
themselves, so a deleted node's subnet is free again with no bookkeeping, and
a restarted controller cannot hand out a subnet twice (one worker, one leader).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from controlplane.client import ApiError, Conflict, NotFound
from controlplane.client.events import WARNING
from controlplane.controllers.manager import Context, QueueController
from controlplane.controllers.settings import ControllerSettings

log = logging.getLogger(__name__)


class CIDRExhausted(Exception):
    pass


def allocate(cluster_cidr: str, mask: int, used: set[str]) -> str:
    """The lowest subnet of `cluster_cidr` with prefix `mask` not in `used`.

    Linear in the number of subnets: taken subnets of the usual size are looked
    up in a set; only odd-sized ones (set by hand) need an overlap test.
    """
    network = ipaddress.ip_network(cluster_cidr)
    exact: set[int] = set()
    odd: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for cidr in used:
        if not cidr:
            continue
        net = ipaddress.ip_network(cidr, strict=False)
        if net.prefixlen == mask:
            exact.add(int(net.network_address))
        elif net.version == network.version and net.overlaps(network):
            odd.append(net)
    for subnet in network.subnets(new_prefix=mask):
        if int(subnet.network_address) in exact:
            continue
        if odd and any(subnet.overlaps(t) for t in odd):
            continue
        return str(subnet)
    raise CIDRExhausted(f"no free /{mask} left in cluster CIDR {cluster_cidr} ({len(exact) + len(odd)} in use)")


# The controller pattern (informers in setup, events -> keys, reconcile a key, retry on Conflict):
# alike in shape across controllers by design (the `duplicates` tool pairs them); the rules differ.
class NodeIpamController(QueueController):
    def __init__(self, settings: ControllerSettings):
        super().__init__(name="nodeipam", workers=1)
        self.settings = settings

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.nodes = ctx.informers.get("nodes")
        self.nodes.add_handlers(on_add=lambda n: self._enqueue(n), on_update=lambda old, new: self._enqueue(new))

    def _enqueue(self, node: dict[str, Any]) -> None:
        if not (node.get("spec") or {}).get("podCIDR"):
            self.queue.add(node["metadata"]["name"])

    async def reconcile(self, name: str) -> float | None:
        assert self.ctx is not None
        node = self.nodes.get("", name)
        if node is None or (node.get("spec") or {}).get("podCIDR"):
            return None
        used = {(n.get("spec") or {}).get("podCIDR", "") for n in self.nodes.list()}
        try:
            cidr = allocate(self.settings.cluster_cidr, self.settings.node_cidr_mask_size, used)
        except CIDRExhausted as exc:
            self.ctx.recorder.event(node, WARNING, "CIDRNotAvailable", f"Node {name} status is now: "
                                                                      f"CIDRNotAvailable ({exc})")
            return 30.0
        updated = {**node, "spec": {**(node.get("spec") or {}), "podCIDR": cidr, "podCIDRs": [cidr]}}
        try:
            await self.ctx.client.update(updated)
            log.info("node %s: podCIDR %s", name, cidr)
        except Conflict:
            return 0.1
        except NotFound:
            return None
        except ApiError as exc:
            log.warning("node %s: could not set podCIDR: %s", name, exc.message)
            return 1.0
        return None
