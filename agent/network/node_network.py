"""NodeNetwork: one node's pod network, as the agent uses it.

    setup()          bridge with the pod gateway, IPv4 forwarding, the nftables table
                     (masquerade, hostPort DNAT map) - at agent start, idempotent
    attach(pod, ns)  an address from the node's pod CIDR (ipam.py), a veth pair into
                     the pod's namespace (podlink.py), its hostPorts (hostports.py,
                     nftables.py); the pod's IP
    detach(uid)      the reverse; idempotent
    sync_routes(..)  host-gw routes to the other nodes' pod CIDRs (routes.py)
    teardown()       everything above, gone

Where the work runs. The library works in the network namespace of the event loop
that calls it: the agent's process namespace (the host's on a VM; its own node
namespace in a local cluster). Netlink work blocks, so it runs on one worker thread
(netns.NetnsWorker) started from that loop's thread; a pod's side is configured by
that thread stepping into the pod's namespace with setns(2) and back - no fork, as
the agent has gRPC threads. nftables changes are one `nft -f -` child process, run
only at setup and for pods with hostPorts. An asyncio lock makes the operations
one-at-a-time: each takes milliseconds, and a node's network changes rarely.

Restarts. The truth that must survive an agent restart - who has which address,
which hostPorts - is in JSON files under `state_dir` (ipam.json, hostports/<pod>.json),
written before it is acted on. Everything else is found again from the kernel: a pod's host link has a
name derived from its UID. `setup()` on a restarted agent keeps the bridge, the
links and the map entries of running pods (it refills the map from the saved
reservations in one atomic transaction), and forgets only pods whose link is gone
(their namespace was deleted while no agent was watching) - so addresses never leak.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import threading
import time
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, ip_address, ip_network
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from . import nftables
from .bridge import enable_forwarding, ensure_bridge, uplink_mtu
from .errors import IPAMExhausted, NetworkError
from .hostports import HostPort, HostPortTable, host_ports_of, pod_name, pod_uid
from .ipam import IPAM, parse_pod_cidr
from .links import delete_link, get_link, is_up, open_iproute
from .netns import NetnsWorker
from .podlink import HAIRPIN, HOST_PREFIX, configure_pod_side, create_pod_link, host_link_name
from .routes import remove_our_routes, sync_routes
from .statefile import read_json

log = logging.getLogger(__name__)
IPAM_FILE = "ipam.json"
HOSTPORTS_DIR = "hostports"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


class NodeNetwork:
    """The pod network of the node whose namespace the calling event loop runs in."""

    def __init__(self, *, state_dir: Path, pod_cidr: str, cluster_cidr: str, node_ip: str,
                 bridge: str = "skiff0", nft_table: str = "skiff", mtu: int | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.pod_cidr = parse_pod_cidr(pod_cidr)
        try:
            self.cluster_cidr = ip_network(cluster_cidr, strict=True)
            self.node_ip = ip_address(node_ip)
        except ValueError as exc:
            raise NetworkError(f"invalid cluster CIDR or node IP: {exc}") from None
        if self.cluster_cidr.version != 4 or self.node_ip.version != 4:
            raise NetworkError("only IPv4 cluster CIDRs and node IPs are supported")
        if not self.pod_cidr.subnet_of(self.cluster_cidr):
            raise NetworkError(f"pod CIDR {self.pod_cidr} is not inside the cluster CIDR {self.cluster_cidr}")
        for what, name in (("bridge", bridge), ("nft_table", nft_table)):
            if not _NAME.match(name):
                raise NetworkError(f"invalid {what} name {name!r}: 1-15 letters, digits, '_', '.' or '-'")
        if mtu is not None and not 576 <= mtu <= 65535:
            raise NetworkError(f"invalid MTU {mtu}: must be between 576 and 65535")
        self.bridge = bridge
        self.nft_table = nft_table
        self.gateway = IPv4Interface(f"{self.pod_cidr.network_address + 1}/{self.pod_cidr.prefixlen}")
        self.mtu: int | None = mtu           # the uplink's, found by setup(), unless given
        self._mtu_given = mtu
        self._ipam = IPAM(self.state_dir / IPAM_FILE, self.pod_cidr)
        self._ports = HostPortTable(self.state_dir / HOSTPORTS_DIR)
        self._worker = NetnsWorker(f"skiff-net-{bridge}")
        self._lock = asyncio.Lock()
        self._ipr: IPRoute | None = None     # the node-namespace socket; used on the worker thread only
        self._bridge_index = 0
        self._ready = False
        # Milliseconds per phase of the last attach(), for debug logs and bench/network.py.
        self.last_attach_timings: dict[str, float] = {}

    # -- the contract -------------------------------------------------------------------

    async def setup(self) -> None:
        """Create or check the bridge, forwarding and nftables table; keep running pods as they are."""
        async with self._lock:
            entries = await self._worker.run(self._setup_on_worker)
            await nftables.run_nft(nftables.setup_script(
                table=self.nft_table, bridge=self.bridge, pod_cidr=self.pod_cidr,
                cluster_cidr=self.cluster_cidr, entries=entries))
            self._ready = True
            log.info("pod network ready: bridge %s %s, MTU %s, %d pods, %d hostPorts",
                     self.bridge, self.gateway, self.mtu, self._ipam.in_use, len(entries))

    async def attach(self, pod: dict[str, Any], netns_path: Path) -> str:
        """Connect the pod's namespace to the node's network; the pod's IP. Idempotent per pod UID."""
        uid, name, ports = pod_uid(pod), pod_name(pod), host_ports_of(pod)
        async with self._lock:
            self._check_ready()
            started = time.perf_counter()
            ip, old_ports, timings = await self._worker.run(self._attach_on_worker, uid, name, ports,
                                                            Path(netns_path))
            nft_started = time.perf_counter()
            if ports != old_ports:
                if old_ports:      # changed mappings (rare): rewrite the whole map
                    script = self._map_script(override={uid: (ports, ip)})
                else:
                    script = nftables.add_elements_script(table=self.nft_table, entries=[(p, ip) for p in ports])
                await nftables.run_nft(script)
                await self._worker.run(self._ports.set, uid, name, ports)
            done = time.perf_counter()
            timings.update(hostports_ms=(done - nft_started) * 1000, total_ms=(done - started) * 1000)
            self.last_attach_timings = {k: round(v, 3) for k, v in timings.items()}
            log.debug("pod %s attached: %s %s", name, ip, self.last_attach_timings)
            return str(ip)

    async def detach(self, uid: str) -> None:
        """Remove the pod's link, hostPorts and address. Idempotent."""
        async with self._lock:
            self._check_ready()
            ports = self._ports.ports(uid)
            await self._worker.run(lambda: delete_link(self._host(), host_link_name(uid)))
            if ports:
                try:
                    await nftables.run_nft(nftables.delete_elements_script(table=self.nft_table, ports=ports))
                except NetworkError:   # some entry was not there (a crash between steps): rewrite the map
                    await nftables.run_nft(self._map_script(override={uid: ([], None)}))
            released = await self._worker.run(self._forget, uid)
            if released is not None:
                log.info("pod %s detached, %s released", uid, released)

    async def sync_routes(self, peers: dict[str, tuple[str, str]]) -> None:
        """Routes to every other node's pod CIDR via its InternalIP; withdraw routes of nodes not listed.

        `peers` is node name -> (podCIDR, InternalIP). Valid peers get their route even if
        others are invalid; the invalid ones are then reported in one NetworkError."""
        wanted: dict[IPv4Network, IPv4Address] = {}
        owner: dict[IPv4Network, str] = {}
        problems = []
        for node, (cidr, internal_ip) in sorted(peers.items()):
            try:
                network, gateway = ip_network(cidr, strict=True), ip_address(internal_ip)
            except ValueError as exc:
                problems.append(f"node {node}: {exc}")
                continue
            if network.version != 4 or gateway.version != 4:
                problems.append(f"node {node}: podCIDR {cidr} and InternalIP {internal_ip} must be IPv4")
            elif network.overlaps(self.pod_cidr):
                problems.append(f"node {node}: podCIDR {network} overlaps this node's {self.pod_cidr}")
            elif network in owner:
                problems.append(f"node {node}: podCIDR {network} is also node {owner[network]}'s")
            else:
                wanted[network], owner[network] = gateway, node
        async with self._lock:
            problems += await self._worker.run(lambda: sync_routes(self._host(), wanted))
        if problems:
            raise NetworkError("some routes to other nodes' pods could not be set: " + "; ".join(problems))

    def pod_ip(self, uid: str) -> str | None:
        address = self._ipam.get(uid)
        return None if address is None else str(address)

    async def teardown(self) -> None:
        """Remove the bridge, every pod link, the nftables table, our routes and the saved state."""
        async with self._lock:
            self._ready = False
            problems = await self._worker.run(lambda: _teardown_netlink(self._host(), state_dir=self.state_dir,
                                                                        bridge=self.bridge))
            try:
                await nftables.run_nft(nftables.delete_table_script(self.nft_table))
            except NetworkError as exc:
                problems.append(str(exc))
            await self._close()
            self._ipam = IPAM(self.state_dir / IPAM_FILE, self.pod_cidr)      # nothing assigned any more
            self._ports = HostPortTable(self.state_dir / HOSTPORTS_DIR)
        if problems:
            raise NetworkError("pod network teardown incomplete: " + "; ".join(problems))

    async def close(self) -> None:
        """Stop the worker thread (the network itself stays as it is)."""
        async with self._lock:
            await self._close()

    # -- on the worker thread ---------------------------------------------------------------

    def _host(self) -> IPRoute:
        if self._ipr is None:
            self._ipr = open_iproute()
        return self._ipr

    def _setup_on_worker(self) -> list[tuple[HostPort, IPv4Address]]:
        self._ipam.load()
        self._ports.load()
        ipr = self._host()
        self.mtu = self._mtu_given or uplink_mtu(ipr, self.node_ip)
        enable_forwarding()
        self._bridge_index = ensure_bridge(ipr, name=self.bridge, gateway=self.gateway, mtu=self.mtu)
        for uid in self._ipam.allocations():
            link = get_link(ipr, host_link_name(uid))
            if link is None:
                log.info("pod %s: its link is gone (namespace deleted); address %s released",
                         uid, self._forget(uid))
            else:
                self._repair_host_end(link)
        for uid in self._ports.uids():
            if self._ipam.get(uid) is None:
                self._ports.remove(uid)
        return self._entries()

    def _attach_on_worker(self, uid: str, name: str, ports: list[HostPort], netns_path: Path
                          ) -> tuple[IPv4Address, list[HostPort], dict[str, float]]:
        t0 = time.perf_counter()
        conflicts = self._ports.conflicts(uid, ports)
        if conflicts:
            raise NetworkError(f"pod {name}: " + "; ".join(conflicts))
        had_address = self._ipam.get(uid) is not None
        try:
            ip = self._ipam.allocate(uid)
        except IPAMExhausted:
            if not self._forget_gone_pods():
                raise
            ip = self._ipam.allocate(uid)
        t1 = time.perf_counter()
        try:
            t2 = self._ensure_pod_link(uid, netns_path, ip)
        except BaseException as exc:
            if not had_address:      # leave nothing of a first attach that failed
                try:
                    delete_link(self._host(), host_link_name(uid))
                finally:
                    self._ipam.release(uid)
            if isinstance(exc, NetlinkError):
                raise NetworkError(f"pod {name}: cannot connect it to the node network: {exc}") from exc
            raise
        t3 = time.perf_counter()
        timings = {"ipam_ms": (t1 - t0) * 1000, "host_link_ms": (t2 - t1) * 1000, "pod_side_ms": (t3 - t2) * 1000}
        return ip, self._ports.ports(uid), timings

    def _ensure_pod_link(self, uid: str, netns_path: Path, ip: IPv4Address) -> float:
        """Create or repair the pod's veth pair and configure its side; when the host side was done."""
        ipr = self._host()
        name = host_link_name(uid)
        address = IPv4Interface(f"{ip}/{self.pod_cidr.prefixlen}")
        for _attempt in range(2):
            created = create_pod_link(ipr, host_name=name, netns_path=netns_path,
                                      bridge_index=self._bridge_index, mtu=self.mtu)
            if not created:
                self._repair_host_end(get_link(ipr, name))
            host_done = time.perf_counter()
            if configure_pod_side(netns_path, address=address, gateway=self.gateway.ip, mtu=self.mtu):
                return host_done
            if created:
                raise NetworkError(f"{netns_path}: eth0 vanished while being configured")
            # The existing pair leads into another namespace (an earlier sandbox of the pod): replace it.
            delete_link(ipr, name)
        raise NetworkError(f"{netns_path}: could not connect the namespace")   # not reached

    def _repair_host_end(self, link: Any) -> None:
        if link.get("master") != self._bridge_index:
            self._host().link("set", index=link["index"], master=self._bridge_index)
            self._host().brport("set", index=link["index"], mode=HAIRPIN)
        if not is_up(link):
            self._host().link("set", index=link["index"], state="up")

    def _forget(self, uid: str) -> IPv4Address | None:
        self._ports.remove(uid)
        return self._ipam.release(uid)

    def _forget_gone_pods(self) -> int:
        """Release the addresses of pods whose link is gone (missed detaches); how many."""
        gone = [uid for uid in self._ipam.allocations() if get_link(self._host(), host_link_name(uid)) is None]
        for uid in gone:
            self._forget(uid)
        return len(gone)

    def _entries(self, override: dict[str, tuple[list[HostPort], IPv4Address | None]] | None = None
                 ) -> list[tuple[HostPort, IPv4Address]]:
        table = {uid: (self._ports.ports(uid), self._ipam.get(uid)) for uid in self._ports.uids()}
        table.update(override or {})
        return [(port, ip) for ports, ip in table.values() if ip is not None for port in ports]

    def _map_script(self, override: dict[str, tuple[list[HostPort], IPv4Address | None]]) -> str:
        return (f"flush map inet {self.nft_table} {nftables.HOSTPORTS_MAP}\n"
                + nftables.add_elements_script(table=self.nft_table, entries=self._entries(override)))

    def _check_ready(self) -> None:
        if not self._ready:
            raise NetworkError("the node network is not set up: call NodeNetwork.setup() first")

    async def _close(self) -> None:
        def close_socket() -> None:
            if self._ipr is not None:
                self._ipr.close()
                self._ipr = None
        await self._worker.close(cleanup=close_socket)


def _teardown_netlink(ipr: IPRoute, *, state_dir: Path, bridge: str) -> list[str]:
    """Delete pod links, the bridge, our routes and the state files; what could not be done."""
    problems = []
    names = {host_link_name(uid) for uid in _saved_uids(state_dir)}
    bridge_link = get_link(ipr, bridge)
    if bridge_link is not None:
        names |= {link.get("ifname") for link in ipr.link("dump")
                  if link.get("master") == bridge_link["index"] and link.get("ifname", "").startswith(HOST_PREFIX)}
    for name in sorted(names) + ([bridge] if bridge_link is not None else []):
        try:
            delete_link(ipr, name)
        except NetlinkError as exc:
            problems.append(f"link {name}: {exc}")
    try:
        remove_our_routes(ipr)
    except NetlinkError as exc:
        problems.append(f"routes: {exc}")
    for path in [state_dir / IPAM_FILE, *state_dir.glob(".ipam.json.*")]:
        path.unlink(missing_ok=True)
    shutil.rmtree(state_dir / HOSTPORTS_DIR, ignore_errors=True)
    if state_dir.is_dir() and not any(state_dir.iterdir()):
        shutil.rmtree(state_dir, ignore_errors=True)
    return problems


def _saved_uids(state_dir: Path) -> list[str]:
    try:
        document = read_json(state_dir / IPAM_FILE) or {}
    except NetworkError as exc:          # damaged: the bridge's ports are still found
        log.warning("%s", exc)
        return []
    allocations = document.get("allocations")
    return list(allocations) if isinstance(allocations, dict) else []


def teardown_node_network(state_dir: Path, bridge: str = "skiff0", nft_table: str = "skiff") -> None:
    """Synchronous teardown for `python -m agent.cleanup`, in the calling thread's namespace. Idempotent.

    The netlink part runs on a short-lived thread (started from the caller's, so in its
    namespace): pyroute2's synchronous IPRoute cannot run on a thread whose event loop is
    running, and this may be called from one."""
    outcome: list[list[str] | BaseException] = []

    def netlink_part() -> None:
        try:
            with open_iproute() as ipr:
                outcome.append(_teardown_netlink(ipr, state_dir=Path(state_dir), bridge=bridge))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            outcome.append(exc)
    worker = threading.Thread(target=netlink_part, name="skiff-net-teardown")
    worker.start()
    worker.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    problems = outcome[0]
    try:
        nftables.run_nft_sync(nftables.delete_table_script(nft_table))
    except NetworkError as exc:
        problems.append(str(exc))
    if problems:
        raise NetworkError("pod network teardown incomplete: " + "; ".join(problems))
