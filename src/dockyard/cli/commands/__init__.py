"""The table of commands. Each module is imported only when its command runs, to keep start-up fast."""

from __future__ import annotations


class CommandSpec:
    """One command: its module (dockyard.cli.commands.<module>, with configure(spec) and run(args, client)).

    A plain class rather than a dataclass: importing dataclasses costs the CLI ~12 ms at start-up.
    """

    __slots__ = ("name", "module", "summary", "group", "aliases")

    def __init__(
        self, name: str, module: str, summary: str, group: str = "Commands", aliases: tuple[str, ...] = ()
    ) -> None:
        self.name, self.module, self.summary, self.group, self.aliases = name, module, summary, group, aliases


COMMANDS: list[CommandSpec] = [
    CommandSpec("info", "system", "Display system-wide information"),
    CommandSpec("version", "system", "Show the Dockyard version information"),
    CommandSpec("events", "system", "Get real time events from the server"),
]


def find(name: str) -> CommandSpec | None:
    for spec in COMMANDS:
        if name == spec.name or name in spec.aliases:
            return spec
    return None
