"""The proxy's netlink writer without a kernel: element keys as nf_tables lays them out, the batch's
framing, reading the kernel's error answers, and which rules can be sent without nft. On a real
kernel (readback through `nft -j` compared with nft's own writing): tests/node/test_proxy_netlink.py."""

from __future__ import annotations

import struct

import pytest

from agent.proxy.expressions import EncodingError, Rule, element_goto, element_key, rule_expressions
from agent.proxy.netlink import (NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NLM_F_ACK, NLM_F_ACK_TLVS,
                                 NLM_F_CAPPED, NLMSG_ERROR, Batch, _errors, attr)
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
        rule_expressions("meta l4proto udp drop")        # plain text: nft.py sends it through nft instead
    with pytest.raises(EncodingError):
        batch("t", [Op("add", "rule", "c", rule="meta l4proto udp drop")])
    assert rule_expressions(Rule()) == b""
