"""Run Debian's docker-registry (distribution 2.8) on loopback for tests and demos.

Library use::

    reg = start_registry(tmp_path / "registry")
    try:
        ...  # push to reg.address ("127.0.0.1:PORT")
    finally:
        reg.stop()

CLI use (the registry outlives the script; stop it by the PID in the pidfile)::

    python tools/registry.py start --dir /tmp/reg [--port 5000] [--pidfile /tmp/reg/registry.pid]
    python tools/registry.py stop --pidfile /tmp/reg/registry.pid

Stdlib only, so it runs from any interpreter without installing the project.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_BIN = "/usr/bin/docker-registry"
HOST = "127.0.0.1"

# An empty ProxyHandler: loopback traffic must never be sent to an http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class RegistryProcess:
    """A running docker-registry. Fields after `host` are optional so it can be rebuilt from a pidfile."""

    pid: int
    port: int
    storage_dir: Path
    config_path: Path
    log_path: Path
    host: str = HOST
    # Kept when we spawned it ourselves, so stop() can reap the child instead of leaving a zombie.
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM this PID (never by name), wait up to `timeout`, then SIGKILL."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
            return
        stop_pid(self.pid, timeout)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def __enter__(self) -> RegistryProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port(host: str = HOST) -> int:
    """Ask the kernel for a free port. Racy by nature; start_registry retries if it loses the race."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def write_config(
    workdir: Path, port: int, log_level: str = "info", htpasswd: dict[str, str] | None = None
) -> Path:
    """Write a minimal config.yml: filesystem storage under workdir, deletes allowed, no health, and
    no auth unless `htpasswd` users are given (Basic auth, bcrypt entries made by `htpasswd -B`)."""
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    q = json.dumps  # a JSON string is a valid YAML double-quoted scalar, so paths need no escaping rules
    config = f"""\
version: 0.1
log:
  level: {log_level}
  formatter: text
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: {q(str(storage))}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {q(f"{HOST}:{port}")}
  # A fixed secret silences the "generated random secret" warning; uploads are signed with it.
  secret: dockyard-test-registry
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
"""
    if htpasswd:
        lines = [
            subprocess.run(
                ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
            ).stdout.strip()
            for user, password in htpasswd.items()
        ]
        (workdir / "htpasswd").write_text("\n".join(lines) + "\n")
        config += f"auth:\n  htpasswd:\n    realm: dockyard-test\n    path: {q(str(workdir / 'htpasswd'))}\n"
    path = workdir / "config.yml"
    path.write_text(config)
    return path


def start_registry(
    workdir: Path,
    port: int | None = None,
    timeout: float = 20,
    log_level: str = "info",
    htpasswd: dict[str, str] | None = None,
) -> RegistryProcess:
    """Start docker-registry serving workdir/storage on 127.0.0.1:port and wait until GET /v2/ is 200.

    The child gets its own session, so it survives the caller (for the CLI) and a terminal's ^C.
    Raises RuntimeError (with the log tail) if it exits early or does not answer within `timeout`.
    """
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    attempts = 3 if port is None else 1
    last_error: RuntimeError | None = None
    for _ in range(attempts):
        try:
            return _start_once(
                workdir, port if port is not None else free_port(), timeout, log_level, htpasswd
            )
        except _PortTaken as e:
            last_error = RuntimeError(str(e))
    assert last_error is not None
    raise last_error


class _PortTaken(RuntimeError):
    pass


def _start_once(
    workdir: Path, port: int, timeout: float, log_level: str, htpasswd: dict[str, str] | None
) -> RegistryProcess:
    config_path = write_config(workdir, port, log_level, htpasswd)
    log_path = workdir / "registry.log"
    with open(log_path, "ab") as log:
        # stdin/stdout/stderr all redirected: a detached child must not hold the caller's pipes open
        # (otherwise `addr=$(python tools/registry.py start ...)` would never return).
        proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            start_new_session=True,
        )
    reg = RegistryProcess(
        pid=proc.pid,
        port=port,
        storage_dir=workdir / "storage",
        config_path=config_path,
        log_path=log_path,
        _proc=proc,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = reg.log_tail()
            msg = f"docker-registry exited with {proc.returncode} on port {port}:\n{tail}"
            raise (_PortTaken if "address already in use" in tail else RuntimeError)(msg)
        # /v2/ alone is not proof: if the port was taken, another registry answers while ours is dying.
        if _listens(proc.pid, port) and _ping(reg.url):
            return reg
        time.sleep(0.05)
    reg.stop()
    raise RuntimeError(f"docker-registry did not answer on {reg.url} within {timeout}s:\n{reg.log_tail()}")


def _listens(pid: int, port: int) -> bool:
    """Does `pid` own the LISTEN socket on HOST:port? Read from /proc, so it works at any log level."""
    local = f"{socket.htonl(int.from_bytes(socket.inet_aton(HOST), 'big')):08X}:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            inodes = {
                cols[9] for cols in (line.split() for line in f) if cols[1] == local and cols[3] == "0A"
            }
        if not inodes:
            return False
        fd_dir = Path(f"/proc/{pid}/fd")
        return any(os.readlink(fd_dir / fd)[8:-1] in inodes for fd in os.listdir(fd_dir))
    except OSError:
        return False


def _ping(url: str) -> bool:
    """The registry answers /v2/: 200, or 401 when it requires authentication."""
    try:
        with _OPENER.open(f"{url}/v2/", timeout=1) as resp:
            return resp.status == 200
    except urllib.error.HTTPError as e:
        return e.code == 401
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie (a zombie has exited; only its parent can reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_registry(pid: int) -> bool:
    """Guard against a recycled PID in a stale pidfile: only signal a docker-registry process."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return os.path.basename(argv0) == b"docker-registry"


def terminate_pid(pid: int, timeout: float = 10) -> None:
    """SIGTERM this PID, wait up to `timeout`, then SIGKILL; returns once it is gone (or a zombie)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.05)


def stop_pid(pid: int, timeout: float = 10) -> bool:
    """Stop a registry we did not spawn (e.g. from a pidfile). Returns False if it was not running."""
    if not alive(pid) or not _is_registry(pid):
        return False
    terminate_pid(pid, timeout)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Debian's docker-registry on 127.0.0.1 for tests.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_start = sub.add_parser("start", help="start a detached registry and print its address")
    p_start.add_argument("--dir", required=True, type=Path, help="work dir (config, storage, log)")
    p_start.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p_start.add_argument("--pidfile", type=Path, default=None, help="default: DIR/registry.pid")
    p_start.add_argument("--timeout", type=float, default=20)
    p_stop = sub.add_parser("stop", help="stop the registry whose PID is in the pidfile")
    p_stop.add_argument("--pidfile", required=True, type=Path)
    p_stop.add_argument("--timeout", type=float, default=10)
    args = parser.parse_args(argv)

    if args.cmd == "start":
        try:
            reg = start_registry(args.dir, args.port, args.timeout)
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 1
        pidfile = args.pidfile or reg.storage_dir.parent / "registry.pid"
        pidfile.write_text(f"{reg.pid}\n")
        print(reg.address)
        return 0

    try:
        pid = int(args.pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError) as e:
        print(f"cannot read a PID from {args.pidfile}: {e}", file=sys.stderr)
        return 1
    if not stop_pid(pid, args.timeout):
        print(f"no docker-registry running with PID {pid}", file=sys.stderr)
        return 1
    args.pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
