"""The cluster DNS server (agent/dns/server.py) on real loopback sockets: cluster names over
UDP and TCP, forwarding to an upstream resolver (a fake one this test runs on loopback: the
upstream lies outside the system), its cache, and 10,000 random or truncated packets after
which the server still answers."""

from __future__ import annotations

import asyncio
import random
import socket
from typing import AsyncIterator

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from agent.dns.answer import ZoneAnswerer
from agent.dns.forward import Forwarder, parse_upstream, upstreams_from_resolv_conf
from agent.dns.records import RecordIndex
from agent.dns.responder import Responder
from agent.dns.server import DnsServer

from dnsobjects import FakeUpstream, endpoint, endpoint_slice, service


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def server(upstream: FakeUpstream, clock: Clock) -> AsyncIterator[DnsServer]:
    index = RecordIndex("cluster.local")
    index.set_service(service("web", cluster_ip="10.96.0.10"))
    index.set_service(service("db", cluster_ip="None"))
    index.set_slice(endpoint_slice("db-1", "db", [endpoint(f"198.19.{i // 250}.{i % 250 + 1}") for i in range(80)]))
    index.set_service(service("mail", cluster_ip=None, ports=[], type="ExternalName", externalName="example.org"))
    forwarder = Forwarder([("127.0.0.1", upstream.port)], timeout=1.0, clock=clock)
    the_server = DnsServer(Responder(ZoneAnswerer(index), forwarder, clock=clock), host="127.0.0.1", port=0)
    await the_server.start()
    yield the_server
    await the_server.close()


async def udp(server: DnsServer, name: str, rdtype: str = "A") -> dns.message.Message:
    return await dns.asyncquery.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=server.port, timeout=3)


async def tcp(server: DnsServer, name: str, rdtype: str = "A") -> dns.message.Message:
    return await dns.asyncquery.tcp(dns.message.make_query(name, rdtype), "127.0.0.1", port=server.port, timeout=3)


def addresses(message: dns.message.Message) -> set[str]:
    return {r.to_text() for rrset in message.answer if rrset.rdtype == dns.rdatatype.A for r in rrset}


async def test_cluster_names_over_udp_and_tcp(server: DnsServer) -> None:
    for ask in (udp, tcp):
        assert addresses(await ask(server, "web.default.svc.cluster.local")) == {"10.96.0.10"}
        assert (await ask(server, "nope.default.svc.cluster.local")).rcode() == dns.rcode.NXDOMAIN


async def test_truncated_over_udp_then_whole_over_tcp(server: DnsServer) -> None:
    reply = await udp(server, "db.default.svc.cluster.local")
    assert reply.flags & dns.flags.TC
    assert len(addresses(await tcp(server, "db.default.svc.cluster.local"))) == 80


async def test_forwarded_and_cached_with_ttl_running_down(server: DnsServer, upstream: FakeUpstream,
                                                          clock: Clock) -> None:
    reply = await udp(server, "example.org")
    assert addresses(reply) == {"192.0.2.1"} and reply.answer[0].ttl == 60
    assert reply.flags & dns.flags.RA and not reply.flags & dns.flags.AA
    clock.now += 25
    reply = await udp(server, "EXAMPLE.org")
    assert addresses(reply) == {"192.0.2.1"} and reply.answer[0].ttl == 35
    assert reply.question[0].name.to_text() == "EXAMPLE.org."
    assert upstream.queries == [("example.org.", "udp")]           # the second came from the cache
    clock.now += 40                                                 # expired: asked again
    await udp(server, "example.org")
    assert len(upstream.queries) == 2
    # Within a second, the very same question is answered with the very same bytes.
    query = dns.message.make_query("example.org", "A")
    first = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=3)
    clock.now += 0.5
    again = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=3)
    assert again.to_wire() == first.to_wire() and len(upstream.queries) == 2
    # Negative answers are kept for the SOA minimum (20 s here).
    assert (await udp(server, "missing.example.org")).rcode() == dns.rcode.NXDOMAIN
    assert (await udp(server, "missing.example.org")).rcode() == dns.rcode.NXDOMAIN
    assert upstream.queries.count(("missing.example.org.", "udp")) == 1


async def test_upstream_truncation_is_retried_over_tcp(server: DnsServer, upstream: FakeUpstream) -> None:
    reply = await tcp(server, "big.example.org")
    assert len(addresses(reply)) == 60
    assert upstream.queries == [("big.example.org.", "udp"), ("big.example.org.", "tcp")]
    # Too big for the client's UDP datagram: TC, so it asks again over TCP.
    assert (await udp(server, "big.example.org")).flags & dns.flags.TC


async def test_external_name_is_chased_upstream(server: DnsServer) -> None:
    reply = await udp(server, "mail.default.svc.cluster.local")
    assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert addresses(reply) == {"192.0.2.1"}


async def test_no_upstream_answers_servfail(upstream: FakeUpstream) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
        closed.bind(("127.0.0.1", 0))
        dead_port = closed.getsockname()[1]
    forwarder = Forwarder([("127.0.0.1", dead_port)], timeout=0.5)
    the_server = DnsServer(Responder(ZoneAnswerer(RecordIndex()), forwarder), host="127.0.0.1", port=0)
    await the_server.start()
    try:
        assert (await udp(the_server, "example.org")).rcode() == dns.rcode.SERVFAIL
    finally:
        await the_server.close()


def fuzz_packets(count: int, seed: int) -> list[bytes]:
    """Half random bytes of random length, half valid queries cut short or with bytes flipped."""
    rng = random.Random(seed)
    valid = [dns.message.make_query(name, rdtype, use_edns=rng.random() < 0.5).to_wire()
             for name in ("web.default.svc.cluster.local", "db.default.svc.cluster.local", "example.org",
                          "10.0.96.10.in-addr.arpa") for rdtype in ("A", "SRV", "PTR", "AAAA")]
    packets = []
    for i in range(count):
        if i % 2 == 0:
            packets.append(rng.randbytes(rng.randrange(0, 600)))
            continue
        packet = bytearray(rng.choice(valid))
        if rng.random() < 0.5:
            del packet[rng.randrange(0, len(packet)):]
        for _ in range(rng.randrange(0, 4)):
            if packet:
                packet[rng.randrange(len(packet))] = rng.randrange(256)
        packets.append(bytes(packet))
    return packets


async def test_ten_thousand_random_or_truncated_packets_then_still_answering(server: DnsServer) -> None:
    seed = random.randrange(2 ** 32)
    packets = fuzz_packets(10_000, seed)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setblocking(False)
    try:
        for i in range(0, len(packets), 50):
            for packet in packets[i:i + 50]:
                try:
                    sender.sendto(packet, ("127.0.0.1", server.port))
                except BlockingIOError:
                    pass
            await asyncio.sleep(0)               # let the server read what was sent
    finally:
        sender.close()
    # The same bytes over TCP, several to a connection, some connections cut mid-message.
    for i in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for packet in packets[i * 10:(i + 1) * 10]:
            writer.write(len(packet).to_bytes(2, "big") + packet)
        writer.write(b"\x00\x30abc")
        await writer.drain()
        writer.close()
    responder = server.responder
    assert responder.malformed + responder.dropped > 0, f"seed {seed}: nothing was found malformed"
    reply = await udp(server, "web.default.svc.cluster.local")
    assert addresses(reply) == {"10.96.0.10"}, f"seed {seed}"
    assert addresses(await tcp(server, "web.default.svc.cluster.local")) == {"10.96.0.10"}, f"seed {seed}"


def test_responder_never_raises_on_fuzz() -> None:
    """The same 10,000 packets straight into the responder: each is answered, dropped or forwarded."""
    responder = Responder(ZoneAnswerer(RecordIndex()), Forwarder([]))
    for i, packet in enumerate(fuzz_packets(10_000, 7)):
        responder.respond(packet, tcp=bool(i % 2))


def test_upstreams_from_resolv_conf_and_flags() -> None:
    text = "# comment\nnameserver 10.255.255.53\nnameserver ::1\nsearch example.org\nnameserver bogus\n"
    assert upstreams_from_resolv_conf(text) == [("10.255.255.53", 53), ("::1", 53)]
    assert parse_upstream("198.18.0.5:5353") == ("198.18.0.5", 5353)
    assert parse_upstream("[2001:db8::1]:54") == ("2001:db8::1", 54)
    with pytest.raises(ValueError, match=r"expected IP\[:PORT\]"):
        parse_upstream("dns.example.org")
