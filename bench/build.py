"""Build: dockyard's classic builder against docker's (DOCKER_BUILDKIT=0) on the same machine.

    sudo .venv/bin/python bench/build.py [--runs 5]

Each engine is started by this script on its own socket and data root (see bench/pull.py) and gets
busybox from Debian's docker-registry on 127.0.0.1. The Dockerfile has 10 steps (FROM, ENV, WORKDIR,
two COPYs, two RUNs, LABEL, EXPOSE, CMD). Figures, each the median of several runs, engines alternating:
- a cold build: `build --no-cache` (the base image is present; every step runs and commits);
- an unchanged rebuild: every step from the cache.
The time is the CLI's, start to exit, context upload included. docker's RUN steps use `--network none`
(its dockerd runs with `--bridge=none`).

The result replaces the "Build" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from containers import bench_env, prepare_image
from pull import DockerEngine, DockyardEngine, Engine, log, registry_tool
from timing import available, replace_section

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import testimages  # noqa: E402  (tools/testimages.py)

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Build"
IMAGE_REPO = "bench/busybox"
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
    if engine.name == "docker":
        argv += ["--network", "none"]
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
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-build-"))
    reg = registry_tool.start_registry(tmp / "registry")
    engines: list[Engine] = [DockyardEngine(tmp / "dockyard")]
    if available("dockerd") and available("docker"):
        engines.append(DockerEngine(tmp / "docker"))
    started: list[Engine] = []
    context = make_context(tmp / "context")
    try:
        testimages.push_image(reg.address, IMAGE_REPO, "latest", testimages.build_image("busybox"))
        for engine in engines:
            engine.start()
            started.append(engine)
            prepare_image(engine, reg.address)
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
    finally:
        for engine in started:
            try:
                engine.stop()
            except Exception as e:  # noqa: BLE001 (stop the others regardless)
                log(f"stopping {engine.name}: {e}")
        reg.stop()
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


def render(results: list[Results], elapsed: float, runs: int) -> str:
    by = {r.engine: r for r in results}
    lines = [
        f"## {SECTION}",
        "",
        f"`bench/build.py`, {runs} runs each (medians), {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{elapsed:.0f} s in all. A 10-step Dockerfile (FROM busybox, ENV, WORKDIR, COPY of 20 files, RUN, "
        "COPY, RUN, LABEL, EXPOSE, CMD) built with the classic builder (`DOCKER_BUILDKIT=0` for docker); "
        "CLI start to exit, context upload included.",
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
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    results, elapsed = run_benchmark(args.runs)
    section = render(results, elapsed, args.runs)
    output = Path(args.output)
    output.write_text(replace_section(output.read_text() if output.exists() else "", SECTION, section))
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
