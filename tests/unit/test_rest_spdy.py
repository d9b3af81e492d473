"""controlplane/rest/spdy.py: the SPDY/3.1 frames kubectl's port-forward sends, read as a Go
client (moby/spdystream) writes them, and the frames written back read as it reads them."""

from __future__ import annotations

import struct
import zlib

import pytest

from controlplane.rest import spdy


def _client_syn_stream(deflate: "zlib._Compress", stream_id: int, headers: dict[str, str]) -> bytes:
    block = struct.pack(">I", len(headers)) + b"".join(
        struct.pack(">I", len(k)) + k.encode() + struct.pack(">I", len(v)) + v.encode() for k, v in headers.items())
    compressed = deflate.compress(block) + deflate.flush(zlib.Z_SYNC_FLUSH)
    body = struct.pack(">IIBB", stream_id, 0, 0, 0) + compressed
    return struct.pack(">HHI", 0x8003, spdy.SYN_STREAM, len(body)) + body


def test_the_dictionary_is_spdy3s() -> None:
    # 1423 bytes; its Adler-32 is the DICTID the Go client's header blocks declare (a wrong dictionary
    # fails to inflate them: tests/e2e/test_kubectl.py's port-forward reads them).
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


def test_syn_streams_data_and_ping_read_across_chunk_boundaries() -> None:
    client = zlib.compressobj(zdict=spdy.DICTIONARY)   # one compression context for the session
    wire = (_client_syn_stream(client, 1, {"streamtype": "error", "port": "8080", "requestid": "0"})
            + _client_syn_stream(client, 3, {"streamtype": "data", "port": "8080", "requestid": "0"})
            + spdy.Codec.data(3, b"GET / HTTP/1.0\r\n\r\n", fin=True)
            + struct.pack(">HHI", 0x8003, spdy.PING, 4) + struct.pack(">I", 7))
    codec = spdy.Codec()
    frames = [f for i in range(0, len(wire), 5) for f in codec.feed(wire[i:i + 5])]
    assert [(f.control, f.type, f.stream_id) for f in frames] == [
        (True, spdy.SYN_STREAM, 1), (True, spdy.SYN_STREAM, 3), (False, 0, 3), (True, spdy.PING, 0)]
    assert frames[0].headers == {"streamtype": "error", "port": "8080", "requestid": "0"}
    assert frames[1].headers["streamtype"] == "data"
    assert (frames[2].data, frames[2].flags & spdy.FLAG_FIN) == (b"GET / HTTP/1.0\r\n\r\n", spdy.FLAG_FIN)
    assert codec.ping(frames[3].data)[8:] == struct.pack(">I", 7)


def test_syn_replies_inflate_with_the_dictionary_in_one_stream() -> None:
    codec = spdy.Codec()
    inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)
    for stream_id in (1, 3):
        frame = codec.syn_reply(stream_id)
        version, kind, flags_length = struct.unpack(">HHI", frame[:8])
        assert (version, kind, flags_length & 0xFFFFFF) == (0x8003, spdy.SYN_REPLY, len(frame) - 8)
        assert struct.unpack(">I", frame[8:12])[0] == stream_id
        assert inflate.decompress(frame[12:]) == struct.pack(">I", 0)   # no headers


def test_another_version_is_refused() -> None:
    with pytest.raises(spdy.ProtocolError, match="SPDY version 2"):
        spdy.Codec().feed(struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\0\0\0\1")
