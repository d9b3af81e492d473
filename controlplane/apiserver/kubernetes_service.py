"""The `kubernetes` Service in `default`: how pods find the API servers.

Every API server keeps it, as kube-apiserver's bootstrap controller does, with
Kubernetes' "lease" endpoint reconciler:

- each server holds the etcd key `<prefix>/_apiservers/<ip>:<port>` under an etcd
  lease of `ttl` seconds, renewed every ttl/3 (Kubernetes: `/masterleases/<ip>`),
  so a server that dies drops out of the endpoints within `ttl`;
- at start and every `period` seconds it makes sure the Service exists (clusterIP
  the range's first address, port 443 `https` → the API servers' port), and that
  the Endpoints and the EndpointSlice `kubernetes` list the addresses of the live
  keys with the Service's targetPort — written only when they differ, and the
  same for every server (should servers listen on different ports, those on the
  Service's port are listed), so several servers never fight.

Once at start it also gives Services stored without their addresses (created before this
API server allocated any: a cluster upgraded in place) their cluster IP and node ports, by
writing each back unchanged — the Service strategy allocates on that update (Kubernetes'
bootstrap controller runs its repair loops from the same place).

It writes through the Handlers of its own process (it is part of the API server). The
address is the one nodes use too (`--advertise-address`, controlplane/security.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from typing import Any

from api.endpointslice import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from controlplane.storage import AlreadyExists, Conflict, NotFound

log = logging.getLogger(__name__)
NAME, NAMESPACE = "kubernetes", "default"
MANAGED_BY = "skiff-apiserver"


class KubernetesService:
    def __init__(self, handlers: Any, *, address: str, port: int, ttl: int = 15, period: float = 10.0):
        self.handlers = handlers
        self.store = handlers.store
        self.address, self.port = address, port
        self.ttl, self.period = ttl, period
        self.prefix = f"{self.store.prefix}/_apiservers/".encode()
        self.key = self.prefix + f"{address}:{port}".encode()
        self.backfilled = False

    async def run(self) -> None:
        lease_id = 0
        last_reconcile = -1e9
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not lease_id:
                    lease_id = await self.store.grant_lease(self.ttl)
                    await self.store.put_record(self.key, b"", lease=lease_id)
                elif await self.store.refresh_lease(lease_id) <= 0:
                    lease_id = 0
                    continue
                if loop.time() - last_reconcile >= self.period:
                    await self.reconcile()
                    last_reconcile = loop.time()
                    if not self.backfilled:
                        await self.allocate_missing()
                        self.backfilled = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # etcd away, a write lost to another server: next round
                log.warning("kubernetes service: %r", exc)
                lease_id = 0
            await asyncio.sleep(min(self.ttl / 3, self.period))

    async def allocate_missing(self) -> int:
        """Write back every Service lacking the addresses its type needs; how many were."""
        services, _ = await self.handlers.list("Service")
        done = 0
        for svc in services:
            if not needs_addresses(svc):
                continue
            try:
                await self.handlers.update(svc)
                done += 1
            except (Conflict, NotFound):
                continue   # changed or gone meanwhile: that write allocated, or there is nothing to do
            except Exception as exc:   # e.g. the range is full: say so, go on with the others
                meta = svc.get("metadata") or {}
                log.warning("Service %s/%s has no cluster IP and none could be given: %s",
                            meta.get("namespace"), meta.get("name"), exc)
        if done:
            log.info("gave %d Service(s) stored without addresses their cluster IP / node ports", done)
        return done

    async def addresses(self, port: int) -> list[str]:
        """The live API servers' addresses on `port`."""
        out = set()
        for key, _ in await self.store.read_prefix(self.prefix, keys_only=True):
            host, _, key_port = key[len(self.prefix):].decode().rpartition(":")
            if key_port == str(port):
                out.add(host)
        return sorted(out, key=lambda a: ipaddress.ip_address(a))

    async def reconcile(self) -> None:
        service = await self._ensure_service()
        ports = (service.get("spec") or {}).get("ports") or [{}]
        target = ports[0].get("targetPort")
        port = target if isinstance(target, int) else self.port
        addresses = await self.addresses(port)
        await self._ensure({"apiVersion": "v1", "kind": "Endpoints",
                            "metadata": {"name": NAME, "namespace": NAMESPACE,
                                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                            "subsets": [{"addresses": [{"ip": a} for a in addresses],
                                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]})
        await self._ensure({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                            "metadata": {"name": NAME, "namespace": NAMESPACE,
                                         "labels": {SERVICE_NAME_LABEL: NAME, MANAGED_BY_LABEL: MANAGED_BY}},
                            "addressType": "IPv4",
                            "endpoints": [{"addresses": [a], "conditions": {"ready": True, "serving": True,
                                                                             "terminating": False}}
                                          for a in addresses],
                            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})

    async def _ensure_service(self) -> dict[str, Any]:
        try:
            return await self.handlers.get("Service", NAMESPACE, NAME)
        except NotFound:
            pass
        service = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": NAME, "namespace": NAMESPACE,
                                "labels": {"component": "apiserver", "provider": "kubernetes"}},
                   "spec": {"type": "ClusterIP", "clusterIP": self.handlers.services.kubernetes_ip(),
                            "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                       "targetPort": self.port}]}}
        try:
            created = await self.handlers.create(service)
            log.info("created Service default/kubernetes (%s)", service["spec"]["clusterIP"])
            return created
        except AlreadyExists:
            return await self.handlers.get("Service", NAMESPACE, NAME)

    async def _ensure(self, desired: dict[str, Any]) -> None:
        """Create or update `desired` unless the stored object already has its content."""
        meta = desired["metadata"]
        try:
            current = await self.handlers.get(desired["kind"], meta["namespace"], meta["name"])
        except NotFound:
            try:
                await self.handlers.create(desired)
            except AlreadyExists:
                pass
            return
        body = {k: v for k, v in desired.items() if k != "metadata"}
        labels = (current.get("metadata") or {}).get("labels") or {}
        if all(current.get(k) == v for k, v in body.items()) and all(labels.get(k) == v
                                                                       for k, v in meta["labels"].items()):
            return
        updated = {**current, **body, "metadata": {**current["metadata"],
                                                   "labels": {**labels, **meta["labels"]}}}
        try:
            await self.handlers.update(updated)
        except (Conflict, NotFound):
            pass   # another server wrote it meanwhile: the next round compares again


def needs_addresses(svc: dict[str, Any]) -> bool:
    """A Service stored without the cluster IP or node ports its type needs."""
    spec = svc.get("spec") or {}
    kind = spec.get("type", "ClusterIP")
    if kind == "ExternalName":
        return False
    if not spec.get("clusterIP"):
        return True
    return kind in ("NodePort", "LoadBalancer") and any(not p.get("nodePort") for p in spec.get("ports") or [])
