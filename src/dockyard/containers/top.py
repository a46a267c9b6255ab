"""`docker top`: the host's `ps` run with the user's options, keeping the rows of the container's processes.

As dockerd (daemon/top_unix.go): `ps ARGS -q PID,PID...` first (cheap), and `ps ARGS` alone when ps refuses
that combination; then the rows whose PID column names a process of the container's cgroup are kept, and a
thread row (PID `-`, from `ps m`) is kept when the process row above it was.
"""

from __future__ import annotations

import re
import subprocess

_FORBIDDEN = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")


class TopError(Exception):
    pass


def validate_ps_args(ps_args: str) -> None:
    """ps may not be told to rename the PID column (the rows could no longer be matched)."""
    for key, value in _FORBIDDEN.findall(ps_args):
        if key != "pid":
            raise TopError(f'specifying "{key}={value}" is not allowed')


def _fields(line: str) -> list[str]:
    # ASCII whitespace only, as dockerd's fieldsASCII: a command line may hold other spaces
    return [f for f in re.split(r"[ \t\n\v\f\r]+", line) if f]


def parse_ps_output(output: str, pids: set[int]) -> dict[str, list]:
    lines = output.split("\n")
    titles = _fields(lines[0])
    if "PID" not in titles:
        raise TopError("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    processes: list[list[str]] = []
    previous_kept = False
    for line in lines[1:]:
        if not line:
            continue
        fields = _fields(line)
        if len(fields) <= pid_index:
            continue
        if fields[pid_index] == "-":
            if previous_kept:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise TopError(f"Unexpected pid '{fields[pid_index]}'") from None
        previous_kept = pid in pids
        if previous_kept:
            processes.append(_row(fields, len(titles)))
    return {"Titles": titles, "Processes": processes}


def _row(fields: list[str], columns: int) -> list[str]:
    # the last column (the command) keeps its spaces
    return fields[: columns - 1] + [" ".join(fields[columns - 1 :])]


def top(pids: set[int], ps_args: str = "") -> dict[str, list]:
    ps_args = ps_args or "-ef"
    validate_ps_args(ps_args)
    args = ps_args.split(" ")
    pid_arg = "-q" + ",".join(str(p) for p in sorted(pids))
    done = subprocess.run(["ps", *args, pid_arg], capture_output=True, text=True, errors="replace")
    if done.returncode != 0:
        # some ps options (f, for one) cannot be combined with q: ask for every process instead
        done = subprocess.run(["ps", *args], capture_output=True, text=True, errors="replace")
        if done.returncode != 0:
            first = done.stderr.split("\n", 1)[0]
            raise TopError(f"ps: {first or f'exit status {done.returncode}'}")
    return parse_ps_output(done.stdout, pids)
