"""kill, restart, pause, unpause, rename, top, stats, attach, container prune, container inspect, and the
`container` management command's subcommands that are another module's commands (`container run` is
`run`, parsed and run by that module)."""

from __future__ import annotations

import argparse
import json
import sys

from ...units import bytes_size, human_size
from ..client import ApiClient, ApiError
from ..parser import CommandParser, confirm, parse_filters
from . import CommandSpec, find, for_each

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _own(name: str) -> bool:
    return name in ("container prune", "container inspect", "inspect") or name.removeprefix("container ") in (
        "kill",
        "restart",
        "pause",
        "unpause",
        "rename",
        "top",
        "stats",
        "attach",
    )


def _delegate(spec: CommandSpec) -> tuple[Any, CommandSpec]:
    """`container X` for a command X another module holds: that module, and X's spec."""
    import importlib

    short = spec.name.removeprefix("container ")
    base = find({"ls": "ps"}.get(short, short))
    if base is None or base.module == "manage":
        raise KeyError(spec.name)
    return importlib.import_module(f"dockyard.cli.commands.{base.module}"), base


def configure(spec: CommandSpec) -> CommandParser:
    name = spec.name
    if not _own(name):
        module, base = _delegate(spec)
        p = module.configure(base)
        p.prog = f"dockyard {name}"
        p.usage = (p.usage or "").replace(f"dockyard {base.name}", f"dockyard {name}", 1)
        return p
    short = name.removeprefix("container ")
    if short == "kill":
        p = CommandParser(
            name, f"dockyard {name} [OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers"
        )
        p.add_argument("-s", "--signal", metavar="string", help="Signal to send to the container")
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
    elif short == "restart":
        p = CommandParser(
            name, f"dockyard {name} [OPTIONS] CONTAINER [CONTAINER...]", "Restart one or more containers"
        )
        p.add_argument("-s", "--signal", metavar="string", help="Signal to send to the container")
        p.add_argument(
            "-t", "--time", type=int, metavar="int", help="Seconds to wait before killing the container"
        )
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
    elif short in ("pause", "unpause"):
        p = CommandParser(
            name,
            f"dockyard {name} CONTAINER [CONTAINER...]",
            f"{short.capitalize()} all processes within one or more containers",
        )
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
    elif short == "rename":
        p = CommandParser(name, f"dockyard {name} CONTAINER NEW_NAME", "Rename a container")
        p.add_argument("container", metavar="CONTAINER")
        p.add_argument("new_name", metavar="NEW_NAME")
    elif short == "top":
        p = CommandParser(
            name, f"dockyard {name} CONTAINER [ps OPTIONS]", "Display the running processes of a container"
        )
        p.add_argument("container", metavar="CONTAINER")
        p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="ps OPTIONS")
    elif short == "stats":
        p = CommandParser(
            name,
            f"dockyard {name} [OPTIONS] [CONTAINER...]",
            "Display a live stream of container(s) resource usage statistics",
        )
        p.add_argument(
            "-a", "--all", action="store_true", help="Show all containers (default shows just running)"
        )
        p.add_format()
        p.add_argument(
            "--no-stream", action="store_true", help="Disable streaming stats and only pull the first result"
        )
        p.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
        p.add_argument("containers", nargs="*", metavar="CONTAINER")
    elif short == "attach":
        p = CommandParser(
            name,
            f"dockyard {name} [OPTIONS] CONTAINER",
            "Attach local standard input, output, and error streams to a running container",
        )
        p.add_argument(
            "--detach-keys", metavar="string", help="Override the key sequence for detaching a container"
        )
        p.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
        p.add_argument(
            "--sig-proxy",
            default="true",
            metavar="bool",
            nargs="?",
            const="true",
            help="Proxy all received signals to the process (default true)",
        )
        p.add_argument("container", metavar="CONTAINER")
    elif short == "prune":
        p = CommandParser(name, "dockyard container prune [OPTIONS]", "Remove all stopped containers")
        p.add_filter(short=False, help='Provide filter values (e.g. "until=<timestamp>")')
        p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    else:  # inspect, container inspect
        container_only = name == "container inspect"
        p = CommandParser(
            name,
            f"dockyard {name} [OPTIONS] "
            + ("CONTAINER [CONTAINER...]" if container_only else "NAME|ID [NAME|ID...]"),
            "Display detailed information on one or more containers"
            if container_only
            else "Return low-level information on Dockyard objects",
        )
        p.add_format(short=True)
        p.add_argument(
            "-s",
            "--size",
            action="store_true",
            help="Display total file sizes" + ("" if container_only else " if the type is container"),
        )
        if not container_only:
            p.add_argument("--type", metavar="string", help="Return JSON for specified type")
        p.add_argument("names", nargs="+", metavar="CONTAINER" if container_only else "NAME|ID")
    return p


def run(args: Any, client: ApiClient) -> int:
    name = args.command
    if not _own(name):
        module, base = _delegate(CommandSpec(name, "manage", ""))
        args.command = base.name
        return module.run(args, client)
    short = name.removeprefix("container ")
    handler = {
        "kill": kill,
        "restart": restart,
        "pause": pause,
        "unpause": unpause,
        "rename": rename,
        "top": top,
        "stats": stats,
        "attach": attach,
        "prune": prune,
        "inspect": inspect,
    }[short]
    return handler(args, client)


def kill(args: Any, client: ApiClient) -> int:
    query = {"signal": args.signal} if args.signal else None
    return for_each(args.containers, lambda n: client.request("POST", f"/containers/{n}/kill", query).read())


def restart(args: Any, client: ApiClient) -> int:
    query = {"t": args.time, "signal": args.signal}
    return for_each(
        args.containers, lambda n: client.request("POST", f"/containers/{n}/restart", query).read()
    )


def pause(args: Any, client: ApiClient) -> int:
    return for_each(args.containers, lambda n: client.request("POST", f"/containers/{n}/pause").read())


def unpause(args: Any, client: ApiClient) -> int:
    return for_each(args.containers, lambda n: client.request("POST", f"/containers/{n}/unpause").read())


def rename(args: Any, client: ApiClient) -> int:
    client.request("POST", f"/containers/{args.container}/rename", {"name": args.new_name}).read()
    return 0


# --- top -----------------------------------------------------------------------------------------------


def tab_table(rows: list[list[str]], min_width: int = 10) -> str:
    """Go's tabwriter with padding 3 (the last cell of a row is not padded)."""
    columns = max(len(r) for r in rows)
    widths = [max([min_width] + [len(r[i]) + 3 for r in rows if len(r) > i + 1]) for i in range(columns)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])] + row[-1:]
        lines.append("".join(cells))
    return "\n".join(lines)


def top(args: Any, client: ApiClient) -> int:
    query = {"ps_args": " ".join(args.ps_args)} if args.ps_args else None
    result = client.get_json(f"/containers/{args.container}/top", query)
    rows = [list(result.get("Titles") or [])] + [list(p) for p in result.get("Processes") or []]
    print(tab_table(rows, min_width=20))
    return 0


# --- stats ---------------------------------------------------------------------------------------------

STATS_FORMAT = (
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"
)
STATS_HEADERS = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}


def cpu_percent(sample: dict[str, Any]) -> float:
    """The docker CLI's calculateCPUPercentUnix: the container's share of the host's CPU time since the
    previous sample, times the number of CPUs."""
    cpu = sample.get("cpu_stats") or {}
    pre = sample.get("precpu_stats") or {}
    cpu_delta = float((cpu.get("cpu_usage") or {}).get("total_usage", 0)) - float(
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    )
    system_delta = float(cpu.get("system_cpu_usage", 0)) - float(pre.get("system_cpu_usage", 0))
    online = float(cpu.get("online_cpus", 0)) or float(
        len((cpu.get("cpu_usage") or {}).get("percpu_usage") or [])
    )
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_usage(memory: dict[str, Any]) -> float:
    """calculateMemUsageUnixNoCache: usage without the inactive page cache (v1 and v2 keys)."""
    usage = int(memory.get("usage", 0))
    stats = memory.get("stats") or {}
    if "total_inactive_file" in stats and stats["total_inactive_file"] < usage:
        return float(usage - stats["total_inactive_file"])
    if stats.get("inactive_file", 0) < usage:
        return float(usage - stats.get("inactive_file", 0))
    return float(usage)


def block_io(blkio: dict[str, Any]) -> tuple[int, int]:
    read = write = 0
    for entry in blkio.get("io_service_bytes_recursive") or []:
        op = (entry.get("op") or " ")[0].lower()
        if op == "r":
            read += int(entry.get("value", 0))
        elif op == "w":
            write += int(entry.get("value", 0))
    return read, write


def stats_row(sample: dict[str, Any], container: str, trunc: bool = True) -> dict[str, str]:
    """One sample as the docker CLI's stats formatter shows it."""
    memory = sample.get("memory_stats") or {}
    used = memory_usage(memory)
    limit = float(memory.get("limit", 0))
    rx = sum(float(n.get("rx_bytes", 0)) for n in (sample.get("networks") or {}).values())
    tx = sum(float(n.get("tx_bytes", 0)) for n in (sample.get("networks") or {}).values())
    read, write = block_io(sample.get("blkio_stats") or {})
    name = sample.get("name") or ""
    container_id = sample.get("id") or ""
    return {
        "Container": container,
        "ID": container_id[:12] if trunc else container_id,
        "Name": name[1:] if len(name) > 1 else "--",
        "CPUPerc": f"{cpu_percent(sample):.2f}%",
        "MemUsage": f"{bytes_size(used)} / {bytes_size(limit)}",
        "MemPerc": f"{(used / limit * 100.0) if limit else 0.0:.2f}%",
        "NetIO": f"{human_size(rx, 3)} / {human_size(tx, 3)}",
        "BlockIO": f"{human_size(read, 3)} / {human_size(write, 3)}",
        "PIDs": str(int((sample.get("pids_stats") or {}).get("current", 0))),
    }


def format_rows(fmt: str, rows: list[dict[str, Any]], headers: dict[str, str]) -> str:
    """A `--format`: `table ...` gets a header row and aligned columns, anything else a line per row."""
    from ..template import render

    if fmt.startswith("table"):
        body = fmt[len("table") :].lstrip() or "{{.ID}}"
        body = body.replace("\\t", "\t")
        header = render(body, {k: v for k, v in headers.items()})
        lines = [header.split("\t")] + [render(body, r).split("\t") for r in rows]
        return tab_table(lines)
    return "\n".join(render(fmt, r) for r in rows)


def _stats_once(client: ApiClient, container: str) -> dict[str, Any] | BaseException:
    try:
        own = ApiClient(client.host)
        try:
            return own.get_json(f"/containers/{container}/stats", {"stream": 0})
        finally:
            own.close()
    except BaseException as e:  # reported with the others
        return e


def stats(args: Any, client: ApiClient) -> int:
    import threading

    names = list(args.containers)
    if not names:
        names = [c["Id"][:12] for c in client.get_json("/containers/json", {"all": args.all})]
    fmt = args.format or STATS_FORMAT
    if fmt == "json":
        fmt = "{{json .}}"
    latest: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    lock = threading.Lock()
    interactive = sys.stdout.isatty()

    def follow(name: str) -> None:
        try:
            own = ApiClient(client.host)
            response = own.request("GET", f"/containers/{name}/stats", {"stream": 1})
            for line in response.iter_lines():
                if line.strip():
                    with lock:
                        latest[name] = stats_row(json.loads(line), name, not args.no_trunc)
        except ApiError as e:
            with lock:
                errors[name] = e.message
        except (OSError, ValueError):
            pass

    def draw() -> None:
        with lock:
            rows = [latest[n] for n in names if n in latest]
        text = format_rows(fmt, rows, STATS_HEADERS)
        if interactive and not args.no_stream:
            sys.stdout.write("\033[2J\033[H")  # clear the screen, as the docker CLI redraws
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    if args.no_stream:
        results: dict[str, Any] = {}
        threads = [
            threading.Thread(target=lambda n=n: results.__setitem__(n, _stats_once(client, n)), daemon=True)
            for n in names
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        status = 0
        for n in names:
            result = results.get(n)
            if isinstance(result, ApiError):
                print(f"Error response from daemon: {result.message}", file=sys.stderr)
                status = 1
            elif isinstance(result, BaseException):
                raise result
            elif result is not None:
                latest[n] = stats_row(result, n, not args.no_trunc)
        if status and not latest:
            return 1
        draw()
        return status
    import time

    for n in names:
        threading.Thread(target=follow, args=(n,), daemon=True).start()
    try:
        while True:
            time.sleep(1.0)
            with lock:
                failed = dict(errors)
            if failed and len(failed) == len(names):
                for message in failed.values():
                    print(f"Error response from daemon: {message}", file=sys.stderr)
                return 1
            draw()
    except KeyboardInterrupt:
        return 0


# --- attach --------------------------------------------------------------------------------------------


def attach(args: Any, client: ApiClient) -> int:
    """As `docker attach`: inspect (Tty, OpenStdin, state), attach, forward signals unless -t, then the
    container's exit code from a wait."""
    import signal

    from .attach import AttachedStreams

    info = client.get_json(f"/containers/{args.container}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        raise ApiError(409, "You cannot attach to a stopped container, start it first")
    if state.get("Paused"):
        raise ApiError(409, "You cannot attach to a paused container, unpause it first")
    if state.get("Restarting"):
        raise ApiError(409, "You cannot attach to a restarting container, wait until it is running")
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = bool(config.get("OpenStdin")) and not args.no_stdin
    container_id = info["Id"]
    streams = AttachedStreams(client.host, container_id, stdin=stdin, tty=tty, detach_keys=args.detach_keys)
    streams.connect()
    waiter = ApiClient(client.host)
    wait_response = waiter.request("POST", f"/containers/{container_id}/wait")
    proxy = str(args.sig_proxy).lower() not in ("false", "0", "f")
    previous: dict[int, Any] = {}
    if proxy and not tty:

        def forward(sig: int, _frame: object) -> None:
            try:
                ApiClient(client.host).request(
                    "POST", f"/containers/{container_id}/kill", {"signal": sig}
                ).read()
            except (ApiError, OSError):
                pass

        for sig in (
            signal.SIGINT,
            signal.SIGTERM,
            signal.SIGHUP,
            signal.SIGQUIT,
            signal.SIGUSR1,
            signal.SIGUSR2,
        ):
            previous[sig] = signal.signal(sig, forward)

    def resize(height: int, width: int) -> None:
        try:
            client.request("POST", f"/containers/{container_id}/resize", {"h": height, "w": width}).read()
        except (ApiError, OSError):
            pass

    try:
        streams.run(resize=resize)
    finally:
        streams.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if streams.detached:
        waiter.close()
        return 0
    from .containers import read_wait

    status = read_wait(waiter, wait_response)
    return 125 if status is None else int(status.get("StatusCode", 0))


# --- prune, inspect ------------------------------------------------------------------------------------


def prune(args: Any, client: ApiClient) -> int:
    filters = parse_filters(args.filter)
    if not args.force and not confirm("WARNING! This will remove all stopped containers."):
        return 0
    result = client.post_json("/containers/prune", query={"filters": filters or None})
    deleted = result.get("ContainersDeleted") or []
    reclaimed = 0
    if deleted:
        print("Deleted Containers:")
        for container_id in deleted:
            print(container_id)
        print()
        reclaimed = result.get("SpaceReclaimed", 0)
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def inspect(args: Any, client: ApiClient) -> int:
    """`inspect` looks for a container, an image, a network, then a volume (as docker probes them in
    order); `--type` and `container inspect` look for one kind only."""
    kinds = ["container", "image", "network", "volume"]
    if args.command == "container inspect":
        kinds = ["container"]
    wanted = getattr(args, "type", None)
    if wanted:
        if wanted not in ("container", "image", "network", "volume"):
            print(
                f'unknown type: "{wanted}": must be one of "config", "container", "image", "network", '
                '"node", "plugin", "secret", "service", "task", "volume"',
                file=sys.stderr,
            )
            return 1
        kinds = [wanted]
    found, status = [], 0
    for name in args.names:
        item = None
        missing = ""
        for kind in kinds:
            try:
                if kind == "container":
                    item = client.get_json(f"/containers/{name}/json", {"size": args.size or None})
                elif kind == "image":
                    item = client.get_json(f"/images/{name}/json")
                else:
                    item = client.get_json(f"/{kind}s/{name}")
                break
            except ApiError as e:
                if e.status != 404:
                    raise
                missing = e.message
        if item is None:
            if len(kinds) == 1:  # one kind asked for: the docker CLI shows the daemon's own words
                print(f"Error response from daemon: {missing}", file=sys.stderr)
            else:
                print(f"Error: No such object: {name}", file=sys.stderr)
            status = 1
            continue
        found.append(item)
    from ..template import print_inspected

    print_inspected(found, args.format)
    return status
