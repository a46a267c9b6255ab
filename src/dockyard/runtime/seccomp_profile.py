"""The default seccomp profile, and dockerd's step from a Docker-format profile to the spec's `linux.seccomp`.

The profile follows the design of Docker's default (docs.docker.com/engine/security/seccomp): everything is
denied with EPERM except an allow list of the ordinary syscalls; syscalls that act on what namespaces do
not isolate (the clock, kernel modules, the keyring, reboot, swap, raw I/O ports, other processes' memory)
are allowed only to a container that holds the capability the kernel would check for them anyway, so
`--cap-add` keeps working; `clone` is allowed without namespace flags unless CAP_SYS_ADMIN is held, and
`clone3` (whose flags sit in memory a filter cannot read) answers ENOSYS so libc falls back to `clone`;
`personality` is limited to the execution domains programs really ask for.

A profile in Docker's format has, per entry, `includes`/`excludes` on capabilities (checked against the
bounding set, all listed caps required), Go architecture names and a minimum kernel, and an `archMap`
from the native architecture to its compatible ones. `setup_seccomp` resolves these for one container,
as dockerd does when it writes the spec, and returns the OCI `linux.seccomp` object; custom profiles
(`--security-opt seccomp=<file>`, daemon.json `seccomp-profile`) go through the same function.
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

from ..goarch import go_arch

__all__ = [
    "CLONE_NAMESPACE_FLAGS",
    "ProfileError",
    "default_profile",
    "load_profile",
    "setup_seccomp",
]


class ProfileError(ValueError):
    """A seccomp profile dockerd would refuse; the message is Docker's."""


# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
CLONE_NAMESPACE_FLAGS = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)
ENOSYS = 38

_ALLOW = "SCMP_ACT_ALLOW"

# Ordinary syscalls, by what they are for. Names of other architectures (and 32-bit variants) are listed
# too: the x86 compat ABI runs in the same filter, and libseccomp skips names an arch lacks.
_ALLOWED = {
    "files": """
        access faccessat faccessat2 open openat openat2 creat close close_range read readv pread64 preadv
        preadv2 write writev pwrite64 pwritev pwritev2 lseek _llseek dup dup2 dup3 fcntl fcntl64 flock
        fsync fdatasync sync syncfs sync_file_range fallocate fadvise64 fadvise64_64 readahead
        truncate truncate64 ftruncate ftruncate64 sendfile sendfile64 splice tee vmsplice copy_file_range
        stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64 fstatfs
        fstatfs64 getdents getdents64 readdir getcwd chdir fchdir mkdir mkdirat mknod mknodat rmdir
        rename renameat renameat2 link linkat unlink unlinkat symlink symlinkat readlink readlinkat
        chmod fchmod fchmodat fchmodat2 chown chown32 fchown fchown32 fchownat lchown lchown32 umask
        utime utimes utimensat utimensat_time64 futimesat
        getxattr lgetxattr fgetxattr listxattr llistxattr flistxattr setxattr lsetxattr fsetxattr
        removexattr lremovexattr fremovexattr
        inotify_init inotify_init1 inotify_add_watch inotify_rm_watch ioctl memfd_create cachestat
    """,
    "memory": """
        brk mmap mmap2 munmap mremap mprotect madvise msync mincore mlock mlock2 mlockall munlock
        munlockall remap_file_pages membarrier pkey_alloc pkey_free pkey_mprotect
    """,
    "processes": """
        fork vfork execve execveat exit exit_group wait4 waitid waitpid kill tkill tgkill
        pidfd_open pidfd_send_signal getpid getppid gettid getpgid getpgrp setpgid getsid setsid
        getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getresuid getresuid32
        getresgid getresgid32 getgroups getgroups32 setuid setuid32 setgid setgid32 setreuid setreuid32
        setregid setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid
        setfsgid32 setgroups setgroups32 capget capset prctl getrlimit ugetrlimit setrlimit prlimit64
        getrusage times getpriority setpriority ioprio_get ioprio_set uname sysinfo getcpu
        set_tid_address set_robust_list get_robust_list set_thread_area get_thread_area rseq
        restart_syscall getrandom landlock_create_ruleset landlock_add_rule landlock_restrict_self
        sched_yield sched_getaffinity sched_setaffinity sched_getparam sched_setparam sched_getscheduler
        sched_setscheduler sched_getattr sched_setattr sched_get_priority_max sched_get_priority_min
        sched_rr_get_interval sched_rr_get_interval_time64 map_shadow_stack process_mrelease
    """,
    "signals": """
        rt_sigaction rt_sigprocmask rt_sigpending rt_sigreturn rt_sigsuspend rt_sigtimedwait
        rt_sigtimedwait_time64 rt_sigqueueinfo rt_tgsigqueueinfo sigaction sigprocmask sigpending
        sigreturn sigsuspend sigaltstack signalfd signalfd4 alarm pause
    """,
    "time": """
        time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64 clock_nanosleep
        clock_nanosleep_time64 nanosleep adjtimex getitimer setitimer timer_create timer_delete
        timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
        timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64
    """,
    "waiting": """
        poll ppoll ppoll_time64 select _newselect pselect6 pselect6_time64 epoll_create epoll_create1
        epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait epoll_pwait2 eventfd eventfd2
        futex futex_time64 futex_waitv futex_wake futex_wait futex_requeue io_setup io_destroy io_submit
        io_cancel io_getevents io_pgetevents io_pgetevents_time64
    """,
    "ipc": """
        pipe pipe2 ipc msgget msgsnd msgrcv msgctl semget semop semtimedop semtimedop_time64 semctl
        shmget shmat shmdt shmctl mq_open mq_unlink mq_timedsend mq_timedsend_time64 mq_timedreceive
        mq_timedreceive_time64 mq_notify mq_getsetattr
    """,
    "network": """
        socket socketpair socketcall bind listen accept accept4 connect getsockname getpeername
        getsockopt setsockopt shutdown send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg
        recvmmsg_time64
    """,
}

# Not allowed at all: the keyring (add_key, keyctl, request_key: not namespaced), kexec, swapon/swapoff,
# pivot_root, userfaultfd, uselib, ustat, sysfs, _sysctl, nfsservctl, vm86, and io_uring (a frequent source
# of kernel bugs, and a way around this filter: its operations are not syscalls).

# Allowed only on some architectures (Go names, as dockerd matches them).
_ARCH_SPECIFIC = [
    ("arch_prctl modify_ldt", ["amd64", "x32", "386"]),
    ("arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls", ["arm", "arm64"]),
    ("s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr", ["s390", "s390x"]),
    ("riscv_flush_icache", ["riscv64"]),
]

# Allowed only to a container holding the capability (a list: any one of them). Everything here is a
# privileged operation the kernel checks the capability for; the filter keeps it out of reach of a
# kernel bug in the syscall when the container could not use it anyway.
_BY_CAPABILITY: list[tuple[str, list[str]]] = [
    (
        "mount umount umount2 unshare setns clone clone3 sethostname setdomainname name_to_handle_at "
        "open_tree move_mount fsopen fsconfig fsmount fspick mount_setattr fanotify_init fanotify_mark "
        "quotactl quotactl_fd lookup_dcookie bpf perf_event_open syslog",
        ["CAP_SYS_ADMIN"],
    ),
    ("reboot", ["CAP_SYS_BOOT"]),
    ("chroot", ["CAP_SYS_CHROOT"]),
    ("init_module finit_module delete_module create_module query_module get_kernel_syms", ["CAP_SYS_MODULE"]),
    ("acct", ["CAP_SYS_PACCT"]),
    ("ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd process_madvise", ["CAP_SYS_PTRACE"]),
    ("iopl ioperm", ["CAP_SYS_RAWIO"]),
    (
        "settimeofday stime clock_settime clock_settime64 clock_adjtime clock_adjtime64",
        ["CAP_SYS_TIME"],
    ),
    ("vhangup", ["CAP_SYS_TTY_CONFIG"]),
    ("get_mempolicy set_mempolicy mbind move_pages set_mempolicy_home_node", ["CAP_SYS_NICE"]),
    ("syslog", ["CAP_SYSLOG"]),
    ("open_by_handle_at", ["CAP_DAC_READ_SEARCH"]),
    ("bpf", ["CAP_BPF"]),
    ("perf_event_open", ["CAP_PERFMON"]),
]

# personality(2): Linux, the 32-bit one, each with UNAME26, and the query 0xffffffff
_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# dockerd's archMap: the native architecture and the compat ABIs its kernel runs
_ARCH_MAP = [
    ("SCMP_ARCH_X86_64", ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ("SCMP_ARCH_AARCH64", ["SCMP_ARCH_ARM"]),
    ("SCMP_ARCH_MIPS64", ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64N32"]),
    ("SCMP_ARCH_MIPS64N32", ["SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64"]),
    ("SCMP_ARCH_MIPSEL64", ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64N32"]),
    ("SCMP_ARCH_MIPSEL64N32", ["SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64"]),
    ("SCMP_ARCH_PPC64LE", []),
    ("SCMP_ARCH_S390X", ["SCMP_ARCH_S390"]),
    ("SCMP_ARCH_RISCV64", []),
]

# the SCMP arch dockerd pairs with each GOARCH
_NATIVE_SCMP = {
    "amd64": "SCMP_ARCH_X86_64",
    "386": "SCMP_ARCH_X86",
    "arm64": "SCMP_ARCH_AARCH64",
    "arm": "SCMP_ARCH_ARM",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64le": "SCMP_ARCH_MIPSEL64",
    "riscv64": "SCMP_ARCH_RISCV64",
}


def _entry(names: str | list[str], **fields: Any) -> dict[str, Any]:
    listed = names.split() if isinstance(names, str) else names
    return {"names": sorted(dict.fromkeys(listed)), "action": _ALLOW, "args": [], **fields}


def _build_default() -> dict[str, Any]:
    syscalls = [_entry(" ".join(_ALLOWED.values()))]
    syscalls.append(
        _entry(
            "personality",
            args=[{"index": 0, "value": v, "valueTwo": 0, "op": "SCMP_CMP_EQ"} for v in _PERSONALITIES],
            comment="the execution domains programs ask for; others change how the kernel reads memory",
        )
    )
    for names, arches in _ARCH_SPECIFIC:
        syscalls.append(_entry(names, includes={"arches": arches}))
    for names, capabilities in _BY_CAPABILITY:
        syscalls.append(_entry(names, includes={"caps": capabilities}))
    # since 4.8 the kernel checks seccomp again after a tracer changed the syscall, so tracing one's own
    # children (strace, gdb) cannot be used to get around the filter
    syscalls.append(_entry("ptrace process_vm_readv process_vm_writev", includes={"minKernel": "4.8"}))
    # without CAP_SYS_ADMIN: clone only without namespace flags (s390 swaps clone's first two arguments)
    for index, arches in ((0, {"excludes": ["s390", "s390x"]}), (1, {"includes": ["s390", "s390x"]})):
        rule = _entry(
            "clone",
            args=[
                {"index": index, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
            ],
            comment="no new namespaces without CAP_SYS_ADMIN",
            excludes={"caps": ["CAP_SYS_ADMIN"], "arches": arches.get("excludes", [])},
        )
        if "includes" in arches:
            rule["includes"] = {"arches": arches["includes"]}
        syscalls.append(rule)
    syscalls.append(
        {
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": ENOSYS,
            "args": [],
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
            "comment": "a filter cannot read clone3's flags: ENOSYS makes libc fall back to clone",
        }
    )
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,  # EPERM
        "archMap": [{"architecture": a, "subArchitectures": subs} for a, subs in _ARCH_MAP],
        "syscalls": syscalls,
    }


_DEFAULT = _build_default()


def default_profile() -> dict[str, Any]:
    """The default profile in Docker's format (a fresh copy)."""
    return copy.deepcopy(_DEFAULT)


def _go_json_error(e: json.JSONDecodeError) -> str:
    """encoding/json's wording for the common syntax errors, which is what Docker users see."""
    if e.pos >= len(e.doc.rstrip()):
        return "unexpected end of JSON input"
    char = json.dumps(e.doc[e.pos])[1:-1].replace("'", "\\'")
    where = {
        "Expecting value": "looking for beginning of value",
        "Extra data": "after top-level value",
        "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
    }.get(e.msg)
    return f"invalid character '{char}' {where}" if where else f"{e.msg} (line {e.lineno}, column {e.colno})"


def load_profile(text: str) -> dict[str, Any]:
    """A profile given as JSON text (`--security-opt seccomp=<content>`, daemon.json's file)."""
    try:
        profile = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(f"Decoding seccomp profile failed: {_go_json_error(e)}") from None
    if profile is None:
        return {}  # null decodes to an empty profile: no filter
    if not isinstance(profile, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(profile), "number")
        raise ProfileError(
            f"Decoding seccomp profile failed: json: cannot unmarshal {kind} "
            "into Go value of type seccomp.Seccomp"
        )
    return profile


def _kernel_version(release: str | None = None) -> tuple[int, int]:
    release = release or os.uname().release
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _min_kernel(value: Any) -> tuple[int, int] | None:
    if not value:
        return None
    m = re.fullmatch(r"(\d+)\.(\d+)", str(value))
    if not m:
        raise ProfileError(f"invalid kernel version: {value}")
    return int(m.group(1)), int(m.group(2))


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"Decoding seccomp profile failed: {what} must be a list of strings")
    return value


def setup_seccomp(
    profile: dict[str, Any],
    bounding: list[str],
    *,
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any] | None:
    """The OCI `linux.seccomp` for a container whose bounding set is `bounding`: entries kept or dropped by
    their includes/excludes, archMap resolved for this machine. None when the profile is empty (dockerd
    reads a profile with neither a default action nor syscalls as no filter)."""
    if not profile.get("defaultAction") and not profile.get("syscalls"):
        return None
    arch = arch or go_arch()
    kernel = kernel or _kernel_version()
    if profile.get("architectures") and profile.get("archMap"):
        raise ProfileError(
            "'architectures' and 'archMap' were specified in the seccomp profile, "
            "use either 'architectures' or 'archMap'"
        )
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "")}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    architectures = list(_strings(profile.get("architectures"), "architectures"))
    native = _NATIVE_SCMP.get(arch)
    for mapping in profile.get("archMap") or []:
        if native and mapping.get("architecture") == native:
            architectures += [native, *_strings(mapping.get("subArchitectures"), "subArchitectures")]
            break
    if architectures:
        out["architectures"] = architectures
    if profile.get("flags"):
        out["flags"] = _strings(profile["flags"], "flags")
    if profile.get("listenerPath"):
        out["listenerPath"] = profile["listenerPath"]

    caps = set(bounding)
    syscalls = []
    for call in profile.get("syscalls") or []:
        if not isinstance(call, dict):
            raise ProfileError("Decoding seccomp profile failed: each of syscalls must be an object")
        excludes = call.get("excludes") or {}
        includes = call.get("includes") or {}
        if arch in _strings(excludes.get("arches"), "arches"):
            continue
        if any(c in caps for c in _strings(excludes.get("caps"), "caps")):
            continue
        minimum = _min_kernel(excludes.get("minKernel"))
        if minimum and kernel >= minimum:
            continue
        if includes.get("arches") and arch not in _strings(includes["arches"], "arches"):
            continue
        if not all(c in caps for c in _strings(includes.get("caps"), "caps")):
            continue
        minimum = _min_kernel(includes.get("minKernel"))
        if minimum and kernel < minimum:
            continue
        names = _strings(call.get("names"), "names")
        if call.get("name"):
            if names:
                raise ProfileError(
                    "'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'"
                )
            names = [call["name"]]
        entry: dict[str, Any] = {"names": list(names), "action": call.get("action", "")}
        if call.get("errnoRet") is not None:
            entry["errnoRet"] = call["errnoRet"]
        entry["args"] = list(call.get("args") or [])
        syscalls.append(entry)
    out["syscalls"] = syscalls
    return out
