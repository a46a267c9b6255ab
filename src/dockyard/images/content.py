"""The content store: blobs (layers, configs, manifests) kept by digest, verified, written atomically.

A blob is written into `ingest/` under a temporary name while its sha256 is computed, fsynced, then
renamed to `blobs/sha256/<hex>` only if the digest matches. A crash leaves at most a file in `ingest/`,
which the next start removes; a listed blob is always whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


class DigestMismatch(Exception):
    pass


class BlobNotFound(Exception):
    pass


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_hex(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    if algorithm != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"invalid digest {digest!r}")
    return hexpart


class BlobWriter:
    """Streams one blob into the store. `commit()` verifies the digest and publishes it atomically."""

    def __init__(self, store: ContentStore, expected: str | None) -> None:
        self._store = store
        self.expected = expected
        fd, path = tempfile.mkstemp(dir=store.ingest_dir, prefix="blob-")
        self._file = os.fdopen(fd, "wb")
        self.path = Path(path)
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def flush(self) -> None:
        """For writers such as gzip.GzipFile that flush their file object; commit() does the fsync."""

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self.digest
        if self.expected is not None and digest != self.expected:
            self.path.unlink(missing_ok=True)
            raise DigestMismatch(f"filesystem layer verification failed for digest {self.expected}")
        target = self._store.path(digest)
        os.replace(self.path, target)
        return digest

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


class ContentStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    def recover(self) -> int:
        """Remove what interrupted writes left in ingest/ (called at start-up, before any pull runs)."""
        removed = 0
        for entry in self.ingest_dir.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        return removed

    def path(self, digest: str) -> Path:
        return self.blob_dir / digest_hex(digest)

    def has(self, digest: str) -> bool:
        try:
            return self.path(digest).is_file()
        except ValueError:
            return False

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found") from None

    def open(self, digest: str):
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise BlobNotFound(f"blob {digest} not found") from None

    def writer(self, expected: str | None = None) -> BlobWriter:
        return BlobWriter(self, expected)

    def put(self, data: bytes, expected: str | None = None) -> str:
        if expected is not None and self.has(expected):
            return expected
        writer = self.writer(expected)
        try:
            writer.write(data)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    def delete(self, digest: str) -> bool:
        try:
            self.path(digest).unlink()
            return True
        except (FileNotFoundError, ValueError):
            return False

    def digests(self) -> Iterator[str]:
        for entry in self.blob_dir.iterdir():
            yield "sha256:" + entry.name
