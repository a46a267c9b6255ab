"""A container's filesystem from outside against a real dockyardd: `diff`, `commit`, `cp` and `export`
through the official docker CLI, ours and docker-py."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time

import pytest
from harness import unique

TIMEOUT = 60.0


@pytest.fixture(autouse=True)
def busybox(docker):
    """busybox present, whichever test runs first."""
    if docker("image", "inspect", "busybox", timeout=TIMEOUT).returncode != 0:
        pulled = docker("pull", "busybox", timeout=TIMEOUT)
        assert pulled.returncode == 0, pulled.output


@pytest.fixture
def images(docker):
    """Images a test makes: removed after it."""
    made: list[str] = []
    yield made
    if made:
        docker("rmi", "-f", *made, timeout=TIMEOUT)


def _run(docker, names, *args: str, detach: bool = False) -> str:
    name = unique("fs")
    names.append(name)
    result = docker("run", *(["-d"] if detach else []), "--name", name, *args, timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    return name


# --- diff ----------------------------------------------------------------------------------------------


def test_docker_diff_lists_added_changed_deleted(docker, dockyard, names):
    name = _run(
        docker,
        names,
        "busybox",
        "sh",
        "-c",
        "mkdir /new && echo x > /new/f && echo y >> /etc/passwd && rm /bin/ls",
    )
    result = docker("diff", name, timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    # as dockerd 20.10 lists them (sorted: its own order varies between calls)
    assert result.stdout.splitlines() == [
        "C /bin",
        "D /bin/ls",
        "C /etc",
        "C /etc/passwd",
        "A /new",
        "A /new/f",
    ]
    # the runtime's own mount points (Docker's init layer) are not changes
    assert "/dev" not in result.stdout and "/etc/hosts" not in result.stdout
    ours = dockyard("diff", name, timeout=TIMEOUT)
    assert ours.returncode == 0, ours.output
    assert ours.stdout == result.stdout


def test_diff_deleted_tree_and_volume_mount_point(docker, names):
    name = _run(
        docker, names, "busybox", "sh", "-c", "touch /tmp/x; mkdir -p /a/b/c; echo > /a/b/c/f; rm -r /tmp"
    )
    result = docker("diff", name, timeout=TIMEOUT)
    assert result.stdout.splitlines() == ["A /a", "A /a/b", "A /a/b/c", "A /a/b/c/f", "D /tmp"], result.output
    name = _run(docker, names, "-v", "/data", "busybox", "sh", "-c", "echo > /data/x; echo hi > /etc/newfile")
    result = docker("diff", name, timeout=TIMEOUT)
    # the volume's content is not the container's; its mount point is
    assert result.stdout.splitlines() == ["A /data", "C /etc", "A /etc/newfile"], result.output
    name = _run(docker, names, "busybox", "rm", "/etc/group")
    assert docker("diff", name, timeout=TIMEOUT).stdout.splitlines() == ["C /etc", "D /etc/group"]
    # every directory holding a change is one, however deep, even if its mtime did not change
    name = _run(docker, names, "busybox", "sh", "-c", "mkdir -p /u/s && echo x > /u/s/x")
    committed = unique("fs-deep")
    assert docker("commit", name, committed, timeout=TIMEOUT).returncode == 0
    try:
        name = _run(docker, names, committed, "sh", "-c", "rm /u/s/x; echo >> /etc/passwd")
        result = docker("diff", name, timeout=TIMEOUT)
        assert result.stdout.splitlines() == ["C /etc", "C /etc/passwd", "C /u", "C /u/s", "D /u/s/x"]
    finally:
        docker("rm", "-f", name, timeout=TIMEOUT)
        docker("rmi", committed, timeout=TIMEOUT)


def test_diff_of_unchanged_container_is_empty(docker, dockyard, names, docker_client):
    name = _run(docker, names, "busybox", "true")
    result = docker("diff", name, timeout=TIMEOUT)
    assert result.returncode == 0 and result.stdout == "", result.output
    assert docker_client.containers.get(name).diff() is None  # dockerd's `null`


def test_diff_of_missing_container(docker, dockyard):
    result = docker("diff", "nosuch-fs-container", timeout=TIMEOUT)
    assert result.returncode == 1
    assert "No such container: nosuch-fs-container" in result.stderr
    ours = dockyard("diff", "nosuch-fs-container", timeout=TIMEOUT)
    assert ours.returncode == 1
    assert ours.stderr == "Error response from daemon: No such container: nosuch-fs-container\n"


# --- commit --------------------------------------------------------------------------------------------


def test_docker_commit_makes_an_image_of_the_changes(docker, names, images):
    name = _run(docker, names, "-e", "A=1", "busybox", "sh", "-c", "echo committed > /hello")
    repo = unique("committed")
    images.append(f"{repo}:v1")
    result = docker(
        "commit",
        "-m",
        "a message",
        "-a",
        "me <me@x>",
        "-c",
        "CMD cat /hello",
        "-c",
        "ENV B=2",
        name,
        f"{repo}:v1",
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.output
    image_id = result.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    run = docker("run", "--rm", f"{repo}:v1", timeout=TIMEOUT)
    assert run.returncode == 0, run.output
    assert run.stdout == "committed\n"
    info = json.loads(docker("image", "inspect", f"{repo}:v1", timeout=TIMEOUT).stdout)[0]
    assert info["Id"] == image_id
    assert info["Comment"] == "a message"
    assert info["Author"] == "me <me@x>"
    assert info["Config"]["Cmd"] == ["/bin/sh", "-c", "cat /hello"]
    assert "A=1" in info["Config"]["Env"] and "B=2" in info["Config"]["Env"]
    base = json.loads(docker("image", "inspect", "busybox", timeout=TIMEOUT).stdout)[0]
    assert info["Parent"] == base["Id"]
    container = json.loads(docker("inspect", name, timeout=TIMEOUT).stdout)[0]
    assert info["Container"] == container["Id"]
    assert info["ContainerConfig"]["Cmd"] == ["sh", "-c", "echo committed > /hello"]
    assert len(info["RootFS"]["Layers"]) == len(base["RootFS"]["Layers"]) + 1
    history = docker(
        "history", "--no-trunc", "--format", "{{.Comment}}|{{.CreatedBy}}", f"{repo}:v1", timeout=TIMEOUT
    )
    assert history.stdout.splitlines()[0] == "a message|sh -c echo committed > /hello"


def test_commit_of_running_container_pauses_it(docker, dockyard, names, images):
    name = _run(docker, names, "busybox", "sh", "-c", "echo run > /r; sleep 300", detach=True)
    since = str(int(time.time()) - 1)
    ours = dockyard("commit", name, timeout=TIMEOUT)
    assert ours.returncode == 0, ours.output
    image_id = ours.stdout.strip()
    images.append(image_id)
    assert image_id.startswith("sha256:")
    state = json.loads(docker("inspect", name, timeout=TIMEOUT).stdout)[0]["State"]
    assert state["Status"] == "running"
    run = docker("run", "--rm", image_id, "cat", "/r", timeout=TIMEOUT)
    assert run.stdout == "run\n", run.output
    until = str(int(time.time()) + 1)
    events = docker(
        "events",
        "--since",
        since,
        "--until",
        until,
        "--filter",
        f"container={name}",
        "--filter",
        "type=container",
        "--format",
        "{{.Action}}",
        timeout=TIMEOUT,
    )
    assert events.stdout.split()[-3:] == ["pause", "unpause", "commit"], events.output
    unpaused = dockyard("commit", "--pause=false", name, timeout=TIMEOUT)
    assert unpaused.returncode == 0, unpaused.output
    images.append(unpaused.stdout.strip())
    # the same changes make the same layer
    layers = [
        json.loads(docker("image", "inspect", i, timeout=TIMEOUT).stdout)[0]["RootFS"]["Layers"]
        for i in images
    ]
    assert layers[0] == layers[1]


def test_commit_empty_and_bad_change(docker, names, images, docker_client):
    name = _run(docker, names, "busybox", "true")
    bad = docker("commit", "-c", "RUN echo", name, timeout=TIMEOUT)
    assert bad.returncode == 1
    assert "run is not a valid change command" in bad.stderr
    image = docker_client.containers.get(name).commit(repository=unique("py-commit"), tag="t", message="py")
    images.append(image.id)
    base = docker_client.images.get("busybox")
    assert image.attrs["RootFS"]["Layers"] == base.attrs["RootFS"]["Layers"]
    assert image.history()[0]["Comment"] == "py"
    # as dockerd: a tag without a repository is ignored; no container is a bad request
    untagged = docker_client.api.commit(name, tag="ignored")["Id"]
    images.append(untagged)
    assert docker_client.images.get(untagged).tags == []
    response = docker_client.api._post(docker_client.api._url("/commit"))
    assert response.status_code == 400
    assert response.json() == {"message": 'invalid name or ID supplied: ""'}


# --- cp ------------------------------------------------------------------------------------------------


def test_docker_cp_both_ways(docker, names, tmp_path):
    name = _run(
        docker, names, "busybox", "sh", "-c", "mkdir -p /d/sub && echo inner > /d/sub/f && echo top > /t"
    )
    out = docker("cp", f"{name}:/t", str(tmp_path / "t"), timeout=TIMEOUT)
    assert out.returncode == 0, out.output
    assert (tmp_path / "t").read_text() == "top\n"
    out = docker("cp", f"{name}:/d", str(tmp_path), timeout=TIMEOUT)
    assert out.returncode == 0, out.output
    assert (tmp_path / "d" / "sub" / "f").read_text() == "inner\n"
    out = docker("cp", f"{name}:/d/.", str(tmp_path / "contents"), timeout=TIMEOUT)
    assert out.returncode == 0, out.output
    assert (tmp_path / "contents" / "sub" / "f").read_text() == "inner\n"
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "a").write_text("A")
    (tmp_path / "file").write_text("F")
    os.chmod(tmp_path / "file", 0o741)
    # into the stopped container: a directory into a directory, a file under a new name
    assert docker("cp", str(tmp_path / "up"), f"{name}:/d", timeout=TIMEOUT).returncode == 0
    assert docker("cp", str(tmp_path / "file"), f"{name}:/renamed", timeout=TIMEOUT).returncode == 0
    back = docker("container", "cp", f"{name}:/renamed", str(tmp_path / "again"), timeout=TIMEOUT)
    assert back.returncode == 0, back.output
    assert (tmp_path / "again").read_text() == "F"
    assert os.stat(tmp_path / "again").st_mode & 0o777 == 0o741
    started = docker("start", "-a", name, timeout=TIMEOUT)  # the copies are in its filesystem when it runs
    assert started.returncode == 0, started.output
    seen = docker("cp", f"{name}:/d/up/a", str(tmp_path / "a"), timeout=TIMEOUT)
    assert seen.returncode == 0, seen.output
    assert (tmp_path / "a").read_text() == "A"


def test_cp_into_running_container_and_errors(docker, dockyard, names, tmp_path):
    name = _run(docker, names, "-v", f"{tmp_path}:/ro:ro", "busybox", "sleep", "300", detach=True)
    src = tmp_path / "x"
    src.write_text("X")
    ok = docker("cp", str(src), f"{name}:/tmp/", timeout=TIMEOUT)
    assert ok.returncode == 0, ok.output
    seen = docker("exec", name, "cat", "/tmp/x", timeout=TIMEOUT)
    assert seen.stdout == "X", seen.output
    missing = docker("cp", f"{name}:/nope", str(tmp_path / "n"), timeout=TIMEOUT)
    assert missing.returncode == 1
    assert f"Could not find the file /nope in container {name}" in missing.stderr
    ro = docker("cp", str(src), f"{name}:/ro/y", timeout=TIMEOUT)
    assert ro.returncode == 1
    assert ro.stderr == "Error response from daemon: mounted volume is marked read-only\n"
    assert not (tmp_path / "y").exists()
    no_parent = docker("cp", str(src), f"{name}:/no/such/dir", timeout=TIMEOUT)
    assert no_parent.returncode == 1, no_parent.output
    assert f"Could not find the file /no/such in container {name}" in no_parent.stderr
    not_dir = docker("cp", str(src), f"{name}:/bin/sh/zz", timeout=TIMEOUT)
    assert not_dir.returncode == 1
    assert "extraction point is not a directory" in not_dir.stderr
    # a read under the bind mount reads the host's file
    from_mount = dockyard("cp", f"{name}:/ro/x", str(tmp_path / "via-mount"), timeout=TIMEOUT)
    assert from_mount.returncode == 0, from_mount.output
    assert (tmp_path / "via-mount").read_text() == "X"
    ours = dockyard("cp", str(src), f"{name}:/ro/z", timeout=TIMEOUT)
    assert ours.returncode == 1
    assert ours.stderr == "Error response from daemon: mounted volume is marked read-only\n"


def test_dockyard_cp_stdin_stdout_and_follow(daemon, docker, dockyard, names, tmp_path):
    from harness import DOCKYARD

    name = _run(docker, names, "busybox", "sh", "-c", "echo target > /real && ln -s /real /link")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"from stdin\n"
        info = tarfile.TarInfo("piped")
        info.size = len(data)
        info.uid = info.gid = 1234
        tar.addfile(info, io.BytesIO(data))
    cli = [DOCKYARD, "-H", daemon.host, "cp"]
    put = subprocess.run(
        [*cli, "-", f"{name}:/tmp"], input=buf.getvalue(), capture_output=True, timeout=TIMEOUT
    )
    assert put.returncode == 0, put.stderr
    got = subprocess.run([*cli, f"{name}:/tmp/piped", "-"], capture_output=True, timeout=TIMEOUT)
    assert got.returncode == 0, got.stderr
    with tarfile.open(fileobj=io.BytesIO(got.stdout)) as tar:
        member = tar.getmember("piped")
        assert (member.uid, member.gid) == (1234, 1234)  # the archive's owners kept
        assert tar.extractfile(member).read() == b"from stdin\n"
    link = dockyard("cp", f"{name}:/link", str(tmp_path / "nofollow"), timeout=TIMEOUT)
    assert link.returncode == 0, link.output
    assert os.readlink(tmp_path / "nofollow") == "/real"
    followed = dockyard("cp", "-L", f"{name}:/link", str(tmp_path / "followed"), timeout=TIMEOUT)
    assert followed.returncode == 0, followed.output
    assert (tmp_path / "followed").read_text() == "target\n"
    # -a: the container's user owns what is copied in (nobody in busybox)
    owned = _run(docker, names, "-u", "nobody", "busybox", "true")
    (tmp_path / "mine").write_text("m")
    assert dockyard("cp", "-a", str(tmp_path / "mine"), f"{owned}:/tmp/", timeout=TIMEOUT).returncode == 0
    stream = subprocess.run([*cli, f"{owned}:/tmp/mine", "-"], capture_output=True, timeout=TIMEOUT).stdout
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        assert tar.getmember("mine").uid == 65534


def test_cp_does_not_escape_through_symlinks(docker, names, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    name = _run(docker, names, "busybox", "sh", "-c", f"ln -s {outside} /esc && ln -s ../../../.. /up")
    (tmp_path / "f").write_text("F")
    # /esc points at a path that exists on the host, not in the container
    escaped = docker("cp", str(tmp_path / "f"), f"{name}:/esc/f", timeout=TIMEOUT)
    assert escaped.returncode == 1, escaped.output
    assert list(outside.iterdir()) == []
    # ../../../.. stops at the container's root
    climbed = docker("cp", str(tmp_path / "f"), f"{name}:/up/f2", timeout=TIMEOUT)
    assert climbed.returncode == 0, climbed.output
    assert not os.path.exists("/f2")
    inside = docker("cp", f"{name}:/f2", str(tmp_path / "back"), timeout=TIMEOUT)
    assert inside.returncode == 0, inside.output
    assert (tmp_path / "back").read_text() == "F"


def test_docker_py_put_and_get_archive(docker, names, docker_client):
    name = _run(docker, names, "busybox", "true")
    container = docker_client.containers.get(name)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("py.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"py"))
    assert container.put_archive("/", buf.getvalue()) is True
    stream, stat = container.get_archive("/py.txt")
    assert stat["name"] == "py.txt" and stat["size"] == 2
    assert stat["mode"] == 0o644
    data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.extractfile("py.txt").read() == b"py"
    dir_stat = docker_client.api.get_archive(name, "/etc")[1]
    assert dir_stat["mode"] & (1 << 31)


# --- export --------------------------------------------------------------------------------------------


def test_export_is_the_merged_rootfs(docker, dockyard, names, tmp_path):
    name = _run(docker, names, "busybox", "sh", "-c", "echo e > /exported && rm /bin/ls")
    out = tmp_path / "docker.tar"
    result = docker("export", "-o", str(out), name, timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    with tarfile.open(out) as tar:
        names_in = set(tar.getnames())
        assert tar.extractfile("exported").read() == b"e\n"
    assert "bin/busybox" in names_in and "bin/ls" not in names_in and "etc/passwd" in names_in
    ours = tmp_path / "ours.tar"
    result = dockyard("export", "-o", str(ours), name, timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    with tarfile.open(ours) as tar:
        assert set(tar.getnames()) == names_in
    imported = docker("import", str(ours), timeout=TIMEOUT)
    assert imported.returncode == 0, imported.output
    image_id = imported.stdout.strip()
    try:
        run = docker("run", "--rm", image_id, "cat", "/exported", timeout=TIMEOUT)
        assert run.stdout == "e\n", run.output
    finally:
        docker("rmi", image_id, timeout=TIMEOUT)


def test_archive_names_and_stats_as_dockerd(docker, names, docker_client):
    """What dockerd 20.10 answers, observed side by side: entry names, trailing `/` and `/.`, links."""
    import docker as docker_sdk

    name = _run(
        docker,
        names,
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/s && echo a > /d/s/f && ln -s /d /dl && ln /d/s/f /d/hard",
    )
    api = docker_client.api

    def entries(path: str) -> tuple[list[str], dict]:
        stream, stat = api.get_archive(name, path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return [(m.name, m.type) for m in tar.getmembers()], stat

    got, stat = entries("/d")
    assert got == [
        ("d", tarfile.DIRTYPE),
        ("d/hard", tarfile.REGTYPE),
        ("d/s", tarfile.DIRTYPE),
        ("d/s/f", tarfile.LNKTYPE),
    ]
    assert stat["name"] == "d" and stat["mode"] == (1 << 31) | 0o755 and stat["linkTarget"] == ""
    assert [n for n, _ in entries("/d/.")[0]] == [".", "./hard", "./s", "./s/f"]
    got, stat = entries("/dl")
    assert got == [("dl", tarfile.SYMTYPE)]
    assert stat["mode"] == (1 << 27) | 0o777 and stat["linkTarget"] == "/d"
    got, stat = entries("/dl/")  # a trailing slash follows the link
    assert [n for n, _ in got] == ["dl", "dl/hard", "dl/s", "dl/s/f"]
    assert stat["name"] == "dl" and stat["mode"] & (1 << 31)
    with pytest.raises(docker_sdk.errors.APIError) as err:
        api.put_archive(name, "/d/hard", b"")
    assert err.value.status_code == 500 and "extraction point is not a directory" in str(err.value)
    with pytest.raises(docker_sdk.errors.NotFound) as err:
        api.get_archive(name, "/d/nope")
    assert f"Could not find the file /d/nope in container {name}" in str(err.value)
