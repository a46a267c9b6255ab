"""Tar entries from files on disk, as dockerd's archiver writes them: numeric owners without names,
whole-second mtimes, hard links after the first as links to it, devices and FIFOs, sockets left out.
Shared by a build step's layer (the overlay upper dir) and `docker cp`/`export` (a container's files).

The files may be a container's, changed by its processes while they are read: an entry is given as an
O_PATH descriptor opened without following a symlink (`open_beneath`, or a container view's walk), so
its content is read from what was found, never from whatever a path names by the time it is opened."""

from __future__ import annotations

import errno
import os
import stat
import tarfile

from ..linux.inroot import fd_path

__all__ = ["add_entry", "list_dir", "lstat_beneath", "open_beneath", "tar_info"]

NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def tar_info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    """The entry's header from lstat, type still to be set."""
    info = tarfile.TarInfo(name)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    info.mode = stat.S_IMODE(st.st_mode)
    return info


def open_beneath(dirfd: int, rel: str) -> int:
    """An O_PATH descriptor of `rel` below the directory `dirfd`, no component followed if it is a
    symlink (the last one is opened as the link itself): what a tree walk found, and nothing else.
    FileNotFoundError when it is missing, NotADirectoryError when a parent is not a directory."""
    parts = [p for p in rel.split("/") if p and p != "."]
    if ".." in parts:
        raise ValueError(f"{rel}: '..' in a path below a directory")
    fd = os.dup(dirfd)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            child = os.open(part, NOFOLLOW | (0 if last else os.O_DIRECTORY), dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def lstat_beneath(root: str | os.PathLike[str], rel: str) -> os.stat_result | None:
    """lstat of `rel` below `root` with no symlink followed on the way (an overlay lower layer does not
    follow one either): None when missing, or when a parent is a symlink or not a directory."""
    try:
        top = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fd = open_beneath(top, rel)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None
        raise
    finally:
        os.close(top)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def list_dir(fd: int) -> list[str]:
    """The sorted names in the directory `fd` (an O_PATH descriptor is fine)."""
    readable = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
    try:
        return sorted(os.listdir(readable))
    finally:
        os.close(readable)


def _open_regular(fd: int, st: os.stat_result) -> int:
    """A readable descriptor of the regular file the O_PATH `fd` refers to, if it is still the `st` one."""
    readable = os.open(fd_path(fd), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    now = os.fstat(readable)
    if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
        os.close(readable)
        raise OSError(errno.ESTALE, "changed while being read")
    return readable


def add_entry(
    archive: tarfile.TarFile,
    info: tarfile.TarInfo,
    fd: int,
    st: os.stat_result,
    links: dict[tuple[int, int], str],
) -> None:
    """Add the entry `fd` refers to (an O_PATH descriptor opened with O_NOFOLLOW, see `open_beneath`;
    `st` its stat) under `info`: a directory's own entry only (the caller walks it), a file's content read
    through the descriptor, a symlink, a hard link to an entry already added (`links`: inode -> entry
    name), a device or a FIFO. A socket has no tar form and is left out."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink("", dir_fd=fd)  # the link found, not a name resolved again
    elif stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type = tarfile.LNKTYPE
            info.linkname = links[key]
        else:
            links[key] = info.name
            info.size = st.st_size
            with os.fdopen(_open_regular(fd, st), "rb") as f:
                archive.addfile(info, f)
            return
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    else:
        return
    archive.addfile(info)
