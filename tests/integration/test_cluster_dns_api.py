"""The agent's cluster DNS (agent/dns/node.py ClusterDNS) following a real API server: a Service
created, changed and deleted through the API is answered, changed and gone within moments.

The server listens on loopback here (a port of its own): the node's pod network, whose
gateway it uses in an agent, is tested on real namespaces in tests/node/test_cluster_dns.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Awaitable, Callable

import dns.asyncquery
import dns.message
import dns.rcode

from agent.dns.node import ClusterDNS


class Loopback:
    """What ClusterDNS needs of the pod network: ready, and the address to serve on."""

    gateway = "127.0.0.1"

    async def wait_ready(self) -> None:
        return None


async def answer(port: int, name: str) -> tuple[int, set[str]]:
    reply = await dns.asyncquery.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=2)
    return reply.rcode(), {r.to_text() for rrset in reply.answer for r in rrset}


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"{what}: not seen before the deadline"
        await asyncio.sleep(0.05)


async def test_services_from_the_api_are_answered(client, namespace, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\nsearch example.org\n")
    cluster_dns = ClusterDNS(client, cluster_domain="cluster.local", upstreams=[], port=0, host_resolv_conf=resolv)
    # port 0: the server picks a free port; learn it once it listens.
    task = asyncio.create_task(cluster_dns.run(Loopback()))
    try:
        async def listening() -> bool:
            return cluster_dns.server is not None
        await until(listening, "the server listening")
        port = cluster_dns.server.port
        name = f"web.{namespace}.svc.cluster.local"
        await client.create({"apiVersion": "v1", "kind": "Service",
                                       "metadata": {"name": "web", "namespace": namespace},
                                       "spec": {"clusterIP": "10.96.7.7", "ports": [{"name": "http", "port": 80}]}})
        async def answered() -> bool:
            return await answer(port, name) == (dns.rcode.NOERROR, {"10.96.7.7"})
        await until(answered, f"{name} answered")
        await client.delete("services", "web", namespace)

        async def gone() -> bool:
            return await answer(port, name) == (dns.rcode.NXDOMAIN, set())
        await until(gone, f"{name} gone")
        # Pods get the server's address in their resolv.conf.
        pod = {"metadata": {"name": "p", "namespace": namespace}, "spec": {}}
        assert (await cluster_dns.resolv_conf(pod)).startswith(
            f"nameserver 127.0.0.1\nsearch {namespace}.svc.cluster.local svc.cluster.local cluster.local example.org")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert cluster_dns.server is None                      # closed with the task
