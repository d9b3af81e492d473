"""A pod's /etc/resolv.conf, from its dnsPolicy and dnsConfig, as the kubelet writes it.

    ClusterFirst (default)   nameserver <cluster DNS>; search <ns>.svc.<zone> svc.<zone> <zone>
                             and the node's own search domains; options ndots:5.
                             A hostNetwork pod gets the node's file instead (as Default).
    ClusterFirstWithHostNet  the cluster DNS even for a hostNetwork pod
    Default                  the node's resolv.conf (the name is Kubernetes'; it is not the default)
    None                     only what dnsConfig says (validation requires a nameserver)

dnsConfig is merged on top: its nameservers and searches are appended (duplicates
dropped), its options replace those of the same name. Like the kubelet, at most 3
nameservers and 32 search domains are kept (the resolver ignores the rest anyway).
Without a cluster DNS (an agent with no pod network) ClusterFirst falls back to Default,
as the kubelet does when it has no --cluster-dns.

A pod in its own network namespace cannot reach the node's loopback, so loopback
nameservers of the node's file (127.0.0.53 of systemd-resolved, say) are left out for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
CLUSTER_NDOTS = "5"


@dataclass
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[tuple[str, str | None]] = field(default_factory=list)    # (name, value or None)

    @classmethod
    def parse(cls, text: str) -> "ResolvConf":
        out = cls()
        for line in text.splitlines():
            words = line.split("#", 1)[0].split(";", 1)[0].split()
            if not words:
                continue
            if words[0] == "nameserver" and len(words) >= 2:
                out.nameservers.append(words[1])
            elif words[0] in ("search", "domain"):
                out.searches = words[1:]         # the last search/domain line wins (resolv.conf(5))
            elif words[0] == "options":
                for option in words[1:]:
                    name, sep, value = option.partition(":")
                    out.options.append((name, value if sep else None))
        return out

    def render(self) -> str:
        lines = [f"nameserver {ns}" for ns in _unique(self.nameservers)[:MAX_NAMESERVERS]]
        searches = _unique(self.searches)[:MAX_SEARCHES]
        if searches:
            lines.append("search " + " ".join(searches))
        if self.options:
            lines.append("options " + " ".join(n if v is None else f"{n}:{v}" for n, v in self.options))
        return "\n".join(lines) + "\n"


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def pod_resolv_conf(pod: dict[str, Any], *, host_resolv: str, cluster_dns: str | None,
                    cluster_domain: str = "cluster.local") -> str:
    """The text of the pod's /etc/resolv.conf. `host_resolv` is the node's file."""
    spec = pod.get("spec") or {}
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    host = ResolvConf.parse(host_resolv)
    if not host_network:
        host.nameservers = [ns for ns in host.nameservers if not _is_loopback(ns)]
    zone = cluster_domain.strip(".")
    cluster = (policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network))
    if policy == "None":
        conf = ResolvConf()
    elif cluster and cluster_dns:
        conf = ResolvConf(nameservers=[cluster_dns],
                          searches=[f"{namespace}.svc.{zone}", f"svc.{zone}", zone, *host.searches],
                          options=[("ndots", CLUSTER_NDOTS)])
    else:
        conf = host
    config = spec.get("dnsConfig") or {}
    conf.nameservers += list(config.get("nameservers") or [])
    conf.searches += list(config.get("searches") or [])
    for option in config.get("options") or []:
        name = option.get("name")
        if not name:
            continue
        conf.options = [(n, v) for n, v in conf.options if n != name]
        conf.options.append((name, option.get("value")))
    return conf.render()
