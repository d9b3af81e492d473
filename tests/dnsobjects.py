"""For the cluster DNS tests (tests/unit/test_dns_*.py, tests/node/test_cluster_dns.py): Services
and EndpointSlices as plain Kubernetes-shaped dicts, and a fake upstream resolver (the upstream
lies outside the system, so a fake is what the tests run)."""

from __future__ import annotations

import asyncio
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rrset


def service(name: str, ns: str = "default", *, cluster_ip: str | None = "10.96.0.10",
            ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}],
                            **spec}
    if cluster_ip is not None:
        body["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": body}


def endpoint(ip: str, *, ready: bool | None = True, hostname: str | None = None) -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": [ip], "targetRef": {"kind": "Pod", "name": f"pod-{ip}"}}
    if ready is not None:
        ep["conditions"] = {"ready": ready}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(name: str, service_name: str, endpoints: list[dict[str, Any]], ns: str = "default",
                   ports: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]}


class FakeUpstream:
    """An upstream resolver on loopback: example.org A 192.0.2.1 (TTL 60), big.example.org with
    60 addresses (truncated over UDP, whole over TCP), NXDOMAIN with an SOA for anything else."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.queries: list[tuple[str, str]] = []     # (name, "udp"|"tcp")
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self.port = port

    def reply(self, packet: bytes, transport: str) -> bytes:
        query = dns.message.from_wire(packet)
        name = query.question[0].name.to_text().lower()
        self.queries.append((name, transport))
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if name == "example.org.":
            response.answer.append(dns.rrset.from_text("example.org.", 60, "IN", "A", "192.0.2.1"))
        elif name == "big.example.org.":
            response.answer.append(dns.rrset.from_text("big.example.org.", 60, "IN", "A",
                                                       *[f"192.0.2.{i}" for i in range(1, 61)]))
        else:
            response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(dns.rrset.from_text("org.", 900, "IN", "SOA",
                                                          "a0.org. noc.org. 1 1800 900 604800 20"))
        limit = 65535 if transport == "tcp" else 512
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC
            return truncated.to_wire()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        upstream = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport):  # type: ignore[no-untyped-def]
                self.transport = transport

            def datagram_received(self, data, addr):  # type: ignore[no-untyped-def]
                self.transport.sendto(upstream.reply(data, "udp"), addr)

        self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=(self.host, self.port))
        self.port = self._udp.get_extra_info("sockname")[1]

        async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                size = int.from_bytes(await reader.readexactly(2), "big")
                out = self.reply(await reader.readexactly(size), "tcp")
                writer.write(len(out).to_bytes(2, "big") + out)
                await writer.drain()
            finally:
                writer.close()
        self._tcp = await asyncio.start_server(tcp, self.host, self.port)

    async def close(self) -> None:
        if self._udp:
            self._udp.close()
        if self._tcp:
            self._tcp.close()
            await self._tcp.wait_closed()
