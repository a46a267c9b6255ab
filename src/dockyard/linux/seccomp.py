"""Seccomp filters through libseccomp (`libseccomp.so.2`, Debian's libseccomp2) over ctypes.

An OCI `linux.seccomp` object is turned into a `Filter` first (`compile_filter`: pure, checks every action,
operator, architecture and flag, so a bad profile is reported before any fork), then handed to libseccomp
and loaded into the kernel (`load_filter`) by the process that will exec the container's command. The rules
follow runc's reading of the spec:

- a syscall name libseccomp does not know is skipped (the profile may name syscalls newer than the library);
- a rule whose action is the default action is skipped (libseccomp refuses it and it changes nothing);
- conditions on distinct arguments are ANDed in one rule; several conditions on the same argument become one
  rule each, ORed (libseccomp cannot AND two comparisons of one argument): Docker's `personality` rule;
- ERRNO and TRACE without `errnoRet` return EPERM;
- the filter does not set no_new_privs itself: the runtime sets it when the spec asks, and otherwise loads
  the filter while it still holds CAP_SYS_ADMIN.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ArgCondition",
    "Filter",
    "Rule",
    "SeccompError",
    "compile_filter",
    "ensure_library",
    "export_bpf",
    "kernel_supports_seccomp",
    "libseccomp_version",
    "load_filter",
]


class SeccompError(Exception):
    """A profile the runtime cannot load, or libseccomp missing or refusing it; one line for the user."""


# libseccomp's action values (seccomp.h)
_ACT_KILL_PROCESS = 0x80000000
_ACT_KILL_THREAD = 0x00000000
_ACT_TRAP = 0x00030000
_ACT_ERRNO = 0x00050000
_ACT_TRACE = 0x7FF00000
_ACT_LOG = 0x7FFC0000
_ACT_ALLOW = 0x7FFF0000

_ACTIONS = {
    "SCMP_ACT_KILL": _ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": _ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": _ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": _ACT_TRAP,
    "SCMP_ACT_ERRNO": _ACT_ERRNO,
    "SCMP_ACT_TRACE": _ACT_TRACE,
    "SCMP_ACT_LOG": _ACT_LOG,
    "SCMP_ACT_ALLOW": _ACT_ALLOW,
}

# enum scmp_compare
_OPERATORS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

# the architectures the OCI spec names, as libseccomp spells them for seccomp_arch_resolve_name
_ARCHES = {
    f"SCMP_ARCH_{name.upper()}": name
    for name in (
        "x86 x86_64 x32 arm aarch64 mips mips64 mips64n32 mipsel mipsel64 mipsel64n32 "
        "ppc ppc64 ppc64le s390 s390x parisc parisc64 riscv64"
    ).split()
}

# enum scmp_filter_attr
_ATTR_CTL_NNP = 3
_ATTR_CTL_TSYNC = 4
_ATTR_CTL_LOG = 6
_ATTR_CTL_SSB = 7
_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": _ATTR_CTL_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": _ATTR_CTL_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": _ATTR_CTL_SSB,
}

_NR_SCMP_ERROR = -1  # seccomp_syscall_resolve_name: a name libseccomp does not know
_MAX_ARGS = 6


@dataclass(frozen=True)
class ArgCondition:
    index: int
    op: int
    value: int
    value_two: int = 0


@dataclass(frozen=True)
class Rule:
    syscall: str
    action: int
    conditions: tuple[ArgCondition, ...] = ()


@dataclass(frozen=True)
class Filter:
    default_action: int
    architectures: tuple[str, ...]  # libseccomp names; the native one is always in the filter
    rules: tuple[Rule, ...]
    attributes: tuple[tuple[int, int], ...] = ()  # (scmp_filter_attr, value) from the spec's flags


def _action(name: Any, errno_ret: Any, where: str) -> int:
    if name == "SCMP_ACT_NOTIFY":
        raise SeccompError(f"{where}: SCMP_ACT_NOTIFY is not supported by the built-in runtime")
    if name not in _ACTIONS:
        raise SeccompError(f"{where}: invalid action {name!r}")
    value = _ACTIONS[name]
    if value in (_ACT_ERRNO, _ACT_TRACE):
        code = errno.EPERM if errno_ret is None else errno_ret
        if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code <= 0xFFFF:
            raise SeccompError(f"{where}: invalid errnoRet {errno_ret!r}")
        return value | code
    if errno_ret is not None:
        raise SeccompError(f"{where}: errnoRet is only valid with SCMP_ACT_ERRNO and SCMP_ACT_TRACE")
    return value


def _uint64(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
        raise SeccompError(f"invalid seccomp argument {what}: {value!r}")
    return value


def _conditions(args: Any, name: str) -> list[ArgCondition]:
    out = []
    for arg in args or []:
        if not isinstance(arg, dict):
            raise SeccompError(f"syscall {name}: each of args must be an object")
        index = arg.get("index", 0)
        if not isinstance(index, int) or not 0 <= index < _MAX_ARGS:
            raise SeccompError(f"syscall {name}: argument index {index!r} out of range (0-5)")
        op = arg.get("op")
        if op not in _OPERATORS:
            raise SeccompError(f"syscall {name}: invalid operator {op!r}")
        out.append(
            ArgCondition(
                index,
                _OPERATORS[op],
                _uint64(arg.get("value", 0), "value"),
                _uint64(arg.get("valueTwo", 0), "valueTwo"),
            )
        )
    return out


def compile_filter(seccomp: dict[str, Any]) -> Filter:
    """Check an OCI `linux.seccomp` object and turn it into rules; SeccompError names what is wrong."""
    if not isinstance(seccomp, dict):
        raise SeccompError("linux.seccomp must be an object")
    if seccomp.get("listenerPath"):
        raise SeccompError("seccomp listenerPath (SCMP_ACT_NOTIFY) is not supported by the built-in runtime")
    default = _action(seccomp.get("defaultAction"), seccomp.get("defaultErrnoRet"), "defaultAction")
    arches = []
    for arch in seccomp.get("architectures") or []:
        if arch not in _ARCHES:
            raise SeccompError(f"invalid seccomp architecture {arch!r}")
        arches.append(_ARCHES[arch])
    attributes = []
    for flag in seccomp.get("flags") or []:
        if flag not in _FLAGS:
            raise SeccompError(f"seccomp flag {flag!r} is not supported")
        attributes.append((_FLAGS[flag], 1))
    rules: list[Rule] = []
    for entry in seccomp.get("syscalls") or []:
        if not isinstance(entry, dict):
            raise SeccompError("each of linux.seccomp.syscalls must be an object")
        names = entry.get("names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise SeccompError("linux.seccomp.syscalls[].names must be a list of syscall names")
        where = f"syscall {names[0] if names else '?'}"
        action = _action(entry.get("action"), entry.get("errnoRet"), where)
        conditions = _conditions(entry.get("args"), names[0] if names else "?")
        if action == default:
            continue
        indexes = [c.index for c in conditions]
        if len(set(indexes)) == len(indexes):
            groups = [tuple(conditions)]
        else:
            groups = [(c,) for c in conditions]
        for name in names:
            rules.extend(Rule(name, action, group) for group in groups)
    return Filter(default, tuple(dict.fromkeys(arches)), tuple(rules), tuple(attributes))


# --- libseccomp --------------------------------------------------------------------------------------


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


_lib: ctypes.CDLL | None = None


def _library() -> ctypes.CDLL:
    global _lib
    if _lib is not None:
        return _lib
    name = "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        found = ctypes.util.find_library("seccomp")
        if not found:
            raise SeccompError(
                "seccomp profiles need libseccomp (libseccomp.so.2, Debian package libseccomp2), "
                "which is not installed"
            ) from None
        lib = ctypes.CDLL(found, use_errno=True)
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.restype = None
    lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    lib.seccomp_arch_exist.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_version.restype = ctypes.c_void_p
    _lib = lib
    return lib


def ensure_library() -> None:
    """Map libseccomp now. A runtime calls this before it forks and pivots into the container's root,
    where the host's library is out of reach; raises SeccompError when it is missing."""
    _library()


def libseccomp_version() -> str | None:
    """libseccomp's version ("2.5.4"), or None when the library is missing."""
    try:
        lib = _library()
    except SeccompError:
        return None
    version = ctypes.cast(lib.seccomp_version(), ctypes.POINTER(ctypes.c_uint * 3)).contents
    return ".".join(str(v) for v in version)


def kernel_supports_seccomp() -> bool:
    """Whether this kernel has seccomp filters (CONFIG_SECCOMP_FILTER), as dockerd checks it."""
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)
    except OSError:
        return False


def _check(rc: int, what: str) -> None:
    if rc < 0:
        raise SeccompError(f"seccomp: {what}: {os.strerror(-rc)}")


def _build(lib: ctypes.CDLL, f: Filter) -> int:
    ctx = lib.seccomp_init(f.default_action)
    if not ctx:
        raise SeccompError("seccomp: seccomp_init failed (an invalid default action?)")
    try:
        for arch in f.architectures:
            token = lib.seccomp_arch_resolve_name(arch.encode())
            if not token:
                raise SeccompError(f"seccomp: libseccomp does not know the architecture {arch!r}")
            if lib.seccomp_arch_exist(ctx, token) == -errno.EEXIST:
                _check(lib.seccomp_arch_add(ctx, token), f"adding architecture {arch}")
        # the kernel sets no_new_privs when the runtime asks; libseccomp must not do it on its own
        _check(lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0), "clearing the no_new_privs attribute")
        for attr, value in f.attributes:
            _check(lib.seccomp_attr_set(ctx, attr, value), f"setting filter attribute {attr}")
        for rule in f.rules:
            number = lib.seccomp_syscall_resolve_name(rule.syscall.encode())
            if number == _NR_SCMP_ERROR:
                continue  # unknown to this libseccomp: not a syscall this kernel can be asked for
            conditions = (_ArgCmp * max(len(rule.conditions), 1))(
                *((c.index, c.op, c.value, c.value_two) for c in rule.conditions)
            )
            rc = lib.seccomp_rule_add_array(ctx, rule.action, number, len(rule.conditions), conditions)
            _check(rc, f"adding a rule for {rule.syscall}")
    except BaseException:
        lib.seccomp_release(ctx)
        raise
    return ctx


def load_filter(f: Filter) -> None:
    """Install the filter on this process (inherited by its children and kept across execve). It needs
    no_new_privs set, or CAP_SYS_ADMIN."""
    lib = _library()
    ctx = _build(lib, f)
    try:
        _check(lib.seccomp_load(ctx), "loading the filter")
    finally:
        lib.seccomp_release(ctx)


def export_bpf(f: Filter) -> bytes:
    """The BPF program the filter compiles to, without loading it (tests, debugging)."""
    lib = _library()
    ctx = _build(lib, f)
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        _check(lib.seccomp_export_bpf(ctx, fd), "exporting the filter")
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        lib.seccomp_release(ctx)
        os.close(fd)
