"""The per-container shim: the container's parent for its whole life, independent of the daemon.

One small process per container (as containerd-shim-runc-v2 or conmon). It
  - is a session leader (no terminal's signals reach it) and a child subreaper, so the container's init
    and every process re-parented inside the container are its children, all reaped here;
  - holds the container's stdio: pipes, or the pty master when the spec asks for a terminal;
  - writes stdout/stderr to the json-file log (`dockyard.logs.jsonfile`), with rotation;
  - serves attach and control requests on a unix socket in its state dir (`shim_protocol` has the
    protocol and the files);
  - starts exec processes (`builtin.exec_process`) as its children, streams their output to the client
    that asked (never to the log) and keeps their exit codes by exec id; they are killed with the
    container's init;
  - records state.json once the container runs and exit.json once it has exited, its output is logged
    and its cgroup removed; then exits. The daemon may die and come back meanwhile: nothing here depends
    on it.

Started by the daemon with `start_shim` (a fresh interpreter, `python -m dockyard.runtime.shim`), or with
`fork_shim` from a single-threaded fork-server that has already imported this module (much faster). Both
double-fork, so the shim is nobody's child but init's, and report through a pipe once the container's
command has been exec'd (or why it could not be).

One thread, one selector loop: SIGCHLD arrives through the wakeup fd; the loop never blocks on a client,
so a slow attach client cannot stall the log (it is dropped once far behind).

The runtime behind `spawn`, `kill` and `delete` is the built-in one, or runc/crun through their command line
(`external.ExternalRuntime`) when `runtime_path` is set; both fit `_Runtime`, so the rest never asks which.

Not done (yet): log drivers other than json-file.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import gc
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn, Protocol

from ..linux.cgroups import CGROUP_ROOT
from ..linux.process import set_child_subreaper, set_dumpable
from ..logs.jsonfile import JsonFileWriter, format_time
from . import builtin
from .shim_protocol import SOCKET_NAME, STDERR, STDOUT, read_json, write_json_atomic

__all__ = [
    "ShimConfig",
    "ShimStarted",
    "await_ready",
    "detach",
    "fork_detached",
    "fork_shim",
    "prepare",
    "run_shim",
    "start_shim",
]

READ_SIZE = 256 * 1024
PIPE_SIZE = 1024 * 1024  # fewer wake-ups for a chatty container (the default 64 KiB fills in a blink)
KEEP_ENDED = 600.0  # how long an ended exec's exit code is kept for exec_state/exec_wait
DRAIN_TIMEOUT = 2.0  # after init's exit, how long processes outside its PID namespace may keep our pipes
MAX_CLIENT_BACKLOG = 8 * 1024 * 1024
F_SETPIPE_SZ = 1031


@dataclass
class ShimConfig:
    id: str
    bundle: str
    state_dir: str
    log_path: str | None = None  # None: no log (driver "none"); attach still works
    log_max_size: int | None = None
    log_max_file: int = 1
    open_stdin: bool = False
    stdin_once: bool = False
    # > 0: an attach is on its way (docker run attaches before it starts): the container's output stays
    # in its pipes (nothing read, nothing logged) until the first attach request or for at most this long
    attach_wait: float = 0.0
    terminal: bool | None = None  # None: the spec's process.terminal
    runtime_path: str | None = None  # an external OCI runtime (runc, crun); None: the built-in one
    runtime_name: str = ""
    runtime_root: str = ""  # its --root
    runtime_args: list[str] = field(default_factory=list)  # daemon.json runtimeArgs
    cgroup_root: str = CGROUP_ROOT
    extra: dict[str, Any] = field(default_factory=dict)  # the daemon's own notes, kept in config.json

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShimConfig:
        return cls(**data)


@dataclass
class ShimStarted:
    shim_pid: int
    container_pid: int


# --- starting a shim (the daemon's side) ----------------------------------------------------------------


def prepare(config: ShimConfig) -> tuple[int, int]:
    os.makedirs(config.state_dir, 0o700, exist_ok=True)
    for name in ("exit.json", "state.json", "shim.pid"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(config.state_dir, name))
    write_json_atomic(os.path.join(config.state_dir, "config.json"), config.to_dict(), sync=False)
    return os.pipe2(os.O_CLOEXEC)


def await_ready(r: int, timeout: float) -> ShimStarted:
    """The shim's one report: {"shim_pid", "container_pid"} or {"error", "exit_code"}."""
    deadline = time.monotonic() + timeout
    data = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise builtin.SpawnError(f"the shim did not start the container within {timeout:g} s")
            sel = selectors.DefaultSelector()
            sel.register(r, selectors.EVENT_READ)
            ready = sel.select(left)
            sel.close()
            if not ready:
                continue
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    if not data:
        raise builtin.SpawnError("the shim died before starting the container")
    msg = json.loads(data)
    if "error" in msg:
        raise builtin.SpawnError(msg["error"], msg.get("exit_code"))
    return ShimStarted(int(msg["shim_pid"]), int(msg["container_pid"]))


def start_shim(config: ShimConfig, *, python: str = sys.executable, timeout: float = 30.0) -> ShimStarted:
    """Start a shim in a fresh interpreter; returns once the container runs. Raises SpawnError."""
    r, w = prepare(config)
    try:
        proc = subprocess.Popen(
            [
                python,
                "-m",
                "dockyard.runtime.shim",
                "--config",
                os.path.join(config.state_dir, "config.json"),
                "--ready-fd",
                str(w),
            ],
            pass_fds=(w,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    proc.wait(timeout)  # the first process exits right after forking the shim
    return await_ready(r, timeout)


def fork_shim(config: ShimConfig, *, timeout: float = 30.0) -> ShimStarted:
    """Start a shim by forking the caller, which must be single-threaded (a fork-server)."""
    r, w = prepare(config)
    try:
        fork_detached(config, w, close_in_child=r)
    finally:
        os.close(w)
    return await_ready(r, timeout)


def fork_detached(config: ShimConfig, ready_fd: int, *, close_in_child: int = -1) -> None:
    """Fork the shim of `config` off the caller (single-threaded): a new session, a second fork so that
    init adopts the shim; returns once the intermediate has exited. The shim reports on `ready_fd`."""
    pid = os.fork()
    if pid == 0:
        try:
            if close_in_child >= 0:
                os.close(close_in_child)
            os.setsid()
            detach(config, ready_fd)
        finally:
            os._exit(1)
    os.waitpid(pid, 0)


def detach(config: ShimConfig, ready_fd: int) -> NoReturn:
    # the second fork: the shim is not a session leader's child the daemon could wait for, and init adopts it
    if os.fork():
        os._exit(0)
    run_shim(config, ready_fd=None if ready_fd < 0 else ready_fd)


# --- the shim ---------------------------------------------------------------------------------------------


def run_shim(config: ShimConfig, *, ready_fd: int | None = None) -> NoReturn:
    """Be the shim of `config`'s container until it has exited; never returns."""
    code = 1
    try:
        code = _Shim(config, ready_fd).run()
    except BaseException:
        with contextlib.suppress(Exception):
            sys.stderr.write(traceback.format_exc())
            sys.stderr.flush()
    finally:
        os._exit(code)


def _set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


class _Runtime(Protocol):
    """What the shim needs of an OCI runtime: the `builtin` module and `external.ExternalRuntime` fit it."""

    def spawn(
        self,
        bundle: str,
        container_id: str,
        spec: dict[str, Any],
        *,
        stdio: tuple[int, int, int],
        terminal: bool,
        cgroup_root: str = ...,
    ) -> builtin.RunningContainer: ...

    def kill(self, container: builtin.RunningContainer, sig: int = ..., *, all: bool = False) -> None: ...

    def delete(self, container: builtin.RunningContainer, *, force: bool = False) -> None: ...


def _runtime_of(config: ShimConfig) -> _Runtime:
    if not config.runtime_path:
        return builtin
    from .external import ExternalRuntime  # the built-in path never pays for it

    return ExternalRuntime(
        name=config.runtime_name or os.path.basename(config.runtime_path),
        path=config.runtime_path,
        root=config.runtime_root,
        workdir=config.state_dir,
        args=list(config.runtime_args),
    )


class _Client:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.inbuf = b""
        self.out = bytearray()
        self.attached = False
        self.streams: set[int] = set()
        self.wants_stdin = False
        self.reading = True
        self.closing = False  # answered: closed once its reply is sent
        self.exec: _Exec | None = None  # the exec whose stream this connection carries


class _Exec:
    """A process exec'd in the container (docker exec): its stdio, its streaming client, its exit. Kept
    KEEP_ENDED after its end, so that its exit code can be asked for by id after it is gone."""

    def __init__(self, exec_id: str, tty: bool, mux: bool):
        self.id = exec_id
        self.tty = tty
        self.mux = mux  # its stream framed (Docker's stdout/stderr frames) or raw, as its start asked
        self.pid = 0
        self.pty_master: int | None = None
        self.stdin_fd: int | None = None  # our end of its stdin (a dup of the pty master with a tty)
        self.stdin_pending = b""
        self.outputs: dict[int, int] = {}  # fd -> stream id
        self.client: _Client | None = None  # None: detached, or the client went away (output dropped)
        self.exit_code: int | None = None
        self.exited_at: float | None = None
        self.done = False  # exited and its output drained (or DRAIN_TIMEOUT passed): stream closed
        self.waiters: list[_Client] = []


class _Shim:
    def __init__(self, config: ShimConfig, ready_fd: int | None):
        self.config = config
        self.ready_fd = ready_fd
        self.sel: selectors.BaseSelector = selectors.DefaultSelector()
        self.container: builtin.RunningContainer | None = None
        self.runtime: _Runtime = _runtime_of(config)
        self.tty = False
        self.pty_master: int | None = None
        self.stdin_fd: int | None = None  # our end of the container's stdin
        self.stdin_pending = b""
        self.stdin_owner: _Client | None = None
        self.outputs: dict[int, int] = {}  # fd -> stream id
        self.writer: JsonFileWriter | None = None
        self.clients: dict[int, _Client] = {}
        self.waiters: list[_Client] = []
        self.exit_code: int | None = None
        self.exited_at: float | None = None
        self.finished_at = 0
        self.listener: socket.socket | None = None
        self.outputs_deferred_until: float | None = None  # see ShimConfig.attach_wait
        self.execs: dict[str, _Exec] = {}
        self.exec_pids: dict[int, _Exec] = {}  # the execs still running, by pid

    # -- set-up

    def run(self) -> int:
        cfg = self.config
        # only CAP_SYS_PTRACE may ptrace the shim or open its /proc/PID/fd (the container's pipes, its pty),
        # mem or exe: defence in depth (a process in a container of the host's PID namespace is already
        # refused unless it holds every capability the shim has); what it forks inherits it until execve
        set_dumpable(False)
        if os.getsid(0) != os.getpid():
            os.setsid()
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE, signal.SIGTTOU, signal.SIGTTIN):
            signal.signal(sig, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not a forking daemon's handler
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.chdir(cfg.state_dir)  # and the socket is bound by a short relative name
        null = os.open("/dev/null", os.O_RDWR)
        log = os.open("shim.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(null, 0)
        os.dup2(null, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        # nothing of the starter's (a forking daemon's listening socket...) may stay open in the shim
        keep = self.ready_fd if self.ready_fd is not None else 2
        os.closerange(3, keep)
        os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
        gc.freeze()  # the starter's objects, now holding closed fd numbers, must never be finalized
        self.sel = selectors.DefaultSelector()  # its fd was among those just closed
        set_child_subreaper()
        with open("shim.pid.tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename("shim.pid.tmp", "shim.pid")
        if cfg.runtime_path and not cfg.runtime_root:
            return self._fail(f"no --root for runtime {cfg.runtime_path}", None)

        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wakeup fd is written
        self.sel.register(wake_r, selectors.EVENT_READ, self._on_sigchld)

        with contextlib.suppress(FileNotFoundError):
            os.unlink(SOCKET_NAME)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.listener.bind(SOCKET_NAME)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, self._on_accept)

        try:
            self._spawn()
        except builtin.SpawnError as e:
            return self._fail(str(e), e.exit_code)
        if cfg.log_path:
            self.writer = JsonFileWriter(cfg.log_path, cfg.log_max_size, cfg.log_max_file)
        assert self.container is not None
        state = self.container.to_state()
        state.update(StartedAt=format_time(time.time_ns()), shim_pid=os.getpid(), tty=self.tty)
        write_json_atomic("state.json", state)
        self._ready({"shim_pid": os.getpid(), "container_pid": self.container.pid})
        self._loop()
        return 0

    def _spawn(self) -> None:
        cfg = self.config
        try:
            with open(os.path.join(cfg.bundle, "config.json")) as f:
                spec = json.load(f)
        except (OSError, ValueError) as e:
            raise builtin.SpawnError(f"reading {cfg.bundle}/config.json: {e}") from None
        self.tty = bool(spec.get("process", {}).get("terminal")) if cfg.terminal is None else cfg.terminal
        theirs: list[int] = []
        try:
            if self.tty:
                null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
                theirs.append(null)
                stdio = (null, null, null)
            else:
                if cfg.open_stdin:
                    stdin_r, self.stdin_fd = os.pipe2(os.O_CLOEXEC)
                    theirs.append(stdin_r)
                else:
                    stdin_r = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
                    theirs.append(stdin_r)
                fds = []
                for stream in (STDOUT, STDERR):
                    r, w = os.pipe2(os.O_CLOEXEC)
                    theirs.append(w)
                    with contextlib.suppress(OSError):
                        fcntl.fcntl(r, F_SETPIPE_SZ, PIPE_SIZE)
                    self.outputs[r] = stream
                    fds.append(w)
                stdio = (stdin_r, fds[0], fds[1])
            self.container = self._spawn_in_helper(spec, stdio)
        finally:
            for fd in theirs:
                os.close(fd)  # the container has them now; their last copy closing is our EOF
        if self.tty:
            self.pty_master = self.container.pty_master
            assert self.pty_master is not None
            self.outputs[self.pty_master] = STDOUT
            if cfg.open_stdin:
                self.stdin_fd = os.dup(self.pty_master)
        for fd in self.outputs:
            _set_nonblocking(fd)
        if cfg.attach_wait > 0:
            self.outputs_deferred_until = time.monotonic() + cfg.attach_wait
        else:
            self._watch_outputs()
        if self.stdin_fd is not None:
            _set_nonblocking(self.stdin_fd)

    def _spawn_in_helper(self, spec: dict[str, Any], stdio: tuple[int, int, int]) -> builtin.RunningContainer:
        """runtime.spawn in a short-lived child, which hands back the container's state (and its terminal's
        master, its pidfd) and exits; the container's init, orphaned, comes to us as our subreaper.

        The shim lives as long as its container, sharing the fork-server's memory copy-on-write; running
        the runtime's set-up code here would touch (and so copy) a few MB of it in every shim. In a
        child, those copies go away with the child."""
        cfg = self.config
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            try:
                ours.close()
                try:
                    c = self.runtime.spawn(
                        cfg.bundle, cfg.id, spec, stdio=stdio, terminal=self.tty, cgroup_root=cfg.cgroup_root
                    )
                    fds = [fd for fd in (c.pty_master, c.pidfd) if fd is not None]
                    message = {
                        "state": c.to_state(),
                        "pty": c.pty_master is not None,
                        "pidfd": c.pidfd is not None,
                    }
                    socket.send_fds(theirs, [json.dumps(message).encode()], fds)
                except builtin.SpawnError as e:
                    theirs.send(json.dumps({"error": str(e), "exit_code": e.exit_code}).encode())
                except BaseException as e:  # noqa: BLE001 (reported to the shim, which reports it on)
                    theirs.send(json.dumps({"error": f"{type(e).__name__}: {e}", "exit_code": None}).encode())
            finally:
                os._exit(0)
        theirs.close()
        try:
            data, fds, _, _ = socket.recv_fds(ours, 1 << 20, 2)
        finally:
            ours.close()
            os.waitpid(pid, 0)
        if not data:
            raise builtin.SpawnError("the runtime's helper process died")
        message = json.loads(data)
        if "error" in message:
            raise builtin.SpawnError(message["error"], message.get("exit_code"))
        container = builtin.RunningContainer.from_state(message["state"])
        if message["pty"]:
            container.pty_master = fds.pop(0)
        if message["pidfd"]:
            container.pidfd = fds.pop(0)
        return container

    def _watch_outputs(self) -> None:
        self.outputs_deferred_until = None
        if self.exited_at is not None:  # the drain's time counts from now
            self.exited_at = time.monotonic()
        for fd in self.outputs:
            self.sel.register(fd, selectors.EVENT_READ, self._on_output)

    def _ready(self, message: dict[str, Any]) -> None:
        if self.ready_fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.ready_fd, json.dumps(message).encode())
        os.close(self.ready_fd)
        self.ready_fd = None

    def _fail(self, message: str, exit_code: int | None) -> int:
        code = 128 if exit_code is None else exit_code
        write_json_atomic(
            "exit.json",
            {
                "ExitCode": code,
                "FinishedAt": format_time(time.time_ns()),
                "OOMKilled": False,
                "Error": message,
            },
        )
        self._ready({"error": message, "exit_code": exit_code})
        if self.listener is not None:
            self.listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(SOCKET_NAME)
        return 1

    # -- the loop

    def _loop(self) -> None:
        while True:
            timeout = None
            if self.outputs_deferred_until is not None:
                timeout = self.outputs_deferred_until - time.monotonic()
                if timeout <= 0:
                    self._watch_outputs()
                    continue
            elif self.exit_code is not None:
                assert self.exited_at is not None
                if not self.outputs and not self._execs_pending():
                    break
                timeout = self.exited_at + DRAIN_TIMEOUT - time.monotonic()
                if timeout <= 0:
                    break
            timeout = self._exec_deadline(timeout)
            for key, mask in self.sel.select(timeout):
                callback: Callable[[Any, int], None] = key.data
                callback(key.fileobj, mask)
            self._expire_execs()
        self._finish()

    def _on_sigchld(self, fd: int, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(fd, 4096):
                pass
        assert self.container is not None
        while True:  # every child: the container's init and whatever was re-parented to us
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.container.pid and self.exit_code is None:
                code = os.waitstatus_to_exitcode(status)
                self.exit_code = 128 - code if code < 0 else code
                self.exited_at = time.monotonic()
                self.finished_at = time.time_ns()
                self._kill_execs()  # the container ends with its init (a shared PID namespace too), as runc
            elif pid in self.exec_pids:
                self._exec_exited(self.exec_pids.pop(pid), status)

    def _on_output(self, fd: int, mask: int) -> None:
        data = _read_output(fd)
        if data is None:
            return
        stream = self.outputs[fd]
        if not data:
            self.sel.unregister(fd)
            del self.outputs[fd]
            if fd != self.pty_master:
                os.close(fd)
            return
        if self.writer is not None:
            self.writer.write("stderr" if stream == STDERR else "stdout", data)
        if not self.clients:
            return
        frame = data if self.tty else struct.pack(">BxxxI", stream, len(data)) + data
        for client in list(self.clients.values()):
            if client.attached and stream in client.streams:
                self._send(client, frame)

    def _on_accept(self, listener: socket.socket, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                sock, _ = listener.accept()
                sock.setblocking(False)
                client = _Client(sock)
                self.clients[sock.fileno()] = client
                self.sel.register(sock, selectors.EVENT_READ, self._on_client)

    def _on_client(self, sock: socket.socket, mask: int) -> None:
        client = self.clients[sock.fileno()]
        if mask & selectors.EVENT_WRITE:
            self._flush(client)
            if client.sock.fileno() < 0:
                return
        if not mask & selectors.EVENT_READ:
            return
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        if client.exec is not None:
            self._exec_input(client.exec, data)
            return
        if client.attached:
            if not data:
                self._stdin_eof(client)
            elif client is self.stdin_owner:
                self._feed_stdin(data)
            return
        if not data:
            self._drop(client)
            return
        client.inbuf += data
        if b"\n" not in client.inbuf:
            if len(client.inbuf) > 65536:
                self._drop(client)
            return
        line, rest = client.inbuf.split(b"\n", 1)
        client.inbuf = b""
        try:
            request = json.loads(line)
            reply = self._handle(client, request)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            reply = {"error": f"bad request: {e}"}
        except OSError as e:
            reply = {"error": e.strerror or str(e)}
        if reply is not None:
            self._send(client, json.dumps(reply).encode() + b"\n")
        if client.exec is not None:
            if rest:
                self._exec_input(client.exec, rest)
        elif client.attached:
            if rest and client is self.stdin_owner:
                self._feed_stdin(rest)
        elif reply is not None:
            self._close_after_flush(client)

    def _handle(self, client: _Client, req: dict[str, Any]) -> dict[str, Any] | None:
        op = req["op"]
        c = self.container
        assert c is not None
        if op == "state":
            status = "running" if self.exit_code is None else "exited"
            return {"ok": True, "pid": c.pid, "status": status, "tty": self.tty, "ExitCode": self.exit_code}
        if op == "kill":
            if self.exit_code is not None:
                return {"error": f"container {c.id} is not running"}
            try:
                self.runtime.kill(c, int(req.get("signal", signal.SIGTERM)), all=bool(req.get("all")))
            except ProcessLookupError:
                return {"error": f"container {c.id} is not running"}
            return {"ok": True}
        if op == "resize":
            if self.pty_master is None:
                return {"error": "the container has no terminal"}
            size = struct.pack("HHHH", int(req["height"]), int(req["width"]), 0, 0)
            fcntl.ioctl(self.pty_master, termios.TIOCSWINSZ, size)
            return {"ok": True}
        if op == "close_stdin":
            self._close_stdin()
            return {"ok": True}
        if op == "wait":
            self.waiters.append(client)
            return None
        if op == "attach":
            client.attached = True
            if self.outputs_deferred_until is not None:
                self._watch_outputs()
            wanted = ((STDOUT, req.get("stdout", True)), (STDERR, req.get("stderr", True)))
            client.streams = {s for s, on in wanted if on}
            client.wants_stdin = bool(req.get("stdin")) and self.stdin_fd is not None
            if req.get("stdin") and self.stdin_fd is not None and self.stdin_owner is None:
                self.stdin_owner = client
            return {"ok": True, "tty": self.tty}
        if op.startswith("exec"):
            return self._handle_exec(client, op, req)
        return {"error": f"unknown request {op!r}"}

    # -- stdin

    def _feed_stdin(self, data: bytes) -> None:
        if self.stdin_fd is None:
            return
        self.stdin_pending += data
        self._write_stdin(self)

    def _write_stdin(self, proc: _Shim | _Exec) -> None:
        """What is pending for the stdin of the container (proc is the shim itself) or of an exec, written
        without blocking; the rest when the pipe has room again. Back-pressure: the feeding client is not
        read while the process does not read."""
        fd = proc.stdin_fd
        if fd is None:
            return
        try:
            while proc.stdin_pending:
                n = os.write(fd, proc.stdin_pending)
                proc.stdin_pending = proc.stdin_pending[n:]
        except BlockingIOError:
            pass
        except OSError:  # EPIPE: the process closed its stdin
            proc.stdin_pending = b""
        waiting = fd in self.sel.get_map()
        if proc.stdin_pending and not waiting:
            self.sel.register(fd, selectors.EVENT_WRITE, lambda f, m: self._write_stdin(proc))
        elif not proc.stdin_pending and waiting:
            self.sel.unregister(fd)
        owner = self.stdin_owner if proc is self else proc.client
        if owner is not None and owner.sock.fileno() >= 0:
            self._set_reading(owner, not proc.stdin_pending)

    def _stdin_eof(self, client: _Client) -> None:
        if client.wants_stdin and (self.tty or not self.config.stdin_once):
            self._drop(client)  # as dockerd: the end of its input ends this attach; the stdin stays open
            return
        self._set_reading(client, False)  # half-closed: it still gets the output
        if client is self.stdin_owner:
            self._release_stdin()

    def _release_stdin(self) -> None:
        self.stdin_owner = None
        # as dockerd: StdinOnce closes the container's stdin when its attach ends, except with a terminal,
        # where the end of an attach is a detach (ctrl-p ctrl-q, or the client gone) and the shell runs on
        if self.config.stdin_once and not self.tty:
            self._close_stdin()

    def _close_stdin(self, proc: _Shim | _Exec | None = None) -> None:
        """The end of the stdin of the container (default) or of an exec: what fits now is written (never
        block on a process that stopped reading), then the pipe closed, or EOF typed on a terminal."""
        proc = self if proc is None else proc
        fd = proc.stdin_fd
        if fd is None:
            return
        if proc.stdin_pending:
            with contextlib.suppress(OSError):
                os.write(fd, proc.stdin_pending)
            proc.stdin_pending = b""
        if fd in self.sel.get_map():
            self.sel.unregister(fd)
        if proc.tty:
            with contextlib.suppress(OSError):
                os.write(fd, b"\x04")  # a terminal has no end of file to give: send it EOF (VEOF)
        os.close(fd)
        proc.stdin_fd = None

    # -- clients

    def _set_reading(self, client: _Client, on: bool) -> None:
        if client.reading == on:
            return
        client.reading = on
        self._update(client)

    def _update(self, client: _Client) -> None:
        events = (selectors.EVENT_READ if client.reading else 0) | (
            selectors.EVENT_WRITE if client.out else 0
        )
        try:
            self.sel.get_key(client.sock)
            registered = True
        except KeyError:
            registered = False
        if events and registered:
            self.sel.modify(client.sock, events, self._on_client)
        elif events:
            self.sel.register(client.sock, events, self._on_client)
        elif registered:
            self.sel.unregister(client.sock)

    def _send(self, client: _Client, data: bytes) -> None:
        client.out += data
        if len(client.out) > MAX_CLIENT_BACKLOG:
            self._drop(client)  # far behind: the log must not wait for it
            return
        self._flush(client)

    def _flush(self, client: _Client) -> None:
        try:
            while client.out:
                n = client.sock.send(client.out)
                del client.out[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(client)
            return
        self._update(client)
        if not client.out and client.closing:
            self._drop(client)

    def _close_after_flush(self, client: _Client) -> None:
        client.closing = True
        client.reading = False
        if not client.out:
            self._drop(client)
        else:
            self._update(client)

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if fd < 0:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(client.sock)
        self.clients.pop(fd, None)
        if client in self.waiters:
            self.waiters.remove(client)
        client.sock.close()
        if client is self.stdin_owner:
            self._release_stdin()
        ex = client.exec
        if ex is not None and ex.client is client:  # the exec runs on, its output now dropped
            ex.client = None
            if not ex.tty:  # its stdin ends with its client; a terminal's stays open (a detach)
                self._close_stdin(ex)
        for ex in self.execs.values():
            if client in ex.waiters:
                ex.waiters.remove(client)

    # -- exec

    def _handle_exec(self, client: _Client, op: str, req: dict[str, Any]) -> dict[str, Any] | None:
        if op == "exec":
            return self._exec_start(client, req)
        ex = self.execs.get(str(req["id"]))
        if ex is None:
            return {"error": f"no such exec: {req['id']}"}
        if op == "exec_state":
            return {"ok": True, "pid": ex.pid, "running": not ex.done, "ExitCode": ex.exit_code}
        if op == "exec_wait":
            if ex.done:
                return {"ok": True, "ExitCode": ex.exit_code}
            ex.waiters.append(client)
            return None
        if op == "exec_kill":  # a healthcheck probe past its timeout
            if self.exec_pids.get(ex.pid) is not ex:  # reaped: the pid may be another process's by now
                return {"error": f"exec {ex.id} is not running"}
            os.kill(ex.pid, int(req.get("signal", signal.SIGTERM)))
            return {"ok": True}
        if op == "exec_resize":
            if ex.exit_code is not None or ex.done:
                return {"error": "cannot resize a stopped container"}
            if ex.pty_master is None:
                return {"error": "the exec has no terminal"}
            size = struct.pack("HHHH", int(req["height"]), int(req["width"]), 0, 0)
            fcntl.ioctl(ex.pty_master, termios.TIOCSWINSZ, size)
            return {"ok": True}
        return {"error": f"unknown request {op!r}"}

    def _exec_start(self, client: _Client, req: dict[str, Any]) -> dict[str, Any]:
        c = self.container
        assert c is not None
        exec_id = str(req["id"])
        if self.exit_code is not None:
            return {"error": f"container {c.id} is not running"}
        if exec_id in self.execs:
            return {"error": f"exec {exec_id} was already started"}
        now = time.monotonic()  # ended execs are forgotten after a while (a probe every second adds up)
        for old in [e for e in self.execs.values() if e.done and now - (e.exited_at or now) > KEEP_ENDED]:
            del self.execs[old.id]
        tty, detach = bool(req.get("tty")), bool(req.get("detach"))
        ex = _Exec(exec_id, tty, bool(req.get("mux", not tty)))
        theirs: list[int] = []
        try:
            null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            theirs.append(null)
            stdio = (null, null, null)
            if not tty:
                stdin_r = null
                if req.get("stdin") and not detach:
                    stdin_r, ex.stdin_fd = os.pipe2(os.O_CLOEXEC)
                    theirs.append(stdin_r)
                fds = []
                for stream in (STDOUT, STDERR):
                    wanted = req.get("stdout" if stream == STDOUT else "stderr", True)
                    if not wanted or detach:  # detached: its output goes nowhere, as Docker's
                        fds.append(null)
                        continue
                    r, w = os.pipe2(os.O_CLOEXEC)
                    theirs.append(w)
                    ex.outputs[r] = stream
                    fds.append(w)
                stdio = (stdin_r, fds[0], fds[1])
            start = getattr(self.runtime, "exec_process", None)
            if start is None:
                raise builtin.SpawnError(f"exec is not supported with runtime {self.config.runtime_path}")
            # an external runtime applies the container's filter itself (it has the bundle's config)
            wants_filter = self.runtime is builtin and req.get("seccomp")
            extra = {"seccomp": req["seccomp"]} if wants_filter else {}
            proc = start(c, req["process"], stdio=stdio, terminal=tty, **extra)
        except builtin.SpawnError as e:
            for fd in [*ex.outputs, ex.stdin_fd]:
                if fd is not None:
                    os.close(fd)
            return {"error": str(e), "exit_code": e.exit_code}
        finally:
            for fd in theirs:
                os.close(fd)
        ex.pid = proc.pid
        if tty:
            assert proc.pty_master is not None
            ex.pty_master = proc.pty_master
            ex.outputs[proc.pty_master] = STDOUT  # read even when detached: a full pty would block it
            if req.get("stdin") and not detach:
                ex.stdin_fd = os.dup(proc.pty_master)
        for fd in ex.outputs:
            _set_nonblocking(fd)
            self.sel.register(fd, selectors.EVENT_READ, lambda f, m, ex=ex: self._on_exec_output(ex, f))
        if ex.stdin_fd is not None:
            _set_nonblocking(ex.stdin_fd)
        self.execs[exec_id] = ex
        self.exec_pids[proc.pid] = ex
        if not detach:
            client.exec = ex
            ex.client = client
        return {"ok": True, "pid": proc.pid, "tty": tty}

    def _on_exec_output(self, ex: _Exec, fd: int) -> None:
        data = _read_output(fd)
        if data is None:
            return
        if not data:
            self._exec_close_output(ex, fd)
            self._exec_maybe_done(ex)
            return
        client = ex.client
        if client is not None:  # exec output goes to its client only, never to the container's log
            stream = ex.outputs[fd]
            self._send(client, struct.pack(">BxxxI", stream, len(data)) + data if ex.mux else data)

    def _exec_close_output(self, ex: _Exec, fd: int) -> None:
        self.sel.unregister(fd)
        del ex.outputs[fd]
        if fd == ex.pty_master:
            ex.pty_master = None
        os.close(fd)

    def _exec_input(self, ex: _Exec, data: bytes) -> None:
        client = ex.client
        if not data and ex.tty and ex.stdin_fd is not None and client is not None:
            self._drop(client)  # with a terminal, the end of the input ends the stream (dockerd's detach)
            return
        if not data:  # the client half-closed: the exec's stdin ends (dockerd closes it), output flows on
            if client is not None:
                self._set_reading(client, False)
            self._close_stdin(ex)
            return
        if ex.stdin_fd is None:
            return
        ex.stdin_pending += data
        self._write_stdin(ex)

    def _exec_exited(self, ex: _Exec, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        ex.exit_code = 128 - code if code < 0 else code
        ex.exited_at = time.monotonic()
        self._exec_maybe_done(ex)

    def _exec_maybe_done(self, ex: _Exec) -> None:
        if ex.exit_code is not None and not ex.outputs and not ex.done:
            self._exec_done(ex)

    def _exec_done(self, ex: _Exec) -> None:
        """Exited, and its output sent (or given up on): waiters answered, then the stream closed."""
        ex.done = True
        for fd in list(ex.outputs):
            self._exec_close_output(ex, fd)
        self._close_stdin(ex)
        reply = json.dumps({"ok": True, "ExitCode": ex.exit_code}).encode() + b"\n"
        for waiter in ex.waiters:
            self._send(waiter, reply)
            self._close_after_flush(waiter)
        ex.waiters.clear()
        if ex.client is not None:
            client, ex.client = ex.client, None
            self._close_after_flush(client)

    def _execs_pending(self) -> bool:
        return any(not ex.done for ex in self.execs.values())

    def _exec_deadline(self, timeout: float | None) -> float | None:
        # an exited exec whose output is still held open (by a process it left behind) ends after a drain
        for ex in self.execs.values():
            if not ex.done and ex.exited_at is not None:
                left = max(0.0, ex.exited_at + DRAIN_TIMEOUT - time.monotonic())
                timeout = left if timeout is None else min(timeout, left)
        return timeout

    def _expire_execs(self) -> None:
        now = time.monotonic()
        for ex in list(self.execs.values()):
            if not ex.done and ex.exited_at is not None and now >= ex.exited_at + DRAIN_TIMEOUT:
                self._exec_done(ex)

    def _kill_execs(self) -> None:
        for pid in self.exec_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _end_execs(self) -> None:
        """At the end (the container's cgroup emptied): every exec reaped and answered for."""
        deadline = time.monotonic() + 1.0
        for pid, ex in list(self.exec_pids.items()):
            status = None
            while status is None and time.monotonic() < deadline:
                try:
                    reaped, st = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if reaped:
                    status = st
                else:
                    time.sleep(0.005)
            if status is not None:
                self._exec_exited(ex, status)
            elif ex.exit_code is None:
                ex.exit_code = 137  # killed with the container, and not seen to go
            del self.exec_pids[pid]
        for ex in self.execs.values():
            if not ex.done:
                self._exec_done(ex)

    # -- the end

    def _oom_killed(self) -> bool:
        assert self.container is not None
        cgroup = self.container.cgroup
        for name in ("memory.events", "memory.oom_control"):  # v2, v1 (kernel 4.13+)
            with contextlib.suppress(OSError):
                if cgroup.has("memory", name):
                    for line in cgroup.read("memory", name).splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and int(value) > 0:
                            return True
        return False

    def _finish(self) -> None:
        assert self.container is not None and self.exit_code is not None
        if self.writer is not None:
            self.writer.close()
        oom = self._oom_killed()
        error = ""
        try:
            self.runtime.delete(self.container, force=True)
        except builtin.SpawnError as e:
            error = str(e)
            print(f"shim: {e}", file=sys.stderr)
        record = {
            "ExitCode": self.exit_code,
            "FinishedAt": format_time(self.finished_at),
            "OOMKilled": oom,
            "Error": error,
        }
        self._end_execs()
        write_json_atomic("exit.json", record)
        self._on_sigchld_reap_rest()
        if self.listener is not None:
            self.sel.unregister(self.listener)
            self.listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(SOCKET_NAME)
        reply = json.dumps({"ok": True, **record}).encode() + b"\n"
        for client in list(self.waiters):
            self._send(client, reply)
        # a last bounded chance for clients to take what they were sent
        deadline = time.monotonic() + 1.0
        for client in list(self.clients.values()):
            if client.sock.fileno() < 0:
                continue
            with contextlib.suppress(OSError):
                client.sock.setblocking(True)
                client.sock.settimeout(max(0.01, deadline - time.monotonic()))
                client.sock.sendall(bytes(client.out))
            client.sock.close()
        if self.pty_master is not None:
            os.close(self.pty_master)

    def _on_sigchld_reap_rest(self) -> None:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass


def main(argv: list[str] | None = None) -> NoReturn:
    parser = argparse.ArgumentParser(prog="python -m dockyard.runtime.shim")
    parser.add_argument("--config", required=True, help="the shim's config.json")
    parser.add_argument("--ready-fd", type=int, help="where to report the start (JSON), then closed")
    parser.add_argument("--foreground", action="store_true", help="do not fork: be the shim in this process")
    args = parser.parse_args(argv)
    data = read_json(args.config)
    if data is None:
        parser.error(f"no such file: {args.config}")
    config = ShimConfig.from_dict(data)
    if args.foreground:
        run_shim(config, ready_fd=args.ready_fd)
    if os.getsid(0) != os.getpid():
        with contextlib.suppress(PermissionError):
            os.setsid()
    detach(config, args.ready_fd if args.ready_fd is not None else -1)


def _read_output(fd: int) -> bytes | None:
    """What a container's (or an exec's) output has: b"" at its end (EIO from a pty whose other side is all
    closed counts as the end), None when nothing is there yet."""
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return None
    except OSError as e:
        if e.errno != errno.EIO:
            raise
        return b""


if __name__ == "__main__":
    main()
