"""volume create, ls, inspect, rm, prune: as the docker CLI prints them."""

from __future__ import annotations

import json
import sys

from ..client import ApiClient, ApiError
from ..parser import CommandParser, UsageError, confirm, parse_filters
from . import CommandSpec, for_each

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LS_FORMAT = "table {{.Driver}}\t{{.Name}}"
LS_HEADERS = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
    "Availability": "AVAILABILITY",
    "Group": "GROUP",
    "Status": "STATUS",
}
ALL_WARNING = "WARNING! This will remove all local volumes not used by at least one container."


def configure(spec: CommandSpec) -> CommandParser:
    name = spec.name
    if name == "volume create":
        p = CommandParser(name, "dockyard volume create [OPTIONS] [VOLUME]", "Create a volume")
        p.add_argument("-d", "--driver", metavar="string", default="local", help="Specify volume driver name")
        p.add_argument(
            "--label", action="append", default=[], metavar="list", help="Set metadata for a volume"
        )
        p.add_argument("--name", metavar="string", help="Specify volume name")
        p.add_argument(
            "-o", "--opt", action="append", default=[], metavar="map", help="Set driver specific options"
        )
        p.add_argument("volume", nargs="?", metavar="VOLUME")
    elif name == "volume ls":
        p = CommandParser(name, "dockyard volume ls [OPTIONS]", "List volumes")
        p.add_filter(help='Provide filter values (e.g. "dangling=true")')
        p.add_format()
        p.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    elif name == "volume inspect":
        p = CommandParser(
            name,
            "dockyard volume inspect [OPTIONS] VOLUME [VOLUME...]",
            "Display detailed information on one or more volumes",
        )
        p.add_format(short=True)
        p.add_argument("volumes", nargs="+", metavar="VOLUME")
    elif name == "volume rm":
        p = CommandParser(
            name, "dockyard volume rm [OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes"
        )
        p.add_argument("-f", "--force", action="store_true", help="Force the removal of one or more volumes")
        p.add_argument("volumes", nargs="+", metavar="VOLUME")
    else:  # volume prune
        p = CommandParser(name, "dockyard volume prune [OPTIONS]", "Remove unused local volumes")
        p.add_argument(
            "-a", "--all", action="store_true", help="Remove all unused volumes, not just anonymous ones"
        )
        p.add_filter(short=False, help='Provide filter values (e.g. "label=<label>")')
        p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    return p


def run(args: Any, client: ApiClient) -> int:
    handler = {
        "volume create": create,
        "volume ls": list_volumes,
        "volume inspect": inspect,
        "volume rm": remove,
        "volume prune": prune,
    }[args.command]
    return handler(args, client)


def _pairs(items: list[str]) -> dict[str, str]:
    """`key=value` options and labels (a bare key means an empty value), as the docker CLI reads them."""
    return dict((item.split("=", 1) + [""])[:2] for item in items)


def create(args: Any, client: ApiClient) -> int:
    if args.name and args.volume:
        print(
            "conflicting options: cannot specify a volume-name through both --name and as a positional arg",
            file=sys.stderr,
        )
        return 1
    body = {
        "Driver": args.driver,
        "DriverOpts": _pairs(args.opt),
        "Labels": _pairs(args.label),
        "Name": args.name or args.volume or "",
    }
    volume = client.post_json("/volumes/create", body)
    print(volume["Name"])
    return 0


def _row(v: dict[str, Any]) -> dict[str, Any]:
    labels = v.get("Labels") or {}
    return {
        "Name": v["Name"],
        "Driver": v["Driver"],
        "Scope": v.get("Scope", "local"),
        "Mountpoint": v.get("Mountpoint", ""),
        "Labels": ",".join(f"{k}={val}" for k, val in labels.items()),
        "Links": "N/A",  # the daemon reports usage only for `system df`
        "Size": "N/A",
        "Availability": "N/A",
        "Group": "N/A",
        "Status": "N/A",
    }


def list_volumes(args: Any, client: ApiClient) -> int:
    from .manage import format_rows

    filters = parse_filters(args.filter)
    volumes = client.get_json("/volumes", {"filters": filters or None}).get("Volumes") or []
    volumes.sort(key=lambda v: v["Name"])
    if args.quiet:
        for v in volumes:
            print(v["Name"])
        return 0
    fmt = args.format or LS_FORMAT
    rows = [_row(v) for v in volumes]
    if fmt == "json":
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return 0
    text = format_rows(fmt, rows, LS_HEADERS)
    if text or fmt.startswith("table"):
        print(text)
    return 0


def inspect(args: Any, client: ApiClient) -> int:
    found, status = [], 0
    for name in args.volumes:
        try:
            found.append(client.get_json(f"/volumes/{name}"))
        except ApiError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            status = 1
    from ..template import print_inspected

    print_inspected(found, args.format)
    return status


def remove(args: Any, client: ApiClient) -> int:
    return for_each(
        args.volumes, lambda name: client.request("DELETE", f"/volumes/{name}", {"force": args.force or None})
    )


def prune(args: Any, client: ApiClient) -> int:
    from ...units import human_size

    filters = parse_filters(args.filter)
    if args.all:
        # the flag is API 1.42's (before it, prune takes every unused volume anyway); the daemon speaks 1.41
        version = client.get_json("/version").get("ApiVersion", "1.41")
        if tuple(int(p) for p in version.split(".")) < (1, 42):
            print(
                f'"--all" requires API version 1.42, but the Dockyard daemon API version is {version}',
                file=sys.stderr,
            )
            return 1
        if "all" in filters:
            raise UsageError("conflicting options: cannot specify both --all and --filter all=1")
        filters["all"] = {"true": True}
    if not args.force and not confirm(ALL_WARNING):
        return 0
    result = client.post_json("/volumes/prune", query={"filters": filters or None})
    deleted = result.get("VolumesDeleted") or []
    if deleted:
        print("Deleted Volumes:")
        for name in deleted:
            print(name)
        print()
    print(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}")
    return 0
