"""Digest verification of streamed content.

A layer is hashed as it streams into decompression and tar application, so the check can only come at
the end: `VerifyingReader` raises DigestMismatch from its last step, and the consumer must run it to the
end (a gzip stream may finish before its padding does) before trusting what it wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator

from dockyard.distribution.errors import DigestMismatch, RegistryError

__all__ = ["DigestVerifier", "VerifyingReader", "layer_mismatch", "manifest_mismatch"]

_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def layer_mismatch(digest: str) -> DigestMismatch:
    return DigestMismatch(f"filesystem layer verification failed for digest {digest}")


def manifest_mismatch(digest: str) -> DigestMismatch:
    return DigestMismatch(f"manifest verification failed for digest {digest}")


class DigestVerifier:
    """Hashes bytes as they pass; `verify()` raises DigestMismatch unless they matched `digest`."""

    def __init__(self, digest: str) -> None:
        algorithm, _, self._expected = digest.partition(":")
        factory = _ALGORITHMS.get(algorithm)
        if factory is None:
            raise RegistryError(f"unsupported digest algorithm: {digest}")
        self.digest = digest
        self._hash = factory()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    @property
    def verified(self) -> bool:
        return self._hash.hexdigest() == self._expected

    def verify(self, error: DigestMismatch | None = None) -> None:
        if not self.verified:
            raise error or layer_mismatch(self.digest)


class VerifyingReader:
    """An async iterator over `chunks` that hashes them and raises DigestMismatch at the end on mismatch.

    `size`, when known, is checked too, so a short stream is reported even if the source ended cleanly.
    """

    def __init__(
        self,
        chunks: AsyncIterable[bytes],
        digest: str,
        size: int | None = None,
        error: DigestMismatch | None = None,
    ) -> None:
        self._chunks = chunks
        self._verifier = DigestVerifier(digest)
        self._size = size
        self._error = error
        self.digest = digest

    @property
    def bytes_read(self) -> int:
        return self._verifier.size

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._run()

    async def _run(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            self._verifier.update(chunk)
            if self._size is not None and self._verifier.size > self._size:
                raise self._error or layer_mismatch(self.digest)
            yield chunk
        if self._size is not None and self._verifier.size != self._size:
            raise self._error or layer_mismatch(self.digest)
        self._verifier.verify(self._error)

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self])
