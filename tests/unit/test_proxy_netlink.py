"""The proxy's netlink writer without a kernel: element keys as nf_tables lays them out, the batch's
framing, reading the kernel's error answers, and which rules can be sent without nft. On a real
kernel (readback through `nft -j` compared with nft's own writing): tests/node/test_proxy_netlink.py."""

from __future__ import annotations

import struct

import pytest

from agent.proxy.expressions import (EncodingError, Rule, dnat_one_of, element_goto, element_key, goto_one_of,
                                     l4proto, rule_expressions)
from agent.proxy.netlink import (NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFT_MSG_NEWRULE, NFT_MSG_NEWSET,
                                 NFT_MSG_NEWSETELEM, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_ERROR, Batch,
                                 _errors, attr, string, u32)
from agent.proxy.transaction import Op, batch


def test_concatenated_keys_put_each_field_in_a_4_byte_register() -> None:
    assert element_key("10.96.0.10 . tcp . 80") == bytes([10, 96, 0, 10, 6, 0, 0, 0, 0, 80, 0, 0])
    assert element_key("udp . 30053") == bytes([17, 0, 0, 0]) + struct.pack(">H", 30053) + b"\0\0"
    assert element_key("198.19.1.2 . 198.19.1.2") == bytes([198, 19, 1, 2] * 2)
    with pytest.raises(EncodingError, match="icmp"):
        element_key("10.96.0.10 . icmp . 80")
    assert element_goto("goto svc-X") == "svc-X"
    with pytest.raises(EncodingError):
        element_goto("jump svc-X")


def test_attributes_are_padded_to_four_bytes() -> None:
    assert attr(1, b"t\0") == struct.pack("=HH", 6, 1) + b"t\0" + b"\0\0"
    assert len(attr(2, b"abcd")) == 8


def test_a_batch_is_framed_by_begin_and_end_and_only_its_last_message_asks_for_an_ack() -> None:
    out = Batch("t")
    out.add_chain("a")
    out.flush_chain("a")
    datagram, last = out.encode(100)
    headers = []
    offset = 0
    while offset < len(datagram):
        length, kind, flags, seq, _ = struct.unpack_from("=IHHII", datagram, offset)
        headers.append((kind & 0xFF if kind > 0xFF else kind, flags & NLM_F_ACK, seq))
        offset += length
    assert headers[0][0] == NFNL_MSG_BATCH_BEGIN and headers[-1][0] == NFNL_MSG_BATCH_END
    assert [h[2] for h in headers] == [100, 101, 102, 103] and last == 102
    assert [bool(h[1]) for h in headers] == [False, False, True, False]


def error(seq: int, code: int, text: str = "") -> bytes:
    tlvs = attr(1, text.encode() + b"\0") if text else b""
    flags = NLM_F_CAPPED | (NLM_F_ACK_TLVS if text else 0)
    body = struct.pack("=i", code) + struct.pack("=IHHII", 40, 0xA06, 0, seq, 0) + tlvs
    return struct.pack("=IHHII", 16 + len(body), NLMSG_ERROR, flags, seq, 0) + body


def test_error_answers_are_read_with_their_extended_ack_text() -> None:
    data = error(7, 0) + error(8, -2, "Could not process rule")
    assert _errors(data) == [(7, 0, ""), (8, -2, "Could not process rule")]


def test_only_rules_built_from_pieces_can_be_sent_without_nft() -> None:
    with pytest.raises(EncodingError):
        rule_expressions("meta l4proto udp drop", Batch("t"))     # plain text: nft.py sends it through nft instead
    with pytest.raises(EncodingError):
        batch("t", [Op("add", "rule", "c", rule="meta l4proto udp drop")])
    assert rule_expressions(Rule(), Batch("t")) == b""


def test_a_rules_anonymous_map_goes_just_before_it_and_is_named_by_its_id_in_the_batch() -> None:
    one = Rule(l4proto("tcp"), dnat_one_of((("198.19.1.2", 8080), ("198.19.1.3", 8081))))
    two = Rule(goto_one_of(("ep-a", "ep-b", "ep-c")))
    out = batch("t", [Op("add", "rule", "svc-1", rule=one), Op("add", "rule", "svc-2", rule=two)])
    assert [kind for kind, _, _ in out.messages] == [NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM, NFT_MSG_NEWRULE] * 2
    for first, set_id in ((0, 1), (3, 2)):                   # each map its own id; its elements and rule use it
        new_set, elements, rule = (attributes for _, _, attributes in out.messages[first:first + 3])
        assert string(2, "__map%d") + u32(3, 0xB) in new_set and u32(10, set_id) in new_set
        assert u32(4, set_id) in elements and u32(4, set_id) in rule and b"numgen" in rule
    assert u32(6, (7 << 6) | 13) in out.messages[0][2]       # values: ipv4_addr . inet_service
    assert u32(6, 0xFFFFFF00) in out.messages[3][2]          # values: verdicts
    assert b"ep-c" in out.messages[4][2]
    assert rule_expressions(Rule(l4proto("tcp"), dnat_one_of((("198.19.1.2", 8080),))), Batch("t")) \
        == Rule(l4proto("tcp"), dnat_one_of((("198.19.1.2", 8080),))).expressions    # one endpoint: no map
