"""Published ports: dockyard against docker on the same machine, and the forwarding mechanisms side by side.

    sudo .venv/bin/python bench/network.py [--runs 5] [--ab-runs 3] [--requests 2000] [--rm-runs 10]

A container of the busybox test image runs `httpd -f -p 80 -h /www` serving a 100 MB file (random bytes)
and a 1 KB file it writes itself at start, published with `-p <port>:80`. Measured from the host, always
over 127.0.0.1 (or the container's own address on the bridge):
- throughput: a GET of the 100 MB file by a plain socket reading into one reused buffer (not curl, which
  is slower than that over loopback here), MB/s from connect to the last byte; the direct path shows the
  ceiling that the server, the veth and the client leave;
- connection rate: `ab -n N -c C` of the 1 KB file, a new connection for every request (no -k), requests/s;
- on the same dockyard container, three paths: its address directly (no forwarding: the ceiling), the
  published port (Dockyard's kernel DNAT), and a userland proxy (`docker-proxy`, started by this script on
  another port and stopped by its PID), which is what docker does for 127.0.0.1;
- on docker's container: its published port (docker-proxy, docker's default path for 127.0.0.1), and its
  address directly;
- `run --rm -p <port>:80 busybox true` and `run --rm busybox true`, start to exit of the CLI, engines
  alternating, after a warm-up.

Engines, each started here on a default bridge of its own and stopped by PID: see bench/common.py.

The result replaces the "Networking" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from common import bench_env, busybox_engines, timed
from pull import Engine, log, registry_tool
from timing import available, write_section

ROOT = Path(__file__).resolve().parent.parent
SECTION = "Networking"
BIG_MB = 100
SMALL_BYTES = 1024
DOCKER_PROXY = "/usr/sbin/docker-proxy"
# The files are written inside the container before httpd starts: no bind mount needed, same on both engines.
SERVER_COMMAND = (
    f"mkdir -p /www && head -c {BIG_MB * 1024 * 1024} /dev/urandom > /www/big"
    f" && head -c {SMALL_BYTES} /dev/urandom > /www/small && exec httpd -f -p 80 -h /www"
)
READY_TIMEOUT = 30.0
FETCH_TIMEOUT = 120
AB_TIMEOUT = 300


# --------------------------------------------------------------------------------------------- measuring


@dataclass
class Route:
    """One way from the host to a container's httpd, and what was measured through it."""

    key: str  # engine-direct, engine-publish, dockyard-proxy
    label: str
    url: str  # base, e.g. http://127.0.0.1:8080
    throughput: list[float] = field(default_factory=list)  # MB/s
    rate: list[float] = field(default_factory=list)  # requests/s


@dataclass
class Results:
    engine: str
    version: str = ""
    run_rm_publish: list[float] = field(default_factory=list)
    run_rm: list[float] = field(default_factory=list)


def wait_ready(url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/small", timeout=2) as resp:
                if len(resp.read()) == SMALL_BYTES:
                    return
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise RuntimeError(f"{url}/small did not answer within {READY_TIMEOUT}s: {last}")


def fetch_big(url: str) -> float:
    """MB/s of one GET of the 100 MB file, from connect to the last byte. A plain socket reading into one
    reused 1 MiB buffer: on this machine it reads busybox httpd over loopback at about 2 GB/s where
    `curl -o /dev/null` tops out at 1.2-1.5 GB/s, so the client is not what is measured."""
    host, _, port = url.removeprefix("http://").partition(":")
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    start = time.perf_counter()
    with socket.create_connection((host, int(port or 80)), timeout=FETCH_TIMEOUT) as sock:
        sock.sendall(f"GET /big HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            n = sock.recv_into(view)
            if not n:
                raise RuntimeError(f"{url}/big: the connection closed in the headers")
            head += bytes(view[:n])
        head, _, rest = head.partition(b"\r\n\r\n")
        if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            raise RuntimeError(f"{url}/big: {head.splitlines()[0].decode(errors='replace')}")
        received = len(rest)
        while n := sock.recv_into(view):
            received += n
    elapsed = time.perf_counter() - start
    if received != BIG_MB * 1024 * 1024:
        raise RuntimeError(f"{url}/big: got {received} bytes")
    return received / elapsed / 1e6


def request_rate(url: str, requests: int, concurrency: int) -> float:
    """Requests per second of `ab` fetching the 1 KB file, a new connection each."""
    done = subprocess.run(
        ["ab", "-q", "-n", str(requests), "-c", str(concurrency), url + "/small"],
        capture_output=True,
        text=True,
        timeout=AB_TIMEOUT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ab {url}/small failed ({done.returncode}): {done.stderr.strip()}")
    failed = re.search(r"^Failed requests:\s+(\d+)", done.stdout, re.M)
    non2xx = re.search(r"^Non-2xx responses:\s+(\d+)", done.stdout, re.M)
    rate = re.search(r"^Requests per second:\s+([\d.]+)", done.stdout, re.M)
    if rate is None or failed is None or int(failed.group(1)) or non2xx:
        raise RuntimeError(f"ab {url}/small:\n{done.stdout}")
    return float(rate.group(1))


class UserlandProxy:
    """docker-proxy forwarding 127.0.0.1:`port` to `ip`:80, as dockerd runs it: it reports on fd 3 once
    it listens ("0\\n") or why it could not ("1\\n<error>")."""

    def __init__(self, port: int, ip: str) -> None:
        self.port = port
        read, write = os.pipe()
        argv = [
            DOCKER_PROXY, "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", str(port),
            "-container-ip", ip, "-container-port", "80",
        ]  # fmt: skip
        try:
            # the pipe's write end as the proxy's fd 3; `exec` keeps the PID, so stop() signals the proxy
            self.proc = subprocess.Popen(
                ["sh", "-c", f'exec "$0" "$@" 3>&{write} {write}>&-', *argv],
                pass_fds=(write,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,  # its errors come on fd 3; it logs its own stopping on stderr
                start_new_session=True,
            )
        finally:
            os.close(write)
        with os.fdopen(read, "rb") as status:
            if not select.select([status], [], [], READY_TIMEOUT)[0]:
                self.stop()
                raise RuntimeError(f"docker-proxy said nothing within {READY_TIMEOUT}s")
            report = status.read(256)  # EOF when the proxy closes fd 3, right after it reports
        if not report.startswith(b"0"):
            self.stop()
            raise RuntimeError(f"docker-proxy: {report.decode(errors='replace').strip()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def docker_proxy_running(port: int) -> bool:
    """Whether a docker-proxy process serves host port `port` (so the docker route is its userland proxy)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"docker-proxy") and str(port).encode() in argv:
            return True
    return False


def start_server(engine: Engine, port: int) -> tuple[str, str]:
    """(container id, container address) of the httpd container published on `port`."""
    done = engine.run("run", "-d", "-p", f"{port}:80", "busybox", "sh", "-c", SERVER_COMMAND)
    if done.returncode != 0:
        raise RuntimeError(f"{engine.name} run -p {port}:80: {done.stderr.strip()}")
    cid = done.stdout.strip()
    ip = engine.run("inspect", "--format", "{{.NetworkSettings.IPAddress}}", cid).stdout.strip()
    if not ip:
        engine.run("rm", "-f", cid)
        raise RuntimeError(f"{engine.name}: the container has no address")
    return cid, ip


def measure_paths(paths: list[Route], runs: int, ab_runs: int, requests: int, concurrency: int) -> None:
    """Every path in turn, round by round (so a slow moment of the machine hits all of them), after one
    warm-up fetch each."""
    for p in paths:
        wait_ready(p.url)
        fetch_big(p.url)
    for i in range(runs):
        for p in paths[i % len(paths) :] + paths[: i % len(paths)]:
            p.throughput.append(fetch_big(p.url))
    for i in range(ab_runs):
        for p in paths[i % len(paths) :] + paths[: i % len(paths)]:
            p.rate.append(request_rate(p.url, requests, concurrency))


# --------------------------------------------------------------------------------------------- the run


def run_benchmark(
    runs: int, ab_runs: int, requests: int, concurrency: int, rm_runs: int
) -> tuple[list[Route], list[Results], float]:
    begun = time.monotonic()
    servers: list[tuple[Engine, str]] = []
    proxy: UserlandProxy | None = None
    with busybox_engines("dockyard-bench-net-") as (_, engines):
        try:
            results = {e.name: Results(e.name, e.version) for e in engines}

            routes: list[Route] = []
            for engine in engines:
                port = registry_tool.free_port()
                cid, ip = start_server(engine, port)
                servers.append((engine, cid))
                if engine.name == "dockyard":
                    proxy = UserlandProxy(registry_tool.free_port(), ip)
                    routes += [
                        Route(
                            "dockyard-direct", "dockyard: container address, no forwarding", f"http://{ip}"
                        ),
                        Route("dockyard-publish", "dockyard: `-p`, kernel DNAT", f"http://127.0.0.1:{port}"),
                        Route("dockyard-proxy", "dockyard: userland proxy", f"http://127.0.0.1:{proxy.port}"),
                    ]
                else:
                    if not docker_proxy_running(port):
                        raise RuntimeError(f"{engine.name}: no docker-proxy serves port {port}")
                    routes += [
                        Route("docker-direct", "docker: container address, no forwarding", f"http://{ip}"),
                        Route(
                            "docker-publish", "docker: `-p` (its docker-proxy)", f"http://127.0.0.1:{port}"
                        ),
                    ]
            log("throughput and connection rate")
            measure_paths(routes, runs, ab_runs, requests, concurrency)
            if proxy is not None:
                proxy.stop()
                proxy = None
            for engine, cid in servers:
                engine.run("rm", "-f", cid, timeout=120)
            servers.clear()

            log("run --rm, with and without -p")
            ports = {e.name: registry_tool.free_port() for e in engines}
            for i in range(rm_runs + 1):  # the first round is a warm-up
                for engine in engines[i % len(engines) :] + engines[: i % len(engines)]:
                    env = bench_env(engine)
                    with_p = [
                        *engine.cli(),
                        "run",
                        "--rm",
                        "-p",
                        f"{ports[engine.name]}:80",
                        "busybox",
                        "true",
                    ]
                    without = [*engine.cli(), "run", "--rm", "busybox", "true"]
                    t1, t2 = timed(with_p, env), timed(without, env)
                    if i:
                        results[engine.name].run_rm_publish.append(t1)
                        results[engine.name].run_rm.append(t2)
            return routes, list(results.values()), time.monotonic() - begun
        finally:
            if proxy is not None:
                proxy.stop()
            for engine, cid in servers:
                engine.run("rm", "-f", cid, timeout=120)


# --------------------------------------------------------------------------------------------- the section


def _med(values: list[float]) -> float:
    return statistics.median(values)


def render(
    paths: list[Route],
    results: list[Results],
    elapsed: float,
    load: tuple[float, float],
    args: argparse.Namespace,
) -> str:
    versions = ", ".join(f"{r.engine} {r.version}" for r in results)
    by_key = {p.key: p for p in paths}
    busy = ": other work shared the machine, hence some spread" if load[0] >= 0.5 else ""
    lines = [
        f"## {SECTION}",
        "",
        f"Measured by `bench/network.py` on {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, kernel {platform.release()}; {versions}. Each engine has its own daemon, "
        "data root and bridge; docker's dockerd runs with its bridge and iptables (its default "
        "`userland-proxy`), so 127.0.0.1 reaches its containers through docker-proxy. A busybox httpd "
        f"(`httpd -f`, one process forked per connection) serves a {BIG_MB} MB file and a "
        f"{SMALL_BYTES // 1024} KB file. Throughput: a GET of the {BIG_MB} MB file by a Python socket "
        "reading into one reused 1 MiB buffer (about 2 GB/s from busybox httpd over plain loopback here, "
        "where `curl -o /dev/null` gets 1.2-1.5 GB/s), MB/s from connect to the last byte, "
        f"median of {args.runs} (after a warm-up); connection rate: "
        f"`ab -n {args.requests} -c {args.concurrency}` of the 1 KB file, a new connection each request, "
        f"median of {args.ab_runs}. "
        "All paths measured round by round in rotating order. The script took "
        f"{elapsed / 60:.0f} min; the load average (1 min) was {load[0]:.1f} at its start and {load[1]:.1f} "
        f"at its end{busy}.",
        "",
        f"| from the host to the container's port 80 | {BIG_MB} MB file | 1 KB file, new connection each |",
        "| --- | ---: | ---: |",
    ]
    for p in paths:
        lines.append(f"| {p.label} | {_med(p.throughput):.0f} MB/s | {_med(p.rate):.0f} req/s |")
    ours_p = by_key.get("dockyard-publish")
    docker_p = by_key.get("docker-publish")
    lines.append("")
    if ours_p is not None and docker_p is not None:
        tr = _med(ours_p.throughput) / _med(docker_p.throughput)
        rr = _med(ours_p.rate) / _med(docker_p.rate)
        lines.append(
            f"Published port on 127.0.0.1, dockyard / docker: throughput **{tr:.2f}** "
            f"(target ≥ 1: {'met' if tr >= 1 else 'missed'}), connection rate **{rr:.2f}** "
            f"(target ≥ 1: {'met' if rr >= 1 else 'missed'})."
        )
        lines.append("")
    direct = by_key.get("dockyard-direct")
    proxy = by_key.get("dockyard-proxy")
    if direct is not None and ours_p is not None and proxy is not None:
        lines.append(
            "The mechanism, on the same container, against its address reached directly: through kernel "
            f"DNAT {_med(ours_p.throughput) / _med(direct.throughput):.0%} of that throughput and "
            f"{_med(ours_p.rate) / _med(direct.rate):.0%} of that connection rate; through a userland proxy "
            f"{_med(proxy.throughput) / _med(direct.throughput):.0%} and "
            f"{_med(proxy.rate) / _med(direct.rate):.0%}, since every byte crosses two sockets and a "
            "process, and every connection is two connections. So `-p` is kernel DNAT only (an nftables "
            "table per daemon, the host port held by a socket of the daemon's), 127.0.0.1 included, and "
            "no proxy process is started per port."
        )
        lines.append("")
    lines += [
        f"Start to exit of the CLI, median of {args.rm_runs} after a warm-up, engines alternating; both "
        "on their default bridge:",
        "",
        "| command | " + " | ".join(r.engine for r in results) + " | dockyard / docker | target |",
        "| --- | " + " | ".join("---:" for _ in results) + " | ---: | --- |",
    ]
    for label, attr, target in (
        ("`run --rm -p <port>:80 busybox true`", "run_rm_publish", "≤ 0.5"),
        ("`run --rm busybox true` (for reference)", "run_rm", "–"),
    ):
        cells = [f"{_med(getattr(r, attr)) * 1000:.0f} ms" for r in results]
        ratio = "–"
        if len(results) > 1:
            value = _med(getattr(results[0], attr)) / _med(getattr(results[1], attr))
            ratio = f"{value:.2f}"
            if target != "–":
                ratio += " (met)" if value <= 0.5 else " (missed)"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} | {target} |")
    lines += ["", "Every run:", "", "| figure | path or engine | runs |", "| --- | --- | --- |"]
    for p in paths:
        lines.append(
            f"| {BIG_MB} MB, MB/s | {p.label} | " + ", ".join(f"{v:.0f}" for v in p.throughput) + " |"
        )
    for p in paths:
        lines.append(f"| 1 KB, req/s | {p.label} | " + ", ".join(f"{v:.0f}" for v in p.rate) + " |")
    for r in results:
        for label, attr in (("run --rm -p, ms", "run_rm_publish"), ("run --rm, ms", "run_rm")):
            lines.append(
                f"| {label} | {r.engine} | " + ", ".join(f"{v * 1000:.0f}" for v in getattr(r, attr)) + " |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=25, help="fetches of the 100 MB file per path")
    # The direct path, the DNAT'd one (masqueraded to the bridge's address) and the proxy's upstream side all
    # connect bridge address -> container:80: 3 x 3 x 2000 connections stay under the 28k ephemeral ports
    # that TIME_WAIT (conntrack keeps it 120 s) holds; more, and the last rounds stall on reused ports.
    parser.add_argument("--ab-runs", type=int, default=3, help="ab runs per path")
    parser.add_argument("--requests", type=int, default=2000, help="requests per ab run")
    parser.add_argument("--concurrency", type=int, default=4, help="ab -c")
    parser.add_argument("--rm-runs", type=int, default=10)
    parser.add_argument("--output", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    for tool in ("ab",):
        if not available(tool):
            print(f"{tool} is needed (scripts/setup.sh --test installs it)", file=sys.stderr)
            return 1
    load_before = os.getloadavg()[0]
    paths, results, elapsed = run_benchmark(
        args.runs, args.ab_runs, args.requests, args.concurrency, args.rm_runs
    )
    write_section(
        args.output, SECTION, render(paths, results, elapsed, (load_before, os.getloadavg()[0]), args)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
