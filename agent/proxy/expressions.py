"""The proxy's rules as nft text and, the same rules, as nf_tables netlink expressions.

A `Rule` is the nft text of a rule (a `str`: what libnftables is given in a full sync,
what tests compare, what `nft list` prints) that also carries its netlink encoding
(`Rule.expressions`), which the incremental path (netlink.py, transaction.py) sends to
the kernel without nft. Both come from the same `Piece`s, so they cannot drift apart:

    Rule(l4proto("tcp"), dnat_one_of((("198.19.1.2", 8080), ("198.19.2.2", 8080))))
    == "meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 198.19.1.2 . 8080, 1 : 198.19.2.2 . 8080 }"

Each piece's expressions are what nft 1.0.6 itself generates for that text (as
`nft --debug=netlink` shows it), so a table written either way reads back the same
(tests/node/test_proxy_netlink.py compares `nft -j list table` of both). A piece with
an anonymous map (`numgen random mod N map {…}` / `vmap {…}`) also carries the map's
set and elements (`AnonymousMap`, as nft sends them, `nft --debug=mnl`), which go into
the batch just before the rule (`rule_expressions(rule, batch)`).

Also here: map and set element keys and set declarations as bytes for netlink, from
the same text the nft scripts use ("10.96.0.10 . tcp . 80", "goto svc-...").
"""

from __future__ import annotations

import ipaddress
import struct
import sys
import functools
from dataclasses import dataclass, field
from typing import Callable

from .netlink import (ANONYMOUS_MAP, NF_DROP, NFT_GOTO, NFT_SET_ANONYMOUS, NFT_SET_CONSTANT, NFT_SET_MAP, Batch,
                      expression, string, u32, value, verdict)

REG_VERDICT, REG_1, REG_2 = 0, 1, 2
REG32_01 = 9                         # the second 32-bit register: a concatenation's second field (after REG_1)
PAYLOAD_NETWORK_HEADER = 1
IPV4_SADDR_OFFSET = 12
CMP_EQ, CMP_NEQ = 0, 1
META_MARK, META_L4PROTO = 3, 16
NUMGEN_RANDOM = 1
NAT_DNAT = 1
NAT_RANGE_PROTO_SPECIFIED = 0x2
DYNSET_UPDATE = 1
FIB_RESULT_ADDRTYPE = 3
FIB_F_SADDR = 1
RTN_LOCAL = 2
PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}
TYPE_INTEGER, TYPE_IPADDR, TYPE_INET_SERVICE = 4, 7, 13   # nft's datatypes integer, ipv4_addr, inet_service
TYPE_IPADDR_PORT = (TYPE_IPADDR << 6) | TYPE_INET_SERVICE   # the concatenation ipv4_addr . inet_service
DATA_VERDICT = 0xFFFFFF00            # NFT_DATA_VERDICT: a verdict map's values
SET_TIMEOUT, SET_EVAL = 0x10, 0x20   # NFT_SET_TIMEOUT, NFT_SET_EVAL ("dynamic")
_BYTEORDER_BIG_ENDIAN = 2
_HOST = "<" if sys.byteorder == "little" else ">"   # marks, numgen and fib results are host-order registers


class EncodingError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Piece:
    """Part of a rule: its text, and how to encode it (called only when the rule is sent by netlink,
    and once per text: a full sync builds every rule of the table, and needs only their text).
    Slots, no per-object dict: a table of 1,000 Services holds tens of thousands of these, and
    every object with a dict is more work for each of Python's full garbage collections."""
    text: str
    encode: Callable[[], bytes] = field(compare=False, repr=False)
    anonymous: "AnonymousMap | None" = field(default=None, compare=False, repr=False)

    @property
    def expressions(self) -> bytes:
        return _encoded(self)


@functools.lru_cache(maxsize=65536)
def _encoded(piece: Piece) -> bytes:
    """A piece's encoding, by its text (equal pieces are equal text)."""
    return piece.encode()


class Rule(str):
    """A rule's nft text, carrying the same rule as netlink expressions (`rule_expressions`)."""

    pieces: tuple[Piece, ...]
    maps: bool                       # a piece has an anonymous map, written into the batch with the rule

    def __new__(cls, *pieces: Piece) -> "Rule":
        rule = super().__new__(cls, " ".join(p.text for p in pieces if p.text))
        rule.pieces = pieces
        rule.maps = any(p.anonymous is not None for p in pieces)
        return rule

    @functools.cached_property
    def expressions(self) -> bytes:
        """The expressions of a rule without anonymous maps (those depend on the batch)."""
        return b"".join(p.expressions for p in self.pieces)


def rule_expressions(rule: str, batch: Batch) -> bytes:
    """The netlink encoding of `rule`, its anonymous maps added to `batch` first (as nft does: the
    map's set and elements, then the rule naming it by its id in the batch); EncodingError for
    text that was not built from pieces."""
    pieces = getattr(rule, "pieces", None)
    if pieces is None:
        raise EncodingError(f"rule has no netlink encoding: {rule!r}")
    if not getattr(rule, "maps", False):
        return rule.expressions          # type: ignore[attr-defined]
    return b"".join(p.anonymous.encode(batch) if p.anonymous is not None else p.expressions for p in pieces)


@dataclass(frozen=True, slots=True)
class AnonymousMap:
    """A constant map written inside a rule, `numgen random mod N map { 0 : … }` (or `vmap`): to the
    kernel an anonymous set ("__map%d", flags anonymous,constant,map) bound to the rule, sent just
    before it in the same batch; the rule's lookup names it by its id in the batch. Keys are
    numgen's results (host-order integers 0..N-1)."""
    data_type: int
    data_len: int
    userdata: bytes                                       # nft's notes for listing it (byte orders, typeof)
    elements: Callable[[], list[tuple[bytes, bytes | str]]]   # (key, value bytes or a chain for `goto`)
    expressions: Callable[[int], bytes]                       # the rule's part, given the map's set id

    def encode(self, batch: Batch) -> bytes:
        elements = self.elements()
        set_id = batch.add_set(ANONYMOUS_MAP, flags=NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_MAP,
                               key_type=TYPE_INTEGER, key_len=4, data_type=self.data_type,
                               data_len=self.data_len, size=len(elements), userdata=self.userdata)
        batch.add_elements(ANONYMOUS_MAP, elements, set_id=set_id)
        return self.expressions(set_id)


# ---- expressions -----------------------------------------------------------------------------

def _payload_saddr(length: int) -> bytes:
    return expression("payload", u32(1, REG_1), u32(2, PAYLOAD_NETWORK_HEADER), u32(3, IPV4_SADDR_OFFSET),
                      u32(4, length))


def _cmp(op: int, data: bytes) -> bytes:
    return expression("cmp", u32(1, REG_1), u32(2, op), value(3, data))


def _immediate(register: int, data: bytes) -> bytes:
    return expression("immediate", u32(1, register), value(2, data))


def _verdict(code: int, chain: str = "") -> bytes:
    return expression("immediate", u32(1, REG_VERDICT), verdict(2, code, chain))


# ---- pieces ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=64)
def saddr_in(cidr: str, *, negate: bool = False) -> Piece:
    """`ip saddr CIDR` / `ip saddr != CIDR`: as nft does, a byte-aligned prefix compares only its
    bytes; any other is masked first."""
    network = ipaddress.IPv4Network(cidr, strict=False)
    op = CMP_NEQ if negate else CMP_EQ
    prefix = network.prefixlen
    if prefix % 8 == 0 and prefix:
        encoded = _payload_saddr(prefix // 8) + _cmp(op, network.network_address.packed[:prefix // 8])
    else:
        encoded = (_payload_saddr(4)
                   + expression("bitwise", u32(1, REG_1), u32(2, REG_1), u32(3, 4),
                                value(4, network.netmask.packed), value(5, bytes(4)))
                   + _cmp(op, network.network_address.packed))
    return Piece(f"ip saddr {'!= ' if negate else ''}{cidr}", lambda: encoded)


@functools.lru_cache(maxsize=64)
def mark_or(mask: str) -> Piece:
    """`meta mark set meta mark | MASK`."""
    bits = int(mask, 0)

    def encode() -> bytes:
        return (expression("meta", u32(2, META_MARK), u32(1, REG_1))
                + expression("bitwise", u32(1, REG_1), u32(2, REG_1), u32(3, 4),
                             value(4, struct.pack(_HOST + "I", ~bits & 0xFFFFFFFF)),
                             value(5, struct.pack(_HOST + "I", bits)))
                + expression("meta", u32(2, META_MARK), u32(3, REG_1)))
    return Piece(f"meta mark set meta mark | {mask}", encode)


def _udata(kind: int, payload: bytes) -> bytes:
    """One of nft's own notes in a set's userdata (libnftnl's NFTNL_UDATA_SET_*): type, length, value."""
    return bytes([kind, len(payload)]) + payload


def _host_u32(number: int) -> bytes:
    return struct.pack(_HOST + "I", number)


# What nft 1.0.6 writes into the userdata of `numgen random mod N map { 0 : ip . port, ... }`'s map (key
# byte order host, data byte order none, not an interval) and of a `vmap`'s (also: data typeof verdict).
_KEY_HOST, _DATA_NONE, _NO_INTERVAL = _udata(0, _host_u32(1)), _udata(1, _host_u32(0)), _udata(6, _host_u32(0))
_DNAT_MAP_USERDATA = _KEY_HOST + _DATA_NONE + _NO_INTERVAL
_VMAP_USERDATA = _KEY_HOST + _DATA_NONE + _udata(4, _udata(0, _host_u32(1)) + _udata(1, b"")) + _NO_INTERVAL


def _numgen(count: int) -> bytes:
    return expression("numgen", u32(1, REG_1), u32(2, count), u32(3, NUMGEN_RANDOM), u32(4, 0))


def _lookup(set_id: int, dreg: int) -> bytes:
    """Look register 1 up in the anonymous map `set_id` of this batch; its value into `dreg`."""
    return expression("lookup", u32(2, REG_1), u32(3, dreg), string(1, ANONYMOUS_MAP), u32(4, set_id))


def _not_alone(_: int = 0) -> bytes:
    raise EncodingError("a piece with an anonymous map is encoded with a batch (rule_expressions)")


def dnat_one_of(targets: tuple[tuple[str, int], ...]) -> Piece:
    """`dnat ip to numgen random mod N map { 0 : IP . PORT, ... }`: one of `targets` at random, each with
    chance 1/N, in one rule (one target: a plain `dnat ip to IP:PORT`)."""
    if len(targets) == 1:
        return dnat(*targets[0])
    items = ", ".join(f"{i} : {ip} . {port}" for i, (ip, port) in enumerate(targets))
    count = len(targets)

    def expressions(set_id: int) -> bytes:
        return (_numgen(count) + _lookup(set_id, REG_1)
                + expression("nat", u32(1, NAT_DNAT), u32(2, 2), u32(3, REG_1), u32(5, REG32_01)))

    def elements() -> list[tuple[bytes, bytes | str]]:
        return [(_host_u32(i), ipaddress.IPv4Address(ip).packed + struct.pack(">H", port) + b"\0\0")
                for i, (ip, port) in enumerate(targets)]
    return Piece(f"dnat ip to numgen random mod {count} map {{ {items} }}", _not_alone,
                 AnonymousMap(TYPE_IPADDR_PORT, 8, _DNAT_MAP_USERDATA, elements, expressions))


def goto_one_of(chains: tuple[str, ...]) -> Piece:
    """`numgen random mod N vmap { 0 : goto CHAIN, ... }`: one of `chains` at random (one: `goto CHAIN`)."""
    if len(chains) == 1:
        return goto(chains[0])
    items = ", ".join(f"{i} : goto {chain}" for i, chain in enumerate(chains))
    count = len(chains)

    def expressions(set_id: int) -> bytes:
        return _numgen(count) + _lookup(set_id, REG_VERDICT)

    def elements() -> list[tuple[bytes, bytes | str]]:
        return [(_host_u32(i), chain) for i, chain in enumerate(chains)]
    return Piece(f"numgen random mod {count} vmap {{ {items} }}", _not_alone,
                 AnonymousMap(DATA_VERDICT, 0, _VMAP_USERDATA, elements, expressions))


@functools.lru_cache(maxsize=16)
def l4proto(protocol: str) -> Piece:
    """`meta l4proto tcp`."""
    if protocol not in PROTOCOL_NUMBERS:
        raise EncodingError(f"unknown protocol {protocol!r}")

    def encode() -> bytes:
        return (expression("meta", u32(2, META_L4PROTO), u32(1, REG_1))
                + _cmp(CMP_EQ, bytes([PROTOCOL_NUMBERS[protocol]])))
    return Piece(f"meta l4proto {protocol}", encode)


@functools.lru_cache(maxsize=16384)
def dnat(ip: str, port: int) -> Piece:
    """`dnat ip to IP:PORT`."""
    def encode() -> bytes:
        return (_immediate(REG_1, ipaddress.IPv4Address(ip).packed)
                + _immediate(REG_2, struct.pack(">H", port))
                + _dnat_registers())
    return Piece(f"dnat ip to {ip}:{port}", encode)


@functools.cache
def _dnat_registers() -> bytes:
    """The nat expression itself: DNAT to the address in register 1 and the port in register 2."""
    return expression("nat", u32(1, NAT_DNAT), u32(2, 2), u32(3, REG_1), u32(5, REG_2),
                      u32(7, NAT_RANGE_PROTO_SPECIFIED))


def saddr_lookup(set_name: str) -> Piece:
    """`ip saddr @SET`."""
    def encode() -> bytes:
        return _payload_saddr(4) + expression("lookup", u32(2, REG_1), string(1, set_name))
    return Piece(f"ip saddr @{set_name}", encode)


def update_saddr(set_name: str) -> Piece:
    """`update @SET { ip saddr }`: the client into a dynamic set (its timeout restarts)."""
    def encode() -> bytes:
        return _payload_saddr(4) + expression("dynset", u32(4, REG_1), u32(3, DYNSET_UPDATE), string(1, set_name))
    return Piece(f"update @{set_name} {{ ip saddr }}", encode)


@functools.cache
def fib_saddr_local() -> Piece:
    """`fib saddr type local`: the packet comes from an address of this node."""
    def encode() -> bytes:
        return (expression("fib", u32(3, FIB_F_SADDR), u32(2, FIB_RESULT_ADDRTYPE), u32(1, REG_1))
                + _cmp(CMP_EQ, struct.pack(_HOST + "I", RTN_LOCAL)))
    return Piece("fib saddr type local", encode)


@functools.lru_cache(maxsize=16384)
def goto(chain: str) -> Piece:
    return Piece(f"goto {chain}", lambda: _verdict(NFT_GOTO, chain))


@functools.cache
def drop() -> Piece:
    return Piece("drop", lambda: _verdict(NF_DROP))


# ---- sets and elements -----------------------------------------------------------------------

class DynamicSet(str):
    """The declaration of an `ipv4_addr` set the rules fill (`flags dynamic,timeout`), with its timeout."""

    timeout: int

    def __new__(cls, timeout: int) -> "DynamicSet":
        declared = super().__new__(cls, f"type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;")
        declared.timeout = timeout
        return declared


def dynamic_set_options(declaration: str) -> dict[str, int | bytes]:
    """Batch.add_set's arguments for a DynamicSet (as nft sends them, with its key byte-order note)."""
    timeout = getattr(declaration, "timeout", None)
    if timeout is None:
        raise EncodingError(f"set has no netlink encoding: {declaration!r}")
    return {"flags": SET_TIMEOUT | SET_EVAL, "key_type": TYPE_IPADDR, "key_len": 4, "timeout_ms": timeout * 1000,
            "userdata": bytes([0, 4]) + struct.pack("<I", _BYTEORDER_BIG_ENDIAN)}


def element_key(text: str) -> bytes:
    """"10.96.0.10 . tcp . 80" -> the key's bytes: each field of a concatenation in a 4-byte register
    (an address as is, a protocol number in its first byte, a port big-endian in its first two)."""
    out = b""
    for field_ in text.split(" . "):
        field_ = field_.strip()
        if field_ in PROTOCOL_NUMBERS:
            out += bytes([PROTOCOL_NUMBERS[field_], 0, 0, 0])
        elif field_.isdigit() and int(field_) <= 65535:
            out += struct.pack(">H", int(field_)) + b"\0\0"
        else:
            try:
                out += ipaddress.IPv4Address(field_).packed
            except ValueError:
                raise EncodingError(f"cannot encode element key field {field_!r} of {text!r}") from None
    return out


def element_goto(text: str) -> str:
    """"goto CHAIN" -> CHAIN (the only verdict the proxy's maps hold)."""
    verb, _, chain = text.partition(" ")
    if verb != "goto" or not chain:
        raise EncodingError(f"cannot encode map value {text!r}")
    return chain
