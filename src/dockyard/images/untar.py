"""A tar unpacked inside a tree that may hold hostile symlinks: `docker cp` into a container, a build's
`ADD` of a local archive, the build context.

Each entry's directory is resolved by the tree (`scope.parent_of(path, create=True)`: a `RootDir`, which
resolves as if its root were `/`, or a container's view with its mounts) and the entry is made with
`*at` calls relative to that directory's descriptor, its own name never followed: an entry that names
a symlink made by an earlier entry (`a -> /etc`, then `a/passwd`) lands where the link points *inside*
the tree, a hard link's target is looked up the same way, and whatever stands at an entry's name is
removed first (a directory merged into a directory), so writing a file never writes through a link or
into another file's inode. Directory owners, modes and times are set last, as tar does.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tarfile
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from ..linux.inroot import fd_path

__all__ = ["ExtractError", "Scope", "UntarOptions", "untar"]

_CHUNK = 1 << 20


class ExtractError(Exception):
    """An entry the options refuse (dockerd's messages, one line)."""


class Scope(Protocol):
    def parent_of(self, path: str, *, create: bool = False) -> AbstractContextManager[tuple[int, str]]: ...


@dataclass
class UntarOptions:
    same_owner: bool = True  # entries owned as the archive says (as root); False: by us
    owner: tuple[int, int] | None = None  # every entry owned by this instead (cp's copyUIDGID)
    devices: bool = True  # device nodes made; False: left out (a client's build context)
    no_overwrite_dir_non_dir: bool = False  # cp's noOverwriteDirNonDir


def _lstat_at(dirfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def chmod_at(dirfd: int, name: str, mode: int) -> None:
    """chmod of `name` in `dirfd`, never through a symlink (Linux has no lchmod): through a descriptor."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        if not stat.S_ISLNK(os.fstat(fd).st_mode):
            os.chmod(fd_path(fd), mode)
    finally:
        os.close(fd)


def remove_at(dirfd: int, name: str, st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dirfd)
    else:
        os.unlink(name, dir_fd=dirfd)


def _write(fd: int, source: tarfile.ExFileObject | None) -> None:
    while source is not None and (chunk := source.read(_CHUNK)):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


def untar(
    archive: tarfile.TarFile, scope: Scope, base: str = "/", options: UntarOptions | None = None
) -> int:
    """Unpack `archive` into the directory `base` of `scope` (entries' names are cleaned: `..` stops at
    `base`'s root); the number of entries made. Raises ExtractError for an entry the options refuse,
    OSError for what the filesystem refuses."""
    options = options or UntarOptions()
    dirs: list[tuple[str, tarfile.TarInfo]] = []
    made = 0
    for member in archive:
        rel = posixpath.normpath("/" + member.name).lstrip("/")
        if not rel or rel == ".":
            continue  # the archive's root ("./"): `base` itself
        path = posixpath.join(base, rel)
        if member.isdir():
            dirs.append((path, member))
        with scope.parent_of(path, create=True) as (dirfd, name):
            if _make(archive, member, scope, base, dirfd, name, path, options):
                made += 1
    # directories last, as tar does: their times would change with every entry written into them
    for path, member in reversed(dirs):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            with scope.parent_of(path) as (dirfd, name):
                st = _lstat_at(dirfd, name)
                if st is None or not stat.S_ISDIR(st.st_mode):
                    continue  # replaced by a later entry
                _metadata(dirfd, name, member, options)
    return made


def _owner(member: tarfile.TarInfo, options: UntarOptions) -> tuple[int, int] | None:
    if options.owner is not None:
        return options.owner
    return (member.uid, member.gid) if options.same_owner else None


def _make(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    scope: Scope,
    base: str,
    dirfd: int,
    name: str,
    path: str,
    options: UntarOptions,
) -> bool:
    existing = _lstat_at(dirfd, name)
    if existing is not None:
        is_dir = stat.S_ISDIR(existing.st_mode)
        if options.no_overwrite_dir_non_dir and is_dir and not member.isdir():
            raise ExtractError(f'cannot overwrite directory "{path}" with non-directory "{member.name}"')
        if options.no_overwrite_dir_non_dir and not is_dir and member.isdir():
            raise ExtractError(f'cannot overwrite non-directory "{path}" with directory "{member.name}"')
        if not (is_dir and member.isdir()):
            if name == ".":
                raise ExtractError(f'cannot overwrite the mount point "{path}" with "{member.name}"')
            remove_at(dirfd, name, existing)
    if member.isdir():
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            os.mkdir(name, 0o700, dir_fd=dirfd)
        return True  # its owner, mode and times at the end
    owner = _owner(member, options)
    if member.isreg():
        fd = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dirfd
        )
        try:
            _write(fd, archive.extractfile(member))
            if owner is not None:  # before chmod: chown clears setuid/setgid bits
                os.fchown(fd, *owner)
            os.fchmod(fd, member.mode & 0o7777)
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)
        return True
    if member.issym():
        os.symlink(member.linkname, name, dir_fd=dirfd)
    elif member.islnk():
        target = posixpath.join(base, posixpath.normpath("/" + member.linkname).lstrip("/"))
        # the target's directory resolved in the tree, its last component not followed (a hard link to
        # a symlink is a symlink), as link(2) and dockerd's untar do
        with scope.parent_of(target) as (source_fd, source_name):
            os.link(source_name, name, src_dir_fd=source_fd, dst_dir_fd=dirfd, follow_symlinks=False)
        return True
    elif member.ischr() or member.isblk():
        if not options.devices:
            return False
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=dirfd)
    elif member.isfifo():
        os.mkfifo(name, 0o600, dir_fd=dirfd)
    else:
        return False
    _metadata(dirfd, name, member, options)
    return True


def _metadata(dirfd: int, name: str, member: tarfile.TarInfo, options: UntarOptions) -> None:
    owner = _owner(member, options)
    if owner is not None:
        os.chown(name, *owner, dir_fd=dirfd, follow_symlinks=False)
    if not member.issym():
        chmod_at(dirfd, name, member.mode & 0o7777)
    os.utime(name, (member.mtime, member.mtime), dir_fd=dirfd, follow_symlinks=False)
