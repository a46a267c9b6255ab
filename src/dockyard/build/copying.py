"""COPY and ADD into a build step's rootfs: the image below may be anyone's, with any component of the
destination a symlink (absolute, `..`, chains, loops).

The destination is resolved inside the rootfs (`RootDir`: as if it were `/`), and everything is written
relative to directory descriptors with each entry's own name never followed: an existing entry where a
copied one goes is replaced unless both are directories (as dockerd's untar: a link in the image where
the source has a directory becomes that directory), so nothing is written through a link. A local
archive that ADD unpacks is confined to its destination directory, as dockerd's chrooted untar is.
Sources (the context, or another stage's rootfs for --from) are read by their resolved paths: nothing
runs in them while the step copies.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile

from ..containers.pathview import read_regular
from ..images.untar import UntarOptions, chmod_at, remove_at, untar
from ..linux.inroot import RootDir, fd_path
from .context import SourceFile

__all__ = ["CopyError", "copy_source", "parse_chown", "make_workdir"]

_CHUNK = 1 << 20


class CopyError(Exception):
    """A COPY/ADD the builder refuses (its message, one line)."""


def _lookup(root: RootDir, path: str, name: str, kind: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        fd = root.open(path)
    except OSError:
        text = None
    else:
        try:
            text = read_regular(fd)
        except OSError:
            text = None
        finally:
            os.close(fd)
    for line in (text or "").splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[0] == name:
            try:
                return int(parts[2])
            except ValueError:
                break
    raise CopyError(
        "unable to convert uid/gid chown string to host mapping: "
        f"can't find {'uid' if kind == 'user' else 'gid'} for {kind} {name}: no such {kind}: {name}"
    )


def parse_chown(chown: str, root: RootDir) -> tuple[int, int]:
    parts = chown.split(":")
    if len(parts) > 2:
        raise CopyError(
            "unable to convert uid/gid chown string to host mapping: invalid chown string format: " + chown
        )
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return _lookup(root, "/etc/passwd", user, "user"), _lookup(root, "/etc/group", group, "group")


def make_workdir(root: RootDir, path: str) -> None:
    """WORKDIR's directory, made inside the root wherever its links lead."""
    os.close(root.mkdirs(path))


def _mkdirs(root: RootDir, path: str, identity: tuple[int, int] | None) -> int:
    """mkdir -p inside the root, each directory it makes 0755 and owned by `identity`: an O_PATH fd."""
    parts = [p for p in path.split("/") if p and p != "."]
    for i in range(1, len(parts) + 1):
        prefix = "/" + "/".join(parts[:i])
        try:
            os.close(root.open_dir(prefix))
            continue
        except FileNotFoundError:
            pass
        fd = root.mkdirs(prefix)
        try:
            os.chmod(fd_path(fd), 0o755)  # whatever the umask
            if identity is not None:
                os.chown(fd_path(fd), *identity)
        finally:
            os.close(fd)
    return root.open_dir(path)


def _is_archive(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def copy_source(
    source: SourceFile, root: RootDir, dest: str, identity: tuple[int, int] | None, decompress: bool
) -> None:
    """One COPY/ADD source into `dest` (a path in the root; a trailing "/" names a directory)."""
    src = source.path
    if os.path.isdir(src) and not os.path.islink(src):
        directory = _mkdirs(root, dest, identity)
        try:
            _copy_tree(src, directory, identity)
        finally:
            os.close(directory)
        return
    if decompress and _is_archive(src):
        # dockerd's UntarPath: --chown applies neither to the destination nor to the archive's files
        directory = _mkdirs(root, dest, None)
        try:
            _extract(src, directory)
        finally:
            os.close(directory)
        return
    is_dir = False
    try:
        fd = root.open(dest)
    except (FileNotFoundError, NotADirectoryError):
        pass
    else:
        is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        os.close(fd)
    if dest.endswith("/") or is_dir:
        directory = _mkdirs(root, dest, identity)
        name = os.path.basename(source.rel.rstrip("/")) or os.path.basename(src)
    else:
        directory = _mkdirs(root, posixpath.dirname(dest.rstrip("/")) or "/", identity)
        name = posixpath.basename(dest.rstrip("/"))
    try:
        _copy_entry(src, directory, name, identity)
    finally:
        os.close(directory)


def _copy_entry(src: str, dirfd: int, name: str, identity: tuple[int, int] | None) -> None:
    """`src` as `name` in the directory `dirfd`; what was there is replaced unless both are directories
    (a link there is replaced, never followed)."""
    st = os.lstat(src)
    try:
        existing = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    if existing is not None and not (stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(existing.st_mode)):
        remove_at(dirfd, name, existing)
        existing = None
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), name, dir_fd=dirfd)
    elif stat.S_ISDIR(st.st_mode):
        if existing is None:
            os.mkdir(name, 0o755, dir_fd=dirfd)
    elif stat.S_ISREG(st.st_mode):
        out = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dirfd
        )
        with open(src, "rb") as fin, os.fdopen(out, "wb") as fout:
            shutil.copyfileobj(fin, fout, _CHUNK)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(name, 0o600, dir_fd=dirfd)
    else:
        return  # devices and sockets are not copied
    uid, gid = identity if identity is not None else (st.st_uid, st.st_gid)
    os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        chmod_at(dirfd, name, stat.S_IMODE(st.st_mode))
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dirfd, follow_symlinks=False)


def _open_child_dir(dirfd: int, name: str) -> int:
    return os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)


def _copy_tree(src: str, dirfd: int, identity: tuple[int, int] | None) -> None:
    """The content of the directory `src` into the directory `dirfd`, directories' times after their
    content."""
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        _copy_entry(entry.path, dirfd, entry.name, identity)
        if entry.is_dir(follow_symlinks=False):
            child = _open_child_dir(dirfd, entry.name)
            try:
                _copy_tree(entry.path, child, identity)
                st = entry.stat(follow_symlinks=False)
                os.utime(fd_path(child), ns=(st.st_atime_ns, st.st_mtime_ns))
            finally:
                os.close(child)


def _extract(archive_path: str, dirfd: int) -> None:
    """ADD of a local tar: unpacked inside the destination directory (its links resolved as if it were
    `/`), owners from the archive (as Docker, even with --chown)."""
    with RootDir(fd_path(dirfd)) as scope, tarfile.open(archive_path, "r:*") as archive:
        untar(archive, scope, "/", UntarOptions(same_owner=os.geteuid() == 0))
