"""IPAM: which pod holds which address of the node's pod CIDR.

The node's pod CIDR (its `spec.podCIDR`, e.g. 198.19.1.0/24) is split like this:

    198.19.1.0      network address   never assigned
    198.19.1.1      gateway           the node's bridge (bridge.py)
    198.19.1.2-254  pods              253 addresses
    198.19.1.255    broadcast         never assigned

Assignments live in one JSON file (statefile.py), rewritten atomically on every
change *before* the address is used, so an agent that crashes or restarts finds
every address it handed out and never gives one to two pods. Addresses are handed
out round-robin from a cursor kept in the same file: an address set free is used
again only after all the others, so a client or a neighbour cache that still knows
the old pod has time to forget it.

Pure bookkeeping: no netlink here. NodeNetwork (node_network.py) calls it from its
worker thread, one operation at a time.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from pathlib import Path

from .errors import IPAMExhausted, NetworkError
from .statefile import read_json, write_json


def parse_pod_cidr(cidr: str | IPv4Network) -> IPv4Network:
    """An IPv4 network with room for a gateway and at least one pod (a /30 or larger)."""
    try:
        network = ip_network(cidr, strict=True)
    except ValueError as exc:
        raise NetworkError(f"invalid pod CIDR {cidr!r}: {exc}") from None
    if network.version != 4:
        raise NetworkError(f"invalid pod CIDR {cidr!r}: only IPv4 pod networks are supported")
    if network.prefixlen > 30:
        raise NetworkError(f"invalid pod CIDR {cidr!r}: too small (a /30 or larger is needed for a gateway and a pod)")
    return network


class IPAM:
    """The address assignments of one pod CIDR, kept in the JSON file at `path`.

    Call `load()` once before anything else; every change is on disk when the call returns.
    """

    def __init__(self, path: Path, cidr: str | IPv4Network) -> None:
        self.path = Path(path)
        self.network = parse_pod_cidr(cidr)
        self.gateway = self.network.network_address + 1
        self._first = int(self.network.network_address) + 2          # after network address and gateway
        self._last = int(self.network.broadcast_address) - 1
        self._by_owner: dict[str, IPv4Address] = {}
        self._owners: dict[IPv4Address, str] = {}
        self._cursor = self._first                                   # where the next search starts

    @property
    def capacity(self) -> int:
        """How many pods the CIDR holds."""
        return self._last - self._first + 1

    @property
    def in_use(self) -> int:
        return len(self._by_owner)

    def load(self) -> "IPAM":
        """Read the assignments from disk (none if there is no file yet)."""
        document = read_json(self.path)
        self._by_owner, self._owners, self._cursor = {}, {}, self._first
        if document is None:
            return self
        allocations = document.get("allocations", {})
        if not isinstance(allocations, dict):
            raise NetworkError(f"network state file {self.path} is damaged: 'allocations' is not an object")
        saved_cidr = document.get("podCIDR")
        if allocations and saved_cidr != str(self.network):
            raise NetworkError(
                f"network state file {self.path} holds {len(allocations)} addresses of pod CIDR {saved_cidr}, "
                f"but this node's pod CIDR is {self.network}; tear the node network down first")
        for owner, text in allocations.items():
            address = self._valid_address(text)
            if address is None or address in self._owners:
                raise NetworkError(f"network state file {self.path} is damaged: address {text!r} of pod {owner} "
                                   f"is {'assigned twice' if address is not None else 'not a pod address of ' + str(self.network)}")
            self._by_owner[owner] = address
            self._owners[address] = owner
        cursor = self._valid_address(document.get("next", ""))
        if cursor is not None:
            self._cursor = int(cursor)
        return self

    def get(self, owner: str) -> IPv4Address | None:
        return self._by_owner.get(owner)

    def allocations(self) -> dict[str, IPv4Address]:
        return dict(self._by_owner)

    def allocate(self, owner: str) -> IPv4Address:
        """The address of `owner`, assigning the next free one if it has none (and saving)."""
        if owner in self._by_owner:
            return self._by_owner[owner]
        size = self.capacity
        for step in range(size):
            candidate = IPv4Address(self._first + (self._cursor - self._first + step) % size)
            if candidate not in self._owners:
                break
        else:
            raise IPAMExhausted(f"no free IP address left in pod CIDR {self.network} ({self.in_use} in use)")
        previous_cursor = self._cursor
        self._by_owner[owner] = candidate
        self._owners[candidate] = owner
        self._cursor = self._first + (int(candidate) + 1 - self._first) % size
        try:
            self._save()
        except BaseException:
            del self._by_owner[owner], self._owners[candidate]
            self._cursor = previous_cursor
            raise
        return candidate

    def release(self, owner: str) -> IPv4Address | None:
        """Set `owner`'s address free (and save); the address it had, None if it had none."""
        address = self._by_owner.pop(owner, None)
        if address is None:
            return None
        del self._owners[address]
        try:
            self._save()
        except BaseException:
            self._by_owner[owner] = address
            self._owners[address] = owner
            raise
        return address

    def _valid_address(self, text: object) -> IPv4Address | None:
        try:
            address = ip_address(str(text))
        except ValueError:
            return None
        if address.version != 4 or not self._first <= int(address) <= self._last:
            return None
        return address

    def _save(self) -> None:
        try:
            write_json(self.path, {"podCIDR": str(self.network), "next": str(IPv4Address(self._cursor)),
                                   "allocations": {o: str(a) for o, a in sorted(self._by_owner.items())}})
        except OSError as exc:
            raise NetworkError(f"could not save the pod address assignments to {self.path}: {exc}") from exc
