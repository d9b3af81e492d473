"""The agent's side of the pod network: wait for the node's podCIDR, set up the
node network, keep routes to the other nodes in sync.

The control plane's node IPAM controller gives each Node a `spec.podCIDR`
after it registers. Until then pods (other than hostNetwork ones) cannot get an
address: `attach` raises `NetworkNotReady`, the pod waits in ContainerCreating
with that reason, and every pod is looked at again once the network is up.

Routes are host-gw, as flannel's backend of that name does: for every other
node, "its podCIDR via its InternalIP". They follow the nodes informer, so a
node that joins gets a route and a deleted node's route is withdrawn.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Callable

from controlplane.client.informer import Informer

log = logging.getLogger(__name__)


class NetworkNotReady(Exception):
    pass


def internal_ip(node: dict[str, Any]) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address", ""))
    return ""


def peers_of(nodes: list[dict[str, Any]], me: str) -> dict[str, tuple[str, str]]:
    """node name -> (podCIDR, InternalIP) for every other node that has both."""
    out = {}
    for node in nodes:
        name = node["metadata"]["name"]
        cidr = (node.get("spec") or {}).get("podCIDR", "")
        ip = internal_ip(node)
        if name != me and cidr and ip:
            out[name] = (cidr, ip)
    return out


class PodNetwork:
    """What the pod syncer calls: attach / detach / pod_ip, ready once the node has a podCIDR."""

    def __init__(self, *, nodes: Informer, node_name: str, node_ip: str, state_dir: Path, cluster_cidr: str,
                 on_ready: Callable[[], None], bridge: str = "skiff0", nft_table: str = "skiff"):
        self.nodes = nodes
        self.node_name = node_name
        self.node_ip = node_ip
        self.state_dir = state_dir
        self.cluster_cidr = cluster_cidr
        self.on_ready = on_ready
        self.bridge = bridge
        self.nft_table = nft_table
        self.network: Any = None     # agent.network.NodeNetwork once set up
        self._changed = asyncio.Event()
        self._ready = asyncio.Event()
        self._last_peers: dict[str, tuple[str, str]] | None = None
        nodes.add_handlers(on_add=lambda n: self._changed.set(), on_update=lambda old, new: self._changed.set(),
                           on_delete=lambda n: self._changed.set())

    @property
    def ready(self) -> bool:
        return self.network is not None

    async def attach(self, pod: dict[str, Any], netns_path: Path) -> str:
        if self.network is None:
            raise NetworkNotReady(f"network is not ready: node {self.node_name} has no podCIDR yet")
        return await self.network.attach(pod, netns_path)

    async def detach(self, uid: str) -> None:
        if self.network is None:
            # Right after an agent restart the network is set up again from the node's
            # podCIDR; a pod deleted meanwhile must still give its address back.
            me = self.nodes.get("", self.node_name)
            if not ((me or {}).get("spec") or {}).get("podCIDR"):
                return
            try:
                await asyncio.wait_for(self._ready.wait(), timeout=30)
            except TimeoutError:
                raise NetworkNotReady(f"network is not ready: cannot release the address of pod {uid}") from None
        await self.network.detach(uid)

    async def wait_ready(self) -> None:
        """Until the node network is set up (the node has a podCIDR)."""
        await self._ready.wait()

    @property
    def gateway(self) -> str | None:
        """The pods' gateway address on the bridge (the cluster DNS listens there), once set up."""
        return str(self.network.gateway.ip) if self.network is not None else None

    def pod_ip(self, uid: str) -> str | None:
        return self.network.pod_ip(uid) if self.network is not None else None

    async def run(self) -> None:
        """Set the network up when the podCIDR appears; then keep routes in sync."""
        from agent.network import NodeNetwork
        await self.nodes.wait_synced(timeout=None)
        while True:
            self._changed.clear()
            me = self.nodes.get("", self.node_name)
            cidr = ((me or {}).get("spec") or {}).get("podCIDR", "")
            if self.network is None and cidr:
                network = NodeNetwork(state_dir=self.state_dir, pod_cidr=cidr, cluster_cidr=self.cluster_cidr,
                                      node_ip=self.node_ip, bridge=self.bridge, nft_table=self.nft_table)
                try:
                    await network.setup()
                except Exception as exc:
                    log.error("pod network setup failed (podCIDR %s): %s; retrying", cidr, exc)
                    await network.close()    # its netlink worker thread
                    await asyncio.sleep(5)
                    continue
                self.network = network
                self._ready.set()
                log.info("pod network up: podCIDR %s on bridge %s", cidr, self.bridge)
                self.on_ready()
            if self.network is not None:
                peers = peers_of(self.nodes.list(), self.node_name)
                try:
                    if peers != self._last_peers:
                        await self.network.sync_routes(peers)
                        self._last_peers = peers
                except Exception as exc:
                    log.warning("syncing routes to other nodes failed: %s", exc)
                    await asyncio.sleep(2)
                    self._changed.set()
            await self._changed.wait()
