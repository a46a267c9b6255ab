"""Capability sets through capget(2)/capset(2) and prctl(2), by capability number (linux/capability.h)."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

from .process import (
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_CAP_AMBIENT_RAISE,
    PR_CAPBSET_DROP,
    PR_CAPBSET_READ,
    prctl,
)

_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("effective", "permitted", "inheritable")]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.capget.argtypes = [ctypes.POINTER(_Header), ctypes.POINTER(_Data)]
_libc.capset.argtypes = [ctypes.POINTER(_Header), ctypes.POINTER(_Data)]


# Every capability the kernel knows, indexed by number (linux/capability.h, up to 5.9's 40).
ALL_CAPABILITIES = tuple(
    "CAP_" + name
    for name in (
        "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE "
        "NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO "
        "SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG "
        "MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM "
        "BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"
    ).split()
)


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 40  # CAP_CHECKPOINT_RESTORE, 5.9


def _mask(caps: Iterable[int]) -> int:
    value = 0
    for cap in caps:
        value |= 1 << cap
    return value


def _split(mask: int) -> tuple[int, int]:
    return mask & 0xFFFFFFFF, mask >> 32


def capget() -> tuple[int, int, int]:
    """This process's (effective, permitted, inheritable) sets as bit masks."""
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if _libc.capget(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capget: {os.strerror(err)}")
    return tuple(  # type: ignore[return-value]
        getattr(data[0], name) | getattr(data[1], name) << 32
        for name in ("effective", "permitted", "inheritable")
    )


def capset(effective: Iterable[int], permitted: Iterable[int], inheritable: Iterable[int]) -> None:
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for name, caps in (("effective", effective), ("permitted", permitted), ("inheritable", inheritable)):
        low, high = _split(_mask(caps))
        setattr(data[0], name, low)
        setattr(data[1], name, high)
    if _libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def bounding_set() -> frozenset[str]:
    """Names of the capabilities this process may still grant (its bounding set, CapBnd): a privileged
    container gets these, since asking for one outside it makes capset fail."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return frozenset(n for i, n in enumerate(ALL_CAPABILITIES) if mask >> i & 1)
    return frozenset(ALL_CAPABILITIES)


def in_bounding_set(cap: int) -> bool:
    return prctl(PR_CAPBSET_READ, cap) == 1


def drop_bounding(cap: int) -> None:
    prctl(PR_CAPBSET_DROP, cap)


def clear_ambient() -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)


def raise_ambient(cap: int) -> None:
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)
