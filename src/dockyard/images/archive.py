"""Images to and from tar archives: `docker save`, `docker load` and `docker import`.

save writes Docker 20.10's docker-archive layout: `manifest.json` ([{"Config","RepoTags","Layers"}]),
`repositories`, each config as `<id hex>.json`, and per layer a v1-compatibility directory
`<v1 id>/{VERSION,json,layer.tar}`. An OCI image layout is written alongside, as Docker 25 does
(`oci-layout`, `index.json`, `blobs/sha256/...`): each layer's bytes are stored once, as the blob
`blobs/sha256/<diff id>`, and `<v1 id>/layer.tar` is a symlink to it, the form Docker itself uses for a
layer that appears twice. The archive is produced as a stream of chunks; nothing is held whole in memory.

load reads either layout, plain or compressed. Docker writes `manifest.json` last, so the archive's files
are first spooled to disk (as dockerd does) under the content store's ingest directory, which start-up
clears. Then every image is checked (paths stay inside the archive, configs parse, each layer's diff ID
matches the config's rootfs) and its layers unpacked into snapshots; only when all of that succeeded are
blobs published and images and tags registered, under the service lock. A failure registers nothing
and removes the snapshots it had made.

import makes a one-layer image from a rootfs tarball (plain, gzip or zstd), with the config dockerd writes
for it, and `--change` instructions applied (see `changes.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from ..goarch import go_arch
from ..reference import InvalidReference, Reference, parse_reference
from .changes import ChangeError, apply_changes, empty_container_config
from .content import BlobNotFound, digest_hex, sha256_digest
from .ingest import ZSTD_MAGIC, DecompressingReader
from .layers import LayerError
from .service import ImageError, ImageService
from .snapshots import PendingSnapshot, chain_ids
from .store import ImageRecord, LayerRecord

__all__ = [
    "ArchiveError",
    "LoadResult",
    "SaveStream",
    "import_rootfs",
    "load",
    "save",
]

MANIFEST_FILE = "manifest.json"
REPOSITORIES_FILE = "repositories"
OCI_LAYOUT_FILE = "oci-layout"
OCI_INDEX_FILE = "index.json"
OCI_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'

LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
_INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
_MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# containerd's annotation for the full image name; Docker 25 writes it in index.json.
IMAGE_NAME_ANNOTATION = "io.containerd.image.name"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

CHUNK = 1 << 20
# manifest.json, index.json and configs are read into memory: a bound keeps a hostile archive from
# making the daemon swallow gigabytes. Real ones are kilobytes.
MAX_METADATA = 32 << 20
_MAX_LINK_HOPS = 40
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_FULL_ID_RE = re.compile(r"(sha256:)?[0-9a-f]{64}")
_V1_EPOCH = "1970-01-01T00:00:00Z"
# The image config fields Docker's V1Image carries, in its declaration order.
_V1_FIELDS = (
    "comment",
    "created",
    "container",
    "container_config",
    "docker_version",
    "author",
    "config",
    "architecture",
    "variant",
    "os",
)

# (layer id shown, bytes read, total): "Loading layer" progress, called on the event loop.
LoadProgress = Callable[[str, int, int], None]
PlatformFilter = Callable[[dict[str, Any]], bool]


class ArchiveError(ImageError):
    """The archive is malformed, incomplete or malicious; the message is one line."""

    status = 500


# --------------------------------------------------------------------------------------------- shared


def go_json(data: Any) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, with <, > and & escaped."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(raw, escaped)
    return text.replace("\u2029", "\\u2029").encode()


def _unix(timestamp: Any) -> int:
    if not isinstance(timestamp, str) or not timestamp:
        return 0
    try:
        return max(0, int(datetime.fromisoformat(timestamp).timestamp()))
    except ValueError:
        return 0


def _now_rfc3339nano() -> str:
    """Now in UTC as Go's RFC3339Nano: nanoseconds with trailing zeros trimmed, and a Z."""
    ns = time.time_ns()
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


# --------------------------------------------------------------------------------------------- save


def save(service: ImageService, names: list[str]) -> SaveStream:
    """Resolve `names` as `docker save` does and return the archive, ready to stream.

    Errors about the names (no such image, invalid reference) are raised here, before any byte is
    produced, so the API can still answer them with a status code.
    """
    return SaveStream(service, _select_for_save(service, names))


def _select_for_save(service: ImageService, names: list[str]) -> list[tuple[ImageRecord, list[Reference]]]:
    """Docker's rules: a repository name alone saves all its tags, `name:tag` that tag, an ID or a
    digest reference the image with no tag."""
    chosen: dict[str, list[Reference]] = {}

    def add(record: ImageRecord, ref: Reference | None = None) -> None:
        tags = chosen.setdefault(record.id, [])
        if ref is not None and ref.tag and not ref.digest and all(str(t) != str(ref) for t in tags):
            tags.append(ref)

    for name in names:
        if _FULL_ID_RE.fullmatch(name) or name.startswith("sha256:"):
            add(service.get(name))
            continue
        try:
            ref = parse_reference(name, default_tag=None)
        except InvalidReference as e:
            raise ImageError(str(e), 400) from None
        if ref.tag is None and ref.digest is None:
            tagged = sorted(
                (
                    r
                    for r in _references(service)
                    if r.repository == ref.repository and r.tag and not r.digest
                ),
                key=str,
            )
            for tag in tagged:
                add(service.store.images[service.store.refs[str(tag)]], tag)
            if not tagged:
                add(service.get(name))  # an ID prefix, or "No such image"
        elif ref.digest:
            add(service.get(name))
        else:
            add(service.get(name), ref)
    return [(service.store.images[image_id], tags) for image_id, tags in chosen.items()]


def _references(service: ImageService) -> list[Reference]:
    refs = []
    for key, image_id in service.store.refs.items():
        if image_id in service.store.images:
            try:
                refs.append(parse_reference(key, default_tag=None))
            except InvalidReference:
                continue
    return refs


@dataclass
class _SaveImage:
    record: ImageRecord
    tags: list[Reference]
    config_blob: bytes


class SaveStream:
    """A docker-archive being written. Iterating yields its bytes (blocking file reads: iterate in a
    worker thread); `close()` releases the blobs it holds open.

    Every blob is opened when the stream is made, so an `rmi` racing the save cannot take a layer away
    halfway: an unlinked file stays readable while it is open.
    """

    def __init__(self, service: ImageService, selection: list[tuple[ImageRecord, list[Reference]]]) -> None:
        self._scratch = service.content.ingest_dir
        self._images: list[_SaveImage] = []
        self._blobs: dict[str, tuple[BinaryIO, str]] = {}  # diff ID -> (open blob, its digest)
        try:
            for record, tags in selection:
                if not record.layers:
                    raise ImageError("empty export - not implemented", 500)
                self._images.append(_SaveImage(record, tags, service.content.read(record.id)))
                for layer in record.layers:
                    if layer.diff_id not in self._blobs:
                        self._blobs[layer.diff_id] = (service.content.open(layer.digest), layer.digest)
        except BlobNotFound as e:
            self.close()
            raise ImageError(f"unable to save image: {e}", 500) from None
        except BaseException:
            self.close()
            raise

    @property
    def image_ids(self) -> list[str]:
        return [image.record.id for image in self._images]

    def close(self) -> None:
        for blob, _ in self._blobs.values():
            blob.close()
        self._blobs.clear()

    def __enter__(self) -> SaveStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[bytes]:
        return self._generate()

    def _generate(self) -> Iterator[bytes]:
        yield _entry("blobs/", kind=tarfile.DIRTYPE) + _entry("blobs/sha256/", kind=tarfile.DIRTYPE)
        manifest: list[dict[str, Any]] = []
        repositories: dict[str, dict[str, str]] = {}
        index: list[dict[str, Any]] = []
        layer_sizes: dict[str, int] = {}
        v1_written: set[str] = set()
        for image in self._images:
            config = json.loads(image.config_blob)
            created = _unix(config.get("created"))
            diff_ids = [layer.diff_id for layer in image.record.layers]
            v1_dirs: list[str] = []
            parent = ""
            for i, chain in enumerate(chain_ids(diff_ids)):
                diff_id = diff_ids[i]
                if diff_id not in layer_sizes:
                    layer_sizes[diff_id] = yield from self._layer(diff_id, created)
                v1 = _v1_image(config if i == len(diff_ids) - 1 else None)
                v1_id = _v1_id(v1, chain, parent)
                v1_hex = digest_hex(v1_id)
                if v1_id not in v1_written:
                    v1_written.add(v1_id)
                    v1_json = go_json(_v1_json(v1, v1_hex, parent, config.get("os")))
                    yield (
                        _entry(f"{v1_hex}/", kind=tarfile.DIRTYPE, mtime=created)
                        + _entry(f"{v1_hex}/VERSION", b"1.0", mtime=created)
                        + _entry(f"{v1_hex}/json", v1_json, mtime=created)
                        + _entry(
                            f"{v1_hex}/layer.tar",
                            kind=tarfile.SYMTYPE,
                            linkname=f"../blobs/sha256/{digest_hex(diff_id)}",
                            mtime=created,
                        )
                    )
                v1_dirs.append(v1_hex)
                parent = v1_id
            config_hex = digest_hex(image.record.id)
            platform = {"architecture": config.get("architecture", ""), "os": config.get("os", "")}
            if config.get("variant"):
                platform["variant"] = config["variant"]
            oci_manifest = go_json(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": image.record.id,
                        "size": len(image.config_blob),
                    },
                    "layers": [
                        {"mediaType": OCI_LAYER_TAR, "digest": d, "size": layer_sizes[d]} for d in diff_ids
                    ],
                }
            )
            manifest_digest = sha256_digest(oci_manifest)
            yield (
                _entry(f"{config_hex}.json", image.config_blob, mtime=created)
                + _entry(f"blobs/sha256/{config_hex}", image.config_blob, mtime=created)
                + _entry(f"blobs/sha256/{digest_hex(manifest_digest)}", oci_manifest)
            )
            manifest.append(
                {
                    "Config": f"{config_hex}.json",
                    "RepoTags": [tag.familiar() for tag in image.tags] or None,
                    "Layers": [f"{v1_hex}/layer.tar" for v1_hex in v1_dirs],
                }
            )
            descriptor = {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": len(oci_manifest),
                "platform": platform,
            }
            for tag in image.tags:
                repositories.setdefault(tag.familiar_name, {})[tag.tag or "latest"] = v1_dirs[-1]
                annotations = {IMAGE_NAME_ANNOTATION: str(tag), REF_NAME_ANNOTATION: tag.tag or "latest"}
                index.append({**descriptor, "annotations": annotations})
            if not image.tags:
                index.append(descriptor)
        yield (
            _entry(OCI_INDEX_FILE, go_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}))
            + _entry(MANIFEST_FILE, go_json(manifest) + b"\n")
            + _entry(OCI_LAYOUT_FILE, OCI_LAYOUT)
            + (_entry(REPOSITORIES_FILE, go_json(repositories) + b"\n") if repositories else b"")
            + b"\0" * (2 * tarfile.BLOCKSIZE)
        )

    def _layer(self, diff_id: str, mtime: int) -> Iterator[bytes]:
        """Write the layer's tar as `blobs/sha256/<diff id>`; the generator's return value is its size."""
        blob, digest = self._blobs[diff_id]
        name = f"blobs/sha256/{digest_hex(diff_id)}"
        if digest == diff_id:  # kept uncompressed (loaded or imported): its size is known
            size = os.fstat(blob.fileno()).st_size
            blob.seek(0)
            yield _header(name, size=size, mtime=mtime)
            yield from _copy(blob, size, name)
            yield _padding(size)
            return size
        # A pulled layer is kept compressed, and a tar header needs the size first: decompress into an
        # anonymous scratch file (gone by itself, even on a crash), checking the diff ID on the way.
        with tempfile.TemporaryFile(dir=self._scratch) as scratch:
            blob.seek(0)
            reader = DecompressingReader(blob)
            size = 0
            try:
                while chunk := reader.read(CHUNK):
                    scratch.write(chunk)
                    size += len(chunk)
            except OSError as e:
                raise ImageError(f"unable to save layer {diff_id}: {e}", 500) from None
            if reader.diff_id != diff_id:
                raise ImageError(
                    f"unable to save layer {diff_id}: its content does not match its diff ID", 500
                )
            scratch.seek(0)
            yield _header(name, size=size, mtime=mtime)
            yield from _copy(scratch, size, name)
            yield _padding(size)
        return size


def _v1_image(config: dict[str, Any] | None) -> dict[str, Any]:
    """The v1 image JSON Docker computes a layer's v1 ID from: the image's own fields for its top layer,
    a fixed stub for the layers below."""
    if config is None:
        return {"created": _V1_EPOCH, "container_config": empty_container_config()}
    v1: dict[str, Any] = {}
    for key in _V1_FIELDS:
        value = config.get(key)
        if key == "created":
            v1[key] = value or "0001-01-01T00:00:00Z"
        elif key == "container_config":
            v1[key] = value or empty_container_config()
        elif value:
            v1[key] = value
    return v1


def _v1_id(v1: dict[str, Any], chain_id: str, parent: str) -> str:
    """Docker's v1.CreateID: the v1 JSON with `layer_id` (the chain ID) and `parent`, top keys sorted."""
    body = {**v1, "layer_id": chain_id}
    if parent:
        body["parent"] = parent
    return sha256_digest(go_json(dict(sorted(body.items()))))


def _v1_json(v1: dict[str, Any], v1_hex: str, parent: str, os_name: Any) -> dict[str, Any]:
    """The `<v1 id>/json` file: V1Image with its id, parent and os, in Go's field order."""
    out: dict[str, Any] = {"id": v1_hex}
    if parent:
        out["parent"] = digest_hex(parent)
    for key in _V1_FIELDS:
        if key == "os":
            if os_name:
                out["os"] = os_name
        elif key in v1:
            out[key] = v1[key]
    return out


def _header(
    name: str, *, size: int = 0, kind: bytes = tarfile.REGTYPE, mtime: int = 0, linkname: str = ""
) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size if kind == tarfile.REGTYPE else 0
    info.mode = 0o755 if kind == tarfile.DIRTYPE else (0o777 if kind == tarfile.SYMTYPE else 0o644)
    info.mtime = mtime
    info.linkname = linkname
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def _entry(
    name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, mtime: int = 0, linkname: str = ""
) -> bytes:
    return (
        _header(name, size=len(data), kind=kind, mtime=mtime, linkname=linkname) + data + _padding(len(data))
    )


def _copy(source: BinaryIO, size: int, name: str) -> Iterator[bytes]:
    remaining = size
    while remaining > 0:
        chunk = source.read(min(CHUNK, remaining))
        if not chunk:
            raise ImageError(f"unable to save {name}: the blob is shorter than its size", 500)
        remaining -= len(chunk)
        yield chunk


# --------------------------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    lines: list[str]  # what dockerd writes as {"stream": ...} lines, without the newline
    images: list[ImageRecord]


@dataclass
class _SpoolFile:
    path: Path
    digest: str
    size: int


class _Spool:
    """The archive's regular files on disk, by their path in the archive, plus its links."""

    def __init__(self, parent: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="load-", dir=parent))
        self.files: dict[str, _SpoolFile] = {}
        self.links: dict[str, tuple[str, bool]] = {}  # path -> (target, symbolic?)
        self._count = 0

    def add(self, name: str, source: BinaryIO) -> None:
        self._count += 1
        path = self.dir / str(self._count)
        digest = hashlib.sha256()
        size = 0
        with open(path, "wb") as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        self._forget(name)
        self.files[name] = _SpoolFile(path, "sha256:" + digest.hexdigest(), size)

    def link(self, name: str, target: str, symbolic: bool) -> None:
        self._forget(name)
        self.links[name] = (target, symbolic)

    def _forget(self, name: str) -> None:
        # A later entry with the same name replaces the earlier one, as extracting the tar would.
        old = self.files.pop(name, None)
        if old is not None:
            old.path.unlink(missing_ok=True)
        self.links.pop(name, None)

    def resolve(self, name: str) -> _SpoolFile:
        """The file at `name`, following links the way Docker's FollowSymlinkInScope does, except that a
        link climbing out of the archive is an error rather than clamped at its root."""
        current = _archive_path(name)
        for _ in range(_MAX_LINK_HOPS):
            found = self.files.get(current)
            if found is not None:
                return found
            if current not in self.links:
                raise ArchiveError(f"invalid archive: {name} is missing")
            target, symbolic = self.links[current]
            if symbolic and not target.startswith("/"):
                target = posixpath.join(posixpath.dirname(current), target)
            try:
                current = _archive_path(target.lstrip("/"))
            except ArchiveError:
                raise ArchiveError(f"invalid archive: {name} links outside the archive") from None
        raise ArchiveError(f"invalid archive: too many levels of links at {name}")

    def read(self, name: str) -> bytes:
        file = self.resolve(name)
        if file.size > MAX_METADATA:
            raise ArchiveError(f"invalid archive: {name} is too large ({file.size} bytes)")
        return file.path.read_bytes()

    def has(self, name: str) -> bool:
        return name in self.files or name in self.links

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _archive_path(name: str) -> str:
    """A path inside the archive, normalized; one that is absolute or climbs out of it is refused."""
    if name.startswith("/"):
        raise ArchiveError(f"invalid archive: absolute path {name!r}")
    path = posixpath.normpath(name)
    if path == ".." or path.startswith("../"):
        raise ArchiveError(f"invalid archive: path {name!r} escapes the archive")
    return path


class _Prefixed:
    """A stream with its first bytes already read (to sniff the compression) put back in front."""

    def __init__(self, head: bytes, source: BinaryIO) -> None:
        self._head = head
        self._source = source

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._source.read(size)
        if size < 0:
            data, self._head = self._head + self._source.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        if len(data) < size:
            data += self._source.read(size - len(data))
        return data


def _spool_archive(stream: BinaryIO, spool: _Spool) -> None:
    head = stream.read(4)
    source: Any = _Prefixed(head, stream)
    mode = "r|*"  # tarfile sniffs gzip, bzip2 and xz itself
    if head.startswith(ZSTD_MAGIC):
        source, mode = DecompressingReader(source), "r|"
    try:
        with tarfile.open(fileobj=source, mode=mode, encoding="utf-8", errors="surrogateescape") as tar:
            for member in tar:
                tar.members.clear()  # tarfile keeps every member otherwise
                name = _archive_path(member.name)
                if name == ".":
                    continue
                if member.isreg():
                    file = tar.extractfile(member)
                    assert file is not None
                    spool.add(name, file)
                elif member.issym():
                    spool.link(name, member.linkname, symbolic=True)
                elif member.islnk():
                    spool.link(name, _archive_path(member.linkname), symbolic=False)
                # directories, devices and fifos carry nothing an image needs
    except (tarfile.TarError, EOFError) as e:
        raise ArchiveError(f"invalid tar archive: {e}") from None
    except OSError as e:
        if e.errno is None:  # a decompression error, not the disk
            raise ArchiveError(f"invalid archive: {e}") from None
        raise


@dataclass
class _ImagePlan:
    config_blob: bytes
    config: dict[str, Any]
    diff_ids: list[str]
    layers: list[_SpoolFile]
    media_types: list[str]  # the layers' media types, for blobs kept compressed
    tags: list[Reference] = field(default_factory=list)

    @property
    def chains(self) -> list[str]:
        return chain_ids(self.diff_ids)


def _read_json(spool: _Spool, name: str) -> Any:
    try:
        return json.loads(spool.read(name))
    except ValueError as e:
        raise ArchiveError(f"invalid archive: {name} is not valid JSON: {e}") from None


def _parse_config(blob: bytes, name: str) -> dict[str, Any]:
    try:
        config = json.loads(blob)
    except ValueError as e:
        raise ArchiveError(f"invalid image config {name}: {e}") from None
    if not isinstance(config, dict):
        raise ArchiveError(f"invalid image config {name}: not a JSON object")
    rootfs = config.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise ArchiveError(f'invalid image config {name}: rootfs type must be "layers"')
    diff_ids = rootfs.get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(
        isinstance(d, str) and _DIGEST_RE.fullmatch(d) for d in diff_ids
    ):
        raise ArchiveError(f"invalid image config {name}: bad rootfs diff_ids")
    os_name = config.get("os") or "linux"
    if os_name != "linux":
        raise ArchiveError(f"cannot load {os_name} image on linux")
    return config


def _parse_tag(text: Any) -> Reference:
    if not isinstance(text, str):
        raise ArchiveError(f"invalid tag {text!r}")
    try:
        ref = parse_reference(text, default_tag=None)
    except InvalidReference as e:
        raise ArchiveError(f"invalid tag {text!r}: {e}") from None
    if not ref.tag or ref.digest:
        raise ArchiveError(f'invalid tag "{text}"')
    return ref


def _plan_docker_archive(spool: _Spool) -> list[_ImagePlan]:
    manifest = _read_json(spool, MANIFEST_FILE)
    if manifest is None:
        raise ArchiveError("invalid manifest, manifest cannot be null (but can be [])")
    if not isinstance(manifest, list):
        raise ArchiveError("invalid manifest.json: expected a list of images")
    plans = []
    for item in manifest:
        if not isinstance(item, dict) or not isinstance(item.get("Config"), str):
            raise ArchiveError("invalid manifest.json: an entry has no Config")
        layers = item.get("Layers") or []
        repo_tags = item.get("RepoTags") or []
        if not isinstance(layers, list) or not all(isinstance(p, str) for p in layers):
            raise ArchiveError("invalid manifest.json: Layers must be a list of paths")
        if not isinstance(repo_tags, list):
            raise ArchiveError("invalid manifest.json: RepoTags must be a list")
        config_blob = spool.read(item["Config"])
        config = _parse_config(config_blob, item["Config"])
        diff_ids = config["rootfs"].get("diff_ids") or []
        if len(layers) != len(diff_ids):
            raise ArchiveError(
                f"invalid manifest, layers length mismatch: expected {len(layers)}, got {len(diff_ids)}"
            )
        files = [spool.resolve(path) for path in layers]
        plans.append(
            _ImagePlan(
                config_blob,
                config,
                diff_ids,
                files,
                [LAYER_TAR] * len(files),
                [_parse_tag(tag) for tag in repo_tags],
            )
        )
    return plans


def _blob(spool: _Spool, descriptor: Any) -> _SpoolFile:
    if not isinstance(descriptor, dict) or not isinstance(descriptor.get("digest"), str):
        raise ArchiveError("invalid archive: a descriptor has no digest")
    digest = descriptor["digest"]
    if not _DIGEST_RE.fullmatch(digest):
        raise ArchiveError(f"invalid archive: unsupported digest {digest!r}")
    name = f"blobs/sha256/{digest_hex(digest)}"
    file = spool.resolve(name)
    if file.digest != digest:
        raise ArchiveError(f"invalid archive: {name} does not match its digest")
    return file


def _blob_bytes(spool: _Spool, descriptor: Any) -> bytes:
    file = _blob(spool, descriptor)
    if file.size > MAX_METADATA:
        raise ArchiveError(f"invalid archive: blob {file.digest} is too large")
    return file.path.read_bytes()


def _blob_json(spool: _Spool, descriptor: Any) -> Any:
    try:
        return json.loads(_blob_bytes(spool, descriptor))
    except ValueError as e:
        raise ArchiveError(f"invalid archive: blob {descriptor['digest']} is not valid JSON: {e}") from None


def _descriptor_names(descriptor: dict[str, Any]) -> list[Reference]:
    annotations = descriptor.get("annotations") or {}
    name = annotations.get(IMAGE_NAME_ANNOTATION)
    if not name:
        # ref.name is often a bare tag ("latest"), which names no repository; take it only when whole.
        ref_name = annotations.get(REF_NAME_ANNOTATION) or ""
        name = ref_name if ":" in ref_name else ""
    if not name:
        return []
    try:
        ref = parse_reference(name, default_tag=None)
    except InvalidReference:
        return []
    return [ref] if ref.tag and not ref.digest else []


def _plan_oci_layout(spool: _Spool, platform_ok: PlatformFilter) -> list[_ImagePlan]:
    index = _read_json(spool, OCI_INDEX_FILE)
    if not isinstance(index, dict) or not isinstance(index.get("manifests") or [], list):
        raise ArchiveError("invalid archive: index.json is not an image index")
    plans: list[_ImagePlan] = []
    for descriptor in index.get("manifests") or []:
        if not isinstance(descriptor, dict):
            raise ArchiveError("invalid archive: index.json lists a bad descriptor")
        for manifest in _manifests(spool, descriptor, platform_ok, depth=0):
            plan = _plan_manifest(spool, manifest)
            plan.tags = _descriptor_names(descriptor)
            plans.append(plan)
    if index.get("manifests") and not plans:
        raise ArchiveError("no image in the archive matches this platform")
    return plans


def _manifests(
    spool: _Spool, descriptor: dict[str, Any], platform_ok: PlatformFilter, depth: int
) -> list[Any]:
    platform = descriptor.get("platform")
    if isinstance(platform, dict) and not platform_ok(platform):
        return []
    media_type = descriptor.get("mediaType", "")
    if media_type in _INDEX_TYPES:
        if depth > 4:
            raise ArchiveError("invalid archive: image indexes nest too deeply")
        child = _blob_json(spool, descriptor)
        found = []
        for entry in (child.get("manifests") or []) if isinstance(child, dict) else []:
            if isinstance(entry, dict):
                found += _manifests(spool, entry, platform_ok, depth + 1)
        return found[:1] if depth == 0 and found else found
    if media_type in _MANIFEST_TYPES or not media_type:
        return [_blob_json(spool, descriptor)]
    return []  # attestations and other artifacts


def _plan_manifest(spool: _Spool, manifest: Any) -> _ImagePlan:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("layers") or [], list):
        raise ArchiveError("invalid archive: a manifest is not an image manifest")
    config_blob = _blob_bytes(spool, manifest.get("config"))
    config = _parse_config(config_blob, sha256_digest(config_blob))
    diff_ids = config["rootfs"].get("diff_ids") or []
    layers = manifest.get("layers") or []
    if len(layers) != len(diff_ids):
        raise ArchiveError(
            f"invalid manifest, layers length mismatch: expected {len(layers)}, got {len(diff_ids)}"
        )
    files = [_blob(spool, layer) for layer in layers]
    media_types = [str(layer.get("mediaType") or OCI_LAYER_TAR) for layer in layers]
    return _ImagePlan(config_blob, config, diff_ids, files, media_types)


def _plan(stream: BinaryIO, spool: _Spool, platform_ok: PlatformFilter) -> list[_ImagePlan]:
    """Spool the archive and work out what it holds (runs in a worker thread)."""
    _spool_archive(stream, spool)
    if spool.has(MANIFEST_FILE):
        plans = _plan_docker_archive(spool)
    elif spool.has(OCI_INDEX_FILE):
        plans = _plan_oci_layout(spool, platform_ok)
    else:
        raise ArchiveError("invalid archive: it holds neither manifest.json nor index.json")
    return plans


class _LayerProgress:
    """Counts the (possibly compressed) bytes read from a layer file and reports them now and then."""

    def __init__(self, source: BinaryIO, short: str, total: int, report: LoadProgress | None) -> None:
        self._source = source
        self._short = short
        self._total = total
        self._report = report
        self._read = 0
        self._last = 0.0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._read += len(data)
        if self._report is not None:
            now = time.monotonic()
            if now - self._last >= 0.1 or not data:
                self._last = now
                self._report(self._short, self._read, self._total)
        return data


def _unpack(
    service: ImageService, plans: list[_ImagePlan], created: list[str], report: LoadProgress | None
) -> None:
    """Check every layer against its diff ID and unpack the missing ones (runs in a worker thread).

    Chains this call commits are appended to `created`, so a failure can remove them.
    """
    done: set[str] = set()
    for plan in plans:
        chains = plan.chains
        for i, (file, diff_id, chain) in enumerate(zip(plan.layers, plan.diff_ids, chains, strict=True)):
            if chain in done:
                continue
            short = digest_hex(diff_id)[:12]
            if service.snapshots.exists(chain):
                if file.digest != diff_id:  # compressed: prove it is the layer the config names
                    with open(file.path, "rb") as raw:
                        reader = DecompressingReader(raw)
                        while reader.read(CHUNK):
                            pass
                    _check_diff_id(i, diff_id, reader.diff_id)
            else:
                _apply(service, file, chain, chains[i - 1] if i else "", diff_id, i, short, report)
                created.append(chain)
            # Published (renamed into the content store) later under the lock: make it durable now.
            with open(file.path, "rb") as f:
                os.fsync(f.fileno())
            done.add(chain)


def _apply(
    service: ImageService,
    file: _SpoolFile,
    chain: str,
    parent: str,
    diff_id: str,
    index: int,
    short: str,
    report: LoadProgress | None,
) -> None:
    pending = service.snapshots.prepare(chain, parent, diff_id)
    try:
        with open(file.path, "rb") as raw:
            reader = DecompressingReader(_LayerProgress(raw, short, file.size, report))
            pending.apply(reader)
            while reader.read(CHUNK):
                pass
        _check_diff_id(index, diff_id, reader.diff_id)
        pending.commit()
    except LayerError as e:
        pending.abort()
        raise ArchiveError(f"failed to register layer: {e}") from None
    except OSError as e:
        pending.abort()
        if e.errno is None:
            raise ArchiveError(f"failed to register layer: {e}") from None
        raise
    except BaseException:
        pending.abort()
        raise


def _check_diff_id(index: int, expected: str, actual: str) -> None:
    if actual != expected:
        raise ArchiveError(f'invalid diffID for layer {index}: expected "{expected}", got "{actual}"')


def _publish_layer(service: ImageService, file: _SpoolFile, diff_id: str, media_type: str) -> LayerRecord:
    """The layer's blob for the image record: one the store already has for this diff ID, else ours."""
    for record in service.store.images.values():
        for layer in record.layers:
            if layer.diff_id == diff_id and service.content.has(layer.digest):
                return LayerRecord(layer.digest, layer.media_type, layer.size, diff_id)
    if not service.content.has(file.digest):
        os.replace(file.path, service.content.path(file.digest))
    return LayerRecord(file.digest, LAYER_TAR if file.digest == diff_id else media_type, file.size, diff_id)


def _register(service: ImageService, plans: list[_ImagePlan]) -> LoadResult:
    """Publish blobs, register images and move tags (on the event loop, under the service lock)."""
    lines: list[str] = []
    id_lines: list[str] = []
    records: list[ImageRecord] = []
    tag_count = 0
    for plan in plans:
        layers = [
            _publish_layer(service, file, diff_id, media_type)
            for file, diff_id, media_type in zip(plan.layers, plan.diff_ids, plan.media_types, strict=True)
        ]
        record = service.register(plan.config_blob, layers)
        records.append(record)
        id_lines.append(f"Loaded image ID: {record.id}")
        # dockerd's quirk, kept: IDs are listed when the *last* image in the archive had no tags.
        tag_count = 0
        for ref in plan.tags:
            previous = service.store.set_ref(ref, record.id)
            if previous is not None and previous != record.id:
                lines.append(
                    f"The image {ref.familiar()} already exists, renaming the old one with ID {previous} "
                    "to empty string"
                )
            lines.append(f"Loaded image: {ref.familiar()}")
            tag_count += 1
    if tag_count == 0:
        lines += id_lines
    return LoadResult(lines, records)


def _drop_unused_chains(service: ImageService, chains: list[str]) -> None:
    """Remove snapshots a failed load made that no image and no other pull or load uses."""
    used: set[str] = service.pinned_keys()
    for record in service.store.images.values():
        used.update(chain_ids([layer.diff_id for layer in record.layers]))
    for chain in reversed(chains):
        if chain not in used:
            service.snapshots.remove(chain)


def _default_platform_filter(platform: dict[str, Any]) -> bool:
    return platform.get("os", "linux") == "linux" and platform.get("architecture") == go_arch()


async def load(
    service: ImageService,
    stream: BinaryIO,
    progress: LoadProgress | None = None,
    platform_ok: PlatformFilter | None = None,
) -> LoadResult:
    """`docker load`: read a docker-archive or OCI layout tar from `stream` (a blocking binary file
    object; it is read in a worker thread) and register what it holds.

    `progress` receives "Loading layer" progress on the event loop. `platform_ok` picks the manifests of
    a multi-platform OCI index (default: this host's architecture). Raises ArchiveError (or ImageError)
    with a one-line message; on failure nothing is registered.
    """
    loop = asyncio.get_running_loop()
    report: LoadProgress | None = None
    if progress is not None:
        callback = progress

        def report(short: str, current: int, total: int) -> None:
            loop.call_soon_threadsafe(callback, short, current, total)

    spool = _Spool(service.content.ingest_dir)
    try:
        plans = await loop.run_in_executor(
            None, _plan, stream, spool, platform_ok or _default_platform_filter
        )
        plans = _merge_same_images(plans)
        pinned = [chain for plan in plans for chain in plan.chains]
        created: list[str] = []
        try:
            with service.pinned(pinned):
                await loop.run_in_executor(None, _unpack, service, plans, created, report)
                async with service.lock:
                    return _register(service, plans)
        except BaseException:
            async with service.lock:  # the pins are released: the snapshots this load made can go
                _drop_unused_chains(service, created)
            raise
    finally:
        await loop.run_in_executor(None, spool.cleanup)


def _merge_same_images(plans: list[_ImagePlan]) -> list[_ImagePlan]:
    """One plan per config, its tags merged: Docker 25 lists an image once per tag in index.json."""
    merged: dict[str, _ImagePlan] = {}
    for plan in plans:
        known = merged.setdefault(sha256_digest(plan.config_blob), plan)
        if known is not plan:
            known.tags += [t for t in plan.tags if all(str(t) != str(k) for k in known.tags)]
    return list(merged.values())


# --------------------------------------------------------------------------------------------- import


class _Tee:
    """Passes the decompressed rootfs to the layer applier and writes the same bytes to the blob file."""

    def __init__(self, source: DecompressingReader, sink: BinaryIO) -> None:
        self._source = source
        self._sink = sink
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._sink.write(data)
        self.size += len(data)
        return data


@dataclass
class _ImportedLayer:
    pending: PendingSnapshot
    scratch: Path
    blob: Path
    diff_id: str
    size: int


def _unpack_rootfs(service: ImageService, stream: BinaryIO) -> _ImportedLayer:
    """Apply the tarball into a new base snapshot while writing its uncompressed bytes (worker thread).

    The chain ID of a base layer is its diff ID, known only at the end: the snapshot is prepared
    unnamed and named before it is committed.
    """
    scratch = Path(tempfile.mkdtemp(prefix="import-", dir=service.content.ingest_dir))
    pending = service.snapshots.prepare("", "", "")
    try:
        blob = scratch / "layer.tar"
        with open(blob, "wb") as out:
            reader = DecompressingReader(stream)
            tee = _Tee(reader, out)
            pending.apply(tee)  # type: ignore[arg-type]
            while tee.read(CHUNK):
                pass
            out.flush()
            os.fsync(out.fileno())
        pending.info.chain_id = pending.info.diff_id = reader.diff_id
        return _ImportedLayer(pending, scratch, blob, reader.diff_id, tee.size)
    except BaseException as e:
        pending.abort()
        shutil.rmtree(scratch, ignore_errors=True)
        if isinstance(e, LayerError) or (isinstance(e, OSError) and e.errno is None):
            raise ImageError(f"failed to register layer: {e}", 500) from None
        raise


def import_config(
    diff_id: str,
    container_config: dict[str, Any],
    message: str,
    architecture: str,
    os_name: str = "linux",
    variant: str = "",
    created: str | None = None,
) -> bytes:
    """The image config dockerd writes for `docker import`: top-level keys sorted (image.Image's
    MarshalJSON), one history entry with the comment and no created_by."""
    created = created or _now_rfc3339nano()
    config: dict[str, Any] = {
        "architecture": architecture,
        "comment": message,
        "config": container_config,
        "container_config": empty_container_config(),
        "created": created,
        "history": [{"created": created, "comment": message}],
        "os": os_name,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    if variant:
        config["variant"] = variant
    return go_json(dict(sorted(config.items())))


async def import_rootfs(
    service: ImageService,
    stream: BinaryIO,
    repo_tag: str | None,
    changes: list[str],
    message: str,
    *,
    source: str = "-",
    architecture: str | None = None,
    os_name: str = "linux",
    variant: str = "",
) -> ImageRecord:
    """`docker import`: the rootfs tarball read from `stream` (a blocking binary file object, read in a
    worker thread) becomes a one-layer image, tagged `repo_tag` (default tag latest) when given.

    Bad parameters raise ImageError with status 400 before anything is read.
    """
    ref: Reference | None = None
    if repo_tag:
        try:
            ref = parse_reference(repo_tag, default_tag=None)
        except InvalidReference as e:
            raise ImageError(str(e), 400) from None
        if ref.digest:
            raise ImageError("cannot import digest reference", 400)
        if not ref.tag:
            ref = ref.with_tag("latest")
    try:
        container_config = apply_changes(changes)
    except ChangeError as e:
        raise ImageError(str(e), 400) from None
    loop = asyncio.get_running_loop()
    layer = await loop.run_in_executor(None, _unpack_rootfs, service, stream)
    try:
        config_blob = import_config(
            layer.diff_id,
            container_config,
            message or f"Imported from {source}",
            architecture or go_arch(),
            os_name,
            variant,
        )
        async with service.lock:
            layer.pending.commit()  # an existing snapshot of the same rootfs is kept and ours dropped
            if not service.content.has(layer.diff_id):
                os.replace(layer.blob, service.content.path(layer.diff_id))
            record = service.register(
                config_blob, [LayerRecord(layer.diff_id, LAYER_TAR, layer.size, layer.diff_id)]
            )
            if ref is not None:
                service.store.set_ref(ref, record.id)
                record.last_tag_time = datetime.now().astimezone().isoformat()
                service.store.update(record)
        return record
    except BaseException:
        layer.pending.abort()
        raise
    finally:
        await loop.run_in_executor(None, shutil.rmtree, layer.scratch, True)
