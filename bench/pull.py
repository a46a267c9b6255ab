"""Pull from a local registry: dockyard against docker (and podman) on the same machine.

    sudo .venv/bin/python bench/pull.py [--runs 5] [--pause 60] [--images busybox,debian,big,smallfiles]

Builds (once, cached under /var/tmp/dockyard-bench, see bench/images.py) four images, pushes them to
Debian's docker-registry on 127.0.0.1 (its storage is cached there too), then for each image and each
engine times `pull` start to exit, several runs, each after removing the image (`rmi`, checking that
no layer or blob is left). It also times merely downloading and verifying each image's blobs, and
dockyardd's peak RSS while pulling the 300 MB image into a fresh daemon.

Engines, each started by this script on its own socket, data root and exec root, stopped by PID:
- dockyard: `.venv/bin/dockyardd` (`dockyard pull`);
- docker: `dockerd` when installed (Debian's docker.io; containerd is its own child), `--bridge=none
  --iptables=false --ip-masq=false` so the host's network is left alone; its data root is deleted after;
- podman: when installed, with its own `--root` and `--runroot`.

The root ext4 here has no journal and creates files slowly for a while after thousands were deleted.
Each run therefore removes the image from every engine, syncs and pauses (`--pause`), then pulls with
each engine in turn (syncing between them), rotating which engine goes first from run to run.

The result replaces the "Pull from a local registry" section of docs/benchmarks.md (the rest of the
file, written by bench/run.py, is kept); run.py --pull runs this too.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import images as bench_images  # noqa: E402  (bench/images.py)
import registry as registry_tool  # noqa: E402  (tools/registry.py)
from harness import DOCKYARD, DaemonProcess, ping  # noqa: E402  (tests/integration/harness.py)
from timing import write_section  # noqa: E402

SECTION = "Pull from a local registry"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
SHORT_PAUSE = 2.0  # after removing busybox: a handful of files
PULL_TIMEOUT = 600


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sync() -> None:
    subprocess.run(["sync"], check=True)


# --------------------------------------------------------------------------------------------- engines


@dataclass
class PullRun:
    wall: float
    downloaded: float | None  # when the last layer said "Download complete", from the start
    output: str
    events: list[tuple[float, str]] = field(default_factory=list)  # (seconds from start, output line)


class Engine:
    name = ""
    version = ""

    def cli(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def leftovers(self) -> list[str]:
        """Layer directories or blobs still stored (there must be none after rmi)."""
        raise NotImplementedError

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.cli(), *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def has_image(self, ref: str) -> bool:
        return self.run("image", "inspect", ref).returncode == 0

    def pull_args(self, ref: str) -> list[str]:
        return ["pull", ref]

    def pull(self, ref: str) -> PullRun:
        """Start to exit of `pull REF`, reading its (non-terminal) output line by line as it comes."""
        start = time.perf_counter()
        proc = subprocess.Popen(
            [*self.cli(), *self.pull_args(ref)],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        downloaded = None
        lines = []
        events = []
        timer = threading.Timer(PULL_TIMEOUT, proc.kill)
        timer.start()
        try:
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                now = time.perf_counter() - start
                lines.append(line)
                events.append((now, line))
                if line.endswith("Download complete"):
                    downloaded = now
            code = proc.wait()
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        output = "\n".join(lines)
        if code != 0:
            raise RuntimeError(f"{self.name} pull {ref} failed ({code}):\n{output}")
        if "Already exists" in output:
            raise RuntimeError(f"{self.name} pull {ref} found layers left from a previous run:\n{output}")
        return PullRun(wall, downloaded, output, events)

    def remove(self, ref: str) -> None:
        if self.has_image(ref):
            done = self.run("rmi", ref)
            if done.returncode != 0:
                raise RuntimeError(f"{self.name} rmi {ref} failed: {done.stdout}{done.stderr}")
        left = self.leftovers()
        if left:
            raise RuntimeError(f"{self.name}: after rmi {ref}, still stored: {left[:5]}")


def stop_engines(engines: list[Engine]) -> None:
    """Stop each engine, the last started first, carrying on past one that fails to stop; empties the list."""
    for engine in reversed(engines):
        try:
            engine.stop()
        except Exception as e:  # noqa: BLE001 (stop the others regardless)
            log(f"stopping {engine.name}: {e}")
    engines.clear()


def _entries(path: Path, ignore: tuple[str, ...] = ()) -> list[str]:
    try:
        return [str(path / n) for n in os.listdir(path) if n not in ignore]
    except FileNotFoundError:
        return []


class _QuietDaemon(DaemonProcess):
    """tests' DaemonProcess at log level info: debug logging of every request is not what users run."""

    def command(self) -> list[str]:
        argv = super().command()
        i = argv.index("--log-level")
        argv[i + 1] = "info"
        return argv


class DockyardEngine(Engine):
    name = "dockyard"

    def __init__(self, root: Path, extra_args: list[str] | None = None, bridge: str | None = None) -> None:
        self.daemon = _QuietDaemon(root, list(extra_args or []))
        if bridge is not None:  # its own bridge device and nftables table, removed again by stop()
            self.daemon.bridge = bridge

    def cli(self) -> list[str]:
        return [DOCKYARD, "-H", self.daemon.host]

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.pid

    def start(self) -> None:
        self.daemon.start()
        done = self.run("version", "--format", "{{.Server.Version}}")
        self.version = done.stdout.strip() if done.returncode == 0 else "?"

    def stop(self) -> None:
        self.daemon.stop()

    def leftovers(self) -> list[str]:
        image = self.daemon.data_root / "image"
        return _entries(image / "snapshots" / "overlay2") + _entries(image / "content" / "blobs" / "sha256")

    def log_tail(self) -> str:
        return self.daemon.log_tail()


def _children(pid: int) -> list[int]:
    out = []
    for task in _entries(Path(f"/proc/{pid}/task")):
        try:
            out += [int(c) for c in Path(task, "children").read_text().split()]
        except OSError:
            pass
    return out


def _mounts_under(*paths: Path) -> list[str]:
    prefixes = tuple(str(p) for p in paths)
    with open("/proc/mounts") as f:
        targets = [line.split()[1].replace("\\040", " ") for line in f]
    return sorted(
        (t for t in targets if any(t == p or t.startswith(p + "/") for p in prefixes)), key=len, reverse=True
    )


class DockerEngine(Engine):
    """Our own dockerd (and the containerd it starts as its child), on paths under `root`."""

    name = "docker"
    KEY_FILE = Path("/etc/docker/key.json")  # dockerd 20.10 writes its trust key there

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.containerd_pid: int | None = None
        self.key_existed = self.KEY_FILE.exists()

    data_root = property(lambda self: self.root / "data")
    exec_root = property(lambda self: self.root / "exec")
    socket_path = property(lambda self: str(self.root / "docker.sock"))
    log_path = property(lambda self: self.root / "dockerd.log")

    def cli(self) -> list[str]:
        return ["docker", "-H", f"unix://{self.socket_path}"]

    def network_args(self) -> list[str]:
        """No bridge nor iptables rules, so the host's network is left alone (bench/network.py overrides)."""
        return ["--bridge=none", "--iptables=false", "--ip-masq=false"]

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_CONFIG": str(self.root / "client-config")}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "daemon.json").write_text("{}\n")
        argv = [
            "dockerd",
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "-H", f"unix://{self.socket_path}",
            "--pidfile", str(self.root / "dockerd.pid"),
            "--config-file", str(self.root / "daemon.json"),
            *self.network_args(),
        ]  # fmt: skip
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if ping(self.socket_path):
                break
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"dockerd did not answer within {timeout}s:\n{self.log_tail()}")
        for child in _children(self.proc.pid):
            try:
                if Path(f"/proc/{child}/comm").read_text().strip() == "containerd":
                    self.containerd_pid = child
            except OSError:
                pass
        done = self.run("version", "--format", "{{.Server.Version}} (CLI {{.Client.Version}})")
        self.version = done.stdout.strip() if done.returncode == 0 else "?"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.containerd_pid is not None and registry_tool.alive(self.containerd_pid):
            registry_tool.terminate_pid(self.containerd_pid)
        for target in _mounts_under(self.data_root, self.exec_root):
            subprocess.run(["umount", "-l", target], check=False)
        shutil.rmtree(self.data_root, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)
        if not self.key_existed:
            self.KEY_FILE.unlink(missing_ok=True)

    def leftovers(self) -> list[str]:
        return _entries(self.data_root / "overlay2", ignore=("l",)) + _entries(
            self.data_root / "image" / "overlay2" / "layerdb" / "sha256"
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class PodmanEngine(Engine):
    """podman with its own storage; only used when podman is installed (this script never installs it)."""

    name = "podman"

    def __init__(self, root: Path) -> None:
        self.root = root

    def cli(self) -> list[str]:
        return [
            "podman", "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
            "--storage-driver", "overlay",
        ]  # fmt: skip

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        done = self.run("version", "--format", "{{.Client.Version}}")
        self.version = done.stdout.strip() if done.returncode == 0 else "?"

    def pull_args(self, ref: str) -> list[str]:
        return ["pull", "--tls-verify=false", ref]

    def has_image(self, ref: str) -> bool:
        return self.run("image", "exists", ref).returncode == 0

    def stop(self) -> None:
        self.run("system", "reset", "--force", timeout=300)
        for target in _mounts_under(self.root):
            subprocess.run(["umount", "-l", target], check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def leftovers(self) -> list[str]:
        return _entries(self.root / "storage" / "overlay", ignore=("l",))


# --------------------------------------------------------------------------------------------- download only


def download_only(address: str, image: bench_images.CachedImage, gunzip: bool = False) -> float:
    """GET the manifest, the config and every layer (3 at a time, as the engines do), checking each
    blob's sha256; with `gunzip`, also decompress and hash the tar (the diff ID) without writing it."""
    host, port = address.split(":")
    start = time.perf_counter()

    def get(path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        if resp.status != 200:
            raise RuntimeError(f"GET {path} -> {resp.status}")
        return resp

    accept = {"Accept": bench_images.DOCKER_MANIFEST}
    manifest = json.loads(get(f"/v2/{image.repo}/manifests/latest", accept).read())
    blobs = [(manifest["config"]["digest"], None)] + [(d["digest"], d) for d in manifest["layers"]]

    def fetch(digest: str, expect_diff: str | None) -> None:
        resp = get(f"/v2/{image.repo}/blobs/{digest}")
        h = hashlib.sha256()
        un = zlib.decompressobj(31) if expect_diff else None
        uh = hashlib.sha256()
        while chunk := resp.read(1 << 20):
            h.update(chunk)
            if un is not None:
                uh.update(un.decompress(chunk))
        if "sha256:" + h.hexdigest() != digest:
            raise RuntimeError(f"blob {digest} does not verify")
        if un is not None:
            uh.update(un.flush())
            if "sha256:" + uh.hexdigest() != expect_diff:
                raise RuntimeError(f"layer {digest}: diff ID does not verify")

    diff_ids = {la.digest: la.diff_id for la in image.layers}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [
            pool.submit(fetch, d, diff_ids.get(d) if (gunzip and desc is not None) else None)
            for d, desc in blobs
        ]
        for f in futures:
            f.result()
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------------- RSS


class RssSampler(threading.Thread):
    """Samples VmRSS of a process and its children every 20 ms; `peak` in bytes."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.children_seen = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            pids = [self.pid, *_children(self.pid)]
            self.children_seen = max(self.children_seen, len(pids) - 1)
            self.peak = max(self.peak, sum(_status_kb(p, "VmRSS") for p in pids) * 1024)
            self._halt.wait(0.02)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class RssResult:
    baseline: int
    hwm: int
    sampled_peak: int
    children: int


def measure_rss(workdir: Path, ref: str) -> RssResult:
    engine = DockyardEngine(workdir / "rss")
    engine.start()
    try:
        time.sleep(1)
        baseline = _status_kb(engine.pid, "VmRSS") * 1024
        sampler = RssSampler(engine.pid)
        sampler.start()
        try:
            engine.pull(ref)
        finally:
            peak = sampler.stop()
        hwm = _status_kb(engine.pid, "VmHWM") * 1024
        return RssResult(baseline, hwm, peak, sampler.children_seen)
    finally:
        engine.stop()
        shutil.rmtree(engine.daemon.data_root, ignore_errors=True)


# --------------------------------------------------------------------------------------------- the run


@dataclass
class ImageResult:
    image: bench_images.CachedImage
    pulls: dict[str, list[PullRun]] = field(default_factory=dict)
    download: list[float] = field(default_factory=list)
    download_gunzip: list[float] = field(default_factory=list)

    def median(self, engine: str) -> float | None:
        runs = self.pulls.get(engine)
        return statistics.median(r.wall for r in runs) if runs else None

    def paired_ratio(self, engine: str = "dockyard", other: str = "docker") -> float | None:
        """The median over runs of engine/other within the same run (after the same pause)."""
        pairs = zip(self.pulls.get(engine, []), self.pulls.get(other, []), strict=False)
        ratios = [a.wall / b.wall for a, b in pairs]
        return statistics.median(ratios) if ratios else None

    def median_downloaded(self, engine: str) -> float | None:
        runs = [r.downloaded for r in self.pulls.get(engine, []) if r.downloaded is not None]
        return statistics.median(runs) if runs else None


@dataclass
class Report:
    results: list[ImageResult]
    engines: list[Engine]
    runs: int
    pause: float
    rss: RssResult | None
    dockerd_hwm: int | None
    started: float
    finished: float


def pick_engines(workdir: Path, want: list[str]) -> list[Engine]:
    engines: list[Engine] = [DockyardEngine(workdir / "dockyard")]
    if "docker" in want:
        if shutil.which("dockerd") is None:
            log("dockerd is missing: apt-get install -y docker.io")
            subprocess.run(
                ["apt-get", "install", "-y", "-q", "docker.io"],
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
                stdout=subprocess.DEVNULL,
                check=False,
            )
        if shutil.which("dockerd") and shutil.which("docker"):
            engines.append(DockerEngine(workdir / "docker"))
        else:
            log("docker is not available: measuring without it")
    if "podman" in want and shutil.which("podman"):
        engines.append(PodmanEngine(workdir / "podman"))
    return engines


def run_benchmark(
    runs: int = 5,
    pause: float = 60,
    names: tuple[str, ...] = bench_images.NAMES,
    engine_names: tuple[str, ...] = ("docker", "podman"),
    rss: bool = True,
) -> Report:
    started = time.time()
    images = [bench_images.ensure(name) for name in names]
    for image in images:
        log(image.summary())
    bench_images.CACHE.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="dyb-", dir="/tmp"))  # short: unix socket paths
    reg = registry_tool.start_registry(bench_images.CACHE / "registry", log_level="warn")
    engines: list[Engine] = []
    started_engines: list[Engine] = []
    try:
        results = []
        for image in images:
            bench_images.push(reg.address, image)
            results.append(ImageResult(image))
        log(f"registry on {reg.address} holds the images")

        for result in results:  # first, while nothing has been deleted yet
            for _ in range(runs):
                result.download.append(download_only(reg.address, result.image))
                result.download_gunzip.append(download_only(reg.address, result.image, gunzip=True))
            log(
                f"download-only {result.image.name}: {statistics.median(result.download):.2f} s "
                f"(+gunzip {statistics.median(result.download_gunzip):.2f} s)"
            )

        engines = pick_engines(workdir, list(engine_names))
        for engine in engines:
            started_engines.append(engine)  # stopped (and cleaned up) even if it fails to start
            engine.start()
            log(f"{engine.name} {engine.version} started")
        warm = f"{reg.address}/{results[0].image.repo}:latest" if results else None
        if warm:  # load the code paths once, untimed
            for engine in engines:
                engine.remove(warm)
                engine.pull(warm)
                engine.remove(warm)

        for result in results:
            ref = f"{reg.address}/{result.image.repo}:latest"
            wait = SHORT_PAUSE if result.image.name == "busybox" else pause
            for r in range(runs):
                for engine in engines:
                    engine.remove(ref)
                sync()
                time.sleep(wait)
                order = engines[r % len(engines) :] + engines[: r % len(engines)]
                for engine in order:
                    sync()
                    pulled = engine.pull(ref)
                    result.pulls.setdefault(engine.name, []).append(pulled)
                    with open(workdir / "pull-timelines.txt", "a") as timeline:
                        timeline.write(
                            f"== {result.image.name} run {r + 1} {engine.name} {pulled.wall:.2f} s\n"
                        )
                        timeline.writelines(f"{t:7.3f} {line}\n" for t, line in pulled.events)
                    log(
                        f"{result.image.name} run {r + 1}/{runs} {engine.name}: {pulled.wall:.2f} s"
                        + (f" (downloads done at {pulled.downloaded:.2f} s)" if pulled.downloaded else "")
                    )
            for engine in engines:
                engine.remove(ref)
            sync()

        dockerd_hwm = None
        for engine in engines:
            if isinstance(engine, DockerEngine):
                dockerd_hwm = _status_kb(engine.pid, "VmHWM") * 1024
        stop_engines(started_engines)

        rss_result = None
        big = next((r for r in results if r.image.name == "big"), None)
        if rss and big is not None:
            time.sleep(pause)
            rss_result = measure_rss(workdir, f"{reg.address}/{big.image.repo}:latest")
            log(f"dockyardd peak RSS pulling {big.image.name}: VmHWM {rss_result.hwm / 2**20:.0f} MiB")
        report = Report(results, engines, runs, pause, rss_result, dockerd_hwm, started, time.time())
        _save_results(report)
        return report
    finally:
        stop_engines(started_engines)
        reg.stop()
        _keep_logs(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def _save_results(report: Report) -> None:
    """Every measurement, as JSON: CACHE/logs/pull-results.json."""
    data = {
        "runs": report.runs,
        "pause": report.pause,
        "engines": {e.name: e.version for e in report.engines},
        "images": {
            res.image.name: {
                "pulls": {n: [r.wall for r in runs] for n, runs in res.pulls.items()},
                "downloads_done": {n: [r.downloaded for r in runs] for n, runs in res.pulls.items()},
                "download_verify": res.download,
                "download_verify_gunzip": res.download_gunzip,
            }
            for res in report.results
        },
        "rss": report.rss.__dict__ if report.rss else None,
        "dockerd_hwm": report.dockerd_hwm,
    }
    logs = bench_images.CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "pull-results.json").write_text(json.dumps(data, indent=1) + "\n")


def _keep_logs(workdir: Path) -> None:
    """The daemons' logs of the last run, for a look after the fact: CACHE/logs/."""
    logs = bench_images.CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for name, path in (
        ("pull-timelines.txt", workdir / "pull-timelines.txt"),
        ("dockyardd.log", workdir / "dockyard" / "dockyardd.log"),
        ("dockyardd-rss.log", workdir / "rss" / "dockyardd.log"),
        ("dockerd.log", workdir / "docker" / "dockerd.log"),
    ):
        (logs / name).unlink(missing_ok=True)
        if path.exists():
            shutil.copyfile(path, logs / name)


# --------------------------------------------------------------------------------------------- rendering


def _s(value: float | None, unit: str = " s") -> str:
    return "—" if value is None else f"{value:.2f}{unit}"


def render(report: Report) -> str:
    names = [e.name for e in report.engines]
    versions = ", ".join(f"{e.name} {e.version}" for e in report.engines)
    has_docker = "docker" in names
    mins = (report.finished - report.started) / 60
    lines = [
        f"## {SECTION}",
        "",
        f"Measured by `bench/pull.py` on {time.strftime('%Y-%m-%d', time.localtime(report.finished))}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, root ext4 without a journal; {versions}. Debian's "
        "`docker-registry` serves the images over plain http on 127.0.0.1. Wall time of `pull` start to "
        f"exit (the CLI included), the median of {report.runs} runs; the whole script took {mins:.0f} min.",
        "",
        "Method: each run first removes the image from every engine (`rmi`, and checks that no layer or "
        f"blob is left), runs `sync` and pauses {report.pause:.0f} s ({SHORT_PAUSE:.0f} s for busybox), "
        "then pulls with each engine in turn, with a `sync` before each pull; which engine goes first "
        "rotates from run to run. The pause and the alternation are for this ext4, which creates files "
        "slowly for a while after thousands were deleted; the issue's 150 s pause after every removal "
        "would have taken over an hour.",
        "",
    ]
    header = "| image | files | unpacked / gzipped |"
    sep = "| --- | ---: | ---: |"
    for n in names:
        header += f" {n} |"
        sep += " ---: |"
    if has_docker:
        header += " dockyard / docker | per-run ratios, median |"
        sep += " ---: | ---: |"
    header += " download + verify | + gunzip |"
    sep += " ---: | ---: |"
    lines += [header, sep]
    for res in report.results:
        img = res.image
        row = f"| {img.label} | {img.files:,} | {img.tar_size / 1e6:.0f} MB / {img.blob_size / 1e6:.0f} MB |"
        for n in names:
            row += f" {_s(res.median(n))} |"
        if has_docker:
            dy, dk = res.median("dockyard"), res.median("docker")
            ratio = dy / dk if dy and dk else None
            mark = "" if ratio is None or ratio <= 0.5 else " (target ≤ 0.5 missed)"
            row += f" {'—' if ratio is None else f'{ratio:.2f}'}{mark} | {_s(res.paired_ratio(), '')} |"
        row += f" {_s(statistics.median(res.download))} | {_s(statistics.median(res.download_gunzip))} |"
        lines.append(row)
    lines += [
        "",
        "*dockyard / docker*: the ratio of the medians (the target is at most 0.5); *per-run ratios*: "
        "the median of the ratios of the two pulls of each run, which followed the same removal and pause. "
        "*download + verify*: a Python loop over the registry API fetching the manifest, the config and "
        "the layers (3 at a time, like the engines) and checking each blob's sha256, writing nothing; "
        "*+ gunzip*: the same, also decompressing each layer and checking its diff ID. What a pull takes "
        "beyond that is spent writing the files.",
        "",
        "Where the time goes: the median moment, from the start of `pull`, when the last layer printed "
        "`Download complete`, and the rest of the pull after it. Docker downloads every layer to a file "
        "first and then unpacks them one after the other. Dockyard streams each layer straight into an "
        "unpacker as it downloads, up to 3 layers at a time, each through a bounded pipe (so a big "
        "layer's download ends only shortly before its unpacking does, and a 4th layer starts "
        "downloading when one of the first 3 is unpacked), and commits the layers in order. Each run's "
        "output lines, timed, are kept in /var/tmp/dockyard-bench/logs/pull-timelines.txt.",
        "",
        "| image | " + " | ".join(f"{n}: downloads done / rest" for n in names) + " |",
        "| --- |" + " ---: |" * len(names),
    ]
    for res in report.results:
        cells = []
        for n in names:
            d, total = res.median_downloaded(n), res.median(n)
            cells.append("—" if d is None or total is None else f"{d:.2f} s / {total - d:.2f} s")
        lines.append(f"| {res.image.label} | " + " | ".join(cells) + " |")
    spread = []
    for res in report.results:
        for n in names:
            walls = [r.wall for r in res.pulls.get(n, [])]
            if len(walls) > 1 and max(walls) > 2 * min(walls):
                spread.append(f"{n} on {res.image.label} ({min(walls):.2f}-{max(walls):.2f} s)")
    lines.append("")
    if spread:
        lines += [
            "Runs that vary more than twofold, which makes their median and ratio less certain: "
            + "; ".join(spread)
            + ".",
            "",
        ]
    lines += ["Every run, in seconds:", ""]
    lines += ["| image | engine | runs |", "| --- | --- | --- |"]
    for res in report.results:
        for n in names:
            runs = ", ".join(f"{r.wall:.2f}" for r in res.pulls.get(n, []))
            lines.append(f"| {res.image.label} | {n} | {runs} |")
    lines.append("")
    if report.rss is not None:
        r = report.rss
        ok = "within" if r.hwm < 150 * 2**20 else "over"
        lines += [
            f"Memory: a fresh dockyardd pulling the 300 MB image peaked at **{r.hwm / 2**20:.0f} MiB** "
            f"resident (`VmHWM`, the whole process with all its threads; {ok} the 150 MB target); it "
            f"used {r.baseline / 2**20:.0f} MiB before the pull, and sampling `VmRSS` every 20 ms during "
            f"it saw at most {r.sampled_peak / 2**20:.0f} MiB"
            + (f" (with {r.children} child processes)" if r.children else " (it started no child process)")
            + "."
            + (
                f" For comparison, dockerd's `VmHWM` over the whole benchmark was "
                f"{report.dockerd_hwm / 2**20:.0f} MiB."
                if report.dockerd_hwm
                else ""
            ),
            "",
        ]
    lines += [
        "The images (bench/images.py, cached under /var/tmp/dockyard-bench): busybox from the host's binary; "
        "a Debian bookworm root made by `debootstrap --variant=minbase` with apt's lists and package cache "
        "removed, as in the official images (and the few files that named the mirror it came from); "
        "3 layers of 25 files of 4 MB, alternately random bytes and word-salad text; 5 layers of 5,000 "
        "files of 1-4 KB in 500 directories each. Layers are "
        "gzip level 6; manifests are Docker schema 2.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark pull from a local registry.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pause", type=float, default=60, help="seconds after sync, once per run")
    parser.add_argument("--images", default=",".join(bench_images.NAMES))
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/pull.py needs root (daemons, mounts)", file=sys.stderr)
        return 1
    names = tuple(n for n in args.images.split(",") if n)
    unknown = set(names) - set(bench_images.NAMES)
    if unknown:
        parser.error(f"unknown images {sorted(unknown)}; choose from {bench_images.NAMES}")
    engines = () if args.no_docker else ("docker", "podman")
    report = run_benchmark(args.runs, args.pause, names, engines, rss=not args.no_rss)
    text = render(report)
    write_section(args.output, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
