"""What dockerd's init layer gives every container's root besides the runtime's mount points: an empty
`/.dockerenv` (mode 0755, which tools read as "inside Docker") and `/etc/mtab` as a link to /proc/mounts.

Made in the container's own layer at its first start, through `linux/inroot.RootDir` (the image's root is
untrusted: `/etc` may be a link anywhere), never by joining strings. dockerd's init layer lies beneath the
container's layer, so what the container changes later stays: hence once per container, not per start.
build/layer.py leaves both out of diffs and commits, as the init layer is left out.
"""

from __future__ import annotations

import contextlib
import os
import stat

from ..linux.inroot import RootDir

__all__ = ["MTAB_TARGET", "make_init_files"]

MTAB_TARGET = "/proc/mounts"


def make_init_files(rootfs: str) -> None:
    """Create /.dockerenv and /etc/mtab in the mounted root `rootfs` (OSError when it cannot)."""
    with RootDir(rootfs) as root:
        with root.parent_of("/.dockerenv") as (parent, name):
            try:
                fd = os.open(
                    name,
                    os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o755,
                    dir_fd=parent,
                )
            except FileExistsError:
                pass  # the image's own (or a link): left as it is
            else:
                try:
                    os.fchmod(fd, 0o755)
                    os.fchown(fd, 0, 0)
                finally:
                    os.close(fd)
        with root.parent_of("/etc/mtab", create=True) as (parent, name):
            try:
                st = os.lstat(name, dir_fd=parent)
            except FileNotFoundError:
                st = None
            if st is not None:
                if stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=parent) == MTAB_TARGET:
                    return
                if stat.S_ISDIR(st.st_mode):
                    return  # left: replacing it would delete the image's files in the container's layer
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=parent)
            os.symlink(MTAB_TARGET, name, dir_fd=parent)
