"""What the container benchmarks (bench/containers.py, build.py, network.py) share: both engines on a default
bridge of their own, busybox from a local registry, timing a CLI, and taking it all down again.

- dockyard: `.venv/bin/dockyardd` with a bridge of its own (`dybench<n>`) and a `--bip` that overlaps no
  route; its bridge and nftables table are deleted when it stops (tests' DaemonProcess);
- docker: `dockerd` (Debian's docker.io) WITH its bridge (docker0, `--bip` chosen the same way) and
  iptables, as users run it; `iptables-save` is taken before it starts and restored after it stops, and
  docker0 deleted, since dockerd leaves both behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pull import DockerEngine, DockyardEngine, Engine, log, registry_tool, stop_engines
from timing import available

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import testimages  # noqa: E402  (tools/testimages.py)

IMAGE_REPO = "bench/busybox"


def log_cmd(argv: list[str], timeout: float = 30) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True).stdout


# --------------------------------------------------------------------------------------------- subnets


def host_routes() -> list[ipaddress.IPv4Network]:
    out = []
    for line in log_cmd(["ip", "-4", "route", "show", "table", "all"]).splitlines():
        first = line.split()[0] if line.split() else ""
        if first in ("broadcast", "local", "unreachable", "prohibit", "blackhole"):
            first = line.split()[1]
        if first == "default" or not first[:1].isdigit():
            continue
        try:
            out.append(ipaddress.IPv4Network(first, strict=False))
        except ValueError:
            pass
    return out


def free_subnet(avoid: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """A /24 under 10.213.0.0/16 that overlaps no route of the host (nor `avoid`): the daemons' own pools
    (172.17-31, 192.168) are where other daemons on this machine take theirs."""
    taken = host_routes() + avoid
    for subnet in ipaddress.IPv4Network("10.213.0.0/16").subnets(new_prefix=24):
        if not any(subnet.overlaps(t) for t in taken):
            return subnet
    raise RuntimeError("no free /24 under 10.213.0.0/16")


def bip(subnet: ipaddress.IPv4Network) -> str:
    return f"{subnet.network_address + 1}/{subnet.prefixlen}"


# --------------------------------------------------------------------------------------------- engines


class DockerBridgeEngine(DockerEngine):
    """dockerd with its default bridge (docker0) and iptables, as users run it; the host's iptables rules
    are saved before and restored after, and docker0 deleted, since dockerd leaves both behind."""

    BRIDGE = "docker0"

    def __init__(self, root: Path, subnet: ipaddress.IPv4Network) -> None:
        super().__init__(root)
        self.subnet = subnet
        self.saved_iptables: str | None = None

    def network_args(self) -> list[str]:
        return ["--bip", bip(self.subnet)]

    def start(self, timeout: float = 60) -> None:
        if Path(f"/sys/class/net/{self.BRIDGE}").exists():
            raise RuntimeError(f"{self.BRIDGE} already exists: another dockerd runs here; not touching it")
        self.saved_iptables = log_cmd(["iptables-save"])
        super().start(timeout)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.saved_iptables is not None:  # set once start() found no docker0 of anyone else's
                if Path(f"/sys/class/net/{self.BRIDGE}").exists():
                    subprocess.run(["ip", "link", "del", self.BRIDGE], check=False, timeout=30)
                subprocess.run(
                    ["iptables-restore"], input=self.saved_iptables, text=True, check=True, timeout=30
                )
                after = log_cmd(["iptables-save"])
                if _rules(after) != _rules(self.saved_iptables):
                    log("warning: iptables-save differs from before dockerd started")
                self.saved_iptables = None


def _rules(dump: str) -> list[str]:
    """iptables-save without its comments and counters."""
    return [re.sub(r"\[\d+:\d+\]", "", line) for line in dump.splitlines() if not line.startswith("#")]


def bridged_engines(tmp: Path) -> list[Engine]:
    """dockyard, and docker when installed, each on a default bridge of its own with its own subnet."""
    ours = free_subnet([])
    engines: list[Engine] = [
        DockyardEngine(tmp / "dockyard", ["--bip", bip(ours)], bridge=f"dybench{os.getpid() % 100000}")
    ]
    if available("dockerd") and available("docker"):
        engines.append(DockerBridgeEngine(tmp / "docker", free_subnet([ours])))
    return engines


def prepare_image(engine: Engine, registry: str) -> None:
    ref = f"{registry}/{IMAGE_REPO}:latest"
    for argv in (["pull", ref], ["tag", ref, "busybox:latest"]):
        done = engine.run(*argv, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{engine.name} {' '.join(argv)}: {done.stderr.strip()}")


@contextlib.contextmanager
def busybox_engines(prefix: str) -> Iterator[tuple[Path, list[Engine]]]:
    """A temporary directory and the engines of `bridged_engines`, started, each with `busybox:latest`
    pulled from a registry of our own; on the way out (a failure included) the engines are stopped (their
    bridges and rules removed), the registry stopped and the directory deleted."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    reg = registry_tool.start_registry(tmp / "registry")
    started: list[Engine] = []
    try:
        testimages.push_image(reg.address, IMAGE_REPO, "latest", testimages.build_image("busybox"))
        for engine in bridged_engines(tmp):
            started.append(engine)  # before start: a dockerd that fails half-way has rules to restore
            engine.start()
            prepare_image(engine, reg.address)
        yield tmp, started
    finally:
        stop_engines(started)
        reg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------- timing


def bench_env(engine: Engine) -> dict[str, str]:
    env = engine.env()
    # As on a user's machine: the warm-up run leaves .pyc files behind (see timing.time_command).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(argv: list[str], env: dict[str, str], timeout: float = 300) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode().strip()}")
    return elapsed
