"""A container's resource usage as dockerd's `/containers/{id}/stats` reports it, read from its cgroup.

dockerd gets these numbers from containerd's cgroup metrics; the keys, units and which zero fields are left
out follow its `types.StatsJSON` (Go's `omitempty`), for cgroup v1 and v2 alike. CPU times are nanoseconds,
`system_cpu_usage` is the host's busy-plus-idle time from /proc/stat, also in nanoseconds, so that the CLI's
`cpu_delta / system_delta * online_cpus` is the share of one CPU.
"""

from __future__ import annotations

import os
from typing import Any

from ..linux.cgroups import Cgroup

ZERO_TIME = "0001-01-01T00:00:00Z"
NANOS = 1_000_000_000
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# cgroup v2 memory.stat keys dockerd passes on (its statsV2): the rest of the file is left out.
V2_MEMORY_KEYS = (
    "anon file kernel_stack slab sock shmem file_mapped file_dirty file_writeback anon_thp inactive_anon "
    "active_anon inactive_file active_file unevictable slab_reclaimable slab_unreclaimable pgfault "
    "pgmajfault workingset_refault workingset_activate workingset_nodereclaim pgrefill pgscan pgsteal "
    "pgactivate pgdeactivate pglazyfree pglazyfreed thp_fault_alloc thp_collapse_alloc"
).split()
BLKIO_KEYS = (
    "io_service_bytes_recursive",
    "io_serviced_recursive",
    "io_queue_recursive",
    "io_service_time_recursive",
    "io_wait_time_recursive",
    "io_merged_recursive",
    "io_time_recursive",
    "sectors_recursive",
)


def empty_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def empty_stats(name: str, container_id: str) -> dict[str, Any]:
    """What dockerd answers for a container that does not run: every number zero."""
    return {
        "read": ZERO_TIME,
        "preread": ZERO_TIME,
        "pids_stats": {},
        "blkio_stats": {key: None for key in BLKIO_KEYS},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": empty_cpu(),
        "precpu_stats": empty_cpu(),
        "memory_stats": {},
        "name": name,
        "id": container_id,
    }


def _omit_zero(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v}


def _read(cgroup: Cgroup, controller: str, name: str) -> str | None:
    try:
        return cgroup.read(controller, name)
    except OSError:
        return None


def _int(text: str | None) -> int:
    if not text:
        return 0
    text = text.strip()
    return int(text) if text.isdigit() else 0


def _keyed(text: str | None) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat)."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def system_cpu_usage(proc_stat: str | None = None) -> int:
    """The host's CPU time in nanoseconds: the first seven fields of /proc/stat's `cpu` line, as dockerd."""
    if proc_stat is None:
        try:
            with open("/proc/stat") as f:
                proc_stat = f.read()
        except OSError:
            return 0
    for line in proc_stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            ticks = sum(int(p) for p in parts[1:8])
            return ticks * NANOS // _CLOCK_TICKS
    return 0


def online_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # Go's runtime.NumCPU, which dockerd reports
    except (OSError, AttributeError):
        return os.cpu_count() or 0


def _blkio_v1(text: str | None) -> list[dict[str, Any]] | None:
    entries = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0] or not parts[2].isdigit():
            continue
        major, _, minor = parts[0].partition(":")
        entries.append({"major": int(major), "minor": int(minor), "op": parts[1], "value": int(parts[2])})
    return entries or None


def _io_v2(text: str | None) -> list[dict[str, Any]] | None:
    """io.stat lines `8:0 rbytes=.. wbytes=.. rios=..`: dockerd reports the bytes as read and write."""
    entries = []
    for line in (text or "").splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        values = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for op, key in (("read", "rbytes"), ("write", "wbytes")):
            entries.append(
                {"major": int(major), "minor": int(minor), "op": op, "value": _int(values.get(key))}
            )
    return entries or None


def cgroup_stats(cgroup: Cgroup, machine_memory: int = 0) -> dict[str, Any]:
    """pids_stats, blkio_stats, cpu_stats (without the host's part) and memory_stats of one cgroup."""
    if cgroup.version == "2":
        return _v2(cgroup, machine_memory)
    return _v1(cgroup, machine_memory)


def _limit(value: int, machine_memory: int) -> int:
    # no limit set: dockerd reports the host's memory
    return machine_memory if machine_memory and (value == 0 or value > machine_memory) else value


def _v1(cgroup: Cgroup, machine_memory: int) -> dict[str, Any]:
    percpu = [int(v) for v in (_read(cgroup, "cpuacct", "cpuacct.usage_percpu") or "").split() if v.isdigit()]
    ticks = _keyed(_read(cgroup, "cpuacct", "cpuacct.stat"))
    throttle = _keyed(_read(cgroup, "cpu", "cpu.stat"))
    cpu_usage: dict[str, Any] = {"total_usage": _int(_read(cgroup, "cpuacct", "cpuacct.usage"))}
    if percpu:
        cpu_usage["percpu_usage"] = percpu
    cpu_usage["usage_in_kernelmode"] = ticks.get("system", 0) * NANOS // _CLOCK_TICKS
    cpu_usage["usage_in_usermode"] = ticks.get("user", 0) * NANOS // _CLOCK_TICKS
    cpu = {
        "cpu_usage": cpu_usage,
        "throttling_data": {
            "periods": throttle.get("nr_periods", 0),
            "throttled_periods": throttle.get("nr_throttled", 0),
            "throttled_time": throttle.get("throttled_time", 0),
        },
    }
    memory = _omit_zero(
        {
            "usage": _int(_read(cgroup, "memory", "memory.usage_in_bytes")),
            "max_usage": _int(_read(cgroup, "memory", "memory.max_usage_in_bytes")),
            "stats": _keyed(_read(cgroup, "memory", "memory.stat")),
            "failcnt": _int(_read(cgroup, "memory", "memory.failcnt")),
            "limit": _limit(_int(_read(cgroup, "memory", "memory.limit_in_bytes")), machine_memory),
        }
    )
    blkio = {key: None for key in BLKIO_KEYS}
    blkio["io_service_bytes_recursive"] = _blkio_v1(
        _read(cgroup, "blkio", "blkio.io_service_bytes_recursive")
        or _read(cgroup, "blkio", "blkio.throttle.io_service_bytes_recursive")
    )
    blkio["io_serviced_recursive"] = _blkio_v1(
        _read(cgroup, "blkio", "blkio.io_serviced_recursive")
        or _read(cgroup, "blkio", "blkio.throttle.io_serviced_recursive")
    )
    pids_max = (_read(cgroup, "pids", "pids.max") or "").strip()
    pids = _omit_zero({"current": _int(_read(cgroup, "pids", "pids.current")), "limit": _int(pids_max)})
    return {"pids_stats": pids, "blkio_stats": blkio, "cpu_stats": cpu, "memory_stats": memory}


def _v2(cgroup: Cgroup, machine_memory: int) -> dict[str, Any]:
    usec = _keyed(_read(cgroup, "cpu", "cpu.stat"))
    cpu = {
        "cpu_usage": {
            "total_usage": usec.get("usage_usec", 0) * 1000,
            "usage_in_kernelmode": usec.get("system_usec", 0) * 1000,
            "usage_in_usermode": usec.get("user_usec", 0) * 1000,
        },
        "throttling_data": {
            "periods": usec.get("nr_periods", 0),
            "throttled_periods": usec.get("nr_throttled", 0),
            "throttled_time": usec.get("throttled_usec", 0) * 1000,
        },
    }
    stat = _keyed(_read(cgroup, "memory", "memory.stat"))
    limit_text = (_read(cgroup, "memory", "memory.max") or "").strip()
    events = _keyed(_read(cgroup, "memory", "memory.events"))
    memory = _omit_zero(
        {
            "usage": _int(_read(cgroup, "memory", "memory.current")),
            "stats": {k: stat.get(k, 0) for k in V2_MEMORY_KEYS} if stat else {},
            "failcnt": events.get("oom", 0),
            "limit": _limit(_int(limit_text), machine_memory),
        }
    )
    blkio = {key: None for key in BLKIO_KEYS}
    blkio["io_service_bytes_recursive"] = _io_v2(_read(cgroup, "io", "io.stat"))
    pids = _omit_zero(
        {
            "current": _int(_read(cgroup, "pids", "pids.current")),
            "limit": _int((_read(cgroup, "pids", "pids.max") or "").strip()),
        }
    )
    return {"pids_stats": pids, "blkio_stats": blkio, "cpu_stats": cpu, "memory_stats": memory}


def machine_memory() -> int:
    """MemTotal in bytes: the limit dockerd reports for a container without one."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


_NET_DEV_FIELDS = ("bytes", "packets", "errors", "dropped")


def interface_stats(pid: int, net_dev: str | None = None) -> dict[str, dict[str, int]]:
    """dockerd's `networks` of a stats sample: each interface but lo of the container's namespace, from
    /proc/<pid>/net/dev (receive columns first, transmit from the ninth)."""
    if net_dev is None:
        try:
            with open(f"/proc/{pid}/net/dev") as f:
                net_dev = f.read()
        except OSError:
            return {}
    out: dict[str, dict[str, int]] = {}
    for line in net_dev.splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        values = rest.split()
        if name == "lo" or len(values) < 16:
            continue
        numbers = [int(v) for v in values]
        entry = {f"rx_{k}": numbers[i] for i, k in enumerate(_NET_DEV_FIELDS)}
        entry.update({f"tx_{k}": numbers[8 + i] for i, k in enumerate(_NET_DEV_FIELDS)})
        out[name] = entry
    return out
