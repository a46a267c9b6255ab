"""Streaming a layer from the network into a snapshot: a pipe between the event loop and an unpacking
thread, and a reader that decompresses (gzip, zstd or none, by magic bytes) while it hashes the
uncompressed bytes, so the diff ID is known the moment the tar is applied.
"""

from __future__ import annotations

import hashlib
import queue
import zlib
from typing import BinaryIO

try:  # ISA-L inflates gzip about 1.7x faster than zlib; fall back where the wheel is missing
    from isal import isal_zlib as _gzip_zlib
except ImportError:  # pragma: no cover - depends on the platform's wheels
    _gzip_zlib = zlib

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_EOF = object()


class PipeAborted(Exception):
    """The producer gave up (download failed or was cancelled); the consumer must stop."""


class ChunkPipe:
    """Chunks handed from the event loop to a reader thread; bounded, so a slow unpack slows the download."""

    def __init__(self, max_chunks: int = 64) -> None:
        self._queue: queue.Queue[object] = queue.Queue(max_chunks)
        # bytearray: deleting from its front is cheap in CPython, slicing bytes would copy every read.
        self._pending = bytearray()
        self._done = False

    # producer side (event loop)
    def put_nowait(self, chunk: bytes) -> bool:
        try:
            self._queue.put_nowait(chunk)
            return True
        except queue.Full:
            return False

    def put_blocking(self, chunk: object) -> None:
        self._queue.put(chunk)

    def close(self) -> None:
        self._queue.put(_EOF)

    def abort(self, error: BaseException) -> None:
        # Drain so a blocked consumer or producer wakes, then leave the error for the consumer.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(error)

    # consumer side (thread)
    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._pending) < size):
            item = self._queue.get()
            if item is _EOF:
                self._done = True
            elif isinstance(item, BaseException):
                self._done = True
                raise PipeAborted(str(item)) from item
            else:
                self._pending += item  # type: ignore[operator]
        if size < 0 or size >= len(self._pending):
            data = bytes(self._pending)
            self._pending.clear()
        else:
            data = bytes(self._pending[:size])
            del self._pending[:size]
        return data


class DecompressingReader:
    """Reads a possibly compressed layer and yields the tar bytes; `diff_id` is their sha256."""

    def __init__(self, source: BinaryIO | ChunkPipe) -> None:
        self._source = source
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._eof = False
        self.compressed_read = 0  # for "Extracting" progress
        head = self._read_source(4)
        if head.startswith(GZIP_MAGIC):
            self._decompressor = _gzip_zlib.decompressobj(wbits=31)
            self.compression = "gzip"
        elif head.startswith(ZSTD_MAGIC):
            import zstandard

            self._decompressor = zstandard.ZstdDecompressor().decompressobj()
            self.compression = "zstd"
        else:
            self._decompressor = None
            self.compression = "none"
        self._head = head

    def _read_source(self, size: int) -> bytes:
        data = self._source.read(size)
        self.compressed_read += len(data)
        return data

    def read(self, size: int = -1) -> bytes:
        want = size if size >= 0 else 1 << 62
        while len(self._buffer) < want and not self._eof:
            if self._head:
                raw, self._head = self._head, b""
            else:
                raw = self._read_source(1 << 16)
            if not raw:
                self._eof = True
                if self._decompressor is not None and hasattr(self._decompressor, "flush"):
                    tail = self._decompressor.flush()
                    self._hash.update(tail)
                    self._buffer += tail
                if self.compression == "gzip" and not self._decompressor.eof:
                    raise OSError("unexpected EOF in gzip stream")
                break
            if self._decompressor is None:
                out = raw
            else:
                try:
                    out = self._decompressor.decompress(raw)
                    # A gzip file may hold several members back to back (pigz, concatenated layers).
                    while (
                        self.compression == "gzip"
                        and self._decompressor.eof
                        and self._decompressor.unused_data
                    ):
                        rest = self._decompressor.unused_data
                        self._decompressor = _gzip_zlib.decompressobj(wbits=31)
                        out += self._decompressor.decompress(rest)
                except Exception as e:  # zstandard.ZstdError has no common base worth importing here
                    raise OSError(f"invalid {self.compression} stream: {e}") from e
            self._hash.update(out)
            self._buffer += out
        data = bytes(self._buffer[:want])
        del self._buffer[:want]
        return data

    @property
    def diff_id(self) -> str:
        return "sha256:" + self._hash.hexdigest()
