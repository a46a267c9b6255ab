"""exec: run a command in a running container, as the docker CLI does it: inspect the container, create
the exec, start it (hijacked, or detached), then one exec inspect for the exit code."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from ..client import ApiClient, ApiError, _error_message
from ..parser import CommandParser, UsageError
from . import CommandSpec
from .attach import AttachedStreams

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def configure(spec: CommandSpec) -> CommandParser:
    p = CommandParser(
        spec.name,
        f"dockyard {spec.name} [OPTIONS] CONTAINER COMMAND [ARG...]",
        "Execute a command in a running container",
    )
    p.add_argument("-d", "--detach", action="store_true", help="Detached mode: run command in the background")
    p.add_argument(
        "--detach-keys", metavar="string", help="Override the key sequence for detaching a container"
    )
    p.add_argument(
        "-e", "--env", action="append", default=[], metavar="list", help="Set environment variables"
    )
    p.add_argument(
        "--env-file",
        action="append",
        default=[],
        metavar="list",
        help="Read in a file of environment variables",
    )
    p.add_argument("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    p.add_argument("--privileged", action="store_true", help="Give extended privileges to the command")
    p.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    p.add_argument(
        "-u", "--user", metavar="string", help="Username or UID (format: <name|uid>[:<group|gid>])"
    )
    p.add_argument("-w", "--workdir", metavar="string", help="Working directory inside the container")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="COMMAND")
    return p


def _env_entry(value: str) -> str | None:
    """The docker CLI's rule: `KEY=value` as is; a bare `KEY` takes this environment's value, if any."""
    if "=" in value:
        if value.startswith("="):
            raise UsageError(f"invalid environment variable: {value}")
        return value
    found = os.environ.get(value)
    return value if found is None else f"{value}={found}"


def environment(env: list[str], env_files: list[str]) -> list[str]:
    """--env-file entries first (blank lines and # comments skipped), then -e, as the docker CLI."""
    out: list[str] = []
    for path in env_files:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise UsageError(f"open {path}: {e.strerror or e}") from None
        for line in lines:
            line = line.lstrip()
            if line and not line.startswith("#"):
                entry = _env_entry(line)
                if entry is not None:
                    out.append(entry)
    for value in env:
        entry = _env_entry(value)
        if entry is not None:
            out.append(entry)
    return out


def exec_body(args: Any) -> dict[str, Any]:
    """The exec create body, field for field what the docker CLI sends."""
    env = environment(args.env, args.env_file)
    return {
        "User": args.user or "",
        "Privileged": bool(args.privileged),
        "Tty": bool(args.tty),
        "AttachStdin": bool(args.interactive and not args.detach),
        "AttachStderr": not args.detach,
        "AttachStdout": not args.detach,
        "Detach": bool(args.detach),
        "DetachKeys": args.detach_keys or "",
        "Env": env or None,
        "WorkingDir": args.workdir or "",
        "Cmd": list(args.cmd),
        # API 1.42's field, which dockyardd takes at any version: the pty has its size before the command
        # runs (the resize after the start comes too late for a quick `stty size`)
        "ConsoleSize": _terminal_size() if args.tty else None,
    }


def _terminal_size() -> list[int] | None:
    if not os.isatty(1):
        return None
    size = os.get_terminal_size(1)
    return [size.lines, size.columns]


class ExecStreams(AttachedStreams):
    """The exec's hijacked stream: `POST /exec/{id}/start` with the upgrade headers, then as attach."""

    def connect(self) -> None:
        response = self.client.request(
            "POST",
            f"/exec/{self.container_id}/start",
            body={"Detach": False, "Tty": self.tty},
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            check=False,
        )
        if response.status != 101:
            if response.status >= 400:
                raise ApiError(response.status, _error_message(response))
            raise ApiError(response.status, f"unable to upgrade to tcp, received {response.status}")
        self.response = response


def run(args: Any, client: ApiClient) -> int:
    if not args.cmd:
        raise UsageError(
            f'"dockyard {args.command}" requires at least 2 arguments.\n'
            f"See 'dockyard {args.command} --help'.\n\n"
            f"Usage:  dockyard {args.command} [OPTIONS] CONTAINER COMMAND [ARG...]\n\n"
            "Execute a command in a running container"
        )
    if args.interactive and args.tty and not args.detach and not os.isatty(0):
        print("the input device is not a TTY", file=sys.stderr)
        return 1
    body = exec_body(args)
    client.get_json(f"/containers/{args.container}/json")  # the docker CLI's existence check
    exec_id = client.post_json(f"/containers/{args.container}/exec", body)["Id"]
    if args.detach:
        client.request("POST", f"/exec/{exec_id}/start", body={"Detach": True, "Tty": bool(args.tty)}).read()
        return 0
    streams = ExecStreams(
        client.host, exec_id, stdin=bool(args.interactive), tty=bool(args.tty), detach_keys=args.detach_keys
    )
    try:
        streams.connect()
        streams.run(resize=lambda h, w: _resize(client, exec_id, h, w))
    finally:
        streams.close()
    if streams.detached:  # the exec runs on
        return 0
    info = client.get_json(f"/exec/{exec_id}/json")
    return int(info.get("ExitCode") or 0)


def _resize(client: ApiClient, exec_id: str, height: int, width: int) -> None:
    with contextlib.suppress(ApiError, OSError):
        client.request("POST", f"/exec/{exec_id}/resize", {"h": height, "w": width}).read()
