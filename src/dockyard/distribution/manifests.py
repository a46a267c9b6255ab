"""Manifests, indexes and platforms: the JSON a registry serves, parsed into dataclasses.

Two families say the same things: Docker's (manifest list, schema 2 manifest) and OCI's (image index,
image manifest). An index lists one manifest per platform; `select_platform` picks the one to pull the
way containerd's platforms package (which dockerd uses) does, including its compatibility rules: an
arm64 host takes arm/v8..v5 images when no arm64 one exists, an amd64/v3 host takes v2 and v1 images.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from dockyard.distribution.errors import InvalidPlatform, NoMatchingPlatform, UnsupportedManifest
from dockyard.reference import InvalidReference, validate_digest

__all__ = [
    "ALL_MANIFEST_TYPES",
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_LAYER_UNCOMPRESSED",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_MANIFEST_V1",
    "DOCKER_MANIFEST_V1_SIGNED",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE",
    "OCI_LAYER_NONDISTRIBUTABLE_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE_ZSTD",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "Compression",
    "Descriptor",
    "Index",
    "Manifest",
    "Platform",
    "layer_compression",
    "parse_manifest",
    "select_platform",
    "sha256_digest",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_UNCOMPRESSED = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_MANIFEST_V1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
# The Accept list for manifests, indexes first. Every type must be listed: distribution 2.8 answers 404
# for OCI content the client did not accept, and converts to schema 1 for a client accepting nothing.
ALL_MANIFEST_TYPES: tuple[str, ...] = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
_SCHEMA1_TYPES = frozenset({DOCKER_MANIFEST_V1, DOCKER_MANIFEST_V1_SIGNED})
# Content-Types that say nothing: the body's own mediaType (or its shape) decides.
_GENERIC_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})

Compression = Literal["gzip", "zstd", "none"]
_LAYER_COMPRESSION: dict[str, Compression] = {
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDISTRIBUTABLE: "none",
    OCI_LAYER_NONDISTRIBUTABLE_GZIP: "gzip",
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD: "zstd",
    DOCKER_LAYER: "gzip",
    DOCKER_LAYER_UNCOMPRESSED: "none",
    DOCKER_FOREIGN_LAYER: "gzip",
}


def layer_compression(media_type: str) -> Compression | None:
    """How a layer of this media type is compressed; None for a type that is not a layer we know."""
    return _LAYER_COMPRESSION.get(media_type.split(";", 1)[0].strip().lower())


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------- platforms

_KNOWN_OS = frozenset(
    "aix android darwin dragonfly freebsd hurd illumos ios js linux nacl netbsd openbsd plan9 solaris "
    "wasip1 windows zos".split()
)
_KNOWN_ARCH = frozenset(
    "386 amd64 amd64p32 arm armbe arm64 arm64be ppc64 ppc64le loong64 mips mipsle mips64 mips64le "
    "mips64p32 mips64p32le ppc riscv riscv64 s390 s390x sparc sparc64 wasm".split()
)
_COMPONENT_RE = re.compile(r"[A-Za-z0-9_-]+")


def _normalize_os(os_name: str) -> str:
    os_name = os_name.lower()
    return "darwin" if os_name == "macos" else os_name


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's aliases: x86_64 is amd64, aarch64 is arm64, armhf is arm/v7, "7" is "v7"..."""
    arch, variant = arch.lower(), variant.lower()
    if arch in ("386", "i386", "i486", "i586", "i686"):
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant == "v1" else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
        return "arm", variant
    return arch, variant


@dataclass(frozen=True)
class Platform:
    """An OCI platform: ``linux/amd64``, ``linux/arm/v7``. Compared in normalized form when matching."""

    os: str
    architecture: str
    variant: str = ""

    @classmethod
    def parse(cls, spec: str) -> Platform:
        """Parse ``os``, ``arch``, ``os/arch`` or ``os/arch/variant`` as ``--platform`` takes them.

        A lone OS takes the host's architecture, a lone architecture the host's OS (as containerd's
        platforms.Parse does). Raises InvalidPlatform with Docker's message.
        """
        parts = spec.split("/")
        if not spec or not all(_COMPONENT_RE.fullmatch(p) for p in parts) or len(parts) > 3:
            raise InvalidPlatform(f'"{spec}": unknown operating system or architecture: invalid argument')
        host = cls.host()
        if len(parts) == 1:
            os_name = _normalize_os(parts[0])
            if os_name in _KNOWN_OS:
                return cls(os_name, host.architecture, host.variant)
            arch, variant = _normalize_arch(parts[0], "")
            if arch in _KNOWN_ARCH:
                return cls(host.os, arch, "" if (arch, variant) == ("arm", "v7") else variant)
            raise InvalidPlatform(f'"{spec}": unknown operating system or architecture: invalid argument')
        os_name = _normalize_os(parts[0])
        if len(parts) == 2:
            arch, variant = _normalize_arch(parts[1], "")
            # "linux/arm" stays as written: the v7 default only applies when matching.
            if (arch, variant) == ("arm", "v7"):
                variant = ""
        else:
            arch, variant = _normalize_arch(parts[1], parts[2])
            if arch == "arm64" and not variant:
                variant = "v8"
        if os_name not in _KNOWN_OS or arch not in _KNOWN_ARCH:
            raise InvalidPlatform(f'"{spec}": unknown operating system or architecture: invalid argument')
        return cls(os_name, arch, variant)

    @classmethod
    def host(cls) -> Platform:
        """This machine's platform, as dockerd reports and pulls it (arm64 is ``linux/arm64/v8``)."""
        machine = _platform.machine().lower()
        if machine.startswith("armv") and machine[4:5].isdigit():  # armv7l, armv6l
            return cls("linux", "arm", "v" + machine[4])
        arch, variant = _normalize_arch(machine, "")
        if arch == "arm64":
            variant = "v8"
        return cls("linux", arch, variant)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Platform:
        return cls(str(doc.get("os", "")), str(doc.get("architecture", "")), str(doc.get("variant") or ""))

    def to_dict(self) -> dict[str, str]:
        doc = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            doc["variant"] = self.variant
        return doc

    def normalized(self) -> Platform:
        """The canonical form used for comparison (arm64/v8 -> arm64, amd64/v1 -> amd64, arm -> arm/v7)."""
        arch, variant = _normalize_arch(self.architecture, self.variant)
        return Platform(_normalize_os(self.os), arch, variant)

    def compatible(self) -> list[Platform]:
        """Platforms this one runs, best first (containerd's platform vector)."""
        want = self.normalized()
        vector = [want]
        version = want.variant[1:] if want.variant.startswith("v") else ""
        if want.architecture == "amd64":
            if version.isdigit():
                vector += [
                    Platform(want.os, "amd64", f"v{n}" if n > 1 else "")
                    for n in range(int(version) - 1, 0, -1)
                ]
            vector.append(Platform(want.os, "386"))
        elif want.architecture == "arm" and version.isdigit():
            vector += [Platform(want.os, "arm", f"v{n}") for n in range(int(version) - 1, 4, -1)]
        elif want.architecture == "arm64":
            vector += Platform(want.os, "arm", want.variant or "v8").compatible()
        return vector

    def matches(self, candidate: Platform) -> bool:
        """Whether an image built for `candidate` runs on this platform."""
        return candidate.normalized() in self.compatible()

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


# ----------------------------------------------------------------------------------- descriptors, manifests


@dataclass(frozen=True)
class Descriptor:
    """A reference to content: what it is, its digest and size, and for index entries its platform."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: list[str] = field(default_factory=list)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """One image: its config and its layers, bottom first. `data` is the exact bytes `digest` covers."""

    media_type: str
    digest: str
    data: bytes = field(repr=False)
    config: Descriptor
    layers: list[Descriptor]


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list: one manifest per platform."""

    media_type: str
    digest: str
    manifests: list[Descriptor]
    data: bytes = field(default=b"", repr=False)


def _schema1_error(ref: str | None) -> UnsupportedManifest:
    msg = "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed."
    if ref:
        msg += (
            f" Suggest the author of {ref} to upgrade the image to the OCI Format"
            " or Docker Image manifest v2, schema 2."
        )
    msg += " More information at https://docs.docker.com/go/deprecated-image-specs/"
    return UnsupportedManifest(msg)


def parse_manifest(
    media_type: str, data: bytes, digest: str | None = None, ref: str | None = None
) -> Manifest | Index:
    """Parse a manifest or index served with Content-Type `media_type`.

    The body's own ``mediaType`` wins over the header (it is what the digest covers), and when neither
    says, the shape decides (``manifests`` -> index, ``config`` -> manifest), as OCI allows the field to
    be left out. `digest` defaults to the body's sha256. Schema 1 is refused with Docker's message
    (naming `ref` when given); anything else unusable raises UnsupportedManifest.
    """
    header_type = media_type.split(";", 1)[0].strip().lower()
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise UnsupportedManifest(f"invalid manifest: {e}") from None
    if not isinstance(doc, dict):
        raise UnsupportedManifest("invalid manifest: not a JSON object")
    body_type = doc.get("mediaType") if isinstance(doc.get("mediaType"), str) else ""
    if doc.get("schemaVersion") == 1 or header_type in _SCHEMA1_TYPES or body_type in _SCHEMA1_TYPES:
        raise _schema1_error(ref)
    kind = body_type or header_type
    if kind in _GENERIC_TYPES:
        if isinstance(doc.get("manifests"), list):
            kind = OCI_INDEX
        elif isinstance(doc.get("config"), dict):
            kind = OCI_MANIFEST
    digest = digest or sha256_digest(data)
    if kind in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise UnsupportedManifest("invalid manifest: an index needs a manifests list")
        return Index(kind, digest, [_descriptor(e, "manifests") for e in entries], data)
    if kind in MANIFEST_TYPES:
        config, layers = doc.get("config"), doc.get("layers")
        if not isinstance(config, dict):
            raise UnsupportedManifest("invalid manifest: missing config")
        if not isinstance(layers, list):
            raise UnsupportedManifest("invalid manifest: missing layers")
        return Manifest(
            kind, digest, data, _descriptor(config, "config"), [_descriptor(x, "layers") for x in layers]
        )
    raise UnsupportedManifest(
        f"unsupported manifest media type and no default available: {kind or media_type}"
    )


def _descriptor(doc: Any, where: str) -> Descriptor:
    if not isinstance(doc, dict):
        raise UnsupportedManifest(f"invalid manifest: {where}: a descriptor must be an object")
    media_type = doc.get("mediaType", "")
    digest = doc.get("digest")
    size = doc.get("size")
    if not isinstance(media_type, str):
        raise UnsupportedManifest(f"invalid manifest: {where}: mediaType must be a string")
    if not isinstance(digest, str):
        raise UnsupportedManifest(f"invalid manifest: {where}: missing digest")
    try:
        # Digests end up in URLs and file paths: only well-formed ones get through.
        validate_digest(digest)
    except InvalidReference as e:
        raise UnsupportedManifest(f"invalid manifest: {where}: {digest!r}: {e}") from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise UnsupportedManifest(f"invalid manifest: {where}: size must be a non-negative integer")
    plat = doc.get("platform")
    urls = doc.get("urls") or []
    annotations = doc.get("annotations") or {}
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        platform=Platform.from_dict(plat) if isinstance(plat, dict) else None,
        urls=[u for u in urls if isinstance(u, str)] if isinstance(urls, list) else [],
        annotations={str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
    )


def select_platform(index: Index, platform: Platform) -> Descriptor:
    """The index entry to pull for `platform`: its best compatible match, first in index order on ties.

    Entries without a platform, or that are not image manifests (attestations, nested indexes) are
    never chosen. Raises NoMatchingPlatform with Docker's message.
    """
    vector = platform.compatible()
    best: tuple[int, Descriptor] | None = None
    for desc in index.manifests:
        if desc.platform is None or (desc.media_type and desc.media_type not in MANIFEST_TYPES):
            continue
        try:
            rank = vector.index(desc.platform.normalized())
        except ValueError:
            continue
        if best is None or rank < best[0]:
            best = (rank, desc)
    if best is None:
        raise NoMatchingPlatform(f"no matching manifest for {platform} in the manifest list entries")
    return best[1]
