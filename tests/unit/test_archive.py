"""save / load / import over real files in temporary data roots (no daemon, no root needed)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import posixpath
import subprocess
import tarfile
import time

import pytest
import zstandard
from aiohttp.test_utils import TestClient, TestServer

from dockyard.images import ImageError, ImageService, NoSuchImage
from dockyard.images import archive as arc
from dockyard.images.changes import ChangeError, apply_changes
from dockyard.images.snapshots import chain_ids
from dockyard.images.store import LayerRecord
from dockyard.reference import parse_reference

# ------------------------------------------------------------------------------------------- helpers


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1704067200
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    return buf.getvalue()


def add_image(
    service: ImageService,
    layers: list[dict[str, bytes]],
    tags: tuple[str, ...] = (),
    compressed: bool = False,
    cmd: str = "sh",
) -> str:
    """An image as a pull leaves it (compressed=True: gzip blobs) or as load leaves it (plain tar blobs)."""
    tars = [layer_tar(files) for files in layers]
    diff_ids = [sha(t) for t in tars]
    records, parent = [], ""
    for tar, chain, diff_id in zip(tars, chain_ids(diff_ids), diff_ids, strict=True):
        if not service.snapshots.exists(chain):
            pending = service.snapshots.prepare(chain, parent, diff_id)
            pending.apply(io.BytesIO(tar))
            pending.commit()
        blob = gzip.compress(tar, mtime=0) if compressed else tar
        digest = service.content.put(blob)
        media = "application/vnd.docker.image.rootfs.diff.tar" + (".gzip" if compressed else "")
        records.append(LayerRecord(digest, media, len(blob), diff_id))
        parent = chain
    config = {
        "architecture": "amd64",
        "config": {"Cmd": [cmd], "Env": ["PATH=/bin"]},
        "created": "2024-01-01T00:00:00Z",
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"} for i in range(len(tars))
        ],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    record = service.register(json.dumps(config).encode(), records)
    for tag in tags:
        service.store.set_ref(parse_reference(tag), record.id)
    return record.id


def save_bytes(service: ImageService, names: list[str]) -> bytes:
    with arc.save(service, names) as stream:
        return b"".join(stream)


def load(service: ImageService, data: bytes, **kwargs) -> arc.LoadResult:
    return asyncio.run(arc.load(service, io.BytesIO(data), **kwargs))


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.getmember(name)
        while member.issym():
            member = tar.getmember(
                posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
            )
        f = tar.extractfile(member)
        assert f is not None
        return f.read()


def build_archive(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A hand-made archive: name -> data, plus symlinks name -> target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def docker_archive(
    layers: list[bytes], tags: list[str] | None, diff_ids: list[str] | None = None, os_name: str = "linux"
) -> tuple[bytes, str]:
    """A docker-archive as Docker 20.10 lays it out, from raw layer tars; returns it and the image ID."""
    diff_ids = diff_ids or [sha(t) for t in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": os_name,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    files = {f"{sha(config)[7:]}.json": config}
    paths = []
    for i, tar in enumerate(layers):
        files[f"v1layer{i}/layer.tar"] = tar
        files[f"v1layer{i}/VERSION"] = b"1.0"
        paths.append(f"v1layer{i}/layer.tar")
    manifest = [{"Config": f"{sha(config)[7:]}.json", "RepoTags": tags, "Layers": paths}]
    files["manifest.json"] = json.dumps(manifest).encode()
    return build_archive(files), sha(config)


@pytest.fixture
def source(tmp_path) -> ImageService:
    return ImageService(tmp_path / "source", driver="vfs")


@pytest.fixture
def target(tmp_path) -> ImageService:
    return ImageService(tmp_path / "target", driver="vfs")


def assert_untouched(service: ImageService) -> None:
    """Nothing registered, nothing unpacked, no blob or scratch file left behind."""
    assert service.store.images == {}
    assert service.store.refs == {}
    assert service.snapshots.all() == {}
    assert list(service.content.digests()) == []
    assert list(service.content.ingest_dir.iterdir()) == []
    assert not service.pinned_keys()


# ------------------------------------------------------------------------------------------- save


def test_save_writes_docker_20_10_layout_and_oci_layout(source):
    image_id = add_image(
        source, [{"bin/sh": b"shell"}, {"etc/motd": b"hi"}], ("busybox:latest",), compressed=True
    )
    data = save_bytes(source, ["busybox"])
    names = members(data)
    manifest = json.loads(read_member(data, "manifest.json"))
    assert len(manifest) == 1
    item = manifest[0]
    assert item["Config"] == image_id[7:] + ".json"
    assert item["RepoTags"] == ["busybox:latest"]
    assert len(item["Layers"]) == 2
    config = json.loads(read_member(data, item["Config"]))
    for path, diff_id in zip(item["Layers"], config["rootfs"]["diff_ids"], strict=True):
        v1 = path.split("/")[0]
        assert names[f"{v1}/"].isdir() if f"{v1}/" in names else names[v1].isdir()
        assert read_member(data, f"{v1}/VERSION") == b"1.0"
        assert json.loads(read_member(data, f"{v1}/json"))["id"] == v1
        # the layer is stored once, uncompressed, as the OCI blob; layer.tar links to it
        assert names[path].issym()
        assert sha(read_member(data, path)) == diff_id
        assert names[f"blobs/sha256/{diff_id[7:]}"].isfile()
    top = json.loads(read_member(data, item["Layers"][1].split("/")[0] + "/json"))
    assert top["parent"] == item["Layers"][0].split("/")[0]
    assert top["config"]["Cmd"] == ["sh"]
    assert json.loads(read_member(data, "repositories")) == {
        "busybox": {"latest": item["Layers"][-1].split("/")[0]}
    }
    assert json.loads(read_member(data, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(read_member(data, "index.json"))
    (entry,) = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "docker.io/library/busybox:latest"
    oci_manifest = json.loads(read_member(data, f"blobs/sha256/{entry['digest'][7:]}"))
    assert oci_manifest["config"]["digest"] == image_id
    assert [layer["digest"] for layer in oci_manifest["layers"]] == config["rootfs"]["diff_ids"]


def test_save_is_readable_by_gnu_tar(source, tmp_path):
    add_image(source, [{"a": b"1"}], ("x:1",))
    path = tmp_path / "x.tar"
    path.write_bytes(save_bytes(source, ["x:1"]))
    listing = subprocess.run(["tar", "-tvf", str(path)], check=True, capture_output=True, text=True).stdout
    assert "manifest.json" in listing and "layer.tar -> ../blobs/sha256/" in listing
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(path), "-C", str(out)], check=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sha((out / manifest[0]["Layers"][0]).read_bytes()) == sha(layer_tar({"a": b"1"}))


def test_save_name_rules(source):
    first = add_image(source, [{"a": b"1"}], ("app:1", "app:2", "other:latest"))
    second = add_image(source, [{"b": b"2"}], ("app:3",))
    items = json.loads(read_member(save_bytes(source, ["app"]), "manifest.json"))
    tags = {tuple(item["RepoTags"]) for item in items}
    assert tags == {("app:1", "app:2"), ("app:3",)}  # a bare name saves every tag of the repository
    items = json.loads(read_member(save_bytes(source, ["app:2"]), "manifest.json"))
    assert [item["RepoTags"] for item in items] == [["app:2"]]
    items = json.loads(read_member(save_bytes(source, [first[7:19]]), "manifest.json"))
    assert [item["RepoTags"] for item in items] == [None]  # by ID: no tag, as Docker
    items = json.loads(read_member(save_bytes(source, ["app:1", second, "other"]), "manifest.json"))
    assert sorted(tuple(item["RepoTags"] or ()) for item in items) == [(), ("app:1", "other:latest")]
    with pytest.raises(NoSuchImage, match="No such image: nope:latest"):
        arc.save(source, ["nope:latest"])
    with pytest.raises(ImageError, match="invalid reference format"):
        arc.save(source, ["Bad Name"])


def test_save_shares_layers_between_images(source):
    add_image(source, [{"base": b"b"}, {"one": b"1"}], ("one:1",))
    add_image(source, [{"base": b"b"}, {"two": b"2"}], ("two:1",))
    data = save_bytes(source, ["one:1", "two:1"])
    base = sha(layer_tar({"base": b"b"}))
    blobs = [name for name in members(data) if name == f"blobs/sha256/{base[7:]}"]
    assert len(blobs) == 1
    items = json.loads(read_member(data, "manifest.json"))
    assert items[0]["Layers"][0] == items[1]["Layers"][0]  # the same v1 directory for the same base


# ------------------------------------------------------------------------------------------- load


def test_round_trip_keeps_ids_tags_and_files(source, target):
    one = add_image(source, [{"bin/sh": b"shell"}, {"etc/one": b"1"}], ("one:1",), compressed=True)
    two = add_image(source, [{"bin/sh": b"shell"}, {"etc/two": b"2"}], ("two:latest", "two:x"))
    data = save_bytes(source, ["one:1", "two"])
    result = load(target, data)
    assert result.lines == ["Loaded image: one:1", "Loaded image: two:latest", "Loaded image: two:x"]
    assert {r.id for r in result.images} == {one, two}
    assert target.get("one:1").id == one and target.get("two:x").id == two
    assert target.config(target.get("one:1")) == source.config(source.get("one:1"))
    fs = target.snapshots.lower_dirs(target.get("one:1").chain_id)[0]
    assert (fs / "etc/one").read_bytes() == b"1" and (fs / "bin/sh").read_bytes() == b"shell"
    # loaded layers are kept as plain tars (digest = diff ID), so a second save needs no decompression
    for layer in target.get("one:1").layers:
        assert layer.digest == layer.diff_id and target.content.has(layer.digest)
    again = save_bytes(target, ["one:1", "two"])
    assert json.loads(read_member(again, "manifest.json")) == json.loads(read_member(data, "manifest.json"))
    assert list(target.content.ingest_dir.iterdir()) == []


def test_load_compressed_archives(source, target):
    image_id = add_image(source, [{"a": b"1"}], ("x:1",))
    data = save_bytes(source, ["x:1"])
    assert load(target, gzip.compress(data)).lines == ["Loaded image: x:1"]
    other = ImageService(target.content.root.parent.parent / "zstd", driver="vfs")
    result = load(other, zstandard.ZstdCompressor().compress(data))
    assert [r.id for r in result.images] == [image_id]


def test_load_untagged_reports_ids(source, target):
    image_id = add_image(source, [{"a": b"1"}], ("x:1",))
    result = load(target, save_bytes(source, [image_id]))
    assert result.lines == [f"Loaded image ID: {image_id}"]
    assert target.store.tags_of(image_id) == []


def test_load_moves_a_tag_and_says_so(source, target):
    old = add_image(target, [{"old": b"o"}], ("busybox:latest",))
    new = add_image(source, [{"new": b"n"}], ("busybox:latest",))
    result = load(target, save_bytes(source, ["busybox:latest"]))
    assert result.lines == [
        f"The image busybox:latest already exists, renaming the old one with ID {old} to empty string",
        "Loaded image: busybox:latest",
    ]
    assert target.get("busybox").id == new
    assert old in target.store.images  # kept, now untagged


def test_load_skips_existing_layers_and_reuses_their_blobs(source, target):
    add_image(target, [{"base": b"b"}], ("base:1",), compressed=True)
    add_image(source, [{"base": b"b"}, {"top": b"t"}], ("app:1",))
    before = set(target.snapshots.all())
    progress: list[tuple[str, int, int]] = []
    load(target, save_bytes(source, ["app:1"]), progress=lambda *a: progress.append(a))
    assert len(set(target.snapshots.all()) - before) == 1  # only the top layer was unpacked
    base_layer = target.get("app:1").layers[0]
    assert base_layer.digest == target.get("base:1").layers[0].digest  # the pulled blob, reused
    top = sha(layer_tar({"top": b"t"}))
    assert {p[0] for p in progress} == {top[7:19]}
    assert progress[-1][1] == progress[-1][2]


def test_load_oci_layout(target):
    """An OCI image layout as buildx or skopeo write it: gzip layers, a nested index, names in annotations."""
    tar = layer_tar({"hello": b"world"})
    gz = gzip.compress(tar, mtime=0)
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(tar)]}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": arc.OCI_MANIFEST,
            "config": {"mediaType": arc.OCI_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha(gz),
                    "size": len(gz),
                }
            ],
        }
    ).encode()
    foreign = json.dumps(
        {"schemaVersion": 2, "mediaType": arc.OCI_MANIFEST, "config": {}, "layers": []}
    ).encode()
    nested = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": arc.OCI_INDEX,
            "manifests": [
                {
                    "mediaType": arc.OCI_MANIFEST,
                    "digest": sha(foreign),
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "s390x"},
                },
                {
                    "mediaType": arc.OCI_MANIFEST,
                    "digest": sha(manifest),
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
            ],
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": arc.OCI_INDEX,
                "digest": sha(nested),
                "size": len(nested),
                "annotations": {
                    "io.containerd.image.name": "example.com/team/app:2",
                    "org.opencontainers.image.ref.name": "2",
                },
            }
        ],
    }
    blobs = {f"blobs/sha256/{sha(b)[7:]}": b for b in (config, gz, manifest, nested, foreign)}
    data = build_archive({"oci-layout": arc.OCI_LAYOUT, "index.json": json.dumps(index).encode(), **blobs})
    result = load(target, data, platform_ok=lambda p: p.get("architecture") == "amd64")
    assert result.lines == ["Loaded image: example.com/team/app:2"]
    record = target.get("example.com/team/app:2")
    assert record.id == sha(config)
    assert record.layers[0].digest == sha(gz) and record.layers[0].media_type.endswith("+gzip")
    saved = save_bytes(target, ["example.com/team/app:2"])  # a compressed blob is decompressed for save
    (item,) = json.loads(read_member(saved, "manifest.json"))
    assert sha(read_member(saved, item["Layers"][0])) == sha(tar)


def test_load_docker_25_layout_with_blob_paths(target):
    tar = layer_tar({"f": b"x"})
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(tar)]}}).encode()
    manifest = [
        {
            "Config": f"blobs/sha256/{sha(config)[7:]}",
            "RepoTags": ["new:25"],
            "Layers": [f"blobs/sha256/{sha(tar)[7:]}"],
        }
    ]
    files = {f"blobs/sha256/{sha(config)[7:]}": config, f"blobs/sha256/{sha(tar)[7:]}": tar}
    data = build_archive(
        {"manifest.json": json.dumps(manifest).encode(), "oci-layout": arc.OCI_LAYOUT, **files}
    )
    assert load(target, data).lines == ["Loaded image: new:25"]


def test_load_follows_docker_dedupe_symlinks_and_hard_links(target):
    """Docker 20.10 writes a layer that appears twice as a symlink to the first copy; tar tools may
    store a repeated file as a hard link."""
    base, top = layer_tar({"base": b"b"}), layer_tar({"top": b"t"})
    configs = []
    for diff_ids in ([sha(base)], [sha(base), sha(top)]):
        configs.append(
            json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
        )
    manifest = [
        {"Config": "one.json", "RepoTags": ["one:1"], "Layers": ["aaa/layer.tar"]},
        {"Config": "two.json", "RepoTags": ["two:1"], "Layers": ["bbb/layer.tar", "ccc/layer.tar"]},
    ]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {
            "one.json": configs[0],
            "two.json": configs[1],
            "aaa/layer.tar": base,
            "manifest.json": json.dumps(manifest).encode(),
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bbb/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../aaa/layer.tar"
        tar.addfile(link)
        data = top
        info = tarfile.TarInfo("ddd/layer.tar")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        hard = tarfile.TarInfo("ccc/layer.tar")
        hard.type, hard.linkname = tarfile.LNKTYPE, "ddd/layer.tar"
        tar.addfile(hard)
    result = load(target, buf.getvalue())
    assert result.lines == ["Loaded image: one:1", "Loaded image: two:1"]
    assert [layer.diff_id for layer in target.get("two:1").layers] == [sha(base), sha(top)]


# ------------------------------------------------------------------------------------------- bad archives


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: b"this is not a tar archive at all" * 40, "invalid tar archive"),
        (lambda: b"", "invalid tar archive"),
        (lambda: gzip.compress(b"garbage" * 100), "invalid tar archive"),
        (lambda: build_archive({"repositories": b"{}"}), "neither manifest.json nor index.json"),
        (lambda: build_archive({"manifest.json": b"null"}), "manifest cannot be null"),
        (lambda: build_archive({"manifest.json": b"{nope"}), "manifest.json is not valid JSON"),
        (
            lambda: build_archive({"manifest.json": b'[{"Config": "missing.json", "Layers": []}]'}),
            "missing.json is missing",
        ),
        (lambda: build_archive({"../evil": b"x", "manifest.json": b"[]"}), "escapes the archive"),
        (lambda: build_archive({"/etc/evil": b"x", "manifest.json": b"[]"}), "absolute path"),
    ],
)
def test_bad_archives_fail_in_one_line(target, make, message):
    with pytest.raises(ImageError, match=message) as info:
        load(target, make())
    assert "\n" not in str(info.value)
    assert_untouched(target)


def test_layer_not_matching_its_diff_id(target):
    good = layer_tar({"a": b"good"})
    data, _ = docker_archive([layer_tar({"a": b"evil"})], ["x:1"], diff_ids=[sha(good)])
    with pytest.raises(ImageError, match=r'invalid diffID for layer 0: expected "sha256:'):
        load(target, data)
    assert_untouched(target)


def test_second_image_bad_registers_nothing(source, target):
    add_image(source, [{"a": b"1"}], ("good:1",))
    good = save_bytes(source, ["good:1"])
    items = json.loads(read_member(good, "manifest.json"))
    items.append({"Config": items[0]["Config"], "RepoTags": ["bad:1"], "Layers": ["nowhere/layer.tar"]})
    with tarfile.open(fileobj=io.BytesIO(good)) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
        links = {m.name: m.linkname for m in tar.getmembers() if m.issym()}
    files["manifest.json"] = json.dumps(items).encode()
    with pytest.raises(ImageError, match="nowhere/layer.tar is missing"):
        load(target, build_archive(files, links))
    assert_untouched(target)


def test_layer_failing_late_removes_the_snapshots_made(target):
    first = layer_tar({"a": b"1"})
    second = layer_tar({"b": b"2"})
    data, _ = docker_archive(
        [first, layer_tar({"b": b"tampered"})], ["x:1"], diff_ids=[sha(first), sha(second)]
    )
    with pytest.raises(ImageError, match="invalid diffID for layer 1"):
        load(target, data)
    assert_untouched(target)


@pytest.mark.parametrize("link", ["../../../../etc/passwd", "../../outside/layer.tar"])
def test_layer_symlink_out_of_the_archive(target, link):
    config = json.dumps({"os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(b"x")]}}).encode()
    manifest = json.dumps([{"Config": "c.json", "RepoTags": None, "Layers": ["abc/layer.tar"]}]).encode()
    data = build_archive({"manifest.json": manifest, "c.json": config}, {"abc/layer.tar": link})
    with pytest.raises(ImageError, match="links outside the archive"):
        load(target, data)
    assert_untouched(target)


def test_manifest_path_out_of_the_archive(target):
    manifest = json.dumps([{"Config": "../../etc/passwd", "Layers": []}]).encode()
    with pytest.raises(ImageError, match="escapes the archive"):
        load(target, build_archive({"manifest.json": manifest}))
    assert_untouched(target)


def test_layer_escaping_its_snapshot(target, tmp_path):
    evil = tarfile.TarInfo("../../../../../../../../tmp/dockyard-evil")
    data, _ = docker_archive([layer_tar({"ok": b"1"}, extra=[evil])], ["x:1"])
    with pytest.raises(ImageError, match="failed to register layer"):
        load(target, data)
    assert_untouched(target)


@pytest.mark.parametrize(
    "tags, os_name, message",
    [
        (["x@sha256:" + "a" * 64], "linux", "invalid tag"),
        (["Not Valid"], "linux", "invalid tag"),
        (["x:1"], "windows", "cannot load windows image on linux"),
    ],
)
def test_bad_config_or_tags(target, tags, os_name, message):
    data, _ = docker_archive([layer_tar({"a": b"1"})], tags, os_name=os_name)
    with pytest.raises(ImageError, match=message):
        load(target, data)
    assert_untouched(target)


def test_layer_count_mismatch(target):
    tar = layer_tar({"a": b"1"})
    data, _ = docker_archive([tar, tar], ["x:1"], diff_ids=[sha(tar)])
    with pytest.raises(ImageError, match="layers length mismatch: expected 2, got 1"):
        load(target, data)


# ------------------------------------------------------------------------------------------- import


def run_import(service: ImageService, data: bytes, repo_tag=None, changes=(), message=""):
    return asyncio.run(arc.import_rootfs(service, io.BytesIO(data), repo_tag, list(changes), message))


@pytest.mark.parametrize("compress", [lambda d: d, gzip.compress, zstandard.ZstdCompressor().compress])
def test_import_makes_a_one_layer_image(target, compress):
    rootfs = layer_tar({"bin/sh": b"shell", "etc/hostname": b"box"})
    record = run_import(target, compress(rootfs), "imported/box", ['CMD ["sh"]', "ENV A=1"])
    config = target.config(record)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha(rootfs)]}
    assert config["comment"] == "Imported from -"
    assert config["history"] == [{"created": config["created"], "comment": "Imported from -"}]
    assert config["os"] == "linux" and config["architecture"]
    assert config["config"]["Cmd"] == ["sh"] and config["config"]["Env"] == ["A=1"]
    assert list(config) == sorted(config)  # dockerd's image JSON has its top-level keys sorted
    assert target.get("imported/box:latest").id == record.id
    assert record.layers == [LayerRecord(sha(rootfs), arc.LAYER_TAR, len(rootfs), sha(rootfs))]
    assert target.content.read(sha(rootfs)) == rootfs
    fs = target.snapshots.fs(record.chain_id)
    assert (fs / "etc/hostname").read_bytes() == b"box"
    assert list(target.content.ingest_dir.iterdir()) == []
    assert abs(arc._unix(config["created"]) - time.time()) < 60


def test_import_message_untagged_and_same_rootfs_twice(target):
    rootfs = layer_tar({"a": b"1"})
    first = run_import(target, rootfs, None, (), "my message")
    assert target.config(first)["comment"] == "my message"
    assert target.store.tags_of(first.id) == []
    second = run_import(target, rootfs, "again:1")
    assert second.chain_id == first.chain_id and len(target.snapshots.all()) == 1


@pytest.mark.parametrize(
    "repo_tag, changes, message",
    [
        ("x@sha256:" + "a" * 64, (), "cannot import digest reference"),
        ("UPPER", (), "must be lowercase"),
        (None, ["RUN echo hi"], "run is not a valid change command"),
        (None, ["FROM scratch"], "from is not a valid change command"),
        (None, ["EXPOSE abc"], "invalid containerPort: abc"),
    ],
)
def test_import_bad_parameters_are_400(target, repo_tag, changes, message):
    with pytest.raises(ImageError, match=message) as info:
        run_import(target, layer_tar({"a": b"1"}), repo_tag, changes)
    assert info.value.status == 400
    assert_untouched(target)


def test_import_malicious_rootfs(target):
    evil = tarfile.TarInfo("../../../../../../../tmp/dockyard-import-evil")
    with pytest.raises(ImageError, match="failed to register layer"):
        run_import(target, layer_tar({"a": b"1"}, extra=[evil]), "x:1")
    assert_untouched(target)


def test_import_then_save_then_load(target, tmp_path):
    record = run_import(target, layer_tar({"a": b"1"}), "box:imp", ["WORKDIR /srv"])
    other = ImageService(tmp_path / "other", driver="vfs")
    result = load(other, save_bytes(target, ["box:imp"]))
    assert result.lines == ["Loaded image: box:imp"]
    assert other.get("box:imp").id == record.id
    assert other.config(other.get("box:imp"))["config"]["WorkingDir"] == "/srv"


# ------------------------------------------------------------------------------------------- changes


def test_changes_in_dockerfile_syntax():
    config = apply_changes(
        [
            'ENV PATH=/usr/bin:/bin GREETING="hello world"',
            "ENV LEGACY value with spaces",
            "ENV FULL=${GREETING}! EMPTY=${NOPE:-fallback}",
            "CMD echo $GREETING",
            'ENTRYPOINT ["/entry.sh", "--flag"]',
            "EXPOSE 80 8000-8002/udp",
            'LABEL org.example.name="my app" version=1.0',
            "USER nobody:nogroup",
            'VOLUME ["/data", "/logs"]',
            "VOLUME /cache",
            "WORKDIR /srv",
            "WORKDIR app",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN make",
            "HEALTHCHECK --interval=30s --retries=3 CMD curl -f http://localhost/",
        ]
    )
    assert config["Env"] == [
        "PATH=/usr/bin:/bin",
        "GREETING=hello world",
        "LEGACY=value with spaces",
        "FULL=hello world!",
        "EMPTY=fallback",
    ]
    assert config["Cmd"] == ["/bin/sh", "-c", "echo $GREETING"]  # CMD is not expanded, as in Docker
    assert config["Entrypoint"] == ["/entry.sh", "--flag"]
    assert config["ExposedPorts"] == {"80/tcp": {}, "8000/udp": {}, "8001/udp": {}, "8002/udp": {}}
    assert config["Labels"] == {"org.example.name": "my app", "version": "1.0"}
    assert config["User"] == "nobody:nogroup"
    assert config["Volumes"] == {"/data": {}, "/logs": {}, "/cache": {}}
    assert config["WorkingDir"] == "/srv/app"
    assert config["StopSignal"] == "SIGINT"
    assert config["OnBuild"] == ["RUN make"]
    assert config["Healthcheck"] == {
        "Test": ["CMD-SHELL", "curl -f http://localhost/"],
        "Interval": 30_000_000_000,
        "Retries": 3,
    }
    # Go's field order, as inspect shows it
    keys = list(config)
    assert keys.index("ExposedPorts") < keys.index("Tty") < keys.index("Env") < keys.index("Healthcheck")
    assert keys.index("Labels") < keys.index("StopSignal")


def test_entrypoint_drops_inherited_cmd_unless_set_with_it():
    assert apply_changes(["ENTRYPOINT top"], {"Cmd": ["sh"]})["Cmd"] is None
    config = apply_changes(['CMD ["-x"]', 'ENTRYPOINT ["top"]'], {"Cmd": ["sh"]})
    assert config["Cmd"] == ["-x"]


def test_empty_changes_give_docker_empty_config():
    config = apply_changes([])
    assert config["Cmd"] is None and config["Env"] is None and "ExposedPorts" not in config
    assert list(config)[:6] == [
        "Hostname",
        "Domainname",
        "User",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
    ]


@pytest.mark.parametrize(
    "change, message",
    [
        ("ADD . /", "add is not a valid change command"),
        ("ENV", "ENV requires at least one argument"),
        ("ENV onlykey", "ENV must have two arguments"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ("HEALTHCHECK NONE --x", "HEALTHCHECK NONE takes no arguments"),
        ("ONBUILD ONBUILD RUN x", "isn't allowed"),
        ("HEALTHCHECK --interval=soon CMD true", "invalid duration"),
    ],
)
def test_bad_changes(change, message):
    with pytest.raises(ChangeError, match=message):
        apply_changes([change])


# ------------------------------------------------------------------------------------------- the API


@pytest.fixture
def daemon(tmp_path):
    from dockyard.engine import Daemon, build_config
    from dockyard.engine.config import NO_HOST_NETWORK

    config = build_config(
        NO_HOST_NETWORK, {"data-root": str(tmp_path / "data"), "exec-root": str(tmp_path / "exec")}, "x"
    )
    (tmp_path / "data").mkdir()
    return Daemon(config)


def call(daemon, coro_fn):
    from dockyard.api import build_app

    async def go():
        async with TestClient(TestServer(build_app(daemon))) as client:
            return await coro_fn(client)

    return asyncio.run(go())


def test_api_import_save_load_and_routes(daemon):
    rootfs = layer_tar({"bin/sh": b"shell"})

    async def go(client):
        out = {}
        r = await client.post(
            "/v1.41/images/create",
            params=[
                ("fromSrc", "-"),
                ("repo", "api/box:1"),
                ("changes", 'CMD ["sh"]'),
                ("changes", "ENV A=b"),
            ],
            data=rootfs,
        )
        out["import"] = (r.status, r.headers["Content-Type"], await r.text())
        r = await client.get("/v1.41/images/api/box:1/json")
        out["inspect"] = (r.status, await r.json())
        r = await client.get("/v1.41/images/get", params=[("names", "api/box:1")])
        out["save_many"] = (r.status, r.headers["Content-Type"], await r.read())
        r = await client.get("/v1.41/images/api/box:1/get")
        out["save_one"] = (r.status, await r.read())
        r = await client.delete("/v1.41/images/api/box:1")
        out["rmi"] = r.status
        r = await client.post("/v1.41/images/load", params={"quiet": "1"}, data=out["save_one"][1])
        out["load"] = (r.status, r.headers["Content-Type"], await r.text())
        r = await client.get("/v1.41/images/get", params=[("names", "nope")])
        out["missing"] = (r.status, await r.json())
        r = await client.post("/v1.41/images/load", data=b"garbage" * 200)
        out["corrupt"] = (r.status, await r.text())
        r = await client.post(
            "/v1.41/images/create", params={"fromSrc": "-", "changes": "RUN x"}, data=rootfs
        )
        out["bad_change"] = (r.status, await r.json())
        r = await client.get("/v1.41/events", params={"since": "0", "until": str(int(time.time()) + 1)})
        out["events"] = [json.loads(line) for line in (await r.text()).splitlines() if line.strip()]
        return out

    out = call(daemon, go)
    status, content_type, body = out["import"]
    assert (status, content_type) == (200, "application/json")
    image_id = json.loads(body)["status"]
    assert image_id.startswith("sha256:")
    assert out["inspect"][0] == 200 and out["inspect"][1]["Id"] == image_id
    assert out["inspect"][1]["Config"]["Cmd"] == ["sh"] and out["inspect"][1]["Comment"] == "Imported from -"
    assert out["save_many"][:2] == (200, "application/x-tar")
    for data in (out["save_many"][2], out["save_one"][1]):
        assert json.loads(read_member(data, "manifest.json"))[0]["Config"] == image_id[7:] + ".json"
    assert out["rmi"] == 200
    status, content_type, body = out["load"]
    assert (status, content_type) == (200, "application/json")
    assert [json.loads(line) for line in body.splitlines()] == [{"stream": "Loaded image: api/box:1\n"}]
    assert out["missing"] == (404, {"message": "No such image: nope:latest"})
    status, body = out["corrupt"]
    assert status == 200
    (error,) = [json.loads(line) for line in body.splitlines()]
    assert error["errorDetail"]["message"].startswith("invalid tar archive")
    assert out["bad_change"] == (400, {"message": "run is not a valid change command"})
    actions = [(e["Action"], e["Actor"]["ID"]) for e in out["events"] if e["Type"] == "image"]
    assert ("import", image_id) in actions and ("save", image_id) in actions and ("load", image_id) in actions
    assert ("tag", image_id) in actions
