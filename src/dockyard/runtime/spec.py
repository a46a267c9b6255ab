"""The OCI runtime spec (config.json, runtime-spec 1.0.2) the engine writes for a container, with Docker's
defaults and Docker's rules for turning `docker run` options into it.

Pure logic: whatever the host decides (the rootfs, the netns, the cgroup path, the /etc files, where each
volume lives, device nodes, the image's /etc/passwd) comes in through `ContainerOptions` or a lookup
callable, so one set of options always gives one spec, and the tests need neither root nor a kernel.

The flow mirrors dockerd's: at create, `validate_options` rejects what Docker rejects (with its one-line
messages) and `adapt_host_config` fills the defaults Docker stores in HostConfig (ShmSize, IpcMode,
CgroupnsMode, MemorySwap); `merge_config` merges the create body with the image config (what `inspect`
shows as Config, Path and Args); at start, `build_spec` gives the config.json.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..linux.capabilities import ALL_CAPABILITIES  # the kernel's numbering, re-exported here
from .seccomp_profile import ProfileError, default_profile, load_profile, setup_seccomp

__all__ = [
    "ALL_CAPABILITIES",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH_ENV",
    "DEFAULT_SHM_SIZE",
    "MASKED_PATHS",
    "OCI_VERSION",
    "READONLY_PATHS",
    "ContainerOptions",
    "DeviceNode",
    "MergedConfig",
    "MountPoint",
    "SpecError",
    "adapt_host_config",
    "build_spec",
    "host_devices",
    "merge_config",
    "mount_points",
    "parse_bind",
    "parse_mount",
    "parse_tmpfs",
    "resolve_additional_groups",
    "resolve_user",
    "tweak_capabilities",
    "validate_options",
    "validate_sysctls",
]

OCI_VERSION = "1.0.2"
DEFAULT_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
MIN_MEMORY = 6 * 1024 * 1024  # Docker's floor: room for the runtime's own start-up
MIN_CPU_SHARES, MAX_CPU_SHARES = 2, 262144
MAX_ID = 2**31 - 1
RLIM_INFINITY = 2**64 - 1  # what Docker's uint64(-1) becomes

# Docker's default set (moby oci/caps), in its order.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# Docker's lists; powercap joined them in Docker 27 (a power side channel), and we take it.
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


def _dev_rule(allow: bool, kind: str | None = None, major: int | None = None, minor: int | None = None):
    rule: dict[str, Any] = {"allow": allow}
    if kind is not None:
        rule["type"] = kind
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    rule["access"] = "rwm"
    return rule


# Docker's cgroup device rules, plus what runc adds on its own (mknod of any node, full, ptmx, the pts range,
# /dev/net/tun): written out so that every runtime (ours included) applies the same list. Making a node is
# allowed; opening one is allowed only for these.
DEFAULT_DEVICE_RULES = (
    _dev_rule(False),
    {"allow": True, "type": "c", "access": "m"},  # mknod of any character node
    {"allow": True, "type": "b", "access": "m"},  # and of any block node
    _dev_rule(True, "c", 1, 5),  # /dev/zero
    _dev_rule(True, "c", 1, 3),  # /dev/null
    _dev_rule(True, "c", 1, 9),  # /dev/urandom
    _dev_rule(True, "c", 1, 8),  # /dev/random
    _dev_rule(True, "c", 1, 7),  # /dev/full
    _dev_rule(True, "c", 5, 0),  # /dev/tty
    _dev_rule(True, "c", 5, 1),  # /dev/console
    _dev_rule(True, "c", 5, 2),  # /dev/ptmx
    _dev_rule(True, "c", 136),  # /dev/pts/*
    _dev_rule(True, "c", 10, 200),  # /dev/net/tun
)  # /dev/fuse stays out by the first rule; a deny after the mknod wildcard is refused by runc on v1

# Docker adds these only when the container gets a network namespace of its own.
PRIVATE_NETNS_SYSCTLS = {
    "net.ipv4.ping_group_range": "0 2147483647",  # ping without CAP_NET_RAW
    "net.ipv4.ip_unprivileged_port_start": "0",  # ports below 1024 without CAP_NET_BIND_SERVICE
}

ULIMIT_NAMES = frozenset(
    "core cpu data fsize locks memlock msgqueue nice nofile nproc rss rtprio rttime sigpending stack".split()
)


class SpecError(ValueError):
    """A bad option, worded as Docker words it (the API answers 400 with it)."""


# --- models ----------------------------------------------------------------------------------------------


@dataclass
class MountPoint:
    """One user mount (Binds, Mounts, Tmpfs, or an image VOLUME), validated as Docker validates it."""

    type: str  # bind, volume, tmpfs
    destination: str
    source: str = ""  # bind: host path; volume: the volume's name ("" = anonymous); tmpfs: ""
    rw: bool = True
    propagation: str = ""  # binds default to rprivate; volumes have none
    mode: str = ""  # the raw mode of a Binds entry ("ro,z")
    non_recursive: bool = False
    copy_data: bool = True  # volumes: copy the image's content in on first use (nocopy turns it off)
    driver: str = ""
    tmpfs_data: str = ""  # tmpfs: "size=64m,mode=1777"
    origin: str = ""  # binds, mounts, tmpfs, image


@dataclass
class DeviceNode:
    """A device node on the host; `path` is under the path it was looked up by (symlinks not resolved)."""

    path: str
    type: str  # c, b
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0


@dataclass
class MergedConfig:
    """The create body merged with the image's config, as dockerd stores and inspects it."""

    env: list[str]
    cmd: list[str] | None
    entrypoint: list[str] | None
    working_dir: str
    user: str
    stop_signal: str
    hostname: str
    domainname: str
    path: str  # what runs: the first of Entrypoint + Cmd
    args: list[str]


@dataclass
class ContainerOptions:
    """What a create asks for that shapes the spec, plus the paths the engine prepared for it."""

    container_id: str
    rootfs: str
    # the image's config
    image_env: list[str] = field(default_factory=list)
    image_cmd: list[str] | None = None
    image_entrypoint: list[str] | None = None
    image_working_dir: str = ""
    image_user: str = ""
    image_stop_signal: str = ""
    image_volumes: list[str] = field(default_factory=list)
    # the create body; for Cmd and Entrypoint None (not given) differs from []
    env: list[str] | None = None
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    volumes: list[str] = field(default_factory=list)  # Config.Volumes: `-v /path` asks for anonymous ones
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    console_size: tuple[int, int] | None = None  # HostConfig.ConsoleSize: [height, width] at start
    open_stdin: bool = False
    stop_signal: str = ""
    # HostConfig
    binds: list[str] = field(default_factory=list)
    mounts: list[dict[str, Any]] = field(default_factory=list)  # API form: Type, Source, Target...
    tmpfs: dict[str, str] = field(default_factory=dict)
    readonly_rootfs: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    security_opt: list[str] = field(default_factory=list)
    masked_paths: list[str] | None = None  # HostConfig.MaskedPaths; None: Docker's list
    readonly_paths: list[str] | None = None  # HostConfig.ReadonlyPaths; None: Docker's list
    memory: int = 0
    memory_swap: int = 0
    memory_reservation: int = 0
    memory_swappiness: int | None = None
    oom_kill_disable: bool | None = None
    nano_cpus: int = 0
    cpu_shares: int = 0
    cpu_quota: int = 0
    cpu_period: int = 0
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    blkio_weight: int = 0
    cpu_rt_period: int = 0
    cpu_rt_runtime: int = 0
    ulimits: list[dict[str, Any]] = field(default_factory=list)  # Name, Soft, Hard
    default_ulimits: list[dict[str, Any]] = field(default_factory=list)  # the daemon's, overridden by name
    shm_size: int = 0  # 0 = Docker's default, 64 MB
    sysctls: dict[str, str] = field(default_factory=dict)
    group_add: list[str] = field(default_factory=list)
    init: bool | None = None  # --init: docker-init (tini) as PID 1, bound in at INIT_PATH
    network_mode: str = ""  # "", default, bridge, a network name, none, host, container:<id>
    ipc_mode: str = ""
    pid_mode: str = ""
    uts_mode: str = ""
    cgroupns_mode: str = ""
    devices: list[dict[str, Any]] = field(default_factory=list)  # PathOnHost, PathInContainer, ...
    oom_score_adj: int = 0
    # prepared by the engine
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    netns_path: str = ""  # the network namespace to join for bridge/none/user networks
    init_binary: str = ""  # the host's docker-init (or tini) for --init; "" = none found
    cgroup_path: str = ""  # "" = /dockyard/<id> (cgroupfs driver)
    shm_path: str = ""  # /dev/shm to bind for IPC modes shareable, host and container:<id>
    namespace_paths: dict[str, str] = field(default_factory=dict)  # "network"/"ipc"/"pid" for container:<id>
    volume_paths: dict[str, str] = field(default_factory=dict)  # destination -> host dir of each volume
    # the name a shared network dictates: the host's for `host` ("" = this machine's), the donor's for
    # container:<id> (where a Hostname of its own is refused, as Docker does)
    network_hostname: str = ""
    # the daemon's seccomp default (daemon.json seccomp-profile): "" = the built-in profile, "unconfined",
    # or a profile's JSON text
    seccomp_profile: str = ""

    @classmethod
    def from_api(
        cls,
        container_id: str,
        rootfs: str,
        config: dict[str, Any],
        host_config: dict[str, Any] | None = None,
        image_config: dict[str, Any] | None = None,
        **engine: Any,
    ) -> ContainerOptions:
        """From the JSON of `POST /containers/create` (Config, HostConfig) and the image config's `config`."""
        hc = host_config or {}
        img = image_config or {}

        def strs(value: Any) -> list[str] | None:
            # Docker's StrSlice: a string means a one-element list
            if value is None:
                return None
            return [value] if isinstance(value, str) else list(value)

        return cls(
            container_id=container_id,
            rootfs=rootfs,
            image_env=list(img.get("Env") or []),
            image_cmd=strs(img.get("Cmd")),
            image_entrypoint=strs(img.get("Entrypoint")),
            image_working_dir=img.get("WorkingDir") or "",
            image_user=img.get("User") or "",
            image_stop_signal=img.get("StopSignal") or "",
            image_volumes=sorted(img.get("Volumes") or {}),
            env=config.get("Env"),
            cmd=strs(config.get("Cmd")),
            entrypoint=strs(config.get("Entrypoint")),
            volumes=sorted(config.get("Volumes") or {}),
            working_dir=config.get("WorkingDir") or "",
            user=config.get("User") or "",
            hostname=config.get("Hostname") or "",
            domainname=config.get("Domainname") or "",
            tty=bool(config.get("Tty")),
            console_size=_console_size(hc.get("ConsoleSize")),
            open_stdin=bool(config.get("OpenStdin")),
            stop_signal=config.get("StopSignal") or "",
            binds=list(hc.get("Binds") or []),
            mounts=list(hc.get("Mounts") or []),
            tmpfs=dict(hc.get("Tmpfs") or {}),
            readonly_rootfs=bool(hc.get("ReadonlyRootfs")),
            cap_add=list(hc.get("CapAdd") or []),
            cap_drop=list(hc.get("CapDrop") or []),
            privileged=bool(hc.get("Privileged")),
            security_opt=list(hc.get("SecurityOpt") or []),
            masked_paths=_path_list(hc.get("MaskedPaths")),
            readonly_paths=_path_list(hc.get("ReadonlyPaths")),
            memory=int(hc.get("Memory") or 0),
            memory_swap=int(hc.get("MemorySwap") or 0),
            memory_reservation=int(hc.get("MemoryReservation") or 0),
            memory_swappiness=hc.get("MemorySwappiness"),
            oom_kill_disable=hc.get("OomKillDisable"),
            nano_cpus=int(hc.get("NanoCpus") or 0),
            cpu_shares=int(hc.get("CpuShares") or 0),
            cpu_quota=int(hc.get("CpuQuota") or 0),
            cpu_period=int(hc.get("CpuPeriod") or 0),
            cpuset_cpus=hc.get("CpusetCpus") or "",
            cpuset_mems=hc.get("CpusetMems") or "",
            pids_limit=hc.get("PidsLimit"),
            blkio_weight=int(hc.get("BlkioWeight") or 0),
            cpu_rt_period=int(hc.get("CpuRealtimePeriod") or 0),
            cpu_rt_runtime=int(hc.get("CpuRealtimeRuntime") or 0),
            ulimits=list(hc.get("Ulimits") or []),
            shm_size=int(hc.get("ShmSize") or 0),
            sysctls=dict(hc.get("Sysctls") or {}),
            group_add=list(hc.get("GroupAdd") or []),
            init=hc.get("Init"),
            network_mode=hc.get("NetworkMode") or "",
            ipc_mode=hc.get("IpcMode") or "",
            pid_mode=hc.get("PidMode") or "",
            uts_mode=hc.get("UTSMode") or "",
            cgroupns_mode=hc.get("CgroupnsMode") or "",
            devices=list(hc.get("Devices") or []),
            oom_score_adj=int(hc.get("OomScoreAdj") or 0),
            **engine,
        )


# --- mounts ----------------------------------------------------------------------------------------------

_RW_MODES = {"rw", "ro"}
_LABEL_MODES = {"z", "Z"}
PROPAGATION_MODES = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
_COPY_MODES = {"nocopy"}
_CONSISTENCY_MODES = {"consistent", "cached", "delegated"}
_MODE_KINDS = (_RW_MODES, _LABEL_MODES, set(PROPAGATION_MODES), _COPY_MODES, _CONSISTENCY_MODES)


def _valid_mount_mode(mode: str) -> bool:
    if not mode:
        return True
    counts = [0] * len(_MODE_KINDS)
    for opt in mode.split(","):
        for i, kind in enumerate(_MODE_KINDS):
            if opt in kind:
                counts[i] += 1
                break
        else:
            return False
    return max(counts) <= 1  # one of each kind at most: "ro,rw" is wrong


def _mount_config_error(kind: str, why: str) -> SpecError:
    return SpecError(f"invalid mount config for type {json.dumps(kind)}: {why}")


def _check_target(kind: str, target: str) -> None:
    if not target:
        raise _mount_config_error(kind, "field Target must not be empty")
    if posixpath.normpath(target.replace("\\", "/")) == "/":
        raise _mount_config_error(kind, "invalid specification: destination can't be '/'")
    if not target.replace("\\", "/").startswith("/"):
        raise _mount_config_error(kind, f"invalid mount path: '{target}' mount path must be absolute")


def _clean(path: str) -> str:
    return posixpath.normpath(path) if path else path


def parse_bind(raw: str) -> MountPoint:
    """One `Binds` entry (`-v`): `/dest` (anonymous volume), `src:/dest[:mode]` where src is an absolute host
    path (bind) or a volume name; modes: ro|rw, z|Z, a propagation, nocopy, consistency."""
    if raw.count(":") > 2 or raw.startswith(":") or not raw:
        raise SpecError(f"invalid volume specification: '{raw}'")
    parts = raw.split(":")
    source, mode = "", ""
    if len(parts) == 1:
        target = parts[0]
    elif len(parts) == 2:
        if _valid_mount_mode(parts[1]):
            raise SpecError(f"invalid volume specification: '{raw}'")  # "/foo:rw": a mode is not a path
        source, target = parts
    else:
        source, target, mode = parts
    if not _valid_mount_mode(mode):
        raise SpecError(f"invalid mode: {mode}")
    opts = mode.split(",") if mode else []
    kind = "bind" if source.startswith("/") else "volume"
    propagation = next((o for o in opts if o in PROPAGATION_MODES), "")
    try:
        _check_target(kind, target)
        if kind == "bind" and "nocopy" in opts:
            raise _mount_config_error(kind, "field VolumeOptions must not be specified")
        if kind == "volume" and propagation:
            raise _mount_config_error(kind, "field BindOptions must not be specified")
    except SpecError as e:
        raise SpecError(f"invalid volume specification: '{raw}': {e}") from None
    return MountPoint(
        type=kind,
        destination=_clean(target),
        source=_clean(source) if kind == "bind" else source,
        rw="ro" not in opts,
        propagation=(propagation or "rprivate") if kind == "bind" else "",
        mode=mode,
        copy_data="nocopy" not in opts,
        origin="binds",
    )


def _tmpfs_size(size: int) -> str:
    for suffix, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if size % divisor == 0:
            return f"{size // divisor}{suffix}"
    return str(size)


def parse_mount(spec: dict[str, Any]) -> MountPoint:
    """One `HostConfig.Mounts` entry (`--mount`). A bind's source must exist: the engine checks that."""
    kind = spec.get("Type") or ""
    source = spec.get("Source") or ""
    target = spec.get("Target") or ""
    read_only = bool(spec.get("ReadOnly"))
    bind_opts = spec.get("BindOptions")
    volume_opts = spec.get("VolumeOptions")
    tmpfs_opts = spec.get("TmpfsOptions")
    if kind not in ("bind", "volume", "tmpfs"):
        raise _mount_config_error(kind, "mount type unknown")
    _check_target(kind, target)
    if kind == "bind":
        if not source:
            raise _mount_config_error(kind, "field Source must not be empty")
        propagation = (bind_opts or {}).get("Propagation") or ""
        if propagation and propagation not in PROPAGATION_MODES:
            raise _mount_config_error(kind, f"invalid propagation mode: {propagation}")
        if volume_opts is not None:
            raise _mount_config_error(kind, "field VolumeOptions must not be specified")
        if not source.startswith("/"):
            raise _mount_config_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        return MountPoint(
            type=kind,
            destination=_clean(target),
            source=_clean(source),
            rw=not read_only,
            propagation=propagation or "rprivate",
            non_recursive=bool((bind_opts or {}).get("NonRecursive")),
            origin="mounts",
        )
    if bind_opts is not None:
        raise _mount_config_error(kind, "field BindOptions must not be specified")
    if kind == "volume":
        if read_only and not source:
            raise _mount_config_error(kind, "must not set ReadOnly mode when using anonymous volumes")
        volume_opts = volume_opts or {}
        return MountPoint(
            type=kind,
            destination=_clean(target),
            source=source,
            rw=not read_only,
            copy_data=not volume_opts.get("NoCopy"),
            driver=((volume_opts.get("DriverConfig") or {}).get("Name")) or "",
            origin="mounts",
        )
    if source:
        raise _mount_config_error(kind, "field Source must not be specified")
    data = []
    if read_only:
        data.append("ro")
    tmpfs_opts = tmpfs_opts or {}
    if tmpfs_opts.get("Mode"):
        data.append(f"mode={int(tmpfs_opts['Mode']):o}")
    if tmpfs_opts.get("SizeBytes"):
        data.append(f"size={_tmpfs_size(int(tmpfs_opts['SizeBytes']))}")
    tmpfs_data = ",".join(data)
    _merge_tmpfs_options(tmpfs_data.split(",") if tmpfs_data else [])
    return MountPoint(
        type=kind, destination=_clean(target), rw=not read_only, tmpfs_data=tmpfs_data, origin="mounts"
    )


def _check_tmpfs_destination(dest: str) -> None:
    if posixpath.normpath(dest) == "/":
        raise SpecError("invalid specification: destination can't be '/'")
    if not dest.startswith("/"):
        raise SpecError(f"invalid mount path: '{dest}' mount path must be absolute")


def parse_tmpfs(destination: str, data: str = "") -> MountPoint:
    """One `HostConfig.Tmpfs` entry (`--tmpfs /run:size=64m`)."""
    _check_tmpfs_destination(destination)
    _merge_tmpfs_options(data.split(",") if data else [])
    return MountPoint(
        type="tmpfs",
        destination=_clean(destination),
        rw="ro" not in data.split(","),
        tmpfs_data=data,
        origin="tmpfs",
    )


# mount(8) flags by the flag they set or clear: a later option of a group overrides an earlier one
_FLAG_GROUPS = {
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid", "dev": "nodev", "nodev": "nodev",
    "exec": "noexec", "noexec": "noexec", "sync": "sync", "async": "sync", "dirsync": "dirsync",
    "remount": "remount", "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime",
    "diratime": "nodiratime", "nodiratime": "nodiratime", "bind": "bind", "rbind": "rbind",
    "relatime": "relatime", "norelatime": "relatime", "strictatime": "strictatime",
    "nostrictatime": "strictatime",
    **{p: "propagation" for p in ("unbindable", "runbindable", *PROPAGATION_MODES)},
}  # fmt: skip
_TMPFS_DATA_KEYS = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"}


def _merge_tmpfs_options(options: list[str]) -> list[str]:
    """Docker's MergeTmpfsOptions: the last of each flag group and of each key=value wins; order kept."""
    seen: set[str] = set()
    merged: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        group = _FLAG_GROUPS.get(option)
        if group is None:
            key, sep, _ = option.partition("=")
            if not sep or key not in _TMPFS_DATA_KEYS:
                shown = " ".join(json.dumps(p) for p in option.split("=", 1))
                raise SpecError(f"Invalid tmpfs option [{shown}]")
            group = "=" + key
        if group not in seen:
            seen.add(group)
            merged.insert(0, option)
    return merged


def mount_points(options: ContainerOptions) -> list[MountPoint]:
    """Every user mount of a container: Binds, then Mounts, then Tmpfs, then the anonymous volumes (Config's
    Volumes, then the image's) that no user mount covers. The engine creates the volumes these name (and
    names the anonymous ones) before the first start, and passes their directories as `volume_paths`."""
    points: list[MountPoint] = []
    taken: set[str] = set()

    def add(mp: MountPoint) -> None:
        if mp.destination in taken:
            raise SpecError(f"Duplicate mount point: {mp.destination}")
        taken.add(mp.destination)
        points.append(mp)

    for raw in options.binds:
        add(parse_bind(raw))
    for spec in options.mounts:
        add(parse_mount(spec))
    for dest, data in options.tmpfs.items():
        add(parse_tmpfs(dest, data))
    anonymous = [(d, "volumes") for d in options.volumes] + [(d, "image") for d in options.image_volumes]
    for dest, origin in anonymous:
        dest = _clean(dest)
        if dest not in taken and dest != "/":
            taken.add(dest)
            points.append(MountPoint(type="volume", destination=dest, origin=origin))
    return points


# --- users -----------------------------------------------------------------------------------------------


def _fields(text: str | None, count: int) -> list[list[str]]:
    rows = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        rows.append(parts + [""] * (count - len(parts)))
    return rows


_NUMERIC = re.compile(r"[+-]?[0-9]+")


def _numeric(text: str) -> int | None:
    return int(text) if _NUMERIC.fullmatch(text) else None


def _passwd(text: str | None) -> list[tuple[str, int, int, str]]:
    """(name, uid, gid, home) of each well-formed /etc/passwd line."""
    out = []
    for name, _pw, uid, gid, _gecos, home, *_ in _fields(text, 7):
        u, g = _numeric(uid), _numeric(gid)
        if u is not None and g is not None:
            out.append((name, u, g, home))
    return out


def _group(text: str | None) -> list[tuple[str, int, list[str]]]:
    """(name, gid, members) of each well-formed /etc/group line."""
    out = []
    for name, _pw, gid, members, *_ in _fields(text, 4):
        g = _numeric(gid)
        if g is not None:
            out.append((name, g, [m.strip() for m in members.split(",") if m.strip()]))
    return out


def _check_range(value: int) -> int:
    if not 0 <= value <= MAX_ID:
        raise SpecError(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def _resolve(
    spec_user: str, passwd_text: str | None, group_text: str | None
) -> tuple[int, int, list[int], str]:
    user_arg, _, group_arg = spec_user.partition(":")
    uid_num, gid_num = _numeric(user_arg), _numeric(group_arg)
    uid, gid, home = 0, 0, "/"

    users = _passwd(passwd_text)
    if not user_arg:
        match = [u for u in users if u[1] == 0]
    elif uid_num is not None:
        match = [u for u in users if u[1] == uid_num]
    else:
        match = [u for u in users if u[0] == user_arg]
    matched_name = ""
    if match:
        matched_name, uid, gid, home = match[0]  # the first entry wins, as in runc
    elif user_arg:
        if uid_num is None:
            raise SpecError(f"unable to find user {user_arg}: no matching entries in passwd file")
        uid = _check_range(uid_num)

    supplementary: list[int] = []
    if group_arg or matched_name:
        groups = _group(group_text)
        if group_arg:
            if gid_num is not None:
                found = [g for g in groups if g[1] == gid_num]
            else:
                found = [g for g in groups if g[0] == group_arg]
            if found:
                gid = found[0][1]
            elif gid_num is None:
                raise SpecError(f"unable to find group {group_arg}: no matching entries in group file")
            else:
                gid = _check_range(gid_num)
        else:
            supplementary = [g[1] for g in groups if matched_name in g[2]]
    return uid, gid, supplementary, home or "/"


def resolve_user(
    spec_user: str, passwd_text: str | None, group_text: str | None
) -> tuple[int, int, list[int]]:
    """Docker's (runc's) rules for `--user`: `name`, `uid`, `name:group`, `uid:gid` against the image's
    /etc/passwd and /etc/group (None when the file is missing). Returns (uid, gid, supplementary gids); the
    supplementary groups come from /etc/group only in the implicit form (no `:group`). A numeric uid or gid
    need not be in the files; a name must."""
    uid, gid, supplementary, _home = _resolve(spec_user, passwd_text, group_text)
    return uid, gid, supplementary


def resolve_additional_groups(groups: list[str], group_text: str | None) -> list[int]:
    """`--group-add` names or numbers, against the image's /etc/group, in the order given."""
    entries = _group(group_text)
    out: list[int] = []
    for wanted in groups:
        found = next((g[1] for g in entries if g[0] == wanted or str(g[1]) == wanted), None)
        if found is None:
            num = _numeric(wanted)
            if num is None:
                raise SpecError(f"Unable to find group {wanted}: no matching entries in group file")
            found = _check_range(num)
        if found not in out:
            out.append(found)
    return out


# --- capabilities ----------------------------------------------------------------------------------------


def _normalize_capabilities(caps: list[str], known: tuple[str, ...]) -> list[str]:
    out = []
    for cap in caps:
        cap = cap.upper()
        if cap != "ALL":
            if not cap.startswith("CAP_"):
                cap = "CAP_" + cap
            if cap not in known:
                raise SpecError(f"unknown capability: {json.dumps(cap)}")
        out.append(cap)
    return out


def tweak_capabilities(
    cap_add: list[str],
    cap_drop: list[str],
    privileged: bool = False,
    *,
    last_cap: int | None = None,
    available: frozenset[str] | None = None,
) -> list[str]:
    """Docker's capability set: its defaults, minus CapDrop, plus CapAdd; `ALL` on either side; privileged
    gets every capability the kernel has (`last_cap` from /proc/sys/kernel/cap_last_cap) that the daemon
    can grant (`available`: its bounding set; a host may have dropped some, as podman also allows for)."""
    known = ALL_CAPABILITIES if last_cap is None else ALL_CAPABILITIES[: last_cap + 1]
    every = known if available is None else tuple(c for c in known if c in available)
    drops = _normalize_capabilities(cap_drop, known)
    adds = _normalize_capabilities(cap_add, known)
    if privileged:
        return list(every)
    if "ALL" in adds:
        caps = [c for c in every if c not in drops]
    elif "ALL" in drops:
        caps = [c for c in adds if c != "ALL"]
    else:
        caps = [c for c in DEFAULT_CAPABILITIES if c not in drops] + adds
    return list(dict.fromkeys(caps))


# --- merge and validation --------------------------------------------------------------------------------


def _env_key(entry: str) -> str:
    return entry.split("=", 1)[0]


def merge_config(options: ContainerOptions) -> MergedConfig:
    """dockerd's merge of the create body with the image config: the create's Env entries override the
    image's by key; a Cmd replaces the image's Cmd; an Entrypoint drops the image's Cmd unless a Cmd is
    given; `Entrypoint: []` or `[""]` resets it."""
    env = list(options.env or [])
    if not env:
        env = list(options.image_env)
    else:
        keys = {_env_key(e) for e in env}
        env += [e for e in options.image_env if _env_key(e) not in keys]

    entrypoint, cmd = options.entrypoint, options.cmd
    if not entrypoint:
        if not cmd:
            cmd = options.image_cmd
        if entrypoint is None:
            entrypoint = options.image_entrypoint
    if entrypoint is not None and list(entrypoint) == [""]:
        entrypoint = None
    if not entrypoint and not cmd:
        raise SpecError("No command specified")
    if entrypoint:
        path, args = entrypoint[0], [*entrypoint[1:], *(cmd or [])]
    else:
        assert cmd
        path, args = cmd[0], list(cmd[1:])

    working_dir = options.working_dir or options.image_working_dir
    if working_dir and not working_dir.startswith("/"):
        raise SpecError(f"the working directory '{working_dir}' is invalid, it needs to be an absolute path")

    hostname = options.hostname
    if not hostname:
        if options.network_mode == "host":
            hostname = options.network_hostname or os.uname().nodename
        else:
            hostname = options.network_hostname or options.container_id[:12]
    return MergedConfig(
        env=env,
        cmd=list(cmd) if cmd is not None else None,
        entrypoint=list(entrypoint) if entrypoint else None,
        working_dir=working_dir,
        user=options.user or options.image_user,
        stop_signal=options.stop_signal or options.image_stop_signal,
        hostname=hostname,
        domainname=options.domainname,
        path=path,
        args=args,
    )


def _container_ref(mode: str) -> str | None:
    kind, sep, ref = mode.partition(":")
    return ref if kind == "container" and sep else None


def _default_cgroupns(cgroup_version: str) -> str:
    # Docker: private on cgroup v2 (privileged too), host on v1
    return "private" if cgroup_version == "2" else "host"


def _console_size(value: Any) -> tuple[int, int] | None:
    """Docker's ConsoleSize, [height, width]; None when unset or zero."""
    try:
        height, width = (int(v) for v in value or ())
    except (TypeError, ValueError):
        return None
    return (height, width) if height > 0 and width > 0 else None


def adapt_host_config(host_config: dict[str, Any], *, cgroup_version: str) -> dict[str, Any]:
    """The defaults dockerd writes into a HostConfig at create, so `inspect` shows what will apply."""
    hc = dict(host_config)
    shares = int(hc.get("CpuShares") or 0)
    if shares > 0:
        hc["CpuShares"] = min(max(shares, MIN_CPU_SHARES), MAX_CPU_SHARES)
    if int(hc.get("Memory") or 0) > 0 and not hc.get("MemorySwap"):
        hc["MemorySwap"] = int(hc["Memory"]) * 2
    if not hc.get("ShmSize"):
        hc["ShmSize"] = DEFAULT_SHM_SIZE
    if not hc.get("IpcMode"):
        hc["IpcMode"] = "private"
    if not hc.get("CgroupnsMode"):
        hc["CgroupnsMode"] = _default_cgroupns(cgroup_version)
    if hc.get("OomKillDisable") is None:
        hc["OomKillDisable"] = False
    if hc.get("MemorySwappiness") == -1:
        hc["MemorySwappiness"] = None
    return hc


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def _no_new_privileges(security_opt: list[str]) -> bool:
    """Docker's --security-opt parsing; labels and AppArmor are accepted and have no effect here (no LSM);
    seccomp's value (a profile's JSON, `unconfined`, `builtin`) is read at start, as dockerd does."""
    nnp = False
    for opt in security_opt:
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "disable":
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise SpecError(f"invalid --security-opt 1: {json.dumps(opt)}")
        if key in ("label", "apparmor"):
            continue
        if key == "seccomp":
            continue
        if key == "systempaths":
            if value != "unconfined":
                raise SpecError(f"invalid --security-opt 2: {json.dumps(opt)}")
            continue
        if key == "no-new-privileges" and value in _TRUE | _FALSE:
            nnp = value in _TRUE
            continue
        raise SpecError(f"invalid --security-opt 2: {json.dumps(opt)}")
    return nnp


def _path_list(value: Any) -> list[str] | None:
    return None if value is None else [str(p) for p in value]


def system_paths(options: ContainerOptions, default: tuple[str, ...], given: list[str] | None) -> list[str]:
    """dockerd's masked or read-only /proc and /sys paths: none when privileged or with `--security-opt
    systempaths=unconfined`, the container's own list when its HostConfig names one, else Docker's."""
    if options.privileged or "systempaths=unconfined" in options.security_opt:
        return []
    return list(default) if given is None else given


def _seccomp_option(security_opt: list[str]) -> str:
    """The container's own seccomp choice from --security-opt (the last one given), "" when none."""
    chosen = ""
    for opt in security_opt:
        sep = "=" if "=" in opt else ":"
        key, found, value = opt.partition(sep)
        if found and key == "seccomp":
            chosen = value
    return chosen


def _seccomp(options: ContainerOptions, bounding: list[str]) -> dict[str, Any] | None:
    """dockerd's choice of profile: the container's `seccomp=` first (`unconfined`, `builtin` or a profile's
    JSON), then the daemon's default; none for --privileged."""
    chosen = _seccomp_option(options.security_opt)
    if chosen == "unconfined" or options.privileged:
        return None
    try:
        if chosen == "builtin":
            profile = default_profile()
        elif chosen:
            profile = load_profile(chosen)
        elif options.seccomp_profile == "unconfined":
            return None
        elif options.seccomp_profile:
            profile = load_profile(options.seccomp_profile)
        else:
            profile = default_profile()
        return setup_seccomp(profile, bounding)
    except ProfileError as e:
        raise SpecError(str(e)) from None


def _check_modes(options: ContainerOptions) -> None:
    ipc = options.ipc_mode
    if not (ipc in ("", "host", "private", "shareable", "none") or _container_ref(ipc)):
        raise SpecError(f"invalid IPC mode: {ipc}")
    if not (options.pid_mode in ("", "host") or _container_ref(options.pid_mode)):
        raise SpecError(f"invalid PID mode: {options.pid_mode}")
    if options.uts_mode not in ("", "host"):
        raise SpecError(f"invalid UTS mode: {options.uts_mode}")
    if options.cgroupns_mode not in ("", "host", "private"):
        raise SpecError(f"invalid cgroup namespace mode: {options.cgroupns_mode}")
    if options.network_mode.partition(":")[0] == "container" and not _container_ref(options.network_mode):
        raise SpecError("Invalid network mode: invalid container format container:<name|id>")
    if _container_ref(options.network_mode) and options.hostname:
        raise SpecError("conflicting options: hostname and the network mode")
    if options.uts_mode == "host" and options.hostname:
        raise SpecError("conflicting options: hostname and the UTS mode")


def _ulimit_value(value: Any) -> int:
    value = int(value)
    return RLIM_INFINITY if value < 0 else value


def _rlimits(options: ContainerOptions) -> list[dict[str, Any]]:
    names = {u.get("Name") for u in options.ulimits}
    merged = options.ulimits + [u for u in options.default_ulimits if u.get("Name") not in names]
    out = []
    for u in merged:
        name = str(u.get("Name") or "")
        if name not in ULIMIT_NAMES:
            raise SpecError(f"invalid ulimit type: {name}")
        soft, hard = int(u.get("Soft") or 0), int(u.get("Hard") or 0)
        if soft >= 0 and hard >= 0 and soft > hard:
            raise SpecError(f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")
        out.append(
            {"type": "RLIMIT_" + name.upper(), "hard": _ulimit_value(hard), "soft": _ulimit_value(soft)}
        )
    return out


def _device_permissions(mapping: dict[str, Any]) -> str:
    perms = mapping.get("CgroupPermissions") or "rwm"
    if not set(perms) <= set("rwm") or len(set(perms)) != len(perms):
        raise SpecError(f"bad mode specified: {perms}")
    return perms


def validate_options(options: ContainerOptions, *, cgroup_version: str, ncpu: int | None = None) -> list[str]:
    """Docker's create-time checks: raises SpecError with Docker's message, returns Docker's warnings."""
    warnings: list[str] = []
    memory, swap, reservation = options.memory, options.memory_swap, options.memory_reservation
    if memory > 0 and swap == 0:
        swap = memory * 2
    if memory != 0 and memory < MIN_MEMORY:
        raise SpecError("Minimum memory limit allowed is 6MB")
    if memory > 0 and swap > 0 and swap < memory:
        raise SpecError("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0:
        raise SpecError("You should always set the Memory limit when using Memoryswap limit, see usage")
    swappiness = options.memory_swappiness
    if swappiness is not None and swappiness != -1:
        if cgroup_version == "2":
            warnings.append(
                "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
                "Memory swappiness discarded."
            )
        elif not 0 <= swappiness <= 100:
            raise SpecError(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    if reservation > 0 and reservation < MIN_MEMORY:
        raise SpecError("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise SpecError("Minimum memory limit can not be less than memory reservation limit, see usage")
    if options.oom_kill_disable and memory == 0:
        warnings.append(
            "OOM killer is disabled for the container, but no memory limit is set, "
            "this can result in the system running out of resources."
        )

    if options.nano_cpus > 0 and options.cpu_period > 0:
        raise SpecError("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if options.nano_cpus > 0 and options.cpu_quota > 0:
        raise SpecError("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if ncpu is not None and (options.nano_cpus < 0 or options.nano_cpus > ncpu * 10**9):
        raise SpecError(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    if options.cpu_period != 0 and not 1000 <= options.cpu_period <= 1000000:
        raise SpecError(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if 0 < options.cpu_quota < 1000:
        raise SpecError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if options.cpu_shares < 0:
        raise SpecError("shares: invalid argument")
    if 0 < options.cpu_shares < MIN_CPU_SHARES or options.cpu_shares > MAX_CPU_SHARES:
        bound = MIN_CPU_SHARES if options.cpu_shares < MIN_CPU_SHARES else MAX_CPU_SHARES
        which = "minimum" if bound == MIN_CPU_SHARES else "maximum"
        warnings.append(f"Changing requested CPUShares of {options.cpu_shares} to {which} allowed of {bound}")

    _check_modes(options)
    if options.shm_size < 0:
        raise SpecError("SHM size can not be less than 0")
    if not -1000 <= options.oom_score_adj <= 1000:
        raise SpecError(f"Invalid value {options.oom_score_adj}, range for oom score adj is [-1000, 1000]")
    mount_points(options)
    tweak_capabilities(options.cap_add, options.cap_drop, options.privileged)
    _no_new_privileges(options.security_opt)
    _rlimits(options)
    for mapping in options.devices:
        _device_permissions(mapping)
    merge_config(options)
    return warnings


# --- namespaces and sysctls ------------------------------------------------------------------------------

_IPC_SYSCTLS = {
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
    "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}  # fmt: skip


def validate_sysctls(sysctls: dict[str, str], namespaces: list[dict[str, str]]) -> None:
    """runc's rule: a sysctl is allowed only in a namespace the container has of its own."""
    own = {ns["type"] for ns in namespaces}
    for key in sysctls:
        if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
            if "ipc" in own:
                continue
            raise SpecError(f"sysctl {json.dumps(key)} is not allowed in the hosts ipc namespace")
        if key.startswith("net."):
            if "network" in own:
                continue
            raise SpecError(f"sysctl {json.dumps(key)} is not allowed in the hosts network namespace")
        if "uts" in own:
            if key == "kernel.domainname":
                continue
            if key == "kernel.hostname":
                raise SpecError(
                    'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field'
                )
        raise SpecError(f"sysctl {json.dumps(key)} is not in a separate kernel namespace")


def _joined(options: ContainerOptions, kind: str, mode: str) -> dict[str, str]:
    path = options.namespace_paths.get(kind)
    if not path:
        raise SpecError(f"no {kind} namespace path given for mode {mode}")
    return {"type": kind, "path": path}


def _namespaces(options: ContainerOptions, cgroupns: str) -> list[dict[str, str]]:
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    net = options.network_mode
    if _container_ref(net):
        namespaces.append(_joined(options, "network", net))
    elif net != "host":
        namespaces.append(
            {"type": "network", "path": options.netns_path} if options.netns_path else {"type": "network"}
        )
    if options.uts_mode != "host":
        namespaces.append({"type": "uts"})
    if _container_ref(options.pid_mode):
        namespaces.append(_joined(options, "pid", options.pid_mode))
    elif options.pid_mode != "host":
        namespaces.append({"type": "pid"})
    if _container_ref(options.ipc_mode):
        namespaces.append(_joined(options, "ipc", options.ipc_mode))
    elif options.ipc_mode != "host":
        namespaces.append({"type": "ipc"})
    if cgroupns == "private":
        namespaces.append({"type": "cgroup"})
    return namespaces


# --- devices ---------------------------------------------------------------------------------------------

_SKIPPED_DEV_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def host_devices(path: str) -> list[DeviceNode]:
    """The device nodes at `path` on the host: the node itself, or every node under a directory (skipping
    what runc skips: pts, shm, fd, mqueue, console, fifos). Raises OSError when `path` does not exist."""
    resolved = os.path.realpath(path)
    st = os.lstat(resolved)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        return [_node(path, st)]
    out: list[DeviceNode] = []
    if stat.S_ISDIR(st.st_mode):
        for root, dirs, files in os.walk(resolved):
            dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DEV_DIRS)
            for name in sorted(files):
                if name == "console":
                    continue
                full = os.path.join(root, name)
                try:
                    child = os.lstat(full)
                except FileNotFoundError:
                    continue
                if stat.S_ISCHR(child.st_mode) or stat.S_ISBLK(child.st_mode):
                    out.append(_node(path + full[len(resolved) :], child))
    return out


def _node(path: str, st: os.stat_result) -> DeviceNode:
    return DeviceNode(
        path=path,
        type="c" if stat.S_ISCHR(st.st_mode) else "b",
        major=os.major(st.st_rdev),
        minor=os.minor(st.st_rdev),
        file_mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
    )


def _spec_device(node: DeviceNode, path: str) -> dict[str, Any]:
    return {
        "path": path,
        "type": node.type,
        "major": node.major,
        "minor": node.minor,
        "fileMode": node.file_mode,
        "uid": node.uid,
        "gid": node.gid,
    }


def _devices(
    options: ContainerOptions, lookup: Callable[[str], list[DeviceNode]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    devices: list[dict[str, Any]] = []
    if options.privileged:
        devices = [_spec_device(n, n.path) for n in lookup("/dev")]
    rules: list[dict[str, Any]] = [dict(r) for r in DEFAULT_DEVICE_RULES]
    for mapping in options.devices:
        host = mapping.get("PathOnHost") or ""
        inside = mapping.get("PathInContainer") or host
        perms = _device_permissions(mapping)
        if options.privileged and host == inside:
            continue  # already there with all of /dev
        try:
            nodes = lookup(host)
        except OSError as e:
            reason = (e.strerror or str(e)).lower()
            raise SpecError(
                f'error gathering device information while adding custom device "{host}": {reason}'
            ) from None
        if not nodes:
            raise SpecError(
                f'error gathering device information while adding custom device "{host}": not a device node'
            )
        for node in nodes:
            devices.append(_spec_device(node, inside + node.path[len(host) :]))
            rule = {
                "allow": True,
                "type": node.type,
                "major": node.major,
                "minor": node.minor,
                "access": perms,
            }
            rules.append(rule)
    if options.privileged:
        rules = [{"allow": True, "access": "rwm"}]
    return devices, rules


# --- the spec --------------------------------------------------------------------------------------------


def _default_mounts() -> list[dict[str, Any]]:
    def m(dest: str, kind: str, source: str, *opts: str) -> dict[str, Any]:
        return {"destination": dest, "type": kind, "source": source, "options": list(opts)}

    return [
        m("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
        m("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ),
        m("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        m("/sys/fs/cgroup", "cgroup", "cgroup", "ro", "nosuid", "noexec", "nodev"),
        m("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
        m("/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777"),
    ]


def _bind(dest: str, source: str, rw: bool, propagation: str = "", recursive: bool = True) -> dict[str, Any]:
    opts = ["rbind" if recursive else "bind"]
    if not rw:
        opts.append("ro")
    if propagation:
        opts.append(propagation)
    return {"destination": dest, "type": "bind", "source": source, "options": opts}


def _depth(dest: str) -> int:
    return posixpath.normpath(dest).count("/")


def _mounts(options: ContainerOptions, linux: dict[str, Any]) -> list[dict[str, Any]]:
    points = mount_points(options)
    user_dests = {mp.destination for mp in points}
    ms: list[dict[str, Any]] = []  # (not yet sorted) engine and user mounts

    # the engine's /etc files: writable unless the rootfs is read-only, and only where no user mount is
    for dest, source in (
        ("/etc/resolv.conf", options.resolv_conf_path),
        ("/etc/hostname", options.hostname_path),
        ("/etc/hosts", options.hosts_path),
    ):
        if source and dest not in user_dests:
            ms.append(_bind(dest, source, not options.readonly_rootfs, "rprivate"))

    ipc = options.ipc_mode or "private"
    shm_source = options.shm_path or ("/dev/shm" if ipc == "host" else "")
    if ipc not in ("private", "none") and shm_source and "/dev/shm" not in user_dests:
        ms.append(_bind("/dev/shm", shm_source, True, "rprivate"))

    for mp in points:
        if mp.type == "tmpfs":
            data = mp.tmpfs_data.split(",") if mp.tmpfs_data else []
            merged = _merge_tmpfs_options(["noexec", "nosuid", "nodev", "rprivate", *data])
            ms.append({"destination": mp.destination, "type": "tmpfs", "source": "tmpfs", "options": merged})
            continue
        if mp.type == "volume":
            source = options.volume_paths.get(mp.destination, "")
            if not source:
                raise SpecError(f"no host path given for the volume mounted at {mp.destination}")
        else:
            source = mp.source
        ms.append(_bind(mp.destination, source, mp.rw, mp.propagation, not mp.non_recursive))
        # a shared or slave bind needs the root's propagation to let events through
        root_prop = linux.get("rootfsPropagation", "")
        if mp.propagation in ("shared", "rshared") and root_prop not in ("shared", "rshared"):
            linux["rootfsPropagation"] = "shared"
        elif mp.propagation in ("slave", "rslave") and root_prop not in (
            "shared",
            "rshared",
            "slave",
            "rslave",
        ):
            linux["rootfsPropagation"] = "rslave"

    ms.sort(key=lambda m: _depth(m["destination"]))  # stable: parents mount before what goes inside them
    overridden = {m["destination"] for m in ms}

    defaults = []
    for m in _default_mounts():
        dest = m["destination"]
        if dest in overridden or ("/dev" in overridden and dest.startswith("/dev/")):
            continue
        if dest == "/dev/shm":
            if ipc == "none":
                continue
            m["options"].append(f"size={options.shm_size or DEFAULT_SHM_SIZE}")
        if options.readonly_rootfs and dest not in ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"):
            if "ro" not in m["options"]:
                m["options"].append("ro")
        if options.privileged and m["type"] in ("sysfs", "cgroup"):
            m["options"] = [o for o in m["options"] if o != "ro"]
        defaults.append(m)
    return defaults + ms


def _resources(options: ContainerOptions, cgroup_version: str, device_rules: list[dict[str, Any]]) -> dict:
    resources: dict[str, Any] = {"devices": device_rules}
    memory: dict[str, Any] = {}
    if options.memory > 0:
        memory["limit"] = options.memory
    if options.memory_reservation > 0:
        memory["reservation"] = options.memory_reservation
    swap = options.memory_swap or (options.memory * 2 if options.memory > 0 else 0)
    if swap > 0:
        memory["swap"] = swap
    swappiness = options.memory_swappiness
    if swappiness is not None and swappiness != -1 and cgroup_version != "2":
        memory["swappiness"] = swappiness
    if options.oom_kill_disable is not None:
        memory["disableOOMKiller"] = options.oom_kill_disable
    if memory:
        resources["memory"] = memory

    cpu: dict[str, Any] = {}
    if options.cpu_shares > 0:
        cpu["shares"] = min(max(options.cpu_shares, MIN_CPU_SHARES), MAX_CPU_SHARES)
    if options.nano_cpus > 0:
        cpu["period"] = 100000  # 100 ms, the kernel's default CFS period
        cpu["quota"] = options.nano_cpus * 100000 // 10**9
    if options.cpu_period:
        cpu["period"] = options.cpu_period
    if options.cpu_quota:
        cpu["quota"] = options.cpu_quota
    if options.cpuset_cpus:
        cpu["cpus"] = options.cpuset_cpus
    if options.cpuset_mems:
        cpu["mems"] = options.cpuset_mems
    if options.cpu_rt_period:
        cpu["realtimePeriod"] = options.cpu_rt_period
    if options.cpu_rt_runtime:
        cpu["realtimeRuntime"] = options.cpu_rt_runtime
    if cpu:
        resources["cpu"] = cpu

    if options.blkio_weight:
        resources["blockIO"] = {"weight": options.blkio_weight}
    if options.pids_limit is not None:
        # Docker: 0 and below mean unlimited, which runtimes spell -1
        resources["pids"] = {"limit": options.pids_limit if options.pids_limit > 0 else -1}
    return resources


def build_spec(
    options: ContainerOptions,
    *,
    cgroup_version: str,
    user_lookup: Callable[[str], str | None],
    device_lookup: Callable[[str], list[DeviceNode]] = host_devices,
    last_cap: int | None = None,
    capabilities_available: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The config.json for a container. `user_lookup(path)` gives the text of a file in the container's root
    (`/etc/passwd`, `/etc/group`), or None when it is missing; `device_lookup` is asked only for `--device`
    paths and, when privileged, for `/dev`. `cgroup_version` is "1" or "2". `capabilities_available`
    (the daemon's bounding set) limits what privileged and `--cap-add ALL` get."""
    if cgroup_version not in ("1", "2"):
        raise ValueError(f"cgroup_version must be '1' or '2', not {cgroup_version!r}")
    validate_options(options, cgroup_version=cgroup_version)
    merged = merge_config(options)
    cgroupns = options.cgroupns_mode or _default_cgroupns(cgroup_version)

    passwd = user_lookup("/etc/passwd")
    group = user_lookup("/etc/group")
    uid, gid, supplementary, home = _resolve(merged.user, passwd, group)
    extra = resolve_additional_groups(options.group_add, group) if options.group_add else []
    additional_gids = list(dict.fromkeys([gid, *supplementary, *extra]))

    env = [f"PATH={DEFAULT_PATH_ENV}", f"HOSTNAME={merged.hostname}"]
    if options.tty:
        env.append("TERM=xterm")
    env = _replace_or_append_env(env, merged.env)
    if not any(_env_key(e) == "HOME" for e in env):
        env.append(f"HOME={home}")  # runc adds it too; written here so every runtime agrees

    console: dict[str, Any] = {}
    if options.tty and options.console_size:
        console["consoleSize"] = {"height": options.console_size[0], "width": options.console_size[1]}
    caps = tweak_capabilities(
        options.cap_add,
        options.cap_drop,
        options.privileged,
        last_cap=last_cap,
        available=capabilities_available,
    )
    process: dict[str, Any] = {
        **console,
        "terminal": options.tty,
        "user": {"uid": uid, "gid": gid, "additionalGids": additional_gids},
        "args": _init_args(options, [merged.path, *merged.args]),
        "env": env,
        "cwd": merged.working_dir or "/",
        "capabilities": {
            "bounding": list(caps),
            "effective": list(caps),
            "permitted": list(caps),
            "inheritable": [],  # empty, as Docker since the CVE-2022-24769 fix: execve passes none on
            "ambient": [],
        },
        "noNewPrivileges": _no_new_privileges(options.security_opt),
        "oomScoreAdj": options.oom_score_adj,
    }
    rlimits = _rlimits(options)
    if rlimits:
        process["rlimits"] = rlimits

    namespaces = _namespaces(options, cgroupns)
    sysctl: dict[str, str] = {}
    if options.network_mode != "host" and not _container_ref(options.network_mode):
        sysctl.update(PRIVATE_NETNS_SYSCTLS)
    if merged.domainname:
        sysctl["kernel.domainname"] = (
            merged.domainname
        )  # no OCI field; the sysctl does what setdomainname does
    sysctl.update(options.sysctls)
    validate_sysctls(sysctl, namespaces)

    devices, device_rules = _devices(options, device_lookup)
    linux: dict[str, Any] = {"namespaces": namespaces}
    mounts = _mounts(options, linux)
    if options.init:
        mounts.append(_bind(INIT_PATH, options.init_binary, False, "rprivate"))
    linux.update(
        {
            "maskedPaths": system_paths(options, MASKED_PATHS, options.masked_paths),
            "readonlyPaths": system_paths(options, READONLY_PATHS, options.readonly_paths),
            "devices": devices,
            "resources": _resources(options, cgroup_version, device_rules),
            "cgroupsPath": options.cgroup_path or f"/dockyard/{options.container_id}",
            "sysctl": sysctl,
        }
    )
    seccomp = _seccomp(options, caps)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": options.rootfs, "readonly": options.readonly_rootfs},
    }
    if options.uts_mode != "host":
        spec["hostname"] = merged.hostname
    spec["mounts"] = mounts
    spec["linux"] = linux
    return spec


INIT_PATH = "/sbin/docker-init"  # where dockerd puts its init in the container


def _init_args(options: ContainerOptions, args: list[str]) -> list[str]:
    """dockerd's --init: its init binary runs first and execs the command after `--`."""
    if not options.init:
        return args
    if not options.init_binary:
        raise SpecError("--init was requested but the daemon has no init binary (docker-init or tini)")
    return [INIT_PATH, "--", *args]


def _replace_or_append_env(defaults: list[str], overrides: list[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: an override replaces a default of the same key in place, or is
    appended; a bare `KEY` (no '=') unsets the default."""
    env: list[str | None] = list(defaults)
    index = {_env_key(e): i for i, e in enumerate(defaults)}
    for value in overrides:
        if "=" not in value:
            if value in index:
                env[index[value]] = None
            continue
        i = index.get(_env_key(value))
        if i is None:
            env.append(value)
        else:
            env[i] = value
    return [e for e in env if e is not None]
