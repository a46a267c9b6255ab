"""The registry client: the distribution API (``/v2/...``) over aiohttp, for pull, push and login.

Every call goes through the same three layers:

1. endpoints: the URLs for the reference's domain (mirrors first for Docker Hub; https then http for an
   insecure registry). A failed connection moves on to the next one; so does any failure of a mirror,
   which may simply not have the image. Once a host has answered over https (or only over http) the
   other scheme is no longer tried.
2. authentication: the first contact with an endpoint is ``GET /v2/``, whose challenge (if any) is kept,
   so later requests carry a token for their scope (``repository:<path>:pull``) or Basic credentials
   from the start. A 401 with a new challenge (wider scope, expired token) is answered once.
3. redirects: followed by hand, so ``Authorization`` never goes to another host (blob storage).

Blob downloads resume: a dropped connection or a 5xx is retried with exponential backoff, asking for
``Range: bytes=N-`` from where the stream stopped; a server that ignores the range has its first N bytes
skipped. The caller verifies the digest (`VerifyingReader`) as it consumes the stream.
"""

from __future__ import annotations

import asyncio
import http
import logging
import platform
import re
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar
from urllib.parse import quote, urljoin

import aiohttp
import yarl

from dockyard import __version__
from dockyard.distribution.auth import (
    AuthConfig,
    Challenge,
    TokenCache,
    fetch_token,
    parse_challenges,
    token_key,
)
from dockyard.distribution.endpoints import DOCKER_HUB_ALIASES, DOCKER_HUB_DOMAIN, Endpoint, RegistryHosts
from dockyard.distribution.errors import (
    AccessDenied,
    DigestMismatch,
    ManifestUnknown,
    NotFound,
    RegistryError,
    RegistryUnreachable,
    Unauthorized,
    errcode_text,
    parse_error_body,
)
from dockyard.distribution.manifests import (
    ALL_MANIFEST_TYPES,
    Index,
    Manifest,
    parse_manifest,
    sha256_digest,
)
from dockyard.distribution.transport import TRANSPORT_ERRORS, describe_transport_error, go_op, read_body
from dockyard.distribution.verify import DigestVerifier, VerifyingReader, manifest_mismatch
from dockyard.reference import InvalidReference, Reference, validate_digest

__all__ = ["DEFAULT_USER_AGENT", "BlobStream", "ProgressCallback", "RegistryClient"]

log = logging.getLogger(__name__)

T = TypeVar("T")
ProgressCallback = Callable[[int], None]

DEFAULT_USER_AGENT = (
    f"dockyard/{__version__} python/{sys.version_info.major}.{sys.version_info.minor} "
    f"os/{sys.platform} arch/{platform.machine()}"
)
# containerd's limit: a manifest is a few KB; anything this big is not one.
MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 64 << 20
_MAX_ERROR_BODY = 64 << 10
_MAX_REDIRECTS = 10
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
# Go's errcode default messages, for error responses that carry no JSON body.
_DEFAULT_MESSAGES = {
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "BLOB_UNKNOWN": "blob unknown to registry",
    "NAME_UNKNOWN": "repository name not known to registry",
}


def _scope(path: str, push: bool = False) -> str:
    return f"repository:{path}:{'pull,push' if push else 'pull'}"


def _origin(url: str) -> tuple[str, str, int | None]:
    u = yarl.URL(url)
    return (u.scheme, u.host or "", u.port)


def _checked(digest: str) -> str:
    """Digests go into URLs: refuse anything but a well-formed one before it gets there."""
    try:
        return validate_digest(digest)
    except InvalidReference as e:
        raise RegistryError(f"invalid digest {digest!r}: {e}") from None


def _anonymous(auth: AuthConfig | None) -> bool:
    return auth is None or auth.is_empty


class _Fallback(Exception):
    """Raised inside one endpoint's attempt when the next endpoint should be tried."""

    def __init__(self, error: RegistryError) -> None:
        super().__init__(str(error))
        self.error = error


def _retryable(error: RegistryError) -> bool:
    return isinstance(error, RegistryUnreachable) or (
        error.status is not None and (error.status >= 500 or error.status == 429)
    )


def map_error(
    status: int,
    reason: str,
    body: bytes,
    www_authenticate: Sequence[str],
    *,
    ref: Reference,
    action: str,
    what: str,
    anonymous: bool,
) -> RegistryError:
    """A registry's error response as the error Docker reports for it.

    `action` is "pull" or "push"; `what` is "manifest", "blob" or "upload". A Bearer challenge with
    ``error="insufficient_scope"`` means denied (Docker Hub's answer for a missing or private repository),
    and so does a 401 to an anonymous pull: Docker words both ``pull access denied for X...``.
    """
    code, message = parse_error_body(body)
    for challenge in parse_challenges(www_authenticate):
        if challenge.scheme == "bearer" and challenge.error == "insufficient_scope":
            code = "DENIED"
            message = challenge.params.get("error_description") or _DEFAULT_MESSAGES["DENIED"]
            break
    if not code:
        code = {401: "UNAUTHORIZED", 403: "DENIED"}.get(status, "")
        if status == 404:
            code = {"manifest": "MANIFEST_UNKNOWN", "blob": "BLOB_UNKNOWN"}.get(what, "NAME_UNKNOWN")
    if not code:
        return RegistryError(f"received unexpected HTTP status: {status} {reason}", status=status)
    message = message or _DEFAULT_MESSAGES.get(code, "")
    cause = errcode_text(code, message)
    kwargs = {"code": code, "status": status}
    if action == "pull":
        if code == "DENIED" or (code == "UNAUTHORIZED" and anonymous):
            if code == "UNAUTHORIZED":
                cause = errcode_text("DENIED", _DEFAULT_MESSAGES["DENIED"])
            return AccessDenied(
                f"pull access denied for {ref.familiar_name}, repository does not exist or may require "
                f"'docker login': {cause}",
                **kwargs,
            )
        if code == "MANIFEST_UNKNOWN":
            return ManifestUnknown(f"manifest for {ref.familiar()} not found: {cause}", **kwargs)
        if code == "NAME_UNKNOWN":
            return NotFound(f"repository {ref.familiar_name} not found: {cause}", **kwargs)
    if code in ("UNAUTHORIZED", "DENIED"):
        return Unauthorized(cause, **kwargs)
    if code == "MANIFEST_UNKNOWN":
        return ManifestUnknown(cause, **kwargs)
    if code in ("BLOB_UNKNOWN", "NAME_UNKNOWN") or status == 404:
        return NotFound(cause, **kwargs)
    return RegistryError(cause, **kwargs)


class RegistryClient:
    """Talks to registries for the daemon. Create one per daemon; it caches pings and tokens.

    `session`: an aiohttp session to use (the caller then owns it, and should create it with
    ``auto_decompress=False`` so blobs arrive as stored); by default the client makes its own on first
    use and closes it in `close()`. `max_attempts` bounds the tries of a blob download that makes no
    progress; `backoff` is the first retry's delay, doubled on each retry up to `max_backoff`.
    """

    def __init__(
        self,
        hosts: RegistryHosts,
        *,
        session: aiohttp.ClientSession | None = None,
        max_attempts: int = 5,
        user_agent: str = DEFAULT_USER_AGENT,
        token_cache: TokenCache | None = None,
        backoff: float = 0.5,
        max_backoff: float = 10.0,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self.hosts = hosts
        self.max_attempts = max(1, max_attempts)
        self.user_agent = user_agent
        self.tokens = token_cache if token_cache is not None else TokenCache()
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout or aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
        self._session = session
        self._own_session = session is None
        self._pings: dict[str, list[Challenge]] = {}
        self._locks: dict[object, asyncio.Lock] = {}
        # Hosts seen answering over https, and insecure hosts that answered only over plain http.
        self._tls_hosts: set[str] = set()
        self._plain_hosts: set[str] = set()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No proxies from the environment, and no transparent gunzip: blobs are hashed as stored.
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, auto_decompress=False, trust_env=False, raise_for_status=False
            )
            self._own_session = True
        return self._session

    def _lock(self, key: object) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _backoff_delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * (2 ** max(0, attempt - 1)))

    # ------------------------------------------------------------------------------------ endpoints

    def _skip(self, ep: Endpoint, candidates: list[Endpoint]) -> bool:
        """An endpoint made pointless by what the other scheme of its host has shown."""
        if ep.mirror or not any(o.host == ep.host and o.scheme != ep.scheme for o in candidates):
            return False
        if ep.scheme == "http":
            return ep.host in self._tls_hosts
        return ep.host in self._plain_hosts

    async def _with_endpoints(
        self, domain: str, op: Callable[[Endpoint], Awaitable[T]], *, mirrors: bool = True
    ) -> T:
        candidates = self.hosts.endpoints(domain, include_mirrors=mirrors)
        last: RegistryError | None = None
        for ep in candidates:
            if self._skip(ep, candidates):
                continue
            try:
                return await op(ep)
            except _Fallback as f:
                last = f.error
            except RegistryError as e:
                if not ep.mirror:
                    raise
                last = e
            log.debug("registry endpoint %s failed, trying the next: %s", ep.url, last)
        raise last or RegistryError(f"no endpoints found for {domain}")

    def _ssl(self, url: str, ep: Endpoint) -> bool:
        # Skip certificate checks only for the insecure registry itself, never for a host it redirects to.
        return not (ep.insecure and yarl.URL(url).host == yarl.URL(ep.url).host)

    def _note_transport_ok(self, ep: Endpoint) -> None:
        if ep.scheme == "https":
            self._tls_hosts.add(ep.host)
        else:
            self._plain_hosts.add(ep.host)

    # ----------------------------------------------------------------------------------- plumbing

    async def _send(
        self,
        ep: Endpoint,
        method: str,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        authorization: str | None = None,
        data: object = None,
        follow: bool = True,
    ) -> aiohttp.ClientResponse:
        """One exchange, following redirects by hand. Transport failures raise _Fallback."""
        session = self._get_session()
        origin = _origin(url)
        for _ in range(_MAX_REDIRECTS + 1):
            hdrs = {"User-Agent": self.user_agent, **(headers or {})}
            if authorization and _origin(url) == origin:
                hdrs["Authorization"] = authorization
            try:
                resp = await session.request(
                    method,
                    yarl.URL(url, encoded=True),
                    headers=hdrs,
                    data=data,
                    ssl=self._ssl(url, ep),
                    allow_redirects=False,
                )
            except TRANSPORT_ERRORS as e:
                raise _Fallback(RegistryUnreachable(describe_transport_error(method, url, e))) from None
            if not follow or resp.status not in _REDIRECTS or "Location" not in resp.headers:
                return resp
            target = urljoin(url, resp.headers["Location"])
            resp.release()
            if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                method, data = "GET", None
            url = target
        raise RegistryError(f'{go_op(method)} "{url}": stopped after {_MAX_REDIRECTS} redirects')

    async def _ping(self, ep: Endpoint) -> list[Challenge]:
        """``GET /v2/`` once per endpoint: proves we can talk to it and learns how it authenticates."""
        cached = self._pings.get(ep.url)
        if cached is not None:
            return cached
        async with self._lock(("ping", ep.url)):
            cached = self._pings.get(ep.url)
            if cached is not None:
                return cached
            url = ep.url + "/v2/"
            resp = await self._send(ep, "GET", url)
            try:
                await read_body(resp, _MAX_ERROR_BODY)
            except TRANSPORT_ERRORS as e:
                raise _Fallback(RegistryUnreachable(describe_transport_error("GET", url, e))) from None
            except RegistryError:
                pass
            finally:
                resp.release()
            self._note_transport_ok(ep)
            if resp.status >= 500 or (ep.mirror and resp.status == 404):
                raise _Fallback(
                    RegistryError(
                        f"received unexpected HTTP status: {resp.status} {resp.reason}", status=resp.status
                    )
                )
            challenges = (
                parse_challenges(resp.headers.getall("WWW-Authenticate", [])) if resp.status == 401 else []
            )
            self._pings[ep.url] = challenges
            return challenges

    async def _authorization(
        self,
        ep: Endpoint,
        challenges: list[Challenge],
        scopes: list[str],
        auth: AuthConfig | None,
        stale: str | None = None,
    ) -> tuple[str | None, bool]:
        """The Authorization value the challenges call for, and whether a token was fetched just now.

        `stale` is a header that was just refused: its token is dropped from the cache.
        """
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is not None and bearer.realm:
            if auth is not None and auth.registry_token:
                return "Bearer " + auth.registry_token, False
            key = token_key(bearer, scopes, auth)
            if stale is not None and self.tokens.get(key) == stale.removeprefix("Bearer "):
                self.tokens.invalidate(key)
            token = self.tokens.get(key)
            if token is not None:
                return "Bearer " + token, False
            async with self._lock(("token", key)):
                token = self.tokens.get(key)
                if token is not None:
                    return "Bearer " + token, False
                try:
                    result = await fetch_token(
                        self._get_session(),
                        bearer,
                        scopes,
                        auth,
                        ssl=not self.hosts.is_insecure(yarl.URL(bearer.realm).host or ""),
                        headers={"User-Agent": self.user_agent},
                    )
                except TRANSPORT_ERRORS as e:
                    raise RegistryUnreachable(describe_transport_error("GET", bearer.realm, e)) from None
                self.tokens.put(key, result.token, result.expires_in)
                return "Bearer " + result.token, True
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if basic is not None and auth is not None and auth.has_basic:
            return auth.basic_header(), False
        return None, False

    async def _request(
        self,
        ep: Endpoint,
        method: str,
        url: str,
        *,
        scopes: list[str],
        auth: AuthConfig | None,
        headers: dict[str, str] | None = None,
        data: object = None,
        replayable: bool = True,
    ) -> aiohttp.ClientResponse:
        """An authenticated exchange with `ep`: ping, authorize, send; answer one new 401 challenge."""
        if auth is not None and auth.is_empty:
            auth = None
        challenges = await self._ping(ep)
        try:
            authorization, fresh = await self._authorization(ep, challenges, scopes, auth)
        except Unauthorized as e:
            raise Unauthorized(f'{go_op(method)} "{url}": {e}', code=e.code, status=e.status) from None
        resp = await self._send(ep, method, url, headers=headers, authorization=authorization, data=data)
        if resp.status != 401 or not replayable:
            return resp
        challenges = parse_challenges(resp.headers.getall("WWW-Authenticate", []))
        if not challenges:
            return resp
        self._pings[ep.url] = challenges
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        wanted = list(scopes)
        if bearer is not None:
            wanted += [s for s in bearer.scope.split() if s and s not in wanted]
        grew = len(wanted) > len(scopes)
        if fresh and not grew:
            return resp  # a token fetched just now for this very scope: asking again gets the same
        try:
            retry_auth, _ = await self._authorization(ep, challenges, wanted, auth, stale=authorization)
        except Unauthorized as e:
            resp.release()
            raise Unauthorized(f'{go_op(method)} "{url}": {e}', code=e.code, status=e.status) from None
        except BaseException:
            resp.release()
            raise
        if retry_auth is None or (retry_auth == authorization and not grew):
            return resp
        resp.release()
        return await self._send(ep, method, url, headers=headers, authorization=retry_auth, data=data)

    async def _failure(
        self,
        resp: aiohttp.ClientResponse,
        *,
        ref: Reference,
        action: str,
        what: str,
        auth: AuthConfig | None,
    ) -> RegistryError:
        """Read an error response (bounded) and turn it into the error Docker would report."""
        try:
            body = b"" if resp.method == "HEAD" else await read_body(resp, _MAX_ERROR_BODY)
        except (RegistryError, *TRANSPORT_ERRORS):
            body = b""
        finally:
            resp.release()
        return map_error(
            resp.status,
            resp.reason or _phrase(resp.status),
            body,
            resp.headers.getall("WWW-Authenticate", []),
            ref=ref,
            action=action,
            what=what,
            anonymous=_anonymous(auth),
        )

    # ------------------------------------------------------------------------------------------ pull

    async def get_manifest(
        self,
        ref: Reference,
        auth: AuthConfig | None = None,
        accept: Sequence[str] = ALL_MANIFEST_TYPES,
    ) -> Manifest | Index:
        """Fetch the manifest or index `ref` names (by digest when it has one, else by tag).

        By digest, the body must hash to it; by tag, the body is hashed and checked against the
        registry's ``Docker-Content-Digest`` when sent. Raises ManifestUnknown, AccessDenied,
        DigestMismatch, UnsupportedManifest, RegistryUnreachable... worded as Docker's.
        """
        reference = ref.digest or ref.tag or "latest"
        path = f"/v2/{ref.path}/manifests/{reference}"

        async def attempt(ep: Endpoint) -> Manifest | Index:
            url = ep.url + path
            resp = await self._request(
                ep, "GET", url, scopes=[_scope(ref.path)], auth=auth, headers={"Accept": ", ".join(accept)}
            )
            if resp.status != 200:
                raise await self._failure(resp, ref=ref, action="pull", what="manifest", auth=auth)
            try:
                body = await read_body(resp, MAX_MANIFEST_SIZE)
            except TRANSPORT_ERRORS as e:
                raise _Fallback(RegistryUnreachable(describe_transport_error("GET", url, e))) from None
            finally:
                resp.release()
            content_type = resp.headers.get("Content-Type", "")
            if ref.digest:
                verifier = DigestVerifier(ref.digest)
                verifier.update(body)
                verifier.verify(manifest_mismatch(ref.digest))
                digest = ref.digest
            else:
                digest = sha256_digest(body)
                sent = resp.headers.get("Docker-Content-Digest", "")
                if sent.startswith("sha256:") and sent != digest:
                    raise manifest_mismatch(sent)
            return parse_manifest(content_type, body, digest, ref=str(ref))

        return await self._with_endpoints(ref.domain, attempt)

    async def open_blob(
        self,
        ref: Reference,
        digest: str,
        auth: AuthConfig | None = None,
        offset: int = 0,
        size: int | None = None,
    ) -> BlobStream:
        """Start downloading a blob; returns once the registry answered (so `.size` is known).

        `offset` starts mid-blob (a Range request); `size`, the descriptor's, lets a stream that ends
        early without an error be recognised and resumed. Use as ``async with``, or call `close()`.
        """
        stream = BlobStream(self, ref, _checked(digest), auth, offset, size)
        await stream._connect()
        return stream

    async def get_blob(
        self, ref: Reference, digest: str, auth: AuthConfig | None = None, max_size: int = MAX_CONFIG_SIZE
    ) -> bytes:
        """A small blob (an image config) in full, verified against `digest`."""
        async with await self.open_blob(ref, digest, auth) as stream:
            if stream.size is not None and stream.size > max_size:
                raise RegistryError(f"blob {digest} is too large ({stream.size} bytes, at most {max_size})")
            error = DigestMismatch(f"image config verification failed for digest {digest}")
            return await VerifyingReader(_bounded(stream, max_size, digest), digest, error=error).read_all()

    async def _blob_response(
        self, ref: Reference, digest: str, auth: AuthConfig | None, offset: int
    ) -> tuple[aiohttp.ClientResponse, str]:
        path = f"/v2/{ref.path}/blobs/{digest}"

        async def attempt(ep: Endpoint) -> tuple[aiohttp.ClientResponse, str]:
            url = ep.url + path
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            resp = await self._request(ep, "GET", url, scopes=[_scope(ref.path)], auth=auth, headers=headers)
            if resp.status in (200, 206) or (resp.status == 416 and offset):
                return resp, url
            raise await self._failure(resp, ref=ref, action="pull", what="blob", auth=auth)

        return await self._with_endpoints(ref.domain, attempt)

    # ------------------------------------------------------------------------------------------ push

    async def blob_exists(self, ref: Reference, digest: str, auth: AuthConfig | None = None) -> bool:
        """Whether the repository has the blob (``HEAD``), so a push can skip it."""
        path = f"/v2/{ref.path}/blobs/{_checked(digest)}"

        async def attempt(ep: Endpoint) -> bool:
            resp = await self._request(
                ep, "HEAD", ep.url + path, scopes=[_scope(ref.path, push=True)], auth=auth
            )
            if resp.status in (200, 404):
                resp.release()
                return resp.status == 200
            raise await self._failure(resp, ref=ref, action="push", what="blob", auth=auth)

        return await self._with_endpoints(ref.domain, attempt, mirrors=False)

    async def mount_blob(
        self, ref: Reference, digest: str, from_repo: str | Reference, auth: AuthConfig | None = None
    ) -> bool:
        """Ask the registry to link a blob it holds in `from_repo` into `ref`'s repository.

        True when mounted (201). False when the registry started an upload instead (202: it lacks the
        blob there, or does not mount): that upload is cancelled and the caller uploads as usual.
        """
        if isinstance(from_repo, Reference):
            if from_repo.domain != ref.domain:
                return False
            from_repo = from_repo.path
        query = f"?mount={quote(_checked(digest), safe=':')}&from={quote(from_repo, safe='/')}"
        path = f"/v2/{ref.path}/blobs/uploads/{query}"
        scopes = [_scope(ref.path, push=True), _scope(from_repo)]

        async def attempt(ep: Endpoint) -> bool:
            url = ep.url + path
            resp = await self._request(
                ep, "POST", url, scopes=scopes, auth=auth, headers={"Content-Length": "0"}, data=b""
            )
            if resp.status == 201:
                resp.release()
                return True
            if resp.status == 202:
                resp.release()
                location = resp.headers.get("Location")
                if location:
                    await self._cancel_upload(ep, urljoin(url, location), scopes, auth)
                return False
            raise await self._failure(resp, ref=ref, action="push", what="upload", auth=auth)

        return await self._with_endpoints(ref.domain, attempt, mirrors=False)

    async def upload_blob(
        self,
        ref: Reference,
        digest: str,
        size: int,
        chunks: AsyncIterable[bytes] | bytes,
        auth: AuthConfig | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        """Upload a blob: ``POST`` opens an upload, then one ``PUT ?digest=`` with the bytes, or for a
        stream a ``PATCH`` carrying it and an empty closing ``PUT``. `progress` gets the bytes sent so
        far. A failed upload is cancelled; a stream cannot be replayed, so it is not retried here.
        """
        scopes = [_scope(ref.path, push=True)]
        _checked(digest)

        async def attempt(ep: Endpoint) -> None:
            start_url = f"{ep.url}/v2/{ref.path}/blobs/uploads/"
            resp = await self._request(
                ep, "POST", start_url, scopes=scopes, auth=auth, headers={"Content-Length": "0"}, data=b""
            )
            if resp.status != 202 or "Location" not in resp.headers:
                raise await self._failure(resp, ref=ref, action="push", what="upload", auth=auth)
            resp.release()
            location = urljoin(start_url, resp.headers["Location"])
            try:
                if isinstance(chunks, bytes | bytearray | memoryview):
                    data = bytes(chunks)
                    if len(data) != size:
                        raise RegistryError(f"blob {digest}: {len(data)} bytes given, {size} expected")
                    resp = await self._request(
                        ep,
                        "PUT",
                        _with_digest(location, digest),
                        scopes=scopes,
                        auth=auth,
                        headers={"Content-Type": "application/octet-stream"},
                        data=data,
                    )
                    if progress is not None and resp.status == 201:
                        progress(size)
                else:
                    resp = await self._request(
                        ep,
                        "PATCH",
                        location,
                        scopes=scopes,
                        auth=auth,
                        headers={"Content-Type": "application/octet-stream"},
                        data=_counting(chunks, size, digest, progress),
                        replayable=False,
                    )
                    if resp.status != 202:
                        raise await self._failure(resp, ref=ref, action="push", what="upload", auth=auth)
                    resp.release()
                    location = urljoin(location, resp.headers.get("Location", location))
                    resp = await self._request(
                        ep,
                        "PUT",
                        _with_digest(location, digest),
                        scopes=scopes,
                        auth=auth,
                        headers={"Content-Length": "0"},
                        data=b"",
                    )
                if resp.status != 201:
                    raise await self._failure(resp, ref=ref, action="push", what="upload", auth=auth)
                resp.release()
                stored = resp.headers.get("Docker-Content-Digest", "")
                if stored and stored != digest:
                    raise DigestMismatch(f"registry stored blob {stored}, expected {digest}")
            except Exception:
                await self._cancel_upload(ep, location, scopes, auth)
                raise

        await self._with_endpoints(ref.domain, attempt, mirrors=False)

    async def _cancel_upload(
        self, ep: Endpoint, location: str, scopes: list[str], auth: AuthConfig | None
    ) -> None:
        """Best effort: an abandoned upload only costs the registry until it purges it."""
        try:
            resp = await self._request(ep, "DELETE", location, scopes=scopes, auth=auth)
            resp.release()
        except (RegistryError, _Fallback, *TRANSPORT_ERRORS) as e:
            log.debug("cancelling upload %s failed: %s", location, e)

    async def put_manifest(
        self, ref: Reference, media_type: str, data: bytes, auth: AuthConfig | None = None
    ) -> str:
        """Store a manifest or index under `ref`'s tag (or digest); returns its digest."""
        digest = sha256_digest(data)
        reference = ref.tag or ref.digest or digest
        path = f"/v2/{ref.path}/manifests/{reference}"

        async def attempt(ep: Endpoint) -> str:
            resp = await self._request(
                ep,
                "PUT",
                ep.url + path,
                scopes=[_scope(ref.path, push=True)],
                auth=auth,
                headers={"Content-Type": media_type},
                data=data,
            )
            if resp.status not in (200, 201):
                raise await self._failure(resp, ref=ref, action="push", what="manifest", auth=auth)
            resp.release()
            stored = resp.headers.get("Docker-Content-Digest", "")
            if stored.startswith("sha256:") and stored != digest:
                raise manifest_mismatch(stored)
            return digest

        return await self._with_endpoints(ref.domain, attempt, mirrors=False)

    # ----------------------------------------------------------------------------------------- login

    async def check_login(self, server_address: str, auth: AuthConfig | None) -> str:
        """Check credentials against a registry as ``docker login`` does; returns "Login Succeeded".

        Probes ``/v2/``: a Bearer challenge is answered by fetching a token with the credentials (a
        refusal reads ``Get "https://host/v2/": unauthorized: ...``), a Basic one by sending them. Raises
        Unauthorized with Docker's wording, RegistryUnreachable when no endpoint answers.
        """
        domain = _login_domain(server_address)
        if auth is not None and auth.is_empty:
            auth = None

        async def attempt(ep: Endpoint) -> str:
            url = ep.url + "/v2/"
            resp = await self._send(ep, "GET", url)
            resp.release()
            self._note_transport_ok(ep)
            status = resp.status
            if status == 401:
                challenges = parse_challenges(resp.headers.getall("WWW-Authenticate", []))
                self._pings[ep.url] = challenges
                authorization = None
                bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
                if bearer is not None:
                    try:
                        token = await fetch_token(
                            self._get_session(),
                            bearer,
                            [],
                            auth,
                            ssl=not self.hosts.is_insecure(yarl.URL(bearer.realm).host or ""),
                            headers={"User-Agent": self.user_agent},
                            offline=True,
                        )
                    except Unauthorized as e:
                        raise Unauthorized(f'Get "{url}": {e}', code=e.code, status=e.status) from None
                    except TRANSPORT_ERRORS as e:
                        raise RegistryUnreachable(describe_transport_error("GET", bearer.realm, e)) from None
                    authorization = "Bearer " + token.token
                elif auth is not None and auth.has_basic:
                    authorization = auth.basic_header()
                if authorization is not None:
                    resp = await self._send(ep, "GET", url, authorization=authorization)
                    resp.release()
                    status = resp.status
            if status == 200:
                return "Login Succeeded"
            message = f"login attempt to {url} failed with status: {status} {_phrase(status)}"
            raise (Unauthorized if status in (401, 403) else RegistryError)(message, status=status)

        return await self._with_endpoints(domain, attempt, mirrors=False)


def _phrase(status: int) -> str:
    """Go's http.StatusText: what dockerd prints after a status code."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _login_domain(server_address: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://host:5000/`` -> ``host:5000``."""
    server = server_address.strip() or DOCKER_HUB_DOMAIN
    if "://" in server:
        server = server.split("://", 1)[1]
    host = server.split("/", 1)[0]
    return DOCKER_HUB_DOMAIN if host.lower() in DOCKER_HUB_ALIASES else host


def _with_digest(location: str, digest: str) -> str:
    """The upload URL with ``digest=`` added to whatever query state the registry put there."""
    return f"{location}{'&' if '?' in location else '?'}digest={quote(digest, safe=':')}"


async def _counting(
    chunks: AsyncIterable[bytes], size: int, digest: str, progress: ProgressCallback | None
) -> AsyncIterator[bytes]:
    sent = 0
    async for chunk in chunks:
        if not chunk:
            continue
        sent += len(chunk)
        yield chunk
        if progress is not None:
            progress(sent)
    if sent != size:
        raise RegistryError(f"blob {digest}: {sent} bytes read, {size} expected")


async def _bounded(chunks: AsyncIterable[bytes], limit: int, digest: str) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise RegistryError(f"blob {digest} is larger than {limit} bytes")
        yield chunk


class BlobStream:
    """A blob being downloaded: iterate it for byte chunks (once); `size` is the blob's full size when
    the registry or the caller told it, `offset` how far the stream has got.

    Broken connections and 5xx answers are retried with exponential backoff, resuming with a Range
    request. Up to `max_attempts` tries are made without receiving a byte before giving up; receiving
    data renews the allowance, so a flaky but working connection still finishes.
    """

    def __init__(
        self,
        client: RegistryClient,
        ref: Reference,
        digest: str,
        auth: AuthConfig | None,
        offset: int,
        size: int | None,
    ) -> None:
        self._client = client
        self._ref = ref
        self._auth = auth
        self.digest = digest
        self.size = size
        self.offset = offset
        self.url = ""
        self.attempts = 0  # connections made, for tests and logs
        self._tries = 0  # tries since the last byte received
        self._resp: aiohttp.ClientResponse | None = None
        self._skip = 0
        self._done = False

    async def __aenter__(self) -> BlobStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._drop()
        self._done = True

    def _drop(self) -> None:
        if self._resp is not None:
            self._resp.close()
            self._resp = None

    async def _connect(self) -> None:
        """(Re)open the response at `offset`, retrying what is worth retrying."""
        while True:
            self._tries += 1
            self.attempts += 1
            try:
                resp, self.url = await self._client._blob_response(
                    self._ref, self.digest, self._auth, self.offset
                )
                self._accept(resp)
                return
            except RegistryError as e:
                if not _retryable(e) or self._tries >= self._client.max_attempts:
                    raise
                log.debug("blob %s: %s; retrying", self.digest, e)
            await asyncio.sleep(self._client._backoff_delay(self._tries))

    def _accept(self, resp: aiohttp.ClientResponse) -> None:
        if resp.status == 416:
            # Asked to resume at (or past) the end: nothing is left to read.
            resp.release()
            if self.size is not None and self.offset >= self.size:
                self._done = True
                return
            raise RegistryError(f"blob {self.digest}: range from {self.offset} not satisfiable", status=416)
        if resp.status == 206:
            match = _CONTENT_RANGE_RE.fullmatch(resp.headers.get("Content-Range", "").strip())
            if match is None or int(match.group(1)) > self.offset:
                resp.release()
                raise RegistryError(f"blob {self.digest}: unusable Content-Range in a 206 answer")
            self._skip = self.offset - int(match.group(1))
            if match.group(3) != "*":
                self.size = int(match.group(3))
        else:
            # A 200 to a Range request: the server sent everything, and what we have is skipped.
            self._skip = self.offset
            if resp.content_length is not None:
                self.size = resp.content_length
        self._resp = resp

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            while not self._done:
                if self._resp is None:
                    await self._connect()
                    continue
                failure: BaseException | None = None
                try:
                    async for chunk in self._resp.content.iter_any():
                        if self._skip:
                            if len(chunk) <= self._skip:
                                self._skip -= len(chunk)
                                continue
                            chunk = chunk[self._skip :]
                            self._skip = 0
                        self.offset += len(chunk)
                        self._tries = 0
                        yield chunk
                except TRANSPORT_ERRORS as e:
                    failure = e
                self._drop()
                if failure is None:
                    if self.size is None or self.offset >= self.size:
                        self._done = True
                        return
                    failure = aiohttp.ClientPayloadError("stream ended early")
                if self._tries >= self._client.max_attempts:
                    raise RegistryUnreachable(describe_transport_error("GET", self.url, failure)) from None
                log.debug("blob %s: %s at %d bytes; resuming", self.digest, failure, self.offset)
                await asyncio.sleep(self._client._backoff_delay(max(1, self._tries)))
        finally:
            self._drop()

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self])
