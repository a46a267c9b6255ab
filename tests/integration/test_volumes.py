"""Volumes against a real dockyardd: bind mounts, named and anonymous volumes, tmpfs, `volume` commands and
the `/volumes` endpoints, through the official docker CLI, docker-py and our CLI. After each test: no
container, no mount under the data root, and no volume but those the test left on purpose."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import DaemonProcess, unique, until

pytestmark = pytest.mark.runtimes  # mounts are the runtime's work: each test on the built-in one and runc

INVALID_NAME = (
    '"{0}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are '
    "allowed. If you intended to pass a host directory, use absolute path"
)


def _mounts_under(root: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(root) + "/")]


@pytest.fixture
def clean(daemon: DaemonProcess, docker) -> Iterator[None]:
    before = set(docker("volume", "ls", "-q").stdout.split())
    yield
    leftover = docker("ps", "-aq").stdout.split()
    for cid in leftover:
        docker("rm", "-fv", cid)
    until("no mount under the data root", lambda: not _mounts_under(daemon.data_root), timeout=10)
    for name in set(docker("volume", "ls", "-q").stdout.split()) - before:
        docker("volume", "rm", "-f", name)
    assert not leftover, f"containers left behind: {leftover}"


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    return path


# --- bind mounts ---------------------------------------------------------------------------------------


def test_bind_mount_is_shared_both_ways(docker, clean, host_dir: Path) -> None:
    (host_dir / "index.html").write_text("one\n")
    name = unique("bind")
    run = docker("run", "-d", "--name", name, "-v", f"{host_dir}:/srv", "busybox", "sleep", "60")
    assert run.returncode == 0, run.output
    assert docker("exec", name, "cat", "/srv/index.html").stdout == "one\n"
    (host_dir / "index.html").write_text("two\n")  # edited on the host: seen at once
    assert docker("exec", name, "cat", "/srv/index.html").stdout == "two\n"
    wrote = docker("exec", name, "sh", "-c", "echo from-container > /srv/new.txt")
    assert wrote.returncode == 0, wrote.output
    assert (host_dir / "new.txt").read_text() == "from-container\n"
    mounts = json.loads(docker("inspect", "-f", "{{json .Mounts}}", name).stdout)
    assert mounts == [
        {
            "Type": "bind",
            "Source": str(host_dir),
            "Destination": "/srv",
            "Mode": "",
            "RW": True,
            "Propagation": "rprivate",
        }
    ]
    binds = json.loads(docker("inspect", "-f", "{{json .HostConfig.Binds}}", name).stdout)
    assert binds == [f"{host_dir}:/srv"]
    assert docker("rm", "-f", name).returncode == 0
    assert (host_dir / "new.txt").exists()  # the host's files outlive the container


def test_read_only_bind_is_enforced(docker, clean, host_dir: Path) -> None:
    run = docker("run", "--rm", "-v", f"{host_dir}:/srv:ro", "busybox", "sh", "-c", "echo x > /srv/f")
    assert run.returncode != 0
    assert "Read-only file system" in run.stderr
    assert not (host_dir / "f").exists()
    ok = docker("run", "--rm", "-v", f"{host_dir}:/srv:ro", "busybox", "ls", "/srv")
    assert ok.returncode == 0, ok.output


def test_missing_host_dir_is_created_for_v_but_not_for_mount(docker, clean, tmp_path: Path) -> None:
    missing = tmp_path / "not" / "yet"
    run = docker("run", "--rm", "-v", f"{missing}:/x", "busybox", "sh", "-c", "echo hi > /x/f")
    assert run.returncode == 0, run.output
    assert (missing / "f").read_text() == "hi\n"
    absent = tmp_path / "absent"
    run = docker("run", "--rm", "--mount", f"type=bind,source={absent},target=/x", "busybox", "true")
    assert run.returncode == 125
    assert (
        f'Error response from daemon: invalid mount config for type "bind": bind source path does not exist: '
        f"{absent}" in run.stderr
    )
    assert not absent.exists()


def test_relative_bind_source_is_made_absolute_by_the_cli(
    docker, dockyard, clean, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (host_dir / "f").write_text("rel\n")
    monkeypatch.chdir(host_dir.parent)  # the CLIs run here
    for cli in (docker, dockyard):
        run = cli("run", "--rm", "-v", "./site:/x", "busybox", "cat", "/x/f")
        assert run.returncode == 0, run.output
        assert run.stdout == "rel\n"


# --- named and anonymous volumes -----------------------------------------------------------------------


def test_named_volume_keeps_its_data_across_containers_with_docker_py(docker_client, clean) -> None:
    vol = unique("keep")
    out = docker_client.containers.run(
        "busybox",
        ["sh", "-c", "echo kept > /data/f"],
        volumes={vol: {"bind": "/data", "mode": "rw"}},
        remove=True,
    )
    assert out == b""
    assert vol in [v.name for v in docker_client.volumes.list()]
    out = docker_client.containers.run("busybox", ["cat", "/data/f"], volumes=[f"{vol}:/data"], remove=True)
    assert out == b"kept\n"
    volume = docker_client.volumes.get(vol)
    assert volume.attrs["Driver"] == "local" and volume.attrs["Mountpoint"].endswith(f"/volumes/{vol}/_data")
    volume.remove()
    with pytest.raises(Exception) as e:
        docker_client.volumes.get(vol)
    assert getattr(e.value, "status_code", None) == 404


def test_new_volume_takes_the_image_content_unless_nocopy(docker, clean) -> None:
    vol, empty = unique("etc"), unique("nocopy")
    run = docker("run", "--rm", "-v", f"{vol}:/etc", "busybox", "ls", "/etc")
    assert run.returncode == 0, run.output
    assert "passwd" in run.stdout.split() and "group" in run.stdout.split()
    mountpoint = Path(docker("volume", "inspect", "-f", "{{.Mountpoint}}", vol).stdout.strip())
    assert (mountpoint / "passwd").read_text().startswith("root:")
    assert oct(mountpoint.stat().st_mode & 0o777) == oct(0o755)
    # once the volume holds something, a later container sees the volume's content, not the image's
    (mountpoint / "passwd").write_text("mine\n")
    again = docker("run", "--rm", "-v", f"{vol}:/etc", "busybox", "cat", "/etc/passwd")
    assert again.stdout == "mine\n", again.output
    run = docker(
        "run", "--rm", "--mount", f"source={empty},target=/etc,volume-nocopy", "busybox", "ls", "-A", "/etc"
    )
    assert run.returncode == 0, run.output
    assert [f for f in run.stdout.split() if f not in ("hostname", "hosts", "resolv.conf")] == []


def test_anonymous_volumes_go_with_rm_v_only(docker, clean, daemon: DaemonProcess) -> None:
    kept, removed = unique("anon-kept"), unique("anon-gone")
    for name in (kept, removed):
        assert (
            docker("run", "--name", name, "-v", "/data", "busybox", "sh", "-c", "echo x > /data/f").returncode
            == 0
        )
    names = {}
    for name in (kept, removed):
        mounts = json.loads(docker("inspect", "-f", "{{json .Mounts}}", name).stdout)
        assert len(mounts) == 1 and mounts[0]["Type"] == "volume" and mounts[0]["Destination"] == "/data"
        assert mounts[0]["Mode"] == "" and mounts[0]["Driver"] == "local" and len(mounts[0]["Name"]) == 64
        names[name] = mounts[0]["Name"]
    labels = json.loads(docker("volume", "inspect", "-f", "{{json .Labels}}", names[kept]).stdout)
    assert labels == {"com.docker.volume.anonymous": ""}
    assert docker("rm", kept).returncode == 0
    assert docker("rm", "-v", removed).returncode == 0
    volumes = docker("volume", "ls", "-q").stdout.split()
    assert names[kept] in volumes and names[removed] not in volumes
    assert not (daemon.data_root / "volumes" / names[removed]).exists()
    assert docker("volume", "rm", names[kept]).stdout.strip() == names[kept]


def test_run_rm_removes_its_anonymous_volumes_not_named_ones(docker, clean) -> None:
    vol = unique("named")
    before = set(docker("volume", "ls", "-q").stdout.split())
    run = docker("run", "--rm", "-v", "/anon", "-v", f"{vol}:/named", "busybox", "true")
    assert run.returncode == 0, run.output
    assert set(docker("volume", "ls", "-q").stdout.split()) - before == {vol}


def test_volume_in_use_cannot_be_removed(docker, docker_client, clean) -> None:
    vol, name = unique("busy"), unique("user")
    assert docker("create", "--name", name, "-v", f"{vol}:/data", "busybox", "true").returncode == 0
    cid = docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
    for args in (("volume", "rm", vol), ("volume", "rm", "-f", vol)):
        rm = docker(*args)
        assert rm.returncode == 1
        assert rm.stderr.strip() == f"Error response from daemon: remove {vol}: volume is in use - [{cid}]"
    with pytest.raises(Exception) as e:
        docker_client.volumes.get(vol).remove()
    assert getattr(e.value, "status_code", None) == 409
    ps = docker("ps", "-a", "--filter", f"volume={vol}", "--format", "{{.Names}} {{.Mounts}}")
    assert ps.stdout.split() == [name, vol]
    assert docker("ps", "-a", "--filter", "volume=/data", "-q").stdout.split() == [cid[:12]]
    assert docker("ps", "-a", "--filter", "volume=other", "-q").stdout.split() == []
    assert docker("rm", name).returncode == 0
    assert docker("volume", "rm", vol).returncode == 0


def test_tmpfs_mounts(docker, clean) -> None:
    run = docker(
        "run", "--rm", "--tmpfs", "/scratch:size=1m", "--mount", "type=tmpfs,target=/t,tmpfs-size=2m",
        "busybox", "grep", "tmpfs", "/proc/mounts",
    )  # fmt: skip
    assert run.returncode == 0, run.output
    lines = {line.split()[1]: line for line in run.stdout.splitlines()}
    assert "/scratch" in lines and "size=1024k" in lines["/scratch"]
    assert "/t" in lines and "size=2048k" in lines["/t"]


def test_volume_with_tmpfs_options(docker, clean, daemon: DaemonProcess) -> None:
    vol = unique("tv")
    create = docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=10m", vol)
    assert create.returncode == 0, create.output
    run = docker("run", "--rm", "-v", f"{vol}:/x", "busybox", "df", "/x")
    assert run.returncode == 0, run.output
    assert "tmpfs" in run.stdout and "10240" in run.stdout
    until("the volume's tmpfs unmounted", lambda: not _mounts_under(daemon.data_root / "volumes"), timeout=10)


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["-v", "a:b:c:d"], "Error response from daemon: invalid volume specification: 'a:b:c:d'"),
        (["-v", ":/x"], "invalid spec: :/x: empty section between colons"),
        (["-v", "/x:ro"], "Error response from daemon: invalid volume specification: '/x:ro'"),
        (["-v", "/tmp:/x:rw,ro"], "Error response from daemon: invalid mode: rw,ro"),
        (
            ["-v", "/tmp:x"],
            "Error response from daemon: invalid volume specification: '/tmp:x': invalid mount config for "
            "type \"bind\": invalid mount path: 'x' mount path must be absolute",
        ),
        (["-v", "site/x:/x"], "Error response from daemon: create site/x: " + INVALID_NAME.format("site/x")),
        (
            ["--mount", "type=volume,source=v,target=/x,foo=bar"],
            'invalid argument "type=volume,source=v,target=/x,foo=bar" for "--mount" flag: '
            "unexpected key 'foo' in 'foo=bar'",
        ),
        (["--mount", "source=v"], 'invalid argument "source=v" for "--mount" flag: target is required'),
        (
            ["--mount", "type=bind,target=/x"],
            'Error response from daemon: invalid mount config for type "bind": '
            "field Source must not be empty",
        ),
        (
            ["--mount", "type=foo,target=/x"],
            'Error response from daemon: invalid mount config for type "foo": mount type unknown',
        ),
    ],
)
def test_bad_mounts_are_refused_with_dockers_messages(docker, dockyard, clean, args, message) -> None:
    before = set(docker("volume", "ls", "-q").stdout.split())
    for cli in (docker, dockyard):
        run = cli("run", "--rm", *args, "busybox", "true")
        assert run.returncode == 125, run.output
        assert message in run.stderr, run.stderr
    assert set(docker("volume", "ls", "-q").stdout.split()) == before
    assert docker("ps", "-aq").stdout == ""


# --- volume commands and events ------------------------------------------------------------------------


def test_volume_commands_with_docker(docker, clean) -> None:
    vol = unique("cmd")
    assert docker("volume", "create", "--label", "tier=db", vol).stdout.strip() == vol
    assert docker("volume", "create", vol).stdout.strip() == vol  # a second create is no error
    bad = docker("volume", "create", "x/y")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "Error response from daemon: create x/y: " + INVALID_NAME.format("x/y")
    ls = docker("volume", "ls", "--filter", f"name={vol}")
    assert ls.stdout.splitlines() == ["DRIVER    VOLUME NAME", f"local     {vol}"]
    assert docker("volume", "ls", "-q", "--filter", "label=tier=db").stdout.split() == [vol]
    assert docker("volume", "ls", "-q", "--filter", "label=tier=web").stdout.split() == []
    assert vol in docker("volume", "ls", "-q", "--filter", "dangling=true").stdout.split()
    shown = docker("volume", "ls", "--filter", f"name={vol}", "--format", "{{.Name}} {{.Driver}} {{.Labels}}")
    assert shown.stdout.strip() == f"{vol} local tier=db"
    [info] = json.loads(docker("volume", "inspect", vol).stdout)
    assert set(info) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert info["Labels"] == {"tier": "db"} and info["Options"] is None and info["Scope"] == "local"
    missing = docker("volume", "inspect", "nope-" + vol)
    assert missing.returncode == 1 and missing.stdout.strip() == "[]"
    assert f"get nope-{vol}: no such volume" in missing.stderr
    rm = docker("volume", "rm", vol, "nope-" + vol)
    assert rm.returncode == 1 and rm.stdout.split() == [vol]
    assert f"Error response from daemon: get nope-{vol}: no such volume" in rm.stderr


def test_volume_prune(docker, clean) -> None:
    used, unused, name = unique("used"), unique("unused"), unique("c")
    for vol in (used, unused):
        assert docker("volume", "create", vol).returncode == 0
    assert docker("create", "--name", name, "-v", f"{used}:/d", "busybox", "true").returncode == 0
    mountpoint = Path(docker("volume", "inspect", "-f", "{{.Mountpoint}}", unused).stdout.strip())
    (mountpoint / "f").write_bytes(b"x" * 2048)
    prune = docker("volume", "prune", "-f", "--filter", f"label!=keep-{name}")
    assert prune.returncode == 0, prune.output
    lines = prune.stdout.splitlines()
    assert lines[0] == "Deleted Volumes:" and unused in lines and used not in lines
    assert lines[-1].startswith("Total reclaimed space: ") and lines[-1] != "Total reclaimed space: 0B"
    assert used in docker("volume", "ls", "-q").stdout.split()
    assert docker("rm", name).returncode == 0


def test_volume_events(docker_client, docker, clean) -> None:
    vol = unique("ev")
    since = time.time() - 1
    assert docker("run", "--rm", "-v", f"{vol}:/d", "busybox", "true").returncode == 0
    assert docker("volume", "rm", vol).returncode == 0
    events = docker_client.events(
        since=since, until=time.time() + 1, decode=True, filters={"type": "volume", "volume": vol}
    )
    seen = [(e["Action"], e["Actor"]["ID"]) for e in events if e["Actor"]["ID"] == vol]
    assert seen == [("create", vol), ("mount", vol), ("unmount", vol), ("destroy", vol)]


def test_volume_api_with_docker_py(docker_client, clean) -> None:
    vol = unique("py")
    created = docker_client.volumes.create(name=vol, labels={"a": "b"})
    assert created.name == vol and created.attrs["Labels"] == {"a": "b"}
    assert vol in [v.name for v in docker_client.volumes.list(filters={"label": "a=b"})]
    result = docker_client.volumes.prune(filters={"label": "a=b"})
    assert vol in (result["VolumesDeleted"] or [])


def test_volume_commands_with_dockyard(dockyard, clean) -> None:
    vol = unique("ours")
    assert (
        dockyard("volume", "create", "--name", vol, "-o", "type=tmpfs", "-o", "device=tmpfs").stdout.strip()
        == vol
    )
    ls = dockyard("volume", "ls", "-f", f"name={vol}")
    assert ls.stdout.splitlines() == ["DRIVER    VOLUME NAME", f"local     {vol}"]
    [info] = json.loads(dockyard("volume", "inspect", vol).stdout)
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs"}
    both = dockyard("volume", "create", "--name", vol, "other")
    assert both.returncode == 1 and "conflicting options" in both.stderr
    assert dockyard("volume", "rm", vol).stdout.strip() == vol
    missing = dockyard("volume", "rm", vol)
    assert missing.returncode == 1 and f"get {vol}: no such volume" in missing.stderr
    prune = dockyard("volume", "prune", "-f")
    assert prune.returncode == 0 and "Total reclaimed space:" in prune.stdout


def test_image_volume_gets_an_anonymous_volume(docker, clean, daemon: DaemonProcess, tmp_path: Path) -> None:
    """An image's VOLUME: an anonymous volume, filled from the image, removed with `run --rm`."""
    import gzip

    import testimages

    image = unique("withvol")
    exported = tmp_path / "rootfs.tar"
    exported.write_bytes(gzip.decompress(testimages.base_layer().gz))  # busybox's files
    imported = docker("import", "--change", "VOLUME /etc", "--change", 'CMD ["sh"]', str(exported), image)
    assert imported.returncode == 0, imported.output
    try:
        before = set(docker("volume", "ls", "-q").stdout.split())
        name = unique("iv")
        run = docker("run", "--name", name, image, "cat", "/etc/passwd")
        assert run.returncode == 0 and run.stdout.startswith("root:"), run.output
        [mount] = json.loads(docker("inspect", "-f", "{{json .Mounts}}", name).stdout)
        assert mount["Destination"] == "/etc" and mount["Type"] == "volume" and mount["Mode"] == ""
        assert set(docker("volume", "ls", "-q").stdout.split()) - before == {mount["Name"]}
        assert docker("rm", "-v", name).returncode == 0
        assert set(docker("volume", "ls", "-q").stdout.split()) == before
    finally:
        docker("rmi", image)


def test_nothing_mounted_is_left_after_rm(docker, clean, daemon: DaemonProcess, host_dir: Path) -> None:
    name = unique("all")
    run = docker(
        "run", "-d", "--name", name, "-v", f"{host_dir}:/h", "-v", "/anon", "--tmpfs", "/t", "busybox",
        "sleep", "60",
    )  # fmt: skip
    assert run.returncode == 0, run.output
    assert docker("rm", "-fv", name).returncode == 0
    assert _mounts_under(daemon.data_root) == []
    assert os.listdir(host_dir) == []
