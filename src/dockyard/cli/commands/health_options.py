"""`run`/`create`'s healthcheck flags, as the docker CLI parses and checks them; sent in Config.Healthcheck
(zero fields left out, as its JSON does): `--health-cmd X` is `{"Test": ["CMD-SHELL", "X"]}`,
`--no-healthcheck` is `{"Test": ["NONE"]}`."""

from __future__ import annotations

from ..parser import CommandParser, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DURATIONS = (
    ("health_interval", "Interval"),
    ("health_timeout", "Timeout"),
    ("health_start_period", "StartPeriod"),
)


def add_options(p: CommandParser) -> None:
    add = p.add_argument
    add("--health-cmd", metavar="string", help="Command to run to check health")
    add(
        "--health-interval",
        metavar="duration",
        help="Time between running the check (ms|s|m|h) (default 0s)",
    )
    add("--health-retries", metavar="int", help="Consecutive failures needed to report unhealthy")
    add(
        "--health-start-period",
        metavar="duration",
        help="Start period for the container to initialize before starting health-retries countdown "
        "(ms|s|m|h) (default 0s)",
    )
    add(
        "--health-timeout",
        metavar="duration",
        help="Maximum time to allow one check to run (ms|s|m|h) (default 0s)",
    )
    add("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")


def _duration(p: CommandParser, dest: str, value: str | None) -> int:
    """pflag's DurationVar: Go's time.ParseDuration, in ns."""
    if value is None:
        return 0
    from ...build.dockerfile import parse_go_duration
    from .run_options import _bad

    try:
        return parse_go_duration(value)
    except ValueError as e:
        raise _bad(p, dest, value, str(e)) from None


def apply(p: CommandParser, args: Any, body: dict[str, Any]) -> None:
    """The docker CLI's parse: a flag's bad value first, then its checks, in its order."""
    from .run_options import _int

    durations = {key: _duration(p, dest, getattr(args, dest)) for dest, key in DURATIONS}
    retries = _int(p, "health_retries", args.health_retries) if args.health_retries is not None else 0
    command = args.health_cmd or ""
    wanted = bool(command) or retries != 0 or any(durations.values())
    if args.no_healthcheck:
        if wanted:
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        body["Healthcheck"] = {"Test": ["NONE"]}
        return
    if not wanted:
        return
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout")):
        if durations[key] < 0:
            raise UsageError(f"--health-{flag} cannot be negative")
    if retries < 0:
        raise UsageError("--health-retries cannot be negative")
    if durations["StartPeriod"] < 0:
        raise UsageError("--health-start-period cannot be negative")
    check: dict[str, Any] = {"Test": ["CMD-SHELL", command]} if command else {}
    check.update({key: value for key, value in durations.items() if value})
    if retries:
        check["Retries"] = retries
    body["Healthcheck"] = check
