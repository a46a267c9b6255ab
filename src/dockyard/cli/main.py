"""dockyard: the client. Global options, then one command, each sent to the daemon as API calls."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .. import __version__
from .client import ApiClient, ApiError, DaemonUnavailable
from .commands import COMMANDS, SUBCOMMANDS, find, group_help
from .parser import USAGE_EXIT, CommandParser, UsageError, fail_usage, fixed_width_formatter

DESCRIPTION = "A self-sufficient runtime for containers"


class GlobalParser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message}\nSee 'dockyard --help'.")


def global_parser() -> GlobalParser:
    p = GlobalParser(prog="dockyard", add_help=False, formatter_class=fixed_width_formatter)
    p.add_argument("-H", "--host", metavar="list", help="Daemon socket to connect to")
    p.add_argument(
        "-l",
        "--log-level",
        metavar="string",
        default="info",
        choices=("debug", "info", "warn", "error", "fatal"),
        help='Set the logging level ("debug"|"info"|"warn"|"error"|"fatal")',
    )
    p.add_argument("-D", "--debug", action="store_true", help="Enable debug mode")
    p.add_argument("-v", "--version", action="store_true", help="Print version information and quit")
    p.add_argument("-h", "--help", action="store_true", help="Print usage")
    p.add_argument("command", nargs="?")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main_help() -> str:
    lines = ["", "Usage:  dockyard [OPTIONS] COMMAND", "", DESCRIPTION, "", "Options:"]
    for action in global_parser()._actions:
        if action.option_strings:
            short, long = action.option_strings[0], action.option_strings[-1]
            flag = (f"{short}, " if short != long else "    ") + long
            if action.nargs != 0:
                flag += f" {action.metavar}"
            lines.append(f"  {flag:<24}{action.help}")
    groups: dict[str, list[str]] = {}
    for spec in COMMANDS:
        groups.setdefault(spec.group, []).append(f"  {spec.name:<11}{spec.summary}")
    for group, rows in groups.items():
        lines += ["", f"{group}:", *rows]
    lines += ["", "Run 'dockyard COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)


def run(argv: list[str]) -> int:
    try:
        opts = global_parser().parse_args(argv)
    except UsageError as e:
        return fail_usage(e)
    if opts.version:
        print(f"Dockyard version {__version__}")
        return 0
    if opts.help or not opts.command:
        print(main_help())
        return 0
    spec = find(opts.command)
    if spec is None:
        print(
            f"dockyard: '{opts.command}' is not a dockyard command.\nSee 'dockyard --help'", file=sys.stderr
        )
        return 1
    rest = opts.args
    if spec.name in SUBCOMMANDS:
        if not rest or rest[0] in ("--help", "-h"):
            print(group_help(spec.name))
            return 0
        sub = find(f"{spec.name} {rest[0]}", SUBCOMMANDS[spec.name])
        if sub is None:
            print(
                f"dockyard: '{spec.name} {rest[0]}' is not a dockyard command.\n"
                f"See 'dockyard {spec.name} --help'",
                file=sys.stderr,
            )
            return 1
        spec, rest = sub, rest[1:]
    module = importlib.import_module(f"dockyard.cli.commands.{spec.module}")
    parser = module.configure(spec)
    if spec.aliases:
        parser.aliases = [f"dockyard {spec.name}", *(f"dockyard {a}" for a in spec.aliases)]
    try:
        args = parser.parse_args(rest)
    except UsageError as e:
        return fail_usage(e)
    args.command = spec.name
    args.debug = opts.debug
    client = ApiClient(opts.host)
    try:
        return module.run(args, client)
    except DaemonUnavailable as e:
        print(str(e), file=sys.stderr)
        return 1
    except ApiError as e:
        print(f"Error response from daemon: {e.message}", file=sys.stderr)
        return 1
    except UsageError as e:  # an argument the command found wrong once it looked closer
        return fail_usage(e)
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


def main() -> None:
    try:
        code = run(sys.argv[1:])
    except BrokenPipeError:
        # Output piped into `head` and closed: leave quietly, as docker does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


__all__ = ["main", "run", "CommandParser", "USAGE_EXIT"]
