"""prctl(2) for the process attributes a container's init (and the runtime, for itself) sets."""

from __future__ import annotations

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    rc = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return rc


def set_child_subreaper(on: bool = True) -> None:
    prctl(PR_SET_CHILD_SUBREAPER, int(on))


def is_child_subreaper() -> bool:
    value = ctypes.c_int(0)
    if _libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.addressof(value), 0, 0, 0) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_GET_CHILD_SUBREAPER): {os.strerror(err)}")
    return bool(value.value)


def set_parent_death_signal(signum: int) -> None:
    prctl(PR_SET_PDEATHSIG, signum)


def set_keep_capabilities(on: bool) -> None:
    prctl(PR_SET_KEEPCAPS, int(on))


def set_no_new_privileges() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def set_dumpable(on: bool) -> None:
    """PR_SET_DUMPABLE. Off, only a process with CAP_SYS_PTRACE may ptrace this one or open its
    /proc/PID/exe, fd, mem, environ... (its /proc/PID files become root's), whatever its user. Inherited
    by fork; execve of a readable, non-setuid program turns it back on; a change of euid, egid or
    filesystem ids sets it to /proc/sys/fs/suid_dumpable (0 by default)."""
    prctl(PR_SET_DUMPABLE, int(on))


def get_dumpable() -> int:
    """0 (not dumpable), 1 (dumpable) or 2 (dumpable, readable by root only: suid_dumpable 2)."""
    return prctl(PR_GET_DUMPABLE)
