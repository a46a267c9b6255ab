"""run (detached or attached), create, start, stop, rm, ps, logs, wait."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from ..client import ApiClient, ApiError
from ..parser import CommandParser, parse_filters
from ..tables import ago
from . import CommandSpec, for_each, run_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _create_options(p: CommandParser) -> None:
    p.add_argument("--name", metavar="string", help="Assign a name to the container")
    p.add_argument(
        "-e", "--env", action="append", default=[], metavar="list", help="Set environment variables"
    )
    p.add_argument("--entrypoint", metavar="string", help="Overwrite the default ENTRYPOINT of the image")
    p.add_argument("-h", "--hostname", metavar="string", help="Container host name")
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument("-l", "--label", action="append", default=[], metavar="list", help="Set meta data")
    p.add_argument(
        "-u", "--user", metavar="string", help="Username or UID (format: <name|uid>[:<group|gid>])"
    )
    p.add_argument("-w", "--workdir", metavar="string", help="Working directory inside the container")
    p.add_argument("--rm", action="store_true", help="Automatically remove the container when it exits")
    run_options.add_options(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND")


def configure(spec: CommandSpec) -> CommandParser:
    name = spec.name
    if name == "run":
        p = run_options.RunParser(
            name, "dockyard run [OPTIONS] IMAGE [COMMAND] [ARG...]", "Run a command in a new container"
        )
        p.add_argument(
            "-d", "--detach", action="store_true", help="Run container in background and print container ID"
        )
        _create_options(p)
    elif name == "create":
        p = run_options.RunParser(
            name, "dockyard create [OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container"
        )
        _create_options(p)
    elif name == "start":
        p = CommandParser(
            name, "dockyard start [OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers"
        )
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
    elif name == "stop":
        p = CommandParser(
            name, "dockyard stop [OPTIONS] CONTAINER [CONTAINER...]", "Stop one or more running containers"
        )
        p.add_argument(
            "-t", "--time", type=int, metavar="int", help="Seconds to wait for stop before killing it"
        )
        p.add_argument("-a", "--all", action="store_true", help="Stop every running container")
        p.add_argument("containers", nargs="*", metavar="CONTAINER")
    elif name == "rm":
        p = CommandParser(
            name, "dockyard rm [OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers"
        )
        p.add_argument("-f", "--force", action="store_true", help="Force the removal of a running container")
        p.add_argument("-l", "--link", action="store_true", help="Remove the specified link")
        p.add_argument("-v", "--volumes", action="store_true", help="Remove anonymous volumes")
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
    elif name == "ps":
        p = CommandParser(name, "dockyard ps [OPTIONS]", "List containers")
        p.add_argument(
            "-a", "--all", action="store_true", help="Show all containers (default shows just running)"
        )
        p.add_filter()
        p.add_format()
        p.add_argument(
            "-n",
            "--last",
            type=int,
            default=-1,
            metavar="int",
            help="Show n last created containers (includes all states)",
        )
        p.add_argument(
            "-l",
            "--latest",
            action="store_true",
            help="Show the latest created container (includes all states)",
        )
        p.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
        p.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
        p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    elif name == "logs":
        p = CommandParser(name, "dockyard logs [OPTIONS] CONTAINER", "Fetch the logs of a container")
        p.add_argument("-f", "--follow", action="store_true", help="Follow log output")
        p.add_argument("--since", metavar="string", help="Show logs since timestamp")
        p.add_argument("--until", metavar="string", help="Show logs before a timestamp")
        p.add_argument(
            "-n", "--tail", default="all", metavar="string", help="Number of lines to show from the end"
        )
        p.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
        p.add_argument("container", metavar="CONTAINER")
    else:  # wait
        p = CommandParser(
            name,
            "dockyard wait CONTAINER [CONTAINER...]",
            "Block until one or more containers stop, then print their exit codes",
        )
        p.add_argument("containers", nargs="+", metavar="CONTAINER")
    return p


def run(args: Any, client: ApiClient) -> int:
    handler = {
        "run": run_container,
        "create": create,
        "start": start,
        "stop": stop,
        "rm": remove,
        "ps": ps,
        "logs": logs,
        "wait": wait,
    }[args.command]
    return handler(args, client)


def _body(args: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Image": args.image,
        "Env": list(args.env),
        "Tty": args.tty,
        "OpenStdin": args.interactive,
        "Labels": dict((label.split("=", 1) + [""])[:2] for label in args.label),
        "HostConfig": {"AutoRemove": bool(args.rm)},
    }
    if args.tty and os.isatty(1):
        size = os.get_terminal_size(1)
        body["HostConfig"]["ConsoleSize"] = [size.lines, size.columns]
    if not getattr(args, "detach", True):
        body.update(
            AttachStdin=args.interactive,
            AttachStdout=True,
            AttachStderr=True,
            StdinOnce=args.interactive,
        )
    if args.cmd:
        body["Cmd"] = list(args.cmd)
    if args.entrypoint is not None:
        body["Entrypoint"] = [args.entrypoint] if args.entrypoint else [""]
    if args.hostname:
        body["Hostname"] = args.hostname
    if args.user:
        body["User"] = args.user
    if args.workdir:
        body["WorkingDir"] = args.workdir
    run_options.apply(args._parser, args, body)
    return body


def _pull(image: str, client: ApiClient) -> int:
    from .images import pull

    ns = argparse.Namespace(image=image, all_tags=False, quiet=False, platform=None)
    out = sys.stdout
    sys.stdout = sys.stderr  # Docker prints the pull's progress on stderr for run/create
    try:
        return pull(ns, client)
    finally:
        sys.stdout = out


def _create(args: Any, client: ApiClient) -> str | None:
    body = _body(args)
    run_options.check_cidfile(args.cidfile)
    query = {"name": args.name, "platform": args.platform}
    if args.pull == "always" and _pull(args.image, client) != 0:
        return None
    try:
        created = client.post_json("/containers/create", body, query)
    except ApiError as e:
        if e.status != 404 or not e.message.startswith("No such image") or args.pull == "never":
            raise
        shown = args.image
        if "@" not in shown and ":" not in shown.rsplit("/", 1)[-1]:
            shown += ":latest"  # as the docker CLI names it: the tag it will pull
        print(f"Unable to find image '{shown}' locally", file=sys.stderr)
        if _pull(args.image, client) != 0:
            return None
        created = client.post_json("/containers/create", body, query)
    for warning in created.get("Warnings") or []:
        print(f"WARNING: {warning}", file=sys.stderr)
    run_options.write_cidfile(args.cidfile, created["Id"])
    return created["Id"]


def _start_failed(e: ApiError) -> int:
    print(f"Error response from daemon: {e.message}", file=sys.stderr)
    return 127 if "executable file not found" in e.message else 126 if e.status == 400 else 125


def run_container(args: Any, client: ApiClient) -> int:
    try:
        return _run_container(args, client)
    except ApiError as e:  # the daemon refused: docker run exits 125 where docker create exits 1
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 125


def _run_container(args: Any, client: ApiClient) -> int:
    if not args.detach:
        return _run_attached(args, client)
    container_id = _create(args, client)
    if container_id is None:
        return 125
    try:
        client.request("POST", f"/containers/{container_id}/start").read()
    except ApiError as e:
        return _start_failed(e)
    print(container_id)
    return 0


def _run_attached(args: Any, client: ApiClient) -> int:
    """As the docker CLI: create, attach (connection hijack), wait (next-exit), start, copy the streams,
    then the wait's status is the exit code."""
    from .attach import AttachedStreams

    container_id = _create(args, client)
    if container_id is None:
        return 125
    streams = AttachedStreams(
        client.host, container_id, stdin=args.interactive, tty=args.tty, detach_keys=args.detach_keys
    )
    try:
        streams.connect()
    except ApiError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 125
    waiter = ApiClient(client.host)
    condition = "removed" if args.rm else "next-exit"
    wait_response = waiter.request("POST", f"/containers/{container_id}/wait", {"condition": condition})
    try:
        client.request("POST", f"/containers/{container_id}/start").read()
    except ApiError as e:
        streams.close()
        if args.rm:
            with contextlib.suppress(ApiError):
                client.request("DELETE", f"/containers/{container_id}", {"force": True}).read()
        return _start_failed(e)
    try:
        streams.run(resize=lambda h, w: _resize(client, container_id, h, w))
    finally:
        streams.close()
    if streams.detached:  # ctrl-p ctrl-q: the container runs on, as after docker's detach
        waiter.close()
        return 0
    status = read_wait(waiter, wait_response)
    if status is None:
        return 125
    if (status.get("Error") or {}).get("Message"):
        print(f"Error response from daemon: {status['Error']['Message']}", file=sys.stderr)
        return 125
    return int(status.get("StatusCode", 125))


def read_wait(waiter: Any, wait_response: Any) -> dict[str, Any] | None:
    """The body of the `/wait` that an attached run or attach opened before the start (None when it is not
    JSON); the waiter's connection is closed either way."""
    try:
        return json.loads(wait_response.read() or b"{}")
    except ValueError:
        return None
    finally:
        waiter.close()


def _resize(client: ApiClient, container_id: str, height: int, width: int) -> None:
    with contextlib.suppress(ApiError, OSError):
        client.request("POST", f"/containers/{container_id}/resize", {"h": height, "w": width}).read()


def create(args: Any, client: ApiClient) -> int:
    container_id = _create(args, client)
    if container_id is None:
        return 125
    print(container_id)
    return 0


def start(args: Any, client: ApiClient) -> int:
    return for_each(args.containers, lambda n: client.request("POST", f"/containers/{n}/start").read())


def stop(args: Any, client: ApiClient) -> int:
    names = list(args.containers)
    if args.all:
        names += [c["Id"][:12] for c in client.get_json("/containers/json")]
    if not names:
        print('"dockyard stop" requires at least 1 argument.', file=sys.stderr)
        return 1
    query = {"t": args.time} if args.time is not None else None
    return for_each(names, lambda n: client.request("POST", f"/containers/{n}/stop", query).read())


def remove(args: Any, client: ApiClient) -> int:
    query = {"force": args.force, "v": args.volumes, "link": args.link}
    return for_each(args.containers, lambda n: client.request("DELETE", f"/containers/{n}", query).read())


def wait(args: Any, client: ApiClient) -> int:
    failed = False
    for name in args.containers:
        try:
            result = client.post_json(f"/containers/{name}/wait")
        except ApiError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            failed = True
            continue
        print(result.get("StatusCode"))
    return 1 if failed else 0


PS_FORMAT = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
PS_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Label": "LABEL",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}


def _ps_image(c: dict[str, Any], trunc: bool) -> str:
    image = c.get("Image") or ""
    if not image:
        return "<no image>"
    if trunc:
        if image.startswith("sha256:") or image == (c.get("ImageID") or "").split(":", 1)[-1]:
            return image.split(":", 1)[-1][:12]
        if "@" in image:  # the digest is dropped, a tag kept
            return image.split("@", 1)[0]
    return image


def _mount_name(m: dict[str, Any], trunc: bool) -> str:
    name = m.get("Name") or m.get("Source", "")
    return name[:14] + "…" if trunc and len(name) > 15 else name  # the docker CLI's Ellipsis(name, 15)


def ps_row(c: dict[str, Any], trunc: bool) -> dict[str, Any]:
    """One container as the docker CLI's container formatter shows it (the --format placeholders)."""
    import time

    from ...units import human_size
    from .network import display_ports

    command = c.get("Command") or ""
    if trunc and len(command) > 20:
        command = command[:19] + "…"
    names = [n[1:] if n.startswith("/") else n for n in c.get("Names") or []]
    if trunc:  # a link's name (other/alias) is left out
        names = next(([n] for n in names if "/" not in n), names)
    labels = c.get("Labels") or {}
    size = human_size(c.get("SizeRw") or 0, 3)
    if (c.get("SizeRootFs") or 0) > 0:
        size = f"{size} (virtual {human_size(c['SizeRootFs'], 3)})"
    created = int(c.get("Created") or 0)
    return {
        "ID": c["Id"][:12] if trunc else c["Id"],
        "Image": _ps_image(c, trunc),
        "Command": json.dumps(command, ensure_ascii=False),
        "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(created)),
        "RunningFor": ago(created),
        "Ports": display_ports(c.get("Ports") or []),
        "State": c.get("State", ""),
        "Status": c.get("Status", ""),
        "Size": size,
        "Names": ",".join(names),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "Mounts": ",".join(_mount_name(m, trunc) for m in c.get("Mounts") or []),
        "Networks": ",".join(sorted((c.get("NetworkSettings") or {}).get("Networks") or {})),
        "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")),
        "_labels": labels,
    }


def ps(args: Any, client: ApiClient) -> int:
    import re

    from .manage import format_rows

    filters = parse_filters(args.filter)
    fmt = args.format or PS_FORMAT
    if args.size and not args.format:
        fmt += "\t{{.Size}}"
    if fmt == "json":
        fmt = "{{json .}}"
    # `{{.Label "key"}}` is a method call in Go's templates: given a field of its own here
    label_keys: list[str] = []

    def label_field(m: re.Match[str]) -> str:
        label_keys.append(m.group(1))
        return f".Label_{len(label_keys) - 1}"

    fmt = re.sub(r'\.Label\s+"([^"]*)"', label_field, fmt)
    last = 1 if args.latest else args.last
    query = {
        "all": args.all,
        "filters": filters or None,
        "limit": last if last > 0 else None,
        "size": args.size or ".Size" in fmt,
    }
    containers = client.get_json("/containers/json", query)
    if args.quiet:
        for c in containers:
            print(c["Id"] if args.no_trunc else c["Id"][:12])
        return 0
    rows = []
    headers = dict(PS_HEADERS)
    for c in containers:
        row = ps_row(c, not args.no_trunc)
        labels = row.pop("_labels")
        for i, key in enumerate(label_keys):
            row[f"Label_{i}"] = labels.get(key, "")
            # as the docker CLI: the key's last dotted part, its - and _ as spaces
            headers[f"Label_{i}"] = key.split(".")[-1].replace("-", " ").replace("_", " ")
        rows.append(row)
    if fmt == "{{json .}}":
        for row in rows:
            shown = {k: row[k] for k in sorted(row) if not k.startswith("Label_")}
            print(json.dumps(shown, ensure_ascii=False))
        return 0
    text = format_rows(fmt, rows, headers)
    if rows or fmt.startswith("table"):  # a row that renders empty is still an (empty) line
        print(text)
    return 0


def logs(args: Any, client: ApiClient) -> int:
    info = client.get_json(f"/containers/{args.container}/json")
    tty = bool((info.get("Config") or {}).get("Tty"))
    query = {
        "stdout": True,
        "stderr": True,
        "follow": args.follow,
        "tail": args.tail,
        "timestamps": args.timestamps,
        "since": args.since,
        "until": args.until,
    }
    response = client.request("GET", f"/containers/{args.container}/logs", query)
    from .attach import StreamDemux

    out = sys.stdout.buffer
    demux = StreamDemux(out, sys.stderr.buffer)
    for chunk in response.iter_chunks():
        if tty:
            out.write(chunk)
            out.flush()
        else:
            demux.feed(chunk)
    return 0
