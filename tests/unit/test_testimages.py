"""Unit tests for tools/testimages.py: image building is pure, so no root, daemon or real registry."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import os
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"

if not os.path.exists("/bin/busybox"):
    pytest.skip("needs the host's static busybox (busybox-static)", allow_module_level=True)


def _load_testimages():
    # tools/ is not a package; load the module from its file so the tests need no sys.path setup.
    spec = importlib.util.spec_from_file_location("testimages", TOOLS / "testimages.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


ti = _load_testimages()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_members(layer_gz: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    out: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_gz))) as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            out[m.name] = (m, f.read() if f else None)
    return out


# ------------------------------------------------------------------------------------------ layer contents


def test_base_layer_has_busybox_and_applet_symlinks() -> None:
    members = tar_members(ti.build_image("busybox").layers[0].data)
    info, data = members["bin/busybox"]
    assert info.isfile() and info.mode == 0o755
    assert data == Path("/bin/busybox").read_bytes()
    for applet in (
        "sh",
        "ls",
        "cat",
        "echo",
        "httpd",
        "sleep",
        "env",
        "id",
        "hostname",
        "wget",
        "ps",
        "true",
        "false",
        "top",
        "kill",
        "mount",
    ):
        link, _ = members[f"bin/{applet}"]
        assert link.issym() and link.linkname == "busybox", applet
    # every applet is linked, and only under bin/
    assert {n for n, (m, _) in members.items() if m.issym()} == {f"bin/{a}" for a in ti.busybox_applets()}


def test_base_layer_directories_and_metadata() -> None:
    members = tar_members(ti.build_image().layers[0].data)
    modes = {
        "etc": 0o755,
        "tmp": 0o1777,
        "root": 0o700,
        "dev": 0o755,
        "proc": 0o755,
        "sys": 0o755,
        "usr/bin": 0o755,
        "usr/sbin": 0o755,
        "var": 0o755,
    }
    for path, mode in modes.items():
        info, _ = members[path]
        assert info.isdir() and info.mode == mode, path
    for info, _ in members.values():
        assert (info.uid, info.gid, info.mtime) == (0, 0, ti.EPOCH)
    assert list(members) == sorted(members)


def test_passwd_and_group() -> None:
    members = tar_members(ti.build_image().layers[0].data)
    passwd = members["etc/passwd"][1].decode().splitlines()
    assert "root:x:0:0:root:/root:/bin/sh" in passwd
    assert "nobody:x:65534:65534:nobody:/nonexistent:/bin/false" in passwd
    assert any(line.startswith("www-data:x:33:33:") for line in passwd)
    group = members["etc/group"][1].decode().splitlines()
    assert "root:x:0:" in group and "www-data:x:33:" in group


def test_httpd_has_index_page_layer() -> None:
    img = ti.build_image("httpd")
    assert len(img.layers) == 2
    assert img.layers[0].digest == ti.build_image("busybox").layers[0].digest  # shared base layer
    members = tar_members(img.layers[1].data)
    assert (
        members["usr/local/apache2/htdocs/index.html"][1] == b"<html><body><h1>It works!</h1></body></html>\n"
    )
    for parent in ("usr", "usr/local", "usr/local/apache2", "usr/local/apache2/htdocs"):
        assert members[parent][0].isdir()


def test_extra_files_go_in_their_own_top_layer() -> None:
    img = ti.build_image(
        "busybox", extra_files={"/opt/app/run.sh": b"#!/bin/sh\necho hi\n", "etc/motd": b"hi\n"}
    )
    assert len(img.layers) == 2 and len(img.diff_ids) == 2
    members = tar_members(img.layers[1].data)
    assert members["opt/app/run.sh"][0].mode == 0o755
    assert members["etc/motd"] == (members["etc/motd"][0], b"hi\n") and members["etc/motd"][0].mode == 0o644
    assert members["opt/app"][0].isdir()


# ------------------------------------------------------------------------------------------ digests


def test_building_twice_gives_the_same_digests() -> None:
    first = ti.build_image("httpd", media="oci")
    ti.base_layer.cache_clear()  # rebuild from scratch, not from the in-process cache
    ti.httpd_layer.cache_clear()
    second = ti.build_image("httpd", media="oci")
    assert first.manifest.digest == second.manifest.digest
    assert first.config.digest == second.config.digest
    assert [b.digest for b in first.layers] == [b.digest for b in second.layers]
    assert first.diff_ids == second.diff_ids


def test_diff_ids_are_sha256_of_uncompressed_layers() -> None:
    img = ti.build_image("httpd")
    for blob, diff_id in zip(img.layers, img.diff_ids, strict=True):
        assert blob.digest == sha256(blob.data)
        assert diff_id == sha256(gzip.decompress(blob.data))
    config = json.loads(img.config.data)
    assert config["rootfs"] == {"type": "layers", "diff_ids": img.diff_ids}
    assert len(config["history"]) == len(img.layers)


@pytest.mark.parametrize(
    ("media", "types"),
    [
        ("docker", (ti.DOCKER_MANIFEST, ti.DOCKER_CONFIG, ti.DOCKER_LAYER)),
        ("oci", (ti.OCI_MANIFEST, ti.OCI_CONFIG, ti.OCI_LAYER)),
    ],
)
def test_manifest_references_config_and_layers(media: str, types: tuple[str, str, str]) -> None:
    img = ti.build_image("httpd", media=media)
    manifest = json.loads(img.manifest.data)
    assert img.manifest.digest == sha256(img.manifest.data)
    assert img.manifest.media_type == manifest["mediaType"] == types[0]
    assert manifest["schemaVersion"] == 2
    assert manifest["config"] == {
        "mediaType": types[1],
        "size": len(img.config.data),
        "digest": sha256(img.config.data),
    }
    assert manifest["layers"] == [
        {"mediaType": types[2], "size": len(b.data), "digest": sha256(b.data)} for b in img.layers
    ]


# ------------------------------------------------------------------------------------------ configs


def test_busybox_config() -> None:
    config = json.loads(ti.build_image("busybox", arch="amd64").config.data)
    assert (config["architecture"], config["os"], config["created"]) == ("amd64", "linux", ti.CREATED)
    assert config["config"]["Cmd"] == ["sh"]
    assert config["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert "variant" not in config


def test_httpd_config() -> None:
    cfg = json.loads(ti.build_image("httpd").config.data)["config"]
    assert cfg["Cmd"] == ["httpd", "-f", "-p", "80", "-h", "/usr/local/apache2/htdocs"]
    assert cfg["ExposedPorts"] == {"80/tcp": {}}
    assert cfg["WorkingDir"] == "/usr/local/apache2"
    assert "StopSignal" not in cfg


def test_default_arch_is_the_host() -> None:
    expected = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine)
    if expected is None:
        pytest.skip("host arch not mapped in this test")
    assert ti.build_image().platform == {"architecture": expected, "os": "linux"}


def test_arch_variant() -> None:
    img = ti.build_image("busybox", arch="arm/v7")
    config = json.loads(img.config.data)
    assert (config["architecture"], config["variant"]) == ("arm", "v7")
    assert img.platform == {"architecture": "arm", "os": "linux", "variant": "v7"}


def test_unknown_kind_or_media_is_rejected() -> None:
    with pytest.raises(ValueError):
        ti.build_image("nginx")
    with pytest.raises(ValueError):
        ti.build_image(media="schema1")


# ------------------------------------------------------------------------------------------ index


@pytest.mark.parametrize(
    ("media", "index_type"), [("oci", ti.OCI_INDEX), ("docker", ti.DOCKER_MANIFEST_LIST)]
)
def test_index_lists_the_platforms(media: str, index_type: str) -> None:
    images = ti.build_multiplatform("busybox", media=media, arches=("amd64", "arm64", "arm/v7"))
    blob = ti.build_index(images, media)
    index = json.loads(blob.data)
    assert blob.media_type == index["mediaType"] == index_type and blob.digest == sha256(blob.data)
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux"},
        {"architecture": "arm", "os": "linux", "variant": "v7"},
    ]
    for entry, img in zip(index["manifests"], images, strict=True):
        assert entry["digest"] == img.manifest.digest and entry["size"] == len(img.manifest.data)
        assert entry["mediaType"] == img.manifest.media_type
    assert len({m["digest"] for m in index["manifests"]}) == 3  # configs differ, so manifests differ


# ------------------------------------------------------------------------------------------ push protocol


class _FakeRegistry(BaseHTTPRequestHandler):
    """Just enough of the distribution API to check the client's flow, with a *relative* Location."""

    blobs: dict[str, bytes] = {}
    manifests: dict[str, tuple[str, bytes]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._reply(200 if self.path.rsplit("/", 1)[-1] in self.blobs else 404)

    def do_POST(self) -> None:
        self._reply(202, {"Location": "/v2/upload/session-1?_state=abc"})

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        path, _, query = self.path.partition("?")
        if path.startswith("/v2/upload/"):
            assert "_state=abc" in query  # the state in Location must be kept
            digest = query.rsplit("digest=", 1)[1].replace("%3A", ":")
            assert digest == sha256(body)
            self.blobs[digest] = body
            self._reply(201, {"Docker-Content-Digest": digest})
        else:
            self.manifests[path] = (self.headers["Content-Type"], body)
            self._reply(201, {"Docker-Content-Digest": sha256(body)})


@pytest.fixture
def fake_registry() -> Iterator[str]:
    _FakeRegistry.blobs, _FakeRegistry.manifests = {}, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_push_image_uploads_blobs_then_manifest(fake_registry: str) -> None:
    img = ti.build_image("httpd", media="oci")
    assert ti.push_image(fake_registry, "library/httpd", "latest", img) == img.manifest.digest
    assert set(_FakeRegistry.blobs) == {b.digest for b in img.blobs}
    assert _FakeRegistry.manifests["/v2/library/httpd/manifests/latest"] == (
        ti.OCI_MANIFEST,
        img.manifest.data,
    )


def test_push_index_pushes_children_by_digest_first(fake_registry: str) -> None:
    images = ti.build_multiplatform("busybox", media="oci", arches=("amd64", "arm64"))
    digest = ti.push_index(fake_registry, "multi", "v1", images)
    for img in images:
        assert f"/v2/multi/manifests/{img.manifest.digest}" in _FakeRegistry.manifests
    ctype, body = _FakeRegistry.manifests["/v2/multi/manifests/v1"]
    assert ctype == ti.OCI_INDEX and digest == sha256(body)
