"""Timing of whole commands: the median of several runs, and ratios against docker/podman when present."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Measurement:
    label: str
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def time_command(
    argv: list[str], runs: int = 7, env: dict[str, str] | None = None, warmup: int = 1, timeout: float = 120
) -> list[float]:
    """Wall-clock seconds of each run; a failing command is an error, not a fast result."""
    full_env = {**os.environ, **(env or {})}
    # As on a user's machine, the warm-up run leaves .pyc files behind; with this variable set (as some
    # sandboxes do) every timed run would compile the CLI's modules again.
    full_env.pop("PYTHONDONTWRITEBYTECODE", None)
    times = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        done = subprocess.run(argv, env=full_env, capture_output=True, timeout=timeout)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode(errors='replace').strip()}")
        if i >= warmup:
            times.append(elapsed)
    return times


def available(tool: str) -> bool:
    return shutil.which(tool) is not None


def find_section(text: str, title: str) -> tuple[int, int] | None:
    """The [start, end) character span of the `## title` section of a Markdown text: from its heading
    to the next `## ` heading (or the end)."""
    lines = text.splitlines(keepends=True)
    start = end = None
    pos = 0
    for line in lines:
        if start is None and line.rstrip("\n") == f"## {title}":
            start = pos
        elif start is not None and line.startswith("## "):
            end = pos
            break
        pos += len(line)
    if start is None:
        return None
    return start, len(text) if end is None else end


def replace_section(text: str, title: str, section: str) -> str:
    """`text` with its `## title` section replaced by `section` (which starts with that heading), or with
    `section` appended when there is none."""
    section = section.rstrip("\n") + "\n"
    span = find_section(text, title)
    if span is None:
        return text.rstrip("\n") + "\n\n" + section
    start, end = span
    rest = text[end:]
    return text[:start] + section + ("\n" + rest if rest else "")


def write_section(output: str | Path, title: str, section: str) -> None:
    """Replace the `## title` section of the Markdown file `output` (made when missing) with `section`,
    and print the section: every bench script ends so."""
    path = Path(output)
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_section(old, title, section))
    print(section)
