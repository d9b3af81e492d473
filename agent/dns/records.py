"""The cluster's DNS records, kept in memory from Services and EndpointSlices.

`service_records()` is the pure rule (Kubernetes' DNS specification, as CoreDNS's
kubernetes plugin serves it) turning one Service and its EndpointSlices into records:

    <svc>.<ns>.svc.<zone>                  A/AAAA  the cluster IP(s); for a headless Service
                                                   (clusterIP None) every ready endpoint address
    _<port>._<proto>.<svc>.<ns>.svc.<zone> SRV     per named port: 0 100 <port> <svc>.<ns>.svc.<zone>;
                                                   headless: one per ready endpoint, its own name
    <ep>.<svc>.<ns>.svc.<zone>             A/AAAA  headless only: an endpoint's `hostname` (a pod's
                                                   spec.hostname when its spec.subdomain names the
                                                   Service) or its address with dashes (10-244-1-5)
    <svc>.<ns>.svc.<zone>                  CNAME   type ExternalName: spec.externalName
    <reverse of a cluster IP>              PTR     <svc>.<ns>.svc.<zone>
    <reverse of a headless endpoint>       PTR     <ep>.<svc>.<ns>.svc.<zone>

`RecordIndex` holds the records of every Service, updated one Service at a time as
informer events arrive (`set_service`, `set_slice`, and their deletes): each Service's
records are recomputed and swapped, so a lookup is one dict access whatever the
cluster's size. Names are lowercase, absolute (trailing dot). Ancestors of a name
(`<ns>.svc.<zone>`) exist without records (empty non-terminals: NODATA, not NXDOMAIN).
`version` goes up with every change that alters a record (a Service or slice update that
leaves its records as they were changes nothing, not even `version`); the server's cache
of encoded answers is checked against it, or against the identity of the one name's
records an answer was made from (`current`).

Not from this index: `<a-b-c-d>.<ns>.pod.<zone>` (answered from the name itself, as
CoreDNS's `pods insecure` does) and the zone's own SOA/NS (agent/dns/answer.py).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str           # absolute, lowercase


@dataclass
class NameRecords:
    """The records at one owner name."""

    addresses: list[str] = field(default_factory=list)      # A and AAAA, as text
    srv: list[Srv] = field(default_factory=list)
    cname: str | None = None
    # rdtype -> the wire library's rdata objects, made on first use (agent/dns/answer.py); not part
    # of what the records are (equality), only a memo of them.
    built: dict[int, list[Any]] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class ServiceRecords:
    """What one Service contributes: forward names and reverse (IP -> name) pointers."""

    names: dict[str, NameRecords] = field(default_factory=dict)
    ptr: list[tuple[str, str]] = field(default_factory=list)   # (ip, target name)

    def name(self, owner: str) -> NameRecords:
        records = self.names.get(owner)
        if records is None:
            records = self.names[owner] = NameRecords()
        return records


def absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def endpoint_label(address: str) -> str:
    """An endpoint's name when it has no hostname: its address with dashes (CoreDNS's rule)."""
    return address.replace(".", "-").replace(":", "-")


def _is_ready(endpoint: dict[str, Any], publish_not_ready: bool) -> bool:
    # EndpointSlice API: a nil `ready` is to be read as ready.
    return publish_not_ready or ((endpoint.get("conditions") or {}).get("ready") is not False)


def _valid_ip(text: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        return None


def service_records(service: dict[str, Any], slices: Iterable[dict[str, Any]], zone: str) -> ServiceRecords:
    """The records of one Service (plain Kubernetes-shaped dicts) in `zone` (absolute)."""
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    base = absolute(f"{meta['name']}.{meta['namespace']}.svc.{zone}")
    out = ServiceRecords()
    here = out.name(base)
    if spec.get("type") == "ExternalName":
        if spec.get("externalName"):
            here.cname = absolute(spec["externalName"])
        return out
    ports = [p for p in spec.get("ports") or [] if p.get("name")]
    if spec.get("clusterIP") != "None":
        ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and _valid_ip(ip)]
        for ip in ips:
            here.addresses.append(_valid_ip(ip) or ip)
            out.ptr.append((_valid_ip(ip) or ip, base))
        if ips:
            for port in ports:
                owner = f"_{port['name']}._{str(port.get('protocol') or 'TCP').lower()}.{base}"
                out.name(owner).srv.append(Srv(0, 100, int(port["port"]), base))
        return out
    # Headless: the ready endpoints themselves.
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    targets: list[tuple[str, list[dict[str, Any]]]] = []     # (endpoint name, the slice's ports)
    for slice_ in slices:
        slice_ports = [p for p in slice_.get("ports") or [] if p.get("name") and p.get("port")]
        for endpoint in slice_.get("endpoints") or []:
            if not _is_ready(endpoint, publish_not_ready):
                continue
            for address in endpoint.get("addresses") or []:
                ip = _valid_ip(address)
                if ip is None:
                    continue
                label = (endpoint.get("hostname") or endpoint_label(ip)).lower()
                owner = f"{label}.{base}"
                if ip not in here.addresses:
                    here.addresses.append(ip)
                if ip not in out.name(owner).addresses:
                    out.name(owner).addresses.append(ip)
                    out.ptr.append((ip, owner))
                    targets.append((owner, slice_ports))
    for owner, slice_ports in targets:
        for port in slice_ports:
            srv_owner = f"_{port['name']}._{str(port.get('protocol') or 'TCP').lower()}.{base}"
            out.name(srv_owner).srv.append(Srv(0, 0, int(port["port"]), owner))
    for records in out.names.values():           # weights share 100 among a name's targets
        if records.srv and records.srv[0].weight == 0:
            weight = max(1, 100 // len(records.srv))
            records.srv = [Srv(s.priority, weight, s.port, s.target) for s in records.srv]
    return out


@dataclass
class Lookup:
    """What the index knows of a name: its records, or only that it exists (NODATA)."""

    exists: bool
    records: NameRecords | None = None


class RecordIndex:
    """Every Service's records, answerable in O(1); fed from informer events."""

    def __init__(self, zone: str = "cluster.local") -> None:
        self.zone = absolute(zone)
        self.version = 0
        self._services: dict[tuple[str, str], dict[str, Any]] = {}
        # (namespace, service name) -> slice name -> slice: the label names the Service.
        self._slices: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._slice_owner: dict[tuple[str, str], str] = {}      # (namespace, slice name) -> service name
        self._contributed: dict[tuple[str, str], ServiceRecords] = {}
        self._names: dict[str, NameRecords] = {}
        self._ancestors: Counter[str] = Counter()
        self._ptr: dict[str, dict[str, None]] = {}             # ip -> target names (ordered set)

    # -- events --------------------------------------------------------------------------

    # Event handlers shaped like agent/proxy/syncer.py's (the `duplicates` tool pairs them): each
    # component keeps its own index of Services and slices, as kube-proxy and CoreDNS do.
    def set_service(self, service: dict[str, Any]) -> None:
        key = _key(service)
        self._services[key] = service
        self._rebuild(key)

    def delete_service(self, service: dict[str, Any]) -> None:
        key = _key(service)
        self._services.pop(key, None)
        self._rebuild(key)

    def set_slice(self, slice_: dict[str, Any]) -> None:
        meta = slice_.get("metadata") or {}
        ns, name = meta.get("namespace", ""), meta.get("name", "")
        owner = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL, "")
        previous = self._slice_owner.get((ns, name))
        if previous is not None and previous != owner:       # relabelled: leave the old Service
            self._remove_slice(ns, name)
        if not owner:
            return
        self._slice_owner[(ns, name)] = owner
        self._slices.setdefault((ns, owner), {})[name] = slice_
        self._rebuild((ns, owner))

    def delete_slice(self, slice_: dict[str, Any]) -> None:
        meta = slice_.get("metadata") or {}
        self._remove_slice(meta.get("namespace", ""), meta.get("name", ""))

    # -- lookups ---------------------------------------------------------------------------

    def lookup(self, name: str) -> Lookup:
        """`name` lowercase and absolute."""
        records = self._names.get(name)
        if records is not None:
            return Lookup(True, records)
        return Lookup(name in self._ancestors)

    def current(self, name: str) -> NameRecords | None:
        """The records object published for `name` now (identity tells a cached answer is fresh)."""
        return self._names.get(name)

    def pointers(self, ip: str) -> list[str]:
        """The names a cluster IP or headless endpoint address stands for."""
        return list(self._ptr.get(ip, ()))

    @property
    def service_count(self) -> int:
        return len(self._services)

    # -- inside ----------------------------------------------------------------------------

    def _remove_slice(self, ns: str, name: str) -> None:
        owner = self._slice_owner.pop((ns, name), None)
        if owner is None:
            return
        slices = self._slices.get((ns, owner), {})
        slices.pop(name, None)
        if not slices:
            self._slices.pop((ns, owner), None)
        self._rebuild((ns, owner))

    def _rebuild(self, key: tuple[str, str]) -> None:
        service = self._services.get(key)
        new = service_records(service, self._slices.get(key, {}).values(), self.zone) if service else None
        old = self._contributed.get(key)
        if new == old:
            # Unchanged records (an endpoint of a Service with a cluster IP changed, say): the
            # published objects stay, and so do the answers cached from them.
            return
        if old is not None:
            self._withdraw(self._contributed.pop(key))
        if new is not None:
            self._contributed[key] = new
            self._publish(new)
        self.version += 1

    def _publish(self, records: ServiceRecords) -> None:
        for owner, data in records.names.items():
            self._names[owner] = data
            for ancestor in self._between(owner):
                self._ancestors[ancestor] += 1
        for ip, target in records.ptr:
            self._ptr.setdefault(ip, {})[target] = None

    def _withdraw(self, records: ServiceRecords) -> None:
        for owner in records.names:
            self._names.pop(owner, None)
            for ancestor in self._between(owner):
                self._ancestors[ancestor] -= 1
                if self._ancestors[ancestor] <= 0:
                    del self._ancestors[ancestor]
        for ip, target in records.ptr:
            targets = self._ptr.get(ip)
            if targets is not None:
                targets.pop(target, None)
                if not targets:
                    del self._ptr[ip]

    def _between(self, owner: str) -> Iterable[str]:
        """Every proper ancestor of `owner` inside the zone, the apex excluded (`<ns>.svc.<zone>`,
        `svc.<zone>`, and for an SRV owner `<svc>.<ns>.svc.<zone>` and `_tcp.<svc>...`)."""
        name = owner
        while True:
            _, _, name = name.partition(".")
            if not name or name == self.zone or not name.endswith(self.zone):
                return
            yield name


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")
