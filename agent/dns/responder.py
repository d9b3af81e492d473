"""A DNS message in, a DNS message out: parsing, errors, truncation and the answer cache.

The transports (agent/dns/server.py) hand every packet to `Responder`:

    cached(packet)          the encoded answer to exactly these bytes, if we have it (hot path)
    respond(packet, tcp=)   bytes to send, None (drop), or a `Pending` to finish with `forward()`
    forward(pending, tcp=)  bytes, once the upstream answered (or SERVFAIL)

Bad input never raises: fewer than 12 bytes, or a message with the QR bit (an answer,
which a server must not answer back), is dropped; anything dnspython cannot parse, or a
query without exactly one question, gets FORMERR with the query's id; other opcodes
NOTIMP; zone transfers and classes other than IN, REFUSED.

Load shedding. Parsing and building an answer costs a few hundred microseconds of the
agent's event loop (dnspython), a cached answer about a microsecond. So with
`max_parsed_per_second` set (the agent sets it), queries beyond that many parses in a second
are dropped unanswered - the client retries - while cached answers keep flowing: a pod
flooding its node with ever-new names cannot starve the agent's other work.

Hot path. A cluster name's answer depends only on the query's bytes after the 2-byte
id (question, flags, EDNS) and on the record index. So a local answer is encoded once
and kept under those bytes; a repeat costs a dict lookup and patching in the id. An
entry is good while the index's version is the one it was made at or, for an answer
made from one name's records alone (a Service's A record: the common case), while the
index still publishes that very records object - so churn elsewhere in the cluster does
not empty the cache. The cache is emptied when it reaches `cache_size` entries. A
forwarded answer's bytes are reused for one second at most (its TTLs are then off by
under a second, their own granularity); after that the forwarder's cache
(agent/dns/forward.py) answers with TTLs counted down again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from .answer import EDNS_PAYLOAD, ZoneAnswerer
from .forward import Forwarder, UpstreamFailed

log = logging.getLogger(__name__)
UDP_DEFAULT_SIZE = 512
TCP_MAX_SIZE = 65535
HEADER = 12
FLAG_QR = 0x80                 # in the third byte of the header
OPCODE_RD_BITS = 0x7800 | dns.flags.RD
FORWARDED_HOLD = 1.0           # seconds a forwarded answer's bytes are reused as they are


@dataclass
class Pending:
    """A query to finish upstream: the whole question, or an ExternalName's target."""

    query: dns.message.Message
    packet: bytes
    chase: dns.name.Name | None = None
    partial: dns.message.Message | None = None     # the CNAME answer to extend


class Responder:
    def __init__(self, answerer: ZoneAnswerer, forwarder: Forwarder, *, cache_size: int = 10_000,
                 max_parsed_per_second: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.answerer = answerer
        self.forwarder = forwarder
        self.cache_size = cache_size
        self.max_parsed_per_second = max_parsed_per_second     # 0: no limit
        self.clock = clock
        self._window = (0.0, 0)                                # (second it started, messages parsed in it)
        self.shed = 0
        self._index = answerer.index
        # query bytes after the id -> (answer bytes after the id, index version, name, records,
        # expiry: 0 for a cluster answer, a clock time for a forwarded one)
        self._cache: dict[bytes, tuple[bytes, int, str | None, object, float]] = {}
        self.dropped = 0
        self.malformed = 0

    def cached(self, packet: bytes) -> bytes | None:
        entry = self._cache.get(packet[2:])
        if entry is None:
            return None
        body, version, name, records, expires = entry
        if expires:                                     # a forwarded answer: good for a moment
            if self.clock() >= expires:
                del self._cache[packet[2:]]
                return None
        elif version != self._index.version and (name is None or self._index.current(name) is not records):
            del self._cache[packet[2:]]
            return None
        return packet[:2] + body

    def respond(self, packet: bytes, *, tcp: bool) -> bytes | Pending | None:
        if len(packet) < HEADER or packet[2] & FLAG_QR:
            self.dropped += 1
            return None
        if (packet[2] >> 3) & 0xF != dns.opcode.QUERY:       # UPDATE, NOTIFY, ...: before parsing them
            return self._header_only(packet, dns.rcode.NOTIMP)
        if self.max_parsed_per_second and not self._may_parse():
            self.shed += 1
            return None
        try:
            query = dns.message.from_wire(packet)
        except Exception:      # noqa: BLE001 - any parse failure is the sender's: FORMERR, never a crash
            self.malformed += 1
            return self._header_only(packet, dns.rcode.FORMERR)
        if len(query.question) != 1:
            self.malformed += 1
            return self._error(query, packet, dns.rcode.FORMERR)
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN or question.rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return self._error(query, packet, dns.rcode.REFUSED)
        answer = self.answerer.answer(query)
        if answer is None:
            return Pending(query, packet)
        if answer.chase is not None:
            return Pending(query, packet, answer.chase, answer.response)
        wire = self._encode(query, answer.response, tcp=tcp)
        if not tcp:
            name, records = answer.source or (None, None)
            self._keep(packet, wire, name=name, records=records, expires=0.0)
        return wire

    def _keep(self, packet: bytes, wire: bytes, *, name: str | None, records: object, expires: float) -> None:
        if not self.cache_size:
            return
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[packet[2:]] = (wire[2:], self._index.version, name, records, expires)

    async def forward(self, pending: Pending, *, tcp: bool) -> bytes:
        query = pending.query
        question = query.question[0]
        response = pending.partial or dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
        response.flags |= dns.flags.RA
        try:
            resolved = await self.forwarder.resolve(pending.chase or question.name, question.rdtype,
                                                    question.rdclass)
        except UpstreamFailed:
            response.set_rcode(dns.rcode.SERVFAIL)
            return self._encode(query, response, tcp=tcp)
        response.answer += resolved.answer
        if pending.chase is None:
            response.set_rcode(resolved.rcode)
            response.authority = resolved.authority
            response.additional = [r for r in resolved.additional if r.rdtype != dns.rdatatype.OPT]
        wire = self._encode(query, response, tcp=tcp)
        if not tcp and pending.chase is None:
            # The same bytes serve repeats for up to a second: TTLs are whole seconds anyway.
            ttls = [r.ttl for section in (resolved.answer, resolved.authority) for r in section]
            if min(ttls, default=0) >= 1:
                self._keep(pending.packet, wire, name=None, records=None, expires=self.clock() + FORWARDED_HOLD)
        return wire

    def _may_parse(self) -> bool:
        now = self.clock()
        started, count = self._window
        if now - started >= 1.0:
            started, count = now, 0
        self._window = (started, count + 1)
        return count < self.max_parsed_per_second

    # -- encoding -------------------------------------------------------------------------------

    def _encode(self, query: dns.message.Message, response: dns.message.Message, *, tcp: bool) -> bytes:
        limit = TCP_MAX_SIZE if tcp else (max(UDP_DEFAULT_SIZE, min(query.payload, EDNS_PAYLOAD))
                                          if query.edns >= 0 else UDP_DEFAULT_SIZE)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            # Too big for UDP: the question alone with TC set; the client asks again over TCP.
            truncated = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
            truncated.flags |= dns.flags.TC | (response.flags & (dns.flags.AA | dns.flags.RA))
            truncated.set_rcode(response.rcode())
            return truncated.to_wire(max_size=limit)

    def _error(self, query: dns.message.Message, packet: bytes, rcode: int) -> bytes:
        response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
        response.flags |= dns.flags.RA
        response.set_rcode(rcode)
        try:
            return response.to_wire(max_size=UDP_DEFAULT_SIZE)
        except dns.exception.DNSException:
            return self._header_only(packet, rcode)

    @staticmethod
    def _header_only(packet: bytes, rcode: int) -> bytes:
        """An answer with the query's id, opcode and RD, no sections: for what cannot be parsed."""
        response = dns.message.Message(id=int.from_bytes(packet[:2], "big"))
        response.flags = dns.flags.QR | dns.flags.RA | (int.from_bytes(packet[2:4], "big") & OPCODE_RD_BITS)
        response.set_rcode(rcode)
        return response.to_wire()
