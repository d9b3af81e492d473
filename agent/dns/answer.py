"""Answering a question about the cluster domain from the record index.

`ZoneAnswerer.answer(query)` turns a parsed query (dnspython) into the response the
cluster's DNS gives, or says the question is not ours (`None`: forward it):

- names in `<zone>`: the Services' records (agent/dns/records.py); `<a-b-c-d>.<ns>.pod.<zone>`
  from the name itself; the apex's SOA and NS, `ns.dns.<zone>` (this server's address) and
  `dns-version.<zone>` TXT, as the specification asks. A name nothing has: NXDOMAIN; a
  name that exists without records of the type asked: NOERROR and no answer (NODATA).
  Both carry the zone's SOA in the authority section, whose minimum is the negative TTL.
- PTR names (in-addr.arpa, ip6.arpa) of cluster IPs and headless endpoints; any other
  reverse name is forwarded (Kubernetes' default Corefile: `fallthrough in-addr.arpa`).
- an ExternalName's CNAME: the target is followed inside the zone, or handed back
  (`Answer.chase`) for the server to resolve upstream and append, as CoreDNS does.

Every local answer is authoritative (AA) with a small TTL (5 s, CoreDNS's default),
so a changed Service is seen within seconds by caching clients.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.PTR import PTR
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from .records import NameRecords, RecordIndex

IN = dns.rdataclass.IN
DEFAULT_TTL = 5
SCHEMA_VERSION = "1.1.0"          # of Kubernetes' DNS specification
EDNS_PAYLOAD = 1232                # what we advertise (and answer within) over UDP: DNS flag day 2020
MAX_CHASE = 8                     # CNAMEs followed inside the zone
REVERSE_SUFFIXES = (".in-addr.arpa.", ".ip6.arpa.")


@dataclass
class Answer:
    response: dns.message.Message
    chase: dns.name.Name | None = None     # an ExternalName's target, to resolve upstream
    # The answer was made from these records of this name only (lowercase, absolute): it stays
    # right while the index publishes the same object for the name, whatever else changes.
    source: tuple[str, NameRecords] | None = None


class ZoneAnswerer:
    def __init__(self, index: RecordIndex, *, ttl: int = DEFAULT_TTL, address: str | None = None) -> None:
        self.index = index
        self.ttl = ttl
        self.address = address            # this server's, for ns.dns.<zone>
        self.zone = dns.name.from_text(index.zone)
        self.zone_text = index.zone
        self._ns_name = dns.name.from_text(f"ns.dns.{index.zone}")
        self._hostmaster = dns.name.from_text(f"hostmaster.{index.zone}")
        self._pod_zone = f"pod.{index.zone}"
        self._dot_zone = "." + index.zone
        self._ns_text = f"ns.dns.{index.zone}"
        self._version_text = f"dns-version.{index.zone}"

    # -- deciding -------------------------------------------------------------------------

    def answer(self, query: dns.message.Message) -> Answer | None:
        question = query.question[0]
        qname, rdtype = question.name, question.rdtype
        # Names are compared as lowercase text (one to_text() per question: dnspython's Name
        # comparisons cost more than the rest of a lookup).
        text = qname.to_text().lower()
        if text == self.zone_text or text.endswith(self._dot_zone):
            return self._in_zone(query, qname, text, rdtype)
        if text.endswith(REVERSE_SUFFIXES):
            return self._reverse(query, qname, rdtype)
        return None

    def _in_zone(self, query: dns.message.Message, qname: dns.name.Name, text: str, rdtype: int) -> Answer:
        response = self._response(query)
        if text == self.zone_text:
            if rdtype in (dns.rdatatype.SOA, dns.rdatatype.ANY):
                response.answer.append(self._soa(qname))
            if rdtype in (dns.rdatatype.NS, dns.rdatatype.ANY):
                response.answer.append(self._rrset(qname, dns.rdatatype.NS, [NS(IN, dns.rdatatype.NS, self._ns_name)]))
                self._additional_address(response, self._ns_name)
            return self._finish(response, exists=True)
        if text == self._ns_text:
            if self.address and rdtype in (_family_type(self.address), dns.rdatatype.ANY):
                response.answer.append(self._address_rrset(qname, [self.address]))
            return self._finish(response, exists=True)
        if text == self._version_text:
            if rdtype in (dns.rdatatype.TXT, dns.rdatatype.ANY):
                response.answer.append(self._rrset(qname, dns.rdatatype.TXT,
                                                   [TXT(IN, dns.rdatatype.TXT, [SCHEMA_VERSION.encode()])]))
            return self._finish(response, exists=True)
        if text == self._pod_zone or text.endswith("." + self._pod_zone):
            return self._finish(response, exists=self._pod(response, qname, text, rdtype))
        owner, owner_text, chase = qname, text, None
        for _ in range(MAX_CHASE):
            found = self.index.lookup(owner_text)
            if not found.exists:
                return self._finish(response, exists=bool(response.answer))
            records = found.records
            if records is None:
                return self._finish(response, exists=True)
            if records.cname and rdtype not in (dns.rdatatype.CNAME, dns.rdatatype.ANY):
                target = dns.name.from_text(records.cname)
                response.answer.append(self._rrset(owner, dns.rdatatype.CNAME, [CNAME(IN, dns.rdatatype.CNAME, target)]))
                if not target.is_subdomain(self.zone):
                    chase = target
                    break
                owner, owner_text = target, records.cname
                continue
            self._records(response, owner, records, rdtype)
            break
        answer = self._finish(response, exists=True)
        answer.chase = chase
        if owner is qname and chase is None and response.answer and not response.additional:
            answer.source = (text, records)
        return answer

    def _pod(self, response: dns.message.Message, qname: dns.name.Name, text: str, rdtype: int) -> bool:
        """`<a-b-c-d>.<ns>.pod.<zone>`: the address in the first label (no check that a pod has it,
        as CoreDNS's `pods insecure`, Kubernetes' default). Whether the name exists."""
        labels = text[: -len(self._pod_zone)].rstrip(".").split(".")
        if labels == [""]:
            return True                                  # pod.<zone> itself
        if len(labels) == 1:
            return True                                  # <ns>.pod.<zone>: a namespace, no records
        if len(labels) != 2:
            return False
        dashed = labels[0]
        try:
            ip = ipaddress.ip_address(dashed.replace("-", ".") if dashed.count("-") == 3 else dashed.replace("-", ":"))
        except ValueError:
            return False
        if rdtype in (_family_type(str(ip)), dns.rdatatype.ANY):
            response.answer.append(self._address_rrset(qname, [str(ip)]))
        return True

    def _reverse(self, query: dns.message.Message, qname: dns.name.Name, rdtype: int) -> Answer | None:
        try:
            ip = str(ipaddress.ip_address(dns.reversename.to_address(qname)))
        except Exception:       # noqa: BLE001 - not a whole address (a zone cut, a bad label): not ours
            return None
        targets = self.index.pointers(ip)
        if not targets:
            return None
        response = self._response(query)
        if rdtype in (dns.rdatatype.PTR, dns.rdatatype.ANY):
            response.answer.append(self._rrset(qname, dns.rdatatype.PTR,
                                               [PTR(IN, dns.rdatatype.PTR, dns.name.from_text(t)) for t in targets]))
        else:
            response.authority.append(self._soa(self.zone))
        return Answer(response)

    # -- building ---------------------------------------------------------------------------

    def _records(self, response: dns.message.Message, owner: dns.name.Name, records: NameRecords,
                 rdtype: int) -> None:
        any_ = rdtype == dns.rdatatype.ANY
        if records.cname and (any_ or rdtype == dns.rdatatype.CNAME):
            response.answer.append(self._rrset(owner, dns.rdatatype.CNAME,
                                               [CNAME(IN, dns.rdatatype.CNAME, dns.name.from_text(records.cname))]))
        for family in (dns.rdatatype.A, dns.rdatatype.AAAA):
            if any_ or rdtype == family:
                rdatas = _built(records, family)
                if rdatas:
                    response.answer.append(self._rrset(owner, family, rdatas))
        if records.srv and (any_ or rdtype == dns.rdatatype.SRV):
            rdatas = _built(records, dns.rdatatype.SRV)
            response.answer.append(self._rrset(owner, dns.rdatatype.SRV, rdatas))
            for target in dict.fromkeys(r.target for r in rdatas):
                self._additional_address(response, target)

    def _additional_address(self, response: dns.message.Message, name: dns.name.Name) -> None:
        if name == self._ns_name:
            addresses = [self.address] if self.address else []
        else:
            found = self.index.lookup(name.to_text().lower())
            addresses = found.records.addresses if found.records else []
        for family in (dns.rdatatype.A, dns.rdatatype.AAAA):
            wanted = [a for a in addresses if _family_type(a) == family]
            if wanted:
                response.additional.append(self._address_rrset(name, wanted))

    def _response(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query, our_payload=EDNS_PAYLOAD)
        response.flags |= dns.flags.AA | dns.flags.RA
        return response

    def _finish(self, response: dns.message.Message, *, exists: bool) -> Answer:
        if not exists:
            response.set_rcode(dns.rcode.NXDOMAIN)
        if not response.answer or not exists:
            response.authority.append(self._soa(self.zone))
        return Answer(response)

    def _soa(self, owner: dns.name.Name) -> dns.rrset.RRset:
        serial = self.index.version % (2 ** 32)
        return self._rrset(owner, dns.rdatatype.SOA, [SOA(
            IN, dns.rdatatype.SOA, self._ns_name, self._hostmaster,
            serial, 7200, 1800, 86400, self.ttl)])

    def _address_rrset(self, owner: dns.name.Name, addresses: list[str]) -> dns.rrset.RRset:
        family = _family_type(addresses[0])
        cls = A if family == dns.rdatatype.A else AAAA
        return self._rrset(owner, family, [cls(IN, family, a) for a in addresses])

    def _rrset(self, owner: dns.name.Name, rdtype: int, rdatas: list) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(owner, IN, rdtype)
        for rdata in rdatas:
            rrset.add(rdata, self.ttl)
        return rrset


def _built(records: NameRecords, rdtype: int) -> list:
    """The name's rdatas of `rdtype` as dnspython objects, made once per published records object
    (they are immutable; the owner name, whose case follows the question, is added per answer)."""
    rdatas = records.built.get(rdtype)
    if rdatas is None:
        if rdtype == dns.rdatatype.SRV:
            rdatas = [SRV(IN, rdtype, s.priority, s.weight, s.port, dns.name.from_text(s.target))
                      for s in records.srv]
        else:
            cls = A if rdtype == dns.rdatatype.A else AAAA
            rdatas = [cls(IN, rdtype, a) for a in records.addresses if _family_type(a) == rdtype]
        records.built[rdtype] = rdatas
    return rdatas


def _family_type(address: str) -> int:
    return dns.rdatatype.AAAA if ":" in address else dns.rdatatype.A
