"""Docker image references: parsing and normalization with Docker's grammar, rules and messages.

The grammar follows distribution/reference (what the docker CLI and dockerd use)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path
    domain     := host [ ":" port ]          host: DNS-ish name, IPv4, or [IPv6]
    path       := component [ "/" component ]*
    component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex

Normalization (``httpd`` -> ``docker.io/library/httpd:latest``) and the error texts match the docker CLI
byte for byte, because users and tools (docker-py, compose) compare against them.
"""

from __future__ import annotations

import re

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "InvalidReference",
    "Reference",
    "is_image_id_prefix",
    "parse_reference",
    "validate_digest",
    "validate_tag",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
# Docker counts only the path ("library/httpd"), not the domain, since distribution/reference v0.6.0.
MAX_PATH_LENGTH = 255

# Patterns mirror distribution/reference's regexp.go. The separator there is `[._]|__|[-]*`, whose empty
# alternative makes `[a-z0-9]+(sep[a-z0-9]+)*` a nested quantifier that Python's backtracking engine would
# take exponential time on; requiring a non-empty separator accepts exactly the same strings.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

# re.ASCII: Go's \w is ASCII-only. Always used with fullmatch: Python's `$` would accept a trailing newline.
_REFERENCE_RE = re.compile(rf"((?:{_DOMAIN}/)?{_PATH})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_NAME_RE = re.compile(rf"(?:({_DOMAIN})/)?({_PATH})", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}")
_IMAGE_ID_PREFIX_RE = re.compile(r"(?:sha256:)?[a-f0-9]{1,64}")
# go-digest's grammar for algorithms it does not know: decides "invalid format" vs "unsupported".
_GO_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
# The algorithms dockerd and the docker CLI have registered, with their hex lengths.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX_RE = re.compile(r"[a-f0-9]+")

ERR_FORMAT = "invalid reference format"
ERR_UPPERCASE = "repository name must be lowercase"
ERR_TOO_LONG = f"repository name must not be more than {MAX_PATH_LENGTH} characters"
ERR_TAG_FORMAT = "invalid tag format"
ERR_DIGEST_FORMAT = "invalid checksum digest format"
ERR_DIGEST_LENGTH = "invalid checksum digest length"
ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm"


class InvalidReference(ValueError):
    """A string that is not a valid image reference; str() is Docker's message for it."""


class Reference:
    """A normalized image reference: always has a domain; tag and digest are each optional.

    A reference may carry both a tag and a digest (`name:tag@digest`), as Docker accepts; the digest
    is what identifies the content then. Immutable. A plain class rather than a frozen dataclass: the
    CLI imports this module, and dataclasses costs it ~12 ms of start-up.
    """

    __slots__ = ("domain", "path", "tag", "digest")
    domain: str
    path: str
    tag: str | None
    digest: str | None

    def __init__(self, domain: str, path: str, tag: str | None = None, digest: str | None = None) -> None:
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "tag", tag)
        object.__setattr__(self, "digest", digest)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Reference is immutable: cannot set {name}")

    def _key(self) -> tuple[str, str, str | None, str | None]:
        return (self.domain, self.path, self.tag, self.digest)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Reference(domain={self.domain!r}, path={self.path!r}, tag={self.tag!r}, digest={self.digest!r})"
        )

    @property
    def repository(self) -> str:
        """The full repository name: ``docker.io/library/httpd``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker shows it: ``httpd``, ``user/app``, ``host:5000/a/b``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        # Only single-level official names lose "library/": "library/a/b" keeps it, as Docker does.
        if self.path.startswith(OFFICIAL_REPO_PREFIX):
            rest = self.path[len(OFFICIAL_REPO_PREFIX) :]
            if "/" not in rest:
                return rest
        return self.path

    @property
    def is_docker_hub(self) -> bool:
        return self.domain == DEFAULT_DOMAIN

    def __str__(self) -> str:
        return self.repository + self._suffix()

    def familiar(self) -> str:
        """The reference as the docker CLI prints it: ``httpd:latest``, ``host:5000/a@sha256:...``."""
        return self.familiar_name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """The same reference with `tag` (the digest, if any, is kept, as distribution's WithTag does)."""
        return Reference(self.domain, self.path, validate_tag(tag), self.digest)

    def with_digest(self, digest: str) -> Reference:
        """The same reference with `digest` (the tag, if any, is kept, as distribution's WithDigest does)."""
        return Reference(self.domain, self.path, self.tag, validate_digest(digest))

    def name_only(self) -> Reference:
        """The bare repository, without tag or digest."""
        return Reference(self.domain, self.path)

    def _suffix(self) -> str:
        suffix = f":{self.tag}" if self.tag is not None else ""
        if self.digest is not None:
            suffix += f"@{self.digest}"
        return suffix


def parse_reference(text: str, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse a reference the way ``docker pull TEXT`` does, normalizing familiar names.

    `default_tag` is added when the reference has neither tag nor digest; pass None to keep it bare.
    Raises InvalidReference with the docker CLI's message.
    """
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(text)
    # Docker checks case on everything before the first ':' of the remainder (so a digest algorithm is
    # included when there is no tag); its message names that text, e.g. "library/Httpd".
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(f"{ERR_FORMAT}: repository name ({remote}) must be lowercase")
    ref = _parse_canonical(f"{domain}/{remainder}")
    if ref.tag is None and ref.digest is None and default_tag is not None:
        ref = Reference(ref.domain, ref.path, default_tag, None)
    return ref


def validate_tag(tag: str) -> str:
    """Return `tag` if it is a valid tag, else raise InvalidReference("invalid tag format")."""
    if not _TAG_RE.fullmatch(tag):
        raise InvalidReference(ERR_TAG_FORMAT)
    return tag


def validate_digest(digest: str) -> str:
    """Return `digest` if it is a valid `algorithm:hex` digest, else raise with go-digest's message."""
    algorithm, sep, encoded = digest.partition(":")
    if not sep or not algorithm or not encoded:
        raise InvalidReference(ERR_DIGEST_FORMAT)
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        if not _GO_DIGEST_RE.fullmatch(digest):
            raise InvalidReference(ERR_DIGEST_FORMAT)
        raise InvalidReference(ERR_DIGEST_UNSUPPORTED)
    # Length is checked before the alphabet, so 64 uppercase hex digits are a "format" error.
    if len(encoded) != length:
        raise InvalidReference(ERR_DIGEST_LENGTH)
    if not _LOWER_HEX_RE.fullmatch(encoded):
        raise InvalidReference(ERR_DIGEST_FORMAT)
    return digest


def is_image_id_prefix(text: str) -> bool:
    """Whether `text` can name an image by ID: hex (a short ID up to the full 64) or ``sha256:<hex>``.

    Docker resolves such strings as names first (``abc123`` is also a valid repository) and falls back
    to an ID-prefix search, so callers should try a name lookup before the ID lookup.
    """
    return _IMAGE_ID_PREFIX_RE.fullmatch(text) is not None


def _split_docker_domain(name: str) -> tuple[str, str]:
    """Split off the domain Docker-style; the remainder keeps any tag and digest."""
    maybe_domain, slash, maybe_remote = name.partition("/")
    if not slash:
        # A single element is always a Docker Hub official image, even "localhost" or "example.com".
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain or maybe_domain.lower() != maybe_domain:
        # Namespaces are lowercase, so an uppercase first element can only be a host name.
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _parse_canonical(text: str) -> Reference:
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        lowered = text.lower()
        if lowered != text and _REFERENCE_RE.fullmatch(lowered):
            raise InvalidReference(ERR_UPPERCASE)
        raise InvalidReference(ERR_FORMAT)
    name, tag, digest = match.groups()
    name_match = _NAME_RE.fullmatch(name)
    assert name_match is not None  # the reference pattern embeds the name pattern
    domain, path = name_match.groups()
    if len(path) > MAX_PATH_LENGTH:
        raise InvalidReference(ERR_TOO_LONG)
    if digest is not None:
        validate_digest(digest)
    # Callers always pass "domain/..." so a domain is always found; keep the type honest anyway.
    return Reference(domain=domain or "", path=path, tag=tag, digest=digest)
