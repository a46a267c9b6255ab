"""Pure parts of `containers/filesystem.py` and the cp client: path resolution inside a container's
view, Go file modes, the commit config merge, the diff walk, entry renaming."""

from __future__ import annotations

import os
import stat

from dockyard.cli.commands.container_fs import _rename, _split
from dockyard.containers.filesystem import (
    CHANGE_ADDED,
    CHANGE_MODIFIED,
    ContainerView,
    go_file_mode,
    merge_commit_config,
    overlay_changes,
)


def test_go_file_mode():
    assert go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert go_file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert go_file_mode(stat.S_IFREG | 0o644) == 0o644
    assert go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755
    assert go_file_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666
    assert go_file_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777) == (1 << 31) | (1 << 20) | 0o777


def test_resolve_stays_inside_the_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../..", root / "up")
    os.symlink(str(tmp_path), root / "host")
    view = ContainerView(str(root))
    assert view.resolve("/abs/passwd") == "/etc/passwd"
    assert view.resolve("/up/etc") == "/etc"
    assert view.resolve("/../../x") == "/x"
    # an absolute link is read in the container: the host path it names does not exist there
    assert view.host(view.resolve("/host/root")) == str(root / tmp_path.relative_to("/") / "root")
    assert view.resolve("/abs", follow_last=False) == "/abs"


def test_resolve_through_mounts(tmp_path):
    root, vol = tmp_path / "root", tmp_path / "vol"
    root.mkdir()
    (vol / "sub").mkdir(parents=True)
    os.symlink("/data/sub", vol / "link")
    view = ContainerView.of(
        str(root),
        {
            "/data": {"Type": "volume", "Source": str(vol), "RW": True},
            "/data/tmp": {"Type": "tmpfs", "Source": "", "RW": True},
            "/ro": {"Type": "bind", "Source": str(tmp_path / "ro"), "RW": False},
        },
    )
    assert view.host("/data") == str(vol)
    assert view.host(view.resolve("/data/link/f")) == str(vol / "sub" / "f")
    assert view.host("/datax") == str(root / "datax")
    assert view.mount_of("/ro/x") == ("/ro", str(tmp_path / "ro"), False)
    assert view.mount_of("/data/tmp") == ("/data", str(vol), True)  # a tmpfs has no host side


def test_merge_commit_config_fills_from_the_container():
    container = {
        "User": "nobody",
        "Env": ["A=1", "B=1"],
        "Cmd": ["sh"],
        "Entrypoint": None,
        "Labels": {"x": "1", "y": "1"},
        "ExposedPorts": {"80/tcp": {}},
        "WorkingDir": "/w",
        "Volumes": {"/v": {}},
    }
    merged = merge_commit_config(
        {"Env": ["B=2"], "Labels": {"y": "2"}, "ExposedPorts": {"81/tcp": {}}}, container
    )
    assert merged["User"] == "nobody"
    assert merged["Env"] == ["B=2", "A=1"]
    assert merged["Labels"] == {"x": "1", "y": "2"}
    assert merged["ExposedPorts"] == {"80/tcp": {}, "81/tcp": {}}
    assert merged["Cmd"] == ["sh"] and merged["WorkingDir"] == "/w" and merged["Volumes"] == {"/v": {}}
    # a new entrypoint keeps its own (empty) Cmd
    assert merge_commit_config({"Entrypoint": ["x"]}, container)["Cmd"] is None
    assert merge_commit_config({}, {})["Labels"] == {}


def test_overlay_changes_sorted_without_unchanged_dirs(tmp_path):
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    for d in (lower / "etc", lower / "usr" / "lib"):
        d.mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root")
    (upper / "usr" / "lib").mkdir(parents=True)
    (upper / "etc").mkdir()
    (upper / "etc" / "hosts").write_text("")  # the runtime's mount point: not a change
    (upper / "usr" / "lib" / "new").write_text("n")
    (upper / "var").mkdir()  # copied up, but with nothing changed in it or about it
    (lower / "var").mkdir()
    (upper / "a-b").write_text("")  # sorted before /a/...: a parent still comes before its entries
    changes = overlay_changes(upper, [lower])
    assert changes == [
        {"Path": "/a-b", "Kind": CHANGE_ADDED},
        {"Path": "/usr", "Kind": CHANGE_MODIFIED},
        {"Path": "/usr/lib", "Kind": CHANGE_MODIFIED},
        {"Path": "/usr/lib/new", "Kind": CHANGE_ADDED},
    ]


def test_cp_argument_split_and_rename():
    assert _split("box:/etc/passwd") == ("box", "/etc/passwd")
    assert _split("./a:b") == ("", "./a:b")
    assert _split("/abs:x") == ("", "/abs:x")
    assert _split("plain") == ("", "plain")
    assert _rename("d/s/f", "d", "new") == "new/s/f"
    assert _rename("d", "d", "new") == "new"
    assert _rename("./s/f", ".", ".") == "s/f"
    assert _rename(".", ".", ".") == "."
    assert _rename("real", "real", "followed") == "followed"
