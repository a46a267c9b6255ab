"""Volumes: names, the local driver's options, the service's rules (create, list filters, remove, prune),
container mount records, and the CLI's readings of -v and --mount."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dockyard.cli.commands.mount_options import parse_mount, parse_volume
from dockyard.engine.events import EventBus
from dockyard.runtime.spec import parse_bind
from dockyard.runtime.spec import parse_mount as spec_parse_mount
from dockyard.volumes import ANONYMOUS_LABEL, VolumeError, VolumeService, validate_name
from dockyard.volumes import mounts as volume_mounts
from dockyard.volumes.local import check_options

INVALID = (
    '"{0}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are '
    "allowed. If you intended to pass a host directory, use absolute path"
)


# --- names and options ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "my-vol", "a.b_c-1", "0x", "A" * 200])
def test_valid_names(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize("name", ["a", "x/y", "site/x", "-ab", ".ab", "_ab", "a b", "a:b", ""])
def test_invalid_names_are_refused_with_dockerds_message(name: str) -> None:
    with pytest.raises(VolumeError) as e:
        validate_name(name)
    assert str(e.value) == f"create {name}: " + INVALID.format(name)
    assert e.value.status == 400


@pytest.mark.parametrize(
    "options, message",
    [
        ({"foo": "bar"}, 'create v: invalid option: "foo"'),
        ({"device": "/tmp"}, 'create v: missing required option: "type"'),
        ({"type": "none"}, 'create v: missing required option: "device"'),
        ({"o": "bind"}, 'create v: missing required option: "device"'),
    ],
)
def test_local_driver_options(options: dict[str, str], message: str) -> None:
    with pytest.raises(VolumeError, match="^" + message.replace('"', '"') + "$"):
        check_options("v", options)
    check_options("v", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})


# --- the service ------------------------------------------------------------------------------------


@pytest.fixture
def service(tmp_path: Path) -> VolumeService:
    return VolumeService(tmp_path / "volumes", EventBus())


def _actions(service: VolumeService) -> list[tuple[str, str]]:
    return [(e.action, e.actor_id) for e in service.events.history(0)]


def test_create_is_idempotent_and_lays_out_dockerds_directories(
    service: VolumeService, tmp_path: Path
) -> None:
    v, created = service.create("data", labels={"a": "b"})
    assert created
    assert v.mountpoint == str(tmp_path / "volumes" / "data" / "_data")
    assert Path(v.mountpoint).is_dir()
    again, created = service.create("data", labels={"other": "x"})
    assert not created and again is v and again.labels == {"a": "b"}  # dockerd keeps the first
    body = service.inspect("data")
    assert set(body) == {"CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"}
    assert body["Labels"] == {"a": "b"} and body["Options"] is None and body["Scope"] == "local"
    assert body["CreatedAt"].endswith("Z") and len(body["CreatedAt"]) == 20
    assert _actions(service) == [("create", "data")]
    record = json.loads((tmp_path / "volumes" / "data" / "volume.json").read_text())
    assert record["name"] == "data" and record["anonymous"] is False


def test_records_survive_a_new_service(service: VolumeService, tmp_path: Path) -> None:
    service.create("keep", options={"type": "tmpfs", "device": "tmpfs"})
    anon, _ = service.create(anonymous=True)
    again = VolumeService(tmp_path / "volumes", EventBus())
    assert {v.name for v in again.list()} == {"keep", anon.name}
    assert again.get("keep").options == {"type": "tmpfs", "device": "tmpfs"}
    assert again.get(anon.name).anonymous


def test_anonymous_volumes_get_a_random_name_and_dockerds_label(service: VolumeService) -> None:
    v, _ = service.create(anonymous=True)
    assert len(v.name) == 64 and int(v.name, 16) >= 0
    assert v.labels == {ANONYMOUS_LABEL: ""}


def test_unknown_driver(service: VolumeService) -> None:
    with pytest.raises(VolumeError) as e:
        service.create("zz", driver="nodriver")
    assert str(e.value) == 'create zz: error looking up volume plugin nodriver: plugin "nodriver" not found'
    assert e.value.status == 404


def test_get_and_remove_missing(service: VolumeService) -> None:
    with pytest.raises(VolumeError, match="^get nope: no such volume$") as e:
        service.get("nope")
    assert e.value.status == 404
    with pytest.raises(VolumeError, match="^get nope: no such volume$"):
        service.remove("nope")
    assert service.remove("nope", force=True) == 0


def test_a_volume_in_use_cannot_be_removed_even_by_force(service: VolumeService) -> None:
    service.create("busy")
    service.users = lambda name: [("c1" * 32, False)] if name == "busy" else []
    for force in (False, True):
        with pytest.raises(VolumeError) as e:
            service.remove("busy", force=force)
        assert str(e.value) == f"remove busy: volume is in use - [{'c1' * 32}]"
        assert e.value.status == 409
    assert Path(service.get("busy").mountpoint).is_dir()


def test_list_filters(service: VolumeService) -> None:
    service.create("alpha", labels={"tier": "db"})
    service.create("beta", labels={"tier": "web", "x": ""})
    service.create("gamma")
    service.users = lambda name: [("c", True)] if name == "beta" else []
    names = lambda **f: [v.name for v in service.list({k: v for k, v in f.items()})]  # noqa: E731
    assert names() == ["alpha", "beta", "gamma"]
    assert names(name=["ph"]) == ["alpha"]
    assert names(label=["tier"]) == ["alpha", "beta"]
    assert names(label=["tier=web"]) == ["beta"]
    assert names(dangling=["true"]) == ["alpha", "gamma"]
    assert names(dangling=["0"]) == ["beta"]
    assert names(driver=["local"]) == ["alpha", "beta", "gamma"]
    assert names(driver=["other"]) == []
    with pytest.raises(VolumeError, match=r"^Invalid filter 'dangling=\[maybe\]'$"):
        service.list({"dangling": ["maybe"]})
    with pytest.raises(VolumeError, match="^Invalid filter 'bogus'$"):
        service.list({"bogus": ["1"]})


def test_prune_takes_unused_anonymous_volumes_unless_all(service: VolumeService) -> None:
    anon, _ = service.create(anonymous=True)
    used, _ = service.create(anonymous=True)
    service.create("named")
    Path(anon.mountpoint, "f").write_bytes(b"x" * 100)
    service.users = lambda name: [("c", False)] if name == used.name else []
    result = service.prune()
    assert result == {"VolumesDeleted": [anon.name], "SpaceReclaimed": 100}
    assert not Path(anon.mountpoint).parent.exists()
    result = service.prune({"all": ["true"]})
    assert result["VolumesDeleted"] == ["named"]
    assert {v.name for v in service.list()} == {used.name}
    assert ("prune", "") in _actions(service) and ("destroy", "named") in _actions(service)


def test_prune_label_filters(service: VolumeService) -> None:
    service.create("keep", labels={"keep": "1"})
    service.create("drop")
    assert service.prune({"all": ["1"], "label!": ["keep"]})["VolumesDeleted"] == ["drop"]
    with pytest.raises(VolumeError, match="^Invalid filter 'dangling'$"):
        service.prune({"dangling": ["true"]})


# --- container mount records -------------------------------------------------------------------------


def test_mount_records_as_dockerd_shows_them(service: VolumeService, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    points = [
        parse_bind("named:/data"),
        parse_bind(f"{host}:/h:ro"),
        spec_parse_mount(
            {"Type": "volume", "Source": "nc", "Target": "/nc", "VolumeOptions": {"NoCopy": True}}
        ),
        spec_parse_mount({"Type": "tmpfs", "Target": "/t"}),
        parse_bind("/anon"),
    ]
    points[-1].origin = "volumes"
    records = volume_mounts.create_mounts(service, points)
    shown = {m["Destination"]: m for m in volume_mounts.shown_mounts(records)}
    assert shown["/data"] == {
        "Type": "volume",
        "Name": "named",
        "Source": service.get("named").mountpoint,
        "Destination": "/data",
        "Driver": "local",
        "Mode": "z",
        "RW": True,
        "Propagation": "",
    }
    assert shown["/h"] == {
        "Type": "bind",
        "Source": str(host),
        "Destination": "/h",
        "Mode": "ro",
        "RW": False,
        "Propagation": "rprivate",
    }
    assert shown["/t"] == {
        "Type": "tmpfs",
        "Source": "",
        "Destination": "/t",
        "Mode": "",
        "RW": True,
        "Propagation": "",
    }
    assert shown["/anon"]["Mode"] == "" and len(shown["/anon"]["Name"]) == 64
    assert records["/nc"]["CopyData"] is False and records["/data"]["CopyData"] is True
    assert volume_mounts.anonymous_volumes(records) == [shown["/anon"]["Name"]]
    assert volume_mounts.uses(records, "named") and volume_mounts.uses(records, "/h")
    assert volume_mounts.uses(records, str(host)) and not volume_mounts.uses(records, "other")


def test_a_failed_create_removes_the_volumes_it_made(service: VolumeService) -> None:
    service.create("existing")
    points = [
        parse_bind("existing:/a"),
        parse_bind("fresh:/b"),
        spec_parse_mount({"Type": "bind", "Source": "/no/such/dir/here", "Target": "/c"}),
    ]
    with pytest.raises(VolumeError) as e:
        volume_mounts.create_mounts(service, points)
    assert (
        str(e.value)
        == 'invalid mount config for type "bind": bind source path does not exist: /no/such/dir/here'
    )
    assert [v.name for v in service.list()] == ["existing"]


def test_prepare_mounts_copies_the_image_content_once(service: VolumeService, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "conf").write_text("image\n")
    (rootfs / "etc" / "link").symlink_to("conf")
    (rootfs / "etc").chmod(0o750)
    missing_host_dir = tmp_path / "made" / "by" / "start"
    records = volume_mounts.create_mounts(
        service, [parse_bind("cfg:/etc"), parse_bind(f"{missing_host_dir}:/m")]
    )
    paths = volume_mounts.prepare_mounts(service, records, str(rootfs))
    data = Path(service.get("cfg").mountpoint)
    assert paths == {"/etc": str(data)}
    assert (data / "conf").read_text() == "image\n"
    assert (data / "link").is_symlink() and (data / "link").readlink() == Path("conf")
    assert data.stat().st_mode & 0o777 == 0o750
    assert missing_host_dir.is_dir()  # `-v /missing:/m` creates the host directory, as dockerd
    assert records["/etc"]["Populated"]
    (data / "conf").unlink()
    (data / "link").unlink()
    volume_mounts.prepare_mounts(service, records, str(rootfs))
    assert list(data.iterdir()) == []  # emptied by the user: not filled again at the next start


# --- the CLI's -v and --mount ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("/data", ("", False)),
        ("ab", ("", False)),
        ("name:/data", ("name", False)),
        ("/host:/data:ro", ("/host", True)),
        ("./site:/x", ("./site", True)),
        ("../site:/x", ("../site", True)),
        (".:/x", (".", True)),
        ("site/x:/x", ("site/x", False)),
        ("a:b:c:d", ("a:b", True)),  # "a:" reads as a Windows drive; sent as is, the daemon refuses it
    ],
)
def test_parse_volume(spec: str, expected: tuple[str, bool]) -> None:
    assert parse_volume(spec) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "invalid empty volume spec"),
        (":/x", "invalid spec: :/x: empty section between colons"),
        ("/x:/y:", "invalid spec: /x:/y:: empty section between colons"),
    ],
)
def test_parse_volume_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_volume(spec)
    assert str(e.value) == message


def test_parse_mount_as_the_docker_cli_sends_it() -> None:
    assert parse_mount("type=tmpfs,target=/t,tmpfs-size=1m") == {
        "Type": "tmpfs",
        "Target": "/t",
        "TmpfsOptions": {"SizeBytes": 1048576},
    }
    assert parse_mount("source=mv2,target=/m2,volume-nocopy") == {
        "Type": "volume",
        "Source": "mv2",
        "Target": "/m2",
        "VolumeOptions": {"NoCopy": True, "DriverConfig": {}},
    }
    assert parse_mount("type=bind,src=/a,dst=/b,ro,bind-propagation=rshared,bind-nonrecursive") == {
        "Type": "bind",
        "Source": "/a",
        "Target": "/b",
        "ReadOnly": True,
        "BindOptions": {"Propagation": "rshared", "NonRecursive": True},
    }
    m = parse_mount(
        'type=volume,"src=v",destination=/x,volume-driver=local,volume-opt=type=tmpfs,readonly=false'
    )
    assert m == {
        "Type": "volume",
        "Source": "v",
        "Target": "/x",
        "ReadOnly": False,
        "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}},
    }
    assert parse_mount("type=tmpfs,dst=/t,tmpfs-mode=1770")["TmpfsOptions"] == {"Mode": 0o1770}


@pytest.mark.parametrize(
    "value, message",
    [
        ("type=volume,source=v,target=/x,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
        ("source=v", "target is required"),
        ("type", "invalid field 'type' must be a key=value pair"),
        ("type=volume,src=v,dst=/x,readonly=maybe", "invalid value for readonly: maybe"),
        ("type=tmpfs,target=/x,tmpfs-size=abc", "invalid value for tmpfs-size: abc"),
        ("type=tmpfs,target=/x,tmpfs-mode=9", "invalid value for tmpfs-mode: 9"),
        ("type=bind,target=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
        (
            "type=volume,target=/x,bind-propagation=shared",
            "cannot mix 'bind-*' options with mount type 'volume'",
        ),
        (
            'type=volume,"src=v,dst=/x',
            'parse error on line 1, column 26: extraneous or missing " in quoted-field',
        ),
        ('type=volume,src=a"b,dst=/x', 'parse error on line 1, column 18: bare " in non-quoted-field'),
    ],
)
def test_parse_mount_errors(value: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_mount(value)
    assert str(e.value) == message
