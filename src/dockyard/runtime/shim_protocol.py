"""What the daemon and a container's shim share: the shim's state directory and its socket's protocol.
Light to import (standard library only): the daemon talks to shims without loading the runtime.

State directory (one per container, written by the shim, each file atomically: temp, fsync, rename):

    config.json   the ShimConfig the shim was started with
    shim.pid      the shim's pid (text)
    state.json    once the container runs: RunningContainer.to_state() plus "StartedAt" and "shim_pid"
    exit.json     once the container exited and its output is logged: {"ExitCode", "FinishedAt",
                  "OOMKilled", "Error"}; the shim is gone (or going) when this exists
    shim.sock     the control and attach socket (below)
    shim.log      the shim's own errors

Socket protocol: a client connects to shim.sock and sends one request, a JSON object on one line; the shim
answers one JSON line, `{"ok": true, ...}` or `{"error": "..."}`:

    {"op": "state"}                          -> {"ok", "pid", "status": "running"|"exited", "tty"}
    {"op": "kill", "signal": 15, "all": false}  (all: every process of the container's cgroup)
    {"op": "resize", "height": 24, "width": 80}
    {"op": "close_stdin"}
    {"op": "wait"}                           -> answered when the container has exited and its output is
                                                logged: {"ok", "ExitCode", "FinishedAt", "OOMKilled"}
    {"op": "attach", "stdin": b, "stdout": b, "stderr": b}
                                             -> {"ok", "tty"}, then the connection carries raw bytes: the
                                                container's output from now on, framed as Docker's attach
                                                stream without a TTY (8-byte header: stream 1 or 2, three
                                                zero bytes, big-endian length) and raw with one; what the
                                                client sends goes to the container's stdin if it asked for
                                                stdin and is the first to do so. The shim closes the
                                                connection after the container's last output. The end of
                                                a stdin client's input (its half-close) closes the
                                                container's stdin with StdinOnce and no terminal (the
                                                output goes on); otherwise it ends that attach, as
                                                dockerd's: the connection is closed, the stdin stays open.
    {"op": "exec", "id": "<exec id>", "process": {OCI process}, "seccomp": {linux.seccomp} | null,
     "tty": b, "stdin": b, "stdout": b, "stderr": b, "detach": b, "mux": b}
                                             -> {"ok", "pid", "tty"} or {"error", "exit_code"} (it could not
                                                be started: 126/127 as for a container, else null). Unless
                                                detached, the connection then carries the exec's stream,
                                                framed as attach's when `mux` (default: without a tty), else
                                                raw (dockerd frames it as the start request asks, whatever
                                                the exec's tty), and is closed once the exec has exited and
                                                its output is sent; detached, it is closed at once and the
                                                output discarded. The client's half-close ends the exec's
                                                stdin, or with a tty (and a stdin) ends the stream as a
                                                detach: the process runs on, its terminal open.
    {"op": "exec_state", "id": "<exec id>"}  -> {"ok", "pid", "running", "ExitCode"}
    {"op": "exec_wait", "id": "<exec id>"}   -> answered when the exec has exited and its stream ended:
                                                {"ok", "ExitCode"}
    {"op": "exec_resize", "id": "<exec id>", "height": 24, "width": 80}
    {"op": "exec_kill", "id": "<exec id>", "signal": 15}  (while it runs: not once its pid is reaped)

Ended execs are forgotten by the shim 10 minutes after their end.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from typing import Any

SOCKET_NAME = "shim.sock"
STDOUT, STDERR = 1, 2  # stream ids in attach frames, as Docker's


class ShimError(RuntimeError):
    pass


def write_json_atomic(path: str, data: Any, *, sync: bool = True) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(data).encode())
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


def read_json(path: str) -> Any | None:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def connect(state_dir: str, timeout: float | None = 10.0) -> socket.socket:
    """A connection to the shim's socket. A unix socket path is limited to 108 bytes; the directory's
    /proc/self/fd link keeps long state paths usable."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    path = os.path.join(state_dir, SOCKET_NAME)
    dirfd = -1
    try:
        if len(path.encode()) >= 100:
            dirfd = os.open(state_dir, os.O_PATH | os.O_CLOEXEC)
            path = f"/proc/self/fd/{dirfd}/{SOCKET_NAME}"
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    finally:
        if dirfd >= 0:
            os.close(dirfd)
    return sock


def _read_line(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    """One JSON line, and whatever came after it (the start of an attach stream)."""
    buf = b""
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ShimError("the shim closed the connection")
        buf += chunk
    line, rest = buf.split(b"\n", 1)
    reply = json.loads(line)
    if "error" in reply:
        raise ShimError(reply["error"])
    return reply, rest


class ShimClient:
    """Requests to one container's shim."""

    def __init__(self, state_dir: str):
        self.state_dir = state_dir

    def request(self, op: str, timeout: float | None = 10.0, **args: Any) -> dict[str, Any]:
        with contextlib.closing(connect(self.state_dir, timeout)) as sock:
            sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            return _read_line(sock)[0]

    def state(self) -> dict[str, Any]:
        return self.request("state")

    def kill(self, sig: int = 15, *, all: bool = False) -> None:
        self.request("kill", signal=int(sig), all=all)

    def resize(self, height: int, width: int) -> None:
        self.request("resize", height=height, width=width)

    def close_stdin(self) -> None:
        self.request("close_stdin")

    def exec_state(self, exec_id: str) -> dict[str, Any]:
        return self.request("exec_state", id=exec_id)

    def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        self.request("exec_resize", id=exec_id, height=height, width=width)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """The exit record, once the container exited (from exit.json when the shim is already gone)."""
        done = read_json(os.path.join(self.state_dir, "exit.json"))
        if done is not None:
            return done
        try:
            reply = self.request("wait", timeout=timeout)
            reply.pop("ok", None)
            return reply
        except (ConnectionError, FileNotFoundError, ShimError):
            # the shim exited between our look and the request: its record is written by then
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                done = read_json(os.path.join(self.state_dir, "exit.json"))
                if done is not None:
                    return done
                time.sleep(0.01)
            raise

    def attach(
        self, *, stdin: bool = False, stdout: bool = True, stderr: bool = True, timeout: float | None = 10.0
    ) -> tuple[socket.socket, bool, bytes]:
        """(connection, tty, first bytes of the stream already read)."""
        sock = connect(self.state_dir, timeout)
        try:
            sock.sendall(
                json.dumps({"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}).encode()
                + b"\n"
            )
            reply, rest = _read_line(sock)
        except BaseException:
            sock.close()
            raise
        return sock, bool(reply.get("tty")), rest


def demux(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split attach frames: ([(stream id, payload)...], the unfinished rest)."""
    frames = []
    while len(data) >= 8:
        size = int.from_bytes(data[4:8], "big")
        if len(data) < 8 + size:
            break
        frames.append((data[0], data[8 : 8 + size]))
        data = data[8 + size :]
    return frames, data
