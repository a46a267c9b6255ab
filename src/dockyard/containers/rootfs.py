"""Each container's root filesystem under `<root>/<id>/`, stacked on the image's snapshots.

overlay2: `upper/` (the container's writes), `work/` (overlayfs scratch), `merged/` (the mount the runtime
pivots into), `empty/` (the lower dir of an image with no layers) and, only for chains too long for one
page of mount options, `l/` (short symlinks to the lower dirs, see `_mount_overlay`).
vfs: `fs/`, a full copy (reflinked where the filesystem can) of the image's top snapshot; nothing mounts.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path

from ..images.snapshots import OVERLAY, VFS, Snapshotter
from ..linux.mount import MNT_DETACH, mount, mount_table, umount

log = logging.getLogger(__name__)

# mount(2) copies at most one page of option data, including the terminating NUL.
_PAGE_SIZE = os.sysconf("SC_PAGESIZE")
# Docker's overlay2 passes index=off when the kernel knows the option: with the index on, a lower dir
# reused under another upper (every container of one image) can fail to mount with ESTALE.
_INDEX_OFF = "index=off," if os.path.exists("/sys/module/overlay/parameters/index") else ""

# Runs in a child so the daemon's cwd (shared by all its threads) never changes: mounts with paths
# relative to the child's cwd. argv: target, options.
_RELATIVE_MOUNT = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.mount(b"overlay", os.fsencode(sys.argv[1]), b"overlay", 0, os.fsencode(sys.argv[2])) != 0:
    err = ctypes.get_errno()
    sys.exit(f"mount overlay: {os.strerror(err)}")
"""


class RootfsError(Exception):
    pass


class RootfsManager:
    def __init__(self, root: Path, snapshots: Snapshotter) -> None:
        root.mkdir(parents=True, exist_ok=True)
        # Resolved once: mountinfo shows real paths, and comparisons below are textual.
        self.root = Path(os.path.realpath(root))
        self.snapshots = snapshots
        self.driver = snapshots.driver

    def dir(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise ValueError(f"invalid container ID {container_id!r}")
        return self.root / container_id

    def path(self, container_id: str) -> Path:
        """Where the container's root filesystem appears (once mounted, for overlay)."""
        return self.dir(container_id) / ("merged" if self.driver == OVERLAY else "fs")

    # --- set up ------------------------------------------------------------------------------------

    def prepare(self, container_id: str, chain_id: str) -> Path:
        """Create the container's directories (idempotent); returns the container's directory."""
        base = self.dir(container_id)
        base.mkdir(mode=0o700, exist_ok=True)
        if self.driver == OVERLAY:
            for name in ("upper", "work", "merged"):
                (base / name).mkdir(exist_ok=True)
            if not chain_id:
                (base / "empty").mkdir(exist_ok=True)
        elif self.driver == VFS:
            fs = base / "fs"
            if not fs.exists():
                # Copied aside and renamed, so a crash mid-copy never leaves a partial rootfs under fs/.
                tmp = base / "fs.tmp"
                shutil.rmtree(tmp, ignore_errors=True)
                if chain_id:
                    top = self.snapshots.lower_dirs(chain_id)[0]
                    subprocess.run(
                        ["cp", "-a", "--reflink=auto", str(top), str(tmp)], check=True, capture_output=True
                    )
                else:
                    tmp.mkdir(mode=0o755)
                os.rename(tmp, fs)
        else:
            raise RootfsError(f"unknown storage driver {self.driver!r}")
        return base

    def mount(self, container_id: str, chain_id: str) -> Path:
        """The container's rootfs, mounted if need be (idempotent). vfs needs no mount: returns fs/."""
        base = self.prepare(container_id, chain_id)
        target = self.path(container_id)
        if self.driver != OVERLAY or self.is_mounted(container_id):
            return target
        lowers = self.snapshots.lower_dirs(chain_id) if chain_id else [base / "empty"]
        self._mount_overlay(base, lowers)
        return target

    def _mount_overlay(self, base: Path, lowers: list[Path]) -> None:
        options = (
            f"{_INDEX_OFF}lowerdir={':'.join(str(p) for p in lowers)},"
            f"upperdir={base / 'upper'},workdir={base / 'work'}"
        )
        if len(options) < _PAGE_SIZE:
            mount("overlay", str(base / "merged"), "overlay", 0, options)
            return
        # Too long for one page (about 50 layers at our path lengths). As Docker does, use short names
        # relative to a directory and mount from a child whose cwd is that directory: here l/<n> symlinks
        # in the container's own directory, so 128 layers need about 700 bytes.
        links = base / "l"
        shutil.rmtree(links, ignore_errors=True)
        links.mkdir()
        for n, lower in enumerate(lowers):
            os.symlink(lower, links / str(n))
        options = (
            f"{_INDEX_OFF}lowerdir={':'.join(f'l/{n}' for n in range(len(lowers)))},"
            "upperdir=upper,workdir=work"
        )
        if len(options) >= _PAGE_SIZE:
            raise RootfsError(f"cannot mount a rootfs of {len(lowers)} layers: mount options too long")
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _RELATIVE_MOUNT, "merged", options],
            cwd=base,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RootfsError(done.stderr.strip() or f"mount overlay on {base / 'merged'} failed")

    # --- tear down ---------------------------------------------------------------------------------

    def is_mounted(self, container_id: str) -> bool:
        return str(self.dir(container_id) / "merged") in {m.mountpoint for m in mount_table()}

    def unmount(self, container_id: str) -> None:
        """Unmount everything mounted at or under the container's directory (idempotent)."""
        self._unmount_under(self.dir(container_id))

    def remove(self, container_id: str) -> None:
        base = self.dir(container_id)
        self._unmount_under(base)
        if self._mounts_under(base):
            # Deleting through a live mount would delete the image's files: refuse instead.
            raise RootfsError(f"rootfs of {container_id} is still mounted")
        # rmtree unlinks symlinks (l/*, or ones the container made) without following them.
        if base.exists():
            shutil.rmtree(base)

    def recover(self, known_ids: Collection[str], running: Collection[str] = ()) -> list[str]:
        """At daemon start: delete the directories (and mounts) of containers the store does not know, and
        unmount the rootfs of known containers that are not running (a crash left it mounted). Running
        containers (live restore) keep theirs. Returns the IDs whose directories were deleted."""
        removed = []
        for entry in sorted(self.root.iterdir()):
            if entry.is_symlink() or not entry.is_dir():
                continue
            if entry.name in known_ids:
                if entry.name not in running:
                    self._unmount_under(entry)
                continue
            try:
                self.remove(entry.name)
                removed.append(entry.name)
            except (OSError, RootfsError, ValueError) as e:
                log.warning("could not remove the rootfs of unknown container %s: %s", entry.name, e)
        return removed

    def _mounts_under(self, base: Path) -> list[str]:
        prefix = f"{base}/"
        return [
            m.mountpoint
            for m in mount_table()
            if m.mountpoint == str(base) or m.mountpoint.startswith(prefix)
        ]

    def _unmount_under(self, base: Path) -> None:
        # Deepest (and most recent) first; a bounded loop also covers mounts stacked on one point.
        for _ in range(16):
            points = self._mounts_under(base)
            if not points:
                return
            for point in sorted(points, key=len, reverse=True):
                try:
                    umount(point)
                except OSError as e:
                    if e.errno == errno.EBUSY:
                        # Something still uses it (a process whose cwd is inside): detach it from the tree
                        # now; the kernel frees it when the last user goes.
                        umount(point, MNT_DETACH)
                    elif e.errno not in (errno.EINVAL, errno.ENOENT):
                        raise
        raise RootfsError(f"could not unmount everything under {base}")
