"""Forwarding names outside the cluster to the node's upstream resolvers, with a small cache.

`Forwarder.resolve(qname, rdtype, rdclass)` asks each upstream in turn (UDP with EDNS,
again over TCP when the answer comes back truncated; `timeout` seconds each) and keeps
the answer for as long as its smallest TTL allows (at most `max_ttl`; negative answers
for the SOA minimum, at most `negative_ttl`; SERVFAIL and timeouts are not kept). A hit
is handed out with its TTLs lowered by the time it spent in the cache, so a client never
keeps a record longer than the upstream allowed. Identical questions in flight share one
upstream query; at most `max_in_flight` different ones go out at once (beyond that the
answer is SERVFAIL at once rather than an unbounded queue).

Each upstream query uses a fresh socket (random source port) and dnspython checks the
answer's id and question, so spoofed answers are as hard as for any stub resolver.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from api.ipport import parse_ip_port

log = logging.getLogger(__name__)
DEFAULT_PORT = 53


class UpstreamFailed(Exception):
    """No upstream answered; the client gets SERVFAIL."""


@dataclass
class Resolved:
    """An upstream's answer, without the header: what a client response is made of."""

    rcode: int
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)

    def aged(self, seconds: int) -> "Resolved":
        """A copy with every TTL lowered by `seconds` (not below 0)."""
        def age(sets: list[dns.rrset.RRset]) -> list[dns.rrset.RRset]:
            out = []
            for rrset in sets:
                copy = rrset.copy()
                copy.ttl = max(0, rrset.ttl - seconds)
                out.append(copy)
            return out
        return Resolved(self.rcode, age(self.answer), age(self.authority), age(self.additional))


def parse_upstream(text: str) -> tuple[str, int]:
    """`1.1.1.1`, `1.1.1.1:5353`, `[2001:db8::1]:53` or `2001:db8::1` -> (host, port)."""
    return parse_ip_port(text, default_port=DEFAULT_PORT)


def upstreams_from_resolv_conf(text: str) -> list[tuple[str, int]]:
    """The `nameserver` lines of a resolv.conf, in order."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                out.append(parse_upstream(words[1].split("%")[0]))
            except ValueError:
                continue
    return out


class Forwarder:
    def __init__(self, upstreams: list[tuple[str, int]], *, timeout: float = 2.0, cache_size: int = 10_000,
                 max_ttl: int = 300, negative_ttl: int = 30, max_in_flight: int = 1_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.cache_size = cache_size
        self.max_ttl = max_ttl
        self.negative_ttl = negative_ttl
        self.max_in_flight = max_in_flight
        self.clock = clock
        self._cache: OrderedDict[tuple[str, int, int], tuple[float, float, Resolved]] = OrderedDict()
        self._in_flight: dict[tuple[str, int, int], asyncio.Future[Resolved]] = {}
        self.hits = 0
        self.misses = 0

    async def resolve(self, qname: dns.name.Name, rdtype: int, rdclass: int) -> Resolved:
        key = (qname.to_text().lower(), rdtype, rdclass)
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None:
            stored, expires, resolved = cached
            if now < expires:
                self.hits += 1
                self._cache.move_to_end(key)
                return resolved.aged(int(now - stored))
            del self._cache[key]
        self.misses += 1
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if len(self._in_flight) >= self.max_in_flight:
            raise UpstreamFailed(f"{len(self._in_flight)} upstream queries in flight already")
        future: asyncio.Future[Resolved] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            resolved = await self._ask(qname, rdtype, rdclass)
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else UpstreamFailed("cancelled"))
            future.exception()          # retrieved: waiters get it, no "never retrieved" warning
            raise
        finally:
            self._in_flight.pop(key, None)
        future.set_result(resolved)
        self._store(key, resolved)
        return resolved

    async def _ask(self, qname: dns.name.Name, rdtype: int, rdclass: int) -> Resolved:
        if not self.upstreams:
            raise UpstreamFailed("no upstream resolvers configured")
        query = dns.message.make_query(qname, rdtype, rdclass, use_edns=0, payload=1232)
        errors = []
        for host, port in self.upstreams:
            try:
                reply = await dns.asyncquery.udp(query, host, timeout=self.timeout, port=port)
                if reply.flags & dns.flags.TC:
                    reply = await dns.asyncquery.tcp(query, host, timeout=self.timeout, port=port)
            except (dns.exception.DNSException, OSError, EOFError, ValueError) as exc:
                errors.append(f"{host}:{port}: {exc.__class__.__name__} {exc}".strip())
                continue
            if reply.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
                errors.append(f"{host}:{port}: {dns.rcode.to_text(reply.rcode())}")
                continue
            return Resolved(reply.rcode(), list(reply.answer), list(reply.authority), list(reply.additional))
        log.debug("no upstream answered %s %s: %s", qname, dns.rdatatype.to_text(rdtype), "; ".join(errors))
        raise UpstreamFailed("; ".join(errors))

    def _store(self, key: tuple[str, int, int], resolved: Resolved) -> None:
        ttl = self._ttl_of(resolved)
        if ttl <= 0:
            return
        now = self.clock()
        self._cache[key] = (now, now + ttl, resolved)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _ttl_of(self, resolved: Resolved) -> int:
        if resolved.rcode == dns.rcode.NOERROR and resolved.answer:
            return min(min(r.ttl for r in resolved.answer), self.max_ttl)
        if resolved.rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            soas = [r for r in resolved.authority if r.rdtype == dns.rdatatype.SOA]
            if soas:
                return min(soas[0].ttl, soas[0][0].minimum, self.negative_ttl)
        return 0
