"""A container's resources (HostConfig's cgroup part) as dockerd 20.10 reads and checks them.

- `canonical_keys`: encoding/json matches a JSON key to a struct field case-insensitively, so dockerd takes
  docker-py's `CPURealtimePeriod` for `CpuRealtimePeriod`; the same renaming here, before anything reads
  the HostConfig.
- `SysInfo`/`sysinfo`: what the host's cgroups offer (dockerd's pkg/sysinfo): swap accounting, CFS, the
  real-time scheduler, block I/O weights, the CPUs and memory nodes. v1 (and hybrid) hosts: the control
  files at each hierarchy's mount point; v2: the controllers the root offers its children (Dockyard's
  cgroups are `/dockyard/<id>`).
- `verify_resources`: verifyPlatformContainerResources, the checks and adjustments of `update` (and of a
  create's fields the runtime spec does not judge): errors in dockerd's words, warnings for what the host
  lacks (the value discarded, as dockerd does).
- `check_create`: what a create adds to that: runconfig's `validateResources` (the real-time fields) and
  the block I/O weight.
- `init_rt_parent`: the daemon's real-time budget (daemon.json `cpu-rt-period`, `cpu-rt-runtime`) in the
  containers' parent cgroup, as dockerd writes it before each start.

Pure logic apart from `sysinfo`'s reads of /sys/fs/cgroup and `init_rt_parent`'s writes.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from typing import Any

from ..linux.cgroups import CGROUP_ROOT, CgroupLayout, detect_layout

__all__ = [
    "HOST_CONFIG_KEYS",
    "RESOURCE_TYPES",
    "SHOWN_DEFAULTS",
    "ResourceError",
    "SysInfo",
    "canonical_keys",
    "check_create",
    "check_types",
    "go_kind",
    "init_rt_parent",
    "parse_uint_list",
    "sysinfo",
    "verify_resources",
]

MIN_MEMORY = 6 * 1024 * 1024  # dockerd's linuxMinMemory

# container.Resources' JSON names and Go types (what `update` accepts besides RestartPolicy)
RESOURCE_TYPES: dict[str, str] = {
    "CpuShares": "int64",
    "Memory": "int64",
    "NanoCpus": "int64",
    "CgroupParent": "string",
    "BlkioWeight": "uint16",
    "BlkioWeightDevice": "[]*blkiodev.WeightDevice",
    "BlkioDeviceReadBps": "[]*blkiodev.ThrottleDevice",
    "BlkioDeviceWriteBps": "[]*blkiodev.ThrottleDevice",
    "BlkioDeviceReadIOps": "[]*blkiodev.ThrottleDevice",
    "BlkioDeviceWriteIOps": "[]*blkiodev.ThrottleDevice",
    "CpuPeriod": "int64",
    "CpuQuota": "int64",
    "CpuRealtimePeriod": "int64",
    "CpuRealtimeRuntime": "int64",
    "CpusetCpus": "string",
    "CpusetMems": "string",
    "Devices": "[]container.DeviceMapping",
    "DeviceCgroupRules": "[]string",
    "DeviceRequests": "[]container.DeviceRequest",
    "KernelMemory": "int64",
    "KernelMemoryTCP": "int64",
    "MemoryReservation": "int64",
    "MemorySwap": "int64",
    "MemorySwappiness": "*int64",
    "OomKillDisable": "*bool",
    "PidsLimit": "*int64",
    "Ulimits": "[]*units.Ulimit",
    "CpuCount": "int64",
    "CpuPercent": "int64",
    "IOMaximumIOps": "uint64",
    "IOMaximumBandwidth": "uint64",
}
HOST_CONFIG_KEYS = (
    *RESOURCE_TYPES,
    *"""Binds ContainerIDFile LogConfig NetworkMode PortBindings RestartPolicy AutoRemove VolumeDriver
    VolumesFrom CapAdd CapDrop CgroupnsMode Dns DnsOptions DnsSearch ExtraHosts GroupAdd IpcMode Cgroup
    Links OomScoreAdj PidMode Privileged PublishAllPorts ReadonlyRootfs SecurityOpt StorageOpt Tmpfs UTSMode
    UsernsMode ShmSize Sysctls Runtime ConsoleSize Isolation Mounts MaskedPaths ReadonlyPaths Init""".split(),
)
_INT_RANGES = {
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint16": (0, (1 << 16) - 1),
    "uint64": (0, (1 << 64) - 1),
}


class ResourceError(ValueError):
    """dockerd's refusal, with the HTTP status it answers."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def canonical_keys(obj: dict[str, Any], names: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`obj` with its keys renamed to `names` as encoding/json matches them: an exact name first, else
    the same name in another case; of two keys naming one field the later wins, as Go's decoder sets it
    twice. Keys that name no field are kept as they are."""
    by_lower = {name.lower(): name for name in names}
    exact = set(names)
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = key if key in exact else by_lower.get(key.lower(), key)
        out.pop(name, None)  # re-inserted in the order Go saw it last
        out[name] = value
    return out


def _go_number(value: Any) -> str:
    """A JSON number as Go's UnmarshalTypeError quotes it ("number -5", "number 1.5")."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return f"number {int(value)}"
    return f"number {value}"


def go_kind(value: Any) -> str:
    """encoding/json's name for a JSON value's kind in its errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def check_types(obj: dict[str, Any], struct: str, types: dict[str, str], status: int = 400) -> None:
    """encoding/json's type errors for the scalar fields of `types`: `json: cannot unmarshal string into
    Go struct field UpdateConfig.Memory of type int64`. null leaves a field at its zero value."""

    def refuse(key: str, what: str, go_type: str) -> ResourceError:
        return ResourceError(
            f"json: cannot unmarshal {what} into Go struct field {struct}.{key} of type {go_type}", status
        )

    for key, value in obj.items():
        go_type = types.get(key)
        if go_type is None or value is None:
            continue
        base = go_type.lstrip("*")
        if base in _INT_RANGES:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise refuse(key, go_kind(value), base)
            low, high = _INT_RANGES[base]
            if isinstance(value, float) and not value.is_integer() or not low <= value <= high:
                raise refuse(key, _go_number(value), base)
        elif base == "string" and not isinstance(value, str):
            raise refuse(key, go_kind(value), base)
        elif base == "bool" and not isinstance(value, bool):
            raise refuse(key, go_kind(value), base)
        elif go_type.startswith("[]") and not isinstance(value, list):
            raise refuse(key, go_kind(value), go_type)


# --- the host's cgroups ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SysInfo:
    """dockerd's sysinfo.SysInfo, the fields the resource checks read."""

    cgroup_version: str = "1"
    memory_limit: bool = True
    swap_limit: bool = True
    memory_reservation: bool = True
    memory_swappiness: bool = True
    oom_kill_disable: bool = True
    kernel_memory: bool = False
    pids_limit: bool = True
    cpu_shares: bool = True
    cpu_cfs: bool = True
    cpu_realtime: bool = False
    cpuset: bool = True
    cpus: str = ""  # what cpuset may ask for ("0-3")
    mems: str = ""
    blkio_weight: bool = True


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _online(kind: str) -> str:
    return _read(f"/sys/devices/system/{'cpu' if kind == 'cpus' else 'node'}/online") or "0"


@functools.lru_cache(maxsize=4)
def sysinfo(root: str = CGROUP_ROOT) -> SysInfo:
    """The host's cgroups as dockerd's sysinfo sees them (read once: they do not change under a daemon)."""
    return sysinfo_of(detect_layout(root))


def sysinfo_of(layout: CgroupLayout) -> SysInfo:
    if layout.version == "2" and layout.unified is not None:
        top = layout.unified.mountpoint
        offered = set(_read(os.path.join(top, "cgroup.controllers")).split())
        return SysInfo(
            cgroup_version="2",
            memory_limit="memory" in offered,
            swap_limit="memory" in offered,
            memory_reservation="memory" in offered,
            memory_swappiness=False,
            oom_kill_disable=False,
            kernel_memory=False,
            pids_limit="pids" in offered,
            cpu_shares="cpu" in offered,
            cpu_cfs="cpu" in offered,
            cpu_realtime=False,
            cpuset="cpuset" in offered,
            cpus=_read(os.path.join(top, "cpuset.cpus.effective")) or _online("cpus"),
            mems=_read(os.path.join(top, "cpuset.mems.effective")) or _online("mems"),
            blkio_weight="io" in offered,
        )

    def has(controller: str, *files: str) -> bool:
        h = layout.find(controller)
        return h is not None and all(os.path.exists(os.path.join(h.mountpoint, f)) for f in files)

    cpuset = layout.find("cpuset")
    return SysInfo(
        cgroup_version="1",
        memory_limit=layout.find("memory") is not None,
        swap_limit=has("memory", "memory.memsw.limit_in_bytes"),
        memory_reservation=has("memory", "memory.soft_limit_in_bytes"),
        memory_swappiness=has("memory", "memory.swappiness"),
        oom_kill_disable=has("memory", "memory.oom_control"),
        kernel_memory=has("memory", "memory.kmem.limit_in_bytes"),
        pids_limit=layout.find("pids") is not None,
        cpu_shares=has("cpu", "cpu.shares"),
        cpu_cfs=has("cpu", "cpu.cfs_period_us", "cpu.cfs_quota_us"),
        cpu_realtime=has("cpu", "cpu.rt_period_us", "cpu.rt_runtime_us"),
        cpuset=cpuset is not None,
        cpus=(_read(os.path.join(cpuset.mountpoint, "cpuset.cpus")) if cpuset else "") or _online("cpus"),
        mems=(_read(os.path.join(cpuset.mountpoint, "cpuset.mems")) if cpuset else "") or _online("mems"),
        blkio_weight=has("blkio", "blkio.weight") or has("blkio", "blkio.bfq.weight"),
    )


# --- checks ----------------------------------------------------------------------------------------------

_ATOI = re.compile(r"[+-]?\d+")


def parse_uint_list(value: str) -> set[int]:
    """dockerd's parsers.ParseUintList ("0-3,5"); ValueError("invalid format: ...") as it words it."""
    found: set[int] = set()
    if value == "":
        return found
    bad = ValueError(f"invalid format: {value}")
    for part in value.split(","):
        if "-" not in part:
            if not _ATOI.fullmatch(part):
                raise bad
            found.add(int(part))
            continue
        low, _, high = part.partition("-")
        if not _ATOI.fullmatch(low) or not _ATOI.fullmatch(high) or int(high) < int(low):
            raise bad
        found.update(range(int(low), int(high) + 1))
    return found


def _cpuset_available(kind: str, wanted: str, available: str) -> None:
    try:
        asked = parse_uint_list(wanted)
        have = parse_uint_list(available)
    except ValueError as e:
        raise ResourceError(f"Invalid value {wanted} for cpuset {kind}: {e}") from None
    if not asked <= have:
        what = "CPUs" if kind == "cpus" else "memory nodes"
        raise ResourceError(
            f"Requested {what} are not available - requested {wanted}, available: {available}"
        )


def _int(res: dict[str, Any], key: str) -> int:
    return int(res.get(key) or 0)


def verify_resources(res: dict[str, Any], info: SysInfo, ncpu: int, *, update: bool) -> list[str]:
    """verifyPlatformContainerResources on `res` (canonical keys), adjusted in place as dockerd adjusts
    its copy (a value the host cannot apply is dropped with a warning). Returns the warnings; raises
    ResourceError (400) with dockerd's text."""
    warnings: list[str] = []
    if res.get("MemorySwappiness") == -1:
        res["MemorySwappiness"] = None  # fixMemorySwappiness
    memory = _int(res, "Memory")
    if memory != 0 and memory < MIN_MEMORY:
        raise ResourceError("Minimum memory limit allowed is 6MB")
    if memory > 0 and not info.memory_limit:
        warnings.append(
            "Your kernel does not support memory limit capabilities or the cgroup is not mounted. "
            "Limitation discarded."
        )
        res["Memory"], res["MemorySwap"] = 0, -1
        memory = 0
    if memory > 0 and _int(res, "MemorySwap") != -1 and not info.swap_limit:
        warnings.append(
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
            "Memory limited without swap."
        )
        res["MemorySwap"] = -1
    swap = _int(res, "MemorySwap")
    if memory > 0 and swap > 0 and swap < memory:
        raise ResourceError("Minimum memoryswap limit should be larger than memory limit, see usage")
    if memory == 0 and swap > 0 and not update:
        raise ResourceError("You should always set the Memory limit when using Memoryswap limit, see usage")
    if res.get("MemorySwappiness") is not None and not info.memory_swappiness:
        warnings.append(
            "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. "
            "Memory swappiness discarded."
        )
        res["MemorySwappiness"] = None
    swappiness = res.get("MemorySwappiness")
    if swappiness is not None and not 0 <= int(swappiness) <= 100:
        raise ResourceError(f"Invalid value: {swappiness}, valid memory swappiness range is 0-100")
    reservation = _int(res, "MemoryReservation")
    if reservation > 0 and not info.memory_reservation:
        warnings.append(
            "Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. "
            "Limitation discarded."
        )
        res["MemoryReservation"] = reservation = 0
    if 0 < reservation < MIN_MEMORY:
        raise ResourceError("Minimum memory reservation allowed is 6MB")
    if memory > 0 and reservation > 0 and memory < reservation:
        raise ResourceError("Minimum memory limit can not be less than memory reservation limit, see usage")
    kernel = _int(res, "KernelMemory")
    if kernel > 0:
        if not info.kernel_memory:
            warnings.append(
                "Your kernel does not support kernel memory limit capabilities or the cgroup is not "
                "mounted. Limitation discarded."
            )
            res["KernelMemory"] = kernel = 0
        if 0 < kernel < MIN_MEMORY:
            raise ResourceError("Minimum kernel memory limit allowed is 6MB")
    if res.get("OomKillDisable") is not None and not info.oom_kill_disable:
        if res["OomKillDisable"]:
            warnings.append("Your kernel does not support OomKillDisable. OomKillDisable discarded.")
        res["OomKillDisable"] = None
    if res.get("OomKillDisable") and memory == 0:
        warnings.append(
            "OOM killer is disabled for the container, but no memory limit is set, "
            "this can result in the system running out of resources."
        )
    if res.get("PidsLimit") is not None and not info.pids_limit:
        if int(res["PidsLimit"]) > 0:
            warnings.append(
                "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
                "PIDs limit discarded."
            )
        res["PidsLimit"] = None

    nano, period, quota = _int(res, "NanoCpus"), _int(res, "CpuPeriod"), _int(res, "CpuQuota")
    if nano > 0 and period > 0:
        raise ResourceError("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano > 0 and quota > 0:
        raise ResourceError("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if nano > 0 and not info.cpu_cfs:
        raise ResourceError(
            "NanoCPUs can not be set, as your kernel does not support CPU CFS scheduler or the cgroup is "
            "not mounted"
        )
    if nano < 0 or nano > ncpu * 10**9:
        raise ResourceError(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )
    if _int(res, "CpuShares") > 0 and not info.cpu_shares:
        warnings.append(
            "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded."
        )
        res["CpuShares"] = 0
    if (period != 0 or quota != 0) and not info.cpu_cfs:
        warnings.append("Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.")
        res["CpuPeriod"] = res["CpuQuota"] = period = quota = 0
    if period != 0 and not 1000 <= period <= 1000000:
        raise ResourceError(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        )
    if 0 < quota < 1000:
        raise ResourceError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if _int(res, "CpuPercent") > 0:
        warnings.append("linux does not support CPU percent. Percent discarded.")
        res["CpuPercent"] = 0

    if (res.get("CpusetCpus") or res.get("CpusetMems")) and not info.cpuset:
        warnings.append("Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.")
        res["CpusetCpus"] = res["CpusetMems"] = ""
    _cpuset_available("cpus", str(res.get("CpusetCpus") or ""), info.cpus)
    _cpuset_available("mems", str(res.get("CpusetMems") or ""), info.mems)

    weight = _int(res, "BlkioWeight")
    if weight > 0 and not info.blkio_weight:
        warnings.append(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
        )
        res["BlkioWeight"] = weight = 0
    if weight > 0 and not 10 <= weight <= 1000:
        raise ResourceError("Range of blkio weight is from 10 to 1000")
    if _int(res, "IOMaximumBandwidth") or _int(res, "IOMaximumIOps"):
        raise ResourceError(
            "Invalid QoS settings: linux does not support Maximum IO Bandwidth or Maximum IO IOps"
        )
    return warnings


def check_create(host_config: dict[str, Any], info: SysInfo) -> list[str]:
    """At create, beside the runtime spec's own checks (runtime/spec.validate_options): runconfig's
    validateResources (the real-time fields, refused where the kernel has no real-time group scheduling,
    as on cgroup v2) and the block I/O weight (dropped with dockerd's warning where the host has none).
    Adjusts `host_config` in place; returns the warnings."""
    rt_period, rt_runtime = _int(host_config, "CpuRealtimePeriod"), _int(host_config, "CpuRealtimeRuntime")
    if rt_period > 0 and not info.cpu_realtime:
        raise ResourceError("Your kernel does not support cgroup cpu real-time period")
    if rt_runtime > 0 and not info.cpu_realtime:
        raise ResourceError("Your kernel does not support cgroup cpu real-time runtime")
    if rt_period != 0 and rt_runtime != 0 and rt_runtime > rt_period:
        raise ResourceError("cpu real-time runtime cannot be higher than cpu real-time period")
    warnings: list[str] = []
    weight = _int(host_config, "BlkioWeight")
    if weight > 0 and not info.blkio_weight:
        warnings.append(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
        )
        host_config["BlkioWeight"] = weight = 0
    if weight > 0 and not 10 <= weight <= 1000:
        raise ResourceError("Range of blkio weight is from 10 to 1000")
    return warnings


# what inspect shows for the resource fields a create left out (dockerd shows its whole HostConfig struct)
SHOWN_DEFAULTS: dict[str, Any] = {
    "CpuShares": 0,
    "Memory": 0,
    "NanoCpus": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "KernelMemory": 0,
    "KernelMemoryTCP": 0,
    "MemoryReservation": 0,
    "MemorySwap": 0,
    "MemorySwappiness": None,
    "PidsLimit": None,
    "CpuCount": 0,
    "CpuPercent": 0,
    "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0,
}


def init_rt_parent(period: int, runtime: int, parent: str = "/dockyard", root: str = CGROUP_ROOT) -> None:
    """dockerd's initCgroupsPath for daemon.json's `cpu-rt-period`/`cpu-rt-runtime`: the real-time budget
    written into the containers' parent cgroup and each of its ancestors (a child can have no more than
    its parent), so that a container's `--cpu-rt-runtime` fits. Nothing without the options; on cgroup v2
    or a kernel without real-time group scheduling, dockerd's error (ResourceError, 500)."""
    if not period and not runtime:
        return
    info = sysinfo(root)
    if info.cgroup_version == "2":
        raise ResourceError(
            "daemon-scoped cpu-rt-period and cpu-rt-runtime are not implemented for cgroup v2", 500
        )
    if not info.cpu_realtime:
        raise ResourceError(
            "daemon-scoped cpu-rt-period and cpu-rt-runtime are not supported by the kernel", 500
        )
    hierarchy = detect_layout(root).find("cpu")
    assert hierarchy is not None  # cpu_realtime says it is mounted
    path = hierarchy.mountpoint
    for part in [p for p in parent.split("/") if p]:
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        for name, value in (("cpu.rt_period_us", period), ("cpu.rt_runtime_us", runtime)):
            if not value:
                continue
            try:
                with open(os.path.join(path, name), "w") as f:
                    f.write(str(value))
            except OSError as e:
                raise ResourceError(
                    f"linux init cgroups path: write {os.path.join(path, name)}: {e.strerror}", 500
                ) from None
