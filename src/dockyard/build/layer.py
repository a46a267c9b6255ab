"""A container's changes (the upper dir of its overlay rootfs) as an OCI layer tar.

overlayfs records a deletion as a 0/0 character device and a directory that replaced a lower one as
opaque (`trusted.overlay.opaque=y`, or `user.overlay.opaque` with userxattr); the layer says the same
with `.wh.<name>` files and a `.wh..wh..opq` entry. The tar is uncompressed (dockerd keeps built layers
so; a push gzips them) and written while hashing, so its diff ID is known at the end.

What the runtime itself put into the rootfs (the mount points /dev, /proc, /sys, and empty
/etc/hostname, /etc/hosts, /etc/resolv.conf to bind the daemon's files onto; /.dockerenv and the
/etc/mtab link of containers/initlayer) is left out, as Docker's
"-init" layer keeps it out of a commit; so is a directory that is only there as their parent, or that
overlayfs copied up unchanged.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..images.tarwrite import add_entry, lstat_beneath, open_beneath, tar_info

__all__ = ["LayerDiff", "write_layer"]

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
_SKIPPED_TREES = ("dev", "proc", "sys")
_MOUNT_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf", ".dockerenv")
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class LayerDiff:
    diff_id: str  # sha256 of the tar
    size: int  # bytes of the tar
    entries: int  # 0: nothing changed (an empty layer)


class _HashingWriter:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)


def _opaque(fd: int) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(fd, name) == b"y":
                return True
        except OSError:
            continue
    return False


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _unchanged_dir(rel: str, st: os.stat_result, lowers: list[Path]) -> bool:
    """A copied-up directory that matches the one it covers (same mode and owner)."""
    for lower in lowers:
        below = lstat_beneath(
            lower, rel
        )  # a lower layer's link on the way is not followed (nor by overlayfs)
        if below is None:
            continue
        if is_whiteout(below):
            return False
        return (
            stat.S_ISDIR(below.st_mode)
            and below.st_mode == st.st_mode
            and below.st_uid == st.st_uid
            and below.st_gid == st.st_gid
        )
    return False


def _link(name: str, directory: int) -> str | None:
    try:
        return os.readlink(name, dir_fd=directory)
    except OSError:
        return None


def changed_entries(upper: Path, lowers: list[Path]) -> list[tuple[str, os.stat_result, bool]]:
    """(relative name, stat, opaque) of what goes into the layer, parents before children. The upper dir
    is walked through descriptors, never through a link (a running container may be changing it)."""
    kept: list[tuple[str, os.stat_result, bool]] = []

    def walk(directory: int, prefix: str) -> bool:
        """Appends the entries below `directory` (a descriptor); whether any was kept."""
        any_kept = False
        with os.scandir(directory) as it:
            entries = sorted(((e.name, e.stat(follow_symlinks=False)) for e in it), key=lambda e: e[0])
        for name, st in entries:
            rel = prefix + name
            if rel in _SKIPPED_TREES:
                continue
            if rel in _MOUNT_FILES and stat.S_ISREG(st.st_mode) and st.st_size == 0:
                continue
            if rel == "etc/mtab" and stat.S_ISLNK(st.st_mode) and _link(name, directory) == "/proc/mounts":
                continue  # the init layer's link (containers/initlayer)
            if stat.S_ISDIR(st.st_mode):
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=directory)
                except OSError:
                    continue  # gone, or no longer a directory, meanwhile
                try:
                    opaque = _opaque(child)
                    mark = len(kept)
                    kept.append((rel, st, opaque))
                    below = walk(child, rel + "/")
                finally:
                    os.close(child)
                if not below and not opaque and _unchanged_dir(rel, st, lowers):
                    del kept[mark]
                    continue
                any_kept = True
            else:
                kept.append((rel, st, False))
                any_kept = True
        return any_kept

    top = os.open(upper, _DIR_FLAGS)
    try:
        walk(top, "")
    finally:
        os.close(top)
    return kept


def write_layer(upper: Path, out: BinaryIO, lowers: list[Path]) -> LayerDiff:
    """Write the changes in `upper` (lower dirs: the image's layers, uppermost first) as a tar."""
    entries = changed_entries(upper, lowers)
    writer = _HashingWriter(out)
    top = os.open(upper, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
            _write_entries(archive, top, entries)
    finally:
        os.close(top)
    return LayerDiff("sha256:" + writer.hash.hexdigest(), writer.size, len(entries))


def _write_entries(
    archive: tarfile.TarFile, top: int, entries: list[tuple[str, os.stat_result, bool]]
) -> None:
    links: dict[tuple[int, int], str] = {}
    for rel, st, opaque in entries:
        info = tar_info(rel, st)
        if is_whiteout(st):
            parent, _, base = rel.rpartition("/")
            info.name = (parent + "/" if parent else "") + WHITEOUT_PREFIX + base
            info.mode = 0o600  # as dockerd's overlay2 diff writes a whiteout (owner: the 0/0 device's)
            archive.addfile(info)
            continue
        fd = open_beneath(top, rel)  # what the walk found, through no link
        try:
            add_entry(archive, info, fd, st, links)
        finally:
            os.close(fd)
        if opaque:
            marker = tarfile.TarInfo(f"{rel}/{OPAQUE}")
            marker.mtime = info.mtime
            # dockerd gives the marker its directory's permission bits and owner
            marker.mode = info.mode & 0o777
            marker.uid, marker.gid = info.uid, info.gid
            archive.addfile(marker)
