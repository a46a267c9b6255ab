"""Build: dockyard's classic builder against docker's (DOCKER_BUILDKIT=0) on the same machine.

    sudo .venv/bin/python bench/build.py [--runs 5]

Each engine is started by this script on its own socket, data root and default bridge (see
bench/common.py) and gets busybox from Debian's docker-registry on 127.0.0.1. The Dockerfile has
10 steps (FROM, ENV, WORKDIR, two COPYs, two RUNs, LABEL, EXPOSE, CMD). Figures, each the median of
several runs, engines alternating:
- a cold build: `build --no-cache` (the base image is present; every step runs and commits);
- an unchanged rebuild: every step from the cache.
The time is the CLI's, start to exit, context upload included. RUN steps get each engine's default
bridge network, as a plain `build` does.

The result replaces the "Build" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import bench_env, busybox_engines
from pull import Engine, log
from timing import write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Build"
DOCKERFILE = """\
FROM busybox
ENV APP=/srv/app MODE=bench
WORKDIR /srv/app
COPY conf/ ./conf/
RUN for i in $(seq 1 50); do echo line $i >> generated.txt; done
COPY page.html ./
RUN rm -f conf/unused && wc -c page.html > size.txt
LABEL org.example.bench=build
EXPOSE 8080
CMD ["cat", "size.txt"]
"""


@dataclass
class Results:
    engine: str
    version: str
    cold: list[float] = field(default_factory=list)
    cached: list[float] = field(default_factory=list)


def make_context(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "conf").mkdir(exist_ok=True)
    for i in range(20):
        (root / "conf" / f"file{i}.conf").write_text(f"key{i}=value{i}\n" * 20)
    (root / "conf" / "unused").write_text("x\n")
    (root / "page.html").write_text("<h1>bench</h1>\n" * 100)
    return root


def build_argv(engine: Engine, context: Path, no_cache: bool) -> list[str]:
    argv = [*engine.cli(), "build", "-q", "-t", "bench/built"]
    if no_cache:
        argv.append("--no-cache")
    return [*argv, str(context)]


def timed_build(engine: Engine, context: Path, no_cache: bool) -> float:
    env = {**bench_env(engine), "DOCKER_BUILDKIT": "0"}
    start = time.perf_counter()
    done = subprocess.run(
        build_argv(engine, context, no_cache), env=env, capture_output=True, text=True, timeout=600
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{engine.name} build failed: {done.stderr.strip()}")
    return elapsed


def run_benchmark(runs: int) -> tuple[list[Results], float]:
    begun = time.monotonic()
    with busybox_engines("dockyard-bench-build-") as (tmp, engines):
        context = make_context(tmp / "context")
        results = {e.name: Results(e.name, e.version) for e in engines}
        for i in range(runs + 1):  # the first round is a warm-up
            for engine in engines[i % len(engines) :] + engines[: i % len(engines)]:
                cold = timed_build(engine, context, no_cache=True)
                cached = timed_build(engine, context, no_cache=False)
                if i:
                    results[engine.name].cold.append(cold)
                    results[engine.name].cached.append(cached)
            log(
                f"round {i}: "
                + ", ".join(f"{r.engine} {r.cold[-1:]}/{r.cached[-1:]}" for r in results.values())
            )
        return list(results.values()), time.monotonic() - begun


def render(results: list[Results], elapsed: float, runs: int) -> str:
    by = {r.engine: r for r in results}
    lines = [
        f"## {SECTION}",
        "",
        f"`bench/build.py`, {runs} runs each (medians), {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{elapsed:.0f} s in all. A 10-step Dockerfile (FROM busybox, ENV, WORKDIR, COPY of 20 files, RUN, "
        "COPY, RUN, LABEL, EXPOSE, CMD) built with the classic builder (`DOCKER_BUILDKIT=0` for docker); "
        "CLI start to exit, context upload included. Each engine on its default bridge (dockerd with its "
        "docker0 and iptables), so the RUN steps' containers get a network on both.",
        "",
        "| engine | cold build (`--no-cache`) | unchanged rebuild (all cached) |",
        "| --- | --- | --- |",
    ]
    for r in results:
        cold, cached = statistics.median(r.cold), statistics.median(r.cached)
        lines.append(f"| {r.engine} {r.version} | {cold:.2f} s | {cached * 1000:.0f} ms |")
    if "docker" in by and "dockyard" in by:
        d, o = by["dockyard"], by["docker"]
        cold_ratio = statistics.median(d.cold) / statistics.median(o.cold)
        cached_ratio = statistics.median(d.cached) / statistics.median(o.cached)
        lines += [
            "",
            f"Ratios dockyard/docker: cold {cold_ratio:.2f}, rebuild {cached_ratio:.2f} "
            "(below 1: dockyard faster).",
        ]
    lines += [
        "",
        "Note (not profiled further): both builders create and remove a container for each step but COPY; "
        "a RUN costs dockyard one shim fork from its fork-server, a network namespace and veth on its "
        "bridge, and an overlay diff, dockerd a containerd task through runc and a sandbox on docker0. The "
        f"cached rebuild is mostly the CLI and the context upload, on both. {runs} runs on a "
        f"{os.cpu_count()}-CPU machine shared with other work: expect some noise.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    results, elapsed = run_benchmark(args.runs)
    write_section(args.output, SECTION, render(results, elapsed, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
