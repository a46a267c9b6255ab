"""Build small container images from the host's static busybox, without any daemon, and push them.

Images are built in memory (deterministic tar + gzip, so digests are reproducible) and uploaded through
the distribution HTTP API (https://github.com/opencontainers/distribution-spec) to a plain-http registry
such as the one tools/registry.py runs::

    img = build_image("httpd", media="oci")
    digest = push_image("127.0.0.1:5000", "library/httpd", "latest", img)

CLI (pushes library/busybox:latest and library/httpd:latest so the registry can mirror docker.io)::

    python tools/testimages.py --registry 127.0.0.1:5000 [--media docker|oci]
        [--repo NAME --kind busybox|httpd --tag T [--multiarch]]

Stdlib only, so it runs from any interpreter without installing the project.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import io
import json
import platform
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

BUSYBOX = "/bin/busybox"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# media -> (manifest, config, layer, index) media types
MEDIA_TYPES: dict[str, tuple[str, str, str, str]] = {
    "docker": (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST_LIST),
    "oci": (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, OCI_INDEX),
}

KINDS = ("busybox", "httpd")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
HTTPD_ROOT = "usr/local/apache2"
HTTPD_INDEX = b"<html><body><h1>It works!</h1></body></html>\n"  # the real httpd image's default page

# Every timestamp is fixed so that building twice gives byte-identical blobs and therefore equal digests.
CREATED = "2024-01-01T00:00:00Z"
EPOCH = 1704067200  # CREATED as a unix time; used as every tar entry's mtime
GZIP_LEVEL = 6

PASSWD = b"""\
root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""
GROUP = b"""\
root:x:0:
www-data:x:33:
nogroup:x:65534:
"""

# platform.machine() -> OCI architecture[/variant]
_HOST_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm/v7",
    "armv6l": "arm/v6",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}

# loopback only: never route through an http_proxy from the environment
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    digest: str
    media_type: str
    data: bytes = field(repr=False)

    @classmethod
    def of(cls, media_type: str, data: bytes) -> Blob:
        return cls(sha256_digest(data), media_type, data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self) -> dict:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


@dataclass
class BuiltImage:
    config: Blob
    layers: list[Blob]
    manifest: Blob
    diff_ids: list[str]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def blobs(self) -> list[Blob]:
        """Everything a registry needs before the manifest can be accepted."""
        return [self.config, *self.layers]

    @property
    def platform(self) -> dict[str, str]:
        """The OCI platform object for index entries, read back from the config (the source of truth)."""
        cfg = json.loads(self.config.data)
        plat = {"architecture": cfg["architecture"], "os": cfg["os"]}
        if cfg.get("variant"):
            plat["variant"] = cfg["variant"]
        return plat


# ---------------------------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class _Entry:
    path: str
    kind: bytes  # tarfile.DIRTYPE / REGTYPE / SYMTYPE
    mode: int
    data: bytes = b""
    target: str = ""


def _dir(path: str, mode: int = 0o755) -> _Entry:
    return _Entry(path, tarfile.DIRTYPE, mode)


def _file(path: str, data: bytes, mode: int = 0o644) -> _Entry:
    return _Entry(path, tarfile.REGTYPE, mode, data=data)


def _symlink(path: str, target: str) -> _Entry:
    return _Entry(path, tarfile.SYMTYPE, 0o777, target=target)


def make_tar(entries: list[_Entry]) -> bytes:
    """A deterministic tar: sorted paths (parents sort before children), fixed mtime, uid/gid 0, no names."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in sorted(entries, key=lambda e: e.path):
            info = tarfile.TarInfo(e.path)
            info.type = e.kind
            info.mode = e.mode
            info.mtime = EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if e.kind == tarfile.SYMTYPE:
                info.linkname = e.target
            if e.kind == tarfile.REGTYPE:
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def gzip_layer(tar: bytes) -> bytes:
    # mtime=0 keeps the gzip header free of the build time, so the compressed digest is reproducible too.
    return gzip.compress(tar, compresslevel=GZIP_LEVEL, mtime=0)


def _parents(paths: list[str]) -> list[_Entry]:
    """Directory entries for every parent of `paths`, as real image layers carry them."""
    dirs = {"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)}
    return [_dir(d) for d in dirs]


@functools.cache
def busybox_applets() -> tuple[str, ...]:
    out = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout
    return tuple(sorted({a for a in out.split() if a and "/" not in a and a != "busybox"}))


@functools.cache
def _busybox_binary() -> bytes:
    with open(BUSYBOX, "rb") as f:
        return f.read()


def base_layer_entries() -> list[_Entry]:
    entries = [
        _dir("bin"),
        _file("bin/busybox", _busybox_binary(), 0o755),
        *(_symlink(f"bin/{a}", "busybox") for a in busybox_applets()),
        _dir("dev"),
        _dir("etc"),
        _file("etc/passwd", PASSWD),
        _file("etc/group", GROUP),
        _dir("proc"),
        _dir("root", 0o700),
        _dir("sys"),
        _dir("tmp", 0o1777),
        _dir("usr"),
        _dir("usr/bin"),
        _dir("usr/sbin"),
        _dir("var"),
    ]
    return entries


@dataclass(frozen=True)
class _Layer:
    tar: bytes = field(repr=False)
    gz: bytes = field(repr=False)
    diff_id: str
    digest: str


def _layer(tar: bytes) -> _Layer:
    gz = gzip_layer(tar)
    return _Layer(tar, gz, sha256_digest(tar), sha256_digest(gz))


@functools.cache
def base_layer() -> _Layer:
    """The busybox root filesystem, built once per process (the binary is ~2 MB; gzip dominates)."""
    return _layer(make_tar(base_layer_entries()))


@functools.cache
def httpd_layer() -> _Layer:
    index = f"{HTTPD_ROOT}/htdocs/index.html"
    return _layer(make_tar([*_parents([index]), _file(index, HTTPD_INDEX)]))


def files_layer(files: dict[str, bytes]) -> _Layer:
    """A layer with arbitrary files; ones starting with '#!' are made executable (scripts for tests)."""
    paths = {p.lstrip("/"): data for p, data in files.items()}
    entries = [_file(p, d, 0o755 if d.startswith(b"#!") else 0o644) for p, d in paths.items()]
    return _layer(make_tar([*_parents(list(paths)), *entries]))


# ---------------------------------------------------------------------------------------------- images


def host_arch() -> str:
    machine = platform.machine()
    return _HOST_ARCH.get(machine, machine)


def _split_arch(arch: str) -> tuple[str, str | None]:
    """'arm/v7' -> ('arm', 'v7'); 'amd64' -> ('amd64', None)."""
    name, _, variant = arch.partition("/")
    return name, variant or None


def _json(obj: object) -> bytes:
    # Compact and key-sorted: the bytes are hashed, so the encoding must not depend on dict insertion order.
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def build_image(
    kind: str = "busybox",
    arch: str | None = None,
    media: str = "docker",
    extra_files: dict[str, bytes] | None = None,
) -> BuiltImage:
    """Build a busybox- or httpd-like image in memory.

    arch is an OCI architecture with an optional variant ("amd64", "arm64", "arm/v7"); default: the host's.
    The binary is always the host's busybox: a foreign arch only changes the config (for platform
    selection tests). media is "docker" (schema 2) or "oci". extra_files go in one more top layer.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    if media not in MEDIA_TYPES:
        raise ValueError(f"unknown media {media!r}; expected one of {tuple(MEDIA_TYPES)}")
    manifest_type, config_type, layer_type, _ = MEDIA_TYPES[media]
    architecture, variant = _split_arch(arch or host_arch())

    layers = [(base_layer(), f"/bin/sh -c #(nop) ADD file:{base_layer().diff_id[7:19]} in / ")]
    container_config: dict[str, object] = {"Env": [PATH_ENV], "Cmd": ["sh"]}
    if kind == "httpd":
        layers.append((httpd_layer(), f"/bin/sh -c #(nop) COPY dir:htdocs in /{HTTPD_ROOT}/htdocs "))
        container_config = {
            "Env": [PATH_ENV],
            "Cmd": ["httpd", "-f", "-p", "80", "-h", f"/{HTTPD_ROOT}/htdocs"],
            "ExposedPorts": {"80/tcp": {}},
            "WorkingDir": f"/{HTTPD_ROOT}",
        }
    if extra_files:
        layers.append((files_layer(extra_files), "/bin/sh -c #(nop) COPY extra files in / "))

    config: dict[str, object] = {
        "architecture": architecture,
        "os": "linux",
        "created": CREATED,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer, _ in layers]},
        "history": [{"created": CREATED, "created_by": created_by} for _, created_by in layers],
    }
    if variant:
        config["variant"] = variant
    config_blob = Blob.of(config_type, _json(config))
    layer_blobs = [Blob(layer.digest, layer_type, layer.gz) for layer, _ in layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": config_blob.descriptor(),
        "layers": [b.descriptor() for b in layer_blobs],
    }
    return BuiltImage(
        config=config_blob,
        layers=layer_blobs,
        manifest=Blob.of(manifest_type, _json(manifest)),
        diff_ids=[layer.diff_id for layer, _ in layers],
    )


def build_from_tars(
    tars: list[bytes],
    compression: str = "gzip",
    config: dict[str, object] | None = None,
) -> BuiltImage:
    """An OCI image from raw layer tars (for malformed, malicious, large or zstd layers in tests).

    compression is "gzip", "zstd" or "none".
    """
    blobs, media_types = [], []
    for tar in tars:
        if compression == "gzip":
            blobs.append(gzip_layer(tar))
            media_types.append(OCI_LAYER)
        elif compression == "zstd":
            import zstandard

            blobs.append(zstandard.ZstdCompressor().compress(tar))
            media_types.append("application/vnd.oci.image.layer.v1.tar+zstd")
        else:
            blobs.append(tar)
            media_types.append("application/vnd.oci.image.layer.v1.tar")
    diff_ids = [sha256_digest(t) for t in tars]
    full_config: dict[str, object] = {
        "architecture": host_arch().split("/")[0],
        "os": "linux",
        "created": CREATED,
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"layer {i}"} for i in range(len(tars))],
        **(config or {}),
    }
    config_blob = Blob.of(OCI_CONFIG, _json(full_config))
    layer_list = [Blob(sha256_digest(b), m, b) for b, m in zip(blobs, media_types, strict=True)]
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [b.descriptor() for b in layer_list],
    }
    return BuiltImage(config_blob, layer_list, Blob.of(OCI_MANIFEST, _json(manifest)), diff_ids)


def build_multiplatform(
    kind: str = "busybox", media: str = "oci", arches: tuple[str, ...] | None = None
) -> list[BuiltImage]:
    """One image per platform (default: the host's, then amd64, arm64, arm/v7), all with the same layers."""
    if arches is None:
        arches = tuple(dict.fromkeys([host_arch(), "amd64", "arm64", "arm/v7"]))
    return [build_image(kind, arch, media) for arch in arches]


def build_index(images: list[BuiltImage], media: str = "oci") -> Blob:
    """An OCI image index ("oci") or Docker manifest list ("docker") over per-platform images."""
    index_type = MEDIA_TYPES[media][3]
    index = {
        "schemaVersion": 2,
        "mediaType": index_type,
        "manifests": [{**img.manifest.descriptor(), "platform": img.platform} for img in images],
    }
    return Blob.of(index_type, _json(index))


# ---------------------------------------------------------------------------------------------- push


class RegistryError(RuntimeError):
    pass


def _request(
    method: str,
    url: str,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    ok: tuple[int, ...] = (200, 201, 202),
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP exchange; statuses in `ok` are returned, anything else raises with the registry's body."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with _OPENER.open(req, timeout=60) as resp:
            status, hdrs, body = resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as e:  # 4xx/5xx arrive as exceptions; HEAD 404 is an answer, not an error
        status, hdrs, body = e.code, dict(e.headers.items()), e.read()
    if status not in ok:
        raise RegistryError(f"{method} {url} -> {status}: {body[:500].decode(errors='replace')}")
    return status, hdrs, body


def _header(headers: dict[str, str], name: str) -> str:
    name = name.lower()
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _base(registry: str) -> str:
    return registry if "://" in registry else f"http://{registry}"


def blob_exists(registry: str, repo: str, digest: str) -> bool:
    status, _, _ = _request("HEAD", f"{_base(registry)}/v2/{repo}/blobs/{digest}", ok=(200, 404))
    return status == 200


def push_blob(registry: str, repo: str, blob: Blob) -> None:
    """HEAD check, then a monolithic upload: POST opens a session, one PUT ?digest= closes it."""
    if blob_exists(registry, repo, blob.digest):
        return
    base = _base(registry)
    _, headers, _ = _request(
        "POST", f"{base}/v2/{repo}/blobs/uploads/", data=b"", headers={"Content-Length": "0"}, ok=(202,)
    )
    location = _header(headers, "Location")
    if not location:
        raise RegistryError(f"POST {base}/v2/{repo}/blobs/uploads/ returned no Location")
    # The spec allows a relative Location; it usually carries query state (_state=...) we must keep.
    location = urllib.parse.urljoin(f"{base}/v2/{repo}/blobs/uploads/", location)
    sep = "&" if "?" in location else "?"
    put_url = f"{location}{sep}{urllib.parse.urlencode({'digest': blob.digest})}"
    _, headers, _ = _request(
        "PUT",
        put_url,
        data=blob.data,
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
        ok=(201,),
    )
    got = _header(headers, "Docker-Content-Digest")
    if got and got != blob.digest:
        raise RegistryError(f"registry stored blob {got}, expected {blob.digest}")


def push_manifest(registry: str, repo: str, reference: str, manifest: Blob) -> str:
    """PUT a manifest or index under a tag or digest; returns the digest the registry computed."""
    _, headers, _ = _request(
        "PUT",
        f"{_base(registry)}/v2/{repo}/manifests/{reference}",
        data=manifest.data,
        headers={"Content-Type": manifest.media_type},
        ok=(201,),
    )
    got = _header(headers, "Docker-Content-Digest")
    if got != manifest.digest:
        raise RegistryError(f"registry says manifest digest {got!r}, expected {manifest.digest}")
    return got


def push_image(registry: str, repo: str, tag: str, image: BuiltImage) -> str:
    """Upload the image's blobs then its manifest as repo:tag; returns the manifest digest."""
    for blob in image.blobs:
        push_blob(registry, repo, blob)
    return push_manifest(registry, repo, tag, image.manifest)


def push_index(registry: str, repo: str, tag: str, images: list[BuiltImage], media: str = "oci") -> str:
    """Push each image by digest, then an index/manifest list over them as repo:tag; returns its digest.

    The per-platform manifests must exist first: the registry rejects an index naming unknown manifests.
    """
    for image in images:
        for blob in image.blobs:
            push_blob(registry, repo, blob)
        push_manifest(registry, repo, image.digest, image.manifest)
    return push_manifest(registry, repo, tag, build_index(images, media))


def get_manifest(
    registry: str, repo: str, reference: str, accept: list[str] | None = None
) -> tuple[str, bytes]:
    """GET a manifest; returns (Content-Type, body). Accept defaults to every type this module writes."""
    accept = accept or [DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX]
    _, headers, body = _request(
        "GET", f"{_base(registry)}/v2/{repo}/manifests/{reference}", headers={"Accept": ", ".join(accept)}
    )
    return _header(headers, "Content-Type"), body


# ---------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build busybox-based test images and push them.")
    parser.add_argument("--registry", required=True, help="host:port of a plain-http registry")
    parser.add_argument("--media", choices=tuple(MEDIA_TYPES), default="docker")
    parser.add_argument("--arch", default=None, help="e.g. amd64, arm64, arm/v7 (default: the host's)")
    parser.add_argument("--repo", help="also push this repository (e.g. test/app)")
    parser.add_argument("--kind", choices=KINDS, default="busybox", help="image kind for --repo")
    parser.add_argument("--tag", default="latest", help="tag for --repo")
    parser.add_argument("--multiarch", action="store_true", help="push --repo as a multi-platform index")
    args = parser.parse_args(argv)

    started = time.monotonic()
    targets = [("library/busybox", "latest", "busybox"), ("library/httpd", "latest", "httpd")]
    if args.repo:
        targets.append((args.repo, args.tag, args.kind))
    try:
        for i, (repo, tag, kind) in enumerate(targets):
            if args.multiarch and args.repo and i == len(targets) - 1:
                images = build_multiplatform(kind, args.media)
                digest = push_index(args.registry, repo, tag, images, args.media)
            else:
                digest = push_image(args.registry, repo, tag, build_image(kind, args.arch, args.media))
            print(f"{args.registry}/{repo}:{tag} {digest}", flush=True)
    except (RegistryError, urllib.error.URLError, OSError) as e:
        print(f"push failed: {e}", file=sys.stderr)
        return 1
    print(f"done in {time.monotonic() - started:.2f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
