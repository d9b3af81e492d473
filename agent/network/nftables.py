"""The node's nftables table: masquerade, and every hostPort in one DNAT map.

    table inet skiff {
        map hostports {                                   # (protocol, node port) -> (pod IP, pod port)
            type inet_proto . inet_service : ipv4_addr . inet_service
            elements = { tcp . 8080 : 198.19.1.7 . 80, udp . 5353 : 198.19.1.9 . 53 }
        }
        chain prerouting {   # packets arriving at the node, from the LAN or from its pods
            type nat hook prerouting priority dstnat
            fib daddr type local dnat ip to meta l4proto . th dport map @hostports
        }
        chain output {       # connections the node itself opens to one of its addresses
            type nat hook output priority -100
            ip daddr != 127.0.0.0/8 fib daddr type local dnat ip to meta l4proto . th dport map @hostports
        }
        chain postrouting {
            type nat hook postrouting priority srcnat
            oifname "skiff0" ct status dnat ip saddr 198.19.1.0/24 masquerade         # hairpin
            ip saddr 198.19.1.0/24 ip daddr != 198.19.0.0/16 oifname != "skiff0" masquerade   # leaving the cluster
        }
    }

One rule looks every hostPort up in a hash map, so 10,000 mapped ports cost what 10
cost: one lookup, on the first packet of a connection only (NAT chains see nothing
else; conntrack translates the rest). No rule per port and no proxy process per port
(Docker's userland proxy). Hairpin: a pod that connects to a hostPort of its own node
that leads to a pod on the same bridge must see the answer come from the address it
called, so such connections are masqueraded to the gateway address.

nftables is driven with the `nft` program (`nft -f -`, one atomic transaction per
call) from the event loop, only at setup and for pods with hostPorts. `setup_script`
redeclares the table and rules and refills the map from the saved reservations in one
transaction: running it when an agent restarts never leaves a moment without a
rule or an entry, so running pods keep their hostPorts.
"""

from __future__ import annotations

import asyncio
import subprocess
from ipaddress import IPv4Address, IPv4Network
from typing import Iterable

from .errors import NetworkError
from .hostports import HostPort

HOSTPORTS_MAP = "hostports"


def setup_script(*, table: str, bridge: str, pod_cidr: IPv4Network, cluster_cidr: IPv4Network,
                 entries: Iterable[tuple[HostPort, IPv4Address]]) -> str:
    t = f"inet {table}"
    lines = [
        f"add table {t}",
        f"add map {t} {HOSTPORTS_MAP} {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}",
        f"add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}",
        f"add chain {t} output {{ type nat hook output priority -100; policy accept; }}",
        f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",
        f"flush chain {t} prerouting",
        f"flush chain {t} output",
        f"flush chain {t} postrouting",
        f"add rule {t} prerouting meta nfproto ipv4 fib daddr type local"
        f" dnat ip to meta l4proto . th dport map @{HOSTPORTS_MAP} comment \"hostPorts\"",
        f"add rule {t} output meta nfproto ipv4 ip daddr != 127.0.0.0/8 fib daddr type local"
        f" dnat ip to meta l4proto . th dport map @{HOSTPORTS_MAP} comment \"hostPorts from the node itself\"",
        f"add rule {t} postrouting oifname \"{bridge}\" ct status dnat ip saddr {pod_cidr}"
        f" masquerade comment \"hairpin: a pod through a hostPort to a pod of this node\"",
        f"add rule {t} postrouting ip saddr {pod_cidr} ip daddr != {cluster_cidr} oifname != \"{bridge}\""
        f" masquerade comment \"pods to outside the cluster network\"",
        f"flush map {t} {HOSTPORTS_MAP}",
    ]
    script = "\n".join(lines) + "\n"
    return script + add_elements_script(table=table, entries=entries)


def _element(port: HostPort, pod_ip: IPv4Address | None = None) -> str:
    key = f"{port.protocol.lower()} . {port.host_port}"
    return key if pod_ip is None else f"{key} : {pod_ip} . {port.container_port}"


def add_elements_script(*, table: str, entries: Iterable[tuple[HostPort, IPv4Address]]) -> str:
    elements = [_element(port, ip) for port, ip in entries]
    if not elements:
        return ""
    return f"add element inet {table} {HOSTPORTS_MAP} {{ {', '.join(elements)} }}\n"


def delete_elements_script(*, table: str, ports: Iterable[HostPort]) -> str:
    elements = [_element(port) for port in ports]
    if not elements:
        return ""
    return f"delete element inet {table} {HOSTPORTS_MAP} {{ {', '.join(elements)} }}\n"


def delete_table_script(table: str) -> str:
    # `add` first: deleting a table that does not exist is an error, and teardown is idempotent.
    return f"add table inet {table}\ndelete table inet {table}\n"


def _failure(script: str, returncode: int, stderr: bytes) -> NetworkError:
    first = script.splitlines()[0] if script else ""
    return NetworkError(f"nft failed (exit {returncode}) applying '{first[:80]}'...: "
                        f"{stderr.decode(errors='replace').strip()[-800:]}")


async def run_nft(script: str) -> None:
    """Apply `script` as one nftables transaction (a child process; the event loop waits)."""
    if not script:
        return
    try:
        proc = await asyncio.create_subprocess_exec("nft", "-f", "-", stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError:
        raise NetworkError("nft not found: install nftables (apt-get install nftables)") from None
    _, stderr = await proc.communicate(script.encode())
    if proc.returncode != 0:
        raise _failure(script, proc.returncode, stderr)


def run_nft_sync(script: str) -> None:
    """`run_nft` for synchronous callers (`python -m agent.cleanup`)."""
    if not script:
        return
    try:
        proc = subprocess.run(["nft", "-f", "-"], input=script.encode(), capture_output=True, check=False)
    except FileNotFoundError:
        raise NetworkError("nft not found: install nftables (apt-get install nftables)") from None
    if proc.returncode != 0:
        raise _failure(script, proc.returncode, proc.stderr)
