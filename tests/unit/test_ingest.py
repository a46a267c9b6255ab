import gzip
import io
import threading

import pytest
import zstandard

from dockyard.images.content import sha256_digest
from dockyard.images.ingest import ChunkPipe, DecompressingReader, PipeAborted

PAYLOAD = b"layer bytes " * 10000


@pytest.mark.parametrize(
    ("blob", "compression"),
    [
        (gzip.compress(PAYLOAD), "gzip"),
        (zstandard.ZstdCompressor().compress(PAYLOAD), "zstd"),
        (PAYLOAD, "none"),
        (gzip.compress(PAYLOAD[:5000]) + gzip.compress(PAYLOAD[5000:]), "gzip"),  # two members
    ],
)
def test_decompresses_by_magic_and_hashes_the_tar(blob, compression):
    reader = DecompressingReader(io.BytesIO(blob))
    out = b""
    while chunk := reader.read(1000):
        out += chunk
    assert reader.compression == compression
    assert out == PAYLOAD
    assert reader.diff_id == sha256_digest(PAYLOAD)
    assert reader.compressed_read == len(blob)


def test_truncated_gzip_is_an_error():
    reader = DecompressingReader(io.BytesIO(gzip.compress(PAYLOAD)[:-20]))
    with pytest.raises(OSError, match="unexpected EOF"):
        while reader.read(4096):
            pass


def test_pipe_hands_chunks_to_a_thread_and_aborts():
    pipe = ChunkPipe(max_chunks=2)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read()))
    reader.start()
    for part in (b"a", b"b", b"c"):
        if not pipe.put_nowait(part):
            pipe.put_blocking(part)
    pipe.close()
    reader.join(5)
    assert got == [b"abc"]
    failing = ChunkPipe()
    failing.abort(RuntimeError("download failed"))
    with pytest.raises(PipeAborted, match="download failed"):
        failing.read(10)
