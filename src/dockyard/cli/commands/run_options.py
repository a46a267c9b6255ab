"""The resource, security and lifecycle flags of `run` and `create`, with the docker CLI's names, help texts
and error wording, and how they become the create request (Config, HostConfig, the `platform` query).

Values are kept as typed on the command line and converted here, so a bad one fails as the docker CLI
fails: `invalid argument "abc" for "-m, --memory" flag: invalid size: 'abc'`, exit 125.
"""

from __future__ import annotations

import json
import os

from ...units import ram_in_bytes
from ..parser import CommandParser, UsageError
from . import health_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
ULIMIT_NAMES = frozenset(
    "core cpu data fsize locks memlock msgqueue nice nofile nproc rss rtprio rttime sigpending stack".split()
)


class RunParser(CommandParser):
    """A CommandParser that also takes cobra's `--flag=false` for boolean flags (`--sig-proxy=false`)."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        argv, overrides = self._bool_values(list(args or []))
        ns = super().parse_args(argv, namespace)
        for dest, value in overrides.items():
            setattr(ns, dest, value)
        ns._parser = self  # flag names for the errors found while building the request
        return ns

    def _bool_values(self, argv: list[str]) -> tuple[list[str], dict[str, bool]]:
        out: list[str] = []
        overrides: dict[str, bool] = {}
        actions = self._option_string_actions
        i = 0
        while i < len(argv):
            token = argv[i]
            if token == "--" or not token.startswith("-") or token == "-":
                out.extend(argv[i:])  # the image and the command: left alone
                break
            i += 1
            if token.startswith("--"):
                name, eq, value = token.partition("=")
                action = actions.get(name)
                if action is not None and action.nargs == 0 and eq and action.dest != "help":
                    if value not in _TRUE + _FALSE:
                        raise UsageError(
                            f'invalid argument "{value}" for "{flag_name(action)}" flag: '
                            f'strconv.ParseBool: parsing "{value}": invalid syntax'
                        )
                    overrides[action.dest] = value in _TRUE
                    continue
                out.append(token)
                if action is not None and action.nargs != 0 and not eq and i < len(argv):
                    # joined as `--flag=value`: pflag takes a value starting with "-" (`--dns-search -x`)
                    out[-1] = f"{token}={argv[i]}"
                    i += 1
                continue
            out.append(token)
            for j, ch in enumerate(token[1:], 1):  # a cluster of short flags: -it, -e X, -eX
                action = actions.get("-" + ch)
                if action is not None and action.nargs != 0:
                    if j == len(token) - 1 and i < len(argv):
                        out[-1] = token + argv[i]  # `-e -X` as `-e-X`, for the same reason
                        i += 1
                    break
        return out, overrides


def flag_name(action: Any) -> str:
    short = [o for o in action.option_strings if not o.startswith("--")]
    long = [o for o in action.option_strings if o.startswith("--")]
    return ", ".join(short[:1] + long[:1])


def add_options(p: CommandParser) -> None:
    """The flags beyond the basics, in the docker CLI's words."""
    add = p.add_argument
    add(
        "-a",
        "--attach",
        action="append",
        default=[],
        metavar="list",
        help="Attach to STDIN, STDOUT or STDERR",
    )
    add("--cap-add", action="append", default=[], metavar="list", help="Add Linux capabilities")
    add("--cap-drop", action="append", default=[], metavar="list", help="Drop Linux capabilities")
    add("--cidfile", metavar="string", help="Write the container ID to the file")
    add(
        "--blkio-weight",
        metavar="uint16",
        help="Block IO (relative weight), between 10 and 1000, or 0 to disable",
    )
    add("--cpu-period", metavar="int", help="Limit CPU CFS (Completely Fair Scheduler) period")
    add("--cpu-quota", metavar="int", help="Limit CPU CFS (Completely Fair Scheduler) quota")
    add("--cpu-rt-period", metavar="int", help="Limit CPU real-time period in microseconds")
    add("--cpu-rt-runtime", metavar="int", help="Limit CPU real-time runtime in microseconds")
    add("-c", "--cpu-shares", metavar="int", help="CPU shares (relative weight)")
    add("--cpus", metavar="decimal", help="Number of CPUs")
    add("--cpuset-cpus", metavar="string", help="CPUs in which to allow execution (0-3, 0,1)")
    add("--cpuset-mems", metavar="string", help="MEMs in which to allow execution (0-3, 0,1)")
    add("--detach-keys", metavar="string", help="Override the key sequence for detaching a container")
    add("--domainname", metavar="string", help="Container NIS domain name")
    add(
        "--env-file",
        action="append",
        default=[],
        metavar="list",
        help="Read in a file of environment variables",
    )
    add("--group-add", action="append", default=[], metavar="list", help="Add additional groups to join")
    health_options.add_options(p)
    add(
        "--init",
        action="store_true",
        default=None,
        help="Run an init inside the container that forwards signals and reaps processes",
    )
    add("--log-driver", metavar="string", help="Logging driver for the container")
    add("--log-opt", action="append", default=[], metavar="list", help="Log driver options")
    add("-m", "--memory", metavar="bytes", help="Memory limit")
    add("--memory-reservation", metavar="bytes", help="Memory soft limit")
    add(
        "--memory-swap",
        metavar="bytes",
        help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
    )
    add(
        "--network",
        "--net",
        action="append",
        default=[],
        metavar="network",
        help="Connect a container to a network",
    )
    add(
        "--network-alias",
        action="append",
        default=[],
        metavar="list",
        help="Add network-scoped alias for the container",
    )
    add("--ip", metavar="string", help="IPv4 address (e.g., 172.30.100.104)")
    add("--ip6", metavar="string", help="IPv6 address (e.g., 2001:db8::33)")
    add("--link", action="append", default=[], metavar="list", help="Add link to another container")
    add(
        "--link-local-ip",
        action="append",
        default=[],
        metavar="list",
        help="Container IPv4/IPv6 link-local addresses",
    )
    add("--mac-address", metavar="string", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    add(
        "-p",
        "--publish",
        action="append",
        default=[],
        metavar="list",
        help="Publish a container's port(s) to the host",
    )
    add("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    add("--expose", action="append", default=[], metavar="list", help="Expose a port or a range of ports")
    add(
        "--add-host",
        action="append",
        default=[],
        metavar="list",
        help="Add a custom host-to-IP mapping (host:ip)",
    )
    add("--dns", action="append", default=[], metavar="list", help="Set custom DNS servers")
    add("--dns-option", action="append", default=[], metavar="list", help="Set DNS options")
    add("--dns-search", action="append", default=[], metavar="list", help="Set custom DNS search domains")
    add("--oom-kill-disable", action="store_true", default=None, help="Disable OOM Killer")
    add("--pids-limit", metavar="int", help="Tune container pids limit (set -1 for unlimited)")
    add("--platform", metavar="string", help="Set platform if server is multi-platform capable")
    add("--privileged", action="store_true", help="Give extended privileges to this container")
    add(
        "--pull",
        metavar="string",
        default="missing",
        help='Pull image before running ("always", "missing", "never")',
    )
    add("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    add("--restart", metavar="string", default="no", help="Restart policy to apply when a container exits")
    add("--runtime", metavar="string", help="Runtime to use for this container")
    add("--security-opt", action="append", default=[], metavar="list", help="Security Options")
    add("--shm-size", metavar="bytes", help="Size of /dev/shm")
    add("--sig-proxy", action="store_true", default=True, help="Proxy received signals to the process")
    add("--stop-signal", metavar="string", help="Signal to stop the container")
    add("--stop-timeout", metavar="int", help="Timeout (in seconds) to stop a container")
    add("--ulimit", action="append", default=[], metavar="ulimit", help="Ulimit options")
    add("-v", "--volume", action="append", default=[], metavar="list", help="Bind mount a volume")
    add("--volume-driver", metavar="string", help="Optional volume driver for the container")
    add(
        "--mount",
        action="append",
        default=[],
        metavar="mount",
        help="Attach a filesystem mount to the container",
    )
    add("--tmpfs", action="append", default=[], metavar="list", help="Mount a tmpfs directory")


def _bad(p: CommandParser, dest: str, value: str, why: str) -> UsageError:
    action = next(a for a in p._actions if a.dest == dest)
    return UsageError(f'invalid argument "{value}" for "{flag_name(action)}" flag: {why}')


def _int(p: CommandParser, dest: str, value: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise _bad(p, dest, value, f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def _bytes(p: CommandParser, dest: str, value: str, allow_unlimited: bool = False) -> int:
    if allow_unlimited and value == "-1":
        return -1
    try:
        return ram_in_bytes(value)
    except ValueError as e:
        raise _bad(p, dest, value, str(e)) from None


def _nano_cpus(p: CommandParser, value: str) -> int:
    """The docker CLI's NanoCPUs: a rational number (big.Rat: `1.5`, `3/2`) of CPUs, in 1e-9 CPUs."""
    from fractions import Fraction

    try:
        cpus = Fraction(value.strip())
    except (ValueError, ZeroDivisionError):
        raise _bad(p, "cpus", value, f"failed to parse {value} as a rational number") from None
    nano = cpus * 10**9
    if nano.denominator != 1:
        raise _bad(p, "cpus", value, "value is too precise")
    return int(nano)


def _ulimit(p: CommandParser, value: str) -> dict[str, Any]:
    """go-units ParseUlimit: name=soft[:hard]."""
    name, eq, limits = value.partition("=")
    if not eq:
        raise _bad(p, "ulimit", value, f"invalid ulimit argument: {value}")
    if name not in ULIMIT_NAMES:
        raise _bad(p, "ulimit", value, f"invalid ulimit type: {name}")
    parts = limits.split(":")
    if len(parts) > 2:
        raise _bad(
            p,
            "ulimit",
            value,
            f"too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`",
        )
    numbers = []
    for part in parts:
        try:
            numbers.append(int(part, 10))
        except ValueError:
            raise _bad(p, "ulimit", value, f'strconv.ParseInt: parsing "{part}": invalid syntax') from None
    soft, hard = numbers[0], numbers[-1]
    if hard != -1 and soft > hard:
        raise _bad(
            p, "ulimit", value, f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )
    return {"Name": name, "Hard": hard, "Soft": soft}


def parse_restart_policy(value: str) -> dict[str, Any]:
    """The docker CLI's ParseRestartPolicy (the daemon judges the name)."""
    name, colon, count = value.partition(":")
    if colon and not name:
        raise UsageError("invalid restart policy format: no policy provided before colon")
    retries = 0
    if count:
        try:
            retries = int(count, 10)
        except ValueError:
            raise UsageError(
                "invalid restart policy format: maximum retry count must be an integer"
            ) from None
    return {"Name": name, "MaximumRetryCount": retries}


def read_env_file(path: str) -> list[str]:
    """The docker CLI's env-file reading: `KEY=value` lines as they are (no trimming of the value), a bare
    `KEY` taken from this environment (dropped when unset), blank and `#` lines skipped."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise UsageError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    out = []
    for raw in lines:
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if any(ch.isspace() for ch in key):
            raise UsageError(f"poorly formatted environment: variable '{key}' contains whitespaces")
        if not key:
            raise UsageError(f"poorly formatted environment: no variable name on line '{line}'")
        if eq:
            out.append(f"{key}={value}")
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def env_list(args: Any) -> list[str]:
    """--env-file entries first, then -e; `-e KEY` takes KEY's value from this environment when it is set."""
    env = [e for path in args.env_file for e in read_env_file(path)]
    for entry in args.env:
        if "=" not in entry and entry in os.environ:
            entry = f"{entry}={os.environ[entry]}"
        env.append(entry)
    return env


def _security_opts(values: list[str]) -> list[str]:
    """As the docker CLI: `seccomp=<file>` is sent as the file's JSON (compacted), not as its path."""
    out = []
    for opt in values:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if key == "seccomp" and sep and value != "unconfined":
            try:
                with open(value, "rb") as f:
                    data = f.read()
            except OSError as e:
                reason = (e.strerror or str(e)).lower()
                raise UsageError(
                    f"opening seccomp profile ({value}) failed: open {value}: {reason}"
                ) from None
            try:
                compact = json.dumps(json.loads(data), separators=(",", ":"))
            except ValueError as e:
                raise UsageError(f"compacting json for seccomp profile ({value}) failed: {e}") from None
            opt = f"seccomp={compact}"
        out.append(opt)
    return out


def apply(p: CommandParser, args: Any, body: dict[str, Any]) -> None:
    """Fill the create body from the flags above (and check what the docker CLI checks before sending)."""
    hc: dict[str, Any] = body.setdefault("HostConfig", {})
    health_options.apply(p, args, body)
    body["Env"] = env_list(args)
    if args.pull not in ("always", "missing", "never"):
        raise UsageError(
            f'invalid pull option: \'{args.pull}\': must be one of "always", "missing" or "never"'
        )
    streams = []
    for stream in args.attach:
        if stream.lower() not in ("stdin", "stdout", "stderr"):
            raise _bad(p, "attach", stream, "valid streams are STDIN, STDOUT and STDERR")
        streams.append(stream.lower())
    if args.memory is not None:
        hc["Memory"] = _bytes(p, "memory", args.memory)
    if args.memory_swap is not None:
        hc["MemorySwap"] = _bytes(p, "memory_swap", args.memory_swap, allow_unlimited=True)
    if args.memory_reservation is not None:
        hc["MemoryReservation"] = _bytes(p, "memory_reservation", args.memory_reservation)
    if args.shm_size is not None:
        hc["ShmSize"] = _bytes(p, "shm_size", args.shm_size)
    if args.cpus is not None:
        hc["NanoCpus"] = _nano_cpus(p, args.cpus)
    if args.cpu_shares is not None:
        hc["CpuShares"] = _int(p, "cpu_shares", args.cpu_shares)
    if args.cpuset_cpus:
        hc["CpusetCpus"] = args.cpuset_cpus
    if args.cpuset_mems:
        hc["CpusetMems"] = args.cpuset_mems
    for dest, key in (
        ("cpu_period", "CpuPeriod"),
        ("cpu_quota", "CpuQuota"),
        ("cpu_rt_period", "CpuRealtimePeriod"),
        ("cpu_rt_runtime", "CpuRealtimeRuntime"),
    ):
        if getattr(args, dest) is not None:
            hc[key] = _int(p, dest, getattr(args, dest))
    if args.blkio_weight is not None:
        from .update import _go_int

        hc["BlkioWeight"] = _go_int(p, "blkio_weight", args.blkio_weight, 16, unsigned=True)
    if args.pids_limit is not None:
        hc["PidsLimit"] = _int(p, "pids_limit", args.pids_limit)
    if args.stop_timeout is not None:
        body["StopTimeout"] = _int(p, "stop_timeout", args.stop_timeout)
    if args.stop_signal:
        body["StopSignal"] = args.stop_signal
    if args.domainname:
        body["Domainname"] = args.domainname
    if args.ulimit:
        hc["Ulimits"] = [_ulimit(p, u) for u in args.ulimit]
    restart = parse_restart_policy(args.restart)
    hc["RestartPolicy"] = restart
    if hc.get("AutoRemove") and restart["Name"] not in ("", "no"):
        raise UsageError("conflicting options: cannot specify both --restart and --rm")
    if args.read_only:
        hc["ReadonlyRootfs"] = True
    if args.privileged:
        hc["Privileged"] = True
    if args.cap_add:
        hc["CapAdd"] = list(args.cap_add)
    if args.cap_drop:
        hc["CapDrop"] = list(args.cap_drop)
    if args.security_opt:
        hc["SecurityOpt"] = _security_opts(args.security_opt)
    if args.group_add:
        hc["GroupAdd"] = list(args.group_add)
    if args.runtime:
        hc["Runtime"] = args.runtime
    if args.init is not None:
        hc["Init"] = bool(args.init)
    if args.oom_kill_disable is not None:
        hc["OomKillDisable"] = bool(args.oom_kill_disable)
    _apply_network(p, args, body)
    _apply_mounts(p, args, body)
    if args.log_driver or args.log_opt:
        opts = dict((o.split("=", 1) + [""])[:2] for o in args.log_opt)
        if args.log_driver == "none" and opts:
            raise UsageError("invalid logging opts for driver none")
        hc["LogConfig"] = {"Type": args.log_driver or "", "Config": opts}
    if streams and not getattr(args, "detach", True):
        body.update(
            AttachStdin="stdin" in streams,
            AttachStdout="stdout" in streams,
            AttachStderr="stderr" in streams,
            StdinOnce=args.interactive and "stdin" in streams,
        )


def _apply_mounts(p: CommandParser, args: Any, body: dict[str, Any]) -> None:
    """-v, --mount, --tmpfs, --volume-driver as the docker CLI sends them: `-v /path` asks for an anonymous
    volume (Config.Volumes), `-v src:/path` is a Binds entry (a relative host path made absolute)."""
    from .mount_options import parse_mount, parse_volume

    hc: dict[str, Any] = body["HostConfig"]
    binds: list[str] = []
    volumes: dict[str, Any] = {}
    for spec in args.volume:
        try:
            source, is_bind = parse_volume(spec)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if not source:
            volumes[spec] = {}
        elif is_bind:
            host, _, rest = spec.partition(":")
            if host.startswith(".") and not os.path.isabs(host):
                host = os.path.abspath(host)
            binds.append(f"{host}:{rest}")
        else:
            binds.append(spec)
    if binds:
        hc["Binds"] = binds
    if volumes:
        body["Volumes"] = volumes
    mounts = []
    for value in args.mount:
        try:
            mounts.append(parse_mount(value))
        except ValueError as e:
            raise _bad(p, "mount", value, str(e)) from None
    if mounts:
        hc["Mounts"] = mounts
    if args.tmpfs:
        hc["Tmpfs"] = dict((t.split(":", 1) + [""])[:2] for t in args.tmpfs)
    if args.volume_driver:
        hc["VolumeDriver"] = args.volume_driver


def _apply_network(p: CommandParser, args: Any, body: dict[str, Any]) -> None:
    """-p, -P, --expose, --network and its endpoint flags, --add-host and --dns*, as the docker CLI sends
    them: `-p 8888:80` is ExposedPorts {"80/tcp": {}} and PortBindings {"80/tcp": [{"HostIp": "",
    "HostPort": "8888"}]}."""
    from . import network as net

    hc: dict[str, Any] = body["HostConfig"]

    def flag(dest: str, parse: Any, values: list[str]) -> list[str]:
        out = []
        for value in values:
            try:
                out.append(parse(value))
            except ValueError as e:
                raise _bad(p, dest, value, str(e)) from None
        return out

    hosts = flag("add_host", net.validate_extra_host, args.add_host)
    dns = flag("dns", net.canonical_ip, args.dns)
    search = flag("dns_search", net.validate_dns_search, args.dns_search)
    networks = flag("network", net.parse_network_opt, args.network)
    try:
        exposed, bindings = net.parse_publish(args.publish)
        net.parse_expose(args.expose, exposed)
        if args.mac_address:
            net.validate_mac(args.mac_address)
        endpoints = net.network_endpoints(
            networks, args.network_alias, args.link, args.ip, args.ip6, args.link_local_ip
        )
    except ValueError as e:
        raise UsageError(str(e)) from None
    if exposed:
        body["ExposedPorts"] = exposed
    if bindings:
        hc["PortBindings"] = bindings
    if args.publish_all:
        hc["PublishAllPorts"] = True
    if networks:
        hc["NetworkMode"] = networks[0]["Target"]
    if endpoints:
        body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    if args.link:
        hc["Links"] = list(args.link)  # legacy links on the default bridge; aliases on a user network
    if args.mac_address:
        body["MacAddress"] = args.mac_address  # API 1.41 takes it in Config (1.44 moved it per network)
    if hosts:
        hc["ExtraHosts"] = hosts
    if dns:
        hc["Dns"] = dns
    if search:
        hc["DnsSearch"] = search
    if args.dns_option:
        hc["DnsOptions"] = list(args.dns_option)


def write_cidfile(path: str | None, container_id: str) -> None:
    if path:
        with open(path, "w") as f:
            f.write(container_id)


def check_cidfile(path: str | None) -> None:
    """The docker CLI refuses to create a container when its --cidfile already exists."""
    if path and os.path.exists(path):
        raise UsageError(
            f"container ID file found, make sure the other container isn't running or delete {path}"
        )
