"""`dockyard update` (and `container update`), as the docker CLI 20.10's: the resource flags and
`--restart`, one `POST /containers/{id}/update` per container, each one's name printed when it succeeds,
then the daemon's warnings, then the errors (exit 1)."""

from __future__ import annotations

import sys

from ..client import ApiClient, ApiError
from ..parser import UsageError
from .run_options import RunParser, parse_restart_policy
from .run_options import _bad as bad_value
from .run_options import _bytes as parse_bytes
from .run_options import _nano_cpus as parse_cpus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from . import CommandSpec

# flag dest -> (UpdateConfig key, kind)
_FIELDS = (
    ("blkio_weight", "BlkioWeight", "uint16"),
    ("cpu_period", "CpuPeriod", "int"),
    ("cpu_quota", "CpuQuota", "int"),
    ("cpu_rt_period", "CpuRealtimePeriod", "int"),
    ("cpu_rt_runtime", "CpuRealtimeRuntime", "int"),
    ("cpu_shares", "CpuShares", "int"),
    ("cpus", "NanoCpus", "cpus"),
    ("cpuset_cpus", "CpusetCpus", "str"),
    ("cpuset_mems", "CpusetMems", "str"),
    ("kernel_memory", "KernelMemory", "bytes"),
    ("memory", "Memory", "bytes"),
    ("memory_reservation", "MemoryReservation", "bytes"),
    ("memory_swap", "MemorySwap", "swap"),
    ("pids_limit", "PidsLimit", "int"),
)


def configure(spec: CommandSpec) -> RunParser:
    p = RunParser(
        spec.name,
        f"dockyard {spec.name} [OPTIONS] CONTAINER [CONTAINER...]",
        "Update configuration of one or more containers",
    )
    add = p.add_argument
    add(
        "--blkio-weight",
        metavar="uint16",
        help="Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)",
    )
    add("--cpu-period", metavar="int", help="Limit CPU CFS (Completely Fair Scheduler) period")
    add("--cpu-quota", metavar="int", help="Limit CPU CFS (Completely Fair Scheduler) quota")
    add("--cpu-rt-period", metavar="int", help="Limit the CPU real-time period in microseconds")
    add("--cpu-rt-runtime", metavar="int", help="Limit the CPU real-time runtime in microseconds")
    add("-c", "--cpu-shares", metavar="int", help="CPU shares (relative weight)")
    add("--cpus", metavar="decimal", help="Number of CPUs")
    add("--cpuset-cpus", metavar="string", help="CPUs in which to allow execution (0-3, 0,1)")
    add("--cpuset-mems", metavar="string", help="MEMs in which to allow execution (0-3, 0,1)")
    add("--kernel-memory", metavar="bytes", help="Kernel memory limit")
    add("-m", "--memory", metavar="bytes", help="Memory limit")
    add("--memory-reservation", metavar="bytes", help="Memory soft limit")
    add(
        "--memory-swap",
        metavar="bytes",
        help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
    )
    add("--pids-limit", metavar="int", help="Tune container pids limit (set -1 for unlimited)")
    add("--restart", metavar="string", help="Restart policy to apply when a container exits")
    add("containers", nargs="+", metavar="CONTAINER")
    return p


def _go_int(p: RunParser, dest: str, value: str, bits: int = 64, unsigned: bool = False) -> int:
    """strconv.ParseInt/ParseUint(value, 0, bits), as pflag parses an int64 or uint16 flag."""
    func = "ParseUint" if unsigned else "ParseInt"
    text = value.replace("_", "") if "_" in value else value
    try:
        number = int(text, 0)
    except ValueError:
        raise bad_value(p, dest, value, f'strconv.{func}: parsing "{value}": invalid syntax') from None
    if unsigned and (text.startswith(("-", "+"))):
        raise bad_value(p, dest, value, f'strconv.{func}: parsing "{value}": invalid syntax')
    low, high = (0, (1 << bits) - 1) if unsigned else (-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    if not low <= number <= high:
        raise bad_value(p, dest, value, f'strconv.{func}: parsing "{value}": value out of range')
    return number


def request_body(args: Any) -> dict[str, Any]:
    """The UpdateConfig for the flags given; UsageError when none is."""
    p = args._parser
    body: dict[str, Any] = {}
    for dest, key, kind in _FIELDS:
        value = getattr(args, dest)
        if value is None:
            continue
        if kind == "str":
            body[key] = value
        elif kind == "uint16":
            body[key] = _go_int(p, dest, value, 16, unsigned=True)
        elif kind == "int":
            body[key] = _go_int(p, dest, value)
        elif kind == "cpus":
            body[key] = parse_cpus(p, value)
        else:
            body[key] = parse_bytes(p, dest, value, allow_unlimited=kind == "swap")
    if args.restart is not None:
        body["RestartPolicy"] = parse_restart_policy(args.restart) if args.restart else {"Name": ""}
    if not body:
        raise UsageError("you must provide one or more flags when using this command")
    body.setdefault("RestartPolicy", {"Name": "", "MaximumRetryCount": 0})
    return body


def run(args: Any, client: ApiClient) -> int:
    try:
        body = request_body(args)
    except UsageError as e:
        if str(e).startswith("you must provide"):  # the docker CLI's RunE error: exit 1, no usage hint
            print(str(e), file=sys.stderr)
            return 1
        raise
    warnings: list[str] = []
    errors: list[str] = []
    for name in args.containers:
        try:
            answer = client.post_json(f"/containers/{name}/update", body) or {}
        except ApiError as e:
            errors.append(f"Error response from daemon: {e.message}")
            continue
        print(name)
        warnings += answer.get("Warnings") or []
    if warnings:
        print("\n".join(warnings))
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    return 0
