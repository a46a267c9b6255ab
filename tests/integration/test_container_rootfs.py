"""RootfsManager over real snapshots and real overlay mounts (root)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.containers.ids import generate_id
from dockyard.containers.rootfs import RootfsManager
from dockyard.images.snapshots import OVERLAY, VFS, Snapshotter, chain_ids, overlay_supported
from dockyard.linux.mount import MNT_DETACH, mount_table, umount


def tar_of(entries: dict[str, bytes | None]) -> bytes:
    """name -> content (None for a directory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


LAYERS = [
    tar_of({"etc": None, "etc/base.txt": b"base\n", "etc/gone.txt": b"doomed\n", "bin": None}),
    tar_of({"app.txt": b"app\n", "etc/.wh.gone.txt": b""}),
]


def build_chain(snapshots: Snapshotter, layers: list[bytes]) -> str:
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    parent = ""
    for chain, diff_id, layer in zip(chain_ids(diff_ids), diff_ids, layers, strict=True):
        pending = snapshots.prepare(chain, parent, diff_id)
        pending.apply(io.BytesIO(layer))
        pending.commit()
        parent = chain
    return parent


def mounts_under(path: Path) -> list[str]:
    prefix = os.path.realpath(path)
    return [m.mountpoint for m in mount_table() if m.mountpoint.startswith(prefix)]


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    try:
        yield tmp_path
    finally:
        # Whatever a failing test left mounted must not outlive it.
        for point in sorted(mounts_under(tmp_path), key=len, reverse=True):
            umount(point, MNT_DETACH)


@pytest.fixture
def overlay(tmp: Path) -> Snapshotter:
    if not overlay_supported(tmp / "probe"):
        pytest.skip("overlayfs does not work on this filesystem")
    return Snapshotter(tmp / "snapshots", OVERLAY)


def test_overlay_rootfs(tmp: Path, overlay: Snapshotter) -> None:
    chain = build_chain(overlay, LAYERS)
    manager = RootfsManager(tmp / "rootfs", overlay)
    cid = generate_id()
    try:
        merged = manager.mount(cid, chain)
        assert manager.is_mounted(cid)
        assert manager.mount(cid, chain) == merged  # idempotent: no second mount stacked
        assert mounts_under(tmp / "rootfs") == [str(merged)]
        assert (merged / "etc/base.txt").read_text() == "base\n"
        assert (merged / "app.txt").read_text() == "app\n"
        assert not (merged / "etc/gone.txt").exists()  # the upper layer's whiteout hides it

        (merged / "etc/base.txt").write_text("changed\n")
        (merged / "new.txt").write_text("new\n")
        upper = tmp / "rootfs" / cid / "upper"
        assert (upper / "etc/base.txt").read_text() == "changed\n" and (upper / "new.txt").exists()
        assert (overlay.lower_dirs(chain)[1] / "etc/base.txt").read_text() == "base\n"
        assert not (overlay.fs(chain) / "new.txt").exists()

        # A process whose cwd is inside keeps the mount busy: unmount must still get it out of the tree.
        fd = os.open(merged / "etc", os.O_RDONLY)
        try:
            manager.unmount(cid)
        finally:
            os.close(fd)
        assert not manager.is_mounted(cid)
        manager.remove(cid)
        assert not mounts_under(tmp / "rootfs") and not (tmp / "rootfs" / cid).exists()
        assert (overlay.lower_dirs(chain)[1] / "etc/base.txt").read_text() == "base\n"
    finally:
        manager.remove(cid)


def test_image_without_layers(tmp: Path, overlay: Snapshotter) -> None:
    manager = RootfsManager(tmp / "rootfs", overlay)
    cid = generate_id()
    try:
        merged = manager.mount(cid, "")
        assert os.listdir(merged) == []
        (merged / "x").write_text("x")
    finally:
        manager.remove(cid)
    assert not mounts_under(tmp / "rootfs")


def test_long_chain_mounts_with_short_links(tmp: Path, overlay: Snapshotter) -> None:
    layers = [tar_of({f"f{n}": str(n).encode()}) for n in range(60)]
    chain = build_chain(overlay, layers)
    assert sum(len(str(p)) + 1 for p in overlay.lower_dirs(chain)) > os.sysconf("SC_PAGESIZE")
    manager = RootfsManager(tmp / "rootfs", overlay)
    cid = generate_id()
    try:
        merged = manager.mount(cid, chain)
        assert manager.is_mounted(cid) and (tmp / "rootfs" / cid / "l/59").is_symlink()
        assert (merged / "f0").read_text() == "0" and (merged / "f59").read_text() == "59"
        manager.remove(cid)
        assert not (tmp / "rootfs" / cid).exists()
        assert (overlay.fs(chain) / "f59").exists()  # the l/ links were unlinked, not followed
    finally:
        manager.remove(cid)


def test_recover_cleans_stale_mounts(tmp: Path, overlay: Snapshotter) -> None:
    chain = build_chain(overlay, LAYERS)
    before = RootfsManager(tmp / "rootfs", overlay)
    kept, running, unknown = generate_id(), generate_id(), generate_id()
    try:
        for cid in (kept, running, unknown):
            before.mount(cid, chain)
        (before.path(kept) / "mine").write_text("1")

        after = RootfsManager(tmp / "rootfs", overlay)  # as if the daemon had crashed and restarted
        assert after.recover({kept, running}, running={running}) == [unknown]
        assert not after.is_mounted(kept) and (tmp / "rootfs" / kept / "upper/mine").exists()
        assert after.is_mounted(running)
        assert not (tmp / "rootfs" / unknown).exists()
        assert (overlay.fs(chain) / "app.txt").exists()
        assert (after.mount(kept, chain) / "mine").read_text() == "1"
    finally:
        for cid in (kept, running, unknown):
            before.remove(cid)
    assert not mounts_under(tmp / "rootfs")


def test_vfs(tmp: Path) -> None:
    snapshots = Snapshotter(tmp / "snapshots", VFS)
    chain = build_chain(snapshots, LAYERS)
    manager = RootfsManager(tmp / "rootfs", snapshots)
    cid, empty = generate_id(), generate_id()
    try:
        fs = manager.mount(cid, chain)
        assert fs == tmp / "rootfs" / cid / "fs" and not manager.is_mounted(cid)
        assert (fs / "etc/base.txt").read_text() == "base\n" and (fs / "app.txt").exists()
        assert not (fs / "etc/gone.txt").exists()
        (fs / "etc/base.txt").write_text("changed\n")
        assert (snapshots.fs(chain) / "etc/base.txt").read_text() == "base\n"
        assert manager.mount(cid, chain) == fs  # not copied again
        assert (fs / "etc/base.txt").read_text() == "changed\n"
        assert os.listdir(manager.mount(empty, "")) == []
        assert manager.recover({cid}) == [empty]
        manager.remove(cid)
        assert not (tmp / "rootfs" / cid).exists()
    finally:
        manager.remove(cid)
        manager.remove(empty)
