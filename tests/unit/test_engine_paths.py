"""The engine's paths inside hostile trees, through descriptors: a container's view (cp, export, user
lookups), the tar unpacker (cp in, ADD, the build context), COPY's writer, the layer walk's lower-layer
lookups and a volume's copy-up."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.build.context import SourceFile
from dockyard.build.copying import copy_source
from dockyard.containers.pathview import ContainerView, ReadOnlyMount, read_in_root
from dockyard.images.tarwrite import lstat_beneath, open_beneath
from dockyard.images.untar import ExtractError, UntarOptions, untar
from dockyard.linux.inroot import RootDir
from dockyard.volumes.populate import copy_image_content


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A host directory the trees below link to: nothing may appear or change in it."""
    decoy = tmp_path / "host"
    decoy.mkdir()
    (decoy / "sentinel").write_text("host\n")
    return decoy


def untouched(host: Path) -> bool:
    return (
        sorted(p.name for p in host.iterdir()) == ["sentinel"] and (host / "sentinel").read_text() == "host\n"
    )


def tar(entries: list[tuple[str, str, bytes | str]]) -> tarfile.TarFile:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as out:
        for kind, name, data in entries:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "d" else 0o644
            if kind == "f":
                assert isinstance(data, bytes)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
                continue
            info.type = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}[kind]
            info.linkname = str(data)
            out.addfile(info)
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r|")


def test_view_open_never_leaves_the_root(tmp_path: Path, host: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    os.symlink(str(host), root / "abs")
    os.symlink("../../../../.." + str(host), root / "rel")
    os.symlink("/loop", root / "loop")
    os.symlink("/etc", root / "etc-link")
    view = ContainerView(str(root))
    for path in ("/abs/sentinel", "/rel/sentinel", "/abs/../abs/sentinel"):
        with pytest.raises(FileNotFoundError):
            view.open(path)
    with pytest.raises(OSError, match="too many levels"):
        view.open("/loop/x")
    fd, cpath = view.open("/etc-link/passwd")
    os.close(fd)
    assert cpath == "/etc/passwd"
    assert view.read_text("/etc-link/passwd") == "root:x:0:0::/:/bin/sh\n"
    assert view.read_text("/abs/sentinel") is None
    assert read_in_root(str(root), "/abs/sentinel") is None
    assert read_in_root(str(root), "/etc-link/passwd") == "root:x:0:0::/:/bin/sh\n"
    os.mkfifo(root / "etc" / "fifo")
    assert read_in_root(str(root), "/etc/fifo") is None  # never opened: a FIFO would block the daemon


def test_view_parent_of_makes_directories_inside_and_refuses_read_only_mounts(
    tmp_path: Path, host: Path
) -> None:
    root, ro, vol = tmp_path / "root", tmp_path / "ro", tmp_path / "vol"
    for d in (root, ro, vol):
        d.mkdir()
    os.symlink(str(host), root / "abs")
    view = ContainerView.of(
        str(root),
        {
            "/ro": {"Type": "bind", "Source": str(ro), "RW": False},
            "/data": {"Type": "volume", "Source": str(vol)},
        },
    )
    with view.parent_of("/abs/new/file", create=True) as (fd, name):
        os.close(os.open(name, os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    assert (root / str(host).lstrip("/") / "new" / "file").exists() and untouched(host)
    with pytest.raises(ReadOnlyMount, match="mounted volume is marked read-only"):
        with view.parent_of("/ro/x", create=True):
            pass
    with view.parent_of("/data", create=True) as (fd, name):  # a mount's destination: its source itself
        assert name == "." and os.path.samestat(os.fstat(fd), os.stat(vol))
    readonly = ContainerView.of(str(root), {}, readonly_rootfs=True)
    with pytest.raises(ReadOnlyMount, match="rootfs is marked read-only"):
        with readonly.parent_of("/x", create=True):
            pass


def test_untar_through_links_lands_inside(tmp_path: Path, host: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(str(host), root / "abs")
    with RootDir(str(root)) as scope:
        untar(tar([("f", "abs/evil", b"e"), ("l", "lnk", str(host)), ("f", "lnk/evil2", b"e")]), scope)
        # a hard link through a link: its target is looked up inside too (and is not there)
        with pytest.raises(FileNotFoundError):
            untar(tar([("l", "b", str(host)), ("h", "hl", "b/sentinel"), ("f", "hl", b"pwned")]), scope)
        # a file over an existing hard link replaces it, never writes into the linked inode
        (root / "mine").write_text("mine\n")
        os.link(root / "mine", root / "other")
        untar(tar([("f", "other", b"new\n")]), scope)
    assert (root / "mine").read_text() == "mine\n" and (root / "other").read_text() == "new\n"
    inside = root / str(host).lstrip("/")
    assert (inside / "evil").read_bytes() == b"e" and (inside / "evil2").read_bytes() == b"e"
    assert untouched(host)


def test_untar_options_as_cp_asks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "f").write_text("f")
    view = ContainerView(str(root))
    options = UntarOptions(no_overwrite_dir_non_dir=True)
    with pytest.raises(ExtractError, match='cannot overwrite directory "/d" with non-directory "d"'):
        untar(tar([("f", "d", b"x")]), view, "/", options)
    with pytest.raises(ExtractError, match='cannot overwrite non-directory "/f" with directory "f"'):
        untar(tar([("d", "f", b"")]), view, "/", options)
    untar(tar([("f", "d/x", b"x")]), view, "/", UntarOptions(owner=(12, 34)))
    st = os.stat(root / "d" / "x")
    assert (st.st_uid, st.st_gid) == (12, 34) and st.st_mode & 0o777 == 0o644


def test_copy_replaces_a_link_where_the_source_has_a_directory(tmp_path: Path, host: Path) -> None:
    root, src = tmp_path / "root", tmp_path / "src"
    (root / "app").mkdir(parents=True)
    os.symlink(str(host), root / "app" / "sub")
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "evil").write_text("payload\n")
    os.chmod(src / "sub", 0o700)
    mode = host.stat().st_mode
    with RootDir(str(root)) as scope:
        copy_source(SourceFile(str(src), "src", ""), scope, "/app/", None, False)
        # a file to a destination under a link: where the link leads, inside
        (src / "sub" / "evil").write_text("again\n")
        os.symlink(str(host), root / "app" / "link")
        copy_source(SourceFile(str(src / "sub" / "evil"), "evil", ""), scope, "/app/link/", None, False)
    assert (root / "app" / "sub").is_dir() and not (root / "app" / "sub").is_symlink()
    assert (root / "app" / "sub" / "evil").read_text() == "payload\n"
    assert (root / str(host).lstrip("/") / "evil").read_text() == "again\n"
    assert untouched(host) and host.stat().st_mode == mode  # (the old copy chmod-ed it to the source's)


def test_lower_layer_links_are_not_followed(tmp_path: Path, host: Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    os.symlink(str(host), lower / "var")
    (lower / "real").mkdir()
    (lower / "real" / "f").write_text("f")
    assert lstat_beneath(lower, "var/sentinel") is None
    assert lstat_beneath(lower, "real/f") is not None
    assert lstat_beneath(lower, "missing/x") is None
    top = os.open(lower, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(NotADirectoryError):
            os.close(open_beneath(top, "var/sentinel"))
    finally:
        os.close(top)


def test_copy_up_from_where_the_destination_leads_inside(tmp_path: Path, host: Path) -> None:
    root, volume = tmp_path / "root", tmp_path / "volume"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root\n")
    volume.mkdir()
    os.symlink(str(host), root / "abs")
    os.symlink("/etc", root / "etc-link")
    assert not copy_image_content(str(root), "/abs", str(volume))  # leads to nothing inside
    assert list(volume.iterdir()) == []
    assert copy_image_content(str(root), "/etc-link", str(volume))
    assert sorted(p.name for p in volume.iterdir()) == ["passwd"]
    assert untouched(host)
