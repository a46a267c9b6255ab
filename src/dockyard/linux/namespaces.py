"""unshare(2) and setns(2) through libc (os.unshare and os.setns arrive only in Python 3.12)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# OCI namespace type -> clone flag
NAMESPACE_FLAGS = {
    "mount": CLONE_NEWNS,
    "network": CLONE_NEWNET,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "pid": CLONE_NEWPID,
    "cgroup": CLONE_NEWCGROUP,
    "user": CLONE_NEWUSER,
    "time": CLONE_NEWTIME,
}


def unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


def setns(fd: int, nstype: int = 0) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def loopback_up() -> None:
    """Bring `lo` of the current network namespace up (a new one has it down), as Docker's sandbox does."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _in_thread(fn: Callable[[], T]) -> T:
    """Run `fn` in a fresh thread: whatever namespace it enters ends with the thread, never leaking into the
    caller's (a network namespace is per thread)."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException as e:  # handed to the caller
            error.append(e)

    thread = threading.Thread(target=run, name="netns")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def create_netns(path: str, then: Callable[[], T]) -> T:
    """A new network namespace kept by a bind mount at `path` (as `ip netns add` does), with `lo` up; `then`
    runs inside it (a socket it opens stays bound to the new namespace)."""
    from .mount import MS_BIND, mount

    def make() -> T:
        unshare(CLONE_NEWNET)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.close(fd)
        try:
            mount("/proc/thread-self/ns/net", path, None, MS_BIND)
            loopback_up()
            return then()
        except BaseException:
            remove_netns(path)
            raise

    return _in_thread(make)


def enter_netns(path: str, then: Callable[[], T]) -> T:
    """Run `then` inside the network namespace bound at `path` (a /proc/<pid>/ns/net works too)."""

    def enter() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        return then()

    return _in_thread(enter)


def remove_netns(path: str) -> None:
    """Drop the bind mount keeping a namespace (it dies with its last process) and its file."""
    from .mount import MNT_DETACH, umount

    try:
        umount(path, MNT_DETACH)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
