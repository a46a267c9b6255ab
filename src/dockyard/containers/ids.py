"""Container and exec IDs (64 hex digits, as Docker's) and how a user's reference finds a container."""

from __future__ import annotations

import secrets
from collections.abc import Mapping

__all__ = [
    "AmbiguousPrefix",
    "InvalidIdentifier",
    "NoSuchContainer",
    "generate_id",
    "resolve",
    "short_id",
]


class NoSuchContainer(LookupError):
    """404 in the API."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"No such container: {ref}")


class AmbiguousPrefix(LookupError):
    """An ID prefix shared by several containers (400 in the API, as in Docker)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        super().__init__(f"multiple IDs found with provided prefix: {prefix}")


class InvalidIdentifier(ValueError):
    def __init__(self, ref: str) -> None:
        super().__init__(f'invalid name or ID supplied: "{ref}"')


def generate_id() -> str:
    """A random 64-hex ID whose short form (12 digits) is not all digits: that form is the default hostname,
    and a numeric hostname breaks resolvers (Docker avoids it for the same reason)."""
    while True:
        new = secrets.token_hex(32)
        if not new[:12].isdigit():
            return new


def short_id(full_id: str) -> str:
    return full_id[:12]


def _bare(name: str) -> str:
    return name[1:] if name.startswith("/") else name


def resolve(ref: str, containers: Mapping[str, str]) -> str:
    """The full ID `ref` means, given {ID: name} (names with or without their '/'). Docker's order: an exact
    ID, then an exact name, then a unique ID prefix."""
    if not ref:
        raise InvalidIdentifier(ref)
    if ref in containers:
        return ref
    name = _bare(ref)
    for cid, cname in containers.items():
        if _bare(cname) == name:
            return cid
    matches = [cid for cid in containers if cid.startswith(ref)]
    if len(matches) > 1:
        raise AmbiguousPrefix(ref)
    if not matches:
        raise NoSuchContainer(ref)
    return matches[0]
