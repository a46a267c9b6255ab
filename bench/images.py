"""The four images of the pull benchmark, built once and cached under /var/tmp/dockyard-bench.

    busybox     the host's busybox, as tools/testimages.py builds it (1 layer)
    debian      a Debian bookworm root made by `debootstrap --variant=minbase` (1 layer, thousands of files)
    big         300 MB in 3 layers of 100 MB: half random bytes, half word-salad text (gzip does real work)
    smallfiles  5 layers of 5,000 files of 1-4 KB each, in nested directories

Each cached image is a directory holding `manifest.json` (a Docker schema 2 manifest), `config.json` and
one gzipped layer blob per layer (`<hex>.tar.gz`), plus `info.json` (file count, sizes). Layers are built
by streaming a tar through gzip to disk, hashing both sides on the way, so no layer is held in memory.
Everything but the Debian root is deterministic (fixed seeds and mtimes), so rebuilding gives the same
digests.

The Debian mirror is read from this machine's apt configuration and never written anywhere: files in the
debootstrapped root that name it (apt's sources and lists, the bootstrap log) are rewritten or removed
before the root is packed.

    python bench/images.py [--rebuild NAME]    builds what is missing and prints a summary
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import testimages  # noqa: E402  (tools/testimages.py)
from testimages import (  # noqa: E402
    CREATED,
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    EPOCH,
    GZIP_LEVEL,
    PATH_ENV,
    Blob,
)

CACHE = Path(os.environ.get("DOCKYARD_BENCH_CACHE", "/var/tmp/dockyard-bench"))
IMAGES_DIR = CACHE / "images"
NAMES = ("busybox", "debian", "big", "smallfiles")
LABELS = {
    "busybox": "busybox (1 layer)",
    "debian": "Debian bookworm minbase (1 layer)",
    "big": "300 MB, 3 layers",
    "smallfiles": "5 layers × 5,000 small files",
}
SUITE = "bookworm"
CHUNK = 1 << 20


# ---------------------------------------------------------------------------------------- layer writing


class _GzipHashWriter(io.RawIOBase):
    """A write-only file: hashes what it is given (the diff ID), gzips it to `path`, hashes the gzip."""

    def __init__(self, path: Path, level: int = GZIP_LEVEL) -> None:
        self._out = open(path, "wb")
        # wbits=31: a gzip header; its mtime field is 0, so the blob is reproducible.
        self._gz = zlib.compressobj(level, zlib.DEFLATED, 31)
        self.diff = hashlib.sha256()
        self.blob = hashlib.sha256()
        self.tar_size = 0
        self.gz_size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        data = bytes(data)
        self.diff.update(data)
        self.tar_size += len(data)
        self._emit(self._gz.compress(data))
        return len(data)

    def _emit(self, data: bytes) -> None:
        if data:
            self.blob.update(data)
            self.gz_size += len(data)
            self._out.write(data)

    def finish(self) -> None:
        self._emit(self._gz.flush())
        self._out.close()


@dataclass
class LayerInfo:
    digest: str  # of the gzip blob
    diff_id: str  # of the tar
    size: int  # of the gzip blob
    tar_size: int
    files: int  # entries that are not directories (files, symlinks, hard links, devices)


class LayerBuilder:
    """Streams tar entries into `<dir>/tmp-layer.tar.gz`; finish() renames it to `<hex>.tar.gz`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._tmp = directory / "tmp-layer.tar.gz"
        self._sink = _GzipHashWriter(self._tmp)
        self._tar = tarfile.open(fileobj=self._sink, mode="w|", format=tarfile.PAX_FORMAT)
        self._dirs: set[str] = set()
        self.files = 0

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, EPOCH
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def directory_entry(self, path: str) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._dirs:
                self._dirs.add(d)
                self._tar.addfile(self._info(d, tarfile.DIRTYPE, 0o755))

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = path.strip("/")
        if "/" in path:
            self.directory_entry(path.rsplit("/", 1)[0])
        info = self._info(path, tarfile.REGTYPE, mode)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))
        self.files += 1

    def finish(self) -> LayerInfo:
        self._tar.close()
        self._sink.finish()
        digest = "sha256:" + self._sink.blob.hexdigest()
        self._tmp.rename(self.directory / f"{digest[7:]}.tar.gz")
        return LayerInfo(
            digest,
            "sha256:" + self._sink.diff.hexdigest(),
            self._sink.gz_size,
            self._sink.tar_size,
            self.files,
        )


def _count_entries(fileobj, gzipped: bool = False) -> int:
    with tarfile.open(fileobj=fileobj, mode="r|gz" if gzipped else "r|") as tar:
        return sum(1 for member in tar if not member.isdir())


def _layer_from_stream(directory: Path, stream, files: int) -> LayerInfo:
    """Gzip an already-made tar stream (e.g. GNU tar's stdout) into a layer blob."""
    tmp = directory / "tmp-layer.tar.gz"
    sink = _GzipHashWriter(tmp)
    while chunk := stream.read(CHUNK):
        sink.write(chunk)
    sink.finish()
    digest = "sha256:" + sink.blob.hexdigest()
    tmp.rename(directory / f"{digest[7:]}.tar.gz")
    return LayerInfo(digest, "sha256:" + sink.diff.hexdigest(), sink.gz_size, sink.tar_size, files)


# ---------------------------------------------------------------------------------------- the images


def _build_busybox(directory: Path) -> list[LayerInfo]:
    image = testimages.build_image("busybox")
    layers = []
    for blob, diff_id in zip(image.layers, image.diff_ids, strict=True):
        (directory / f"{blob.digest[7:]}.tar.gz").write_bytes(blob.data)
        tar = zlib.decompress(blob.data, 31)
        layers.append(LayerInfo(blob.digest, diff_id, blob.size, len(tar), _count_entries(io.BytesIO(tar))))
    return layers


_WORDS = (
    "the of and to in is was for on that with as by at from container image layer registry daemon "
    "pull push tag digest manifest config snapshot overlay mount unpack verify gzip chunk stream "
    "request response error status header body socket thread loop event store content blob index "
    "platform architecture variant linux amd64 arm64 debian bookworm package version release file "
    "directory owner group mode mtime link symlink device whiteout opaque parent child chain diff"
).split()


def _text(rng: random.Random, size: int) -> bytes:
    """Word salad with numbers: compresses about 3-4x, unlike repeated bytes that gzip flattens."""
    out = bytearray()
    while len(out) < size:
        words = rng.choices(_WORDS, k=4096)
        line_nums = rng.randbytes(512).hex()
        out += (" ".join(words) + "\n" + line_nums + "\n").encode()
    return bytes(out[:size])


def _build_big(directory: Path) -> list[LayerInfo]:
    """3 layers × 100 MB: 25 files of 4 MB each, alternately random and text."""
    layers = []
    for i in range(3):
        rng = random.Random(1000 + i)
        b = LayerBuilder(directory)
        for k in range(25):
            size = 4 * 1024 * 1024
            data = rng.randbytes(size) if k % 2 == 0 else _text(rng, size)
            b.file(f"opt/big{i}/d{k % 5}/blob{k:02d}.{'bin' if k % 2 == 0 else 'txt'}", data)
        layers.append(b.finish())
    return layers


def _build_smallfiles(directory: Path) -> list[LayerInfo]:
    """5 layers × 5,000 files of 1-4 KB: usr/share/small{i}/aXX/bY/fZZZ (50 × 10 directories)."""
    layers = []
    for i in range(5):
        rng = random.Random(2000 + i)
        b = LayerBuilder(directory)
        for n in range(5000):
            size = rng.randint(1024, 4096)
            data = rng.randbytes(size) if n % 3 == 0 else _text(rng, size)
            b.file(f"usr/share/small{i}/a{n % 50:02d}/b{(n // 50) % 10}/f{n:04d}.dat", data)
        layers.append(b.finish())
    return layers


def debian_mirror() -> str:
    """The first Debian (not security) archive URI of this machine's apt sources."""
    candidates: list[tuple[str, list[str]]] = []
    files = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":  # deb822 stanzas
            for stanza in text.split("\n\n"):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith(("#", " ")):
                        key, _, value = line.partition(":")
                        fields[key.strip().lower()] = value.strip()
                if "deb" in fields.get("types", "").split() and fields.get("uris"):
                    for uri in fields["uris"].split():
                        candidates.append((uri, fields.get("suites", "").split()))
        else:  # one-line format: deb [opts] URI SUITE COMPONENTS...
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if words[:1] == ["deb"]:
                    words = [w for w in words[1:] if not w.startswith("[") and not w.endswith("]")]
                    if len(words) >= 2:
                        candidates.append((words[0], [words[1]]))
    for uri, suites in candidates:
        if SUITE in suites:
            return uri
    for uri, _ in candidates:
        if "security" not in uri:
            return uri
    raise RuntimeError("no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d")


def _scrub(rootfs: Path, mirror: str) -> None:
    """Remove every trace of the mirror's host from the root, as the official Debian images drop apt's
    lists and the package cache: sources.list is rewritten, files naming it are deleted."""
    host = mirror.split("://", 1)[-1].split("/", 1)[0].encode()
    for sub in ("var/lib/apt/lists", "var/cache/apt/archives"):
        for p in (rootfs / sub).glob("*"):
            if p.is_file() or p.is_symlink():
                p.unlink()
        for p in (rootfs / sub / "partial").glob("*"):
            p.unlink()
    for p in (rootfs / "var/cache/apt").glob("*.bin"):
        p.unlink()
    (rootfs / "etc/apt/sources.list").write_text(
        "# This benchmark image has no apt sources (removed by bench/images.py).\n"
    )
    for dirpath, _, filenames in os.walk(rootfs):
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            if host in name.encode():
                p.unlink()
                continue
            if p.stat().st_size < 64 << 20 and host in p.read_bytes():
                # Text that names the mirror (logs, apt state) goes; binaries never contain it.
                p.unlink()


def _build_debian(directory: Path) -> list[LayerInfo]:
    if shutil.which("debootstrap") is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "debootstrap"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            stdout=subprocess.DEVNULL,
        )
    mirror = debian_mirror()
    rootfs = CACHE / "debian-rootfs"
    if rootfs.exists():
        shutil.rmtree(rootfs)
    print("  debootstrap --variant=minbase (the mirror of this machine's apt config) ...", flush=True)
    done = subprocess.run(
        ["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        host = mirror.split("://", 1)[-1].split("/", 1)[0]
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:]).replace(host, "<mirror>")
        raise RuntimeError(f"debootstrap failed ({done.returncode}):\n{tail}")
    _check_unmounted(rootfs)
    _scrub(rootfs, mirror)
    entries = sorted(os.listdir(rootfs))
    tar = subprocess.Popen(
        ["tar", "--create", "--file=-", "--numeric-owner", "--sort=name", "-C", str(rootfs), *entries],
        stdout=subprocess.PIPE,
    )
    assert tar.stdout is not None
    layer = _layer_from_stream(directory, tar.stdout, 0)
    if tar.wait() != 0:
        raise RuntimeError("tar of the Debian root failed")
    with open(directory / f"{layer.digest[7:]}.tar.gz", "rb") as blob:
        layer.files = _count_entries(blob, gzipped=True)
    shutil.rmtree(rootfs)
    return [layer]


def _check_unmounted(path: Path) -> None:
    with open("/proc/mounts") as f:
        mounted = [line.split()[1] for line in f if line.split()[1].startswith(str(path))]
    for target in sorted(mounted, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False)


BUILDERS = {
    "busybox": _build_busybox,
    "debian": _build_debian,
    "big": _build_big,
    "smallfiles": _build_smallfiles,
}


# ---------------------------------------------------------------------------------------- the cache


@dataclass
class CachedImage:
    name: str
    directory: Path
    manifest: Blob
    config: Blob
    layers: list[LayerInfo]

    @property
    def label(self) -> str:
        return LABELS[self.name]

    @property
    def repo(self) -> str:
        return f"bench/{self.name}"

    @property
    def blob_size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def tar_size(self) -> int:
        return sum(layer.tar_size for layer in self.layers)

    @property
    def files(self) -> int:
        return sum(layer.files for layer in self.layers)

    def layer_path(self, digest: str) -> Path:
        return self.directory / f"{digest[7:]}.tar.gz"

    def summary(self) -> str:
        return (
            f"{self.name}: {len(self.layers)} layer(s), {self.files:,} files, "
            f"{self.tar_size / 1e6:.1f} MB unpacked, {self.blob_size / 1e6:.1f} MB gzipped"
        )


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def build(name: str) -> CachedImage:
    directory = IMAGES_DIR / name
    if directory.exists():
        shutil.rmtree(directory)
    work = IMAGES_DIR / f".{name}.building"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    started = time.monotonic()
    print(f"building image {name} ...", flush=True)
    layers = BUILDERS[name](work)
    arch = testimages.host_arch().split("/")[0]
    config = {
        "architecture": arch,
        "os": "linux",
        "created": CREATED,
        "config": {"Env": [PATH_ENV], "Cmd": ["sh" if name == "busybox" else "bash"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [
            {"created": CREATED, "created_by": f"bench/images.py {name} layer {i}"}
            for i in range(len(layers))
        ],
    }
    config_blob = Blob.of(DOCKER_CONFIG, _json(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [{"mediaType": DOCKER_LAYER, "size": la.size, "digest": la.digest} for la in layers],
    }
    (work / "config.json").write_bytes(config_blob.data)
    (work / "manifest.json").write_bytes(_json(manifest))
    (work / "info.json").write_text(json.dumps([layer.__dict__ for layer in layers], indent=1))
    work.rename(directory)  # the cache entry appears whole or not at all
    image = load(name)
    assert image is not None
    print(f"  {image.summary()} ({time.monotonic() - started:.0f} s)", flush=True)
    return image


def load(name: str) -> CachedImage | None:
    directory = IMAGES_DIR / name
    try:
        manifest = (directory / "manifest.json").read_bytes()
        config = (directory / "config.json").read_bytes()
        layers = [LayerInfo(**d) for d in json.loads((directory / "info.json").read_text())]
    except (OSError, ValueError, TypeError):
        return None
    if not all((directory / f"{la.digest[7:]}.tar.gz").is_file() for la in layers):
        return None
    return CachedImage(
        name, directory, Blob.of(DOCKER_MANIFEST, manifest), Blob.of(DOCKER_CONFIG, config), layers
    )


def ensure(name: str) -> CachedImage:
    return load(name) or build(name)


def push(registry: str, image: CachedImage, tag: str = "latest") -> str:
    """Upload the blobs the registry lacks (read from the cache only then), then the manifest."""
    for layer in image.layers:
        if not testimages.blob_exists(registry, image.repo, layer.digest):
            data = image.layer_path(layer.digest).read_bytes()
            testimages.push_blob(registry, image.repo, Blob(layer.digest, DOCKER_LAYER, data))
    testimages.push_blob(registry, image.repo, image.config)
    return testimages.push_manifest(registry, image.repo, tag, image.manifest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="append", default=[], choices=NAMES)
    args = parser.parse_args()
    for name in NAMES:
        image = build(name) if name in args.rebuild else ensure(name)
        print(image.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
