"""`IP[:PORT]` strings, as flags take them (`--dns-upstream 10.0.0.2:5353`, `[2001:db8::1]:53`).

Shared by the agent (agent/dns/forward.py) and ctl (`ctl cluster up --dns-upstream`), so both
accept and reject exactly the same text with the same message. `is_loopback` tells whether an
address (`host[:port]`, optionally with a URL scheme) stays on this machine: the control plane
asks it of etcd endpoints (loopback may go without TLS), the image puller of registries
(loopback may be plain http).
"""

from __future__ import annotations

import ipaddress


def parse_ip_port(text: str, *, default_port: int) -> tuple[str, int]:
    """`1.1.1.1`, `1.1.1.1:5353`, `[2001:db8::1]:53` or `2001:db8::1` -> (ip, port); ValueError if not."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else (rest or str(default_port))
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, str(default_port)
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ValueError(f"invalid address {text!r}: expected IP[:PORT]") from None
    if not 0 < number < 65536:
        raise ValueError(f"invalid address {text!r}: the port must be 1-65535")
    return host, number


def is_loopback(address: str) -> bool:
    """`localhost`, `127.0.0.1:2379`, `http://[::1]:2379` -> True; another IP or a DNS name -> False."""
    host = address.split("://", 1)[-1].lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
