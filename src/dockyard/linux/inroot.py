"""Paths inside an untrusted root filesystem, resolved through file descriptors, never by string.

An image may make any component of any path a symlink: absolute (`/dev -> /tmp/host`), relative, chains,
`..` past the top, loops. Joining `rootfs + "/dev/null"` and handing the string to the kernel follows
those links on the host. Everything here resolves a path as if the root were `/` and returns an O_PATH
descriptor; callers act on the descriptor (`mount` onto `fd_path(fd)`, `mknod`/`symlink`/`open` with
`dir_fd=`), so a link changed after the check cannot redirect the act.

`openat2(2)` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` (Linux 5.6) does the resolution in the kernel,
safely against concurrent renames. Where it is missing (ENOSYS, or a seccomp filter saying EPERM), the
same resolution is done in userspace one component at a time with O_NOFOLLOW, `..` taken from our own
stack of descriptors rather than the filesystem's, and the result's real path is checked to be inside the
root before use, as runc's securejoin does. Creating missing components (`mkdirs`, `create`) always walks
in userspace, since the kernel resolves only what exists; each created entry is opened with O_NOFOLLOW.

A path that would resolve outside the root (possible only through a race or a bind mount whose target
moved) raises `PathEscape`, one line, never followed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections.abc import Iterator

__all__ = [
    "PathEscape",
    "RootDir",
    "fd_path",
    "openat2_available",
]

SYS_openat2 = 437  # the same number on every architecture (added after the syscall tables were unified)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

MAX_SYMLINKS = 255  # the kernel's own limit is 40; runc's securejoin allows 255

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class PathEscape(OSError):
    """A path that resolves outside the container's root."""

    def __init__(self, path: str, root: str):
        super().__init__(errno.EXDEV, f"{path} resolves outside the container's root {root}")


_openat2_works: bool | None = None


def _openat2(dirfd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _libc.syscall(SYS_openat2, dirfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def openat2_available() -> bool:
    """Whether the kernel (and any seccomp filter over us) lets openat2 through."""
    global _openat2_works
    if _openat2_works is None:
        try:
            os.close(_openat2(-100, "/", os.O_PATH, 0, RESOLVE_IN_ROOT))  # AT_FDCWD
            _openat2_works = True
        except OSError as e:
            if e.errno not in (errno.ENOSYS, errno.EPERM, errno.EINVAL):
                raise
            _openat2_works = False
    return _openat2_works


def fd_path(fd: int) -> str:
    """The magic link through which mount(2) and friends act on the object `fd` refers to."""
    return f"/proc/self/fd/{fd}"


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


class RootDir:
    """A container's root, held open. Use as a context manager, or close() it.

    `root` is a host path (before pivot_root) or "/" (after it, where it changes nothing but is harmless).
    Every method takes a path as the container sees it ("/etc/hosts", "dev/null", "../../x"), resolved
    inside this root."""

    def __init__(self, root: str):
        self.root = root
        self.fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.real = os.path.realpath(root)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RootDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- resolution ---------------------------------------------------------------------------------

    def open(self, path: str, flags: int = os.O_PATH, mode: int = 0, *, follow: bool = True) -> int:
        """An fd of `path` in the root, opened with `flags` (O_PATH by default). `follow=False` does not
        follow a symlink as the last component (O_NOFOLLOW: the link itself with O_PATH). Raises
        FileNotFoundError and the like as open(2) would, PathEscape for a way out."""
        if not follow:
            flags |= os.O_NOFOLLOW
        if openat2_available():
            return _openat2(self.fd, path, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        if follow:
            fd, missing = self._existing_prefix(path)
            if missing:
                os.close(fd)
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        else:
            parent, name = self._walk_parent(path)
            try:
                fd = os.open(name or ".", os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
            finally:
                os.close(parent)
            self._check(fd, path)
        if flags & os.O_DIRECTORY and not stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        if flags & os.O_PATH:
            return fd
        try:  # the object already found, opened for real through its descriptor: nothing resolved again
            return os.open(fd_path(fd), (flags & ~os.O_NOFOLLOW) | os.O_CLOEXEC, mode)
        finally:
            os.close(fd)

    def open_dir(self, path: str) -> int:
        return self.open(path, os.O_PATH | os.O_DIRECTORY)

    def resolve(self, path: str) -> str:
        """The host path that `path` resolves to now, for reading only (a string is stale once returned:
        use `open` to act)."""
        fd = self.open(path)
        try:
            return os.readlink(fd_path(fd))
        finally:
            os.close(fd)

    # --- creation -----------------------------------------------------------------------------------

    def mkdirs(self, path: str, mode: int = 0o755) -> int:
        """An O_PATH fd of directory `path`, creating what is missing (mkdir -p in the root). A missing
        component behind a symlink is created where the symlink points, inside the root."""
        fd, missing = self._existing_prefix(path)
        try:
            for part in missing:
                with contextlib.suppress(FileExistsError):  # made meanwhile: open it as it is now
                    os.mkdir(part, mode, dir_fd=fd)
                child = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        return fd

    def create(self, path: str, directory: bool, mode: int = 0o755) -> int:
        """An O_PATH fd of `path`, made when missing: a directory, or an empty file (a mount point for a
        file bind). An existing symlink at the end is followed inside the root."""
        if directory:
            return self.mkdirs(path, mode)
        parent_path, name = os.path.split("/" + "/".join(_parts(path)))
        if not name:
            return self.mkdirs("/", mode)
        with contextlib.suppress(FileNotFoundError):
            return self.open(path)
        parent = self.mkdirs(parent_path)
        try:
            try:
                fd = os.open(
                    name,
                    os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC,
                    mode,
                    dir_fd=parent,
                )
                os.close(fd)
            except FileExistsError:
                pass  # a dangling symlink, or made meanwhile
            target = self._link_target(parent, name)
            if target is not None:  # dangling symlink: make the file where it points, inside the root
                dest = target if target.startswith("/") else self._join(parent, target)
                os.close(parent)
                parent = -1
                return self.create(dest, False, mode)
            return os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        finally:
            if parent >= 0:
                os.close(parent)

    @contextlib.contextmanager
    def parent_of(self, path: str, *, create: bool = False) -> Iterator[tuple[int, str]]:
        """(fd of `path`'s directory, its last component): for mknod/symlink/unlink with dir_fd=. The
        directory is made when `create`."""
        parent_path, name = os.path.split("/" + "/".join(_parts(path)))
        if not name or name == "..":
            raise IsADirectoryError(errno.EISDIR, "not a name in a directory", path)
        fd = self.mkdirs(parent_path) if create else self.open_dir(parent_path)
        try:
            yield fd, name
        finally:
            os.close(fd)

    # --- the userspace walk -------------------------------------------------------------------------

    def _link_target(self, dirfd: int, name: str) -> str | None:
        try:
            return os.readlink(name, dir_fd=dirfd)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.ENOENT):
                return None  # not a symlink, or not there
            raise

    def _join(self, dirfd: int, relative: str) -> str:
        """`relative` taken from the directory `dirfd`, as a path from the root."""
        here = os.readlink(fd_path(dirfd))
        inside = self._relative_to_root(here)
        return "/" + "/".join([*_parts(inside), relative])

    def _relative_to_root(self, real: str) -> str:
        if self.real == "/":
            return real
        if real == self.real:
            return "/"
        if not real.startswith(self.real + "/"):
            raise PathEscape(real, self.root)
        return real[len(self.real) :]

    def _check(self, fd: int, path: str) -> None:
        try:
            self._relative_to_root(os.readlink(fd_path(fd)))
        except PathEscape:
            os.close(fd)
            raise PathEscape(path, self.root) from None

    def _existing_prefix(self, path: str) -> tuple[int, list[str]]:
        """The deepest directory of `path` that exists (an fd), and the components still missing under it,
        symlinks resolved in the root."""
        stack = [os.dup(self.fd)]
        todo = _parts(path)
        links = 0
        try:
            while todo:
                part = todo.pop(0)
                if part == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                try:
                    fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
                except FileNotFoundError:
                    todo.insert(0, part)
                    break
                st = os.fstat(fd)
                if stat.S_ISLNK(st.st_mode):
                    os.close(fd)
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                    target = os.readlink(part, dir_fd=stack[-1])
                    if target.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                    todo = _parts(target) + todo
                    continue
                if not stat.S_ISDIR(st.st_mode) and todo:
                    os.close(fd)
                    raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                stack.append(fd)
            result = stack.pop()
        finally:
            for fd in stack:
                os.close(fd)
        self._check(result, path)
        return result, todo

    def _walk_parent(self, path: str) -> tuple[int, str | None]:
        """For the fallback open: the fd of the directory holding the last component, and that name (None
        when the path is the root itself). Intermediate symlinks are resolved; a missing one is ENOENT."""
        parts = _parts(path)
        while parts and parts[-1] == "..":
            # "a/b/.." names a's directory: resolve it whole
            fd, missing = self._existing_prefix("/".join(parts))
            if missing:
                os.close(fd)
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
            return fd, None
        if not parts:
            return os.dup(self.fd), None
        fd, missing = self._existing_prefix("/".join(parts[:-1]))
        if missing:
            os.close(fd)
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return fd, parts[-1]
