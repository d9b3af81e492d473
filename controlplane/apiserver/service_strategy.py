"""The Service strategy: cluster IPs and node ports given, kept and released with the Service.

`prepare_for_create` fills Kubernetes' defaults; `prepare_for_update` keeps what
was allocated when an update leaves it out (an apply whose manifest never named
a clusterIP, a port list replaced whole without its nodePorts), as Kubernetes'
`patchAllocatedValues` does; `validate_update` forbids changing the cluster IP;
`reserve` decides what the write claims and releases (service_alloc.py), and
`release` what a delete gives back. The handlers call these hooks for every
kind; only this strategy has anything to claim.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from api.errors import FieldError, ValidationFailed, forbidden, invalid
from controlplane.apiserver.errors import FailedPrecondition
from controlplane.apiserver.service_alloc import Holder, Pool, ServiceNetwork, cluster_ip_pool, holder_of, \
    node_port_pool
from controlplane.apiserver.strategy import Reservation, Strategy
from controlplane.storage import Store
from controlplane.storage.store import Claims

NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def _spec(obj: dict[str, Any] | None) -> dict[str, Any]:
    return (obj or {}).get("spec") or {}


def _has_ip(spec: dict[str, Any]) -> bool:
    return bool(spec.get("clusterIP")) and spec.get("clusterIP") != "None"


def _node_ports(spec: dict[str, Any]) -> set[int]:
    if spec.get("type", "ClusterIP") not in NODE_PORT_TYPES:
        return set()
    return {p["nodePort"] for p in spec.get("ports") or [] if p.get("nodePort")}


class ServiceReservation(Reservation):
    """What one Service write takes and gives back, and what a lost claim means."""

    def __init__(self, holder: Holder, *, wants: list[tuple[Pool, int, str, bool]],
                 frees: list[tuple[Pool, int]]):
        self.holder = holder
        self.wants = wants       # (pool, value, field path, requested by the user)
        self.frees = frees
        super().__init__(Claims(take={pool.key(v): holder.encode() for pool, v, _, _ in wants},
                                release=[pool.key(v) for pool, v in frees]))
        for pool, value, _, requested in wants:
            if not requested:
                pool.picking.add(value)

    def lost(self, taken: dict[bytes, bytes]) -> None:
        errors = []
        for pool, value, path, requested in self.wants:
            raw = taken.get(pool.key(value))
            if raw is None:
                continue
            holder = Holder.decode(raw)
            pool.remember(value, holder)
            if requested:
                what = "IP" if pool.kind == "clusterips" else "port"
                shown: Any = pool.show(value) if pool.kind == "clusterips" else value
                errors.append(invalid(path, shown, f"provided {what} is already allocated to Service {holder}"))
        if errors:
            raise ValidationFailed(errors, kind="Service", name=self.holder.name)

    def finish(self, ok: bool) -> None:
        for pool, value, _, _requested in self.wants:
            pool.picking.discard(value)
            if ok:
                pool.remember(value, self.holder)
        if ok:
            for pool, value in self.frees:
                pool.remember(value, None)


class ServiceStrategy(Strategy):
    def __init__(self, store: Store, network: ServiceNetwork):
        self.network = network
        self.range = network.network()
        self.ips = cluster_ip_pool(store, network)
        self.ports = node_port_pool(store, network)

    # -- defaults and what updates keep ---------------------------------------------------

    def prepare_for_create(self, obj: dict[str, Any]) -> None:
        super().prepare_for_create(obj)
        spec = obj.setdefault("spec", {})
        if spec.get("type", "ClusterIP") != "ExternalName":
            spec.setdefault("internalTrafficPolicy", "Cluster")
            if not spec.get("clusterIP") and spec.get("clusterIPs"):
                spec["clusterIP"] = spec["clusterIPs"][0]
        if spec.get("type") in NODE_PORT_TYPES:
            spec.setdefault("externalTrafficPolicy", "Cluster")

    def prepare_for_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_spec, spec = _spec(old), new.setdefault("spec", {})
        if spec.get("type", "ClusterIP") == "ExternalName":
            # Leaving the cluster IP behind, as Kubernetes drops type-dependent fields.
            if spec.get("clusterIP") in (None, old_spec.get("clusterIP")):
                for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
                    spec.pop(key, None)
            return
        if not spec.get("clusterIP") and old_spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
            spec["clusterIPs"] = old_spec.get("clusterIPs") or [old_spec["clusterIP"]]
        for key in ("ipFamilies", "ipFamilyPolicy", "internalTrafficPolicy"):
            if key not in spec and key in old_spec and spec.get("clusterIP") == old_spec.get("clusterIP"):
                spec[key] = old_spec[key]
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if spec.get("type") in NODE_PORT_TYPES:
            spec.setdefault("externalTrafficPolicy", old_spec.get("externalTrafficPolicy") or "Cluster")
            if old_spec.get("type") in NODE_PORT_TYPES:
                old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                             for p in old_spec.get("ports") or []}
                for port in spec.get("ports") or []:
                    if not port.get("nodePort"):
                        carried = old_ports.get((port.get("port"), port.get("protocol", "TCP")))
                        if carried:
                            port["nodePort"] = carried

    def validate_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        old_spec, spec = _spec(old), _spec(new)
        if spec.get("type", "ClusterIP") == "ExternalName" or not old_spec.get("clusterIP"):
            return
        if spec.get("clusterIP") != old_spec.get("clusterIP"):
            raise ValidationFailed(invalid("spec.clusterIP", spec.get("clusterIP") or "",
                                           "field is immutable"), kind="Service", name=holder_of(new).name)

    # -- allocation -------------------------------------------------------------------------

    async def reserve(self, new: dict[str, Any], old: dict[str, Any] | None
                      ) -> tuple[dict[str, Any], Reservation | None]:
        spec, old_spec = _spec(new), _spec(old)
        kind = spec.get("type", "ClusterIP")
        errors: list[FieldError] = []
        wants: list[tuple[Pool, int, str, bool]] = []
        frees: list[tuple[Pool, int]] = []
        out = {**new, "spec": copy.deepcopy(spec)}
        out_spec = out["spec"]
        ip = spec.get("clusterIP")
        old_ip = old_spec.get("clusterIP") if _has_ip(old_spec) else None
        if kind == "ExternalName":
            if ip and old is None:
                errors.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        elif ip == "None":
            out_spec["clusterIPs"] = ["None"]
        elif ip and ip == old_ip:
            pass
        elif ip:
            value = int(ipaddress.IPv4Address(ip)) if ipaddress.ip_address(ip).version == 4 else -1
            if not self.ips.contains(value):
                errors.append(invalid("spec.clusterIP", ip, f"provided IP is not in the valid range. The range "
                                                            f"of valid IPs is {self.range}"))
            else:
                wants.append((self.ips, value, "spec.clusterIP", True))
        else:
            await self.ips.load()
            value = self.ips.pick(set())
            if value is None:
                await self.ips.load(force=True)   # other API servers may have released some
                value = self.ips.pick(set())
            if value is None:
                raise FailedPrecondition(f"failed to allocate a cluster IP: the range {self.range} is full")
            wants.append((self.ips, value, "spec.clusterIP", False))
            out_spec["clusterIP"] = self.ips.show(value)
        if kind != "ExternalName" and out_spec.get("clusterIP"):
            out_spec["clusterIPs"] = [out_spec["clusterIP"]]
            if out_spec["clusterIP"] != "None" or "ipFamilies" not in out_spec:
                out_spec.setdefault("ipFamilies", ["IPv4"])
                out_spec.setdefault("ipFamilyPolicy", "SingleStack")
        if old_ip and old_ip != out_spec.get("clusterIP"):
            frees.append((self.ips, int(ipaddress.IPv4Address(old_ip))))

        held = _node_ports(old_spec)
        used: set[int] = set()
        if kind in NODE_PORT_TYPES:
            for i, port in enumerate(out_spec.get("ports") or []):
                number = port.get("nodePort")
                path = f"spec.ports[{i}].nodePort"
                if number:
                    if number not in held and number not in used:
                        if not self.ports.contains(number):
                            first, last = self.network.ports()
                            errors.append(invalid(path, number, f"provided port is not in the valid range. The "
                                                                f"range of valid ports is {first}-{last}"))
                        else:
                            wants.append((self.ports, number, path, True))
                    used.add(number)
                    continue
                await self.ports.load()
                number = self.ports.pick(used | held)
                if number is None:
                    await self.ports.load(force=True)
                    number = self.ports.pick(used | held)
                if number is None:
                    raise FailedPrecondition(f"failed to allocate a node port: the range "
                                             f"{self.network.node_port_range} is full")
                port["nodePort"] = number
                wants.append((self.ports, number, path, False))
                used.add(number)
        frees += [(self.ports, n) for n in sorted(held - used)]
        if errors:
            raise ValidationFailed(errors, kind="Service", name=holder_of(new).name)
        if not wants and not frees:
            return out, None
        holder = holder_of(old) if old is not None else holder_of(new)
        return out, ServiceReservation(holder, wants=wants, frees=frees)

    def release(self, obj: dict[str, Any]) -> Reservation | None:
        spec = _spec(obj)
        frees = [(self.ports, n) for n in sorted(_node_ports(spec))]
        if _has_ip(spec) and spec.get("type", "ClusterIP") != "ExternalName":
            frees.append((self.ips, int(ipaddress.IPv4Address(spec["clusterIP"]))))
        return ServiceReservation(holder_of(obj), wants=[], frees=frees) if frees else None
