"""Real processes for integration tests: a dockyardd, the official docker CLI, and the dockyard CLI."""

from __future__ import annotations

import fcntl
import hashlib
import os
import pty
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from dockyard.network import remove_host_networking

BIN_DIR = Path(sys.executable).parent
DOCKYARDD = str(BIN_DIR / "dockyardd")
DOCKYARD = str(BIN_DIR / "dockyard")
COMMAND_TIMEOUT = 120


def ping(socket_path: str, timeout: float = 2.0) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
        sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False
    finally:
        sock.close()


@dataclass
class DaemonProcess:
    """A dockyardd started for tests, on its own socket, data root and exec root; stopped by its PID."""

    root: Path
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    # a bridge of its own, so test daemons never touch a user's dockyard0 nor each other's; named after the
    # root, so a second DaemonProcess on the same root (a restart) takes the same bridge
    bridge: str = ""
    instances: ClassVar[list[DaemonProcess]] = []

    def __post_init__(self) -> None:
        if not self.bridge:
            self.bridge = "dyt" + hashlib.sha256(str(self.root).encode()).hexdigest()[:8]
        DaemonProcess.instances.append(self)

    @property
    def socket_path(self) -> str:
        return str(self.root / "dockyard.sock")

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def pidfile(self) -> Path:
        return self.root / "dockyardd.pid"

    @property
    def log_path(self) -> Path:
        return self.root / "dockyardd.log"

    def command(self) -> list[str]:
        return [
            DOCKYARDD,
            "-H",
            self.host,
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.exec_root),
            "--pidfile",
            str(self.pidfile),
            "--config-file",
            str(self.root / "daemon.json"),
            "--log-level",
            "debug",
            "--bridge",
            self.bridge,
            *self.extra_args,
        ]

    def start(self, timeout: float = 30) -> DaemonProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "daemon.json"
        if not config.exists():
            config.write_text("{}\n")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockyardd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if ping(self.socket_path):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dockyardd did not answer within {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 20, keep_network: bool = False) -> int | None:
        """SIGTERM by PID, then SIGKILL if it does not exit in time. Returns the exit status. The daemon
        leaves its bridges and rules for its containers (as dockerd does); unless `keep_network` (a test
        that restarts the daemon around running containers), they are removed here."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not keep_network:
            self.remove_network()
        return self.proc.returncode

    def remove_network(self) -> None:
        """Delete this daemon's bridges (the default one and its user networks') and its nftables table."""
        remove_host_networking(self.data_root, self.bridge)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_cli(
    argv: list[str],
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> Result:
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def run_in_pty(argv: list[str], env: dict[str, str], keys: bytes, timeout: float = 30.0) -> tuple[int, bytes]:
    """argv on a fresh 30x100 pseudo-terminal; `keys` typed once it printed "size"; (status, output)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env={**os.environ, **env}, start_new_session=True
    )
    os.close(slave)
    output = b""
    typed = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break
                if not data:
                    break
                output += data
            if not typed and b"size" in output:
                os.write(master, keys)
                typed = True
            if proc.poll() is not None and not ready:
                break
        return proc.wait(timeout=5), output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def until(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """check()'s first true value, asked every `interval` s; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
