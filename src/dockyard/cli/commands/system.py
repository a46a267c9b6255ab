"""version, info, events."""

from __future__ import annotations

import json
import os
import sys

from ... import API_VERSION, __version__
from ...units import bytes_size
from ..client import ApiClient, DaemonUnavailable
from ..parser import CommandParser, parse_filters
from . import CommandSpec

# typing and datetime cost milliseconds at CLI start-up; they are imported only where needed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def configure(spec: CommandSpec) -> CommandParser:
    if spec.name == "version":
        p = CommandParser("version", "dockyard version [OPTIONS]", "Show the Dockyard version information")
        p.add_format(short=True)
    elif spec.name == "info":
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
    return {"version": version, "info": info, "events": events}[args.command](args, client)


# --- version --------------------------------------------------------------------------------------


def _client_version() -> dict[str, Any]:
    return {
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "PythonVersion": sys.version.split()[0],
        "Os": "linux",
        "Arch": ARCH.get(os.uname().machine, os.uname().machine),
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
