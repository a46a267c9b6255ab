"""The container lifecycle: create, start (through a shim), wait, stop, kill, remove, logs, inspect, list.

Each container has two directories: its record's (`<data-root>/containers/<id>/`: config.v2.json, the
json-file log, hostname, hosts, resolv.conf, `bundle/config.json` and the shim's state dir `shim/`) and its
root filesystem's (`<data-root>/rootfs/<id>/`, see `RootfsManager`). A monitor task per running container
polls the shim's `exit.json` (no thread blocks on a shim, so the daemon can always shut down) and records
the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal as signals
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..images.service import ImageError, _trim_fraction
from ..logs.jsonfile import read_logs
from ..runtime.forkserver import ShimLauncher
from ..runtime.shim_protocol import ShimClient, ShimError, read_json
from ..runtime.shim_protocol import connect as shim_connect
from ..runtime.spec import (
    ContainerOptions,
    SpecError,
    adapt_host_config,
    build_spec,
    merge_config,
    validate_options,
)
from .ids import AmbiguousPrefix, InvalidIdentifier, NoSuchContainer, generate_id
from .names import InvalidName, NameConflict, generate_name, validate_name
from .rootfs import RootfsManager
from .store import ZERO_TIME, Container, ContainerStore, now_rfc3339

if TYPE_CHECKING:  # engine imports this module: no import of engine at run time
    from ..engine.events import EventBus
    from ..images import ImageService

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
POLL_INTERVAL = 0.05
ATTACH_WAIT = 10.0  # how long a shim holds the output for an attach on its way (see attach_pending)


class ContainerError(Exception):
    """A user-facing container error; `status` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotModified(ContainerError):
    status = 304


def _rfc3339_to_unix(text: str) -> float:
    if not text or text == ZERO_TIME:
        return 0.0
    from datetime import datetime

    try:
        return datetime.fromisoformat(_trim_fraction(text)).timestamp()
    except ValueError:
        return 0.0


def human_duration(seconds: float) -> str:
    """go-units HumanDuration, as `docker ps` shows it."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    """Docker's signal syntax: a number, `KILL` or `SIGKILL`."""
    if value is None or value == "":
        return default
    if isinstance(value, int) or str(value).isdigit():
        number = int(value)
        if number <= 0 or number > 64:
            raise ContainerError(f"Invalid signal: {value}", 400)
        return number
    name = str(value).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(signals.Signals, name))
    except AttributeError:
        raise ContainerError(f"Invalid signal: {value}", 400) from None


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return text[text.rindex(b")") + 2 : text.rindex(b")") + 3] not in (b"Z", b"X")


class ContainerService:
    def __init__(self, data_root: Path | str, images: ImageService, events: EventBus, cgroup_version: str):
        data_root = Path(data_root)
        self.images = images
        self.events = events
        self.cgroup_version = cgroup_version
        self.store = ContainerStore(data_root / "containers")
        self.rootfs = RootfsManager(data_root / "rootfs", images.snapshots)
        images.container_users = self.store.users_of_image
        self._monitors: dict[str, asyncio.Task[None]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._removal_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._attach_pending: dict[str, int] = {}  # attaches waiting for the container to start
        self._start_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.launcher = ShimLauncher()  # started lazily, at the first container start

    # --- helpers -----------------------------------------------------------------------------------

    def get(self, ref: str) -> Container:
        try:
            return self.store.get(ref)
        except NoSuchContainer:
            raise ContainerError(f"No such container: {ref}", 404) from None
        except AmbiguousPrefix as e:
            raise ContainerError(str(e), 400) from None
        except InvalidIdentifier as e:
            raise ContainerError(str(e), 400) from None

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def _dir(self, c: Container) -> Path:
        return self.store.dir(c.id)

    def _state_dir(self, c: Container) -> Path:
        return self._dir(c) / "shim"

    def _options(self, c: Container, **engine: Any) -> ContainerOptions:
        create = c.extra.get("create_config") or {}
        image_config: dict[str, Any] = {}
        with contextlib.suppress(ImageError, OSError, ValueError):
            image_config = self.images.config(self.images.get(c.image_id)).get("config") or {}
        return ContainerOptions.from_api(
            c.id, str(self.rootfs.path(c.id)), create, c.host_config, image_config, **engine
        )

    # --- create ------------------------------------------------------------------------------------

    def create(self, name: str, body: dict[str, Any]) -> tuple[str, list[str]]:
        image_name = body.get("Image") or ""
        if not image_name:
            raise ContainerError("No image specified", 400)
        try:
            record = self.images.get(image_name)
        except ImageError as e:
            raise ContainerError(str(e), e.status) from None
        image_config = self.images.config(record)
        img_cfg = image_config.get("config") or {}
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        host_config = adapt_host_config(body.get("HostConfig") or {}, cgroup_version=self.cgroup_version)
        container_id = generate_id()
        options = ContainerOptions.from_api(
            container_id, str(self.rootfs.path(container_id)), config, host_config, img_cfg
        )
        try:
            warnings = validate_options(options, cgroup_version=self.cgroup_version)
            merged = merge_config(options)
        except SpecError as e:
            raise ContainerError(str(e), 400) from None
        if name:
            try:
                name = validate_name(name)
            except InvalidName as e:
                raise ContainerError(str(e), 400) from None
        else:
            name = generate_name(self.store.name_taken, fallback=container_id[:12])
        labels = {**(img_cfg.get("Labels") or {}), **(config.get("Labels") or {})}
        shown = {
            "Hostname": merged.hostname,
            "Domainname": merged.domainname,
            "User": merged.user,
            "AttachStdin": bool(config.get("AttachStdin")),
            "AttachStdout": bool(config.get("AttachStdout")),
            "AttachStderr": bool(config.get("AttachStderr")),
            "Tty": bool(config.get("Tty")),
            "OpenStdin": bool(config.get("OpenStdin")),
            "StdinOnce": bool(config.get("StdinOnce")),
            "Env": merged.env,
            "Cmd": merged.cmd,
            "Image": image_name,
            "Volumes": config.get("Volumes") or img_cfg.get("Volumes"),
            "WorkingDir": merged.working_dir,
            "Entrypoint": merged.entrypoint,
            "OnBuild": None,
            "Labels": labels,
        }
        if merged.stop_signal:
            shown["StopSignal"] = merged.stop_signal
        if config.get("StopTimeout") is not None:
            shown["StopTimeout"] = config["StopTimeout"]
        container = Container(
            id=container_id,
            name=name,
            image=image_name,
            image_id=record.id,
            config=shown,
            host_config=host_config,
            path=merged.path,
            args=merged.args,
            driver=self.rootfs.driver,
            extra={"create_config": config},
        )
        container.log_path = str(self.store.dir(container_id) / f"{container_id}-json.log")
        try:
            self.store.add(container)
        except NameConflict as e:
            raise ContainerError(str(e), 409) from None
        try:
            self.rootfs.prepare(container_id, record.chain_id)
        except BaseException:
            self.store.remove(container_id)
            with contextlib.suppress(Exception):
                self.rootfs.remove(container_id)
            raise
        self.events.emit("container", "create", container_id, image=image_name, name=name)
        return container_id, warnings

    # --- start -------------------------------------------------------------------------------------

    def _write_etc_files(self, c: Container, hostname: str) -> None:
        d = self._dir(c)
        (d / "hostname").write_text(hostname + "\n")
        (d / "hosts").write_text(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
            f"ff02::2\tip6-allrouters\n127.0.0.1\t{hostname}\n"
        )
        lines = []
        try:
            with open("/etc/resolv.conf") as f:
                host_lines = f.read().splitlines()
        except OSError:
            host_lines = []
        for line in host_lines:
            parts = line.split()
            if parts and parts[0] == "nameserver" and len(parts) > 1:
                addr = parts[1]
                if addr.startswith("127.") or addr == "::1":
                    continue
            lines.append(line)
        (d / "resolv.conf").write_text("\n".join(lines) + ("\n" if lines else ""))

    async def start(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            if c.running:
                raise NotModified("container already started", 304)
            if c.state.status == "removing":
                raise ContainerError(f"container {c.id} is marked for removal and cannot be started", 409)
            try:
                await asyncio.to_thread(self._start_blocking, c, self._attach_pending.get(c.id, 0) > 0)
            except BaseException as e:
                for fut in self._start_waiters.pop(c.id, []):
                    if not fut.done():
                        fut.set_exception(e if isinstance(e, ContainerError) else ContainerError(str(e)))
                raise
        self.events.emit("container", "start", c.id, image=c.image, name=c.name)
        self._monitor(c)
        for fut in self._start_waiters.pop(c.id, []):
            _resolve(fut, None)  # type: ignore[arg-type]

    # --- attach ------------------------------------------------------------------------------------

    def shim_dir(self, c: Container) -> str:
        return str(self._state_dir(c))

    @contextlib.asynccontextmanager
    async def attach_pending(self, container_id: str) -> AsyncIterator[None]:
        """While this is open, a start of the container has its shim hold the output (up to ATTACH_WAIT
        seconds) until an attach request arrives: docker run attaches before it starts, and the first
        output (`echo hi`) must not be gone by the time the attach reaches the shim."""
        self._attach_pending[container_id] = self._attach_pending.get(container_id, 0) + 1
        try:
            yield
        finally:
            left = self._attach_pending.get(container_id, 1) - 1
            if left > 0:
                self._attach_pending[container_id] = left
            else:
                self._attach_pending.pop(container_id, None)

    async def wait_started(self, ref: str) -> Container:
        """The container once it runs (now, or at its next start)."""
        c = self.get(ref)
        if c.running:
            return c
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._start_waiters.setdefault(c.id, []).append(fut)
        try:
            await fut
        finally:
            waiters = self._start_waiters.get(c.id)
            if waiters and fut in waiters:
                waiters.remove(fut)
        return c

    async def resize(self, ref: str, height: int, width: int) -> None:
        c = self.get(ref)
        if not c.running:
            raise ContainerError(f"Container {c.id} is not running", 409)
        client = ShimClient(str(self._state_dir(c)))
        try:
            await asyncio.to_thread(client.resize, height, width)
        except (OSError, ShimError) as e:
            log.debug("container %s: resize: %s", c.id, e)

    def _start_blocking(self, c: Container, attach_pending: bool = False) -> None:
        from ..runtime.builtin import SpawnError
        from ..runtime.shim import ShimConfig

        try:
            record = self.images.get(c.image_id)
        except ImageError as e:
            raise ContainerError(str(e), e.status) from None
        rootfs = self.rootfs.mount(c.id, record.chain_id)
        d = self._dir(c)
        try:
            options = self._options(
                c,
                hostname_path=str(d / "hostname"),
                hosts_path=str(d / "hosts"),
                resolv_conf_path=str(d / "resolv.conf"),
            )
            merged = merge_config(options)
            self._write_etc_files(c, merged.hostname)

            def lookup(path: str) -> str | None:
                f = rootfs / path.lstrip("/")
                try:
                    return f.read_text() if f.is_file() and not f.is_symlink() else None
                except OSError:
                    return None

            spec = build_spec(options, cgroup_version=self.cgroup_version, user_lookup=lookup)
        except SpecError as e:
            self.rootfs.unmount(c.id)
            raise ContainerError(str(e), 400) from None
        bundle = d / "bundle"
        bundle.mkdir(exist_ok=True)
        (bundle / "config.json").write_text(json.dumps(spec))
        state_dir = self._state_dir(c)
        shutil.rmtree(state_dir, ignore_errors=True)
        log_config = c.host_config.get("LogConfig") or {}
        log_opts = log_config.get("Config") or {}
        config = ShimConfig(
            id=c.id,
            bundle=str(bundle),
            state_dir=str(state_dir),
            log_path=c.log_path,
            log_max_size=_size(log_opts.get("max-size")),
            log_max_file=int(log_opts.get("max-file") or 1),
            open_stdin=options.open_stdin,
            stdin_once=bool(c.config.get("StdinOnce")),
            attach_wait=ATTACH_WAIT if attach_pending else 0.0,
        )
        try:
            started = self.launcher.start(config, timeout=START_TIMEOUT)
        except SpawnError as e:
            c.state.exit_code = e.exit_code if e.exit_code is not None else 128
            c.state.error = str(e)
            c.state.status = "exited"
            c.state.pid = 0
            c.state.finished_at = now_rfc3339()
            self.store.save(c)
            self.rootfs.unmount(c.id)
            message = (
                "failed to create shim task: OCI runtime create failed: runc create failed: "
                f"unable to start container process: {e}: unknown"
            )
            raise ContainerError(message, 400 if e.exit_code is not None else 500) from None
        c.state.status = "running"
        c.state.pid = started.container_pid
        c.state.exit_code = 0
        c.state.error = ""
        c.state.oom_killed = False
        c.state.started_at = now_rfc3339()
        c.state.finished_at = ZERO_TIME
        c.manually_stopped = False
        c.extra["shim_pid"] = started.shim_pid
        self.store.save(c)

    # --- exits -------------------------------------------------------------------------------------

    def _monitor(self, c: Container) -> None:
        task = self._monitors.get(c.id)
        if task is None or task.done():
            self._monitors[c.id] = asyncio.get_running_loop().create_task(self._watch(c))

    async def _watch(self, c: Container) -> None:
        exit_path = self._state_dir(c) / "exit.json"
        missing_since: float | None = None
        if not exit_path.exists():
            await self._shim_exited(c)
        while True:
            record = read_json(str(exit_path))
            if record is not None:
                break
            shim_pid = int(c.extra.get("shim_pid") or 0)
            if shim_pid and not _pid_alive(shim_pid):
                if missing_since is None:
                    missing_since = time.monotonic()
                elif time.monotonic() - missing_since > 1.0:
                    record = {"ExitCode": 255, "Error": "the container's shim died", "OOMKilled": False}
                    break
            await asyncio.sleep(POLL_INTERVAL)
        await asyncio.to_thread(self._record_exit, c, record)
        self.events.emit(
            "container", "die", c.id, exitCode=str(c.state.exit_code), image=c.image, name=c.name
        )
        for fut in self._exit_waiters.pop(c.id, []):
            if not fut.done():
                fut.set_result(c.state.exit_code)
        if c.host_config.get("AutoRemove") and c.id in self.store:
            self._monitors.pop(c.id, None)
            try:
                await asyncio.to_thread(self._remove_blocking, c)
                self.events.emit("container", "destroy", c.id, image=c.image, name=c.name)
            except ContainerError as e:
                log.warning("container %s: auto-remove: %s", c.id, e)

    async def _shim_exited(self, c: Container) -> None:
        """Return as soon as the shim reports the container's exit (a `wait` request on its socket), so that
        `run --rm` does not pay for a poll interval; on any trouble with the shim, return at once and let the
        caller poll exit.json."""
        try:
            sock = await asyncio.to_thread(shim_connect, str(self._state_dir(c)), 2.0)
        except OSError:
            return
        sock.setblocking(False)
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock)
        except OSError:
            sock.close()
            return
        try:
            writer.write(b'{"op": "wait"}\n')
            await writer.drain()
            await reader.readline()
        except OSError:
            pass
        finally:
            writer.close()

    def _record_exit(self, c: Container, record: dict[str, Any]) -> None:
        c.state.status = "exited"
        c.state.pid = 0
        c.state.exit_code = int(record.get("ExitCode", 255))
        c.state.finished_at = record.get("FinishedAt") or now_rfc3339()
        c.state.oom_killed = bool(record.get("OOMKilled"))
        c.state.error = record.get("Error") or ""
        if c.id in self.store:
            self.store.save(c)
        try:
            self.rootfs.unmount(c.id)
        except Exception as e:  # the record must stand even when a mount is stuck
            log.warning("container %s: unmount after exit: %s", c.id, e)

    async def wait(self, ref: str, condition: str = "not-running") -> int:
        c = self.get(ref)
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise ContainerError(f"invalid condition: {condition!r}", 400)
        if condition in ("", "not-running") and not c.running and c.state.status != "created":
            return c.state.exit_code
        table = self._removal_waiters if condition == "removed" else self._exit_waiters
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        table.setdefault(c.id, []).append(fut)
        try:
            return await fut
        finally:
            waiters = table.get(c.id)
            if waiters and fut in waiters:
                waiters.remove(fut)

    # --- stop, kill --------------------------------------------------------------------------------

    async def _await_exit(self, c: Container, timeout: float | None) -> bool:
        if not c.running:
            return True
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._exit_waiters.setdefault(c.id, []).append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            waiters = self._exit_waiters.get(c.id)
            if waiters and fut in waiters:
                waiters.remove(fut)

    async def _signal(self, c: Container, sig: int, all_processes: bool = False) -> None:
        client = ShimClient(str(self._state_dir(c)))
        try:
            await asyncio.to_thread(client.kill, sig, all=all_processes)
        except (OSError, ShimError) as e:
            log.debug("container %s: kill %d: %s", c.id, sig, e)

    async def stop(self, ref: str, timeout: int | None = None) -> None:
        c = self.get(ref)
        if not c.running:
            raise NotModified("container already stopped", 304)
        c.manually_stopped = True
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            if timeout is None:
                timeout = 10
        sig = parse_signal(c.config.get("StopSignal"), signals.SIGTERM)
        self._monitor(c)
        if timeout != 0:
            await self._signal(c, sig)
            if await self._await_exit(c, None if timeout < 0 else float(timeout)):
                self.events.emit("container", "stop", c.id, image=c.image, name=c.name)
                return
        await self._signal(c, signals.SIGKILL, all_processes=True)
        if not await self._await_exit(c, 30.0):
            raise ContainerError(
                f"cannot stop container: {c.id}: tried to kill container, but did not receive an exit event",
                500,
            )
        self.events.emit("container", "stop", c.id, image=c.image, name=c.name)

    async def kill(self, ref: str, signal: str | None = None) -> None:
        c = self.get(ref)
        sig = parse_signal(signal, signals.SIGKILL)
        if not c.running:
            raise ContainerError(f"Cannot kill container: {ref}: Container {c.id} is not running", 409)
        self._monitor(c)
        await self._signal(c, sig, all_processes=sig == signals.SIGKILL)
        self.events.emit("container", "kill", c.id, image=c.image, name=c.name, signal=str(sig))
        if sig == signals.SIGKILL:
            await self._await_exit(c, 10.0)

    # --- remove ------------------------------------------------------------------------------------

    async def remove(self, ref: str, force: bool = False) -> None:
        c = self.get(ref)
        if c.running:
            if not force:
                raise ContainerError(
                    f"You cannot remove a running container {c.id}. Stop the container before attempting "
                    "removal or force remove",
                    409,
                )
            self._monitor(c)
            await self._signal(c, signals.SIGKILL, all_processes=True)
            if not await self._await_exit(c, 30.0):
                raise ContainerError(f"Could not kill running container {c.id}, cannot remove", 500)
        task = self._monitors.pop(c.id, None)
        if task is not None and not task.done():
            await asyncio.wait([task], timeout=5)
        await asyncio.to_thread(self._remove_blocking, c)
        self.events.emit("container", "destroy", c.id, image=c.image, name=c.name)

    def _remove_blocking(self, c: Container) -> None:
        try:
            self.rootfs.remove(c.id)
        except Exception as e:
            raise ContainerError(f"unable to remove filesystem for {c.id}: {e}", 500) from None
        self.store.remove(c.id)
        self._locks.pop(c.id, None)
        for fut in self._removal_waiters.pop(c.id, []):  # this runs in a thread: resolve in the loop
            fut.get_loop().call_soon_threadsafe(_resolve, fut, c.state.exit_code)

    # --- logs --------------------------------------------------------------------------------------

    async def logs(
        self,
        ref: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        since: float | None = None,
        until: float | None = None,
        stdout: bool = True,
        stderr: bool = True,
    ) -> AsyncIterator[tuple[str, int, bytes]]:
        c = self.get(ref)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, int, bytes] | None | BaseException] = asyncio.Queue(maxsize=1024)
        cancelled = threading.Event()
        exit_path = self._state_dir(c) / "exit.json"

        def done() -> bool:
            return cancelled.is_set() or not c.running or exit_path.exists()

        def put(item: Any) -> None:
            fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while not cancelled.is_set():
                try:
                    fut.result(timeout=0.5)
                    return
                except TimeoutError:
                    continue
            fut.cancel()

        def pump() -> None:
            try:
                if os.path.exists(c.log_path) or follow:
                    for item in read_logs(
                        c.log_path,
                        follow=follow and c.running,
                        tail=tail,
                        since=since,
                        until=until,
                        stdout=stdout,
                        stderr=stderr,
                        stop=done,
                    ):
                        if cancelled.is_set():
                            return
                        put(item)
            except FileNotFoundError:
                pass
            except BaseException as e:
                put(e)
                return
            put(None)

        thread = threading.Thread(target=pump, name=f"logs-{c.id[:12]}", daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()

    # --- inspect, list -----------------------------------------------------------------------------

    def inspect(self, ref: str) -> dict[str, Any]:
        c = self.get(ref)
        d = self._dir(c)
        s = c.state
        graph: dict[str, Any] = {"Name": c.driver, "Data": None}
        if c.driver == "overlay2":
            base = self.rootfs.dir(c.id)
            graph["Data"] = {
                "MergedDir": str(base / "merged"),
                "UpperDir": str(base / "upper"),
                "WorkDir": str(base / "work"),
            }
        return {
            "Id": c.id,
            "Created": c.created,
            "Path": c.path,
            "Args": c.args,
            "State": {
                "Status": s.status,
                "Running": s.status == "running",
                "Paused": s.status == "paused",
                "Restarting": s.status == "restarting",
                "OOMKilled": s.oom_killed,
                "Dead": s.status == "dead",
                "Pid": s.pid,
                "ExitCode": s.exit_code,
                "Error": s.error,
                "StartedAt": s.started_at,
                "FinishedAt": s.finished_at,
            },
            "Image": c.image_id,
            "ResolvConfPath": str(d / "resolv.conf"),
            "HostnamePath": str(d / "hostname"),
            "HostsPath": str(d / "hosts"),
            "LogPath": c.log_path,
            "Name": "/" + c.name,
            "RestartCount": c.restart_count,
            "Driver": c.driver,
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": None,
            "HostConfig": _shown_host_config(c.host_config),
            "GraphDriver": graph,
            "Mounts": [],
            "Config": c.config,
            "NetworkSettings": {
                "Bridge": "",
                "SandboxID": "",
                "HairpinMode": False,
                "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0,
                "Ports": {},
                "SandboxKey": "",
                "SecondaryIPAddresses": None,
                "SecondaryIPv6Addresses": None,
                "EndpointID": "",
                "Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "IPAddress": "",
                "IPPrefixLen": 0,
                "IPv6Gateway": "",
                "MacAddress": "",
                "Networks": {},
            },
        }

    def _status_text(self, c: Container) -> str:
        s = c.state
        now = time.time()
        if s.status == "running":
            return "Up " + human_duration(now - _rfc3339_to_unix(s.started_at))
        if s.status == "exited":
            if s.started_at == ZERO_TIME and s.finished_at == ZERO_TIME:
                return "Created"
            ago = human_duration(now - _rfc3339_to_unix(s.finished_at))
            return f"Exited ({s.exit_code}) {ago} ago"
        if s.status == "created":
            return "Created"
        return s.status.capitalize()

    def _matches(self, c: Container, filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "id" and not any(c.id.startswith(v) for v in values):
                return False
            if key == "name" and not any(re.search(v.lstrip("/"), c.name) for v in values):
                return False
            if key == "status" and c.state.status not in values:
                return False
            if key == "exited" and (c.state.status != "exited" or str(c.state.exit_code) not in values):
                return False
            if key == "ancestor" and not any(v in (c.image, c.image_id) for v in values):
                return False
            if key == "label":
                labels = c.config.get("Labels") or {}
                for wanted in values:
                    k, sep, v = wanted.partition("=")
                    if k not in labels or (sep and labels[k] != v):
                        return False
        return True

    def list(self, all: bool = False, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        filters = filters or {}
        out = []
        containers = sorted(self.store.all(), key=lambda c: c.created, reverse=True)
        for c in containers:
            if not all and not c.running and not filters.get("status") and not filters.get("exited"):
                continue
            if not self._matches(c, filters):
                continue
            command = " ".join([c.path, *c.args]).strip()
            out.append(
                {
                    "Id": c.id,
                    "Names": ["/" + c.name],
                    "Image": c.image,
                    "ImageID": c.image_id,
                    "Command": command,
                    "Created": int(_rfc3339_to_unix(c.created)),
                    "Ports": [],
                    "Labels": c.config.get("Labels") or {},
                    "State": c.state.status,
                    "Status": self._status_text(c),
                    "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "default"},
                    "NetworkSettings": {"Networks": {}},
                    "Mounts": [],
                }
            )
        return out

    def counts(self) -> tuple[int, int, int, int]:
        all_ = self.store.all()
        running = sum(1 for c in all_ if c.state.status == "running")
        paused = sum(1 for c in all_ if c.state.status == "paused")
        return len(all_), running, paused, len(all_) - running - paused

    # --- daemon start ------------------------------------------------------------------------------

    def recover(self) -> None:
        """Load the records; containers whose shim has meanwhile recorded an exit (or died) are exited."""
        self.store.load()
        running = []
        for c in self.store.all():
            if not c.running:
                continue
            record = read_json(str(self._state_dir(c) / "exit.json"))
            shim_pid = int(c.extra.get("shim_pid") or 0)
            if record is None and not (shim_pid and _pid_alive(shim_pid)):
                record = {"ExitCode": 255, "Error": "the container's shim died", "OOMKilled": False}
            if record is not None:
                c.state.status = "exited"
                c.state.pid = 0
                c.state.exit_code = int(record.get("ExitCode", 255))
                c.state.finished_at = record.get("FinishedAt") or now_rfc3339()
                c.state.oom_killed = bool(record.get("OOMKilled"))
                c.state.error = record.get("Error") or ""
                self.store.save(c)
            else:
                running.append(c.id)
        self.rootfs.recover({c.id for c in self.store.all()}, running)

    async def start_monitors(self) -> None:
        """At daemon start (in the event loop): watch the containers that still run."""
        for c in self.store.all():
            if c.running:
                self._monitor(c)

    async def close(self) -> None:
        for task in self._monitors.values():
            task.cancel()
        self._monitors.clear()
        await asyncio.to_thread(self.launcher.close)


def _shown_host_config(host_config: dict[str, Any]) -> dict[str, Any]:
    """As dockerd shows it: the log driver filled in (docker-py's run reads it)."""
    log_config = host_config.get("LogConfig") or {}
    if log_config.get("Type"):
        return host_config
    return {**host_config, "LogConfig": {"Type": "json-file", "Config": log_config.get("Config") or {}}}


def _resolve(fut: asyncio.Future[int], value: int) -> None:
    if not fut.done():
        fut.set_result(value)


def _size(value: str | None) -> int | None:
    if not value:
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmg]?)b?", str(value).strip().lower())
    if not m:
        raise ContainerError(f"invalid size: '{value}'", 400)
    return int(float(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2)])
