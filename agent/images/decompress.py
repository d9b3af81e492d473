"""Streaming decompression of layer tarballs: gzip, zstd or plain tar.

The compression is detected from the stream's first bytes (as Docker does)
rather than trusted from the media type. The readers are plain `read(n)`
streams that `unpack.py` hands to tarfile; they keep memory bounded however
well the data compresses, and report a stream that ends early ("truncated
gzip") as a `LayerError` instead of silently giving a short tar.

zstd uses the `zstandard` module when it is installed and otherwise the
``zstd`` command (Debian package zstd) through a pipe; without either a zstd
layer is refused with a message saying what to install.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import zlib
from typing import BinaryIO

from agent.images.errors import LayerError

_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class _Reader:
    """Base: `read(n)` over an internal buffer filled by `_fill()`.

    The buffer is consumed by moving an offset, not by deleting its front, so
    the many small reads of tar headers do not each copy the whole buffer.
    """

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._eof = False

    def _fill(self) -> None:
        raise NotImplementedError

    def _append(self, data: bytes) -> None:
        self._buf = self._buf[self._pos:] + data
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            while not self._eof:
                self._fill()
            size = len(self._buf) - self._pos
        while len(self._buf) - self._pos < size and not self._eof:
            self._fill()
        data = self._buf[self._pos:self._pos + size]
        self._pos += len(data)
        return data

    def close(self) -> None:
        pass


class _PlainReader(_Reader):
    def __init__(self, raw: BinaryIO, prefix: bytes) -> None:
        super().__init__()
        self._raw = raw
        self._buf = prefix

    def _fill(self) -> None:
        data = self._raw.read(_CHUNK)
        if data:
            self._append(data)
        else:
            self._eof = True


class _GzipReader(_Reader):
    """gzip, including several concatenated members (allowed by RFC 1952)."""

    def __init__(self, raw: BinaryIO, prefix: bytes) -> None:
        super().__init__()
        self._raw = raw
        self._input = prefix
        self._inflate = zlib.decompressobj(wbits=31)
        self._in_member = True

    def _fill(self) -> None:
        if not self._input:
            self._input = self._raw.read(_CHUNK)
            if not self._input:
                if self._in_member:
                    raise LayerError("truncated gzip stream: the layer ends in the middle of compressed data")
                self._eof = True
                return
        if not self._in_member:
            if not self._input.strip(b"\0"):
                self._input = b""  # zero padding after the last member is tolerated
                return
            self._inflate = zlib.decompressobj(wbits=31)
            self._in_member = True
        try:
            out = self._inflate.decompress(self._input, _CHUNK)
        except zlib.error as exc:
            raise LayerError(f"corrupt gzip stream: {exc}") from None
        if self._inflate.eof:
            self._in_member = False
            self._input = self._inflate.unused_data
        else:
            self._input = self._inflate.unconsumed_tail
        self._append(out)


class _ZstdModuleReader(_Reader):
    def __init__(self, raw: BinaryIO, prefix: bytes, zstandard) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self._stream = zstandard.ZstdDecompressor().stream_reader(_Prefixed(raw, prefix), read_across_frames=True)
        self._errors = (zstandard.ZstdError,)

    def _fill(self) -> None:
        try:
            data = self._stream.read(_CHUNK)
        except self._errors as exc:
            raise LayerError(f"corrupt zstd stream: {exc}") from None
        if data:
            self._append(data)
        else:
            self._eof = True


class _ZstdCommandReader(_Reader):
    """Decompress through ``zstd -dc``: a feeder thread writes, we read stdout."""

    def __init__(self, raw: BinaryIO, prefix: bytes, command: str) -> None:
        super().__init__()
        self._proc = subprocess.Popen([command, "-dcq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE)
        self._feed_error: BaseException | None = None
        self._feeder = threading.Thread(target=self._feed, args=(raw, prefix), daemon=True,
                                        name="zstd-feeder")
        self._feeder.start()

    def _feed(self, raw: BinaryIO, prefix: bytes) -> None:
        assert self._proc.stdin is not None
        try:
            data = prefix
            while data:
                self._proc.stdin.write(data)
                data = raw.read(_CHUNK)
        except BrokenPipeError:
            pass
        except BaseException as exc:  # reported by the reading side
            self._feed_error = exc
        finally:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass

    def _fill(self) -> None:
        assert self._proc.stdout is not None
        data = self._proc.stdout.read1(_CHUNK)
        if data:
            self._append(data)
            return
        self._eof = True
        self._feeder.join()
        assert self._proc.stderr is not None
        message = self._proc.stderr.read().decode(errors="replace").strip()
        if self._proc.wait() != 0:
            raise LayerError(f"corrupt or truncated zstd stream: {message or 'zstd failed'}")
        if self._feed_error is not None:
            raise self._feed_error

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._feeder.join()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()


class _Prefixed:
    def __init__(self, raw: BinaryIO, prefix: bytes) -> None:
        self._raw, self._prefix = raw, prefix

    def read(self, size: int = -1) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return self._raw.read(size)


def open_decompressed(raw: BinaryIO) -> tuple[_Reader, str]:
    """A reader of `raw`'s uncompressed bytes and the compression found ("gzip", "zstd", "none")."""
    prefix = raw.read(4)
    if prefix.startswith(_GZIP_MAGIC):
        return _GzipReader(raw, prefix), "gzip"
    if prefix == _ZSTD_MAGIC:
        try:
            import zstandard  # type: ignore[import-not-found]
        except ImportError:
            command = shutil.which("zstd")
            if command is None:
                raise LayerError("zstd-compressed layer, but neither the Python module zstandard "
                                 "nor the zstd command is installed") from None
            return _ZstdCommandReader(raw, prefix, command), "zstd"
        return _ZstdModuleReader(raw, prefix, zstandard), "zstd"
    return _PlainReader(raw, prefix), "none"
