"""argparse, but with Docker's help layout and Docker's error wording and exit status."""

from __future__ import annotations

import argparse
import sys

# typing costs ~4 ms to import at CLI start-up; annotations here are never evaluated.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

# Docker's CLI exits 125 when its own flags or arguments are wrong (as opposed to the container's code).
USAGE_EXIT = 125


class UsageError(Exception):
    pass


def fixed_width_formatter(prog: str) -> argparse.HelpFormatter:
    # argparse builds a formatter for every add_argument; left to itself it imports shutil (~5 ms) to
    # ask the terminal's width. Our help text is laid out by format_help below, not by this.
    return argparse.HelpFormatter(prog, width=100)


class CommandParser(argparse.ArgumentParser):
    """A parser for one command: `Usage:  dockyard NAME [OPTIONS] ...`, then Options in Docker's style."""

    def __init__(self, command: str, usage: str, description: str, **kwargs) -> None:
        super().__init__(
            prog=f"dockyard {command}".strip(),
            usage=usage,
            description=description,
            add_help=False,
            formatter_class=fixed_width_formatter,
            **kwargs,
        )
        self.command = command
        self.add_argument("--help", action="help", help="Print usage")

    # The flags many commands share, worded once.

    def add_format(self, short: bool = False) -> None:
        flags = ("-f", "--format") if short else ("--format",)
        self.add_argument(*flags, metavar="string", help="Format output using a custom template")

    def add_filter(
        self, short: bool = True, help: str = "Filter output based on conditions provided"
    ) -> None:
        flags = ("-f", "--filter") if short else ("--filter",)
        self.add_argument(*flags, metavar="filter", action="append", default=[], help=help)

    def format_help(self) -> str:
        lines = [f"Usage:  {self.usage}", "", self.description or "", ""]
        aliases = getattr(self, "aliases", None)
        if aliases:
            lines += ["Aliases:", "  " + ", ".join(aliases), ""]
        rows = []
        for action in self._actions:
            if not action.option_strings:
                continue
            short = [o for o in action.option_strings if not o.startswith("--")]
            long = [o for o in action.option_strings if o.startswith("--")]
            flag = (short[0] + ", " if short else "    ") + (long[0] if long else "")
            if action.nargs != 0:
                flag += f" {action.metavar or 'string'}"
            text = action.help or ""
            if action.default not in (None, False, [], argparse.SUPPRESS) and "(default" not in text:
                text += f" (default {action.default!r})".replace("'", '"')
            rows.append((flag, text))
        if rows:
            width = max(len(f) for f, _ in rows) + 3
            lines.append("Options:")
            lines += [f"  {flag.ljust(width)}{text}".rstrip() for flag, text in rows]
            lines.append("")
        epilog = self.epilog
        if epilog:
            lines += [epilog, ""]
        return "\n".join(lines)

    def error(self, message: str) -> NoReturn:
        raise UsageError(_docker_wording(message) + f"\nSee '{self.prog} --help'.")


def _docker_wording(message: str) -> str:
    """argparse's phrases, reworded the way Docker's cobra-based CLI says them."""
    if message.startswith("unrecognized arguments:"):
        extra = message.split(":", 1)[1].split()
        flags = [e for e in extra if e.startswith("-")]
        if flags:
            return (
                f"unknown flag: {flags[0]}"
                if flags[0].startswith("--")
                else f"unknown shorthand flag: '{flags[0][1:2]}' in {flags[0]}"
            )
        return f"accepts no arguments, received {len(extra)}: {' '.join(extra)}"
    if "expected one argument" in message:
        flag = message.split(":")[0].split("/")[-1].replace("argument ", "").strip()
        return f"flag needs an argument: {flag}"
    if message.startswith("the following arguments are required"):
        return f"requires at least 1 argument: {message.split(':', 1)[1].strip()}"
    return message


def fail_usage(error: UsageError) -> int:
    print(str(error), file=sys.stderr)
    return USAGE_EXIT


def parse_filters(items: list[str]) -> dict[str, dict[str, bool]]:
    """`--filter key=value` flags as the API takes them: {"key": {"value": true}}, as the docker CLI sends."""
    filters: dict[str, dict[str, bool]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {item}")
        filters.setdefault(key, {})[value] = True
    return filters


def confirm(warning: str) -> bool:
    """The docker CLI's prompt before a prune: the warning, then y/N read from stdin."""
    print(warning + "\nAre you sure you want to continue? [y/N] ", end="", flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")
