"""A container's files as the container sees them: its rootfs with its bind and volume mounts laid over
it, reached through file descriptors, for `docker cp` both ways, `export` and the lookups of its users.

The rootfs is the container's (an image's files, and whatever its processes write while we look): any
component may be a symlink, and may become one between two calls. So a path is walked one component at
a time from a held descriptor, each opened with O_NOFOLLOW; a symlink met on the way is read from the
descriptor just opened and followed inside the view (an absolute target restarts at the container's `/`,
`..` is taken from our own stack and stops at `/`), and a mount's destination switches to the mount's
source. What the walk returns is a descriptor of what it found; callers act through it (`*at` calls with
`dir_fd=`, reads through `/proc/self/fd/N`), never through a string naming the host path, which a
process in the container could redirect after the check. A tmpfs lives only in the container's mount
namespace and is not part of the view (as before: the directory under it is what `cp` sees).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..images.tarwrite import NOFOLLOW, add_entry, list_dir, tar_info
from ..linux.inroot import RootDir, fd_path

__all__ = ["ContainerView", "ReadOnlyMount", "clean", "read_regular", "read_in_root"]

MAX_LINKS = 255
READ_LIMIT = 16 << 20  # /etc/passwd and the like: more than this is not a user database


def clean(path: str) -> str:
    """An absolute, clean container path ("//x/../y" is "/y": normpath alone keeps a leading "//")."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


class ReadOnlyMount(OSError):
    """A write that would land in a read-only mount (or a read-only rootfs)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EROFS, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass
class _Step:
    cpath: str  # the container path of this directory, symlinks resolved
    fd: int  # O_PATH descriptor
    mount: tuple[str, str, bool] | None  # the mount it lies in (None: the rootfs)


@dataclass
class ContainerView:
    """The container's `/` (its mounted rootfs) with its mounts laid over it."""

    rootfs: str
    name: str = ""  # the container as the request named it, for dockerd's messages
    # (destination, host source, read-write), longest destination first
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)
    readonly_rootfs: bool = False

    @classmethod
    def of(cls, rootfs: str, mount_points: dict[str, Any], readonly_rootfs: bool = False) -> ContainerView:
        mounts = []
        for dest, record in (mount_points or {}).items():
            source = record.get("Source") or ""
            if not source or record.get("Type") == "tmpfs":
                continue  # a tmpfs lives only in the container's mount namespace
            mounts.append((clean(dest), source, bool(record.get("RW", True))))
        mounts.sort(key=lambda m: len(m[0]), reverse=True)
        return cls(rootfs, mounts=mounts, readonly_rootfs=readonly_rootfs)

    def mount_of(self, cpath: str) -> tuple[str, str, bool] | None:
        for mount in self.mounts:
            dest = mount[0]
            if cpath == dest or cpath.startswith(dest.rstrip("/") + "/"):
                return mount
        return None

    def host(self, cpath: str) -> str:
        """The host path of a resolved container path: for messages only (act through `open`)."""
        mount = self.mount_of(cpath)
        if mount is not None:
            rest = cpath[len(mount[0]) :].lstrip("/")
            return os.path.join(mount[1], rest) if rest else mount[1]
        rest = cpath.lstrip("/")
        return os.path.join(self.rootfs, rest) if rest else self.rootfs

    # --- the walk -----------------------------------------------------------------------------------

    def _mount_at(self, cpath: str) -> tuple[str, str, bool] | None:
        for mount in self.mounts:
            if mount[0] == cpath:
                return mount
        return None

    def _walk(self, path: str, follow_last: bool, create: bool) -> tuple[_Step, list[str]]:
        """The deepest existing directory (or, with nothing missing, the object itself) of `path` and the
        components still missing below it; made as directories when `create`."""
        stack = [_Step("/", os.open(self.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), None)]
        todo = _parts(path)
        links = 0
        try:
            while todo:
                part = todo.pop(0)
                if part == "..":
                    if len(stack) > 1:
                        os.close(stack.pop().fd)
                    continue
                top = stack[-1]
                cpath = posixpath.join(top.cpath, part)
                mount = self._mount_at(cpath)
                if mount is not None:
                    # a source the engine was given (a volume's directory, a bind's host path)
                    fd = os.open(mount[1], os.O_PATH | os.O_CLOEXEC)
                else:
                    try:
                        fd = os.open(part, NOFOLLOW, dir_fd=top.fd)
                    except FileNotFoundError:
                        if not create:
                            todo.insert(0, part)
                            break
                        self._check_writable(top)
                        with contextlib.suppress(FileExistsError):  # made meanwhile: taken as it is now
                            os.mkdir(part, 0o755, dir_fd=top.fd)
                        todo.insert(0, part)
                        continue
                    mount = top.mount
                st = os.fstat(fd)
                if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                    target = os.readlink("", dir_fd=fd)  # the link just opened, not the name again
                    os.close(fd)
                    links += 1
                    if links > MAX_LINKS:
                        raise OSError(errno.ELOOP, f"too many levels of symbolic links: {path}")
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop().fd)
                    todo = _parts(target) + todo
                    continue
                if todo and not stat.S_ISDIR(st.st_mode):
                    os.close(fd)
                    if create:
                        raise NotADirectoryError(errno.ENOTDIR, "not a directory", cpath)
                    todo.insert(0, part)
                    break
                stack.append(_Step(cpath, fd, mount))
            found = stack.pop()
        finally:
            for step in stack:
                os.close(step.fd)
        return found, todo

    def _check_writable(self, step: _Step) -> None:
        if step.mount is not None:
            if not step.mount[2]:
                raise ReadOnlyMount("mounted volume is marked read-only")
        elif self.readonly_rootfs:
            raise ReadOnlyMount("container rootfs is marked read-only")

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """`path` as a container path with every symlink followed inside the container (the last part
        only when `follow_last`); missing parts are kept as they are."""
        found, missing = self._walk(path, follow_last, create=False)
        os.close(found.fd)
        return clean(posixpath.join(found.cpath, *missing))

    def open(self, path: str, follow_last: bool = True) -> tuple[int, str]:
        """(an O_PATH descriptor of `path`, its resolved container path); FileNotFoundError when missing."""
        found, missing = self._walk(path, follow_last, create=False)
        if missing:
            os.close(found.fd)
            raise FileNotFoundError(errno.ENOENT, "no such file or directory", path)
        return found.fd, found.cpath

    @contextlib.contextmanager
    def parent_of(self, path: str, *, create: bool = False) -> Iterator[tuple[int, str]]:
        """(descriptor of `path`'s directory, its last component) to act on with `dir_fd=`, as
        `RootDir.parent_of`; with `create` the directory is made and must be writable (not in a read-only
        mount). A path that is itself a mount's destination gives (the mount's source, "."): the directory
        can be merged into, never replaced."""
        cpath = clean(path)
        if cpath != "/" and self._mount_at(self.resolve(cpath, follow_last=False)) is None:
            parent, name = posixpath.split(cpath)
            found, missing = self._walk(parent, True, create=create)
            if missing:
                os.close(found.fd)
                raise FileNotFoundError(errno.ENOENT, "no such file or directory", parent)
        else:
            found, missing = self._walk(cpath, True, create=False)
            name = "."
            if missing:  # (not reached: a mount's source exists)
                os.close(found.fd)
                raise FileNotFoundError(errno.ENOENT, "no such file or directory", cpath)
        try:
            if create:
                self._check_writable(found)
            yield found.fd, name
        finally:
            os.close(found.fd)

    # --- reading ------------------------------------------------------------------------------------

    def read_text(self, path: str) -> str | None:
        """A regular file's text (a user database), None when missing or anything else."""
        try:
            fd, _ = self.open(path)
        except OSError:
            return None
        try:
            return read_regular(fd)
        finally:
            os.close(fd)

    def add_tree(self, archive: tarfile.TarFile, path: str, name: str, *, follow_last: bool) -> None:
        """The tar of `path` (a file, or a directory and everything under it, mounts included) under
        `name`; nothing on the way or under it is followed if it is a symlink, but the last component
        when `follow_last`."""
        fd, cpath = self.open(path, follow_last)
        try:
            self._add(archive, cpath, fd, name, {})
        finally:
            os.close(fd)

    def add_children(self, archive: tarfile.TarFile) -> None:
        """Everything under `/`, named relative to it (an export)."""
        fd = os.open(self.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            self._add_children(archive, "/", fd, "", {})
        finally:
            os.close(fd)

    def _add(self, archive: tarfile.TarFile, cpath: str, fd: int, name: str, links: dict) -> None:
        st = os.fstat(fd)
        add_entry(archive, tar_info(name, st), fd, st, links)
        if stat.S_ISDIR(st.st_mode):
            # `/x/.` names the entries `./a`; `/` names them `/a`, as dockerd's rebase does
            self._add_children(archive, cpath, fd, "./" if name == "." else name.rstrip("/") + "/", links)

    def _add_children(self, archive: tarfile.TarFile, cpath: str, fd: int, prefix: str, links: dict) -> None:
        try:
            names = list_dir(fd)
        except OSError:
            return
        for child in names:
            child_c = posixpath.join(cpath, child)
            mount = self._mount_at(child_c)
            try:
                # a mount below this directory shows its source's content, not the mount point's
                child_fd = (
                    os.open(mount[1], os.O_PATH | os.O_CLOEXEC)
                    if mount is not None
                    else os.open(child, NOFOLLOW, dir_fd=fd)
                )
            except FileNotFoundError:
                continue  # gone meanwhile
            try:
                self._add(archive, child_c, child_fd, prefix + child, links)
            finally:
                os.close(child_fd)


def read_regular(fd: int, limit: int = READ_LIMIT) -> str | None:
    """The text of the regular file the O_PATH `fd` refers to (None for anything else: a FIFO would
    block the daemon, a device read forever)."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        return None
    with os.fdopen(os.open(fd_path(fd), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb") as f:
        return f.read(limit).decode(errors="replace")


def read_in_root(rootfs: str, path: str) -> str | None:
    """A regular file's text at `path` in the root `rootfs`, resolved inside it; None when missing,
    not a regular file or unreadable."""
    try:
        with RootDir(rootfs) as root:
            fd = root.open(path)
    except OSError:
        return None
    try:
        return read_regular(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
