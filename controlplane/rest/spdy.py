"""The part of SPDY/3.1 that `kubectl port-forward` speaks, as a server.

kubectl 1.31+ opens `pods/{name}/portforward` as a WebSocket with the subprotocol
`SPDY/3.1+portforward.k8s.io` and tunnels SPDY through it: the binary messages, joined, are
one SPDY byte stream each way. (Older clients upgrade the HTTP connection to SPDY itself;
that fallback is not served.) What is read here:

- frames: control frames (`1` bit, version 3, type, flags, 24-bit length) and data frames
  (31-bit stream id, flags — FIN is 1 — and length);
- SYN_STREAM (type 1: stream id, associated id, priority, slot, then a header block),
  RST_STREAM (3), PING (6, echoed), GOAWAY (7); SETTINGS, WINDOW_UPDATE and HEADERS are
  ignored (the Go client, moby/spdystream, does no flow control either);
- header blocks: zlib streams, one per direction for the whole session, primed with the
  SPDY/3 dictionary (below, from the SPDY/3 draft, section 2.6.10.1) and flushed with
  Z_SYNC_FLUSH per frame; inside, a 32-bit count, then 32-bit-length-prefixed names and values.

And written: SYN_REPLY (type 2) to accept a stream, data frames (with FIN to half-close),
RST_STREAM and GOAWAY.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
VERSION = 3
MAX_FRAME = 1 << 24

_WORDS = ("options head post put delete trace accept accept-charset accept-encoding accept-language accept-ranges "
          "age allow authorization cache-control connection content-base content-encoding content-language "
          "content-length content-location content-md5 content-range content-type date etag expect expires from "
          "host if-match if-modified-since if-none-match if-range if-unmodified-since last-modified location "
          "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after server te trailer "
          "transfer-encoding upgrade user-agent vary via warning www-authenticate method get status").split() + \
    ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_TAIL = ("100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
         "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
         "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
         "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
         "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
         "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.")
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


class ProtocolError(Exception):
    """The peer sent something that is not SPDY/3 as read here."""


@dataclass
class Frame:
    control: bool
    type: int            # control frames: SYN_STREAM, ...; data frames: 0
    flags: int
    stream_id: int       # data frames, and the control frames that name a stream
    data: bytes          # a data frame's payload; a control frame's body after its stream id
    headers: dict[str, str] | None = None   # SYN_STREAM's


class Codec:
    """Frames in from a byte stream, frames out as bytes; the two header compression contexts."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)

    def feed(self, data: bytes) -> list[Frame]:
        """The whole frames `data` completes (the rest waits for more)."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= 8:
            length = int.from_bytes(self._buffer[5:8], "big")
            if len(self._buffer) < 8 + length:
                break
            head, body = bytes(self._buffer[:8]), bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            frames.append(self._frame(head, body))
        return frames

    def _frame(self, head: bytes, body: bytes) -> Frame:
        flags = head[4]
        if not head[0] & 0x80:
            return Frame(False, 0, flags, int.from_bytes(head[:4], "big") & 0x7FFFFFFF, body)
        version = int.from_bytes(head[:2], "big") & 0x7FFF
        kind = int.from_bytes(head[2:4], "big")
        if version != VERSION:
            raise ProtocolError(f"SPDY version {version}, not {VERSION}")
        stream_id = int.from_bytes(body[:4], "big") & 0x7FFFFFFF if kind in (SYN_STREAM, SYN_REPLY, RST_STREAM,
                                                                             HEADERS, WINDOW_UPDATE) else 0
        frame = Frame(True, kind, flags, stream_id, body[4:] if stream_id else body)
        if kind in (SYN_STREAM, SYN_REPLY, HEADERS):
            block = body[10:] if kind == SYN_STREAM else body[4:]
            headers = self._headers(block)      # every block feeds the shared context, in order
            if kind == SYN_STREAM:
                frame.headers = headers
        return frame

    def _headers(self, block: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(block)
        except zlib.error as exc:
            raise ProtocolError(f"a header block cannot be inflated: {exc}") from None
        out: dict[str, str] = {}
        count, at = struct.unpack_from(">I", raw)[0], 4
        for _ in range(count):
            size = struct.unpack_from(">I", raw, at)[0]
            name = raw[at + 4:at + 4 + size].decode()
            at += 4 + size
            size = struct.unpack_from(">I", raw, at)[0]
            out[name] = raw[at + 4:at + 4 + size].decode().split("\x00")[0]
            at += 4 + size
        return out

    @staticmethod
    def _control(kind: int, flags: int, body: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body

    def syn_reply(self, stream_id: int) -> bytes:
        block = self._deflate.compress(struct.pack(">I", 0)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return self._control(SYN_REPLY, 0, struct.pack(">I", stream_id) + block)

    def rst_stream(self, stream_id: int, status: int = 5) -> bytes:   # 5: CANCEL
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, body: bytes) -> bytes:
        return self._control(PING, 0, body)

    def goaway(self, last_stream: int) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_stream, 0))

    @staticmethod
    def data(stream_id: int, payload: bytes, *, fin: bool = False) -> bytes:
        return struct.pack(">II", stream_id, ((FLAG_FIN if fin else 0) << 24) | len(payload)) + payload
