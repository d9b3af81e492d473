"""gRPC targets naming several servers, for clients that fail over between them.

`channel_target(["10.0.0.1:6443", "10.0.0.2:6443"])` is `ipv4:10.0.0.1:6443,10.0.0.2:6443`:
one channel over every server. With the pick_first policy (FAILOVER_OPTIONS) gRPC
connects to the first that answers and, when that connection breaks, to the next
one by itself; calls made meanwhile wait for the new connection. Used by the API
client (`--server a,b`: several control planes) and the etcd client (several etcd
members). Host names are resolved here, since multi-address targets take addresses.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

# Reconnect fast (100 ms first backoff, 0.5 s at most, instead of gRPC's 1 s growing to
# 120 s): a server that returns after an outage is used again within about a second.
FAILOVER_OPTIONS = [("grpc.lb_policy_name", "pick_first"),
                    ("grpc.initial_reconnect_backoff_ms", 100),
                    ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 500)]


def parse_address(address: str) -> tuple[str, int]:
    """'host:port', 'http://host:port' or '[v6]:port' -> (host, port); ValueError naming it."""
    text = address.strip()
    if "://" in text:
        url = urlsplit(text)
        try:
            host, port = url.hostname or "", url.port
        except ValueError:
            host, port = "", None
    else:
        host, _, port_text = text.rpartition(":")
        host = host.strip("[]")
        port = int(port_text) if port_text.isdigit() and 0 < int(port_text) < 65536 else None
    if not host or not port:
        raise ValueError(f"{address!r}: expected host:port")
    return host, port


def channel_target(addresses: list[str]) -> str:
    """The gRPC target naming every address ('ipv4:a:p,b:p'); one address stays as given."""
    if len(addresses) == 1:
        host, port = parse_address(addresses[0])
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    v4: list[str] = []
    v6: list[str] = []
    for address in addresses:
        host, port = parse_address(address)
        try:
            ips = [ipaddress.ip_address(host)]
        except ValueError:
            ips = [ipaddress.ip_address(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
        for ip in ips:
            (v4 if ip.version == 4 else v6).append(f"{ip}:{port}" if ip.version == 4 else f"[{ip}]:{port}")
    if v4:   # a target holds one family: IPv4 when there is any
        return "ipv4:" + ",".join(dict.fromkeys(v4))
    return "ipv6:" + ",".join(dict.fromkeys(v6))


def split_servers(servers: str) -> list[str]:
    """'a:1, b:2' -> ['a:1', 'b:2']."""
    return [s.strip() for s in servers.split(",") if s.strip()]
