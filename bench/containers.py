"""Containers: dockyard against docker on the same machine, both on their default bridge.

    sudo .venv/bin/python bench/containers.py [--runs 15] [--concurrent-runs 3] [--log-runs 2]

Each engine is started by this script on its own socket, data root and default bridge (see
bench/common.py: dockyardd on a bridge and subnet of its own, dockerd with its docker0 and iptables,
restored after) and gets busybox (built from the host's static binary) from Debian's docker-registry on
127.0.0.1. Every container gets the engine's default network (a netns, a veth, an address), as users run
them, except the `--network none` row. Figures, each the median of several runs, engines alternating:
- `run --rm busybox true`, start to exit of the CLI; and the same with `--network none`;
- 20 concurrent `run -d busybox sleep`, from the first start to the last exit of the 20 CLIs;
- the memory of each container's helper process (our shim, containerd-shim-runc-v2, conmon): its PSS,
  averaged over those 20 containers;
- `ps` with those 20 containers running;
- a container writing 200 MB to stdout: `run -d` to the end of `wait`; then `logs` of those 200 MB, start to
  exit with the output going to /dev/null, as throughput.

The result replaces the "Containers" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import bench_env, busybox_engines, timed
from pull import Engine, log
from timing import write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Containers"
CONCURRENT = 20
LOG_BYTES = 200 * 1024 * 1024
# 100-byte lines, as a chatty program writes them
LOG_COMMAND = f"yes {'x' * 98} | head -c {LOG_BYTES}"


@dataclass
class Results:
    engine: str
    version: str = ""
    run_rm: list[float] = field(default_factory=list)
    run_rm_none: list[float] = field(default_factory=list)  # --network none
    concurrent: list[float] = field(default_factory=list)
    helper_pss: list[float] = field(default_factory=list)  # KiB, per container
    ps: list[float] = field(default_factory=list)
    log_write: list[float] = field(default_factory=list)
    logs_read: list[float] = field(default_factory=list)


def pss_kib(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return float(line.split()[1])
    raise RuntimeError(f"no Pss in /proc/{pid}/smaps_rollup")


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise RuntimeError(f"no PPid for {pid}")


def concurrent_round(engine: Engine, result: Results, measure_memory: bool) -> None:
    env = bench_env(engine)
    argv = [*engine.cli(), "run", "-d", "busybox", "sleep", "3600"]
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CONCURRENT) as pool:
        outs = list(
            pool.map(
                lambda _: subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300),
                range(CONCURRENT),
            )
        )
    result.concurrent.append(time.perf_counter() - start)
    ids = [o.stdout.strip() for o in outs if o.returncode == 0]
    try:
        failed = [o.stderr.strip() for o in outs if o.returncode != 0]
        if failed:
            raise RuntimeError(f"{engine.name}: {len(failed)} of {CONCURRENT} runs failed: {failed[0]}")
        if measure_memory:
            pids = engine.run("inspect", "--format", "{{.State.Pid}}", *ids).stdout.split()
            helpers = {parent_of(int(p)) for p in pids}
            result.helper_pss.append(sum(pss_kib(h) for h in helpers) / len(pids))
            result.ps.append(statistics.median(timed([*engine.cli(), "ps"], env) for _ in range(5)))
    finally:
        if ids:
            engine.run("rm", "-f", *ids, timeout=300)


def log_round(engine: Engine, result: Results) -> None:
    env = bench_env(engine)
    start = time.perf_counter()
    done = engine.run("run", "-d", "busybox", "sh", "-c", LOG_COMMAND)
    if done.returncode != 0:
        raise RuntimeError(f"{engine.name} run: {done.stderr.strip()}")
    cid = done.stdout.strip()
    try:
        code = engine.run("wait", cid, timeout=600).stdout.strip()
        result.log_write.append(time.perf_counter() - start)
        if code != "0":
            raise RuntimeError(f"{engine.name}: the writer exited with {code}")
        start = time.perf_counter()
        with open(os.devnull, "wb") as null:
            proc = subprocess.run(
                [*engine.cli(), "logs", cid], env=env, stdout=null, stderr=subprocess.PIPE, timeout=900
            )
        result.logs_read.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"{engine.name} logs: {proc.stderr.decode().strip()}")
    finally:
        engine.run("rm", "-f", cid, timeout=300)


def check_networks(engine: Engine) -> None:
    """A container gets an eth0 on the bridge and `--network none` one gets none, or the rows would not
    measure what they say."""
    for options, want in (([], True), (["--network", "none"], False)):
        done = engine.run("run", "--rm", *options, "busybox", "cat", "/proc/net/dev")
        if done.returncode != 0 or ("eth0:" in done.stdout) != want:
            raise RuntimeError(
                f"{engine.name} run {' '.join(options)}: expected {'an' if want else 'no'} eth0:\n"
                f"{done.stdout}{done.stderr}"
            )


def run_benchmark(runs: int, log_runs: int, concurrent_runs: int) -> tuple[list[Results], float]:
    begun = time.monotonic()
    with busybox_engines("dockyard-bench-ctr-") as (_, engines):
        for engine in engines:
            check_networks(engine)
        results = {e.name: Results(e.name, e.version) for e in engines}
        log("run --rm busybox true, on the bridge and with --network none")
        for i in range(runs + 1):  # the first round is a warm-up
            for engine in engines[i % len(engines) :] + engines[: i % len(engines)]:
                env = bench_env(engine)
                bridged = timed([*engine.cli(), "run", "--rm", "busybox", "true"], env)
                none = timed([*engine.cli(), "run", "--rm", "--network", "none", "busybox", "true"], env)
                if i:
                    results[engine.name].run_rm.append(bridged)
                    results[engine.name].run_rm_none.append(none)
        log(f"{CONCURRENT} concurrent run -d")
        for i in range(concurrent_runs):
            for engine in engines:
                concurrent_round(engine, results[engine.name], measure_memory=i == 0)
        log("200 MB of output")
        for _ in range(log_runs):
            for engine in engines:
                log_round(engine, results[engine.name])
        return list(results.values()), time.monotonic() - begun


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms" if values else "–"


def _s(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} s" if values else "–"


def render(
    results: list[Results],
    elapsed: float,
    runs: int,
    log_runs: int,
    concurrent_runs: int,
    load: tuple[float, float],
) -> str:
    ours = results[0]
    others = results[1:]
    versions = ", ".join(f"{r.engine} {r.version}" for r in results)
    lines = [
        f"## {SECTION}",
        "",
        f"Measured by `bench/containers.py` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, kernel {platform.release()}; {versions}. Each engine has its own daemon, "
        "socket, data root and default bridge with a subnet of its own (dockerd with its docker0 and "
        "iptables, its defaults); every container gets that bridge network (a network namespace, a veth "
        "pair, an address), but for the `--network none` row (loopback only), which shows what the "
        f"network costs each engine. Medians: `run --rm` of {runs} runs after a warm-up, engines "
        f"alternating; {CONCURRENT} concurrent `run -d` of {concurrent_runs}; 200 MB of output of "
        f"{log_runs}. The script took {elapsed / 60:.0f} min; the load average (1 min) was {load[0]:.1f} at "
        f"its start and {load[1]:.1f} at its end"
        + (": other work shared the machine, hence some spread." if load[0] >= 0.5 else "."),
        "",
        "| figure | dockyard | "
        + " | ".join(r.engine for r in others)
        + " | dockyard / "
        + " | dockyard / ".join(r.engine for r in others)
        + " | target |",
        "| --- | ---: | "
        + " | ".join("---:" for _ in others)
        + " | "
        + " | ".join("---:" for _ in others)
        + " | --- |",
    ]

    def row(label: str, attr: str, fmt, target: str, invert: bool = False) -> None:
        mine = getattr(ours, attr)
        cells = [fmt(mine)] + [fmt(getattr(r, attr)) for r in others]
        ratios = []
        for r in others:
            theirs = getattr(r, attr)
            if mine and theirs:
                a, b = statistics.median(mine), statistics.median(theirs)
                ratios.append(f"{(b / a if invert else a / b):.2f}")
            else:
                ratios.append("–")
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + f" | {target} |")

    row("`run --rm busybox true`", "run_rm", _ms, "≤ 0.5")
    row("`run --rm --network none busybox true`", "run_rm_none", _ms, "–")
    row(f"{CONCURRENT} concurrent `run -d`", "concurrent", _s, "≤ 0.5")
    row(
        "helper memory per container (PSS)",
        "helper_pss",
        lambda v: f"{statistics.median(v) / 1024:.1f} MiB" if v else "–",
        "≤ 1.0",
    )
    row(f"`ps` with {CONCURRENT} containers", "ps", _ms, "≤ 1.5")
    row("container writing 200 MB to stdout", "log_write", _s, "≤ 0.25")
    lines.append(
        "| `logs` of those 200 MB (throughput; ratio = dockyard's / docker's) | "
        + " | ".join(
            f"{LOG_BYTES / statistics.median(r.logs_read) / 2**20:.0f} MB/s" if r.logs_read else "–"
            for r in results
        )
        + " | "
        + " | ".join(
            f"{statistics.median(r.logs_read) / statistics.median(ours.logs_read):.2f}"
            if r.logs_read and ours.logs_read
            else "–"
            for r in others
        )
        + " | ≥ 5 |"
    )
    lines += ["", "Every run:", "", "| figure | engine | runs |", "| --- | --- | --- |"]
    for label, attr, scale, unit in (
        ("run --rm", "run_rm", 1000, "ms"),
        ("run --rm --network none", "run_rm_none", 1000, "ms"),
        ("20 concurrent run -d", "concurrent", 1, "s"),
        ("200 MB output", "log_write", 1, "s"),
        ("logs 200 MB", "logs_read", 1, "s"),
    ):
        for r in results:
            values = getattr(r, attr)
            if values:
                lines.append(
                    f"| {label} | {r.engine} | "
                    + ", ".join(f"{v * scale:.2f}" for v in values)
                    + f" {unit} |"
                )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--concurrent-runs", type=int, default=3)
    parser.add_argument("--log-runs", type=int, default=2)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results, elapsed = run_benchmark(args.runs, args.log_runs, args.concurrent_runs)
    load = (load_before, os.getloadavg()[0])
    write_section(
        args.output, SECTION, render(results, elapsed, args.runs, args.log_runs, args.concurrent_runs, load)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
