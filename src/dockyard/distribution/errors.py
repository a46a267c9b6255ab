"""Registry client errors: one class per kind of failure, each str() a one-line message worded as Docker's.

`http_status` is the status dockerd answers with when the error ends an API call, so the API layer can
map these without knowing the registry protocol.
"""

from __future__ import annotations

import json
from typing import ClassVar

__all__ = [
    "AccessDenied",
    "DigestMismatch",
    "InvalidPlatform",
    "InvalidRegistryAuth",
    "ManifestUnknown",
    "NoMatchingPlatform",
    "NotFound",
    "RegistryError",
    "RegistryUnreachable",
    "Unauthorized",
    "UnsupportedManifest",
    "errcode_text",
    "parse_error_body",
]


class RegistryError(Exception):
    """Any failure talking to a registry or making sense of what it sent.

    `code` is the registry's error code (``MANIFEST_UNKNOWN``, ``DENIED``...) when it sent one, and
    `status` the HTTP status of the response, when there was a response.
    """

    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, code: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return self.message


class RegistryUnreachable(RegistryError):
    """No HTTP exchange was possible (refused, DNS, TLS, timeout, connection dropped for good)."""


class Unauthorized(RegistryError):
    """The registry or its token server rejected the credentials (or demanded some)."""

    http_status = 401


class AccessDenied(Unauthorized):
    """``pull access denied for X, repository does not exist or may require 'docker login'``.

    A registry cannot tell "no such repository" from "not yours" without leaking which exist, so it
    denies both; dockerd answers 404 for it, as for a missing image.
    """

    http_status = 404


class NotFound(RegistryError):
    """The repository or blob does not exist."""

    http_status = 404


class ManifestUnknown(NotFound):
    """``manifest for X not found: manifest unknown: ...``"""


class DigestMismatch(RegistryError):
    """Content whose sha256 is not the digest it was asked for: never to be stored."""


class NoMatchingPlatform(RegistryError):
    """``no matching manifest for linux/amd64 in the manifest list entries``"""


class UnsupportedManifest(RegistryError):
    """A manifest we cannot pull: schema 1, an unknown media type, or a malformed body."""

    http_status = 400


class InvalidPlatform(RegistryError, ValueError):
    """A ``--platform`` value that does not parse."""

    http_status = 400


class InvalidRegistryAuth(RegistryError, ValueError):
    """An ``X-Registry-Auth`` header that is not base64url-encoded JSON."""

    http_status = 400


def errcode_text(code: str, message: str) -> str:
    """A registry error as Go's errcode package prints it: ``manifest unknown: manifest unknown``."""
    words = code.replace("_", " ").lower() if code else "unknown"
    return f"{words}: {message or words}"


def parse_error_body(body: bytes) -> tuple[str, str]:
    """(code, message) of the first error in a registry's JSON error body; ("", "") when there is none.

    Registries answer ``{"errors": [{"code", "message", "detail"}]}``; token servers (Docker Hub's)
    answer ``{"details": "..."}`` instead, which Docker reads as a message without a code.
    """
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "", ""
    if not isinstance(doc, dict):
        return "", ""
    errors = doc.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        return str(first.get("code") or "UNKNOWN"), str(first.get("message") or "")
    details = doc.get("details")
    if isinstance(details, str) and details:
        return "", details
    return "", ""
