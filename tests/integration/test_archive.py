"""save / load / import against a real dockyardd: the official docker CLI, docker-py and our CLI.

Images come from `import` of a busybox rootfs built by tools/testimages.py, not from a pull, so these
tests do not depend on the registry client.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import testimages
from harness import DOCKYARD

# Every image these tests make is named under this repository prefix: the daemon is shared per session.
PREFIX = "archive-it"


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rootfs") / "busybox-rootfs.tar"
    path.write_bytes(testimages.base_layer().tar)
    return path


def docker_env(daemon) -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.root / "docker-config")}


def run_binary(argv: list[str], env: dict[str, str] | None = None, stdin=None, stdout=None):
    """A CLI run whose stdin or stdout is a binary file (run_cli is text-only)."""
    return subprocess.run(
        argv,
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        timeout=120,
    )


def manifest_of(path: Path) -> list[dict]:
    with tarfile.open(path) as tar:
        f = tar.extractfile("manifest.json")
        assert f is not None
        return json.loads(f.read())


def image_id(docker, name: str) -> str:
    result = docker("image", "inspect", "--format", "{{.Id}}", name)
    assert result.returncode == 0, result.output
    return result.stdout.strip()


def test_docker_import_save_rmi_load_round_trip(docker, rootfs, tmp_path):
    name = f"{PREFIX}/busybox:imp"
    result = docker("import", "-c", 'CMD ["sh"]', "-c", "ENV A=1", "-m", "from the test", str(rootfs), name)
    assert result.returncode == 0, result.output
    imported = result.stdout.strip()
    assert imported.startswith("sha256:") and len(imported) == 71
    inspect = json.loads(docker("image", "inspect", name).stdout)[0]
    assert inspect["Id"] == imported
    assert inspect["Comment"] == "from the test"
    assert inspect["Config"]["Cmd"] == ["sh"] and inspect["Config"]["Env"] == ["A=1"]
    assert inspect["RootFS"]["Layers"] == [testimages.base_layer().diff_id]
    assert inspect["Os"] == "linux" and inspect["Architecture"] == testimages.host_arch().split("/")[0]

    archive = tmp_path / "saved.tar"
    result = docker("save", "-o", str(archive), name)
    assert result.returncode == 0, result.output
    (item,) = manifest_of(archive)
    assert item["RepoTags"] == [name] and item["Config"] == imported[7:] + ".json"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert {"manifest.json", "repositories", "index.json", "oci-layout"} <= set(names)

    assert docker("rmi", name).returncode == 0
    assert docker("image", "inspect", name).returncode != 0
    result = docker("load", "-i", str(archive))
    assert result.returncode == 0, result.output
    assert result.stdout == f"Loaded image: {name}\n"
    assert image_id(docker, name) == imported
    assert json.loads(docker("image", "inspect", name).stdout)[0]["Config"]["Env"] == ["A=1"]


def test_docker_save_several_to_stdout_and_load_from_stdin(docker, daemon, rootfs, tmp_path):
    first, second = f"{PREFIX}/multi:1", f"{PREFIX}/other:2"
    assert docker("import", str(rootfs), first).returncode == 0
    assert docker("import", "-c", "WORKDIR /srv", str(rootfs), second).returncode == 0
    ids = {image_id(docker, first), image_id(docker, second)}
    archive = tmp_path / "two.tar"
    with open(archive, "wb") as out:
        done = run_binary(["docker", "save", first, second], env=docker_env(daemon), stdout=out)
    assert done.returncode == 0, done.stderr
    assert sorted(item["RepoTags"][0] for item in manifest_of(archive)) == [first, second]
    assert docker("rmi", first, second).returncode == 0
    with open(archive, "rb") as source:
        done = run_binary(["docker", "load"], env=docker_env(daemon), stdin=source)
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.decode().splitlines()) == [f"Loaded image: {first}", f"Loaded image: {second}"]
    assert {image_id(docker, first), image_id(docker, second)} == ids


def test_docker_load_of_an_untagged_save_prints_the_id(docker, rootfs, tmp_path):
    name = f"{PREFIX}/byid:1"
    assert docker("import", "-c", "USER nobody", str(rootfs), name).returncode == 0
    full_id = image_id(docker, name)
    archive = tmp_path / "byid.tar"
    assert docker("save", "-o", str(archive), full_id[7:19]).returncode == 0
    assert manifest_of(archive)[0]["RepoTags"] is None
    result = docker("load", "-i", str(archive))
    assert result.returncode == 0, result.output
    assert result.stdout == f"Loaded image ID: {full_id}\n"


def test_load_moving_a_tag_says_so(docker, rootfs, tmp_path):
    name = f"{PREFIX}/moved:1"
    assert docker("import", "-c", "ENV V=old", str(rootfs), name).returncode == 0
    old = image_id(docker, name)
    archive = tmp_path / "old.tar"
    assert docker("save", "-o", str(archive), name).returncode == 0
    assert docker("import", "-c", "ENV V=new", str(rootfs), name).returncode == 0
    new = image_id(docker, name)
    result = docker("load", "-i", str(archive))
    assert result.returncode == 0, result.output
    assert result.stdout.splitlines() == [
        f"The image {name} already exists, renaming the old one with ID {new} to empty string",
        f"Loaded image: {name}",
    ]
    assert image_id(docker, name) == old


def test_docker_py_import_save_and_load(docker_client, rootfs):
    import docker as docker_sdk

    repo = f"{PREFIX}/py"
    answer = docker_client.api.import_image_from_data(
        rootfs.read_bytes(), repository=repo, tag="1", changes=['CMD ["sh"]']
    )
    imported = json.loads(answer.strip().splitlines()[-1])["status"]
    image = docker_client.images.get(f"{repo}:1")
    assert image.id == imported and image.attrs["Config"]["Cmd"] == ["sh"]

    data = b"".join(image.save(named=True))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert json.loads(tar.extractfile("manifest.json").read())[0]["RepoTags"] == [f"{repo}:1"]
    docker_client.images.remove(f"{repo}:1")
    loaded = docker_client.images.load(data)
    assert [i.id for i in loaded] == [imported]
    assert f"{repo}:1" in loaded[0].tags

    unnamed = b"".join(docker_client.images.get(f"{repo}:1").save())  # by ID, as docker-py does by default
    assert [i.id for i in docker_client.images.load(unnamed)] == [imported]

    with pytest.raises(docker_sdk.errors.ImageLoadError, match="invalid tar archive"):
        docker_client.images.load(b"not a tar" * 100)


def test_dockyard_cli_import_save_load(dockyard, daemon, rootfs, tmp_path):
    name = f"{PREFIX}/ours:1"
    result = dockyard("import", "-c", "EXPOSE 80", "-m", "ours", str(rootfs), name)
    assert result.returncode == 0, result.output
    imported = result.stdout.strip()
    assert imported.startswith("sha256:")
    archive = tmp_path / "ours.tar"
    result = dockyard("save", "-o", str(archive), name)
    assert result.returncode == 0, result.output
    assert manifest_of(archive)[0]["RepoTags"] == [name]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".dockyard_temp")]
    assert dockyard("rmi", name).returncode == 0
    result = dockyard("load", "-i", str(archive))
    assert result.returncode == 0, result.output
    assert result.stdout == f"Loaded image: {name}\n"

    host = ["-H", daemon.host]
    streamed = tmp_path / "streamed.tar"
    with open(streamed, "wb") as out:
        done = run_binary([DOCKYARD, *host, "image", "save", name], stdout=out)
    assert done.returncode == 0, done.stderr
    with open(streamed, "rb") as source:
        done = run_binary([DOCKYARD, *host, "image", "load", "-q"], stdin=source)
    assert (done.returncode, done.stdout) == (0, f"Loaded image: {name}\n".encode())
    with open(rootfs, "rb") as source:
        done = run_binary([DOCKYARD, *host, "image", "import", "-", f"{PREFIX}/stdin"], stdin=source)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip().startswith("sha256:")
    result = dockyard("image", "inspect", "--format", "{{.Comment}}", f"{PREFIX}/stdin:latest")
    assert result.stdout.strip() == "Imported from -"


def tampered(good: Path, target: Path) -> None:
    """A copy of `good` whose layer is another tar: the config's diff ID no longer matches it."""
    evil = testimages.files_layer({"etc/evil": b"evil"}).tar
    with tarfile.open(good) as src, tarfile.open(target, "w") as dst:
        for member in src.getmembers():
            if member.isfile() and member.name.startswith("blobs/sha256/") and member.size > 1 << 20:
                member.size = len(evil)
                dst.addfile(member, io.BytesIO(evil))
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def test_bad_archives_fail_in_one_line_and_register_nothing(docker, dockyard, rootfs, tmp_path):
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(os.urandom(10_000))
    name = f"{PREFIX}/good:1"
    assert docker("import", str(rootfs), name).returncode == 0
    good = tmp_path / "good.tar"
    assert docker("save", "-o", str(good), name).returncode == 0
    assert docker("rmi", name).returncode == 0
    bad = tmp_path / "bad.tar"
    tampered(good, bad)
    before = docker("images", "-a", "-q", "--no-trunc").stdout
    for archive, message in ((garbage, "invalid tar archive"), (bad, "invalid diffID for layer 0")):
        for cli in (docker, dockyard):
            result = cli("load", "-i", str(archive))
            assert result.returncode == 1, result.output
            assert result.stdout == ""
            assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert docker("images", "-a", "-q", "--no-trunc").stdout == before
    assert docker("image", "inspect", name).returncode != 0


def test_errors_before_streaming(docker, dockyard, rootfs, tmp_path):
    result = docker("save", "-o", str(tmp_path / "x.tar"), f"{PREFIX}/nosuch:1")
    assert result.returncode == 1 and f"No such image: {PREFIX}/nosuch:1" in result.stderr
    assert not (tmp_path / "x.tar").exists()
    result = docker("import", "-c", "RUN echo hi", str(rootfs))
    assert result.returncode == 1 and "run is not a valid change command" in result.stderr
    result = dockyard("save", "-o", str(tmp_path / "missing-dir" / "x.tar"), "anything")
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_events_for_import_save_load(docker, rootfs, tmp_path):
    since = str(time.time() - 1)
    name = f"{PREFIX}/events:1"
    assert docker("import", str(rootfs), name).returncode == 0
    archive = tmp_path / "events.tar"
    assert docker("save", "-o", str(archive), name).returncode == 0
    assert docker("load", "-i", str(archive)).returncode == 0
    until = str(time.time() + 1)
    result = docker(
        "events", "--since", since, "--until", until, "--filter", "type=image", "--format", "{{json .}}"
    )
    assert result.returncode == 0, result.output
    actions = [json.loads(line)["Action"] for line in result.stdout.splitlines()]
    assert {"import", "tag", "save", "load"} <= set(actions)
