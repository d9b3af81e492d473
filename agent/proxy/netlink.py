"""nf_tables over netlink without nft: the proxy's incremental changes as one netlink batch.

Why: nftables 1.0.6 (Debian 12) reads the whole table back into its cache before each
transaction once the ruleset changed since its last read - every set's elements, the
1,000 `goto` elements of `@service-ips` with 1,000 Services the bulk of it - and that read
was most of a proxy update's cost (docs/PERFORMANCE.md). The kernel needs none of it:
a transaction is a batch of messages on a NETLINK_NETFILTER socket,

    NFNL_MSG_BATCH_BEGIN, NFT_MSG_NEWCHAIN / DELRULE / NEWRULE / NEWSETELEM / ..., NFNL_MSG_BATCH_END

sent in one datagram and applied by the kernel all or nothing, as `nft -f` does. The
messages name tables, chains and sets by name, so no handle is ever needed: a changed
chain is emptied with a DELRULE that names only the chain (`flush chain`) and its rules
added again. A rule's anonymous map (`numgen random mod N map {…}`) is a NEWSET "__map%d"
and its NEWSETELEMs just before the rule, named by their id in the batch (NFTA_SET_ID), as
nft sends it; deleting the rule (a flush) deletes its map.

This module is the wire format and the socket only: attributes (`attr`, `nest`, `u32`,
`string`), a `Batch` of nf_tables messages, and `NftNetlink.commit(batch)`. What a rule
looks like as expressions is expressions.py; which messages a change needs is
transaction.py. Blocking; used on the proxy's worker thread (nft.py), in the node's
network namespace (the socket stays in the namespace it was made in).

Success and errors: the kernel processes a batch while `send` runs; errors come back as
NLMSG_ERROR messages (with the kernel's extended-ack text where it gives one). Like nft,
commit drains what is queued after the send; besides, the last message of the batch asks
for an acknowledgement (NLM_F_ACK), so a batch the kernel never processed to its end is
an error too, not a silent success.
"""

from __future__ import annotations

import errno as errno_codes
import os
import select
import socket
import struct
import time
from typing import Sequence

from agent.network.errors import NetworkError

NETLINK_NETFILTER = 12
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_CAP_ACK = 10

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_APPEND = 0x800
NLA_F_NESTED = 0x8000
NLMSG_ERROR = 0x2
NLMSGERR_ATTR_MSG = 1
NLM_F_CAPPED = 0x100          # in an NLMSG_ERROR: the request is echoed as its header only
NLM_F_ACK_TLVS = 0x200        # ... and extended-ack attributes follow

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN = 0x10
NFNL_MSG_BATCH_END = 0x11
NFT_MSG_NEWCHAIN = 3
NFT_MSG_DELCHAIN = 5
NFT_MSG_NEWRULE = 6
NFT_MSG_DELRULE = 8
NFT_MSG_NEWSET = 9
NFT_MSG_DELSET = 11
NFT_MSG_NEWSETELEM = 12
NFT_MSG_DELSETELEM = 14

# attribute numbers (linux/netfilter/nf_tables.h)
NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME = 1, 3
NFTA_RULE_TABLE, NFTA_RULE_CHAIN, NFTA_RULE_EXPRESSIONS = 1, 2, 4
NFTA_SET_TABLE, NFTA_SET_NAME, NFTA_SET_FLAGS, NFTA_SET_KEY_TYPE, NFTA_SET_KEY_LEN = 1, 2, 3, 4, 5
NFTA_SET_DATA_TYPE, NFTA_SET_DATA_LEN, NFTA_SET_DESC, NFTA_SET_DESC_SIZE = 6, 7, 9, 1
NFTA_SET_ID, NFTA_SET_TIMEOUT, NFTA_SET_USERDATA = 10, 11, 13
NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS, NFTA_SET_ELEM_LIST_SET_ID = 1, 2, 3, 4
NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA = 1, 2
NFTA_LIST_ELEM = 1
NFTA_DATA_VALUE, NFTA_DATA_VERDICT = 1, 2
NFTA_VERDICT_CODE, NFTA_VERDICT_CHAIN = 1, 2
NF_DROP, NFT_GOTO = 0, -4
NFT_SET_ANONYMOUS, NFT_SET_CONSTANT, NFT_SET_MAP = 0x1, 0x2, 0x8
ANONYMOUS_MAP = "__map%d"       # the kernel numbers it (__map0, ...); the batch refers to it by its set id

AF_INET = socket.AF_INET
ELEMENTS_PER_MESSAGE = 500      # keeps each message far below netlink's 64 KiB attribute length limit


class NetlinkError(NetworkError):
    pass


# ---- attributes ------------------------------------------------------------------------------

_HEADER = struct.Struct("=HH")
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute: length, type, payload, padded to 4 bytes."""
    length = 4 + len(payload)
    if length > 0xFFFF:
        raise NetlinkError(f"netlink attribute {kind} too long ({length} bytes)")
    return _HEADER.pack(length, kind) + payload + _PADDING[length & 3]


def nest(kind: int, *children: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(children))


def u32(kind: int, value: int) -> bytes:
    """nf_tables' integer attributes are big-endian."""
    return _HEADER.pack(8, kind) + (value & 0xFFFFFFFF).to_bytes(4, "big")


def u64(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack(">Q", value))


def string(kind: int, value: str) -> bytes:
    return attr(kind, value.encode() + b"\0")


def value(kind: int, data: bytes) -> bytes:
    """A data attribute (NFTA_DATA_VALUE inside `kind`): a key, a compared value, an immediate."""
    return nest(kind, attr(NFTA_DATA_VALUE, data))


def verdict(kind: int, code: int, chain: str = "") -> bytes:
    inner = u32(NFTA_VERDICT_CODE, code) + (string(NFTA_VERDICT_CHAIN, chain) if chain else b"")
    return nest(kind, nest(NFTA_DATA_VERDICT, inner))


def expression(name: str, *attributes: bytes) -> bytes:
    """One element of a rule's expression list: NFTA_EXPR_NAME + NFTA_EXPR_DATA."""
    return nest(NFTA_LIST_ELEM, string(1, name), nest(2, *attributes))


def _element_data(data: str | bytes | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, str):
        return verdict(NFTA_SET_ELEM_DATA, NFT_GOTO, data)
    return value(NFTA_SET_ELEM_DATA, data)


# ---- messages --------------------------------------------------------------------------------

def _message(kind: int, flags: int, seq: int, family: int, payload: bytes, res_id: int = 0) -> bytes:
    body = struct.pack("=BBH", family, 0, socket.htons(res_id)) + payload
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


class Batch:
    """nf_tables messages for one transaction on one `ip` table, in the order they are added."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.messages: list[tuple[int, int, bytes]] = []     # (NFT_MSG_*, extra flags, attributes)
        self._set_ids = 0

    def __len__(self) -> int:
        return len(self.messages)

    def _add(self, kind: int, flags: int, *attributes: bytes) -> None:
        self.messages.append((kind, flags, b"".join(attributes)))

    def add_chain(self, name: str) -> None:
        """`add chain`: a regular chain; no error if it exists."""
        self._add(NFT_MSG_NEWCHAIN, NLM_F_CREATE, string(NFTA_CHAIN_TABLE, self.table), string(NFTA_CHAIN_NAME, name))

    def flush_chain(self, name: str) -> None:
        """`flush chain`: DELRULE naming the chain and no rule handle deletes every rule in it."""
        self._add(NFT_MSG_DELRULE, 0, string(NFTA_RULE_TABLE, self.table), string(NFTA_RULE_CHAIN, name))

    def delete_chain(self, name: str) -> None:
        self._add(NFT_MSG_DELCHAIN, 0, string(NFTA_CHAIN_TABLE, self.table), string(NFTA_CHAIN_NAME, name))

    def add_rule(self, chain: str, expressions: bytes) -> None:
        """`add rule`: appended at the end of the chain; `expressions` are NFTA_LIST_ELEMs (`expression`)."""
        self._add(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, string(NFTA_RULE_TABLE, self.table),
                  string(NFTA_RULE_CHAIN, chain), nest(NFTA_RULE_EXPRESSIONS, expressions))

    def add_set(self, name: str, *, flags: int, key_type: int, key_len: int, data_type: int = 0,
                data_len: int = 0, size: int = 0, timeout_ms: int = 0, userdata: bytes = b"") -> int:
        """`add set` / `add map` (flags with NFT_SET_MAP: `data_type`, `data_len`); returns its id in this
        batch, by which the batch's later messages can name it (an anonymous set has no name yet)."""
        self._set_ids += 1
        mapped = bool(flags & NFT_SET_MAP)
        self._add(NFT_MSG_NEWSET, NLM_F_CREATE, string(NFTA_SET_TABLE, self.table), string(NFTA_SET_NAME, name),
                  u32(NFTA_SET_FLAGS, flags), u32(NFTA_SET_KEY_TYPE, key_type), u32(NFTA_SET_KEY_LEN, key_len),
                  u32(NFTA_SET_DATA_TYPE, data_type) if mapped else b"",
                  u32(NFTA_SET_DATA_LEN, data_len) if mapped else b"",
                  u32(NFTA_SET_ID, self._set_ids),
                  nest(NFTA_SET_DESC, u32(NFTA_SET_DESC_SIZE, size)) if size else b"",
                  u64(NFTA_SET_TIMEOUT, timeout_ms) if timeout_ms else b"",
                  attr(NFTA_SET_USERDATA, userdata) if userdata else b"")
        return self._set_ids

    def delete_set(self, name: str) -> None:
        self._add(NFT_MSG_DELSET, 0, string(NFTA_SET_TABLE, self.table), string(NFTA_SET_NAME, name))

    def add_elements(self, name: str, elements: Sequence[tuple[bytes, str | bytes | None]], *, set_id: int = 0) -> None:
        """Elements (key, None) of a set, (key, chain) of a verdict map (`goto chain`) or (key, value) of a
        data map; `set_id`: of a set added earlier in this batch (add_set), which `name` may not name yet."""
        for start in range(0, len(elements), ELEMENTS_PER_MESSAGE):
            items = [nest(NFTA_LIST_ELEM, value(NFTA_SET_ELEM_KEY, key), _element_data(data))
                     for key, data in elements[start:start + ELEMENTS_PER_MESSAGE]]
            self._add(NFT_MSG_NEWSETELEM, NLM_F_CREATE, string(NFTA_SET_ELEM_LIST_TABLE, self.table),
                      string(NFTA_SET_ELEM_LIST_SET, name),
                      u32(NFTA_SET_ELEM_LIST_SET_ID, set_id) if set_id else b"",
                      nest(NFTA_SET_ELEM_LIST_ELEMENTS, *items))

    def delete_elements(self, name: str, keys: list[bytes]) -> None:
        for start in range(0, len(keys), ELEMENTS_PER_MESSAGE):
            items = [nest(NFTA_LIST_ELEM, value(NFTA_SET_ELEM_KEY, key))
                     for key in keys[start:start + ELEMENTS_PER_MESSAGE]]
            self._add(NFT_MSG_DELSETELEM, 0, string(NFTA_SET_ELEM_LIST_TABLE, self.table),
                      string(NFTA_SET_ELEM_LIST_SET, name), nest(NFTA_SET_ELEM_LIST_ELEMENTS, *items))

    def encode(self, first_seq: int) -> tuple[bytes, int]:
        """The datagram (begin, messages, end) with sequence numbers from `first_seq`; and the last
        message's sequence number (the one acknowledged)."""
        seq = first_seq
        parts = [_message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, socket.AF_UNSPEC, b"", NFNL_SUBSYS_NFTABLES)]
        for index, (kind, flags, attributes) in enumerate(self.messages):
            seq += 1
            ack = NLM_F_ACK if index == len(self.messages) - 1 else 0
            parts.append(_message((NFNL_SUBSYS_NFTABLES << 8) | kind, NLM_F_REQUEST | ack | flags, seq, AF_INET,
                                  attributes))
        last = seq
        seq += 1
        parts.append(_message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, socket.AF_UNSPEC, b"", NFNL_SUBSYS_NFTABLES))
        return b"".join(parts), last


# ---- the socket ------------------------------------------------------------------------------

_NAMES = {NFT_MSG_NEWCHAIN: "add chain", NFT_MSG_DELCHAIN: "delete chain", NFT_MSG_NEWRULE: "add rule",
          NFT_MSG_DELRULE: "flush chain", NFT_MSG_NEWSET: "add set", NFT_MSG_DELSET: "delete set",
          NFT_MSG_NEWSETELEM: "add element", NFT_MSG_DELSETELEM: "delete element"}


def _describe(batch: Batch, index: int) -> str:
    if not 0 <= index < len(batch.messages):
        return "the batch"
    kind, _, attributes = batch.messages[index]
    names = []
    offset = 0
    while offset + 4 <= len(attributes) and len(names) < 2:      # the table and the chain/set name
        length, number = struct.unpack_from("=HH", attributes, offset)
        if not number & NLA_F_NESTED and length > 4:
            names.append(attributes[offset + 4:offset + length].rstrip(b"\0").decode(errors="replace"))
        offset += (length + 3) & ~3
    return f"{_NAMES.get(kind, kind)} {' '.join(names)}"


class NftNetlink:
    """A NETLINK_NETFILTER socket committing `Batch`es; in the namespace of the thread that made it."""

    RECEIVE_BUFFER = 4 << 20

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
        try:
            self.sock.bind((0, 0))
            for option in (NETLINK_EXT_ACK, NETLINK_CAP_ACK):
                try:
                    self.sock.setsockopt(SOL_NETLINK, option, 1)
                except OSError:          # older kernels: plain error codes, whole messages echoed
                    pass
            self._buffer(socket.SO_RCVBUF, 33, self.RECEIVE_BUFFER)     # 33: SO_RCVBUFFORCE
            self.sock.setblocking(False)     # answers are read until none is queued
        except OSError:
            self.sock.close()
            raise
        self._send_buffer = 0
        self._seq = int.from_bytes(os.urandom(3), "big") << 4

    def _buffer(self, option: int, forced: int, size: int) -> None:
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, forced, size)       # root: above the sysctl limit
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, option, size)

    def commit(self, batch: Batch) -> None:
        """Apply `batch` as one transaction; raises NetlinkError (nothing applied) if the kernel refused it."""
        if not batch.messages:
            return
        if self._seq + len(batch) + 3 > 0xFFFFFFFF:
            self._seq = 0                # sequence numbers are 32 bits; answers are matched within a batch
        first = self._seq + 1
        datagram, last = batch.encode(first)
        self._seq = last + 1
        if len(datagram) + 4096 > self._send_buffer:
            self._send_buffer = max(len(datagram) * 2 + 4096, 1 << 20)
            self._buffer(socket.SO_SNDBUF, 32, self._send_buffer)    # 32: SO_SNDBUFFORCE
        try:
            self.sock.send(datagram)
        except OSError as exc:
            raise NetlinkError(f"nf_tables batch of {len(batch)} messages not sent: {exc.strerror}") from None
        self._answers(batch, first, last)

    def _answers(self, batch: Batch, first: int, last: int) -> None:
        acknowledged = False
        errors: list[str] = []
        deadline = time.monotonic() + 10.0
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                if acknowledged:
                    break                # everything the kernel queued during `send` is read
                left = deadline - time.monotonic()
                if left <= 0:
                    raise NetlinkError(f"no answer from nf_tables to a batch of {len(batch)} messages") from None
                select.select([self.sock], [], [], left)
                continue
            except OSError as exc:
                if exc.errno == errno_codes.ENOBUFS:       # errors overflowed the buffer: it failed
                    errors.append("too many errors to read (ENOBUFS)")
                    acknowledged = True
                    continue
                raise NetlinkError(f"reading nf_tables' answer: {exc.strerror}") from None
            for seq, code, text in _errors(data):
                if not first <= seq <= last + 1:
                    continue                     # left over from an earlier batch
                if code:
                    errors.append(f"{_describe(batch, seq - first - 1)}: {os.strerror(-code)}"
                                  + (f" ({text})" if text else ""))
                    acknowledged = True          # refused: the kernel applied nothing
                elif seq == last:
                    acknowledged = True
        if errors:
            raise NetlinkError("nf_tables refused the batch: " + "; ".join(errors[:5])
                               + (f"; and {len(errors) - 5} more" if len(errors) > 5 else ""))

    def close(self) -> None:
        self.sock.close()


def _errors(data: bytes) -> list[tuple[int, int, str]]:
    """(request sequence number, error code (0: acknowledged), extended-ack text) of each NLMSG_ERROR."""
    out = []
    offset = 0
    while offset + 16 <= len(data):
        length, kind, flags, seq, _pid = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        if kind == NLMSG_ERROR and length >= 36:
            code, request_length = struct.unpack_from("=iI", data, offset + 16)
            text = ""
            if flags & NLM_F_ACK_TLVS:
                # the request follows the code: its header only when capped (or a plain ack), else all of it
                echoed = 16 if flags & NLM_F_CAPPED or not code else (request_length + 3) & ~3
                tlv, end = offset + 20 + echoed, offset + length
                while tlv + 4 <= end:
                    tlv_length, tlv_kind = struct.unpack_from("=HH", data, tlv)
                    if tlv_length < 4:
                        break
                    if tlv_kind == NLMSGERR_ATTR_MSG:
                        text = data[tlv + 4:tlv + tlv_length].rstrip(b"\0").decode(errors="replace")
                    tlv += (tlv_length + 3) & ~3
            out.append((seq, code, text))
        offset += (length + 3) & ~3
    return out
