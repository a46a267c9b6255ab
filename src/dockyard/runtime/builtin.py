"""The built-in OCI runtime: runs a bundle's config.json the way runc does, in Python over ctypes syscalls.

The per-container shim calls `spawn`, which returns once the container's process has been exec'd (or
raises `SpawnError` with one line saying what went wrong). Processes, in order:

    caller (the shim, a child subreaper)
      └─ intermediate: joins the namespaces given by path (setns), unshares the new ones, forks, reports
         the pid and exits. unshare(CLONE_NEWPID) only affects children, hence this extra process.
           └─ init (PID 1 of a new PID namespace): rootfs, pivot_root, /dev, masked and read-only paths,
              hostname, sysctls, rlimits, user, capabilities, then execve of the user's command.

The intermediate exits rather than staying as a reaper: the kernel re-parents init to the nearest child
subreaper, the caller, which can then waitpid() the container's real pid. `spawn` makes the caller a
subreaper for that reason.

Synchronisation is one SOCK_SEQPACKET socketpair (close-on-exec on the container's side):
  caller → intermediate: "go" once the intermediate is in the container's cgroups, so that init and
            everything it forks are in them before any user code runs, and a new cgroup namespace (unshared
            after joining) is rooted at the container's cgroup;
  intermediate → caller: {"pid": N} (init's pid in the caller's PID namespace) or {"error": ...}; init's
            own messages, on the same socket, may come before it;
  init → caller: {"pty": true} with the terminal's master fd (SCM_RIGHTS), then {"exec": true} right
            before execve, then either an {"error": ...} (execve failed) or end-of-file: execve succeeded
            and closed init's end.

The intermediate makes itself non-dumpable before it joins or unshares anything, and its children keep
that until their execve: a process of the container (or of one sharing its PID namespace) can neither
ptrace them nor open their /proc/PID/exe (the host's interpreter) while they are the runtime's. Every path
inside the container's root is resolved through linux/inroot.py and acted on by descriptor: an image's
symlinks cannot send a mount, a device node or a link out of its root.

Every mount is made in the container's own mount namespace, so a failed setup leaves nothing mounted on
the host: the namespace goes away with init, which the caller kills and reaps before cleaning the cgroups.

`exec_process` (`runc exec`) starts another process in a running container the same way: the intermediate
joins every namespace of the container's init (/proc/<pid>/ns/*, PID included, hence its fork again) once
the caller has put it in the container's cgroups; the child sets up stdio or a pty of the container's
devpts, rlimits, user, capabilities, no_new_privs and the container's seccomp filter, and execs,
reporting as init does.

The spec's seccomp filter (linux.seccomp, through libseccomp) is loaded at runc's moment: with no_new_privs,
or when CAP_SYS_ADMIN is kept, last, right before execve, so the runtime's own setup is not filtered; without
either, before the identity switch drops the CAP_SYS_ADMIN that loading one needs.

Not done (yet): user namespaces, AppArmor/SELinux labels, hooks, the create/start split (spawn is
`runc run`), pause (freezer), hugetlb/blkio/io limits, and mount options
that only newer kernels apply recursively (a read-only rbind makes only its top mount read-only, as runc 1.1).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import json
import os
import resource
import signal
import socket
import stat
import struct
import termios
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ..linux import capabilities as caps
from ..linux.bpf import DeviceRule, attach_device_filter, device_filter, load_device_filter
from ..linux.cgroups import CGROUP_ROOT, Cgroup, detect_layout
from ..linux.inroot import RootDir, fd_path
from ..linux.mount import (
    MNT_DETACH,
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_NOSYMFOLLOW,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SILENT,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
    mount,
    mount_table,
    pivot_root,
    umount,
)
from ..linux.namespaces import CLONE_NEWNET, NAMESPACE_FLAGS, loopback_up, setns, unshare
from ..linux.process import (
    is_child_subreaper,
    set_child_subreaper,
    set_dumpable,
    set_keep_capabilities,
    set_no_new_privileges,
    set_parent_death_signal,
)
from ..linux.seccomp import Filter as SeccompFilter
from ..linux.seccomp import SeccompError, compile_filter, ensure_library, load_filter

__all__ = [
    "DEFAULT_NODES",
    "ExecProcess",
    "LaunchPlan",
    "MountOptions",
    "RunningContainer",
    "SpawnError",
    "apply_seccomp",
    "cgroup_settings",
    "compile_seccomp",
    "delete",
    "device_rules",
    "exec_process",
    "exit_code_for",
    "kill",
    "lookup_executable",
    "parse_mount_options",
    "plan_container",
    "plan_exec",
    "spawn",
    "state",
    "wait",
]

SETUP_TIMEOUT = 30.0
MAX_MESSAGE = 65536

# mounts over /proc would hide what maskedPaths hides; these few are allowed (lxcfs-style overrides), as runc
_PROC_MOUNT_ALLOWED = (
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
)


class SpawnError(RuntimeError):
    """The container could not be started. `exit_code` is Docker's for a command that could not be run
    (127 not found, 126 not executable); None for other failures (Docker's generic start error)."""

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_for(message: str) -> int | None:
    """Docker's rule for a failed start, from the runtime's message (moby daemon/start.go)."""
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return None


def _errstr(e: OSError) -> str:
    # Go's wording ("no such file or directory"), which Docker's exit-code rules match on
    text = os.strerror(e.errno) if e.errno else str(e)
    return text[:1].lower() + text[1:]


@contextlib.contextmanager
def _step(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as e:
        raise SpawnError(f"{what}: {_errstr(e)}") from None


# --- mount options ---------------------------------------------------------------------------------------

# option -> (clears the flag, flag), as mount(8) and runc read them
_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "lazytime": (False, MS_LAZYTIME),
    "loud": (True, MS_SILENT),
    "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "nolazytime": (True, MS_LAZYTIME),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "nosymfollow": (False, MS_NOSYMFOLLOW),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "remount": (False, MS_REMOUNT),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "silent": (False, MS_SILENT),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "sync": (False, MS_SYNCHRONOUS),
}
PROPAGATION_FLAGS = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
_IGNORED_OPTIONS = frozenset({"tmpcopyup", "notmpcopyup", "z", "Z"})  # runc extensions, SELinux relabel


@dataclass(frozen=True)
class MountOptions:
    flags: int
    propagation: tuple[int, ...] = ()
    data: str = ""  # what the filesystem reads itself (mode=755, size=65536k...)


def parse_mount_options(options: Sequence[str]) -> MountOptions:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for opt in options:
        if opt in _FLAG_OPTIONS:
            clear, flag = _FLAG_OPTIONS[opt]
            flags = flags & ~flag if clear else flags | flag
        elif opt in PROPAGATION_FLAGS:
            propagation.append(PROPAGATION_FLAGS[opt])
        elif opt not in _IGNORED_OPTIONS:
            data.append(opt)
    return MountOptions(flags, tuple(propagation), ",".join(data))


# --- the executable ---------------------------------------------------------------------------------------


def _executable_problem(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError as e:
        return f"stat {path}: {_errstr(e)}"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory"
    # the mode bits first (Go's LookPath), then access(2), which also catches noexec mounts
    if not st.st_mode & 0o111 or not os.access(path, os.X_OK):
        return "permission denied"
    return None


def lookup_executable(name: str, path_env: str | None) -> str:
    """Go's exec.LookPath, which runc uses: a name with a slash is taken as is, others are searched in the
    container's PATH (from the spec's env, not the runtime's). Errors are worded as runc words them."""
    if "/" in name:
        problem = _executable_problem(name)
        if problem is None:
            return name
        message = f'exec: "{name}": {problem}'
        raise SpawnError(message, exit_code_for(message))
    for directory in path_env.split(":") if path_env else []:
        candidate = os.path.join(directory or ".", name)
        if name and _executable_problem(candidate) is None:
            return candidate
    raise SpawnError(f'exec: "{name}": executable file not found in $PATH', 127)


# --- the plan: the spec read and checked before anything forks -------------------------------------------


@dataclass(frozen=True)
class PlannedMount:
    destination: str
    type: str
    source: str
    options: MountOptions


@dataclass
class LaunchPlan:
    container_id: str
    bundle: str
    rootfs: str
    readonly: bool
    args: list[str]
    env: list[str]
    cwd: str
    uid: int
    gid: int
    additional_gids: list[int]
    umask: int
    terminal: bool
    console_size: tuple[int, int] | None = None  # (height, width) of the terminal at start
    mounts: list[PlannedMount] = field(default_factory=list)
    new_namespaces: int = 0  # CLONE_* flags to unshare
    join_namespaces: list[tuple[str, int, str]] = field(default_factory=list)  # (type, flag, path)
    hostname: str | None = None
    rootfs_propagation: int = MS_SLAVE | MS_REC
    explicit_propagation: bool = False
    setup_dev: bool = True
    devices: list[dict[str, Any]] = field(default_factory=list)
    masked_paths: list[str] = field(default_factory=list)
    readonly_paths: list[str] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)
    bounding: frozenset[int] = frozenset()
    effective: frozenset[int] = frozenset()
    permitted: frozenset[int] = frozenset()
    inheritable: frozenset[int] = frozenset()
    ambient: frozenset[int] = frozenset()
    no_new_privileges: bool = False
    seccomp: SeccompFilter | None = None  # linux.seccomp, checked and compiled before any fork
    oom_score_adj: int | None = None
    rlimits: list[tuple[int, int, int]] = field(default_factory=list)
    cgroups_path: str = ""
    resources: dict[str, Any] = field(default_factory=dict)
    last_cap: int = 40
    cgroup: Cgroup | None = None  # filled in by spawn

    @property
    def has_mount_namespace(self) -> bool:
        return bool(self.new_namespaces & NAMESPACE_FLAGS["mount"]) or any(
            t == "mount" for t, _, _ in self.join_namespaces
        )


def _cap_numbers(names: Sequence[str], last_cap: int) -> frozenset[int]:
    numbers = set()
    for name in names:
        try:
            number = caps.ALL_CAPABILITIES.index(name.upper())
        except ValueError:
            raise SpawnError(f"unknown capability {name!r}") from None
        if number <= last_cap:  # one this kernel lacks cannot be granted; runc skips it too
            numbers.add(number)
    return frozenset(numbers)


def _console_size(value: Any) -> tuple[int, int] | None:
    if not value:
        return None
    return int(value.get("height", 0)), int(value.get("width", 0))


def _rlimit_value(value: Any) -> int:
    value = int(value)
    return resource.RLIM_INFINITY if value < 0 or value >= 2**63 else value


def plan_container(
    spec: dict[str, Any], bundle: str | Path, container_id: str, last_cap: int | None = None
) -> LaunchPlan:
    """Read and check the spec; everything that can be wrong with it is reported here, before any fork."""
    bundle = str(bundle)
    process = spec.get("process") or {}
    args = list(process.get("args") or [])
    if not args:
        raise SpawnError("process.args must not be empty")
    root = spec.get("root") or {}
    root_path = root.get("path") or "rootfs"
    rootfs = os.path.realpath(os.path.join(bundle, root_path))
    if not os.path.isdir(rootfs):
        raise SpawnError(f"rootfs {rootfs} is not a directory")
    linux = spec.get("linux") or {}
    user = process.get("user") or {}
    last_cap = caps.last_cap() if last_cap is None else last_cap
    capabilities = process.get("capabilities") or {}

    plan = LaunchPlan(
        container_id=container_id,
        bundle=bundle,
        rootfs=rootfs,
        readonly=bool(root.get("readonly")),
        args=[str(a) for a in args],
        env=[str(e) for e in process.get("env") or []],
        cwd=process.get("cwd") or "/",
        uid=int(user.get("uid", 0)),
        gid=int(user.get("gid", 0)),
        additional_gids=[int(g) for g in user.get("additionalGids") or []],
        umask=int(user["umask"]) if user.get("umask") is not None else 0o022,
        terminal=bool(process.get("terminal")),
        console_size=_console_size(process.get("consoleSize")),
        devices=list(linux.get("devices") or []),
        masked_paths=list(linux.get("maskedPaths") or []),
        readonly_paths=list(linux.get("readonlyPaths") or []),
        sysctl={str(k): str(v) for k, v in (linux.get("sysctl") or {}).items()},
        no_new_privileges=bool(process.get("noNewPrivileges")),
        oom_score_adj=process.get("oomScoreAdj"),
        cgroups_path=linux.get("cgroupsPath") or f"/dockyard/{container_id}",
        resources=dict(linux.get("resources") or {}),
        last_cap=last_cap,
    )
    if not plan.cwd.startswith("/"):
        raise SpawnError(f"cwd {plan.cwd!r} is not an absolute path")
    plan.seccomp = compile_seccomp(linux.get("seccomp"))

    for ns in linux.get("namespaces") or []:
        kind = ns.get("type", "")
        if kind == "user":
            raise SpawnError("user namespaces are not supported by the built-in runtime")
        if kind not in NAMESPACE_FLAGS:
            raise SpawnError(f"unknown namespace type {kind!r}")
        if ns.get("path"):
            plan.join_namespaces.append((kind, NAMESPACE_FLAGS[kind], ns["path"]))
        else:
            plan.new_namespaces |= NAMESPACE_FLAGS[kind]
    if not plan.has_mount_namespace:
        raise SpawnError("the built-in runtime needs a mount namespace")
    if spec.get("hostname"):
        if not plan.new_namespaces & NAMESPACE_FLAGS["uts"]:
            raise SpawnError("unable to set hostname without a private UTS namespace")
        plan.hostname = str(spec["hostname"])

    propagation = linux.get("rootfsPropagation") or ""
    if propagation:
        if propagation not in PROPAGATION_FLAGS:
            raise SpawnError(f"invalid rootfsPropagation {propagation!r}")
        plan.rootfs_propagation = PROPAGATION_FLAGS[propagation]
        plan.explicit_propagation = True

    for m in spec.get("mounts") or []:
        dest = os.path.normpath("/" + str(m.get("destination", "")).lstrip("/"))
        if dest == "/":
            raise SpawnError("a mount cannot have / as its destination")
        options = parse_mount_options(m.get("options") or [])
        kind = m.get("type") or ("bind" if options.flags & MS_BIND else "")
        source = str(m.get("source") or "")
        if kind == "bind" or options.flags & MS_BIND:
            kind = "bind"
            options = MountOptions(options.flags | MS_BIND, options.propagation, options.data)
            if not source.startswith("/"):
                source = os.path.join(bundle, source)
            if dest == "/dev":
                plan.setup_dev = False  # the user brings their own /dev
        elif not kind:
            raise SpawnError(f"mount at {dest} has no type")
        if (
            kind != "proc"
            and (dest == "/proc" or dest.startswith("/proc/"))
            and dest not in _PROC_MOUNT_ALLOWED
        ):
            raise SpawnError(f'"{dest}" cannot be mounted because it is inside /proc')
        plan.mounts.append(PlannedMount(dest, kind, source, options))

    bounding = capabilities.get("bounding") or []
    plan.bounding = _cap_numbers(bounding, last_cap)
    plan.effective = _cap_numbers(capabilities.get("effective") or [], last_cap)
    plan.permitted = _cap_numbers(capabilities.get("permitted") or [], last_cap)
    plan.inheritable = _cap_numbers(capabilities.get("inheritable") or [], last_cap)
    plan.ambient = _cap_numbers(capabilities.get("ambient") or [], last_cap)

    plan.rlimits = _rlimits(process)
    if plan.oom_score_adj is not None:
        plan.oom_score_adj = int(plan.oom_score_adj)
    return plan


def _rlimits(process: dict[str, Any]) -> list[tuple[int, int, int]]:
    out = []
    for rl in process.get("rlimits") or []:
        name = str(rl.get("type", "")).upper()
        number = getattr(resource, name, None) if name.startswith("RLIMIT_") else None
        if number is None:
            raise SpawnError(f"unknown rlimit {rl.get('type')!r}")
        out.append((number, _rlimit_value(rl.get("soft", 0)), _rlimit_value(rl.get("hard", 0))))
    return out


# --- cgroup settings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupSetting:
    controller: str
    file: str
    value: str
    optional: bool = False  # skipped when the kernel lacks the file (swap accounting off), as Docker does
    fallback: tuple[str, str] | None = None  # (file, value) written instead when `file` is missing


def _v1_device_rule(rule: dict[str, Any]) -> CgroupSetting:
    def number(value: Any) -> str:
        return "*" if value is None or int(value) < 0 else str(int(value))

    kind = rule.get("type") or "a"
    text = f"{kind} {number(rule.get('major'))}:{number(rule.get('minor'))} {rule.get('access') or 'rwm'}"
    return CgroupSetting("devices", "devices.allow" if rule.get("allow") else "devices.deny", text)


def cgroup_settings(resources: dict[str, Any], version: str) -> list[CgroupSetting]:
    """The control files (and values) for the spec's linux.resources, in the order they must be written."""
    out: list[CgroupSetting] = []
    memory = resources.get("memory") or {}
    cpu = resources.get("cpu") or {}
    pids = resources.get("pids") or {}
    limit = memory.get("limit")
    swap = memory.get("swap")
    if version == "2":
        if limit is not None:
            out.append(CgroupSetting("memory", "memory.max", "max" if limit < 0 else str(limit)))
        if swap is not None and swap != 0:
            if swap < 0:
                value = "max"
            elif limit is None or limit <= 0:
                raise SpawnError("unable to set a swap limit without a memory limit")
            elif swap < limit:
                raise SpawnError(f"memory+swap limit ({swap}) is below the memory limit ({limit})")
            else:
                value = str(swap - limit)  # v2 limits the swap alone; OCI's swap is memory+swap, as v1
            out.append(CgroupSetting("memory", "memory.swap.max", value, optional=True))
        if memory.get("reservation"):
            out.append(CgroupSetting("memory", "memory.low", str(memory["reservation"])))
        if cpu.get("shares"):
            weight = 1 + (int(cpu["shares"]) - 2) * 9999 // 262142  # runc's mapping of 2..262144 to 1..10000
            out.append(CgroupSetting("cpu", "cpu.weight", str(weight)))
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota") or 0
            period = cpu.get("period") or 100000
            out.append(CgroupSetting("cpu", "cpu.max", f"{quota if quota > 0 else 'max'} {period}"))
        weight = (resources.get("blockIO") or {}).get("weight")
        if weight:  # runc: io.bfq.weight, else io.weight on its 1..10000 scale
            io_weight = str(1 + (int(weight) - 10) * 9999 // 990)
            out.append(CgroupSetting("io", "io.bfq.weight", str(weight), fallback=("io.weight", io_weight)))
        # devices: v2 has no files for them but a BPF program (`device_rules`, applied by spawn)
    else:
        if limit is not None:
            out.append(CgroupSetting("memory", "memory.limit_in_bytes", str(limit)))
        if swap is not None and swap != 0:
            out.append(CgroupSetting("memory", "memory.memsw.limit_in_bytes", str(swap), optional=True))
        if memory.get("reservation"):
            out.append(CgroupSetting("memory", "memory.soft_limit_in_bytes", str(memory["reservation"])))
        if memory.get("swappiness") is not None and 0 <= int(memory["swappiness"]) <= 100:
            out.append(CgroupSetting("memory", "memory.swappiness", str(memory["swappiness"])))
        if memory.get("disableOOMKiller"):
            out.append(CgroupSetting("memory", "memory.oom_control", "1"))
        if cpu.get("shares"):
            out.append(CgroupSetting("cpu", "cpu.shares", str(cpu["shares"])))
        if cpu.get("period"):
            out.append(CgroupSetting("cpu", "cpu.cfs_period_us", str(cpu["period"])))
        if cpu.get("quota"):
            out.append(CgroupSetting("cpu", "cpu.cfs_quota_us", str(cpu["quota"])))
        if cpu.get("realtimePeriod"):
            out.append(CgroupSetting("cpu", "cpu.rt_period_us", str(cpu["realtimePeriod"])))
        if cpu.get("realtimeRuntime"):
            out.append(CgroupSetting("cpu", "cpu.rt_runtime_us", str(cpu["realtimeRuntime"])))
        weight = (resources.get("blockIO") or {}).get("weight")
        if weight:  # runc: BFQ's file when the kernel has it
            out.append(
                CgroupSetting(
                    "blkio", "blkio.bfq.weight", str(weight), fallback=("blkio.weight", str(weight))
                )
            )
        out.extend(_v1_device_rule(rule) for rule in resources.get("devices") or [])
    if cpu.get("cpus"):
        out.append(CgroupSetting("cpuset", "cpuset.cpus", str(cpu["cpus"])))
    if cpu.get("mems"):
        out.append(CgroupSetting("cpuset", "cpuset.mems", str(cpu["mems"])))
    if "limit" in pids:
        value = int(pids["limit"])
        out.append(CgroupSetting("pids", "pids.max", "max" if value <= 0 else str(value)))
    return out


def device_rules(resources: dict[str, Any]) -> list[DeviceRule]:
    return [
        DeviceRule(
            allow=bool(rule.get("allow")),
            type=rule.get("type") or "a",
            major=rule.get("major"),
            minor=rule.get("minor"),
            access=rule.get("access") or "rwm",
        )
        for rule in resources.get("devices") or []
    ]


def cgroup_write_error(cgroup: Cgroup, controller: str, name: str, value: str, e: OSError) -> str:
    """runc's words for a control file it could not write at create (its cgroups.WriteFile error)."""
    path = os.path.join(cgroup.path(controller) or f"<no {controller} cgroup>", name)
    reason = os.strerror(e.errno) if e.errno else str(e)
    reason = reason[:1].lower() + reason[1:]
    what = f"openat2 {path}" if e.errno == errno.ENOENT else f'failed to write "{value}": write {path}'
    return f"error during container init: error setting cgroup config for procHooks process: {what}: {reason}"


def _apply_cgroup(cgroup: Cgroup, settings: list[CgroupSetting], resources: dict[str, Any]) -> None:
    for s in settings:
        if s.optional and not cgroup.has(s.controller, s.file):
            continue
        name, value = s.file, s.value
        if s.fallback is not None and not cgroup.has(s.controller, s.file):
            name, value = s.fallback
        try:
            cgroup.write(s.controller, name, value)
        except OSError as e:
            raise SpawnError(cgroup_write_error(cgroup, s.controller, name, value, e)) from None
    rules = device_rules(resources)
    if cgroup.version == "2" and rules:
        try:
            prog = load_device_filter(device_filter(rules))
            try:
                attach_device_filter(cgroup.paths[""], prog)
            finally:
                os.close(prog)  # the attachment keeps the program until the cgroup goes
        except OSError as e:
            raise SpawnError(f"cgroup: {e.strerror or e}") from None


# --- the running container -------------------------------------------------------------------------------


@dataclass
class RunningContainer:
    id: str
    pid: int  # in the caller's PID namespace
    bundle: str
    cgroup: Cgroup
    start_time: int  # /proc/<pid>/stat field 22: tells the container's init from a later process on its pid
    pty_master: int | None = None  # the terminal's master side, owned by the caller from now on
    pidfd: int | None = field(default=None, repr=False)

    def to_state(self) -> dict[str, Any]:
        """What the shim persists to find the container again (without the fds)."""
        return {
            "id": self.id,
            "pid": self.pid,
            "bundle": self.bundle,
            "start_time": self.start_time,
            "cgroup": self.cgroup.to_dict(),
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> RunningContainer:
        return cls(
            id=data["id"],
            pid=int(data["pid"]),
            bundle=data["bundle"],
            cgroup=Cgroup.from_dict(data["cgroup"]),
            start_time=int(data["start_time"]),
        )


def _proc_stat(pid: int) -> tuple[str, int]:
    """(state letter, start time) of a process."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        text = f.read()
    fields = text[text.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


def state(container: RunningContainer) -> str:
    """OCI status: "running" while the container's init lives, else "stopped"."""
    try:
        letter, start = _proc_stat(container.pid)
    except (FileNotFoundError, ProcessLookupError):
        return "stopped"
    if start != container.start_time or letter in ("Z", "X"):
        return "stopped"
    return "running"


def kill(container: RunningContainer, sig: int = signal.SIGTERM, *, all: bool = False) -> None:
    """Signal the container's init (or, with `all`, every process in its cgroup). ProcessLookupError when
    the container is not running."""
    if all:
        for pid in container.cgroup.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return
    if container.pidfd is not None:
        signal.pidfd_send_signal(container.pidfd, sig)
        return
    if state(container) != "running":
        raise ProcessLookupError(errno.ESRCH, f"container {container.id} is not running")
    os.kill(container.pid, sig)


def _exit_code(status: int) -> int:
    # Docker's convention: a signal's death is 128 + its number
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def wait(container: RunningContainer, timeout: float | None = None) -> int | None:
    """Wait for the container's init to exit; its exit code when the caller is its parent (the shim, as
    subreaper), None when it only saw it go, or when `timeout` passed first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            pid, status = os.waitpid(container.pid, 0 if deadline is None else os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            return _exit_code(status)
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(0.005)
    while state(container) == "running":  # not our child: watch it instead
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    return None


def delete(container: RunningContainer, *, force: bool = False, timeout: float = 5.0) -> None:
    """Remove what the container leaves on the host: its cgroups. With `force`, kill whatever still runs."""
    if state(container) == "running" or container.cgroup.pids():
        if not force:
            raise SpawnError(f"cannot delete container {container.id} that is not stopped")
        deadline = time.monotonic() + timeout
        while True:
            kill(container, signal.SIGKILL, all=True)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(container.pid, os.WNOHANG)
            if not container.cgroup.pids() and state(container) != "running":
                break
            if time.monotonic() > deadline:
                raise SpawnError(f"container {container.id} still has processes after SIGKILL")
            time.sleep(0.01)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(container.pid, os.WNOHANG)
    try:
        container.cgroup.remove(timeout)
    except OSError as e:
        raise SpawnError(str(e.strerror or e)) from None
    if container.pidfd is not None:
        os.close(container.pidfd)
        container.pidfd = None


# --- spawn: the caller's side ----------------------------------------------------------------------------


def spawn(
    bundle: str | Path,
    container_id: str,
    spec: dict[str, Any] | None = None,
    *,
    stdio: tuple[int, int, int] | None = None,
    terminal: bool | None = None,
    cgroup_root: str = CGROUP_ROOT,
    timeout: float = SETUP_TIMEOUT,
) -> RunningContainer:
    """Start the container described by `spec` (default: the bundle's config.json) and return once its
    command has been exec'd. `stdio` are the fds for the command's stdin, stdout and stderr (default: the
    caller's); with a terminal (`terminal`, default `process.terminal`) they are a new pty's slave, made in
    the container's /dev/pts, and its master is returned in `pty_master`. Makes the caller a child
    subreaper, so the container's init becomes its child. Raises SpawnError; nothing is left behind then."""
    bundle = str(bundle)
    if spec is None:
        try:
            with open(os.path.join(bundle, "config.json")) as f:
                spec = json.load(f)
        except (OSError, ValueError) as e:
            raise SpawnError(f"reading {bundle}/config.json: {e}") from None
    assert spec is not None
    plan = plan_container(spec, bundle, container_id)
    if terminal is not None:
        plan.terminal = terminal
    layout = detect_layout(cgroup_root)
    plan.cgroup = cgroup = Cgroup.at(layout, plan.cgroups_path)
    settings = cgroup_settings(plan.resources, layout.version)
    if not is_child_subreaper():
        set_child_subreaper()

    ns_fds: list[tuple[int, int]] = []
    ours: socket.socket | None = None
    theirs: socket.socket | None = None
    try:
        for kind, flag, path in plan.join_namespaces:
            with _step(f"open {kind} namespace {path}"):
                ns_fds.append((flag, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        try:
            cgroup.create()
        except OSError as e:
            raise SpawnError(f"cgroup: {e.strerror or e}: {e.filename or plan.cgroups_path}") from None
        _apply_cgroup(cgroup, settings, plan.resources)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return _launch(plan, cgroup, ns_fds, ours, theirs, stdio, timeout)
    except BaseException:
        with contextlib.suppress(OSError):
            cgroup.remove()
        raise
    finally:
        for _, fd in ns_fds:
            os.close(fd)
        for sock in (ours, theirs):
            if sock is not None:
                sock.close()


def _recv(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 1)
    if not data:
        return None, fds
    return json.loads(data), fds


def _launch(
    plan: LaunchPlan,
    cgroup: Cgroup,
    ns_fds: list[tuple[int, int]],
    ours: socket.socket,
    theirs: socket.socket,
    stdio: tuple[int, int, int] | None,
    timeout: float,
    child: Callable[[LaunchPlan, socket.socket, tuple[int, int, int] | None], NoReturn] | None = None,
) -> RunningContainer:
    intermediate = os.fork()
    if intermediate == 0:
        _intermediate(plan, theirs, ours, ns_fds, stdio, child or _init)
    theirs.close()
    init_pid: int | None = None
    pidfd: int | None = None
    pty_master: int | None = None
    intermediate_reaped = False
    # what init (or the exec'd process) said before the intermediate's pid came: they share the socket,
    # and an exec's child sends its terminal right after the fork, sometimes first
    early: list[tuple[dict[str, Any], list[int]]] = []
    try:
        ours.settimeout(timeout)
        try:
            cgroup.add(intermediate)
        except OSError as e:
            raise SpawnError(f"cgroup: {e.strerror or e}") from None
        ours.send(b"go")
        message, fds = _recv(ours)
        while message is not None and "pid" not in message and "error" not in message:
            early.append((message, fds))
            message, fds = _recv(ours)
        os.waitpid(intermediate, 0)
        intermediate_reaped = True
        if message is None:
            raise SpawnError("the runtime's intermediate process died during setup")
        if "error" in message:
            raise SpawnError(message["error"], message.get("exit_code"))
        init_pid = int(message["pid"])
        pidfd = os.pidfd_open(init_pid)
        exec_reached = False
        while True:
            message, fds = early.pop(0) if early else _recv(ours)
            if message is None:
                break
            if "error" in message:
                for fd in fds:
                    os.close(fd)
                raise SpawnError(message["error"], message.get("exit_code"))
            if message.get("pty") and fds:
                pty_master = fds[0]
            exec_reached = exec_reached or bool(message.get("exec"))
        if not exec_reached:
            pid, status = os.waitpid(init_pid, os.WNOHANG)
            how = f" ({_describe_status(status)})" if pid else ""
            raise SpawnError(f"the container's init died during setup{how}")
        try:
            _, start_time = _proc_stat(init_pid)
        except FileNotFoundError:
            start_time = 0  # exec'd and already gone; the caller's waitpid still gets its status
        return RunningContainer(
            plan.container_id, init_pid, plan.bundle, cgroup, start_time, pty_master, pidfd
        )
    except BaseException as e:
        for pid in (init_pid, None if intermediate_reaped else intermediate):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if not intermediate_reaped:
            os.waitpid(intermediate, 0)
        if init_pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(init_pid, 0)
        for fd in [pidfd, pty_master, *(fd for _, fds in early for fd in fds)]:
            if fd is not None:
                os.close(fd)
        if isinstance(e, TimeoutError):
            raise SpawnError(f"the container's setup did not finish within {timeout:g} s") from None
        if isinstance(e, OSError):
            raise SpawnError(f"starting the container: {e}") from None
        raise


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return f"killed by {signal.Signals(sig).name}" + (", out of memory?" if sig == signal.SIGKILL else "")
    return f"exit status {os.waitstatus_to_exitcode(status)}"


# --- exec: a new process in a running container ---------------------------------------------------------

# /proc/<pid>/ns names, in the order they are joined: the mount namespace last but one, so that nothing
# after it is looked up in the host's tree; pid last (it takes effect for the fork that follows)
_EXEC_NAMESPACES = (
    ("cgroup", "cgroup"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("net", "network"),
    ("mnt", "mount"),
    ("pid", "pid"),
)


@dataclass
class ExecProcess:
    """A process started in a running container (`runc exec`). Its parent is the caller (a subreaper),
    which waits for it."""

    pid: int  # in the caller's PID namespace
    pty_master: int | None = None  # the terminal's master side, owned by the caller from now on


def plan_exec(
    process: dict[str, Any], container: RunningContainer, last_cap: int | None = None
) -> LaunchPlan:
    """Read and check an OCI `process` for exec, as plan_container does for the container's own."""
    args = [str(a) for a in process.get("args") or []]
    if not args:
        raise SpawnError("process.args must not be empty")
    user = process.get("user") or {}
    last_cap = caps.last_cap() if last_cap is None else last_cap
    capabilities = process.get("capabilities") or {}
    plan = LaunchPlan(
        container_id=container.id,
        bundle=container.bundle,
        rootfs="/",
        readonly=False,
        args=args,
        env=[str(e) for e in process.get("env") or []],
        cwd=process.get("cwd") or "/",
        uid=int(user.get("uid", 0)),
        gid=int(user.get("gid", 0)),
        additional_gids=[int(g) for g in user.get("additionalGids") or []],
        umask=int(user["umask"]) if user.get("umask") is not None else 0o022,
        terminal=bool(process.get("terminal")),
        console_size=_console_size(process.get("consoleSize")),
        no_new_privileges=bool(process.get("noNewPrivileges")),
        oom_score_adj=process.get("oomScoreAdj"),
        rlimits=_rlimits(process),
        last_cap=last_cap,
        cgroup=container.cgroup,
    )
    if not plan.cwd.startswith("/"):
        raise SpawnError(f"cwd {plan.cwd!r} is not an absolute path")
    plan.bounding = _cap_numbers(capabilities.get("bounding") or [], last_cap)
    plan.effective = _cap_numbers(capabilities.get("effective") or [], last_cap)
    plan.permitted = _cap_numbers(capabilities.get("permitted") or [], last_cap)
    plan.inheritable = _cap_numbers(capabilities.get("inheritable") or [], last_cap)
    plan.ambient = _cap_numbers(capabilities.get("ambient") or [], last_cap)
    if plan.oom_score_adj is not None:
        plan.oom_score_adj = int(plan.oom_score_adj)
    return plan


def exec_process(
    container: RunningContainer,
    process: dict[str, Any],
    *,
    stdio: tuple[int, int, int] | None = None,
    terminal: bool | None = None,
    seccomp: dict[str, Any] | None = None,
    timeout: float = SETUP_TIMEOUT,
) -> ExecProcess:
    """Start `process` (an OCI process object) inside the running `container`: in its namespaces (those of
    its init, /proc/<pid>/ns) and its cgroups, with the process's user, capabilities, rlimits and
    no_new_privs, and `seccomp` (the container's linux.seccomp: an exec'd process is filtered as its init
    is, privileged or not, as with runc). Returns once the command has been exec'd; raises SpawnError
    (exit_code 126/127 when the command cannot be run, as spawn). `stdio` and `terminal` as for spawn. The
    caller becomes the process's parent (a child subreaper), as for spawn."""
    plan = plan_exec(process, container)
    if terminal is not None:
        plan.terminal = terminal
    plan.seccomp = compile_seccomp(seccomp)
    if not is_child_subreaper():
        set_child_subreaper()
    ns_fds: list[tuple[int, int]] = []
    ours: socket.socket | None = None
    theirs: socket.socket | None = None
    try:
        for name, kind in _EXEC_NAMESPACES:
            path = f"/proc/{container.pid}/ns/{name}"
            try:
                if os.stat(path).st_ino == os.stat(f"/proc/self/ns/{name}").st_ino:
                    continue  # shared with the host (--pid host...): nothing to join
                ns_fds.append((NAMESPACE_FLAGS[kind], os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
            except FileNotFoundError:
                if name in ("cgroup",):  # a kernel without cgroup namespaces
                    continue
                raise SpawnError(f"container {container.id} is not running") from None
            except OSError as e:
                raise SpawnError(f"open {kind} namespace {path}: {_errstr(e)}") from None
        # the namespace files just opened must be the container's, not a later process's on a reused pid
        if state(container) != "running":
            raise SpawnError(f"container {container.id} is not running")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        started = _launch(plan, container.cgroup, ns_fds, ours, theirs, stdio, timeout, _exec_child)
    finally:
        for _, fd in ns_fds:
            os.close(fd)
        for sock in (ours, theirs):
            if sock is not None:
                sock.close()
    if started.pidfd is not None:
        os.close(started.pidfd)  # the caller waits for the process as its parent; no pidfd needed
    return ExecProcess(started.pid, started.pty_master)


def _take_stdio_and_limits(plan: LaunchPlan, sock: socket.socket, stdio: tuple[int, int, int] | None) -> None:
    """The first steps of a container's init and of an exec'd process: its own session, its stdio as fds
    0-2, nothing else open but the report socket, its OOM score and rlimits."""
    os.setsid()
    if stdio is not None and not plan.terminal:
        copies = [os.dup(fd) for fd in stdio]  # first out of the way: a source may be 0, 1 or 2
        for target, fd in enumerate(copies):
            os.dup2(fd, target)
    keep = sock.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
    if plan.oom_score_adj is not None:
        with _step("setting oom_score_adj"), open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(plan.oom_score_adj))
    for number, soft, hard in plan.rlimits:
        with _step(f"setting rlimit {number}"):
            resource.setrlimit(number, (soft, hard))


def _become_the_process(plan: LaunchPlan, sock: socket.socket) -> NoReturn:
    """The last steps of both: no_new_privs, the seccomp filter (at runc's moment), the identity, then the
    report that the exec happens and the execve itself. Raises SpawnError when the command cannot run."""
    if plan.no_new_privileges:
        with _step("prctl(SET_NO_NEW_PRIVS)"):
            set_no_new_privileges()
    _load_seccomp(plan, late=False)
    _switch_identity(plan)
    # a change of user resets dumpable to fs.suid_dumpable, which a host may have set to 1
    set_dumpable(False)
    env = dict(e.split("=", 1) for e in plan.env if "=" in e)
    path = lookup_executable(plan.args[0], env.get("PATH"))
    _load_seccomp(plan, late=True)
    sock.send(b'{"exec": true}')
    try:
        os.execve(path, plan.args, env)
    except OSError as e:
        message = f"exec {path}: {_errstr(e)}"
        raise SpawnError(message, exit_code_for(message)) from None


def _exec_child(plan: LaunchPlan, sock: socket.socket, stdio: tuple[int, int, int] | None) -> NoReturn:
    """The exec'd process, forked in the container's namespaces (after the setns of the PID namespace) and
    already in its cgroups: stdio, limits, identity, then execve. The rootfs is the container's as set up
    by its init: joining the mount namespace made its root ours."""
    try:
        _take_stdio_and_limits(plan, sock, stdio)
        if plan.terminal:
            _setup_terminal(sock, plan.console_size, console=False)
        os.umask(plan.umask)
        _become_the_process(plan, sock)
    except BaseException as e:
        _report(sock, e)
    os._exit(127)


# --- in the children ------------------------------------------------------------------------------------


def _report(sock: socket.socket, e: BaseException) -> None:
    if isinstance(e, SpawnError):
        message, code = str(e), e.exit_code
    elif isinstance(e, OSError):
        message, code = f"{e.filename + ': ' if e.filename else ''}{_errstr(e)}", None
    else:
        message, code = f"{type(e).__name__}: {e}", None
    with contextlib.suppress(OSError):
        sock.send(json.dumps({"error": " ".join(message.split()), "exit_code": code}).encode())


def _reset_signals() -> None:
    # the user's command must not inherit the caller's dispositions (Python ignores SIGPIPE) or its mask
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP) or signal.getsignal(sig) == signal.SIG_DFL:
            continue
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def _intermediate(
    plan: LaunchPlan,
    sock: socket.socket,
    parents: socket.socket,
    ns_fds: list[tuple[int, int]],
    stdio: tuple[int, int, int] | None,
    child: Callable[[LaunchPlan, socket.socket, tuple[int, int, int] | None], NoReturn],
) -> NoReturn:
    code = 1
    try:
        # the collector must not finalize the caller's objects here: their fds may be closed and reused
        gc.disable()
        # Until its execve, this copy of the host's interpreter (and init or the exec'd process, its fork,
        # which inherit this) must not be ptraced by a process of the container, nor its /proc/PID/exe
        # (the host's binary), fds or memory opened (CVE-2019-5736): not dumpable before it joins anything.
        # The execve of the user's command makes it dumpable again, as any process.
        set_dumpable(False)
        parents.close()
        _reset_signals()
        set_parent_death_signal(signal.SIGKILL)
        if sock.recv(16) != b"go":
            os._exit(1)
        for flag, fd in ns_fds:
            kind = next(k for k, f in NAMESPACE_FLAGS.items() if f == flag)
            with _step(f"joining the {kind} namespace"):
                setns(fd, flag)
        if plan.new_namespaces:
            with _step("creating namespaces"):
                unshare(plan.new_namespaces)
        init = os.fork()
        if init == 0:
            child(plan, sock, stdio)  # _init, or _exec_child for a process joining a running container
        sock.send(json.dumps({"pid": init}).encode())
        code = 0
    except BaseException as e:
        _report(sock, e)
    finally:
        os._exit(code)


def _init(plan: LaunchPlan, sock: socket.socket, stdio: tuple[int, int, int] | None) -> NoReturn:
    try:
        _take_stdio_and_limits(plan, sock, stdio)
        _prepare_rootfs(plan)
        if plan.terminal:
            _setup_terminal(sock, plan.console_size)
        _finalize_rootfs(plan)
        if plan.hostname is not None:
            with _step("sethostname"):
                socket.sethostname(plan.hostname)
        if plan.new_namespaces & CLONE_NEWNET:
            with _step("bringing up the loopback interface"):
                loopback_up()
        for key, value in plan.sysctl.items():
            with _step(f'writing sysctl "{key}"'), open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        with RootDir("/") as root:  # after pivot_root: the container's own root
            for path in plan.readonly_paths:
                with _step(f"can't make {path!r} read-only"):
                    _readonly_path(root, path)
            for path in plan.masked_paths:
                with _step(f"can't mask path {path}"):
                    _mask_path(root, path)
        _become_the_process(plan, sock)
    except BaseException as e:
        _report(sock, e)
    os._exit(127)


def compile_seccomp(linux_seccomp: dict[str, Any] | SeccompFilter | None) -> SeccompFilter | None:
    """Check a spec's linux.seccomp and compile it, and map libseccomp: call it before forking (and before
    any pivot_root), so that a bad profile or a missing library is a clear error and the child has the
    library at hand."""
    if linux_seccomp is None:
        return None
    try:
        ensure_library()
        if isinstance(linux_seccomp, SeccompFilter):
            return linux_seccomp
        return compile_filter(linux_seccomp)
    except SeccompError as e:
        raise SpawnError(f"error loading seccomp filter: {e}") from None


def apply_seccomp(linux_seccomp: dict[str, Any] | SeccompFilter | None) -> None:
    """Load a spec's linux.seccomp (or one compile_seccomp made) into the calling process, which keeps it
    across execve; nothing for None. Call it last before execve, once no_new_privs is set or while
    CAP_SYS_ADMIN is held. Raises SpawnError."""
    compiled = compile_seccomp(linux_seccomp)
    if compiled is None:
        return
    try:
        load_filter(compiled)
    except SeccompError as e:
        raise SpawnError(f"error loading seccomp filter: {e}") from None


_CAP_SYS_ADMIN = caps.ALL_CAPABILITIES.index("CAP_SYS_ADMIN")


def _load_seccomp(plan: LaunchPlan, late: bool) -> None:
    """runc's moment for the filter: as late as possible when loading it then is allowed (no_new_privs
    set, or CAP_SYS_ADMIN still held after the identity switch); otherwise before that switch drops it."""
    if plan.seccomp is None:
        return
    can_load_late = plan.no_new_privileges or _CAP_SYS_ADMIN in plan.effective
    if late == can_load_late:
        apply_seccomp(plan.seccomp)


def _mount_flags_of(path: str) -> int:
    """The per-mount flags of the mount holding `path`, to keep across a remount: an unprivileged remount
    may not clear nosuid/nodev/noexec, and dropping them would loosen /proc's."""
    value = os.statvfs(path).f_flag
    flags = 0
    for st_flag, ms_flag in (
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (os.ST_RELATIME, MS_RELATIME),
    ):
        if value & st_flag:
            flags |= ms_flag
    return flags


def _remount_bind(dest: str, flags: int) -> None:
    flags = (flags & ~MS_REC) | MS_BIND | MS_REMOUNT
    try:
        mount(None, dest, None, flags)
    except PermissionError:
        mount(None, dest, None, flags | _mount_flags_of(dest))


def _prepare_rootfs(plan: LaunchPlan) -> None:
    rootfs = plan.rootfs
    with _step("preparing rootfs"):
        # rslave by default (as runc): nothing we mount leaks out, while the host's unmounts still reach us
        mount(None, "/", None, plan.rootfs_propagation)
        _make_parent_private(rootfs)
        mount(rootfs, rootfs, None, MS_BIND | MS_REC)
        root = RootDir(rootfs)  # opened after the bind: every path below resolves in the image's root
    with root:
        for m in plan.mounts:
            with _step(f'error mounting "{m.source or m.type}" to rootfs at "{m.destination}"'):
                _mount_one(plan, root, m)
        if plan.setup_dev:
            with _step("creating device nodes"):
                _create_devices(plan, root)
            with _step("setting up /dev symlinks"):
                _dev_symlinks(root)
        with contextlib.suppress(OSError):  # as runc, a missing working directory is made; best effort
            os.close(root.mkdirs(plan.cwd))
    with _step("jailing process inside rootfs"):
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            # pivot_root(".", "."): the old root ends up stacked on the new one, then is detached, so
            # no directory for it is needed in the image
            os.fchdir(new_root)
            pivot_root(".", ".")
            os.fchdir(old_root)
            mount(None, ".", None, MS_SLAVE | MS_REC)  # the detach must not propagate to the host
            umount(".", MNT_DETACH)
        finally:
            os.close(old_root)
            os.close(new_root)
        os.chdir("/")
        if plan.explicit_propagation:
            mount(None, "/", None, plan.rootfs_propagation)
    if plan.setup_dev:
        with _step("reopening /dev/null inside container"):
            _reopen_dev_null()


def _make_parent_private(rootfs: str) -> None:
    # pivot_root refuses a new root whose parent mount is shared (possible with rootfsPropagation=shared)
    best = None
    for entry in mount_table():
        mp = entry.mountpoint
        if rootfs == mp or rootfs.startswith(mp.rstrip("/") + "/"):
            if best is None or len(mp) >= len(best.mountpoint):
                best = entry
    if best is not None and best.shared:
        mount(None, best.mountpoint, None, MS_PRIVATE)


@contextlib.contextmanager
def _opened(root: RootDir, path: str) -> Iterator[str]:
    """`path` in the root as a /proc/self/fd link, to mount onto or remount: resolved once, acted on by
    descriptor. Opened after a mount, the descriptor is that mount's root."""
    fd = root.open(path)
    try:
        yield fd_path(fd)
    finally:
        os.close(fd)


def _mount_one(plan: LaunchPlan, root: RootDir, m: PlannedMount) -> None:
    flags = m.options.flags
    if m.type in ("proc", "sysfs"):
        # as runc: a kernel filesystem goes on a real directory only, never through a link of the image's
        with contextlib.suppress(FileNotFoundError):
            fd = root.open(m.destination, follow=False)
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
            os.close(fd)
            if not is_dir:
                raise SpawnError(f'filesystem "{m.type}" must be mounted on ordinary directory')
    if m.type == "bind":
        is_dir = stat.S_ISDIR(os.stat(m.source).st_mode)
        with _created(root, m.destination, is_dir) as dest:
            mount(m.source, dest, None, MS_BIND | (flags & MS_REC))
        if flags & ~(MS_BIND | MS_REC | MS_REMOUNT):
            with _opened(root, m.destination) as dest:
                _remount_bind(dest, flags)
    elif m.type == "cgroup":
        _mount_cgroup(plan, root, m)
    elif m.type == "sysfs":
        with _created(root, m.destination, True) as dest:
            try:
                mount("sysfs", dest, "sysfs", flags, m.options.data or None)
            except OSError as e:
                # without a network namespace of its own, sysfs cannot be mounted anew: bind the host's
                if e.errno not in (errno.EPERM, errno.EBUSY):
                    raise
                mount("/sys", dest, None, MS_BIND | MS_REC)
                bound = True
            else:
                bound = False
        if bound:
            with _opened(root, m.destination) as dest:
                _remount_bind(dest, flags)
    else:
        with _created(root, m.destination, True) as dest:
            mount(m.source or m.type, dest, m.type, flags, m.options.data or None)
    if m.options.propagation:
        with _opened(root, m.destination) as dest:
            for propagation in m.options.propagation:
                mount(None, dest, None, propagation)


@contextlib.contextmanager
def _created(root: RootDir, path: str, directory: bool) -> Iterator[str]:
    """`path` in the root, made when missing, as a /proc/self/fd link to mount onto."""
    fd = root.create(path, directory)
    try:
        yield fd_path(fd)
    finally:
        os.close(fd)


def _mount_cgroup(plan: LaunchPlan, root: RootDir, m: PlannedMount) -> None:
    cgroup = plan.cgroup
    assert cgroup is not None
    flags = m.options.flags
    if cgroup.version == "2":
        with _created(root, m.destination, True) as dest:
            try:
                mount("cgroup2", dest, "cgroup2", flags)
                return
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EBUSY):
                    raise
                mount(cgroup.paths[""], dest, None, MS_BIND | MS_REC)
        with _opened(root, m.destination) as dest:
            _remount_bind(dest, flags)
        return
    # v1 (and hybrid): a tmpfs holding each hierarchy's own cgroup of the container, as runc does
    with _created(root, m.destination, True) as dest:
        mount("tmpfs", dest, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755")
    tmpfs = root.open_dir(m.destination)  # the new tmpfs, ours alone: names in it are safe to use
    try:
        for key, host_dir in cgroup.paths.items():
            name = os.path.basename(cgroup.mountpoints.get(key, host_dir))
            os.mkdir(name, 0o755, dir_fd=tmpfs)
            sub = f"{fd_path(tmpfs)}/{name}"
            mount(host_dir, sub, None, MS_BIND | MS_REC)
            _remount_bind(sub, flags | MS_NOSUID | MS_NODEV | MS_NOEXEC)
            if "," in name:  # cpu,cpuacct is also reachable as cpu and cpuacct
                for alias in name.split(","):
                    with contextlib.suppress(FileExistsError):
                        os.symlink(name, alias, dir_fd=tmpfs)
        if flags & MS_RDONLY:
            mount(
                None,
                fd_path(tmpfs),
                None,
                MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            )
    finally:
        os.close(tmpfs)


# the container's own nodes on its /dev tmpfs (as runc makes them): never the host's, whose mode, owner
# and times the container's root could otherwise change through a bind mount
DEFAULT_NODES = {
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
}
_NODE_KINDS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def _mknod(
    root: RootDir, path: str, kind: int, mode: int, major: int, minor: int, uid: int, gid: int
) -> None:
    with root.parent_of(path, create=True) as (parent, name):
        try:
            os.mknod(name, kind | mode, os.makedev(major, minor), dir_fd=parent)
        except FileExistsError:
            return
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)


def _create_devices(plan: LaunchPlan, root: RootDir) -> None:
    listed = {os.path.normpath(d.get("path", "")) for d in plan.devices}
    old_umask = os.umask(0)
    try:
        for d in plan.devices:
            mode = int(d.get("fileMode", 0o666)) & 0o7777
            major, minor = int(d.get("major", 0)), int(d.get("minor", 0))
            _mknod(
                root,
                d["path"],
                _NODE_KINDS[d["type"]],
                mode,
                major,
                minor,
                int(d.get("uid", 0)),
                int(d.get("gid", 0)),
            )
        for name, (major, minor) in DEFAULT_NODES.items():
            if f"/dev/{name}" not in listed:
                _mknod(root, f"/dev/{name}", stat.S_IFCHR, 0o666, major, minor, 0, 0)
    finally:
        os.umask(old_umask)


def _dev_symlinks(root: RootDir) -> None:
    dev = root.mkdirs("/dev")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink("ptmx", dir_fd=dev)
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev)  # the container's own devpts instance, not the host's
        links = [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout")]
        links.append(("/proc/self/fd/2", "stderr"))
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            with contextlib.suppress(FileExistsError):
                os.symlink(target, name, dir_fd=dev)
    finally:
        os.close(dev)


def _reopen_dev_null() -> None:
    # stdio on the host's /dev/null would keep a reference to the host's mount: use the container's
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    try:
        rdev = os.fstat(null).st_rdev
        for fd in (0, 1, 2):
            try:
                st = os.fstat(fd)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == rdev:
                os.dup2(null, fd)
    finally:
        os.close(null)


def _setup_terminal(sock: socket.socket, size: tuple[int, int] | None, console: bool = True) -> None:
    with _step("setting up the terminal"):
        master, slave = os.openpty()  # through /dev/ptmx -> pts/ptmx: a pty of the container's devpts
        try:
            if size:
                fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
            if console:  # the container's init only: an exec'd process leaves /dev/console alone
                with RootDir("/") as root, _created(root, "/dev/console", False) as console_path:
                    mount(os.ttyname(slave), console_path, None, MS_BIND)
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            for fd in (0, 1, 2):
                os.dup2(slave, fd)
            socket.send_fds(sock, [b'{"pty": true}'], [master])
        finally:
            os.close(master)
            os.close(slave)


def _finalize_rootfs(plan: LaunchPlan) -> None:
    for m in plan.mounts:
        if m.destination == "/dev" and m.options.flags & MS_RDONLY:
            with _step("remounting /dev read-only"):
                _remount_bind("/dev", MS_RDONLY)
    if plan.readonly:
        with _step("setting rootfs as readonly"):
            _remount_bind("/", MS_RDONLY)
    os.umask(plan.umask)


def _readonly_path(root: RootDir, path: str) -> None:
    try:
        fd = root.open(path)
    except FileNotFoundError:
        return
    try:
        mount(fd_path(fd), fd_path(fd), None, MS_BIND | MS_REC)
    finally:
        os.close(fd)
    with _opened(root, path) as bound:
        mount(None, bound, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _mount_flags_of(bound))


def _mask_path(root: RootDir, path: str) -> None:
    """A file under the container's own /dev/null, a directory under an empty read-only tmpfs."""
    try:
        fd = root.open(path)
    except FileNotFoundError:
        return
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            mount("tmpfs", fd_path(fd), "tmpfs", MS_RDONLY)
        else:
            with _opened(root, "/dev/null") as null:
                mount(null, fd_path(fd), None, MS_BIND)
    finally:
        os.close(fd)


def _fix_stdio_owner(uid: int) -> None:
    # the user's command must own its stdio (a pty made by root, a pipe) to reopen /dev/stdout and the like
    null_rdev = os.stat("/dev/null").st_rdev if os.path.exists("/dev/null") else None
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if st.st_uid == uid or (stat.S_ISCHR(st.st_mode) and st.st_rdev == null_rdev):
            continue
        with contextlib.suppress(OSError):
            os.fchown(fd, uid, -1)


def _switch_identity(plan: LaunchPlan) -> None:
    with _step("fixing stdio ownership"):
        _fix_stdio_owner(plan.uid)
    with _step("dropping the bounding set"):
        for cap in range(plan.last_cap + 1):
            if cap not in plan.bounding:
                caps.drop_bounding(cap)
    # the working directory is entered as root first (as runc does), so a directory only root can enter
    # still works for another user; once more afterwards in case root cannot (root_squash NFS)
    entered = False
    with contextlib.suppress(OSError):
        os.chdir(plan.cwd)
        entered = True
    with _step("setting the user"):
        set_keep_capabilities(True)  # setresuid away from 0 would clear the permitted set
        os.setgroups(plan.additional_gids)
        os.setresgid(plan.gid, plan.gid, plan.gid)
        os.setresuid(plan.uid, plan.uid, plan.uid)
        set_keep_capabilities(False)
    if not entered:
        with _step(f"chdir to cwd ({json.dumps(plan.cwd)}) set in config.json failed"):
            os.chdir(plan.cwd)
    with _step("setting capabilities"):
        caps.capset(plan.effective, plan.permitted, plan.inheritable)
        caps.clear_ambient()
        for cap in plan.ambient:
            caps.raise_ambient(cap)
