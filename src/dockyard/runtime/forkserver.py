"""A fork-server for shims: a single-threaded child of the daemon that has already imported the shim.

Starting a shim as a fresh interpreter costs ~150 ms of imports before it can spawn the container; forking a
process that has them loaded costs ~1 ms. The daemon itself cannot fork safely (it runs threads and an event
loop), so it keeps this small helper process for that one job.

Protocol, over a SOCK_SEQPACKET socketpair (one message per request, no framing needed):
  daemon -> server: {"config": "<state dir>/config.json"} with the write end of the shim's ready pipe
                    attached (SCM_RIGHTS);
  server -> daemon: {"ok": true} once the shim is forked (it double-forks: init adopts it),
                    or {"error": "..."}.
The daemon then reads the shim's report from the pipe's read end itself, so the server never waits on a
container and serves concurrent starts one fork after another.

The server exits when the daemon's end of the socket closes (the daemon exited or was killed); the shims it
forked live on. If the server dies, the daemon starts another on the next request; if that fails too, it
falls back to a fresh interpreter per shim (`shim.start_shim`).
"""

from __future__ import annotations

import array
import contextlib
import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from typing import NoReturn

from ..linux.process import set_dumpable
from .shim import ShimConfig, ShimStarted, await_ready, fork_detached, prepare, start_shim

__all__ = ["ShimLauncher"]

log = logging.getLogger(__name__)

MAX_MESSAGE = 65536
REPLY_TIMEOUT = 10.0


class ShimLauncher:
    """The daemon's side: starts shims through the fork-server (thread-safe), or directly as a fallback."""

    def __init__(self, *, python: str = sys.executable, use_fork_server: bool = True) -> None:
        self.python = python
        self.use_fork_server = use_fork_server
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, config: ShimConfig, *, timeout: float = 30.0) -> ShimStarted:
        """Start the shim of `config`; returns once its container runs. Raises builtin.SpawnError."""
        if not self.use_fork_server:
            return start_shim(config, python=self.python, timeout=timeout)
        r, w = prepare(config)
        try:
            forked = self._request(os.path.join(config.state_dir, "config.json"), w)
        finally:
            os.close(w)
        if not forked:
            os.close(r)
            return start_shim(config, python=self.python, timeout=timeout)
        return await_ready(r, timeout)

    def close(self) -> None:
        """Stop the fork-server (the shims it started are not affected)."""
        with self._lock:
            self._stop_server()

    # -- the server process

    def _request(self, config_path: str, ready_w: int) -> bool:
        message = json.dumps({"config": config_path}).encode()
        with self._lock:
            for attempt in range(2):
                try:
                    sock = self._server()
                    sock.sendmsg(
                        [message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [ready_w]))]
                    )
                    reply = sock.recv(MAX_MESSAGE)
                    if not reply:
                        raise ConnectionResetError("the fork-server exited")
                    answer = json.loads(reply)
                    if answer.get("ok"):
                        return True
                    log.warning("fork-server: %s", answer.get("error"))
                    return False
                except (OSError, ValueError) as e:
                    log.warning("fork-server: %s (attempt %d)", e, attempt + 1)
                    self._stop_server()
            return False

    def _server(self) -> socket.socket:
        if self._sock is not None and self._proc is not None and self._proc.poll() is None:
            return self._sock
        self._stop_server()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [self.python, "-m", "dockyard.runtime.forkserver", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # a terminal's ^C to the daemon's group must not reach it
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(REPLY_TIMEOUT)
        self._sock = ours
        return ours

    def _stop_server(self) -> None:
        if self._sock is not None:
            self._sock.close()  # its EOF makes the server exit
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(2.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(2.0)
            self._proc = None


# --- the server --------------------------------------------------------------------------------------------


def _receive(sock: socket.socket) -> tuple[bytes, list[int]]:
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    return data, list(fds)


def _fork_shim(config_path: str, ready_w: int) -> None:
    with open(config_path) as f:
        config = ShimConfig.from_dict(json.load(f))
    fork_detached(config, ready_w)


def serve(sock: socket.socket) -> NoReturn:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_dumpable(False)  # as the shims it forks (which inherit it): see shim._Shim.run
    # Shims share this process's memory copy-on-write: a collection here or in a shim would write to the
    # header of every object and copy every page. Objects made from now on are few (one request each).
    gc.disable()
    gc.freeze()
    while True:
        try:
            data, fds = _receive(sock)
        except OSError:
            os._exit(1)
        if not data:
            os._exit(0)  # the daemon is gone
        try:
            if len(fds) != 1:
                raise ValueError("a request needs exactly one file descriptor")
            _fork_shim(json.loads(data)["config"], fds[0])
            reply: dict[str, object] = {"ok": True}
        except Exception as e:  # noqa: BLE001 (any failure is reported; the server lives on)
            reply = {"error": f"{type(e).__name__}: {e}"}
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        try:
            sock.send(json.dumps(reply).encode())
        except OSError:
            os._exit(1)


def main() -> NoReturn:
    fd = int(sys.argv[1])
    serve(socket.socket(fileno=fd))


if __name__ == "__main__":
    main()
