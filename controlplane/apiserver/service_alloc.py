"""Cluster IPs and node ports for Services: one etcd key per address, claimed with the Service.

Each allocated cluster IP is a key `<prefix>/_clusterips/<ip>`, each node port a
key `<prefix>/_nodeports/<port>`, whose value names the Service holding it
(namespace, name, uid). A Service's create, update or delete carries its claims
in its own etcd transaction (store.Claims): a key is taken only if it is absent,
and released in the write that stops using it. So, across any number of API
servers sharing one etcd, no two Services ever hold one address, and an address
is held exactly as long as the Service that holds it exists — nothing leaks when
a create fails or a server dies, and there is no repair loop to run. (Kubernetes
moved the same way, from one bitmap object to an IPAddress object per IP.)

Picking a free address uses this API server's memory of what is taken (`Pool.held`,
loaded from etcd once, kept up to date by its own writes and by every lost claim):
a hint only, since the transaction decides. A dynamic pick starts at a random
place in the upper part of the range and walks up, as Kubernetes does, leaving
the lower part (1/16 of the range, 16 to 256 addresses) to addresses users ask
for — such as the first address, which the `kubernetes` Service takes.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any, Callable

from controlplane.storage import Store

DEFAULT_CLUSTER_IP_RANGE = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"


@dataclass(frozen=True)
class ServiceNetwork:
    """Where Services' addresses come from (skiff-controlplane flags)."""

    cluster_ip_range: str = DEFAULT_CLUSTER_IP_RANGE
    node_port_range: str = DEFAULT_NODE_PORT_RANGE

    def network(self) -> ipaddress.IPv4Network:
        try:
            net = ipaddress.ip_network(self.cluster_ip_range, strict=True)
        except ValueError as exc:
            raise ValueError(f"--service-cluster-ip-range {self.cluster_ip_range}: {exc}") from None
        if not isinstance(net, ipaddress.IPv4Network) or net.num_addresses < 8:
            raise ValueError(f"--service-cluster-ip-range {self.cluster_ip_range}: must be an IPv4 network "
                             f"of at least 8 addresses")
        return net

    def ports(self) -> tuple[int, int]:
        low, sep, high = self.node_port_range.partition("-")
        try:
            first, last = int(low), int(high if sep else low)
        except ValueError:
            raise ValueError(f"--service-node-port-range {self.node_port_range}: must be FIRST-LAST") from None
        if not (1 <= first <= last <= 65535):
            raise ValueError(f"--service-node-port-range {self.node_port_range}: must be within 1-65535")
        return first, last

    def kubernetes_ip(self) -> str:
        """The `kubernetes` Service's address: the range's first usable one."""
        return str(self.network().network_address + 1)

    def check(self) -> None:
        """Raise ValueError naming the bad flag."""
        self.network()
        self.ports()


@dataclass(frozen=True)
class Holder:
    namespace: str
    name: str
    uid: str

    def encode(self) -> bytes:
        return json.dumps({"namespace": self.namespace, "name": self.name, "uid": self.uid},
                          separators=(",", ":")).encode()

    @staticmethod
    def decode(raw: bytes) -> "Holder":
        try:
            data = json.loads(raw)
            return Holder(str(data.get("namespace", "")), str(data.get("name", "")), str(data.get("uid", "")))
        except (ValueError, AttributeError):
            return Holder("", "?", "")

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def holder_of(obj: dict[str, Any]) -> Holder:
    meta = obj.get("metadata") or {}
    return Holder(meta.get("namespace") or "", meta.get("name") or "", meta.get("uid") or "")


class Pool:
    """A range of integers [first, first + size), each one an etcd key when held."""

    def __init__(self, store: Store, *, kind: str, first: int, size: int, show: Callable[[int], str],
                 parse: Callable[[str], int]):
        self.store = store
        self.kind = kind
        self.first, self.size = first, size
        self.show, self.parse = show, parse
        self.prefix = f"{store.prefix}/_{kind}/".encode()
        self.held: dict[int, Holder] = {}      # a hint: what this server last knew to be taken
        self.picking: set[int] = set()         # picked by writes of this server still in flight
        self.loaded = False
        # Kubernetes' static band: dynamic picks prefer the rest of the range.
        self.static = min(max(16, size // 16), 256) if size > 64 else 0

    def key(self, value: int) -> bytes:
        return self.prefix + self.show(value).encode()

    def contains(self, value: int) -> bool:
        return self.first <= value < self.first + self.size

    async def load(self, *, force: bool = False) -> None:
        """Read which values are held (once, or again with force)."""
        if self.loaded and not force:
            return
        held = {}
        for key, value in await self.store.read_prefix(self.prefix):
            try:
                held[self.parse(key[len(self.prefix):].decode())] = Holder.decode(value)
            except ValueError:
                continue
        self.held = held
        self.loaded = True

    def pick(self, exclude: set[int]) -> int | None:
        """A value neither held nor being picked nor in exclude: from a random place in the
        dynamic band upwards, wrapping, then the static band."""
        def free(v: int) -> bool:
            return v not in self.held and v not in self.picking and v not in exclude
        band = self.size - self.static
        start = random.randrange(band)
        for offset in itertools.chain(range(start, band), range(0, start), range(band, self.size)):
            value = self.first + self.static + offset if offset < band else self.first + offset - band
            if free(value):
                return value
        return None

    def remember(self, value: int, holder: Holder | None) -> None:
        if holder is None:
            self.held.pop(value, None)
        else:
            self.held[value] = holder


def cluster_ip_pool(store: Store, network: ServiceNetwork) -> Pool:
    net = network.network()
    # Neither the network's own address nor its broadcast address.
    return Pool(store, kind="clusterips", first=int(net.network_address) + 1, size=net.num_addresses - 2,
                show=lambda v: str(ipaddress.IPv4Address(v)), parse=lambda s: int(ipaddress.IPv4Address(s)))


def node_port_pool(store: Store, network: ServiceNetwork) -> Pool:
    first, last = network.ports()
    return Pool(store, kind="nodeports", first=first, size=last - first + 1, show=str, parse=int)
