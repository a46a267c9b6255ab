"""Images against a real dockyardd and a real registry: pull, images, tag, inspect, history, rmi, prune,
through the official docker CLI, docker-py and our CLI; and the bad cases."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import testimages
from harness import DOCKYARD, DaemonProcess, run_cli, unique


def tar_of(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def hardlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE
    info.linkname = target
    return info


def file_entry(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info, data


@pytest.fixture
def pushed(registry):
    """Push an image to the test registry under a fresh repository; returns (reference, digest)."""

    def push(image=None, repo: str | None = None, tag: str = "latest") -> tuple[str, str]:
        repo = repo or unique("test/img")
        digest = testimages.push_image(
            registry.address, repo, tag, image or testimages.build_image("busybox")
        )
        return f"{registry.address}/{repo}:{tag}", digest

    return push


def image_ids(docker_client) -> set[str]:
    return {image.id for image in docker_client.images.list(all=True)}


def snapshot_dirs(daemon: DaemonProcess) -> set[str]:
    root = daemon.data_root / "image" / "snapshots"
    return {str(p) for p in root.glob("*/*")}


# --- pull ---------------------------------------------------------------------------------------------


def test_docker_pull_by_tag_then_images_inspect_rmi(docker, pushed):
    ref, digest = pushed(testimages.build_image("httpd"))
    result = docker("pull", ref)
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": Pulling from " + ref.split("/", 1)[1].rsplit(":", 1)[0])
    assert f"Digest: {digest}" in lines
    assert f"Status: Downloaded newer image for {ref}" in lines
    assert lines[-1] == ref
    assert any(line.endswith(": Pull complete") for line in lines)

    again = docker("pull", ref)
    assert f"Status: Image is up to date for {ref}" in again.stdout

    listed = docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}", ref.rsplit(":", 1)[0])
    assert listed.returncode == 0, listed.output
    repo_tag, short_id, size = listed.stdout.split()
    assert repo_tag == ref and len(short_id) == 12 and size.endswith("MB")

    inspect = json.loads(docker("image", "inspect", ref).stdout)[0]
    assert inspect["Id"].startswith("sha256:" + short_id)
    assert inspect["RepoTags"] == [ref]
    assert inspect["RepoDigests"] == [f"{ref.rsplit(':', 1)[0]}@{digest}"]
    assert inspect["Config"]["Cmd"] == ["httpd", "-f", "-p", "80", "-h", "/usr/local/apache2/htdocs"]
    assert inspect["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert len(inspect["RootFS"]["Layers"]) == 2

    removed = docker("rmi", ref)
    assert removed.returncode == 0, removed.output
    assert f"Untagged: {ref}" in removed.stdout
    assert f"Deleted: {inspect['Id']}" in removed.stdout
    missing = docker("image", "inspect", ref)
    assert missing.returncode == 1
    assert "No such image" in missing.stderr


def test_pull_through_the_docker_hub_mirror(docker, daemon):
    result = docker("pull", "busybox")
    assert result.returncode == 0, result.output
    assert "Using default tag: latest" in result.stdout
    assert (
        "Status: Downloaded newer image for busybox:latest" in result.stdout
        or "Status: Image is up to date for busybox:latest" in result.stdout
    )
    assert result.stdout.splitlines()[-1] == "docker.io/library/busybox:latest"
    listed = docker("images", "busybox", "--format", "{{.Repository}}:{{.Tag}}")
    assert listed.stdout.split() == ["busybox:latest"]


def test_pull_by_digest(docker, pushed, registry):
    ref, digest = pushed()
    name = ref.rsplit(":", 1)[0]
    result = docker("pull", f"{name}@{digest}")
    assert result.returncode == 0, result.output
    assert f"Digest: {digest}" in result.stdout
    inspect = json.loads(docker("image", "inspect", f"{name}@{digest}").stdout)[0]
    assert f"{name}@{digest}" in inspect["RepoDigests"]
    wrong = "sha256:" + "0" * 64
    bad = docker("pull", f"{name}@{wrong}")
    assert bad.returncode == 1
    assert "not found" in bad.stderr or "manifest unknown" in bad.stderr


@pytest.mark.parametrize("media", ["oci", "docker"])
def test_pull_multi_platform_index(docker, registry, media):
    repo = unique("test/multi")
    images = testimages.build_multiplatform("busybox", media=media)
    testimages.push_index(registry.address, repo, "latest", images, media=media)
    ref = f"{registry.address}/{repo}:latest"
    result = docker("pull", ref)
    assert result.returncode == 0, result.output
    host = json.loads(docker("image", "inspect", ref).stdout)[0]
    assert host["Architecture"] == testimages.host_arch().split("/")[0]
    arm = docker("pull", "--platform", "linux/arm/v7", ref)
    assert arm.returncode == 0, arm.output
    inspect = json.loads(docker("image", "inspect", ref).stdout)[0]
    assert (inspect["Architecture"], inspect.get("Variant")) == ("arm", "v7")
    none = docker("pull", "--platform", "linux/s390x", ref)
    assert none.returncode == 1
    assert "no matching manifest for linux/s390x in the manifest list entries" in none.stderr


def test_docker_py_pull_list_get_remove(docker_client, pushed):
    ref, _ = pushed()
    repo, tag = ref.rsplit(":", 1)
    image = docker_client.images.pull(repo, tag=tag)
    assert ref in image.tags
    assert any(i.id == image.id for i in docker_client.images.list())
    assert docker_client.images.get(ref).id == image.id
    docker_client.images.remove(ref)
    import docker.errors

    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(ref)


def test_dockyard_cli_pull_images_tag_history_rmi(dockyard, pushed):
    ref, digest = pushed(testimages.build_image("httpd"))
    result = dockyard("pull", ref)
    assert result.returncode == 0, result.output
    assert f"Digest: {digest}" in result.stdout
    assert result.stdout.splitlines()[-1] == ref
    assert "Downloading" not in result.stdout  # progress-only lines are not printed without a terminal
    target = unique("localtag") + ":v1"
    assert dockyard("tag", ref, target).returncode == 0
    listed = dockyard("images")
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(line.startswith(target.split(":")[0]) for line in listed.stdout.splitlines())
    inspected = dockyard("inspect", "--format", "{{json .RepoTags}}", target)
    assert inspected.returncode == 0, inspected.output
    assert target in inspected.stdout
    missing = dockyard("inspect", "no-such-thing")
    assert missing.returncode == 1 and "Error: No such object: no-such-thing" in missing.stderr
    history = dockyard("history", target)
    assert history.returncode == 0, history.output
    assert "COPY dir:htdocs" in history.stdout
    quiet = dockyard("images", "-q", target.split(":")[0])
    assert len(quiet.stdout.split()) == 1
    removed = dockyard("rmi", target, ref)
    assert removed.returncode == 0, removed.output
    assert f"Untagged: {target}" in removed.stdout and "Deleted: sha256:" in removed.stdout


def test_concurrent_pulls_share_layers(docker_client, pushed, registry):
    shared = tar_of([file_entry("shared.bin", os.urandom(2 * 1024 * 1024))])
    one, _ = pushed(testimages.build_from_tars([shared, tar_of([file_entry("one", b"1")])]))
    two, _ = pushed(testimages.build_from_tars([shared, tar_of([file_entry("two", b"2")])]))
    shared_digest = testimages.sha256_digest(testimages.gzip_layer(shared))
    errors: list[Exception] = []

    def pull(ref: str) -> None:
        try:
            docker_client.images.pull(*ref.rsplit(":", 1))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=pull, args=(ref,)) for ref in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert docker_client.images.get(one).id != docker_client.images.get(two).id
    fetches = [
        line
        for line in Path(registry.log_path).read_text().splitlines()
        if "GET /v2/" in line and f"/blobs/{shared_digest}" in line
    ]
    assert len(fetches) == 1, fetches


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_pull_zstd_and_uncompressed_layers(docker, pushed, compression):
    tar = tar_of([file_entry("hello.txt", b"hello " + compression.encode())])
    ref, _ = pushed(testimages.build_from_tars([testimages.base_layer().tar, tar], compression=compression))
    result = docker("pull", ref)
    assert result.returncode == 0, result.output


# --- bad input ----------------------------------------------------------------------------------------


def test_pull_unknown_tag(docker, registry):
    ref = f"{registry.address}/test/busybox:nope"
    result = docker("pull", ref)
    assert result.returncode == 1
    assert f"manifest for {ref} not found: manifest unknown: manifest unknown" in result.stderr


def test_pull_unreachable_registry(docker):
    started = time.monotonic()
    result = docker("pull", "127.0.0.1:9/test/x:1", timeout=60)
    assert time.monotonic() - started < 30  # retries are bounded
    assert result.returncode == 1
    assert "connection refused" in result.stderr
    assert "127.0.0.1:9" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_invalid_reference(docker, dockyard):
    result = docker("pull", "Not/Valid")
    assert result.returncode == 1
    assert "invalid reference format" in result.stderr
    mine = dockyard("pull", "UPPER")
    assert mine.returncode == 1
    assert "invalid reference format" in mine.stderr


def test_rmi_missing(docker):
    result = docker("rmi", "tr-nonexistent:1")
    assert result.returncode == 1
    # docker 28 prefixes "Error response from daemon: ", docker 20.10 (Debian's) "Error: "
    assert result.stderr.strip().endswith(": No such image: tr-nonexistent:1")
    assert len(result.stderr.strip().splitlines()) == 1


def _blob_path(registry, digest: str) -> Path:
    hexpart = digest.split(":", 1)[1]
    return Path(registry.storage_dir) / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


def test_digest_mismatch_leaves_nothing(docker, pushed, registry, daemon, docker_client):
    layer = tar_of([file_entry("payload.bin", os.urandom(4096))])
    image = testimages.build_from_tars([layer])
    ref, _ = pushed(image)
    path = _blob_path(registry, image.layers[0].digest)
    tampered = bytearray(path.read_bytes())
    tampered[-10] ^= 0xFF
    path.write_bytes(bytes(tampered))
    before = image_ids(docker_client), snapshot_dirs(daemon)
    result = docker("pull", ref)
    assert result.returncode == 1
    assert (
        f"filesystem layer verification failed for digest {image.layers[0].digest}" in result.stderr
        or "invalid gzip stream" in result.stderr
        or "failed to register layer" in result.stderr
    )
    assert (image_ids(docker_client), snapshot_dirs(daemon)) == before
    assert not list((daemon.data_root / "image" / "content" / "ingest").iterdir())


@pytest.mark.parametrize(
    "entries",
    [
        [file_entry("../../escaped-by-dotdot", b"x")],
        [(hardlink("hardlink", "../../../etc/shadow"), None)],
    ],
    ids=["dotdot", "hardlink-out"],
)
def test_malicious_layer_is_rejected(docker, pushed, daemon, docker_client, entries):
    image = testimages.build_from_tars([tar_of(entries)])
    ref, _ = pushed(image)
    before = image_ids(docker_client), snapshot_dirs(daemon)
    result = docker("pull", ref)
    assert result.returncode == 1
    assert "failed to register layer" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (image_ids(docker_client), snapshot_dirs(daemon)) == before
    assert not (daemon.data_root.parent / "escaped-by-dotdot").exists()


def test_symlink_escape_is_contained(docker, pushed, daemon):
    link = tarfile.TarInfo("evil")
    link.type = tarfile.SYMTYPE
    link.linkname = "/"
    outside = f"dockyard-escape-{uuid.uuid4().hex[:8]}"
    image = testimages.build_from_tars([tar_of([(link, None), file_entry(f"evil/tmp/{outside}", b"x")])])
    ref, _ = pushed(image)
    result = docker("pull", ref)
    assert result.returncode == 0, result.output
    assert not Path("/tmp", outside).exists()


def _symlink(name: str, target: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info, None


@pytest.mark.parametrize("through", ["absolute", "relative"])
def test_a_layer_writes_through_its_own_links_only_inside(docker, pushed, through):
    """A layer that links `a` to a host directory, then writes `a/evil`, hard-links `h` to `a/sentinel`
    and writes a file over `h`: the snapshot gets all of it (or the pull fails in one line), the host
    directory nothing."""
    import hostile

    host = hostile.HostState()
    try:
        target = str(host.decoy) if through == "absolute" else "../../../../../../.." + str(host.decoy)
        layers = [
            tar_of([_symlink("a", target), file_entry("a/evil", b"x")]),
            tar_of([_symlink("b", target), (hardlink("h", "b/sentinel"), None), file_entry("h", b"pwned")]),
        ]
        for layer in layers:
            image = testimages.build_from_tars([testimages.base_layer().tar, layer])
            ref, _ = pushed(image)
            result = docker("pull", ref)
            if result.returncode != 0:
                assert "failed to register layer" in result.stderr, result.output
                assert len(result.stderr.strip().splitlines()) == 1, result.output
            host.assert_untouched(f"a layer through a {through} link")
    finally:
        host.remove()


def test_kill_9_during_pull_then_pull_again(tmp_path, registry, pushed):
    big = tar_of([file_entry("big.bin", os.urandom(96 * 1024 * 1024))])
    ref, _ = pushed(testimages.build_from_tars([testimages.base_layer().tar, big], compression="none"))
    proc = DaemonProcess(tmp_path / "d", ["--registry-mirror", registry.url]).start()
    try:
        pull = subprocess.Popen(
            [DOCKYARD, "-H", proc.host, "pull", ref],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        killed = False
        while time.monotonic() < deadline:
            incoming = list((proc.data_root / "image" / "content" / "ingest").glob("*"))
            if incoming and any(p.stat().st_size > 0 for p in incoming):
                os.kill(proc.proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.01)
        pull.wait(60)
        proc.proc.wait(10)
        assert killed, "the pull finished before it could be interrupted"
        proc = DaemonProcess(tmp_path / "d", ["--registry-mirror", registry.url]).start()
        listed = run_cli([DOCKYARD, "-H", proc.host, "images", "-q"])
        assert listed.stdout.strip() == ""  # nothing half-pulled is listed
        again = run_cli([DOCKYARD, "-H", proc.host, "pull", ref], timeout=180)
        assert again.returncode == 0, again.output
        assert len(run_cli([DOCKYARD, "-H", proc.host, "images", "-q"]).stdout.split()) == 1
        assert not list((proc.data_root / "image" / "content" / "ingest").iterdir())
    finally:
        proc.stop()


def test_image_prune_removes_the_dangling_image(docker, pushed):
    repo = unique("test/prune")
    ref, _ = pushed(testimages.build_image("busybox", extra_files={"v": b"1"}), repo=repo)
    assert docker("pull", ref).returncode == 0
    old_id = json.loads(docker("image", "inspect", ref).stdout)[0]["Id"]
    pushed(testimages.build_image("busybox", extra_files={"v": b"2"}), repo=repo)
    assert docker("pull", ref).returncode == 0  # the tag moves: the old image is now dangling
    dangling = docker("images", "-q", "--no-trunc", "--filter", "dangling=true")
    assert old_id in dangling.stdout.split()
    result = docker("image", "prune", "-f")
    assert result.returncode == 0, result.output
    assert f"deleted: {old_id}" in result.stdout
    assert "Total reclaimed space" in result.stdout
    assert docker("image", "inspect", ref).returncode == 0
