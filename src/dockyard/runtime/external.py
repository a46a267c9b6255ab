"""External OCI runtimes (runc, crun): the shim drives their command line instead of the built-in runtime.

`ExternalRuntime` offers what the shim needs of a runtime, the same calls as `builtin` (`spawn`, `kill`,
`delete`), over the CLI runc and crun share:

    <runtime> --root R --log L --log-format json [runtimeArgs] create --bundle B --pid-file P
              [--console-socket S] ID                      the container's init waits before the exec
    <runtime> ... start ID                                 and now runs the user's command
    <runtime> ... kill [--all] ID SIGNAL
    <runtime> ... delete --force ID
    <runtime> ... state ID                                 JSON: {"status", "pid", ...}

The shim is a child subreaper: once `create` has returned, the runtime's own process is gone and the
container's init has been re-parented to the shim, which waits for it as with the built-in runtime. The
container's stdio is the runtime's (runc hands its fds 0-2 down to init), so the shim runs `create` with the
pipes it reads; with a terminal, the runtime sends the pty's master over `--console-socket` (SCM_RIGHTS).

Errors: the runtime writes them to its `--log` as JSON lines; the last "error" line of the failed command
becomes the SpawnError's one line ("runc create failed: unable to start container process: exec: ...").
Each runtime keeps its state under a `--root` of the daemon's own (`<exec-root>/runtime-<name>`), so
containers of another engine's runc never mix with ours.

exec and init are not a way in (CVE-2019-5736): the runtime guards its own process, which joins the
container's namespaces, until its execve; nothing here adds to that. runc >= 1.0 (Debian 12 has 1.1.5, with
the CVE-2024-21626 fd-leak fix backported) re-executes itself from a sealed memfd copy ("runc_cloned:
/proc/self/exe"), so /proc/PID/exe never leads to the host's binary, and its nsexec makes itself
non-dumpable before it joins a namespace. test_security_exec measures it: a hostile PID 1 is refused every
runc init (and each of its Go threads) and seizes only the exec'd command. crun 1.8's binary does both too
(crun_cloned, PR_SET_DUMPABLE); not measured where it refuses the host's cgroups (hybrid v1/v2).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..linux.cgroups import CGROUP_ROOT, Cgroup, detect_layout
from .builtin import SETUP_TIMEOUT, ExecProcess, RunningContainer, SpawnError, exit_code_for

__all__ = ["BUILTIN_RUNTIME", "ExternalRuntime", "OCIRuntime", "RuntimeCommandError"]

BUILTIN_RUNTIME = "dockyard"  # the name HostConfig.Runtime and /info give the built-in runtime
COMMAND_TIMEOUT = 30.0
LOG_NAME = "runtime.log"
PID_NAME = "init.pid"
# runc's words before the reason an exec could not start; the engine words the whole message as dockerd
EXEC_FAILED_PREFIX = "exec failed: unable to start container process: "


@dataclass(frozen=True)
class OCIRuntime:
    """A runtime containers can be created with (HostConfig.Runtime): `path` None is the built-in one."""

    name: str
    path: str | None = None
    args: tuple[str, ...] = ()

    def root(self, exec_root: str) -> str:
        """Its --root: the daemon's own, so that another engine's containers never mix with ours."""
        return os.path.join(exec_root, f"runtime-{self.name}")


class RuntimeCommandError(OSError):
    """A runtime command other than create failed; `str()` is the runtime's one line."""


@dataclass
class ExternalRuntime:
    name: str  # as configured ("runc"): the prefix of Docker's fallback message
    path: str
    root: str  # --root: this daemon's state dir for the runtime
    workdir: str  # where the pid file and the runtime's log go (the shim's state dir)
    args: list[str] = field(default_factory=list)  # runtimeArgs from daemon.json, before the command

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, LOG_NAME)

    def _argv(self, *command: str) -> list[str]:
        exe = shutil.which(self.path) or self.path
        return [
            exe,
            "--root",
            self.root,
            "--log",
            self.log_path,
            "--log-format",
            "json",
            *self.args,
            *command,
        ]

    def _log_offset(self) -> int:
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def _last_error(self, offset: int, fallback: str) -> str:
        """The runtime's last error logged since `offset`, as one line."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            lines = []
        message = ""
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal") and entry.get("msg"):
                message = str(entry["msg"])
        message = message or fallback
        return " ".join(message.split())  # one line, whatever the runtime wrapped

    def _run(self, *command: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                self._argv(*command), stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout
            )
        except FileNotFoundError:
            raise SpawnError(f'{self.name}: executable file not found: "{self.path}"') from None
        except subprocess.TimeoutExpired:
            raise SpawnError(f"{self.name} {command[0]} did not finish within {timeout:g} s") from None

    def _failed(self, command: str, offset: int, done: subprocess.CompletedProcess[bytes]) -> str:
        output = (done.stderr or done.stdout or b"").decode(errors="replace").strip()
        return self._last_error(
            offset, output or f"{self.name} {command} failed: exit status {done.returncode}"
        )

    # --- what the shim calls -------------------------------------------------------------------------------

    def spawn(
        self,
        bundle: str,
        container_id: str,
        spec: dict[str, Any],
        *,
        stdio: tuple[int, int, int],
        terminal: bool,
        cgroup_root: str = CGROUP_ROOT,
        timeout: float = SETUP_TIMEOUT,
    ) -> RunningContainer:
        """create + start; returns once the container's command runs. Raises SpawnError (nothing left)."""
        _refuse_linked_dev(bundle, spec)
        os.makedirs(self.root, 0o700, exist_ok=True)
        pid_file = os.path.join(self.workdir, PID_NAME)
        command = ["create", "--bundle", bundle, "--pid-file", pid_file]
        try:
            pid, pty_master = self._run_with_stdio(command, container_id, stdio, terminal, timeout)
        except SpawnError:
            self._cleanup(container_id)
            raise
        try:
            start_time = _start_time(pid)
            offset = self._log_offset()
            done = self._run("start", container_id)
            if done.returncode != 0:
                message = self._failed("start", offset, done)
                raise SpawnError(message, exit_code_for(message))
        except BaseException as e:
            if pty_master is not None:
                os.close(pty_master)
            self._cleanup(container_id)
            if isinstance(e, OSError):
                raise SpawnError(f"{self.name} create: no container process: {e}") from None
            raise
        cgroups_path = (spec.get("linux") or {}).get("cgroupsPath") or f"/dockyard/{container_id}"
        cgroup = Cgroup.at(detect_layout(cgroup_root), cgroups_path)  # where the runtime made it: OOM facts
        return RunningContainer(container_id, pid, bundle, cgroup, start_time, pty_master=pty_master)

    def _run_with_stdio(
        self,
        command: list[str],
        container_id: str,
        stdio: tuple[int, int, int] | None,
        terminal: bool,
        timeout: float,
    ) -> tuple[int, int | None]:
        """Run create or exec (whose `--pid-file` follows it in `command`) with the process's stdio as the
        runtime's own; (the process's pid, the pty master with a terminal)."""
        pid_file = command[command.index("--pid-file") + 1]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pid_file)
        offset = self._log_offset()
        console_dir = tempfile.mkdtemp(prefix="dockyard-console-") if terminal else None
        listener = None
        pty_master: int | None = None
        try:
            if console_dir is not None:
                # a short path of its own: the state dir's full path can outgrow sun_path (108 bytes)
                console = os.path.join(console_dir, "console.sock")
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
                listener.bind(console)
                listener.listen(1)
                command = [*command, "--console-socket", console]
            std = stdio if stdio is not None else (None, None, None)
            try:
                proc = subprocess.Popen(
                    self._argv(*command, container_id), stdin=std[0], stdout=std[1], stderr=std[2]
                )
            except FileNotFoundError:
                raise SpawnError(f'{self.name}: executable file not found: "{self.path}"') from None
            try:
                if listener is not None:
                    pty_master = _receive_console(listener, proc, timeout)
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise SpawnError(f"{self.name} {command[0]} did not finish within {timeout:g} s") from None
            if code != 0:
                message = self._last_error(offset, f"{self.name} {command[0]} failed: exit status {code}")
                raise SpawnError(message, exit_code_for(message))
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError) as e:
                raise SpawnError(f"{self.name} {command[0]}: no process: {e}") from None
        except BaseException:
            if pty_master is not None:
                os.close(pty_master)
            raise
        finally:
            if listener is not None:
                listener.close()
            if console_dir is not None:
                shutil.rmtree(console_dir, ignore_errors=True)
        return pid, pty_master

    def exec_process(
        self,
        container: RunningContainer,
        process: dict[str, Any],
        *,
        stdio: tuple[int, int, int] | None = None,
        terminal: bool | None = None,
        timeout: float = SETUP_TIMEOUT,
    ) -> ExecProcess:
        """`runc exec --detach`: start `process` (an OCI process object) in the running container; the
        shim, a subreaper, becomes its parent once the runtime exits. Raises SpawnError (126/127 as
        spawn) with the reason alone, which the engine words as dockerd does."""
        tty = bool(process.get("terminal")) if terminal is None else terminal
        name = f"exec-{uuid.uuid4().hex[:12]}"
        process_file = os.path.join(self.workdir, f"{name}.json")
        pid_file = os.path.join(self.workdir, f"{name}.pid")
        with open(process_file, "w") as f:
            json.dump({**process, "terminal": tty}, f)
        command = ["exec", "--process", process_file, "--pid-file", pid_file, "--detach"]
        try:
            pid, pty_master = self._run_with_stdio(command, container.id, stdio, tty, timeout)
        except SpawnError as e:
            message = str(e)
            if message.startswith(EXEC_FAILED_PREFIX):
                message = message[len(EXEC_FAILED_PREFIX) :]
            raise SpawnError(message, exit_code_for(message)) from None
        finally:
            for path in (process_file, pid_file):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        return ExecProcess(pid, pty_master)

    def kill(self, container: RunningContainer, sig: int = signal.SIGTERM, *, all: bool = False) -> None:
        """ProcessLookupError when the container is not running (the runtime's "not running")."""
        offset = self._log_offset()
        command = ["kill", *(["--all"] if all else []), container.id, str(int(sig))]
        done = self._run(*command)
        if done.returncode == 0:
            return
        status = self.state(container.id).get("status")
        if status not in ("created", "running", "paused"):
            raise ProcessLookupError(errno.ESRCH, f"container {container.id} is not running")
        raise RuntimeCommandError(errno.EIO, self._failed("kill", offset, done))

    def delete(self, container: RunningContainer, *, force: bool = False, timeout: float = 5.0) -> None:
        """Remove the runtime's state and the container's cgroup; with `force`, kill what still runs."""
        offset = self._log_offset()
        done = self._run("delete", *(["--force"] if force else []), container.id, timeout=COMMAND_TIMEOUT)
        if done.returncode != 0 and self.state(container.id):
            raise SpawnError(self._failed("delete", offset, done))

    def state(self, container_id: str) -> dict[str, Any]:
        """The runtime's view of the container ({} when it knows none)."""
        try:
            done = self._run("state", container_id)
        except SpawnError:
            return {}
        if done.returncode != 0:
            return {}
        try:
            data = json.loads(done.stdout)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _cleanup(self, container_id: str) -> None:
        with contextlib.suppress(SpawnError):
            self._run("delete", "--force", container_id)


def _refuse_linked_dev(bundle: str, spec: dict[str, Any]) -> None:
    """runc (1.1) mounts /dev inside the root but then makes /dev's links and ptmx by joining strings: an
    image whose /dev is a symlink would have them made where it points on the host. Such an image is
    refused; the built-in runtime resolves every path by descriptor and runs it."""
    root = (spec.get("root") or {}).get("path") or "rootfs"
    dev = os.path.join(bundle, root, "dev")  # the engine's own mount of the root; "dev" is the image's
    if os.path.islink(dev):
        raise SpawnError("the image's /dev is a symbolic link, which runc would follow out of the root")


def _receive_console(listener: socket.socket, proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The pty master the runtime sends over the console socket; None if it exited without sending one."""
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([listener], [], [], 0.05)
        if ready:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(max(0.1, deadline - time.monotonic()))
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
            if not fds:
                return None
            os.set_inheritable(fds[0], False)
            # runc's pty comes with ONLCR cleared; Docker's tty output ends its lines with \r\n (the
            # kernel's default, and the built-in runtime's), so the terminal gets it back
            with contextlib.suppress(OSError):
                attrs = termios.tcgetattr(fds[0])
                attrs[1] |= termios.OPOST | termios.ONLCR
                termios.tcsetattr(fds[0], termios.TCSANOW, attrs)
            return fds[0]
        if proc.poll() is not None:
            return None
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)


def _start_time(pid: int) -> int:
    """/proc/<pid>/stat field 22: tells the container's init from a later process on its pid."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        text = f.read()
    return int(text[text.rindex(b")") + 2 :].split()[19])
