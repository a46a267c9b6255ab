"""Registry authentication: challenges, credentials, bearer tokens, and docker's ``config.json``.

The flow (distribution's token spec, as Docker Hub runs it): a request answered 401 carries
``WWW-Authenticate: Bearer realm="https://auth.example/token",service="registry.example",scope="..."``;
the client asks the realm for a token for that service and scope (anonymously, or with Basic
credentials), then repeats the request with ``Authorization: Bearer <token>``. Registries that challenge
with ``Basic`` take the credentials on every request instead.

Nothing here imports aiohttp at run time (the token fetch is handed a session), so the CLI's
``login``/``logout`` can use the config.json functions without paying for it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from dockyard.distribution.endpoints import DOCKER_HUB_ALIASES
from dockyard.distribution.errors import (
    InvalidRegistryAuth,
    RegistryError,
    Unauthorized,
    errcode_text,
    parse_error_body,
)

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "DOCKER_HUB_SERVER",
    "AuthConfig",
    "Challenge",
    "TokenCache",
    "credential_key",
    "decode_registry_auth",
    "fetch_token",
    "find_credentials",
    "load_credentials",
    "parse_challenges",
    "remove_credentials",
    "store_credentials",
]

# The key Docker files Docker Hub credentials under, for historical reasons (the v1 index).
DOCKER_HUB_SERVER = "https://index.docker.io/v1/"
# Docker's floor for a token's life: servers that say less (or nothing) get this much.
MIN_TOKEN_LIFETIME = 60
# Tokens are small; anything bigger from a realm is not a token response.
_MAX_TOKEN_RESPONSE = 1 << 20
_CLIENT_ID = "dockyard"

# ------------------------------------------------------------------------------------------- challenges

_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: the scheme (lower case) and its parameters (names lower case)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")

    @property
    def service(self) -> str:
        return self.params.get("service", "")

    @property
    def scope(self) -> str:
        return self.params.get("scope", "")

    @property
    def error(self) -> str:
        """RFC 6750's error: ``insufficient_scope`` means the token (or its absence) lacks access."""
        return self.params.get("error", "")


def parse_challenges(headers: str | Iterable[str]) -> list[Challenge]:
    """Parse one or more ``WWW-Authenticate`` values (RFC 7235) into challenges, in order.

    A header may hold several challenges separated by commas, which also separate parameters: a token
    followed by ``=`` is a parameter of the current challenge, any other token starts a new one.
    """
    values = [headers] if isinstance(headers, str) else list(headers)
    result: list[Challenge] = []
    for value in values:
        result.extend(_parse_header(value))
    return result


def _parse_header(s: str) -> list[Challenge]:
    challenges: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(s)
    while i < n:
        while i < n and s[i] in " \t,":
            i += 1
        start = i
        while i < n and s[i] in _TOKEN_CHARS:
            i += 1
        token = s[start:i]
        if not token:
            i += 1  # a stray character: skip it rather than loop
            continue
        j = i
        while j < n and s[j] in " \t":
            j += 1
        is_param = j < n and s[j] == "=" and not (j + 1 < n and s[j + 1] == "=")
        if not is_param or not challenges:
            if j < n and s[j] == "=":
                # token68 (``Basic abc==``): no parameters to keep, skip to the next comma
                while i < n and s[i] != ",":
                    i += 1
                continue
            challenges.append((token.lower(), {}))
            i = j
            continue
        i = j + 1
        while i < n and s[i] in " \t":
            i += 1
        if i < n and s[i] == '"':
            i += 1
            chars = []
            while i < n and s[i] != '"':
                if s[i] == "\\" and i + 1 < n:
                    i += 1
                chars.append(s[i])
                i += 1
            i += 1  # the closing quote
            value = "".join(chars)
        else:
            start = i
            while i < n and s[i] not in ", \t":
                i += 1
            value = s[start:i]
        challenges[-1][1][token.lower()] = value
    return [Challenge(scheme, params) for scheme, params in challenges]


# ------------------------------------------------------------------------------------------ credentials


@dataclass
class AuthConfig:
    """Credentials for one registry, as Docker's ``AuthConfig``.

    `identity_token` is an OAuth2 refresh token (traded at the realm for access tokens); `registry_token`
    is a bearer token sent to the registry as is.
    """

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)
    server_address: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    @property
    def has_basic(self) -> bool:
        return bool(self.username or self.password)

    def fingerprint(self) -> str:
        """Identifies these credentials in cache keys without holding the secret itself."""
        if self.is_empty:
            return ""
        secret = "\0".join((self.username, self.password, self.identity_token, self.registry_token))
        return hashlib.sha256(secret.encode()).hexdigest()[:32]

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> AuthConfig:
        """From Docker's JSON (``username``, ``password``, ``auth``, ``identitytoken``, ...).

        Keys match case-insensitively, as Go's encoding/json does; ``auth`` (base64 of user:pass) fills
        username and password when those are not given.
        """
        lowered = {str(k).lower(): v for k, v in doc.items()}

        def text(key: str) -> str:
            value = lowered.get(key)
            return value if isinstance(value, str) else ""

        auth = cls(
            username=text("username"),
            password=text("password"),
            identity_token=text("identitytoken"),
            registry_token=text("registrytoken"),
            server_address=text("serveraddress"),
        )
        encoded = text("auth")
        if encoded and not (auth.username or auth.password):
            auth.username, auth.password = _decode_basic_pair(encoded)
        return auth

    def to_dict(self) -> dict[str, str]:
        """Docker's JSON for these credentials (the body of ``POST /auth``, or ``X-Registry-Auth``)."""
        doc = {
            "username": self.username,
            "password": self.password,
            "serveraddress": self.server_address,
            "identitytoken": self.identity_token,
            "registrytoken": self.registry_token,
        }
        return {k: v for k, v in doc.items() if v}

    def encode_header(self) -> str:
        """The ``X-Registry-Auth`` value for these credentials (base64url JSON, as the docker CLI sends)."""
        return base64.urlsafe_b64encode(json.dumps(self.to_dict()).encode()).decode()


def _decode_basic_pair(encoded: str) -> tuple[str, str]:
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = raw.partition(":")
    return user, password


def decode_registry_auth(header_value: str | None) -> AuthConfig | None:
    """Decode Docker's ``X-Registry-Auth`` header: base64url-encoded JSON, padded or not.

    Returns None when no credentials are given (no header, ``e30=`` which is ``{}``, or only empty
    fields). Raises InvalidRegistryAuth for a value that is not base64 JSON: for a pull dockerd ignores
    that and pulls anonymously, which is the caller's choice to make.
    """
    if header_value is None or not header_value.strip():
        return None
    value = header_value.strip()
    # Accept the standard alphabet too: some clients send it, and the two only differ in two symbols.
    value = value.replace("+", "-").replace("/", "_")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError) as e:
        raise InvalidRegistryAuth(f"invalid X-Registry-Auth header: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidRegistryAuth("invalid X-Registry-Auth header: not a JSON object")
    auth = AuthConfig.from_dict(doc)
    return None if auth.is_empty else auth


# ------------------------------------------------------------------------------------------------ tokens

TokenKey = tuple[str, str, str, str]


def token_key(challenge: Challenge, scopes: Iterable[str], auth: AuthConfig | None) -> TokenKey:
    """(realm, service, scope, whose credentials): two users must never share a token."""
    scope = " ".join(sorted(set(scopes)))
    return (challenge.realm, challenge.service, scope, auth.fingerprint() if auth else "")


@dataclass
class _CachedToken:
    token: str
    expires_at: float


class TokenCache:
    """Bearer tokens by (realm, service, scope, credentials), each kept until it expires."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[TokenKey, _CachedToken] = {}

    def get(self, key: TokenKey) -> str | None:
        cached = self._tokens.get(key)
        if cached is None:
            return None
        if self._clock() >= cached.expires_at:
            del self._tokens[key]
            return None
        return cached.token

    def put(self, key: TokenKey, token: str, expires_in: float | None = None) -> None:
        lifetime = max(expires_in or 0, MIN_TOKEN_LIFETIME)
        self._tokens[key] = _CachedToken(token, self._clock() + lifetime)

    def invalidate(self, key: TokenKey) -> None:
        self._tokens.pop(key, None)

    def __len__(self) -> int:
        return len(self._tokens)


@dataclass
class TokenResponse:
    token: str
    expires_in: int
    refresh_token: str = ""


async def fetch_token(
    session: aiohttp.ClientSession,
    challenge: Challenge,
    scopes: Iterable[str],
    auth: AuthConfig | None,
    *,
    ssl: bool | None = None,
    headers: dict[str, str] | None = None,
    offline: bool = False,
) -> TokenResponse:
    """Ask the challenge's realm for a token for `scopes`.

    With an identity token this is the OAuth2 refresh-token grant (POST); otherwise a GET with
    ``service`` and ``scope`` parameters, with Basic credentials when there are some (anonymous
    otherwise). `offline` asks for a refresh token too (what ``docker login`` does). Transport errors
    propagate as aiohttp's; an HTTP refusal raises Unauthorized / RegistryError worded as Docker's.
    """
    realm = challenge.realm
    if not realm.startswith(("http://", "https://")):
        raise RegistryError(f"invalid token auth challenge realm: {realm!r}")
    scope_list = sorted(set(s for s in scopes if s))
    headers = dict(headers or {})
    if auth is not None and auth.identity_token:
        form = {"grant_type": "refresh_token", "refresh_token": auth.identity_token, "client_id": _CLIENT_ID}
        if challenge.service:
            form["service"] = challenge.service
        if scope_list:
            form["scope"] = " ".join(scope_list)
        if offline:
            form["access_type"] = "offline"
        request = session.post(realm, data=form, headers=headers, ssl=ssl, allow_redirects=True)
    else:
        params: list[tuple[str, str]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params.extend(("scope", s) for s in scope_list)
        if auth is not None and auth.username:
            params.append(("account", auth.username))
        if offline:
            params.extend([("offline_token", "true"), ("client_id", _CLIENT_ID)])
        if auth is not None and auth.has_basic:
            headers["Authorization"] = auth.basic_header()
        url = realm + ("&" if "?" in realm else "?") + urlencode(params) if params else realm
        request = session.get(url, headers=headers, ssl=ssl, allow_redirects=True)
    from dockyard.distribution.transport import read_body  # aiohttp-bound: imported only when used

    async with request as resp:
        body = await read_body(resp, _MAX_TOKEN_RESPONSE)
        status, reason = resp.status, resp.reason or ""
    if status != 200:
        code, message = parse_error_body(body)
        if status == 401:
            raise Unauthorized(errcode_text(code or "UNAUTHORIZED", message or "authentication required"))
        if code or message:
            raise RegistryError(errcode_text(code or "UNKNOWN", message), code=code, status=status)
        raise RegistryError(f"received unexpected HTTP status: {status} {reason}", status=status)
    try:
        doc = json.loads(body)
    except ValueError:
        raise RegistryError("unable to decode token response: not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryError("unable to decode token response: not a JSON object")
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        raise RegistryError("authorization server did not include a token in the response")
    expires_in = doc.get("expires_in")
    if not isinstance(expires_in, int) or isinstance(expires_in, bool):
        expires_in = MIN_TOKEN_LIFETIME
    refresh = doc.get("refresh_token")
    return TokenResponse(
        token, max(expires_in, MIN_TOKEN_LIFETIME), refresh if isinstance(refresh, str) else ""
    )


# ------------------------------------------------------------------------------------------ config.json


def credential_key(server: str) -> str:
    """The key docker files credentials under: Docker Hub's is ``https://index.docker.io/v1/``, any other
    registry's is its host[:port] (a scheme and path given with it are dropped, as Docker does)."""
    host = _hostname(server)
    return DOCKER_HUB_SERVER if host.lower() in DOCKER_HUB_ALIASES or not host else host


def _hostname(server: str) -> str:
    server = server.strip()
    if "://" in server:
        server = server.split("://", 1)[1]
    return server.split("/", 1)[0]


def load_credentials(path: str | os.PathLike[str]) -> dict[str, AuthConfig]:
    """The ``auths`` of a docker ``config.json``, by key as written. A missing file holds none.

    Credential helpers (``credsStore``, ``credHelpers``) are not consulted.
    """
    doc = _read_config(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return {}
    result = {}
    for server, entry in auths.items():
        if isinstance(entry, dict):
            auth = AuthConfig.from_dict(entry)
            auth.server_address = auth.server_address or server
            result[server] = auth
    return result


def find_credentials(credentials: dict[str, AuthConfig], domain: str) -> AuthConfig | None:
    """The credentials for a registry domain (``docker.io``, ``host:5000``) among loaded ones.

    Keys are compared as Docker does, by host name: ``https://host:5000/v2/`` matches ``host:5000``.
    """
    wanted = credential_key(domain)
    for server, auth in credentials.items():
        if credential_key(server) == wanted:
            return auth
    return None


def store_credentials(path: str | os.PathLike[str], server: str, auth: AuthConfig) -> None:
    """Save credentials for `server` into a docker ``config.json`` (other keys kept), atomically, 0600."""
    doc = _read_config(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    key = credential_key(server)
    for existing in [k for k in auths if credential_key(k) == key and k != key]:
        del auths[existing]
    entry: dict[str, str] = {"auth": base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode()}
    if auth.identity_token:
        entry["identitytoken"] = auth.identity_token
    auths[key] = entry
    doc["auths"] = auths
    _write_config(path, doc)


def remove_credentials(path: str | os.PathLike[str], server: str) -> bool:
    """Forget the credentials for `server`; False when there were none (the file is then not touched)."""
    doc = _read_config(path)
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return False
    key = credential_key(server)
    matches = [k for k in auths if credential_key(k) == key]
    if not matches:
        return False
    for k in matches:
        del auths[k]
    _write_config(path, doc)
    return True


def _read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise RegistryError(f"error loading config file {os.fspath(path)}: {e.strerror}") from None
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise RegistryError(f"error loading config file {os.fspath(path)}: {e}") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"error loading config file {os.fspath(path)}: not a JSON object")
    return doc


def _write_config(path: str | os.PathLike[str], doc: dict[str, Any]) -> None:
    # Write through a symlink to its target (as the docker CLI does), so a linked dotfile stays linked.
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    data = (json.dumps(doc, indent="\t") + "\n").encode()
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
