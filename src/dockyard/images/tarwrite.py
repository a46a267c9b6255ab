"""Tar entries from files on disk, as dockerd's archiver writes them: numeric owners without names,
whole-second mtimes, hard links after the first as links to it, devices and FIFOs, sockets left out.
Shared by a build step's layer (the overlay upper dir) and `docker cp`/`export` (a container's files)."""

from __future__ import annotations

import os
import stat
import tarfile


def tar_info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    """The entry's header from lstat, type still to be set."""
    info = tarfile.TarInfo(name)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    info.mode = stat.S_IMODE(st.st_mode)
    return info


def add_entry(
    archive: tarfile.TarFile,
    info: tarfile.TarInfo,
    path: str | os.PathLike[str],
    st: os.stat_result,
    links: dict[tuple[int, int], str],
) -> None:
    """Add `path` (its lstat `st`) under `info`: a directory's own entry only (the caller walks it), a file's
    content, a symlink, a hard link to an entry already added (`links`: inode -> entry name), a device or a
    FIFO. A socket has no tar form and is left out."""
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
    elif stat.S_ISREG(mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            info.type = tarfile.LNKTYPE
            info.linkname = links[key]
        else:
            links[key] = info.name
            info.size = st.st_size
            with open(path, "rb") as f:
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
