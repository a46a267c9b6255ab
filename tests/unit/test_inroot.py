"""linux/inroot: paths of a hostile root resolve inside it, with openat2 and with the userspace walk."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dockyard.linux import inroot
from dockyard.linux.inroot import RootDir, fd_path


@pytest.fixture(params=["openat2", "userspace"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "openat2":
        if not inroot.openat2_available():
            pytest.skip("this kernel has no openat2")
    else:
        monkeypatch.setattr(inroot, "_openat2_works", False)
    return request.param


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root whose links all point at a decoy outside it, the way a crafted image would."""
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "secret").write_text("host")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("container")
    (root / "dev").symlink_to(decoy)  # absolute, to the host
    (root / "up").symlink_to("../../../..")  # relative, above the root
    (root / "chain1").symlink_to("chain2")
    (root / "chain2").symlink_to("/etc")
    (root / "loop").symlink_to("loop")
    (root / "dangling").symlink_to("/made/here")
    (root / "file").write_text("x")
    return root, decoy


def _where(fd: int) -> str:
    try:
        return os.readlink(fd_path(fd))
    finally:
        os.close(fd)


def test_absolute_link_stays_inside(mode: str, tree: tuple[Path, Path]) -> None:
    root, decoy = tree
    with RootDir(str(root)) as r:
        with pytest.raises(FileNotFoundError):
            r.open("/dev/secret")  # /dev -> <decoy> is <root>/<decoy>, which does not exist
        fd = r.mkdirs("/dev/pts")
        assert _where(fd).startswith(str(root) + "/")
    assert sorted(os.listdir(decoy)) == ["secret"]


def test_relative_link_above_the_root_is_the_root(mode: str, tree: tuple[Path, Path]) -> None:
    root, decoy = tree
    with RootDir(str(root)) as r:
        assert _where(r.open("/up")) == str(root)
        assert _where(r.open("../../etc/passwd")) == str(root / "etc" / "passwd")
        fd = r.create("/up/x", directory=False)
        assert _where(fd) == str(root / "x")
    assert not (decoy / "x").exists()


def test_chains_loops_and_files(mode: str, tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with RootDir(str(root)) as r:
        assert _where(r.open("/chain1/passwd")) == str(root / "etc" / "passwd")
        with pytest.raises(OSError) as loop:
            r.open("/loop/x")
        assert loop.value.errno == errno.ELOOP
        with pytest.raises(NotADirectoryError):
            r.mkdirs("/file/sub")
        link = r.open("/chain1", follow=False)
        assert _where(link) == str(root / "chain1")


def test_dangling_link_is_made_where_it_points_inside(mode: str, tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with RootDir(str(root)) as r:
        fd = r.create("/dangling", directory=False)
        assert _where(fd) == str(root / "made" / "here")
        assert (root / "made" / "here").is_file()


def test_parent_of_acts_on_the_resolved_directory(mode: str, tree: tuple[Path, Path]) -> None:
    root, decoy = tree
    with RootDir(str(root)) as r:
        with r.parent_of("/dev/stdin", create=True) as (fd, name):
            os.symlink("/proc/self/fd/0", name, dir_fd=fd)
    assert os.path.islink(root / str(decoy).lstrip("/") / "stdin")
    assert sorted(os.listdir(decoy)) == ["secret"]


def test_reading_through_the_descriptor(mode: str, tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with RootDir(str(root)) as r:
        fd = r.open("/chain2/passwd", os.O_RDONLY)
        try:
            assert os.read(fd, 100) == b"container"
        finally:
            os.close(fd)
        assert r.resolve("/chain1") == str(root / "etc")
