"""Facts about the host that /version and /info report: kernel, OS, CPUs, memory, cgroups."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

from ..goarch import go_arch


@dataclass(frozen=True)
class HostInfo:
    hostname: str
    kernel_version: str
    operating_system: str
    os_version: str
    arch: str
    machine: str
    ncpu: int
    mem_total: int
    cgroup_version: str
    cgroup_driver: str
    memory_limit: bool
    pids_limit: bool
    ipv4_forwarding: bool


def _os_release() -> dict[str, str]:
    values: dict[str, str] = {}
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            with open(path) as f:
                for line in f:
                    key, sep, value = line.strip().partition("=")
                    if sep:
                        values[key] = value.strip('"')
            break
        except OSError:
            continue
    return values


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cgroup_version() -> str:
    """'2' on a unified hierarchy, '1' on legacy or hybrid hosts (as Docker reports them)."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[1] == "/sys/fs/cgroup":
                    return "2" if parts[2] == "cgroup2" else "1"
    except OSError:
        pass
    return "1"


def _read_flag(path: str) -> bool:
    try:
        with open(path) as f:
            return f.read().strip() == "1"
    except OSError:
        return False


@cache
def host_info() -> HostInfo:
    osr = _os_release()
    version = cgroup_version()
    if version == "2":
        controllers = ""
        try:
            with open("/sys/fs/cgroup/cgroup.controllers") as f:
                controllers = f.read()
        except OSError:
            pass
        memory, pids = "memory" in controllers, "pids" in controllers
    else:
        memory, pids = os.path.isdir("/sys/fs/cgroup/memory"), os.path.isdir("/sys/fs/cgroup/pids")
    return HostInfo(
        hostname=platform.node(),
        kernel_version=platform.release(),
        operating_system=osr.get("PRETTY_NAME", "Linux"),
        os_version=osr.get("VERSION_ID", ""),
        arch=go_arch(),
        machine=platform.machine(),
        ncpu=os.cpu_count() or 1,
        mem_total=_mem_total(),
        cgroup_version=version,
        cgroup_driver="cgroupfs",
        memory_limit=memory,
        pids_limit=pids,
        ipv4_forwarding=_read_flag("/proc/sys/net/ipv4/ip_forward"),
    )


def runtime_version(path: str) -> tuple[str, str] | None:
    """(version, commit) of an external OCI runtime such as runc, or None when it is not there."""
    exe = shutil.which(path)
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    version, commit = "", ""
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 3 and words[1] == "version":
            version = words[2]
        elif words and words[0] == "commit:":
            commit = words[-1]
    return version, commit
