"""`POST /containers/{id}/update` as dockerd 20.10 answers it.

The request (container.UpdateConfig: the Resources fields and RestartPolicy) is decoded as Go decodes it
(`decode`), checked as a create's resources are (resources.verify_resources, with `update`: dockerd's
warnings, values the host cannot apply dropped), merged into the stored HostConfig by dockerd's rules
(`merge`, UpdateContainer: a zero field leaves the old value, Nano CPUs and CPU period/quota exclude each
other across updates, a memory limit above the stored memory+swap needs the swap too, an AutoRemove
container keeps its restart policy; 409 `Cannot update container <id>: ...`), saved, and then, for a
running (or paused) container, written to its cgroup (`live_resources`, `apply_live`): what dockerd hands
containerd (toContainerdResources) as `runc update` applies it, v1 and v2, in runc's order and with its
error texts (a memory limit under the current usage: the kernel's EBUSY becomes `unable to set memory limit
to N (current usage: U, peak usage: P)`). A live failure puts the old HostConfig back; the answer is then a
500 `Cannot update container <id>: ...`. A stopped (or restarting) container takes the new values at its
next start. The `update` event follows a success.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .resources import (
    RESOURCE_TYPES,
    ResourceError,
    canonical_keys,
    check_types,
    go_kind,
    sysinfo,
    verify_resources,
)
from .restart import RestartPolicy, RestartPolicyError
from .restart import validate as validate_restart_policy

if TYPE_CHECKING:
    from ..linux.cgroups import Cgroup
    from .service import ContainerService

__all__ = ["LiveError", "LiveResources", "apply_live", "decode", "live_resources", "merge", "update"]

UPDATE_KEYS = (*RESOURCE_TYPES, "RestartPolicy")
_U64 = (1 << 64) - 1
_NANO_PERIOD = 100000  # dockerd: 100 ms, the CFS period Nano CPUs are expressed in


class LiveError(Exception):
    """What `runc update` would have said."""


def decode(body: Any) -> dict[str, Any]:
    """The body as the 20.10 router reads it (json.Decoder on UpdateConfig, any error a 500): keys
    matched case-insensitively, Go's type errors; PidsLimit 0 or below means unlimited, stored as 0."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ResourceError(
            f"json: cannot unmarshal {go_kind(body)} into Go value of type container.UpdateConfig", 500
        )
    update = canonical_keys(body, UPDATE_KEYS)
    check_types(update, "UpdateConfig", RESOURCE_TYPES, 500)
    policy = update.get("RestartPolicy")
    if policy is not None:
        if not isinstance(policy, dict):
            raise ResourceError(
                f"json: cannot unmarshal {go_kind(policy)} into Go struct field UpdateConfig.RestartPolicy "
                "of type container.RestartPolicy",
                500,
            )
        policy = canonical_keys(policy, ("Name", "MaximumRetryCount"))
        check_types(
            policy, "UpdateConfig.RestartPolicy", {"Name": "string", "MaximumRetryCount": "int64"}, 500
        )
        update["RestartPolicy"] = policy
    if update.get("PidsLimit") is not None and int(update["PidsLimit"]) <= 0:
        update["PidsLimit"] = 0
    return update


def _int(d: dict[str, Any], key: str) -> int:
    return int(d.get(key) or 0)


def merge(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """dockerd's Container.UpdateContainer: the stored HostConfig with the update's non-zero fields.
    Raises ResourceError (409) with its text."""

    def conflict(message: str) -> ResourceError:
        return ResourceError(message, 409)

    hc = dict(current)
    nano, period, quota = _int(update, "NanoCpus"), _int(update, "CpuPeriod"), _int(update, "CpuQuota")
    if nano > 0 and _int(hc, "CpuPeriod") > 0:
        raise conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set")
    if nano > 0 and _int(hc, "CpuQuota") > 0:
        raise conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set")
    if period > 0 and _int(hc, "NanoCpus") > 0:
        raise conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set")
    if quota > 0 and _int(hc, "NanoCpus") > 0:
        raise conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set")
    for key in ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota"):
        if _int(update, key) != 0:
            hc[key] = _int(update, key)
    for key in ("CpusetCpus", "CpusetMems"):
        if update.get(key):
            hc[key] = update[key]
    memory, swap = _int(update, "Memory"), _int(update, "MemorySwap")
    if memory != 0:
        if memory > _int(hc, "MemorySwap") and swap == 0:
            raise conflict(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap "
                "at the same time"
            )
        hc["Memory"] = memory
    for key in ("MemorySwap", "MemoryReservation", "KernelMemory", "CpuRealtimePeriod", "CpuRealtimeRuntime"):
        if _int(update, key) != 0:
            hc[key] = _int(update, key)
    if update.get("PidsLimit") is not None:
        hc["PidsLimit"] = int(update["PidsLimit"])
    policy = update.get("RestartPolicy") or {}
    if policy.get("Name"):
        if hc.get("AutoRemove") and policy["Name"] not in ("", "no"):
            raise conflict("Restart policy cannot be updated because AutoRemove is enabled for the container")
        hc["RestartPolicy"] = {"Name": policy["Name"], "MaximumRetryCount": _int(policy, "MaximumRetryCount")}
    return hc


# --- the running container's cgroup ----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveResources:
    """runc's view of an update (configs.Resources): 0 or "" = leave as it is."""

    memory: int = 0
    reservation: int = 0
    swap: int = 0
    shares: int = 0  # uint64 in runc: a negative request wraps, as Go's conversion does
    period: int = 0
    quota: int = 0
    cpus: str = ""
    mems: str = ""
    pids: int = 0  # -1: unlimited
    blkio_weight: int = 0


def _cfs(hc: dict[str, Any]) -> tuple[int, int]:
    nano = _int(hc, "NanoCpus")
    if nano:
        return _NANO_PERIOD, nano * _NANO_PERIOD // 10**9
    return _int(hc, "CpuPeriod"), _int(hc, "CpuQuota")


def live_resources(update: dict[str, Any], before: dict[str, Any]) -> LiveResources:
    """dockerd's toContainerdResources of the (verified) update, then `runc update`'s reading of it: a CFS
    period or quota given alone keeps the other one's previous value (`before`: the HostConfig it ran
    with)."""
    period, quota = 0, 0
    nano = _int(update, "NanoCpus")
    if nano:
        period, quota = _NANO_PERIOD, nano * _NANO_PERIOD // 10**9
    if quota == 0 and _int(update, "CpuQuota"):
        quota = _int(update, "CpuQuota")
    if period == 0 and _int(update, "CpuPeriod"):
        period = _int(update, "CpuPeriod")
    if (period == 0) != (quota == 0):
        old_period, old_quota = _cfs(before)
        period, quota = (period or old_period), (quota or old_quota)
    pids = update.get("PidsLimit")
    return LiveResources(
        memory=_int(update, "Memory"),
        reservation=_int(update, "MemoryReservation"),
        swap=max(_int(update, "MemorySwap"), 0),  # dockerd passes a swap limit only when positive
        shares=_int(update, "CpuShares") & _U64,
        period=period,
        quota=quota,
        cpus=str(update.get("CpusetCpus") or ""),
        mems=str(update.get("CpusetMems") or ""),
        pids=0 if pids is None else (-1 if int(pids) <= 0 else int(pids)),
        blkio_weight=_int(update, "BlkioWeight"),
    )


def _go_error(e: OSError) -> str:
    text = os.strerror(e.errno) if e.errno else str(e)
    return text[:1].lower() + text[1:]


class _Dir:
    """One controller's directory, written as runc's cgroups.WriteFile writes (its error texts)."""

    def __init__(self, cgroup: Cgroup, controller: str) -> None:
        path = cgroup.path(controller)
        if path is None:
            raise LiveError(f"cannot set {controller} limit: container could not join or create cgroup")
        self.path = path

    def has(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.path, name))

    def read(self, name: str) -> int:
        with open(os.path.join(self.path, name)) as f:
            text = f.read().strip()
        return -1 if text == "max" else int(text.split()[0])

    def write(self, name: str, value: str) -> None:
        full = os.path.join(self.path, name)
        try:
            fd = os.open(full, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)  # (kernfs ignores the truncation)
        except OSError as e:
            raise LiveError(f"openat2 {full}: {_go_error(e)}") from e
        try:
            os.write(fd, value.encode())
        except OSError as e:
            err = LiveError(f"failed to write {json.dumps(value)}: write {full}: {_go_error(e)}")
            err.errno = e.errno  # type: ignore[attr-defined]
            raise err from e
        finally:
            os.close(fd)


def _v1_memory(d: _Dir, r: LiveResources) -> None:
    def set_memory(value: int) -> None:
        if value == 0:
            return
        try:
            d.write("memory.limit_in_bytes", str(value))
        except LiveError as e:
            if getattr(e, "errno", None) != errno.EBUSY:
                raise
            usage, peak = d.read("memory.usage_in_bytes"), d.read("memory.max_usage_in_bytes")
            raise LiveError(
                f"unable to set memory limit to {value} (current usage: {usage}, peak usage: {peak})"
            ) from None

    def set_swap(value: int) -> None:
        if value != 0:
            d.write("memory.memsw.limit_in_bytes", str(value))

    memory, swap = r.memory, r.swap
    if memory == -1 and swap == 0 and d.has("memory.memsw.limit_in_bytes"):
        swap = -1
    if memory != 0 and swap != 0:
        current = d.read("memory.limit_in_bytes")
        if swap == -1 or current < swap:  # growing: the swap limit first, or the kernel refuses
            set_swap(swap)
            set_memory(memory)
            memory = swap = 0
    set_memory(memory)
    set_swap(swap)
    if r.reservation != 0:
        d.write("memory.soft_limit_in_bytes", str(r.reservation))


def _v1_cpu(d: _Dir, r: LiveResources) -> None:
    if r.shares != 0:
        d.write("cpu.shares", str(r.shares))
        got = d.read("cpu.shares")
        if r.shares > got:
            raise LiveError(f"the maximum allowed cpu-shares is {got}")
        if r.shares < got:
            raise LiveError(f"the minimum allowed cpu-shares is {got}")
    period = ""
    if r.period != 0:
        period = str(r.period)
        try:
            d.write("cpu.cfs_period_us", period)
            period = ""
        except LiveError as e:
            # a shorter period can exceed the parent's quota until the new quota is in: retried after it
            if getattr(e, "errno", None) != errno.EINVAL or r.quota == 0:
                raise
    if r.quota != 0:
        d.write("cpu.cfs_quota_us", str(r.quota))
        if period:
            d.write("cpu.cfs_period_us", period)


def _v2_memory(d: _Dir, r: LiveResources) -> None:
    if not (r.memory or r.reservation or r.swap):
        return
    memory, swap = r.memory, r.swap
    if memory == -1 and swap == 0:
        v2_swap = -1
    elif swap in (-1, 0):
        v2_swap = swap
    elif memory in (0, -1):
        raise LiveError("unable to set swap limit without memory limit")
    elif memory < 0:
        raise LiveError(f"invalid memory value: {memory}")
    elif swap < memory:
        raise LiveError("memory+swap limit should be >= memory limit")
    else:
        v2_swap = swap - memory
    text = "max" if v2_swap == -1 else "" if v2_swap == 0 else str(v2_swap)
    if text == "" and swap > 0:
        text = "0"  # memory and memory+swap alike: no swap
    if text:
        d.write("memory.swap.max", text)
    if memory:
        d.write("memory.max", "max" if memory == -1 else str(memory))
    if r.reservation:
        d.write("memory.low", "max" if r.reservation == -1 else str(r.reservation))


def _v2_weight(shares: int) -> int:
    """runc's ConvertCPUSharesToCgroupV2Value, in uint64 arithmetic as Go does it."""
    if shares == 0:
        return 0
    return (1 + (((shares - 2) & _U64) * 9999 & _U64) // 262142) & _U64


def apply_live(cgroup: Cgroup, r: LiveResources) -> None:
    """Write `r` into the running container's cgroup as runc's fs (v1) or fs2 (v2) manager sets it."""
    if cgroup.version == "2":
        d = _Dir(cgroup, "memory")
        if r.pids:
            d.write("pids.max", "max" if r.pids < 0 else str(r.pids))
        _v2_memory(d, r)
        if r.blkio_weight:
            try:
                d.write("io.bfq.weight", str(r.blkio_weight))
            except LiveError:  # no BFQ: io.weight, on its own scale
                d.write("io.weight", str(1 + (r.blkio_weight - 10) * 9999 // 990))
        if r.shares:
            d.write("cpu.weight", str(_v2_weight(r.shares)))
        if r.quota or r.period:
            text = str(r.quota) if r.quota > 0 else "max"
            d.write("cpu.max", f"{text} {r.period}" if r.period else text)
        if r.cpus:
            d.write("cpuset.cpus", r.cpus)
        if r.mems:
            d.write("cpuset.mems", r.mems)
        return
    if r.cpus or r.mems:
        d = _Dir(cgroup, "cpuset")
        if r.cpus:
            d.write("cpuset.cpus", r.cpus)
        if r.mems:
            d.write("cpuset.mems", r.mems)
    if r.memory or r.swap or r.reservation:
        _v1_memory(_Dir(cgroup, "memory"), r)
    if r.shares or r.period or r.quota:
        _v1_cpu(_Dir(cgroup, "cpu"), r)
    if r.pids:
        _Dir(cgroup, "pids").write("pids.max", "max" if r.pids < 0 else str(r.pids))
    if r.blkio_weight:
        d = _Dir(cgroup, "blkio")
        d.write("blkio.bfq.weight" if d.has("blkio.bfq.weight") else "blkio.weight", str(r.blkio_weight))


# --- the request -----------------------------------------------------------------------------------------


def _ncpu() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


async def update(service: ContainerService, ref: str, body: Any) -> list[str]:
    """The whole request; returns dockerd's Warnings. Raises ContainerError with dockerd's status."""
    from .service import ContainerError

    try:
        request = decode(body)
    except ResourceError as e:
        raise ContainerError(str(e), e.status) from None
    c = service.get(ref)  # 404 "No such container: x"
    try:
        validate_restart_policy({"RestartPolicy": request.get("RestartPolicy") or {}})
        warnings = verify_resources(request, sysinfo(), _ncpu(), update=True)
    except (RestartPolicyError, ResourceError) as e:
        raise ContainerError(str(e), getattr(e, "status", 400)) from None
    async with service._lock(c.id):
        if c.state.status in ("removing", "dead") or service.removals.in_progress(c.id):
            raise ContainerError(
                f'Cannot update container {c.id}: container is marked for removal and cannot be "update"', 500
            )
        before = c.host_config
        try:
            c.host_config = merge(before, request)
        except ResourceError as e:
            raise ContainerError(f"Cannot update container {c.id}: {e}", e.status) from None
        await asyncio.to_thread(service.store.save, c)
        if (request.get("RestartPolicy") or {}).get("Name"):
            manager = service._restart_managers.get(c.id)
            if manager is not None:  # dockerd's UpdateMonitor: the running policy changes too
                manager.policy = RestartPolicy.from_host_config(c.host_config)
        if c.state.status in ("running", "paused"):
            live = live_resources(request, before)
            cgroup = service._cgroup(c)
            try:
                if cgroup is None:
                    raise LiveError("container not found")
                await asyncio.to_thread(apply_live, cgroup, live)
            except (LiveError, OSError, ValueError) as e:
                c.host_config = before
                await asyncio.to_thread(service.store.save, c)
                raise ContainerError(
                    f"Cannot update container {c.id}: runc did not terminate successfully: exit status 1: "
                    f"{e}\n: unknown",
                    500,
                ) from None
    service.events.emit("container", "update", c.id, image=c.image, name=c.name)
    return warnings
