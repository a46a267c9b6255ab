"""Benchmarks of Dockyard against docker (and podman) where installed; writes docs/benchmarks.md.

    sudo .venv/bin/python bench/run.py [--runs 7] [--pull [--pull-runs 5] [--pull-pause 60]]

Starts its own dockyardd on a temporary socket and data root. Docker is measured only when a dockerd
already answers on /var/run/docker.sock; podman when the podman binary is installed.

With --pull it also runs bench/pull.py (pull from a local registry against its own dockerd; 15-30 min).
Other sections of the output file (pull, containers: bench/pull.py, bench/containers.py) are kept.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

from timing import Measurement, available, replace_section, time_command

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from harness import DOCKYARD, DaemonProcess, ping  # noqa: E402  (tests/integration/harness.py)

DOCKER_SOCKET = "/var/run/docker.sock"
CLI_SECTION = "CLI start-up (`version`, start to exit)"


def cli_startup(daemon: DaemonProcess, runs: int) -> list[Measurement]:
    """`version` start-to-exit: client start-up plus one round trip to the daemon."""
    results = [
        Measurement(
            "dockyard version → dockyardd", time_command([DOCKYARD, "-H", daemon.host, "version"], runs)
        )
    ]
    if available("docker"):
        results.append(
            Measurement(
                "docker version → dockyardd",
                time_command(["docker", "version"], runs, env={"DOCKER_HOST": daemon.host}),
            )
        )
        if ping(DOCKER_SOCKET):
            results.append(
                Measurement(
                    "docker version → dockerd",
                    time_command(["docker", "-H", f"unix://{DOCKER_SOCKET}", "version"], runs),
                )
            )
    if available("podman"):
        results.append(Measurement("podman version", time_command(["podman", "version"], runs)))
    return results


def render(sections: dict[str, list[Measurement]], runs: int) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `bench/run.py` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"Python {platform.python_version()}: the median of {runs} runs after one warm-up, one run of "
        "the script. Ratios are against the first row of each table (below 1.0: faster than Dockyard).",
        "",
    ]
    for title, measurements in sections.items():
        base = measurements[0].median
        lines += [f"## {title}", "", "| command | median | ratio |", "| --- | ---: | ---: |"]
        for m in measurements:
            lines.append(f"| {m.label} | {m.median * 1000:.1f} ms | {m.median / base:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--pull", action="store_true", help="also run bench/pull.py (15-30 min)")
    parser.add_argument("--pull-runs", type=int, default=5)
    parser.add_argument("--pull-pause", type=float, default=60)
    args = parser.parse_args()
    import pull  # bench/pull.py

    output = Path(args.output)
    text = output.read_text() if output.exists() else ""
    if args.pull:
        text = replace_section(
            text, pull.SECTION, pull.render(pull.run_benchmark(args.pull_runs, args.pull_pause))
        )
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        daemon = DaemonProcess(Path(tmp)).start()
        try:
            sections = {CLI_SECTION: cli_startup(daemon, args.runs)}
        finally:
            daemon.stop()
    # this script's part (the title, its introduction, its sections) replaces the old one; the sections
    # other scripts write (bench/pull.py, bench/containers.py) stay as they are
    head, _, ours = render(sections, args.runs).partition("\n## ")
    text = replace_section(text, CLI_SECTION, "## " + ours)
    first = text.find("\n## ")
    text = head.rstrip("\n") + "\n\n" + text[first + 1 :]
    output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
