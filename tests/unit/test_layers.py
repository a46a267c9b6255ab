"""Layer application: tars are built in memory and applied into tmp dirs.

Malicious-entry policy under test (see dockyard.images.layers): names whose '..' climbs above the root are
rejected with LayerError; absolute names and symlinks met on the way are resolved inside the root, as
Docker does by applying layers chrooted, so those writes are contained rather than refused.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import tarfile
import uuid
from collections.abc import Iterable
from pathlib import Path

import pytest

from dockyard.images.layers import (
    AppliedLayer,
    LayerError,
    apply_layer,
    clean_entry_name,
    inherit_implicit_dirs,
    resolve_dir_in_root,
)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (mknod, chown, trusted.* xattrs)")
T0 = 1_600_000_000

Entry = tuple[tarfile.TarInfo, bytes | None]


def _info(
    name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: float, pax: dict | None
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = mtime
    if pax:
        info.pax_headers = dict(pax)
    return info


def f(
    name: str,
    data: bytes = b"",
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: float = T0,
    pax: dict | None = None,
) -> Entry:
    info = _info(name, tarfile.REGTYPE, mode, uid, gid, mtime, pax)
    info.size = len(data)
    return info, data


def d(
    name: str, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: float = T0, pax: dict | None = None
) -> Entry:
    return _info(name, tarfile.DIRTYPE, mode, uid, gid, mtime, pax), None


def sym(name: str, target: str, uid: int = 0, gid: int = 0, mtime: float = T0) -> Entry:
    info = _info(name, tarfile.SYMTYPE, 0o777, uid, gid, mtime, None)
    info.linkname = target
    return info, None


def hard(
    name: str,
    target: str,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    mtime: float = T0,
    pax: dict | None = None,
) -> Entry:
    info = _info(name, tarfile.LNKTYPE, mode, uid, gid, mtime, pax)
    info.linkname = target
    return info, None


def dev(name: str, kind: bytes, major: int, minor: int, mode: int = 0o666) -> Entry:
    info = _info(name, kind, mode, 0, 0, T0, None)
    info.devmajor, info.devminor = major, minor
    return info, None


def build(entries: Iterable[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def apply(dest: Path, entries: Iterable[Entry], **kwargs) -> AppliedLayer:
    return apply_layer(io.BytesIO(build(entries)), dest, **kwargs)


def tree(top: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Everything under `top` (not following symlinks, not descending into `skip`) with its identity."""
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if skip is not None:
            dirnames[:] = [n for n in dirnames if Path(dirpath, n) != skip]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if skip is not None and Path(path) == skip:
                continue
            st = os.lstat(path)
            found[os.path.relpath(path, top)] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_nlink)
    return found


@pytest.fixture
def box(tmp_path: Path):
    """A layer root with a populated directory next to it that nothing may touch."""
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("precious")
    (outside / "sub").mkdir()
    (outside / "sub" / "inner").write_text("x")
    before = tree(tmp_path, skip=root)
    yield root, outside
    assert tree(tmp_path, skip=root) == before, "something outside the layer root changed"


# -- ordinary content --------------------------------------------------------------------------------------


def test_files_dirs_symlinks_hardlinks(tmp_path: Path) -> None:
    result = apply(
        tmp_path,
        [
            d("etc/", mtime=T0 + 1),
            f("etc/hostname", b"box\n", mtime=T0 + 2),
            f("etc/shadow", b"secret", mode=0o640),
            d("usr/bin/", mode=0o755),
            f("usr/bin/tool", b"#!/bin/sh\n", mode=0o755),
            hard("usr/bin/tool-alias", "usr/bin/tool", mode=0o755),
            sym("usr/bin/link", "tool", mtime=T0 + 3),
            sym("abs", "/etc/hostname"),
            sym("dangling", "../../nowhere"),
        ],
    )
    assert result.entries == 9
    # as dockerd's overlay2 sizes it: file contents (a hard link once) and each symlink's target
    targets = len("tool") + len("/etc/hostname") + len("../../nowhere")
    assert result.size == len(b"box\n") + len(b"secret") + len(b"#!/bin/sh\n") + targets
    assert result.skipped == []
    assert (tmp_path / "etc/hostname").read_bytes() == b"box\n"
    assert stat.S_IMODE(os.stat(tmp_path / "etc/shadow").st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "usr/bin/tool").st_mode) == 0o755
    assert os.path.samefile(tmp_path / "usr/bin/tool", tmp_path / "usr/bin/tool-alias")
    assert os.stat(tmp_path / "usr/bin/tool").st_nlink == 2
    assert os.readlink(tmp_path / "usr/bin/link") == "tool"
    assert os.readlink(tmp_path / "abs") == "/etc/hostname"  # targets are stored verbatim
    assert os.readlink(tmp_path / "dangling") == "../../nowhere"
    # mtimes: files right away, directories after their children were written
    assert os.stat(tmp_path / "etc/hostname").st_mtime == T0 + 2
    assert os.stat(tmp_path / "etc").st_mtime == T0 + 1
    assert os.stat(tmp_path / "usr/bin").st_mtime == T0
    assert os.lstat(tmp_path / "usr/bin/link").st_mtime == T0 + 3


def test_special_modes(tmp_path: Path) -> None:
    apply(
        tmp_path,
        [
            d("tmp/", mode=0o1777),
            f("bin/su", b"x", mode=0o4755),
            f("bin/wall", b"x", mode=0o2755),
            d("shared/", mode=0o2775),
            f("private", b"x", mode=0o000),
        ],
    )
    assert stat.S_IMODE(os.stat(tmp_path / "tmp").st_mode) == 0o1777
    assert stat.S_IMODE(os.stat(tmp_path / "bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(tmp_path / "bin/wall").st_mode) == 0o2755
    assert stat.S_IMODE(os.stat(tmp_path / "shared").st_mode) == 0o2775
    assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o000


def test_pax_times_keep_nanoseconds(tmp_path: Path) -> None:
    apply(
        tmp_path,
        [
            d("dir/", pax={"mtime": "1600000000.987654321"}),
            f("dir/file", b"x", pax={"mtime": "1600000000.123456789", "atime": "1700000000.5"}),
            f("old", b"x", pax={"mtime": "1600000000.5", "atime": "1500000000"}),
        ],
    )
    st = os.stat(tmp_path / "dir/file")
    assert st.st_mtime_ns == 1600000000_123456789
    assert st.st_atime_ns == 1700000000_500000000
    assert os.stat(tmp_path / "dir").st_mtime_ns == 1600000000_987654321
    # an atime older than the mtime is raised to it, as Docker does
    assert os.stat(tmp_path / "old").st_atime_ns == 1600000000_500000000


@pytest.mark.parametrize("mtime", ["1e999999999", "-1e999999999", "nan", "inf", "garbage"])
def test_absurd_pax_times_are_clamped(tmp_path: Path, mtime: str) -> None:
    apply(tmp_path, [f("file", b"x", pax={"mtime": mtime}), d("dir/", pax={"mtime": mtime})])
    assert (tmp_path / "file").read_bytes() == b"x"


def test_implicit_parents_and_root_entry(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    apply(dest, [d("./", mode=0o750, mtime=T0 + 9), f("a/b/c/file", b"x")])
    assert (dest / "a/b/c/file").read_bytes() == b"x"
    for parent in ("a", "a/b", "a/b/c"):
        assert stat.S_IMODE(os.stat(dest / parent).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o750
    assert os.stat(dest).st_mtime == T0 + 9


def test_implicit_parent_copies_lower_directory(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    apply(lower, [d("tmp/", mode=0o1777, mtime=T0 + 5), d("srv/", mode=0o700)])
    upper = tmp_path / "upper"
    apply(upper, [f("tmp/new", b"x"), f("srv/x/y", b"y"), f("fresh/z", b"z")], lower_dirs=[lower])
    # overlayfs shows the upper directory's attributes, so a bare parent must not mask the lower one
    assert stat.S_IMODE(os.stat(upper / "tmp").st_mode) == 0o1777
    assert os.stat(upper / "tmp").st_mtime == T0 + 5
    assert stat.S_IMODE(os.stat(upper / "srv").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(upper / "srv/x").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(upper / "fresh").st_mode) == 0o755


def test_implicit_parents_fixed_up_after_unpacking_out_of_order(tmp_path: Path) -> None:
    upper = tmp_path / "upper"  # unpacked first, as a pull does when the upper layer arrives first
    result = apply(upper, [f("tmp/new", b"x"), f("srv/x/y", b"y"), f("fresh/z", b"z")])
    assert sorted(result.implicit_dirs) == ["fresh", "srv", "srv/x", "tmp"]
    lower = tmp_path / "lower"
    apply(lower, [d("tmp/", mode=0o1777, mtime=T0 + 5), d("srv/", mode=0o700)])
    inherit_implicit_dirs(upper, result.implicit_dirs, [lower])
    assert stat.S_IMODE(os.stat(upper / "tmp").st_mode) == 0o1777
    assert os.stat(upper / "tmp").st_mtime == T0 + 5
    assert stat.S_IMODE(os.stat(upper / "srv").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(upper / "srv/x").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(upper / "fresh").st_mode) == 0o755


@needs_root
def test_owners_are_numeric(tmp_path: Path) -> None:
    apply(
        tmp_path,
        [
            d("home/", uid=0, gid=0),
            d("home/u/", uid=1234, gid=5678),
            f("home/u/file", b"x", uid=1234, gid=5678, mode=0o4750),
            sym("home/u/link", "file", uid=4321, gid=8765),
        ],
    )
    st = os.stat(tmp_path / "home/u/file")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert stat.S_IMODE(st.st_mode) == 0o4750  # setuid survives the chown because chmod comes after
    assert (os.stat(tmp_path / "home/u").st_uid, os.stat(tmp_path / "home/u").st_gid) == (1234, 5678)
    lst = os.lstat(tmp_path / "home/u/link")
    assert (lst.st_uid, lst.st_gid) == (4321, 8765)


def test_same_owner_false_keeps_own_ids(tmp_path: Path) -> None:
    apply(tmp_path, [f("file", b"x", uid=1234, gid=5678)], same_owner=False)
    assert os.stat(tmp_path / "file").st_uid == os.geteuid()


@needs_root
def test_devices_and_fifos(tmp_path: Path) -> None:
    result = apply(
        tmp_path,
        [
            d("dev/"),
            dev("dev/null", tarfile.CHRTYPE, 1, 3, mode=0o666),
            dev("dev/loop0", tarfile.BLKTYPE, 7, 0, mode=0o660),
            dev("dev/pipe", tarfile.FIFOTYPE, 0, 0, mode=0o600),
        ],
    )
    null = os.lstat(tmp_path / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(tmp_path / "dev/loop0")
    assert stat.S_ISBLK(loop.st_mode) and os.major(loop.st_rdev) == 7 and stat.S_IMODE(loop.st_mode) == 0o660
    assert stat.S_ISFIFO(os.lstat(tmp_path / "dev/pipe").st_mode)
    assert result.skipped == []


def test_devices_skipped_when_unprivileged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "mknod", refuse)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = apply(tmp_path, [dev("null", tarfile.CHRTYPE, 1, 3), f("after", b"x")], same_owner=False)
    assert result.skipped == ["null"]
    assert sorted(os.listdir(tmp_path)) == ["after"]


def test_fifo_without_root(tmp_path: Path) -> None:
    apply(tmp_path, [dev("pipe", tarfile.FIFOTYPE, 0, 0, mode=0o640)])
    st = os.lstat(tmp_path / "pipe")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640


# security.capability v2: cap_net_raw in permitted, effective flag set
CAP_NET_RAW = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)


def _pax_bytes(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


@needs_root
def test_xattrs_from_pax_headers(tmp_path: Path) -> None:
    apply(
        tmp_path,
        [
            f(
                "bin/ping",
                b"elf",
                mode=0o755,
                uid=0,
                pax={
                    "SCHILY.xattr.security.capability": _pax_bytes(CAP_NET_RAW),
                    "SCHILY.xattr.user.binary": _pax_bytes(b"\xff\x00\x01"),
                },
            ),
            d("data/", pax={"SCHILY.xattr.user.note": "hello"}),
            # forged overlayfs metadata must not be written by the layer itself
            d("fake/", pax={"SCHILY.xattr.trusted.overlay.opaque": "y"}),
            f("redirect", b"", pax={"SCHILY.xattr.trusted.overlay.redirect": "/etc"}),
        ],
    )
    assert os.getxattr(tmp_path / "bin/ping", "security.capability") == CAP_NET_RAW
    assert os.getxattr(tmp_path / "bin/ping", "user.binary") == b"\xff\x00\x01"
    assert os.getxattr(tmp_path / "data", "user.note") == b"hello"
    assert "trusted.overlay.opaque" not in os.listxattr(tmp_path / "fake")
    assert "trusted.overlay.redirect" not in os.listxattr(tmp_path / "redirect")


@needs_root
def test_hardlink_keeps_target_privileges(tmp_path: Path) -> None:
    caps = {"SCHILY.xattr.security.capability": _pax_bytes(CAP_NET_RAW)}
    apply(
        tmp_path,
        [
            f("bin/ping", b"elf", mode=0o4755, pax=caps),
            hard("bin/ping6", "bin/ping", mode=0o4755, pax=caps),
        ],
    )
    for name in ("bin/ping", "bin/ping6"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o4755
        assert os.getxattr(tmp_path / name, "security.capability") == CAP_NET_RAW


def test_hardlink_to_earlier_layer_and_to_symlink(tmp_path: Path) -> None:
    apply(tmp_path, [f("lib/libc.so", b"libc"), sym("lib/libc.link", "libc.so")], whiteout_mode="delete")
    apply(
        tmp_path,
        [
            hard("lib/libc-copy.so", "/lib/libc.so"),  # absolute link names are root-relative too
            hard("lib/link-copy", "lib/libc.link"),
        ],
        whiteout_mode="delete",
    )
    assert os.path.samefile(tmp_path / "lib/libc.so", tmp_path / "lib/libc-copy.so")
    # a hard link to a symlink is another symlink (the link is not followed)
    assert os.readlink(tmp_path / "lib/link-copy") == "libc.so"
    assert os.lstat(tmp_path / "lib/link-copy").st_ino == os.lstat(tmp_path / "lib/libc.link").st_ino


def test_hardlink_to_missing_target(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match=r'^applying layer entry "b": No such file or directory$'):
        apply(tmp_path, [hard("b", "missing")])
    with pytest.raises(LayerError, match=r'hard link target "no/such" not found$'):
        apply(tmp_path, [hard("c", "no/such")])


# -- replacing existing entries ----------------------------------------------------------------------------


def test_entries_replace_what_is_there(tmp_path: Path) -> None:
    apply(
        tmp_path,
        [
            d("was-dir/"),
            f("was-dir/child", b"x"),
            f("was-file", b"x"),
            sym("was-link", "was-file"),
            d("merge/", mode=0o700),
            f("merge/kept", b"lower"),
        ],
        whiteout_mode="delete",
    )
    apply(
        tmp_path,
        [
            f("was-dir", b"now a file"),
            d("was-file/", mode=0o750),
            f("was-link", b"now a file"),
            d("merge/", mode=0o755),
            f("merge/added", b"upper"),
        ],
        whiteout_mode="delete",
    )
    assert (tmp_path / "was-dir").read_bytes() == b"now a file"
    assert stat.S_ISDIR(os.lstat(tmp_path / "was-file").st_mode)
    assert not os.path.islink(tmp_path / "was-link")
    assert (tmp_path / "was-link").read_bytes() == b"now a file"
    # a directory over a directory merges: contents stay, metadata is the new layer's
    assert sorted(os.listdir(tmp_path / "merge")) == ["added", "kept"]
    assert stat.S_IMODE(os.stat(tmp_path / "merge").st_mode) == 0o755


def test_later_entry_in_same_layer_wins(tmp_path: Path) -> None:
    apply(tmp_path, [f("x", b"first"), f("x", b"second"), sym("y", "x"), d("y/")])
    assert (tmp_path / "x").read_bytes() == b"second"
    assert stat.S_ISDIR(os.lstat(tmp_path / "y").st_mode)


# -- whiteouts: delete mode --------------------------------------------------------------------------------


def _lower(dest: Path) -> None:
    apply(
        dest,
        [
            d("etc/"),
            f("etc/keep", b"k"),
            f("etc/gone", b"g"),
            d("var/"),
            d("var/cache/"),
            f("var/cache/a", b"a"),
            d("var/cache/sub/"),
            f("var/cache/sub/b", b"b"),
            d("opt/"),
            d("opt/app/"),
            f("opt/app/old", b"o"),
            f("opt/top-old", b"o"),
            d("deldir/"),
            f("deldir/x", b"x"),
        ],
        whiteout_mode="delete",
    )


def test_whiteouts_delete_mode(tmp_path: Path) -> None:
    _lower(tmp_path)
    result = apply(
        tmp_path,
        [
            f("etc/.wh.gone"),
            f(".wh.deldir"),
            f("etc/.wh.never-existed"),
            f("nothere/.wh.x"),  # a missing parent is not created just to delete nothing
            d("var/cache/"),
            f("var/cache/.wh..wh..opq"),
            f("var/cache/new", b"n"),
            # the opaque marker may come after the layer's own entries: they still survive it
            d("opt/"),
            d("opt/app/"),
            f("opt/app/new", b"n"),
            f("opt/.wh..wh..opq"),
        ],
        whiteout_mode="delete",
    )
    assert result.entries == 11
    assert sorted(os.listdir(tmp_path / "etc")) == ["keep"]
    assert not (tmp_path / "deldir").exists()
    assert not (tmp_path / "nothere").exists()
    assert sorted(os.listdir(tmp_path / "var/cache")) == ["new"]
    # opt/app came from this layer but merged with the lower one: the lower content goes too
    assert sorted(os.listdir(tmp_path / "opt")) == ["app"]
    assert sorted(os.listdir(tmp_path / "opt/app")) == ["new"]
    assert not any(name.startswith(".wh.") for _, _, names in os.walk(tmp_path) for name in names)


def test_whiteout_never_hides_same_layer_entry(tmp_path: Path) -> None:
    apply(tmp_path, [f("a", b"lower"), d("d/"), f("d/x", b"lower")], whiteout_mode="delete")
    apply(tmp_path, [f("a", b"upper"), f(".wh.a"), f("d/y", b"upper"), f("d/.wh.y")], whiteout_mode="delete")
    assert (tmp_path / "a").read_bytes() == b"upper"
    assert (tmp_path / "d/y").read_bytes() == b"upper"


@pytest.mark.parametrize("name", [".wh..", "sub/.wh..", ".wh...", "sub/.wh...", ".wh."])
def test_invalid_whiteout_names(box, name: str) -> None:
    root, _ = box
    apply(root, [d("sub/"), f("sub/file", b"x")], whiteout_mode="delete")
    for mode in ("delete", "overlay"):
        with pytest.raises(LayerError, match="invalid whiteout name"):
            apply(root, [f(name)], whiteout_mode=mode)
    assert (root / "sub/file").exists()


def test_aufs_metadata(tmp_path: Path) -> None:
    apply(
        tmp_path,
        [
            d(".wh..wh.plnk/"),
            f(".wh..wh.plnk/1234.5678", b"shared", mode=0o750, mtime=T0 + 7),
            f(".wh..wh.aufs"),
            d(".wh..wh.orph/"),
            d("bin/"),
            hard("bin/a", ".wh..wh.plnk/1234.5678"),
            hard("bin/b", "/.wh..wh.plnk/1234.5678"),
        ],
        whiteout_mode="delete",
    )
    assert sorted(os.listdir(tmp_path)) == ["bin"]
    for name in ("bin/a", "bin/b"):
        assert (tmp_path / name).read_bytes() == b"shared"
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o750
        assert os.stat(tmp_path / name).st_mtime == T0 + 7
    with pytest.raises(LayerError, match="does not hold"):
        apply(tmp_path, [hard("bin/c", ".wh..wh.plnk/unknown")])


# -- whiteouts: overlay mode -------------------------------------------------------------------------------


@needs_root
def test_whiteouts_overlay_mode(tmp_path: Path) -> None:
    apply(
        tmp_path,
        [
            d("etc/"),
            f("etc/.wh.gone", uid=0, gid=0),
            f(".wh.deldir", uid=1000, gid=1000),
            f("nothere/.wh.x"),
            d("var/cache/"),
            f("var/cache/.wh..wh..opq"),
            f("var/cache/new", b"n"),
            f(".wh..wh..opq"),  # the root itself can be opaque
        ],
    )
    gone = os.lstat(tmp_path / "etc/gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == os.makedev(0, 0)
    deldir = os.lstat(tmp_path / "deldir")
    assert stat.S_ISCHR(deldir.st_mode) and (deldir.st_uid, deldir.st_gid) == (1000, 1000)
    assert stat.S_ISCHR(os.lstat(tmp_path / "nothere/x").st_mode)
    assert os.getxattr(tmp_path / "var/cache", "trusted.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(tmp_path / "var")
    assert os.getxattr(tmp_path, "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(tmp_path / "var/cache")) == ["new"]
    assert not any(name.startswith(".wh.") for _, _, names in os.walk(tmp_path) for name in names)


@needs_root
def test_overlay_directory_recreated_after_whiteout_is_opaque(tmp_path: Path) -> None:
    apply(tmp_path, [f(".wh.data"), d("data/"), f("data/new", b"n"), f(".wh.file"), f("file", b"f")])
    assert stat.S_ISDIR(os.lstat(tmp_path / "data").st_mode)
    assert os.getxattr(tmp_path / "data", "trusted.overlay.opaque") == b"y"
    assert (tmp_path / "file").read_bytes() == b"f"


@needs_root
def test_overlay_whiteout_never_hides_same_layer_entry(tmp_path: Path) -> None:
    apply(tmp_path, [f("a", b"mine"), f(".wh.a")])
    assert (tmp_path / "a").read_bytes() == b"mine"


# -- stream handling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("blob", [b"", b"\0" * 1024, b"\0" * 10240])
def test_empty_layers(tmp_path: Path, blob: bytes) -> None:
    result = apply_layer(io.BytesIO(blob), tmp_path / "root")
    assert result == AppliedLayer(size=0, entries=0, skipped=[])
    assert os.listdir(tmp_path / "root") == []


def test_stream_is_read_to_the_end(tmp_path: Path) -> None:
    blob = build([f("a", b"x" * 5000)]) + b"\0" * 4096  # extra padding, as some writers add
    stream = io.BytesIO(blob)
    apply_layer(stream, tmp_path)
    assert stream.tell() == len(blob)


def test_garbage_and_truncation(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match="^invalid layer: not a tar stream"):
        apply_layer(io.BytesIO(b"this is not a tar archive" * 100), tmp_path / "a")
    blob = build([f("big", b"x" * 100_000)])
    with pytest.raises(LayerError, match="^invalid layer tar stream"):
        apply_layer(io.BytesIO(blob[:50_000]), tmp_path / "b")
    # a corrupt header after the first must fail the layer, not silently end it
    blob = bytearray(build([f("one", b"1"), f("two", b"2"), f("three", b"3")]))
    second = blob.index(b"two")
    blob[second : second + 3] = b"XXX"
    with pytest.raises(LayerError, match="^invalid layer tar stream: bad tar header"):
        apply_layer(io.BytesIO(bytes(blob)), tmp_path / "c")


def test_stream_errors_propagate_unchanged(tmp_path: Path) -> None:
    class DigestMismatch(Exception):
        pass

    class Failing(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            if self.data.tell() > 2048:
                raise DigestMismatch("digest mismatch")
            return self.data.read(min(size, 1024) if size > 0 else 1024)

    with pytest.raises(DigestMismatch):
        apply_layer(Failing(build([f("big", b"x" * 100_000)])), tmp_path)  # type: ignore[arg-type]

    dropped = ConnectionResetError(104, "Connection reset by peer")

    class Dropping(Failing):
        def read(self, size: int = -1) -> bytes:
            if self.data.tell() > 2048:
                raise dropped
            return super().read(size)

    # an OSError from the source must not be mistaken for a failure to write the entry
    with pytest.raises(ConnectionResetError) as info:
        apply_layer(Dropping(build([f("big2", b"x" * 100_000)])), tmp_path)  # type: ignore[arg-type]
    assert info.value is dropped


def test_messages_stay_on_one_line(tmp_path: Path) -> None:
    with pytest.raises(LayerError) as info:
        apply(tmp_path, [f("../evil\nname\udcff", b"x")])
    assert str(info.value) == 'invalid layer entry "../evil\\nname\\udcff": path escapes the layer root'


def test_unsupported_entry_type(tmp_path: Path) -> None:
    info = tarfile.TarInfo("weird")
    info.type = b"Z"
    with pytest.raises(LayerError, match=r'^invalid layer entry "weird": unsupported tar entry type'):
        apply(tmp_path, [(info, None)])


def test_invalid_mode_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown whiteout mode"):
        apply_layer(io.BytesIO(b""), tmp_path, whiteout_mode="aufs")  # type: ignore[arg-type]


# -- malicious layers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "./../escape", "..", "../outside/victim"])
@pytest.mark.parametrize("mode", ["overlay", "delete"])
def test_dotdot_names_are_rejected(box, name: str, mode: str) -> None:
    root, _ = box
    with pytest.raises(LayerError) as info:
        apply(root, [f(name, b"pwned")], whiteout_mode=mode)
    assert str(info.value) == f'invalid layer entry "{name}": path escapes the layer root'
    assert os.listdir(root) == []


@pytest.mark.parametrize("name", ["../../etc/passwd", "../.wh.victim", "../outside/.wh..wh..opq"])
def test_dotdot_whiteouts_are_rejected(box, name: str) -> None:
    root, _ = box
    with pytest.raises(LayerError, match="path escapes the layer root"):
        apply(root, [f(name)], whiteout_mode="delete")


def test_absolute_and_rooted_dotdot_names_stay_inside(box) -> None:
    root, outside = box
    apply(root, [f("/etc/passwd", b"inside"), f("/../../x", b"inside"), f(str(outside / "victim"), b"in")])
    assert (root / "etc/passwd").read_bytes() == b"inside"
    assert (root / "x").read_bytes() == b"inside"
    assert (root / str(outside / "victim").lstrip("/")).read_bytes() == b"in"


def test_symlink_to_root_then_write_through_it(box) -> None:
    root, _ = box
    unique = f"dockyard-test-{uuid.uuid4().hex}"
    apply(root, [sym("evil", "/"), f(f"evil/etc/{unique}", b"pwned"), d(f"evil/tmp/{unique}/")])
    assert not os.path.exists(f"/etc/{unique}") and not os.path.exists(f"/tmp/{unique}")
    assert (root / "etc" / unique).read_bytes() == b"pwned"
    assert (root / "tmp" / unique).is_dir()
    assert os.readlink(root / "evil") == "/"


def test_symlink_climbing_out_then_write_through_it(box) -> None:
    root, _ = box
    apply(
        root,
        [
            sym("up", "../../.."),
            f("up/x", b"pwned"),
            sym("deep/up2", "../../../../outside"),
            f("deep/up2/victim", b"pwned"),
        ],
    )
    assert (root / "x").read_bytes() == b"pwned"
    # ../../../../outside from deep/ clamps at the root, so this lands on root/outside/victim
    assert (root / "outside/victim").read_bytes() == b"pwned"


def test_symlink_to_absolute_outside_dir(box) -> None:
    root, outside = box
    apply(
        root,
        [
            sym("lnk", str(outside)),
            f("lnk/victim", b"pwned"),
            f("lnk/sub/inner", b"pwned"),
            f("lnk/new", b"pwned"),
        ],
    )
    assert (root / str(outside).lstrip("/") / "victim").read_bytes() == b"pwned"


def test_symlink_chain_and_relative_hops(box) -> None:
    root, outside = box
    apply(
        root,
        [
            d("a/"),
            sym("a/b", "../c"),
            sym("c", "/a/../../d"),
            d("d/"),
            f("a/b/x", b"1"),
            sym("rel", str(outside) + "/../.."),
            f("rel/y", b"2"),
        ],
    )
    assert (root / "d/x").read_bytes() == b"1"
    # ".." from the (root-relative) outside path climbs two levels, still below the root
    assert (root / str(outside.parent.parent).lstrip("/") / "y").read_bytes() == b"2"


def test_final_symlink_is_replaced_not_followed(box) -> None:
    root, outside = box
    apply(root, [sym("evil", str(outside / "victim")), f("evil", b"pwned")])
    assert not os.path.islink(root / "evil")
    apply(root, [sym("dir", str(outside / "sub")), d("dir/"), f("dir/inner", b"pwned")])
    assert not os.path.islink(root / "dir")
    assert (root / "dir/inner").read_bytes() == b"pwned"
    # a dangling symlink in the last component is no way out either
    apply(root, [sym("dangling", str(outside / "created-by-layer")), f("dangling", b"pwned")])
    assert (root / "dangling").read_bytes() == b"pwned"


@pytest.mark.parametrize("mode", ["overlay", "delete"])
def test_whiteouts_through_symlinks_stay_inside(box, mode: str) -> None:
    if mode == "overlay" and not ROOT:
        pytest.skip("needs root")
    root, outside = box
    apply(
        root,
        [
            sym("lnk", str(outside)),
            f("lnk/.wh.victim"),
            f("lnk/sub/.wh..wh..opq"),
            sym("up", "../.."),
            f("up/outside/.wh.sub"),
        ],
        whiteout_mode=mode,
    )


def test_opaque_through_symlinked_parent_delete_mode(box) -> None:
    root, outside = box
    apply(
        root,
        [sym("lnk", str(outside)), f("lnk/.wh..wh..opq"), sym("up", ".."), f("up/.wh..wh..opq")],
        whiteout_mode="delete",
    )
    # the root was made opaque (only this layer's entries remain), the outside was not touched
    assert sorted(os.listdir(root)) == ["lnk", "up"]


def test_hardlink_escapes_are_rejected(box) -> None:
    root, _ = box
    with pytest.raises(LayerError) as info:
        apply(root, [hard("h", "../outside/victim")])
    assert str(info.value) == (
        'invalid layer entry "h": hard link target "../outside/victim" escapes the layer root'
    )
    with pytest.raises(LayerError, match="escapes the layer root"):
        apply(root, [hard("h", "a/../../../etc/passwd")])
    assert not (root / "h").exists()


def test_hardlink_absolute_target_is_root_relative(box) -> None:
    root, _ = box
    nlink = os.stat("/etc/passwd").st_nlink
    with pytest.raises(LayerError):
        apply(root, [hard("h", "/etc/passwd")])  # no etc/passwd in the layer: nothing to link
    apply(root, [f("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"), hard("h", "/etc/passwd")])
    assert os.path.samefile(root / "h", root / "etc/passwd")
    assert os.stat("/etc/passwd").st_nlink == nlink


def test_hardlink_through_symlinked_parent_stays_inside(box) -> None:
    root, outside = box
    with pytest.raises(LayerError):
        apply(root, [sym("lnk", str(outside)), hard("h", "lnk/victim")])
    with pytest.raises(LayerError):
        apply(root, [sym("up", "../../.."), hard("h2", f"up{outside}/victim")])
    apply(root, [sym("etc", "/real"), f("real/file", b"x"), hard("h3", "etc/file")])
    assert os.path.samefile(root / "h3", root / "real/file")


def test_symlink_loop(box) -> None:
    root, _ = box
    with pytest.raises(LayerError, match="too many levels of symbolic links"):
        apply(root, [sym("a", "b"), sym("b", "a"), f("a/x", b"x")])


def test_entry_under_a_file(box) -> None:
    root, _ = box
    with pytest.raises(LayerError, match=r'^invalid layer entry "f/x": "f" is not a directory$'):
        apply(root, [f("f", b"x"), f("f/x", b"y")])


def test_root_cannot_become_a_file(box) -> None:
    root, _ = box
    for entry in (f("./", b"x"), sym(".", "/etc"), f("/", b"x")):
        with pytest.raises(LayerError, match="only a directory can replace the layer root"):
            apply(root, [entry])
    assert root.is_dir()


# -- helpers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a/b", "a/b"),
        ("./a//b/", "a/b"),
        ("a/./b/../c", "a/c"),
        ("/etc/passwd", "etc/passwd"),
        ("//x", "x"),
        ("/../../x", "x"),
        (".", ""),
        ("./", ""),
        ("/", ""),
        ("", ""),
    ],
)
def test_clean_entry_name(name: str, expected: str) -> None:
    assert clean_entry_name(name) == expected


def test_resolve_dir_in_root(tmp_path: Path) -> None:
    root = str(tmp_path)
    (tmp_path / "real/dir").mkdir(parents=True)
    os.symlink("/real", tmp_path / "abs")
    os.symlink("../../../real/dir", tmp_path / "real/up")
    (tmp_path / "file").write_text("x")
    assert resolve_dir_in_root(root, "abs/dir") == f"{root}/real/dir"
    assert resolve_dir_in_root(root, "real/up") == f"{root}/real/dir"
    assert resolve_dir_in_root(root, "../../..") == root
    assert resolve_dir_in_root(root, "missing/x") is None
    with pytest.raises(NotADirectoryError):
        resolve_dir_in_root(root, "file/x")
    made: list[str] = []
    assert resolve_dir_in_root(root, "abs/new", lambda p, rel: (made.append(rel), os.mkdir(p))) == (
        f"{root}/real/new"
    )
    assert made == ["real/new"]
