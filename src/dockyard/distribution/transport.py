"""aiohttp plumbing: bounded body reads, and transport failures worded as Go's net/http words them.

Users and tools match dockerd's messages (``Get "http://host:5000/v2/": dial tcp 127.0.0.1:5000:
connect: connection refused``), so a refused connection here reads the same.
"""

from __future__ import annotations

import asyncio
import errno
import os
import ssl

import aiohttp

from dockyard.distribution.errors import RegistryError

__all__ = ["TRANSPORT_ERRORS", "describe_transport_error", "go_op", "read_body"]

# What a broken or impossible connection raises: worth a retry or the next endpoint, never a parse.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


def go_op(method: str) -> str:
    """Go's url.Error prints the method capitalized: ``Get``, ``Head``, ``Post``."""
    return method[:1].upper() + method[1:].lower()


async def read_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, refusing (RegistryError) one larger than `limit` bytes."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_any():
        total += len(chunk)
        if total > limit:
            raise RegistryError(f"response body from {resp.url} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def describe_transport_error(method: str, url: str, exc: BaseException) -> str:
    """One line in Go's words for a failed exchange: ``Get "url": dial tcp ADDR: connect: ...``."""
    return f'{go_op(method)} "{url}": {_cause(exc)}'


def _addr(exc: aiohttp.ClientConnectorError) -> str:
    host, port = exc.host, exc.port
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _cause(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"x509: {_ssl_reason(exc.certificate_error)}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"dial tcp: lookup {exc.host}: no such host"
    if isinstance(exc, (aiohttp.ClientConnectorSSLError, aiohttp.ClientSSLError)):
        reason = _ssl_reason(getattr(exc, "os_error", exc))
        # What OpenSSL says when the other end answered the handshake in plain HTTP.
        if any(
            s in reason.lower().replace("_", " ") for s in ("wrong version number", "record layer failure")
        ):
            return "http: server gave HTTP response to HTTPS client"
        return f"remote error: tls: {reason}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        err = getattr(os_error, "errno", None)
        if err == errno.ECONNREFUSED:
            return f"dial tcp {_addr(exc)}: connect: connection refused"
        if isinstance(os_error, (TimeoutError, asyncio.TimeoutError)):
            return f"dial tcp {_addr(exc)}: i/o timeout"
        reason = (os.strerror(err) if err else str(os_error)).lower()
        return f"dial tcp {_addr(exc)}: connect: {reason}"
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "net/http: timeout awaiting response headers"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "EOF"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "unexpected EOF"
    if isinstance(exc, ConnectionResetError | aiohttp.ClientConnectionResetError):
        return "read: connection reset by peer"
    if isinstance(exc, aiohttp.ClientOSError) and exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _ssl_reason(err: BaseException) -> str:
    if isinstance(err, ssl.SSLCertVerificationError):
        if "unable to get local issuer" in str(err) or "self-signed" in str(err) or "self signed" in str(err):
            return "certificate signed by unknown authority"
        return err.verify_message or str(err)
    if isinstance(err, ssl.SSLError):
        return err.reason or str(err)
    return str(err)
