"""The per-container shim against the real kernel: started detached as the daemon will start it, it runs a
busybox container through the built-in runtime, logs its output in json-file format, serves attach and
control requests on its socket, records the exit, and outlives the process that started it.

Every test checks that nothing is left behind: no shim, no process, no mount, no cgroup."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import testimages
from harness import until

from dockyard.images.layers import apply_layer
from dockyard.linux.cgroups import Cgroup, detect_layout
from dockyard.logs.jsonfile import read_logs
from dockyard.runtime.shim import ShimConfig, ShimStarted, fork_shim, start_shim
from dockyard.runtime.shim_protocol import ShimClient, ShimError, demux, read_json
from dockyard.runtime.spec import ContainerOptions, build_spec

LAYOUT = detect_layout()
TIMEOUT = 20.0


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie does not: it may be ours to reap when this process is a subreaper)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return False
    return text[text.rindex(b")") + 2 : text.rindex(b")") + 3] not in (b"Z", b"X")


@dataclass
class Box:
    """A bundle (busybox rootfs, the engine's /etc files) and a state dir for one container's shim."""

    root: Path
    cgroup_parent: str
    shims: list[int]
    state_dir: Path

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    @property
    def log(self) -> Path:
        return self.state_dir / "container-json.log"

    def config(self, cmd: list[str], *, stdin_once: bool = False, **options: Any) -> ShimConfig:
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        (self.bundle / "hostname").write_text(cid[:12] + "\n")
        opts = ContainerOptions(
            container_id=cid,
            rootfs=str(self.bundle / "rootfs"),
            cmd=cmd,
            hostname_path=str(self.bundle / "hostname"),
            hosts_path=str(self.bundle / "hosts"),
            resolv_conf_path=str(self.bundle / "resolv.conf"),
            cgroup_path=f"{self.cgroup_parent}/{cid}",
            **options,
        )

        def lookup(path: str) -> str | None:
            f = self.bundle / "rootfs" / path.lstrip("/")
            return f.read_text() if f.exists() else None

        spec = build_spec(opts, cgroup_version=LAYOUT.version, user_lookup=lookup)
        (self.bundle / "config.json").write_text(json.dumps(spec))
        return ShimConfig(
            id=cid,
            bundle=str(self.bundle),
            state_dir=str(self.state_dir),
            log_path=str(self.log),
            open_stdin=opts.open_stdin,
            stdin_once=stdin_once,
        )

    def start(self, config: ShimConfig) -> ShimStarted:
        started = start_shim(config, timeout=TIMEOUT)
        self.shims.append(started.shim_pid)
        return started

    def client(self) -> ShimClient:
        return ShimClient(str(self.state_dir))

    def exit_record(self) -> dict[str, Any]:
        record = self.client().wait(timeout=TIMEOUT)
        until("the shim to exit", lambda: not any(_alive(p) for p in self.shims))
        return record

    def logged(self) -> list[tuple[str, bytes]]:
        return [(stream, data) for stream, _, data in read_logs(self.log)]


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    bundle = tmp_path / "bundle"
    apply_layer(io.BytesIO(testimages.base_layer().tar), bundle / "rootfs", whiteout_mode="delete")
    (bundle / "hosts").write_text("127.0.0.1\tlocalhost\n")
    (bundle / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    b = Box(tmp_path, f"/dockyard-shim-it-{uuid.uuid4().hex[:8]}", [], tmp_path / "state")
    try:
        yield b
    finally:
        pid_file = b.state_dir / "shim.pid"
        if pid_file.exists():
            b.shims.append(int(pid_file.read_text()))
        for pid in b.shims:
            if _alive(pid):  # the test failed half-way: stop the container, then its shim
                try:
                    b.client().kill(signal.SIGKILL, all=True)
                    b.client().wait(timeout=TIMEOUT)
                except (OSError, ShimError):
                    pass
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        until("the shims to go", lambda: not any(_alive(p) for p in b.shims))
        parent = Cgroup.at(LAYOUT, b.cgroup_parent)
        leftovers = [p for p in parent.paths.values() if os.path.exists(p) and len(list(os.walk(p))) > 1]
        with_pids = parent.pids()
        parent.remove()
        assert not leftovers, f"cgroups left behind: {leftovers}"
        assert not with_pids
        with open("/proc/self/mounts") as f:
            assert not [line for line in f if str(tmp_path) in line]
        assert not _processes_in(tmp_path)


def _processes_in(path: Path) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for link in ("root", "cwd"):
                try:
                    if os.readlink(f"/proc/{pid}/{link}").startswith(str(path)) and _alive(int(pid)):
                        found.append(int(pid))
                except OSError:
                    pass
    return found


def test_logs_output_and_records_the_exit(box: Box) -> None:
    config = box.config(["sh", "-c", "echo out; echo err >&2; exit 3"])
    started = box.start(config)
    assert started.container_pid > 0
    record = box.exit_record()
    assert record["ExitCode"] == 3
    assert record["OOMKilled"] is False
    assert record["FinishedAt"].endswith("Z")
    assert read_json(str(box.state_dir / "exit.json")) == record
    assert sorted(box.logged()) == [("stderr", b"err\n"), ("stdout", b"out\n")]
    lines = [json.loads(line) for line in box.log.read_text().splitlines()]
    assert {line["stream"] for line in lines} == {"stdout", "stderr"}
    assert all(set(line) == {"log", "stream", "time"} for line in lines)
    state = read_json(str(box.state_dir / "state.json"))
    assert state["pid"] == started.container_pid and state["shim_pid"] == started.shim_pid
    assert not (box.state_dir / "shim.sock").exists()
    assert not any(os.path.exists(p) for p in Cgroup.from_dict(state["cgroup"]).paths.values())


def test_kill_through_the_socket(box: Box) -> None:
    box.state_dir = box.root / ("long-" * 20) / "state"  # beyond a unix socket path's 108 bytes
    box.start(box.config(["sleep", "100"]))
    client = box.client()
    state = client.state()
    assert state["status"] == "running" and state["tty"] is False
    client.kill(signal.SIGKILL)
    assert box.exit_record()["ExitCode"] == 137


def test_a_failed_start_is_one_line_and_an_exit_record(box: Box) -> None:
    with pytest.raises(Exception) as err:
        box.start(box.config(["nosuchbinary"]))
    assert str(err.value) == 'exec: "nosuchbinary": executable file not found in $PATH'
    record = read_json(str(box.state_dir / "exit.json"))
    assert record["ExitCode"] == 127 and "nosuchbinary" in record["Error"]
    box.shims.append(int((box.state_dir / "shim.pid").read_text()))


def test_the_shim_outlives_the_process_that_started_it(box: Box) -> None:
    config = box.config(["sh", "-c", "sleep 1; echo finished"])
    (box.root / "config.json").write_text(json.dumps(config.to_dict()))
    # a short-lived starter, as a daemon killed right after starting the container
    script = (
        "import json, sys; from dockyard.runtime.shim import ShimConfig, start_shim; "
        f"s = start_shim(ShimConfig.from_dict(json.load(open({str(box.root / 'config.json')!r})))); "
        "print(s.shim_pid, s.container_pid)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    shim_pid, container_pid = map(int, out.stdout.split())
    box.shims.append(shim_pid)
    assert _alive(shim_pid) and _alive(container_pid)
    assert box.client().state()["status"] == "running"
    record = box.exit_record()
    assert record["ExitCode"] == 0
    assert box.logged() == [("stdout", b"finished\n")]


def test_attach_with_stdin_once(box: Box) -> None:
    config = box.config(
        ["sh", "-c", "read line; echo got $line; echo err >&2"], open_stdin=True, stdin_once=True
    )
    box.start(config)
    sock, tty, data = box.client().attach(stdin=True, timeout=TIMEOUT)
    assert tty is False
    with sock:
        sock.sendall(b"hello\n")
        sock.shutdown(socket.SHUT_WR)  # end of stdin: the shim closes the container's
        while chunk := sock.recv(65536):
            data += chunk
    frames, rest = demux(data)
    assert rest == b""
    assert sorted(frames) == [(1, b"got hello\n"), (2, b"err\n")]
    assert box.exit_record()["ExitCode"] == 0
    assert sorted(box.logged()) == [("stderr", b"err\n"), ("stdout", b"got hello\n")]


def test_a_terminal_is_logged_resized_and_attached(box: Box) -> None:
    box.start(box.config(["sh", "-c", "tty; read x; stty size"], tty=True, open_stdin=True))
    client = box.client()
    assert client.state()["tty"] is True
    client.resize(30, 100)
    sock, tty, data = client.attach(stdin=True, timeout=TIMEOUT)
    assert tty is True
    with sock:
        # type only once `tty` has printed (to the log; an attach sees only what comes after it): the
        # terminal echoes what is typed, and an early newline would come first
        deadline = time.monotonic() + TIMEOUT
        while b"/dev/pts/0" not in b"".join(d for _, d in box.logged()):
            assert time.monotonic() < deadline, "tty printed nothing"
            time.sleep(0.02)
        sock.sendall(b"\n")
        while chunk := sock.recv(65536):
            data += chunk
    assert b"30 100\r\n" in data  # raw, no frames with a terminal
    assert box.exit_record()["ExitCode"] == 0
    logged = b"".join(d for _, d in box.logged())
    assert {s for s, _ in box.logged()} == {"stdout"}
    assert logged.startswith(b"/dev/pts/0\r\n") and logged.endswith(b"30 100\r\n")


def test_fork_shim_is_quicker_to_start(box: Box) -> None:
    config = box.config(["true"])
    t0 = time.monotonic()
    started = fork_shim(config, timeout=TIMEOUT)
    forked = time.monotonic() - t0
    box.shims.append(started.shim_pid)
    assert box.exit_record()["ExitCode"] == 0
    print(f"fork_shim: container exec'd {forked * 1000:.1f} ms after the call")


def test_follow_the_log_of_a_running_container(box: Box) -> None:
    box.start(box.config(["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done"]))
    exited = box.state_dir / "exit.json"  # written once the log is complete: the follower's stop condition
    deadline = time.monotonic() + TIMEOUT
    got = []
    for _, _, data in read_logs(
        box.log, follow=True, stop=lambda: exited.exists() or time.monotonic() > deadline
    ):
        got.append(data)
    assert got == [f"line {i}\n".encode() for i in range(1, 6)]
    assert box.exit_record()["ExitCode"] == 0


def test_an_out_of_memory_kill_is_recorded(box: Box) -> None:
    mib = 1024 * 1024
    script = "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived"
    box.start(box.config(["sh", "-c", script], memory=16 * mib, memory_swap=16 * mib))
    record = box.exit_record()
    assert record["OOMKilled"] is True
    assert record["ExitCode"] == 137
