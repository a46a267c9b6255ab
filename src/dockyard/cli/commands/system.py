"""version, info, events."""

from __future__ import annotations

import json
import sys

from ... import API_VERSION, __version__
from ...goarch import go_arch
from ...units import bytes_size
from ..client import ApiClient, DaemonUnavailable
from ..parser import CommandParser, parse_filters
from . import CommandSpec

# typing and datetime cost milliseconds at CLI start-up; they are imported only where needed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def configure(spec: CommandSpec) -> CommandParser:
    if spec.name == "system prune":
        p = CommandParser("system prune", "dockyard system prune [OPTIONS]", "Remove unused data")
        p.add_argument(
            "-a", "--all", action="store_true", help="Remove all unused images not just dangling ones"
        )
        p.add_filter(short=False, help='Provide filter values (e.g. "label=<key>=<value>")')
        p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
        p.add_argument("--volumes", action="store_true", help="Prune anonymous volumes")
    elif spec.name == "system df":
        p = CommandParser("system df", "dockyard system df [OPTIONS]", "Show Dockyard disk usage")
        p.add_format()
        p.add_argument(
            "-v", "--verbose", action="store_true", help="Show detailed information on space usage"
        )
    elif spec.name == "version":
        p = CommandParser("version", "dockyard version [OPTIONS]", "Show the Dockyard version information")
        p.add_format(short=True)
    elif spec.name in ("info", "system info"):
        p = CommandParser("info", "dockyard info [OPTIONS]", "Display system-wide information")
        p.add_format(short=True)
    else:
        p = CommandParser("events", "dockyard events [OPTIONS]", "Get real time events from the server")
        p.add_filter()
        p.add_format()
        p.add_argument("--since", metavar="string", help="Show all events created since timestamp")
        p.add_argument("--until", metavar="string", help="Stream events until this timestamp")
    return p


def run(args: Any, client: ApiClient) -> int:
    handlers = {
        "version": version,
        "info": info,
        "events": events,
        "system df": disk_usage,
        "system prune": prune,
    }
    handlers.update({"system info": info, "system events": events})
    return handlers[args.command](args, client)


# --- system df -----------------------------------------------------------------------------------


def _reclaimable(reclaimable: int, total: int) -> str:
    """As the docker CLI: the size, and its share of the total when there is one."""
    from ...units import human_size

    shown = human_size(reclaimable)
    return f"{shown} ({reclaimable * 100 // total}%)" if total > 0 else shown


def disk_usage_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The four rows of `system df`, computed from GET /system/df as the docker CLI computes them."""
    from ...units import human_size

    images = data.get("Images") or []
    layers = int(data.get("LayersSize") or 0)
    used = sum(
        i["VirtualSize"] - i["SharedSize"]
        for i in images
        if i.get("Containers") and i.get("VirtualSize", -1) != -1 and i.get("SharedSize", -1) != -1
    )
    containers = data.get("Containers") or []
    active = [
        c for c in containers if any(s in c.get("State", "") for s in ("running", "paused", "restarting"))
    ]
    container_size = sum(int(c.get("SizeRw") or 0) for c in containers)
    idle_size = container_size - sum(int(c.get("SizeRw") or 0) for c in active)
    volumes = data.get("Volumes") or []
    usage = [v.get("UsageData") or {} for v in volumes]
    volume_size = sum(u["Size"] for u in usage if u.get("Size", -1) != -1)
    unused = sum(u["Size"] for u in usage if u.get("Size", -1) != -1 and not u.get("RefCount"))
    cache = data.get("BuildCache") or []
    cache_size = sum(int(b.get("Size") or 0) for b in cache)
    return [
        {
            "Type": "Images",
            "TotalCount": str(len(images)),
            "Active": str(sum(1 for i in images if i.get("Containers"))),
            "Size": human_size(layers),
            "Reclaimable": _reclaimable(layers - used, layers),
        },
        {
            "Type": "Containers",
            "TotalCount": str(len(containers)),
            "Active": str(len(active)),
            "Size": human_size(container_size),
            "Reclaimable": _reclaimable(idle_size, container_size),
        },
        {
            "Type": "Local Volumes",
            "TotalCount": str(len(volumes)),
            "Active": str(sum(1 for u in usage if u.get("RefCount"))),
            "Size": human_size(volume_size),
            "Reclaimable": _reclaimable(unused, volume_size),
        },
        {
            "Type": "Build Cache",
            "TotalCount": str(len(cache)),
            "Active": str(sum(1 for b in cache if b.get("InUse"))),
            "Size": human_size(cache_size),
            "Reclaimable": _reclaimable(cache_size, cache_size) if cache_size else human_size(0),
        },
    ]


DF_FORMAT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
DF_HEADERS = {
    "Type": "TYPE",
    "TotalCount": "TOTAL",
    "Active": "ACTIVE",
    "Size": "SIZE",
    "Reclaimable": "RECLAIMABLE",
}


def disk_usage(args: Any, client: ApiClient) -> int:
    data = client.get_json("/system/df")
    rows = disk_usage_rows(data)
    if args.format and not args.format.startswith("table"):
        from ..template import render

        for row in rows:
            print(json.dumps(row) if args.format == "json" else render(args.format, row))
        return 0
    from ..tables import table

    if args.verbose:
        print(_verbose_disk_usage(data, rows))
        return 0
    keys = ["Type", "TotalCount", "Active", "Size", "Reclaimable"]
    lines = [[DF_HEADERS[k] for k in keys]] + [[row[k] for k in keys] for row in rows]
    print(table(lines))
    return 0


def _verbose_disk_usage(data: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """`system df -v`: the docker CLI's four sections."""
    from ...units import human_size
    from ..tables import ago, table
    from .containers import ps_row

    images = [
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE", "CONTAINERS"]
    ]
    for image in data.get("Images") or []:
        shared = int(image.get("SharedSize") or 0)
        for repo_tag in (image.get("RepoTags") or ["<none>:<none>"])[:1]:  # the docker CLI shows one tag
            repo, _, tag = repo_tag.rpartition(":")
            images.append(
                [
                    repo,
                    tag,
                    image["Id"].split(":", 1)[-1][:12],
                    ago(int(image.get("Created") or 0)),
                    human_size(image.get("Size") or 0, 3),
                    human_size(shared),
                    human_size((image.get("Size") or 0) - shared),
                    str(image.get("Containers") or 0),
                ]
            )
    containers = [["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED", "STATUS", "NAMES"]]
    for c in data.get("Containers") or []:
        row = ps_row(c, True)
        size = human_size(c.get("SizeRw") or 0, 3)  # the docker CLI: 3 digits here, as in ps
        keys = ("ID", "Image", "Command", "LocalVolumes")
        containers.append([*(row[k] for k in keys), size, row["RunningFor"], row["Status"], row["Names"]])
    volumes = [["VOLUME NAME", "LINKS", "SIZE"]]
    for v in data.get("Volumes") or []:
        usage = v.get("UsageData") or {}
        volumes.append([v["Name"], str(usage.get("RefCount", 0)), human_size(usage.get("Size") or 0)])
    cache = [["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"]]
    return "\n".join(
        [
            "Images space usage:\n",
            table(images),
            "\nContainers space usage:\n",
            table(containers),
            "\nLocal Volumes space usage:\n",
            table(volumes),
            f"\nBuild cache usage: {rows[3]['Size']}\n",
            table(cache),
        ]
    )


# --- version --------------------------------------------------------------------------------------


def _client_version() -> dict[str, Any]:
    return {
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "PythonVersion": sys.version.split()[0],
        "Os": "linux",
        "Arch": go_arch(),
    }


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _ansic(rfc3339: str) -> str:
    """ "2026-11-28T00:00:00..." as Go's ANSIC layout, "Sat Nov 28 00:00:00 2026", as docker prints
    Built. By hand: datetime costs ~3 ms to import on the CLI's start-up."""
    try:
        year, month, day = (int(x) for x in rfc3339[:10].split("-"))
        clock = rfc3339[11:19]
    except ValueError:
        return rfc3339
    # Zeller's congruence (0 = Saturday), turned into Monday-first.
    y, m = (year - 1, month + 12) if month < 3 else (year, month)
    weekday = (day + 13 * (m + 1) // 5 + y % 100 + y % 100 // 4 + y // 400 - 2 * (y // 100)) % 7
    return f"{_DAYS[(weekday + 5) % 7]} {_MONTHS[month - 1]} {day:2d} {clock} {year}"


def _aligned(rows: list[tuple[str, str]], indent: str) -> list[str]:
    width = max(len(k) for k, _ in rows) + 2
    return [f"{indent}{(k + ':').ljust(width)}{v}".rstrip() for k, v in rows]


def version(args: Any, client: ApiClient) -> int:
    data: dict[str, Any] = {"Client": _client_version(), "Server": None}
    error: Exception | None = None
    try:
        data["Server"] = client.get_json("/version")
    except DaemonUnavailable as e:
        error = e
    if args.format:
        print(_render(args.format, data))
    else:
        c = data["Client"]
        lines = ["Client:"] + _aligned(
            [
                ("Version", c["Version"]),
                ("API version", c["ApiVersion"]),
                ("Python version", c["PythonVersion"]),
                ("OS/Arch", f"{c['Os']}/{c['Arch']}"),
            ],
            " ",
        )
        server = data["Server"]
        if server:
            name = server.get("Platform", {}).get("Name", "")
            lines += ["", f"Server: {name}".rstrip()]
            for comp in server.get("Components") or []:
                details = comp.get("Details") or {}
                lines.append(f" {comp['Name']}:")
                if comp["Name"] == "Engine":
                    rows = [
                        ("Version", comp["Version"]),
                        (
                            "API version",
                            f"{details.get('ApiVersion')} (minimum version {details.get('MinAPIVersion')})",
                        ),
                        ("Python version", details.get("GoVersion", "").removeprefix("python")),
                        ("Built", _ansic(details.get("BuildTime", ""))),
                        ("OS/Arch", f"{details.get('Os')}/{details.get('Arch')}"),
                        ("Experimental", details.get("Experimental", "false")),
                    ]
                else:
                    rows = [("Version", comp.get("Version", ""))] + sorted(details.items())
                lines += _aligned(rows, "  ")
        print("\n".join(lines))
    if error:
        print(str(error), file=sys.stderr)
        return 1
    return 0


# --- info -----------------------------------------------------------------------------------------


def info(args: Any, client: ApiClient) -> int:
    server = client.get_json("/info")
    if args.format:
        print(_render(args.format, server))
        return 0
    s = server
    rows: list[str] = [
        "Client:",
        f" Version:    {__version__}",
        f" Debug Mode: {str(args.debug).lower()}",
        "",
        "Server:",
        f" Containers: {s['Containers']}",
        f"  Running: {s['ContainersRunning']}",
        f"  Paused: {s['ContainersPaused']}",
        f"  Stopped: {s['ContainersStopped']}",
        f" Images: {s['Images']}",
        f" Server Version: {s['ServerVersion']}",
        f" Storage Driver: {s['Driver']}",
        *(f"  {k}: {v}" for k, v in s.get("DriverStatus") or []),
        f" Logging Driver: {s['LoggingDriver']}",
        f" Cgroup Driver: {s['CgroupDriver']}",
        f" Cgroup Version: {s['CgroupVersion']}",
        " Plugins:",
        *(f"  {k}: {' '.join(v)}" for k, v in (s.get("Plugins") or {}).items() if v),
        f" Runtimes: {' '.join(sorted(s.get('Runtimes') or {}))}",
        f" Default Runtime: {s['DefaultRuntime']}",
        f" Kernel Version: {s['KernelVersion']}",
        f" Operating System: {s['OperatingSystem']}",
        f" OSType: {s['OSType']}",
        f" Architecture: {s['Architecture']}",
        f" CPUs: {s['NCPU']}",
        f" Total Memory: {bytes_size(s['MemTotal'])}",
        f" Name: {s['Name']}",
        f" ID: {s['ID']}",
        f" Dockyard Root Dir: {s['DockerRootDir']}",
        f" Debug Mode: {str(s['Debug']).lower()}",
    ]
    if s.get("Debug"):
        rows += [f"  File Descriptors: {s['NFd']}", f"  EventsListeners: {s['NEventsListener']}"]
    if s.get("Labels"):
        rows += [" Labels:", *(f"  {label}" for label in s["Labels"])]
    rows.append(f" Experimental: {str(s['ExperimentalBuild']).lower()}")
    registry = s.get("RegistryConfig") or {}
    rows += [
        " Insecure Registries:",
        *(
            f"  {r}"
            for r in sorted(
                set(registry.get("InsecureRegistryCIDRs") or [])
                | {k for k, v in (registry.get("IndexConfigs") or {}).items() if not v.get("Secure")}
            )
        ),
    ]
    if registry.get("Mirrors"):
        rows += [" Registry Mirrors:", *(f"  {m}" for m in registry["Mirrors"])]
    rows.append(f" Live Restore Enabled: {str(s['LiveRestoreEnabled']).lower()}")
    print("\n".join(rows))
    for warning in s.get("Warnings") or []:
        print(warning, file=sys.stderr)
    return 0


# --- events ---------------------------------------------------------------------------------------


def events(args: Any, client: ApiClient) -> int:
    from datetime import datetime

    query = {"since": args.since, "until": args.until, "filters": parse_filters(args.filter) or None}
    response = client.request("GET", "/events", query)
    for line in response.iter_lines():
        event = json.loads(line)
        if args.format:
            print(_render(args.format, event), flush=True)
            continue
        when = datetime.fromtimestamp(event["timeNano"] / 1e9).astimezone().isoformat()
        actor = event.get("Actor") or {}
        attrs = ", ".join(f"{k}={v}" for k, v in sorted((actor.get("Attributes") or {}).items()))
        print(
            f"{when} {event['Type']} {event['Action']} {actor.get('ID', '')}"
            + (f" ({attrs})" if attrs else ""),
            flush=True,
        )
    return 0


def _render(template: str, data: Any) -> str:
    from ..template import render

    return render(template, data)


# --- system prune --------------------------------------------------------------------------------


def prune(args: Any, client: ApiClient) -> int:
    """The docker CLI's `system prune`: containers, networks, (volumes), images, build cache, in that order,
    each section printed only when something went; one total."""
    from ...units import human_size
    from ..parser import confirm

    what = ["all stopped containers", "all networks not used by at least one container"]
    if args.volumes:
        what.append("all anonymous volumes not used by at least one container")
    what.append(
        "all images without at least one container associated to them" if args.all else "all dangling images"
    )
    what.append("all build cache" if args.all else "unused build cache")
    if not args.force and not confirm("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what)):
        return 0
    filters = parse_filters(args.filter)
    query = {"filters": filters or None}
    reclaimed = 0
    containers = client.post_json("/containers/prune", query=query)
    if containers.get("ContainersDeleted"):
        print("Deleted Containers:\n" + "".join(f"{c}\n" for c in containers["ContainersDeleted"]))
    reclaimed += int(containers.get("SpaceReclaimed") or 0)
    networks = client.post_json("/networks/prune", query=query)
    if networks.get("NetworksDeleted"):
        print("Deleted Networks:\n" + "".join(f"{n}\n" for n in networks["NetworksDeleted"]))
    if args.volumes:
        volumes = client.post_json("/volumes/prune", query=query)
        if volumes.get("VolumesDeleted"):
            print("Deleted Volumes:\n" + "".join(f"{v}\n" for v in volumes["VolumesDeleted"]))
        reclaimed += int(volumes.get("SpaceReclaimed") or 0)
    image_filters = dict(filters)
    if args.all:
        image_filters.setdefault("dangling", {})["false"] = True
    images = client.post_json("/images/prune", query={"filters": image_filters or None})
    if images.get("ImagesDeleted"):
        lines = [f"{k.lower()}: {v}\n" for record in images["ImagesDeleted"] for k, v in record.items()]
        print("Deleted Images:\n" + "".join(lines))
    reclaimed += int(images.get("SpaceReclaimed") or 0)
    cache = client.post_json("/build/prune", query={"all": args.all} if args.all else None)
    if cache.get("CachesDeleted"):
        print("Deleted build cache objects:\n" + "".join(f"{c}\n" for c in cache["CachesDeleted"]))
    reclaimed += int(cache.get("SpaceReclaimed") or 0)
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0
