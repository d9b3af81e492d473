"""The agent's cluster DNS: a node-local server answering this node's pods.

Why node-local (as NodeLocal DNSCache, not a Deployment behind a Service as kube-dns):
every pod's resolver talks to its own node, so a lookup never crosses the LAN, never
depends on the service proxy or on another node being up, and the load spreads with
the pods. The agent already follows the API; two more informers (Services and
EndpointSlices, which the node's service proxy needs as well) keep the record index
current, so each answer is a dictionary lookup in the agent's own process.

Where it listens: the pod bridge's gateway address (the first address of the node's
podCIDR, e.g. 198.19.1.1) port 53, UDP and TCP, in the node's network namespace. Every
pod on the node reaches it directly over the bridge, hostNetwork pods reach it as a
local address, and it is not bound on the node's LAN address. The gateway exists once
the node has a podCIDR and the pod network is set up; until then pods wait for the
network anyway (and a hostNetwork pod gets the node's resolv.conf, as ClusterFirst does
on a node without cluster DNS). If the port cannot be bound (another server holds
port 53 on every address), the error is logged and binding is retried every 5 s.

Upstreams: `--dns-upstream` (IP[:port], comma-separated), else the nameservers of the
node's /etc/resolv.conf - loopback ones included: the agent runs in the node's own
network namespace, so a local resolver (systemd-resolved's 127.0.0.53) is reachable.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from controlplane.client import Client
from controlplane.client.informer import Informer
from api.tasks import run_together

from .answer import ZoneAnswerer
from .forward import Forwarder, upstreams_from_resolv_conf
from .records import RecordIndex
from .resolvconf import pod_resolv_conf
from .responder import Responder
from .server import DnsServer

log = logging.getLogger(__name__)
DNS_PORT = 53
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
BIND_RETRY_SECONDS = 5.0
# Questions parsed and answered from scratch per second, at most (agent/dns/responder.py): about
# a third of a core's worth (bench/cluster_dns.py, "no answer cache"), so the agent's own work keeps
# the rest. Repeated questions, answered from the cache, do not count.
MAX_PARSED_PER_SECOND = 1_000


class ClusterDNS:
    """Informers -> index; the server on the pod gateway once the network is up; pods' resolv.conf."""

    def __init__(self, client: Client, *, cluster_domain: str = "cluster.local",
                 upstreams: list[tuple[str, int]] | None = None, port: int = DNS_PORT,
                 host_resolv_conf: Path = HOST_RESOLV_CONF, services: Informer | None = None,
                 endpoint_slices: Informer | None = None) -> None:
        self.cluster_domain = cluster_domain.strip(".")
        self.port = port
        self.host_resolv_conf = host_resolv_conf
        self._given_upstreams = upstreams
        # Informers the agent shares (the service proxy reads the same kinds) are run by their
        # owner; the ones made here are run by run().
        self.services = services or Informer(client, "services")
        self.endpoint_slices = endpoint_slices or Informer(client, "endpointslices")
        self._own_informers = ([self.services] if services is None else []) + \
            ([self.endpoint_slices] if endpoint_slices is None else [])
        self.index = RecordIndex(self.cluster_domain)
        self.forwarder = Forwarder(list(upstreams or []))
        self.answerer = ZoneAnswerer(self.index)
        self.responder = Responder(self.answerer, self.forwarder, max_parsed_per_second=MAX_PARSED_PER_SECOND)
        self.server: DnsServer | None = None
        self.address: str | None = None        # what pods are told, once the gateway exists
        index = self.index
        self.services.add_handlers(on_add=index.set_service, on_update=lambda old, new: index.set_service(new),
                                   on_delete=index.delete_service)
        self.endpoint_slices.add_handlers(on_add=index.set_slice, on_update=lambda old, new: index.set_slice(new),
                                          on_delete=index.delete_slice)

    async def resolv_conf(self, pod: dict[str, Any]) -> str:
        """The pod's /etc/resolv.conf for its dnsPolicy and dnsConfig (agent/dns/resolvconf.py)."""
        host = await asyncio.to_thread(_read_or_empty, self.host_resolv_conf)
        return pod_resolv_conf(pod, host_resolv=host, cluster_dns=self.address,
                               cluster_domain=self.cluster_domain)

    async def run(self, network: Any) -> None:
        """Follow Services and EndpointSlices; serve on `network`'s gateway once it is up.

        `network` is the agent's PodNetwork (agent/podnetwork.py): `wait_ready()`, `gateway`."""
        tasks = [asyncio.create_task(informer.run(), name=f"dns-{informer.kind}-informer")
                 for informer in self._own_informers]
        tasks.append(asyncio.create_task(self._serve(network), name="dns-server"))
        try:
            await run_together(tasks)
        finally:
            if self.server is not None:
                await self.server.close()
                self.server = None

    async def _serve(self, network: Any) -> None:
        await network.wait_ready()
        host = str(network.gateway)
        self.address = host
        self.answerer.address = host
        if self._given_upstreams is None:
            text = await asyncio.to_thread(_read_or_empty, self.host_resolv_conf)
            self.forwarder.upstreams = [u for u in upstreams_from_resolv_conf(text) if u != (host, self.port)]
            if not self.forwarder.upstreams:
                log.warning("cluster DNS: no upstream resolvers in %s; names outside %s will get SERVFAIL "
                            "(set --dns-upstream)", self.host_resolv_conf, self.cluster_domain)
        while True:
            server = DnsServer(self.responder, host=host, port=self.port)
            try:
                await server.start()
            except OSError as exc:
                log.error("cluster DNS cannot listen on %s:%d: %s; retrying in %.0fs", host, self.port, exc,
                          BIND_RETRY_SECONDS)
                await asyncio.sleep(BIND_RETRY_SECONDS)
                continue
            self.server = server
            log.info("cluster DNS for %s on %s:%d, upstreams %s", self.cluster_domain, host, self.port,
                     ", ".join(f"{h}:{p}" for h, p in self.forwarder.upstreams) or "none")
            await asyncio.Event().wait()          # until cancelled; run() closes the server


def _read_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
