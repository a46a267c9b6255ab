"""The registry client against Debian's docker-registry and against small registries written here.

Everything listens on 127.0.0.1 and is stopped by PID (registries) or by its runner (aiohttp servers).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import registry as registry_tool
import testimages
from aiohttp import web

from dockyard.distribution import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    AccessDenied,
    AuthConfig,
    DigestMismatch,
    Index,
    Manifest,
    ManifestUnknown,
    NotFound,
    Platform,
    RegistryClient,
    RegistryError,
    RegistryHosts,
    RegistryUnreachable,
    TokenCache,
    Unauthorized,
    VerifyingReader,
    select_platform,
)
from dockyard.reference import Reference, parse_reference

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    return registry_tool.free_port()


def client(**kwargs: Any) -> RegistryClient:
    """A client that can never leave loopback: Docker Hub itself points at a closed local port."""
    mirrors = kwargs.pop("mirrors", [])
    hosts = RegistryHosts(mirrors=mirrors, docker_hub_url=f"http://127.0.0.1:{closed_port()}")
    kwargs.setdefault("backoff", 0.01)
    return RegistryClient(hosts, **kwargs)


def blob_path(storage: Path, digest: str) -> Path:
    hexa = digest.split(":", 1)[1]
    return storage / "docker/registry/v2/blobs/sha256" / hexa[:2] / hexa / "data"


# ------------------------------------------------------------------------------------- own registry


@dataclass
class Pushed:
    reg: registry_tool.RegistryProcess
    docker: testimages.BuiltImage
    oci: testimages.BuiltImage
    multi: list[testimages.BuiltImage]
    index_oci: str
    index_docker: str

    def ref(self, name: str) -> Reference:
        return parse_reference(f"{self.reg.address}/{name}")


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    """A registry of our own for content the shared one must not get (tampered blobs, pushes)."""
    reg = registry_tool.start_registry(tmp_path_factory.mktemp("dist-registry"))
    try:
        docker_img = testimages.build_image("busybox", media="docker")
        oci_img = testimages.build_image("httpd", media="oci")
        multi = testimages.build_multiplatform("busybox", media="oci", arches=("amd64", "arm64", "arm/v7"))
        multi_docker = testimages.build_multiplatform(
            "busybox", media="docker", arches=("amd64", "arm64", "arm/v7")
        )
        testimages.push_image(reg.address, "dist/docker", "1", docker_img)
        testimages.push_image(reg.address, "dist/oci", "1", oci_img)
        index_oci = testimages.push_index(reg.address, "dist/multi", "oci", multi, "oci")
        index_docker = testimages.push_index(reg.address, "dist/multi", "docker", multi_docker, "docker")
        yield Pushed(reg, docker_img, oci_img, multi + multi_docker, index_oci, index_docker)
    finally:
        reg.stop()


# ------------------------------------------------------------------------------------------ manifests


@pytest.mark.parametrize(
    ("repo", "media_type"), [("dist/docker", DOCKER_MANIFEST), ("dist/oci", OCI_MANIFEST)]
)
def test_get_manifest_by_tag_and_by_digest(own: Pushed, repo: str, media_type: str) -> None:
    image = own.docker if repo == "dist/docker" else own.oci

    async def go() -> tuple[Manifest | Index, Manifest | Index]:
        async with client() as c:
            by_tag = await c.get_manifest(own.ref(f"{repo}:1"))
            by_digest = await c.get_manifest(own.ref(f"{repo}@{image.digest}"))
            return by_tag, by_digest

    by_tag, by_digest = run(go())
    for m in (by_tag, by_digest):
        assert isinstance(m, Manifest)
        assert m.media_type == media_type
        assert m.digest == image.digest
        assert m.data == image.manifest.data
        assert m.config.digest == image.config.digest
        assert [layer.digest for layer in m.layers] == [layer.digest for layer in image.layers]


@pytest.mark.parametrize(("tag", "index_type"), [("oci", OCI_INDEX), ("docker", DOCKER_MANIFEST_LIST)])
def test_multiplatform_index_and_platform_choice(own: Pushed, tag: str, index_type: str) -> None:
    async def go() -> dict[str, str]:
        async with client() as c:
            index = await c.get_manifest(own.ref(f"dist/multi:{tag}"))
            assert isinstance(index, Index)
            assert index.media_type == index_type
            assert index.digest == (own.index_oci if tag == "oci" else own.index_docker)
            chosen = {}
            for spec in ("linux/amd64", "linux/arm64", "linux/arm64/v8", "linux/arm/v7", "linux/arm"):
                desc = select_platform(index, Platform.parse(spec))
                manifest = await c.get_manifest(own.ref(f"dist/multi@{desc.digest}"))
                assert isinstance(manifest, Manifest) and manifest.digest == desc.digest
                config = json.loads(await c.get_blob(own.ref("dist/multi"), manifest.config.digest))
                chosen[spec] = "/".join(
                    filter(None, [config["os"], config["architecture"], config.get("variant")])
                )
            return chosen

    assert run(go()) == {
        "linux/amd64": "linux/amd64",
        "linux/arm64": "linux/arm64",
        "linux/arm64/v8": "linux/arm64",
        "linux/arm/v7": "linux/arm/v7",
        "linux/arm": "linux/arm/v7",
    }


def test_unknown_tag_and_unknown_digest(own: Pushed) -> None:
    wrong = "sha256:" + "0" * 64

    async def go() -> list[BaseException]:
        async with client() as c:
            errors = []
            for ref in (f"{own.reg.address}/tr/nope:1", f"{own.reg.address}/dist/docker@{wrong}"):
                with pytest.raises(ManifestUnknown) as exc:
                    await c.get_manifest(parse_reference(ref))
                errors.append(exc.value)
            return errors

    tag_err, digest_err = run(go())
    assert str(tag_err) == (
        f"manifest for {own.reg.address}/tr/nope:1 not found: manifest unknown: manifest unknown"
    )
    assert str(digest_err).startswith(f"manifest for {own.reg.address}/dist/docker@{wrong} not found: ")
    assert tag_err.http_status == 404


def test_unreachable_registry_is_worded_like_go() -> None:
    port = closed_port()

    async def go() -> None:
        async with client() as c:
            await c.get_manifest(parse_reference(f"127.0.0.1:{port}/x/y:1"))

    with pytest.raises(RegistryUnreachable) as exc:
        run(go())
    assert str(exc.value) == (
        f'Get "http://127.0.0.1:{port}/v2/": dial tcp 127.0.0.1:{port}: connect: connection refused'
    )


def test_tampered_manifest_fails_verification(own: Pushed) -> None:
    """The registry serves a manifest whose bytes no longer match its digest (storage edited directly)."""
    image = testimages.build_image("busybox", media="docker", extra_files={"/tampered": b"manifest\n"})
    testimages.push_image(own.reg.address, "dist/tampered", "1", image)
    path = blob_path(own.reg.storage_dir, image.digest)
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"schemaVersion":2', b'"schemaVersion": 2'))

    async def go() -> list[str]:
        messages = []
        async with client() as c:
            for ref in (f"dist/tampered@{image.digest}", "dist/tampered:1"):
                with pytest.raises(DigestMismatch) as exc:
                    await c.get_manifest(own.ref(ref))
                messages.append(str(exc.value))
        return messages

    assert run(go()) == [f"manifest verification failed for digest {image.digest}"] * 2


def test_tampered_blobs_fail_verification(own: Pushed) -> None:
    image = testimages.build_image("busybox", media="oci", extra_files={"/tampered": b"blob\n"})
    testimages.push_image(own.reg.address, "dist/badblob", "1", image)
    layer = image.layers[-1]
    for blob in (layer, image.config):
        path = blob_path(own.reg.storage_dir, blob.digest)
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF  # same size, different bytes
        path.write_bytes(bytes(data))
    ref = own.ref("dist/badblob")

    async def go() -> tuple[str, str]:
        async with client() as c:
            stream = await c.open_blob(ref, layer.digest)
            async with stream:
                with pytest.raises(DigestMismatch) as layer_exc:
                    await VerifyingReader(stream, layer.digest, size=layer.size).read_all()
            with pytest.raises(DigestMismatch) as config_exc:
                await c.get_blob(ref, image.config.digest)
            return str(layer_exc.value), str(config_exc.value)

    layer_msg, config_msg = run(go())
    assert layer_msg == f"filesystem layer verification failed for digest {layer.digest}"
    assert config_msg == f"image config verification failed for digest {image.config.digest}"


def test_unknown_blob(own: Pushed) -> None:
    async def go() -> None:
        async with client() as c:
            await c.open_blob(own.ref("dist/docker"), "sha256:" + "1" * 64)

    with pytest.raises(NotFound, match="blob unknown"):
        run(go())


# --------------------------------------------------------------------------------------------- mirrors


def test_mirror_down_falls_back_to_the_next(registry: registry_tool.RegistryProcess) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"

    async def go() -> tuple[Manifest | Index, bytes]:
        async with client(mirrors=[dead, registry.url]) as c:
            ref = parse_reference("busybox")
            manifest = await c.get_manifest(ref)
            assert isinstance(manifest, Manifest)
            layer = manifest.layers[0]
            stream = await c.open_blob(ref, layer.digest)
            async with stream:
                data = await VerifyingReader(stream, layer.digest, size=layer.size).read_all()
            return manifest, data

    manifest, data = run(go())
    assert manifest.digest == testimages.build_image("busybox").digest
    assert len(data) == manifest.layers[0].size


def test_mirror_lacking_the_image_falls_back(own: Pushed, registry: registry_tool.RegistryProcess) -> None:
    async def go() -> Manifest | Index:
        # Our own registry has no library/httpd: it answers 404, and the shared one has it.
        async with client(mirrors=[own.reg.url, registry.url]) as c:
            return await c.get_manifest(parse_reference("httpd:latest"))

    assert run(go()).digest == testimages.build_image("httpd").digest


def test_all_mirrors_and_upstream_failing_reports_the_upstream(own: Pushed) -> None:
    async def go() -> None:
        async with client(mirrors=[own.reg.url]) as c:
            await c.get_manifest(parse_reference("busybox"))

    with pytest.raises(RegistryUnreachable) as exc:
        run(go())
    assert '/v2/": dial tcp 127.0.0.1:' in str(exc.value)
    assert "connection refused" in str(exc.value)


# ---------------------------------------------------------------------------------------------- push


def test_push_blobs_and_manifest_then_pull_back(own: Pushed) -> None:
    image = testimages.build_image("httpd", media="oci", extra_files={"/pushed": b"by dockyard\n"})
    ref = own.ref("dist/pushed:v1")
    progress: list[int] = []

    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 65536):
            await asyncio.sleep(0)
            yield data[i : i + 65536]

    async def go() -> Manifest | Index:
        async with client() as c:
            assert not await c.blob_exists(ref, image.config.digest)
            await c.upload_blob(ref, image.config.digest, image.config.size, image.config.data)
            big = max(image.layers, key=lambda b: b.size)
            for layer in image.layers:
                if layer is big:  # the streamed path: POST, PATCH, PUT
                    await c.upload_blob(
                        ref, layer.digest, layer.size, chunks(layer.data), progress=progress.append
                    )
                else:
                    await c.upload_blob(ref, layer.digest, layer.size, layer.data)
            for blob in image.blobs:
                assert await c.blob_exists(ref, blob.digest)
            digest = await c.put_manifest(ref, image.manifest.media_type, image.manifest.data)
            assert digest == image.digest
            return await c.get_manifest(ref)

    pulled = run(go())
    assert pulled.digest == image.digest
    assert progress and progress[-1] == max(b.size for b in image.layers)
    assert progress == sorted(progress)


def test_upload_with_wrong_digest_is_refused(own: Pushed) -> None:
    async def go() -> None:
        async with client() as c:
            await c.upload_blob(own.ref("dist/wrong"), "sha256:" + "2" * 64, 3, b"abc")

    with pytest.raises(Exception, match="digest invalid"):
        run(go())


def test_mount_blob_across_repositories(own: Pushed) -> None:
    image = testimages.build_image("busybox", media="docker", extra_files={"/mounted": b"shared\n"})
    testimages.push_image(own.reg.address, "dist/mount-src", "1", image)
    layer = image.layers[-1]
    dst = own.ref("dist/mount-dst:1")

    async def go() -> None:
        async with client() as c:
            assert not await c.blob_exists(dst, layer.digest)
            assert await c.mount_blob(dst, layer.digest, "dist/mount-src")
            assert await c.blob_exists(dst, layer.digest)
            # A blob the source lacks: the registry opens an upload instead, which is cancelled.
            assert not await c.mount_blob(dst, "sha256:" + "3" * 64, "dist/mount-src")
            # Another registry's repository cannot be mounted from.
            assert not await c.mount_blob(dst, layer.digest, parse_reference("quay.io/a/b"))
            for blob in image.blobs:
                assert await c.mount_blob(dst, blob.digest, own.ref("dist/mount-src"))
                assert await c.blob_exists(dst, blob.digest)
            await c.put_manifest(dst, image.manifest.media_type, image.manifest.data)
            assert (await c.get_manifest(dst)).digest == image.digest

    run(go())


# ------------------------------------------------------------------------------------ Basic auth registry


def start_htpasswd_registry(workdir: Path, users: dict[str, str]) -> registry_tool.RegistryProcess:
    """docker-registry with ``auth: htpasswd`` (bcrypt entries made by ``htpasswd -B``)."""
    return registry_tool.start_registry(workdir, htpasswd=users)


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[registry_tool.RegistryProcess]:
    reg = start_htpasswd_registry(tmp_path_factory.mktemp("dist-basic"), {"alice": "s3cret", "bob": "other"})
    try:
        yield reg
    finally:
        reg.stop()


def test_basic_auth_registry(basic_registry: registry_tool.RegistryProcess) -> None:
    alice = AuthConfig(username="alice", password="s3cret")
    wrong = AuthConfig(username="alice", password="nope")
    image = testimages.build_image("busybox", media="oci")
    ref = parse_reference(f"{basic_registry.address}/private/app:1")

    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with client() as c:
            for blob in image.blobs:
                await c.upload_blob(ref, blob.digest, blob.size, blob.data, auth=alice)
            await c.put_manifest(ref, image.manifest.media_type, image.manifest.data, auth=alice)
            out["pulled"] = (await c.get_manifest(ref, auth=alice)).digest
            out["config"] = await c.get_blob(ref, image.config.digest, auth=alice)
            for name, auth in (("anonymous", None), ("wrong", wrong)):
                try:
                    await c.get_manifest(ref, auth=auth)
                except Unauthorized as e:
                    out[name] = e
            try:
                await c.upload_blob(ref, image.config.digest, image.config.size, image.config.data)
            except Unauthorized as e:
                out["push_anonymous"] = e
        return out

    out = run(go())
    assert out["pulled"] == image.digest
    assert out["config"] == image.config.data
    assert isinstance(out["anonymous"], AccessDenied)
    assert str(out["anonymous"]) == (
        f"pull access denied for {basic_registry.address}/private/app, repository does not exist or may "
        "require 'docker login': denied: requested access to the resource is denied"
    )
    assert type(out["wrong"]) is Unauthorized
    assert str(out["wrong"]) == "unauthorized: authentication required"
    assert str(out["push_anonymous"]) == "unauthorized: authentication required"


def test_basic_auth_check_login(basic_registry: registry_tool.RegistryProcess) -> None:
    async def go() -> tuple[str, str, BaseException, BaseException]:
        async with client() as c:
            ok = await c.check_login(basic_registry.address, AuthConfig(username="bob", password="other"))
            ok_url = await c.check_login(
                f"http://{basic_registry.address}/", AuthConfig(username="alice", password="s3cret")
            )
            with pytest.raises(Unauthorized) as wrong:
                await c.check_login(basic_registry.address, AuthConfig(username="bob", password="bad"))
            with pytest.raises(Unauthorized) as anonymous:
                await c.check_login(basic_registry.address, None)
            return ok, ok_url, wrong.value, anonymous.value

    ok, ok_url, wrong, anonymous = run(go())
    assert ok == ok_url == "Login Succeeded"
    expected = f"login attempt to http://{basic_registry.address}/v2/ failed with status: 401 Unauthorized"
    assert str(wrong) == str(anonymous) == expected


def test_check_login_without_auth_on_an_open_registry(own: Pushed) -> None:
    async def go() -> str:
        async with client() as c:
            return await c.check_login(own.reg.address, AuthConfig(username="x", password="y"))

    assert run(go()) == "Login Succeeded"


# ------------------------------------------------------------------------------ Bearer token auth world


async def start_app(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, port


@dataclass
class TokenWorld:
    """A token server, a registry front that demands its tokens, and blob storage on a third port.

    Repositories under ``public/`` are readable anonymously; ``alice``/``secret`` reads everything.
    """

    image: testimages.BuiltImage
    access_token_field: bool = False
    expires_in: int = 60
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    grants: dict[str, set[str]] = field(default_factory=dict)
    registry_auth: list[str | None] = field(default_factory=list)
    storage_auth: list[str | None] = field(default_factory=list)
    runners: list[web.AppRunner] = field(default_factory=list)
    token_port: int = 0
    registry_port: int = 0
    storage_port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    def challenge(self, scope: str = "", error: str = "") -> str:
        value = f'Bearer realm="http://127.0.0.1:{self.token_port}/token",service="test-registry"'
        if scope:
            value += f',scope="{scope}"'
        if error:
            value += f',error="{error}"'
        return value

    async def token(self, request: web.Request) -> web.Response:
        scopes = request.query.getall("scope", [])
        header = request.headers.get("Authorization", "")
        self.token_requests.append({"query": dict(request.query), "scopes": scopes, "auth": header})
        user = None
        if header:
            user, _, password = base64.b64decode(header.split(" ", 1)[1]).decode().partition(":")
            if (user, password) != ("alice", "secret"):
                return web.json_response({"details": "incorrect username or password"}, status=401)
        granted = {s for s in scopes if user == "alice" or s.split(":")[1].startswith("public/")}
        token = f"tok{len(self.token_requests)}"
        self.grants[token] = granted
        key = "access_token" if self.access_token_field else "token"
        return web.json_response({key: token, "expires_in": self.expires_in})

    async def oauth(self, request: web.Request) -> web.Response:
        """The refresh-token grant an identity token is traded in (POST, form-encoded)."""
        form = await request.post()
        scopes = str(form.get("scope", "")).split()
        self.token_requests.append({"query": dict(form), "scopes": scopes, "auth": "", "method": "POST"})
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != "rt-alice":
            return web.json_response({"details": "invalid refresh token"}, status=401)
        token = f"tok{len(self.token_requests)}"
        self.grants[token] = set(scopes)
        return web.json_response({"access_token": token, "expires_in": 300, "refresh_token": "rt-alice"})

    def _bearer(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        self.registry_auth.append(header or None)
        return header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""

    async def ping(self, request: web.Request) -> web.Response:
        if self._bearer(request) in self.grants:
            return web.json_response({})
        return web.json_response({}, status=401, headers={"WWW-Authenticate": self.challenge()})

    def _denied(self, request: web.Request, name: str) -> web.Response | None:
        token = self._bearer(request)
        scope = f"repository:{name}:pull"
        if scope in self.grants.get(token, set()):
            return None
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required", "detail": None}]}
        challenge = self.challenge(scope, "insufficient_scope" if token else "")
        return web.json_response(body, status=401, headers={"WWW-Authenticate": challenge})

    async def manifest(self, request: web.Request) -> web.Response:
        name, reference = request.match_info["name"], request.match_info["reference"]
        denied = self._denied(request, name)
        if denied is not None:
            return denied
        if reference not in ("1", self.image.digest):
            body = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}
            return web.json_response(body, status=404)
        return web.Response(
            body=self.image.manifest.data,
            headers={
                "Content-Type": self.image.manifest.media_type,
                "Docker-Content-Digest": self.image.digest,
            },
        )

    async def blob(self, request: web.Request) -> web.Response:
        denied = self._denied(request, request.match_info["name"])
        if denied is not None:
            return denied
        digest = request.match_info["digest"]
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{self.storage_port}/storage/{digest}?sig=1")

    async def storage(self, request: web.Request) -> web.Response:
        self.storage_auth.append(request.headers.get("Authorization"))
        blobs = {b.digest: b.data for b in self.image.blobs}
        data = blobs.get(request.match_info["digest"])
        if data is None:
            raise web.HTTPNotFound()
        return web.Response(body=data, content_type="application/octet-stream")

    async def start(self) -> None:
        token_app = web.Application()
        token_app.router.add_get("/token", self.token)
        token_app.router.add_post("/token", self.oauth)
        registry_app = web.Application()
        registry_app.router.add_get("/v2/", self.ping)
        registry_app.router.add_get(r"/v2/{name:.+}/manifests/{reference}", self.manifest)
        registry_app.router.add_get(r"/v2/{name:.+}/blobs/{digest}", self.blob)
        storage_app = web.Application()
        storage_app.router.add_get("/storage/{digest}", self.storage)
        for app, attr in (
            (token_app, "token_port"),
            (registry_app, "registry_port"),
            (storage_app, "storage_port"),
        ):
            runner, port = await start_app(app)
            self.runners.append(runner)
            setattr(self, attr, port)

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


def with_world(body: Callable[[TokenWorld], Awaitable[T]], **kwargs: Any) -> T:
    async def go() -> T:
        world = TokenWorld(testimages.build_image("busybox", media="oci"), **kwargs)
        await world.start()
        try:
            return await body(world)
        finally:
            await world.stop()

    return run(go())


def test_bearer_anonymous_pull_and_token_cache() -> None:
    async def body(world: TokenWorld) -> None:
        ref = parse_reference(f"{world.address}/public/app:1")
        async with client() as c:
            manifest = await c.get_manifest(ref)
            assert isinstance(manifest, Manifest) and manifest.digest == world.image.digest
            config = await c.get_blob(ref, manifest.config.digest)
            assert config == world.image.config.data
            layer = manifest.layers[0]
            stream = await c.open_blob(ref, layer.digest)
            async with stream:
                await VerifyingReader(stream, layer.digest, size=layer.size).read_all()
            await c.get_manifest(ref.with_digest(world.image.digest))
            # One token for the repository's pull scope, reused by every request.
            assert len(world.token_requests) == 1
            assert world.token_requests[0]["scopes"] == ["repository:public/app:pull"]
            assert world.token_requests[0]["query"]["service"] == "test-registry"
            assert world.token_requests[0]["auth"] == ""
            # Another repository needs another scope, hence another token.
            await c.get_manifest(parse_reference(f"{world.address}/public/other:1"))
            assert len(world.token_requests) == 2
        # The registry saw bearer tokens; the blob storage it redirected to saw no credentials at all.
        assert any(h and h.startswith("Bearer ") for h in world.registry_auth)
        assert world.storage_auth and all(h is None for h in world.storage_auth)

    with_world(body)


def test_bearer_token_expiry_and_access_token_field() -> None:
    now = [1000.0]
    cache = TokenCache(clock=lambda: now[0])

    async def body(world: TokenWorld) -> None:
        ref = parse_reference(f"{world.address}/public/app:1")
        async with client(token_cache=cache) as c:
            await c.get_manifest(ref)
            await c.get_manifest(ref)
            assert len(world.token_requests) == 1
            now[0] += 119
            await c.get_manifest(ref)
            assert len(world.token_requests) == 1
            now[0] += 1  # expires_in=120 has passed
            await c.get_manifest(ref)
            assert len(world.token_requests) == 2

    with_world(body, access_token_field=True, expires_in=120)


def test_bearer_private_repository() -> None:
    async def body(world: TokenWorld) -> None:
        ref = parse_reference(f"{world.address}/private/app:1")
        async with client() as c:
            with pytest.raises(AccessDenied) as denied:
                await c.get_manifest(ref)
            assert str(denied.value) == (
                f"pull access denied for {world.address}/private/app, repository does not exist or may "
                "require 'docker login': denied: requested access to the resource is denied"
            )
            assert len(world.token_requests) == 1  # a fresh token that was refused is not asked for again
            with pytest.raises(Unauthorized) as wrong:
                await c.get_manifest(ref, auth=AuthConfig(username="alice", password="bad"))
            assert str(wrong.value) == (
                f'Get "http://{world.address}/v2/private/app/manifests/1": '
                "unauthorized: incorrect username or password"
            )
            alice = AuthConfig(username="alice", password="secret")
            manifest = await c.get_manifest(ref, auth=alice)
            assert manifest.digest == world.image.digest
            assert world.token_requests[-1]["auth"] == alice.basic_header()
            assert world.token_requests[-1]["query"]["account"] == "alice"
            # Alice's token is hers: an anonymous pull right after is still denied.
            with pytest.raises(AccessDenied):
                await c.get_manifest(ref)
            with pytest.raises(ManifestUnknown):
                await c.get_manifest(parse_reference(f"{world.address}/private/app:2"), auth=alice)

    with_world(body)


def test_bearer_identity_token_and_registry_token() -> None:
    async def body(world: TokenWorld) -> None:
        ref = parse_reference(f"{world.address}/private/app:1")
        async with client() as c:
            manifest = await c.get_manifest(ref, auth=AuthConfig(identity_token="rt-alice"))
            assert manifest.digest == world.image.digest
            post = world.token_requests[-1]
            assert post["method"] == "POST" and post["query"]["service"] == "test-registry"
            assert post["scopes"] == ["repository:private/app:pull"]
            with pytest.raises(Unauthorized, match="unauthorized: invalid refresh token"):
                await c.get_manifest(ref, auth=AuthConfig(identity_token="rt-mallory"))
            # A registry token goes to the registry as it is, with no token server involved.
            world.grants["static"] = {"repository:private/app:pull"}
            before = len(world.token_requests)
            manifest = await c.get_manifest(ref, auth=AuthConfig(registry_token="static"))
            assert manifest.digest == world.image.digest
            assert len(world.token_requests) == before
            assert world.registry_auth[-1] == "Bearer static"

    with_world(body)


def test_bearer_check_login() -> None:
    async def body(world: TokenWorld) -> None:
        async with client() as c:
            assert await c.check_login(world.address, AuthConfig(username="alice", password="secret")) == (
                "Login Succeeded"
            )
            assert world.token_requests[-1]["query"].get("offline_token") == "true"
            with pytest.raises(Unauthorized) as exc:
                await c.check_login(world.address, AuthConfig(username="alice", password="bad"))
            assert str(exc.value) == (
                f'Get "http://{world.address}/v2/": unauthorized: incorrect username or password'
            )

    with_world(body)


# ------------------------------------------------------------------------------------ resumable blobs


class FlakyBlobServer:
    """A raw HTTP/1.1 registry serving one blob, misbehaving as scripted, one behaviour per blob request.

    Behaviours: "dead" (headers, then a reset), "drop" (send a third of what was asked, then reset the
    connection), "short" (a body without Content-Length that ends early but cleanly), "503",
    "ignore-range" (always 200, whole blob), "range" (honour Range with a 206).
    """

    def __init__(self, data: bytes, script: list[str]) -> None:
        self.data = data
        self.digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.script = list(script)
        self.ranges: list[str | None] = []
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.error: BaseException | None = None

    async def __aenter__(self) -> FlakyBlobServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def ref(self) -> Reference:
        return parse_reference(f"127.0.0.1:{self.port}/flaky/blob")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(1)
            if first == b"\x16":  # a TLS handshake: this server only speaks plain HTTP
                writer.transport.abort()
                return
            head = first + await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode().split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        if path == "/v2/":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            await writer.drain()
            writer.close()
            return
        self.ranges.append(headers.get("range"))
        behaviour = self.script.pop(0) if self.script else "range"
        start = int(headers["range"].split("=")[1].rstrip("-")) if "range" in headers else 0
        size = len(self.data)
        if behaviour == "dead":
            writer.write(
                f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{size - 1}/{size}\r\n"
                f"Content-Length: {size - start}\r\n\r\n".encode()
            )
            await writer.drain()
            writer.transport.abort()
            return
        if behaviour == "503":
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        elif behaviour == "ignore-range" or (behaviour in ("drop", "range") and start == 0):
            body = self.data
            if behaviour == "drop":
                writer.write(
                    f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode() + body[: size // 3]
                )
                await writer.drain()
                writer.transport.abort()
                return
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n".encode() + body
            )
        elif behaviour == "short":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + self.data[: size // 2])
        else:
            part = self.data[start:]
            status = f"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{size - 1}/{size}\r\n"
            if behaviour == "drop":
                writer.write(f"{status}Content-Length: {len(part)}\r\n\r\n".encode() + part[: len(part) // 3])
                await writer.drain()
                writer.transport.abort()
                return
            writer.write(f"{status}Content-Length: {len(part)}\r\nConnection: close\r\n\r\n".encode() + part)
        await writer.drain()
        writer.close()


DATA = os.urandom(3 << 20)


def download(
    script: list[str], max_attempts: int = 5, size: int | None = None
) -> tuple[bytes, FlakyBlobServer, int]:
    async def go() -> tuple[bytes, FlakyBlobServer, int]:
        async with FlakyBlobServer(DATA, script) as server:
            async with client(max_attempts=max_attempts) as c:
                stream = await c.open_blob(server.ref, server.digest, size=size)
                async with stream:
                    assert stream.size in (len(DATA), None)
                    data = await VerifyingReader(stream, server.digest, size=len(DATA)).read_all()
                return data, server, stream.attempts

    return run(go())


def test_blob_resumes_with_range_after_a_dropped_connection() -> None:
    data, server, attempts = download(["drop", "drop", "range"])
    assert data == DATA
    assert attempts == 3
    assert server.ranges[0] is None
    first_resume = int(server.ranges[1].removeprefix("bytes=").rstrip("-"))
    assert 0 < first_resume <= len(DATA) // 3
    second_resume = int(server.ranges[2].removeprefix("bytes=").rstrip("-"))
    assert second_resume > first_resume


def test_blob_resume_when_the_server_ignores_range() -> None:
    data, server, _ = download(["drop", "ignore-range"])
    assert data == DATA
    assert server.ranges[1] is not None  # asked for a range, got the whole blob and skipped the start


def test_blob_retries_5xx_with_backoff() -> None:
    data, server, attempts = download(["503", "503", "range"])
    assert data == DATA and attempts == 3
    assert server.ranges == [None, None, None]


def test_blob_that_ends_early_cleanly_is_resumed_when_its_size_is_known() -> None:
    data, server, _ = download(["short", "range"], size=len(DATA))
    assert data == DATA
    assert server.ranges[1] == f"bytes={len(DATA) // 2}-"


def test_blob_retries_are_bounded() -> None:
    # Nothing but 5xx: three tries, then the registry's answer.
    with pytest.raises(RegistryError) as exc:
        download(["503"] * 10, max_attempts=3)
    assert str(exc.value) == "received unexpected HTTP status: 503 Service Unavailable"

    async def go(script: list[str]) -> FlakyBlobServer:
        async with FlakyBlobServer(DATA, script) as server:
            async with client(max_attempts=3) as c:
                stream = await c.open_blob(server.ref, server.digest)
                async with stream:
                    with pytest.raises(RegistryError) as exc:
                        await stream.read_all()
                    server.error = exc.value
        return server

    # Data then failures: receiving bytes renews the allowance, failing without bytes uses it up.
    server = run(go(["drop", "dead", "dead", "dead", "dead"]))
    assert len(server.ranges) == 4
    assert isinstance(server.error, RegistryUnreachable)
    assert str(server.error) == (
        f'Get "http://127.0.0.1:{server.port}/v2/flaky/blob/blobs/{server.digest}": unexpected EOF'
    )
    server = run(go(["drop", "503", "503", "503", "503"]))
    assert len(server.ranges) == 4
    assert str(server.error) == "received unexpected HTTP status: 503 Service Unavailable"
