"""Cluster DNS answers (agent/dns/records.py, answer.py, responder.py) from Kubernetes-shaped
Services and EndpointSlices, without sockets: what a pod's resolver would be told."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import pytest

from agent.dns.answer import ZoneAnswerer
from agent.dns.forward import Forwarder
from agent.dns.records import RecordIndex, service_records
from agent.dns.responder import Pending, Responder

from dnsobjects import endpoint, endpoint_slice, service


def ask(responder: Responder, name: str, rdtype: str = "A") -> dns.message.Message:
    out = responder.respond(dns.message.make_query(name, rdtype).to_wire(), tcp=False)
    assert isinstance(out, bytes), f"{name} {rdtype} was not answered locally: {out!r}"
    return dns.message.from_wire(out)


def records(message: dns.message.Message, section: str = "answer") -> set[tuple[str, str, str]]:
    return {(rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rdata.to_text())
            for rrset in getattr(message, section) for rdata in rrset}


@pytest.fixture
def index() -> RecordIndex:
    return RecordIndex("cluster.local")


@pytest.fixture
def responder(index: RecordIndex) -> Responder:
    return Responder(ZoneAnswerer(index, address="198.19.1.1"), Forwarder([]))


def test_service_name_answers_its_cluster_ip(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("web"))
    reply = ask(responder, "web.default.svc.cluster.local")
    assert reply.rcode() == dns.rcode.NOERROR and reply.flags & dns.flags.AA
    assert records(reply) == {("web.default.svc.cluster.local.", "A", "10.96.0.10")}
    assert all(rrset.ttl == 5 for rrset in reply.answer)
    # Case does not matter, and the question's own spelling is echoed.
    reply = ask(responder, "WEB.Default.SVC.cluster.local")
    assert records(reply) == {("WEB.Default.SVC.cluster.local.", "A", "10.96.0.10")}


def test_srv_for_named_ports_only(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                            {"name": "dns", "port": 53, "protocol": "UDP"},
                                            {"port": 9000}]))
    reply = ask(responder, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert records(reply) == {("_http._tcp.web.default.svc.cluster.local.", "SRV",
                               "0 100 80 web.default.svc.cluster.local.")}
    assert records(reply, "additional") == {("web.default.svc.cluster.local.", "A", "10.96.0.10")}
    assert records(ask(responder, "_dns._udp.web.default.svc.cluster.local", "SRV")) == {
        ("_dns._udp.web.default.svc.cluster.local.", "SRV", "0 100 53 web.default.svc.cluster.local.")}
    assert ask(responder, "_dns._tcp.web.default.svc.cluster.local", "SRV").rcode() == dns.rcode.NXDOMAIN


def test_ptr_for_cluster_ip(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("web", "shop", cluster_ip="10.96.3.7"))
    reply = ask(responder, "7.3.96.10.in-addr.arpa", "PTR")
    assert records(reply) == {("7.3.96.10.in-addr.arpa.", "PTR", "web.shop.svc.cluster.local.")}


def test_unknown_names_in_the_zone_are_nxdomain_with_soa(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("web"))
    for name in ("nope.default.svc.cluster.local", "web.other.svc.cluster.local", "x.cluster.local",
                 "google.com.default.svc.cluster.local"):
        reply = ask(responder, name)
        assert reply.rcode() == dns.rcode.NXDOMAIN, name
        assert not reply.answer
        (soa,) = reply.authority
        assert soa.name.to_text() == "cluster.local." and soa.rdtype == dns.rdatatype.SOA
        assert soa[0].minimum == 5


def test_existing_name_without_that_type_is_nodata(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("web"))
    for name, rdtype in (("web.default.svc.cluster.local", "AAAA"), ("default.svc.cluster.local", "A"),
                         ("svc.cluster.local", "A")):
        reply = ask(responder, name, rdtype)
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer, (name, rdtype)
        assert [r.rdtype for r in reply.authority] == [dns.rdatatype.SOA]


def test_headless_service_answers_ready_endpoints(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("db", cluster_ip="None", ports=[{"name": "pg", "port": 5432}]))
    index.set_slice(endpoint_slice("db-1", "db", [endpoint("198.19.1.5", hostname="db-0"),
                                                  endpoint("198.19.2.6", ready=None),
                                                  endpoint("198.19.2.7", ready=False)],
                                   ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    index.set_slice(endpoint_slice("db-2", "db", [endpoint("198.19.3.8")],
                                   ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    assert {r[2] for r in records(ask(responder, "db.default.svc.cluster.local"))} == {
        "198.19.1.5", "198.19.2.6", "198.19.3.8"}
    assert records(ask(responder, "db-0.db.default.svc.cluster.local")) == {
        ("db-0.db.default.svc.cluster.local.", "A", "198.19.1.5")}
    assert records(ask(responder, "198-19-2-6.db.default.svc.cluster.local")) == {
        ("198-19-2-6.db.default.svc.cluster.local.", "A", "198.19.2.6")}
    assert ask(responder, "198-19-2-7.db.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    srv = records(ask(responder, "_pg._tcp.db.default.svc.cluster.local", "SRV"))
    assert {r[2].split()[3] for r in srv} == {"db-0.db.default.svc.cluster.local.",
                                              "198-19-2-6.db.default.svc.cluster.local.",
                                              "198-19-3-8.db.default.svc.cluster.local."}
    assert {r[2].split()[2] for r in srv} == {"5432"}
    assert records(ask(responder, "5.1.19.198.in-addr.arpa", "PTR")) == {
        ("5.1.19.198.in-addr.arpa.", "PTR", "db-0.db.default.svc.cluster.local.")}
    # The endpoint turns unready: it leaves every record; the slice goes: so do its endpoints.
    index.set_slice(endpoint_slice("db-1", "db", [endpoint("198.19.1.5", ready=False, hostname="db-0")]))
    assert ask(responder, "db-0.db.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    index.delete_slice(endpoint_slice("db-2", "db", []))
    assert ask(responder, "db.default.svc.cluster.local").rcode() == dns.rcode.NOERROR
    assert not ask(responder, "db.default.svc.cluster.local").answer


def test_pod_hostname_and_subdomain(index: RecordIndex, responder: Responder) -> None:
    # A pod with spec.hostname "web-0" and spec.subdomain "nodes" behind the headless Service
    # "nodes": the EndpointSlice controller puts its hostname on the endpoint.
    index.set_service(service("nodes", "shop", cluster_ip="None", ports=[]))
    index.set_slice(endpoint_slice("nodes-x", "nodes", [endpoint("198.19.1.9", hostname="web-0")], ns="shop"))
    assert records(ask(responder, "web-0.nodes.shop.svc.cluster.local")) == {
        ("web-0.nodes.shop.svc.cluster.local.", "A", "198.19.1.9")}


def test_publish_not_ready_addresses(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("db", cluster_ip="None", publishNotReadyAddresses=True))
    index.set_slice(endpoint_slice("db-1", "db", [endpoint("198.19.1.5", ready=False)]))
    assert records(ask(responder, "db.default.svc.cluster.local")) == {
        ("db.default.svc.cluster.local.", "A", "198.19.1.5")}


def test_service_changes_and_deletes_are_seen_at_once(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("web", cluster_ip="10.96.0.10"))
    assert records(ask(responder, "web.default.svc.cluster.local")) == {
        ("web.default.svc.cluster.local.", "A", "10.96.0.10")}
    index.set_service(service("web", cluster_ip="10.96.0.11"))
    assert records(ask(responder, "web.default.svc.cluster.local")) == {
        ("web.default.svc.cluster.local.", "A", "10.96.0.11")}
    assert records(ask(responder, "11.0.96.10.in-addr.arpa", "PTR")) == {
        ("11.0.96.10.in-addr.arpa.", "PTR", "web.default.svc.cluster.local.")}
    old_ptr = dns.message.make_query("10.0.96.10.in-addr.arpa", "PTR").to_wire()
    assert isinstance(responder.respond(old_ptr, tcp=False), Pending)      # no longer ours: forwarded
    index.delete_service(service("web"))
    assert ask(responder, "web.default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, "default.svc.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_cached_answer_survives_unrelated_churn(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("web"))
    query = dns.message.make_query("web.default.svc.cluster.local", "A").to_wire()
    first = responder.respond(query, tcp=False)
    assert isinstance(first, bytes)
    index.set_service(service("other", cluster_ip="10.96.0.99"))          # another Service
    index.set_slice(endpoint_slice("web-1", "web", [endpoint("198.19.1.5")]))  # web's endpoints
    again = b"\x12\x34" + query[2:]
    assert responder.cached(again) == b"\x12\x34" + first[2:]
    index.set_service(service("web", cluster_ip="10.96.0.12"))             # web itself: stale
    assert responder.cached(again) is None
    assert records(ask(responder, "web.default.svc.cluster.local")) == {
        ("web.default.svc.cluster.local.", "A", "10.96.0.12")}


def test_unchanged_records_do_not_move_the_version(index: RecordIndex) -> None:
    index.set_service(service("web"))
    version = index.version
    index.set_slice(endpoint_slice("web-1", "web", [endpoint("198.19.1.5")]))
    index.set_service(service("web"))
    assert index.version == version


def test_external_name_is_a_cname_chased_upstream(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("mail", cluster_ip=None, ports=[], type="ExternalName",
                              externalName="mail.example.org"))
    out = responder.respond(dns.message.make_query("mail.default.svc.cluster.local", "A").to_wire(), tcp=False)
    assert isinstance(out, Pending) and out.chase.to_text() == "mail.example.org."
    assert records(out.partial) == {("mail.default.svc.cluster.local.", "CNAME", "mail.example.org.")}
    assert records(ask(responder, "mail.default.svc.cluster.local", "CNAME")) == {
        ("mail.default.svc.cluster.local.", "CNAME", "mail.example.org.")}


def test_pod_names_from_the_address(responder: Responder) -> None:
    assert records(ask(responder, "198-19-1-5.default.pod.cluster.local")) == {
        ("198-19-1-5.default.pod.cluster.local.", "A", "198.19.1.5")}
    assert ask(responder, "not-an-ip.default.pod.cluster.local").rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, "xpod.cluster.local").rcode() == dns.rcode.NXDOMAIN


def test_zone_apex_soa_ns_and_schema_version(responder: Responder) -> None:
    assert [r.rdtype for r in ask(responder, "cluster.local", "SOA").answer] == [dns.rdatatype.SOA]
    reply = ask(responder, "cluster.local", "NS")
    assert records(reply) == {("cluster.local.", "NS", "ns.dns.cluster.local.")}
    assert records(reply, "additional") == {("ns.dns.cluster.local.", "A", "198.19.1.1")}
    assert records(ask(responder, "dns-version.cluster.local", "TXT")) == {
        ("dns-version.cluster.local.", "TXT", '"1.1.0"')}


def test_other_cluster_domain(responder: Responder) -> None:
    index = RecordIndex("corp.internal")
    index.set_service(service("web"))
    own = Responder(ZoneAnswerer(index), Forwarder([]))
    assert records(ask(own, "web.default.svc.corp.internal")) == {
        ("web.default.svc.corp.internal.", "A", "10.96.0.10")}
    assert isinstance(own.respond(dns.message.make_query("web.default.svc.cluster.local", "A").to_wire(),
                                  tcp=False), Pending)


def test_names_outside_the_zone_and_unknown_ptrs_are_forwarded(responder: Responder) -> None:
    for name, rdtype in (("example.org", "A"), ("1.2.0.192.in-addr.arpa", "PTR")):
        out = responder.respond(dns.message.make_query(name, rdtype).to_wire(), tcp=False)
        assert isinstance(out, Pending) and out.chase is None


def test_big_answers_are_truncated_over_udp(index: RecordIndex, responder: Responder) -> None:
    index.set_service(service("many", cluster_ip="None"))
    index.set_slice(endpoint_slice("many-1", "many", [endpoint(f"198.19.{i // 250}.{i % 250 + 1}")
                                                      for i in range(100)]))
    query = dns.message.make_query("many.default.svc.cluster.local", "A")
    reply = dns.message.from_wire(responder.respond(query.to_wire(), tcp=False))
    assert reply.flags & dns.flags.TC and not reply.answer
    reply = dns.message.from_wire(responder.respond(query.to_wire(), tcp=True))
    assert not reply.flags & dns.flags.TC and len(reply.answer[0]) == 100


def test_errors(responder: Responder) -> None:
    query = dns.message.make_query("web.default.svc.cluster.local", "A")
    query.set_opcode(dns.opcode.UPDATE)
    reply = dns.message.from_wire(responder.respond(query.to_wire(), tcp=False))
    assert reply.rcode() == dns.rcode.NOTIMP
    axfr = dns.message.make_query("cluster.local", "AXFR")
    assert dns.message.from_wire(responder.respond(axfr.to_wire(), tcp=False)).rcode() == dns.rcode.REFUSED
    chaos = dns.message.make_query("version.bind", "TXT", "CH")
    assert dns.message.from_wire(responder.respond(chaos.to_wire(), tcp=False)).rcode() == dns.rcode.REFUSED
    garbage = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07exam"     # a question cut short
    reply = dns.message.from_wire(responder.respond(garbage, tcp=False))
    assert reply.id == 0xABCD and reply.rcode() == dns.rcode.FORMERR
    assert responder.respond(b"\x00\x01\x02", tcp=False) is None                     # shorter than a header
    answer = dns.message.make_response(query).to_wire()
    assert responder.respond(answer, tcp=False) is None                               # QR set: never answered


def test_service_records_rule_is_pure() -> None:
    out = service_records(service("web", "a"), [], "cluster.local.")
    assert set(out.names) == {"web.a.svc.cluster.local.", "_http._tcp.web.a.svc.cluster.local."}
    assert out.ptr == [("10.96.0.10", "web.a.svc.cluster.local.")]
    # Not yet allocated: the name exists, without an address.
    pending = service_records(service("web", "a", cluster_ip=None), [], "cluster.local.")
    assert pending.names["web.a.svc.cluster.local."].addresses == [] and pending.ptr == []


def test_parsing_beyond_the_budget_is_shed_but_cached_answers_flow(index: RecordIndex) -> None:
    index.set_service(service("web"))
    now = [100.0]
    limited = Responder(ZoneAnswerer(index), Forwarder([]), max_parsed_per_second=10, clock=lambda: now[0])
    web = dns.message.make_query("web.default.svc.cluster.local", "A").to_wire()
    assert isinstance(limited.respond(web, tcp=False), bytes)
    answered = [limited.respond(dns.message.make_query(f"n{i}.default.svc.cluster.local", "A").to_wire(),
                                tcp=False) for i in range(20)]
    assert sum(a is not None for a in answered) == 9 and limited.shed == 11
    assert limited.cached(web) is not None                       # the cache is not limited
    now[0] += 1.0                                                # a new second: parsing again
    assert limited.respond(dns.message.make_query("x.default.svc.cluster.local", "A").to_wire(),
                           tcp=False) is not None
