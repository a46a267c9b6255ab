"""What the security work costs a container's start: `run --rm` on this tree's daemon against the same
daemon at an earlier revision, side by side on one machine.

    sudo .venv/bin/python bench/security.py [--before 4ee73ce] [--runs 25]

The earlier revision is checked out in a temporary git worktree and its daemon started with that
worktree's `src` first on PYTHONPATH (the CLI is this tree's for both: it did not change). Each daemon has
its own bridge, subnet and data root and gets busybox from a local registry; runs alternate between them.
Figures: the median of `run --rm busybox true` and of `run --rm busybox sh -c 'exec 3<>/dev/null'`
(the device nodes are now made, not bound) and their ratio. The result replaces the "Security" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import bench_env, bip, free_subnet, prepare_image, testimages, timed
from pull import DockyardEngine, log, registry_tool, stop_engines
from timing import write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Security"
COMMANDS = {
    "run --rm busybox true": ["true"],
    "run --rm busybox sh -c 'exec 3<>/dev/null'": ["sh", "-c", "exec 3<>/dev/null"],
}


def _start(engine: DockyardEngine, pythonpath: str | None) -> None:
    saved = os.environ.get("PYTHONPATH")
    if pythonpath:
        os.environ["PYTHONPATH"] = pythonpath  # the daemon, its fork-server and shims inherit it
    try:
        engine.start()
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="4ee73ce", help="the revision to compare with")
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-security-"))
    worktree = tmp / "before"
    add = ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.before]
    subprocess.run(add, check=True, capture_output=True)
    reg = registry_tool.start_registry(tmp / "registry")
    engines: list[DockyardEngine] = []
    times: dict[tuple[str, str], list[float]] = {}
    try:
        testimages.push_image(reg.address, "bench/busybox", "latest", testimages.build_image("busybox"))
        first = free_subnet([])
        second = free_subnet([first])
        now = DockyardEngine(tmp / "now", ["--bip", bip(first)], bridge=f"dysecn{os.getpid() % 10000}")
        before = DockyardEngine(tmp / "then", ["--bip", bip(second)], bridge=f"dysecb{os.getpid() % 10000}")
        for engine, path in ((now, None), (before, str(worktree / "src"))):
            engines.append(engine)
            _start(engine, path)
            prepare_image(engine, reg.address)
        for label, command in COMMANDS.items():
            for engine in engines:  # a warm-up each
                timed([*engine.cli(), "run", "--rm", "busybox", *command], bench_env(engine))
            for _ in range(args.runs):
                for name, engine in (("now", now), ("before", before)):
                    elapsed = timed([*engine.cli(), "run", "--rm", "busybox", *command], bench_env(engine))
                    times.setdefault((label, name), []).append(elapsed)
    finally:
        stop_engines(engines)
        reg.stop()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)
        shutil.rmtree(tmp, ignore_errors=True)

    revision = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()  # fmt: skip
    load = os.getloadavg()[0]
    lines = [
        f"## {SECTION}",
        "",
        f"Measured by `bench/security.py`: this tree ({revision}) against {args.before}, the last revision"
        f" before the security work (issue 11), on {platform.machine()}, {os.cpu_count()} CPUs, kernel"
        f" {platform.release()}; each daemon on its own bridge, runs alternating, medians of {args.runs}"
        f" (load average {load:.1f} at the end).",
        "",
        "| figure | now | before | ratio |",
        "|---|---|---|---|",
    ]
    for label in COMMANDS:
        now_ms = statistics.median(times[(label, "now")]) * 1000
        before_ms = statistics.median(times[(label, "before")]) * 1000
        lines.append(f"| `{label}` | {now_ms:.0f} ms | {before_ms:.0f} ms | {now_ms / before_ms:.2f} |")
    lines.append("")
    for (label, name), runs in times.items():
        lines.append(f"- `{label}`, {name}: " + ", ".join(f"{t * 1000:.0f}" for t in runs) + " ms")
    write_section(args.output, SECTION, "\n".join(lines) + "\n")
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
