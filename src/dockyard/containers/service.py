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
import stat
import threading
import time
from collections.abc import AsyncIterator
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..images.service import ImageError, _trim_fraction
from ..linux.capabilities import bounding_set
from ..logs.jsonfile import read_logs
from ..logs.options import LogConfigError, open_options
from ..runtime.external import BUILTIN_RUNTIME, OCIRuntime
from ..runtime.forkserver import ShimLauncher
from ..runtime.shim_protocol import ShimClient, ShimError, read_json
from ..runtime.shim_protocol import connect as shim_connect
from ..runtime.spec import (
    ContainerOptions,
    SpecError,
    adapt_host_config,
    build_spec,
    merge_config,
    mount_points,
    validate_options,
)
from ..volumes import VolumeError, VolumeService
from ..volumes import mounts as volume_mounts
from . import create_options
from . import health as health_checks
from .endpoint_options import EndpointError, validate_net_mode
from .execs import ExecConfigError, ExecRecord, exec_process, new_exec, start_error_message
from .health import HealthChecks, HealthConfigError
from .ids import AmbiguousPrefix, InvalidIdentifier, NoSuchContainer, generate_id
from .initlayer import MTAB_TARGET, make_init_files
from .links import NOT_DEFAULT_NAME, LinkError, Links, merge_env
from .names import InvalidName, NameConflict, generate_name, validate_name
from .networking import ContainerNetworkError, ContainerNetworking, check_port_filters
from .pathview import read_in_root
from .removal import Removals
from .resources import SHOWN_DEFAULTS, ResourceError, init_rt_parent
from .restart import (
    RestartManager,
    RestartPolicy,
    RestartPolicyError,
    kill_cancels_restart,
    start_at_daemon_start,
)
from .restart import validate as validate_restart_policy
from .rootfs import RootfsManager
from .store import STATUSES, ZERO_TIME, Container, ContainerStore, now_rfc3339

if TYPE_CHECKING:  # engine imports this module: no import of engine at run time
    from ..engine.events import EventBus
    from ..images import ImageService
    from ..linux.cgroups import Cgroup
    from ..network import NetworkService, Sandbox

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
POLL_INTERVAL = 0.05
LOG_BATCH = 2048  # log records handed from the reading thread to the event loop at a time
ATTACH_WAIT = 10.0  # how long a shim holds the output for an attach on its way (see attach_pending)
# the filters `docker ps` may send (dockerd's acceptedPsFilterTags)
LIST_FILTERS = frozenset(
    (
        "ancestor before expose exited health id isolation is-task label name network publish since status "
        "volume"
    ).split()
)


class ContainerError(Exception):
    """A user-facing container error; `status` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NotModified(ContainerError):
    status = 304


class ExecStartFailed(ContainerError):
    """An exec's process could not be started: dockerd writes this into the exec's stream."""

    status = 500


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
    def __init__(
        self,
        data_root: Path | str,
        images: ImageService,
        events: EventBus,
        cgroup_version: str,
        *,
        runtimes: dict[str, OCIRuntime] | None = None,
        default_runtime: str = BUILTIN_RUNTIME,
        exec_root: str = "/run/dockyard",
        volumes: VolumeService | None = None,
        networks: NetworkService | None = None,
    ):
        data_root = Path(data_root)
        self.volumes = volumes or VolumeService(data_root / "volumes", events)
        self.volumes.users = self._volume_users
        # HostConfig.Runtime names one of these (the built-in one has no path)
        self.runtimes = runtimes or {BUILTIN_RUNTIME: OCIRuntime(BUILTIN_RUNTIME)}
        self.default_runtime = default_runtime
        self.exec_root = exec_root
        self.seccomp_profile = ""  # the daemon's default: "" (built-in), "unconfined" or a profile's JSON
        self.images = images
        self.events = events
        self.cgroup_version = cgroup_version
        self.store = ContainerStore(data_root / "containers")
        self.rootfs = RootfsManager(data_root / "rootfs", images.snapshots)
        self.net = ContainerNetworking(networks)
        self.links = Links(self)  # legacy links (--link) on the default bridge
        images.container_users = self.store.users_of_image
        self._monitors: dict[str, asyncio.Task[None]] = {}
        self._exit_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._removal_waiters: dict[str, list[asyncio.Future[int]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._attach_pending: dict[str, int] = {}  # attaches waiting for the container to start
        self._start_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._restart_managers: dict[str, RestartManager] = {}
        self._restart_wakeups: dict[str, asyncio.Event] = {}  # set to cut a restart's back-off short
        self.launcher = ShimLauncher()  # started lazily, at the first container start
        # what a privileged container can be given: the daemon's bounding set, fixed for its lifetime
        self.capabilities_available = bounding_set()
        self._execs: dict[str, ExecRecord] = {}  # in memory only, as dockerd's
        self._exec_flags: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}  # (started, ended)
        self._exec_tasks: set[asyncio.Task[None]] = set()
        self.health = HealthChecks(self)  # the healthcheck monitors (containers/health.py)
        self.removals = Removals()  # who removes a container (containers/removal.py)
        self.log_defaults: tuple[str, dict[str, str]] = ("json-file", {})  # daemon.json log-driver, log-opts
        self.cpu_rt = (0, 0)  # daemon.json cpu-rt-period, cpu-rt-runtime (resources.init_rt_parent)

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
        try:  # dockerd's decoder refuses these before anything else
            validate_net_mode(body, body.get("HostConfig") or {})
        except EndpointError as e:
            raise ContainerError(str(e), e.status) from None
        image_name = body.get("Image") or ""
        if not image_name:
            raise ContainerError("No image specified", 400)
        try:  # dockerd checks it before looking the image up
            health = health_checks.check_config(body.get("Healthcheck"))
        except HealthConfigError as e:
            raise ContainerError(str(e), 400) from None
        try:
            record = self.images.get(image_name)
        except ImageError as e:
            raise ContainerError(str(e), e.status) from None
        image_config = self.images.config(record)
        img_cfg = image_config.get("config") or {}
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        try:  # keys in any case, Go's types, the real-time fields, the log driver (create_options)
            raw_host_config, warnings = create_options.decode_host_config(body)
            raw_host_config["LogConfig"] = create_options.log_config(raw_host_config, *self.log_defaults)
        except create_options.CreateOptionError as e:
            raise ContainerError(str(e), e.status) from None
        host_config = adapt_host_config(raw_host_config, cgroup_version=self.cgroup_version)
        try:
            validate_restart_policy(host_config)
        except RestartPolicyError as e:
            raise ContainerError(str(e), 400) from None
        runtime = host_config.get("Runtime") or self.default_runtime
        if runtime not in self.runtimes:
            raise ContainerError(f"Unknown runtime specified {runtime}", 400)
        host_config["Runtime"] = runtime  # as dockerd: inspect names the runtime chosen at create
        container_id = generate_id()
        options = ContainerOptions.from_api(
            container_id, str(self.rootfs.path(container_id)), config, host_config, img_cfg
        )
        try:
            warnings += validate_options(options, cgroup_version=self.cgroup_version, ncpu=os.cpu_count())
            merged = merge_config(options)
        except SpecError as e:
            raise ContainerError(str(e), 400) from None
        try:
            networks, network_warnings = self.net.at_create(host_config, config, body.get("NetworkingConfig"))
        except ContainerNetworkError as e:
            raise ContainerError(str(e), e.status) from None
        warnings += network_warnings
        try:
            links = self.links.register(host_config)
        except LinkError as e:
            raise ContainerError(str(e), e.status) from None
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
            **health_checks.config_entry(health, img_cfg.get("Healthcheck")),
            "Image": image_name,
            # as dockerd merges them: the image's VOLUMEs and the create's (`-v /path`)
            "Volumes": {**(img_cfg.get("Volumes") or {}), **(config.get("Volumes") or {})} or None,
            "ExposedPorts": {**(img_cfg.get("ExposedPorts") or {}), **(config.get("ExposedPorts") or {})}
            or None,
            "WorkingDir": merged.working_dir,
            "Entrypoint": merged.entrypoint,
            "OnBuild": None,
            "Labels": labels,
        }
        if merged.stop_signal:
            shown["StopSignal"] = merged.stop_signal
        if config.get("MacAddress"):
            shown["MacAddress"] = config["MacAddress"]
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
            extra={"create_config": config, "networks": networks, **({"links": links} if links else {})},
        )
        if host_config["LogConfig"]["Type"] != "none":  # as dockerd: no LogPath without a log
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
        self._create_mounts(container, options)
        self.events.emit("container", "create", container_id, image=image_name, name=name)
        return container_id, warnings

    def _create_mounts(self, c: Container, options: ContainerOptions) -> None:
        """The container's volumes (created or taken) and mount records; a failure undoes the create."""
        try:
            c.mount_points = volume_mounts.create_mounts(
                self.volumes, mount_points(options), c.host_config.get("VolumeDriver") or ""
            )
            self.store.save(c)
        except BaseException as e:
            self.store.remove(c.id)
            with contextlib.suppress(Exception):
                self.rootfs.remove(c.id)
            if isinstance(e, VolumeError):
                raise ContainerError(str(e), e.status) from None
            raise

    def _volume_users(self, name: str) -> list[tuple[str, bool]]:
        """VolumeService's `users` hook: the containers naming the volume in their mounts."""
        return [
            (c.id, c.running) for c in self.store.all() if name in volume_mounts.volume_names(c.mount_points)
        ]

    def _prepare_mounts(self, c: Container, rootfs: Path) -> dict[str, str]:
        """At start: `volume_paths` for the spec (see volumes.mounts.prepare_mounts)."""
        try:
            return volume_mounts.prepare_mounts(self.volumes, c.mount_points, str(rootfs))
        except (VolumeError, OSError) as e:
            self.rootfs.unmount(c.id)
            if isinstance(e, OSError):
                raise ContainerError(f"error while mounting volumes: {e}", 500) from None
            raise ContainerError(str(e), e.status) from None

    def _volume_events(self, c: Container, action: str) -> None:
        """dockerd's `mount` (at start) and `unmount` (at exit) events, one per volume."""
        for record in c.mount_points.values():
            if record.get("Type") != "volume":
                continue
            attributes = volume_mounts.mount_event_attributes(record, c.id)
            if action == "unmount":
                attributes = {"container": c.id, "driver": attributes["driver"]}
                with contextlib.suppress(VolumeError, OSError):
                    self.volumes.unmount(record["Name"], c.id)
            self.events.emit("volume", action, record["Name"], **attributes)

    def _remove_volumes(self, c: Container, volumes: bool | None) -> None:
        """After the container's removal: its anonymous volumes go with `rm -v` and with `--rm` (as
        dockerd's auto-remove does), unless another container uses them too."""
        if volumes is None:
            volumes = bool(c.host_config.get("AutoRemove"))
        if not volumes:
            return
        for name in volume_mounts.anonymous_volumes(c.mount_points):
            try:
                self.volumes.remove(name)
            except VolumeError as e:
                log.debug("container %s: keeping volume %s: %s", c.id, name, e)

    # --- start -------------------------------------------------------------------------------------

    def _write_etc_files(self, c: Container, hostname: str, sandbox: Sandbox | None) -> None:
        d = self._dir(c)
        (d / "hostname").write_text(hostname + "\n")
        mode = c.host_config.get("NetworkMode") or ""
        if mode.startswith("container:"):
            # as dockerd: a container on another's network sees that one's /etc/hosts and resolv.conf
            donor = self._dir(self.get(mode.partition(":")[2]))
            with contextlib.suppress(OSError):
                for name in ("hosts", "resolv.conf"):
                    shutil.copyfile(donor / name, d / name)
                return
        (d / "hosts").write_text(self.net.hosts(c, hostname, sandbox, self.links.hosts_lines(c)))
        (d / "resolv.conf").write_text(self.net.resolv_conf(c, sandbox))

    async def start(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            if c.state.status == "paused":
                raise ContainerError("cannot start a paused container, try unpause instead", 409)
            if c.running:
                raise NotModified("container already started", 304)
            if c.state.status == "removing":
                raise ContainerError(f"container {c.id} is marked for removal and cannot be started", 409)
            # a manual start begins the restart policy afresh, as dockerd's ResetRestartManager
            self._restart_managers.pop(c.id, None)
            c.restart_count = 0
            try:
                await asyncio.to_thread(self._start_blocking, c, self._attach_pending.get(c.id, 0) > 0)
            except BaseException as e:
                for fut in self._start_waiters.pop(c.id, []):
                    if not fut.done():
                        fut.set_exception(e if isinstance(e, ContainerError) else ContainerError(str(e)))
                if c.host_config.get("AutoRemove") and isinstance(e, Exception):
                    # as dockerd: a --rm container that failed to start is removed (`docker run --rm`
                    # waits for that removal before it reports the error)
                    await self._auto_remove_after_failed_start(c)
                raise
        self._volume_events(c, "mount")
        self._network_events(c, "connect")
        await self.health.started(c)
        self.events.emit("container", "start", c.id, image=c.image, name=c.name)
        self._monitor(c)
        for fut in self._start_waiters.pop(c.id, []):
            _resolve(fut, None)  # type: ignore[arg-type]

    async def _auto_remove_after_failed_start(self, c: Container) -> None:
        try:
            await self._auto_remove(c)
        except ContainerError as e:
            log.warning("container %s: auto-remove after a failed start: %s", c.id, e)

    async def _auto_remove(self, c: Container, volumes: bool | None = None) -> None:
        """The removal, unless another caller (an `rm -f`) owns it (containers/removal.py)."""
        if self.removals.claim(c.id):
            await self.removals.run(
                c.id,
                lambda: self._remove_blocking(c, volumes),
                lambda: self.events.emit("container", "destroy", c.id, image=c.image, name=c.name),
            )

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
        # the network sandbox comes first: a host port that is taken fails the start before anything else
        # is made, and whatever fails later takes the sandbox back with it
        try:
            self.links.check_start(c)
            sandbox = self.net.attach(c, c.config.get("Hostname") or "")
        except (ContainerNetworkError, LinkError) as e:
            raise ContainerError(str(e), e.status) from None
        try:
            self._start_in_sandbox(c, sandbox, attach_pending)
        except BaseException:
            self.net.release(c)
            raise
        self.links.started(c)  # its running parents' hosts files name its new address

    def _joined_namespaces(self, c: Container) -> dict[str, Any]:
        """`container:<name|id>` modes: the donor's namespaces by path (its network one is the sandbox's
        when it has one), and its hostname for a shared network. The donor must be running (dockerd)."""
        paths: dict[str, str] = {}
        hostname = ""
        for kind, key in (("network", "NetworkMode"), ("ipc", "IpcMode"), ("pid", "PidMode")):
            mode = c.host_config.get(key) or ""
            if not mode.startswith("container:"):
                continue
            donor = self.get(mode.partition(":")[2])
            if donor.id == c.id:
                raise ContainerError(f"cannot join own {kind} namespace", 400)
            if donor.state.status != "running" or not donor.state.pid:
                raise ContainerError(f"cannot join {kind} of a non running container: {donor.id}", 409)
            box = self.net.sandbox(donor) if kind == "network" else None
            paths[kind] = (
                box.netns if box else f"/proc/{donor.state.pid}/ns/{'net' if kind == 'network' else kind}"
            )
            if kind == "network":
                hostname = donor.config.get("Hostname") or donor.id[:12]
        return {"namespace_paths": paths, "network_hostname": hostname} if paths else {}

    def _start_in_sandbox(self, c: Container, sandbox: Sandbox | None, attach_pending: bool) -> None:
        from ..runtime.builtin import SpawnError
        from ..runtime.shim import ShimConfig

        runtime = self.runtimes.get(c.host_config.get("Runtime") or self.default_runtime)
        if runtime is None:  # configured at create, gone from the daemon's configuration since
            raise ContainerError(f"Unknown runtime specified {c.host_config.get('Runtime')}", 400)
        try:
            keeps_log, log_max_size, log_max_file = open_options(c.host_config.get("LogConfig"))
            init_rt_parent(*self.cpu_rt)
        except (LogConfigError, ResourceError) as e:
            raise ContainerError(str(e), e.status) from None
        try:
            record = self.images.get(c.image_id)
        except ImageError as e:
            raise ContainerError(str(e), e.status) from None
        rootfs = self.rootfs.mount(c.id, record.chain_id)
        if not c.extra.get("init_files"):  # /.dockerenv and /etc/mtab, once (containers/initlayer)
            try:
                make_init_files(str(rootfs))
            except OSError as e:
                self.rootfs.unmount(c.id)
                raise ContainerError(f"cannot set up the container's root: {e}", 500) from None
            c.extra["init_files"] = True
        volume_paths = self._prepare_mounts(c, rootfs)
        d = self._dir(c)
        try:
            options = self._options(
                c,
                hostname_path=str(d / "hostname"),
                hosts_path=str(d / "hosts"),
                resolv_conf_path=str(d / "resolv.conf"),
                seccomp_profile=self.seccomp_profile,
                init_binary=shutil.which("docker-init") or shutil.which("tini-static") or "",
                volume_paths=volume_paths,
                netns_path=sandbox.netns if sandbox else "",
                **self._joined_namespaces(c),
            )
            merged = merge_config(options)
            self._write_etc_files(c, merged.hostname, sandbox)

            def lookup(path: str) -> str | None:  # /etc/passwd and /etc/group: the container's own
                return read_in_root(str(rootfs), path)

            spec = build_spec(
                options,
                cgroup_version=self.cgroup_version,
                user_lookup=lookup,
                capabilities_available=self.capabilities_available,
            )
        except SpecError as e:
            self.rootfs.unmount(c.id)
            raise ContainerError(str(e), 400) from None
        try:
            linked = self.links.env(c)
        except LinkError as e:
            self.rootfs.unmount(c.id)
            raise ContainerError(str(e), e.status) from None
        if linked:
            process = spec["process"]
            process["env"] = merge_env(process["env"], linked, list(c.config.get("Env") or []))
        bundle = d / "bundle"
        bundle.mkdir(exist_ok=True)
        (bundle / "config.json").write_text(json.dumps(spec))
        state_dir = self._state_dir(c)
        shutil.rmtree(state_dir, ignore_errors=True)
        config = ShimConfig(
            id=c.id,
            bundle=str(bundle),
            state_dir=str(state_dir),
            log_path=c.log_path if keeps_log else None,
            log_max_size=log_max_size,
            log_max_file=log_max_file,
            open_stdin=options.open_stdin,
            stdin_once=bool(c.config.get("StdinOnce")),
            attach_wait=ATTACH_WAIT if attach_pending else 0.0,
            runtime_path=runtime.path,
            runtime_name=runtime.name,
            runtime_root=runtime.root(self.exec_root) if runtime.path else "",
            runtime_args=list(runtime.args),
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
            if runtime.path:  # runc and crun word their errors themselves ("runc create failed: ...")
                message = f"failed to create shim task: OCI runtime create failed: {e}: unknown"
            else:
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
        """Watch the container's runs: record each exit and, when its restart policy says so, start it
        again after dockerd's back-off (the container is `restarting` meanwhile)."""
        while True:
            record = await self._next_exit(c)
            manager = self._restart_manager(c)
            finished = record.get("FinishedAt") or now_rfc3339()
            ran_for = max(0.0, _rfc3339_to_unix(finished) - _rfc3339_to_unix(c.state.started_at))
            delay = manager.decide(
                int(record.get("ExitCode", 255)), c.manually_stopped, ran_for, c.restart_count
            )
            if c.id not in self.store:
                delay = None
            await asyncio.to_thread(self._record_exit, c, record, delay is not None)
            await self.health.stop(c)
            self.events.emit(
                "container", "die", c.id, exitCode=str(c.state.exit_code), image=c.image, name=c.name
            )
            self._volume_events(c, "unmount")
            self._network_events(c, "disconnect")
            for fut in self._exit_waiters.pop(c.id, []):
                if not fut.done():
                    fut.set_result(c.state.exit_code)
            if delay is not None:
                if await self._restart_after(c, manager, delay):
                    continue
                return
            if c.host_config.get("AutoRemove") and c.id in self.store:
                self._monitors.pop(c.id, None)
                try:
                    await self._auto_remove(c)
                except ContainerError as e:
                    log.warning("container %s: auto-remove: %s", c.id, e)
            return

    async def _next_exit(self, c: Container) -> dict[str, Any]:
        exit_path = self._state_dir(c) / "exit.json"
        missing_since: float | None = None
        if not exit_path.exists():
            await self._shim_exited(c)
        while True:
            record = read_json(str(exit_path))
            if record is not None:
                return record
            shim_pid = int(c.extra.get("shim_pid") or 0)
            if shim_pid and not _pid_alive(shim_pid):
                if missing_since is None:
                    missing_since = time.monotonic()
                elif time.monotonic() - missing_since > 1.0:
                    return {"ExitCode": 255, "Error": "the container's shim died", "OOMKilled": False}
            await asyncio.sleep(POLL_INTERVAL)

    # --- restart policies --------------------------------------------------------------------------

    def _restart_manager(self, c: Container) -> RestartManager:
        manager = self._restart_managers.get(c.id)
        if manager is None:
            manager = RestartManager(RestartPolicy.from_host_config(c.host_config))
            self._restart_managers[c.id] = manager
        return manager

    async def _restart_after(self, c: Container, manager: RestartManager, delay: float) -> bool:
        """Wait out the back-off, then start the container again; False when a stop, kill or remove
        canceled the restart (or the start failed), leaving the container exited."""
        wake = self._restart_wakeups[c.id] = asyncio.Event()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
        finally:
            if self._restart_wakeups.get(c.id) is wake:
                del self._restart_wakeups[c.id]
        async with self._lock(c.id):
            if manager.canceled or c.state.status != "restarting" or c.id not in self.store:
                await asyncio.to_thread(self._settle_restarting, c)
                return False
            try:
                await asyncio.to_thread(self._start_blocking, c)
            except Exception as e:  # dockerd leaves it stopped and logs why
                log.warning("container %s: restart failed: %s", c.id, e)
                await asyncio.to_thread(self._settle_restarting, c)
                return False
        self._volume_events(c, "mount")
        self._network_events(c, "connect")
        await self.health.started(c)
        self.events.emit("container", "start", c.id, image=c.image, name=c.name)
        for fut in self._start_waiters.pop(c.id, []):
            _resolve(fut, None)  # type: ignore[arg-type]
        return True

    def _settle_restarting(self, c: Container) -> None:
        if c.state.status == "restarting":
            c.state.status = "exited"
            if c.id in self.store:
                self.store.save(c)

    async def _cancel_restart(self, c: Container) -> None:
        """No more restarts until the next manual start; a container waiting out its back-off is left
        exited at once (`stop` and `rm -f` of a restarting container do not wait for the delay)."""
        self._restart_manager(c).cancel()
        wake = self._restart_wakeups.get(c.id)
        if wake is not None:
            wake.set()
        task = self._monitors.get(c.id)
        if c.state.status == "restarting" and (task is None or task.done()):
            await asyncio.to_thread(self._settle_restarting, c)
        deadline = time.monotonic() + START_TIMEOUT
        while c.state.status == "restarting" and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _shutdown_stop(self, c: Container) -> None:
        await self._cancel_restart(c)
        if c.state.status != "running":
            return
        timeout = c.config.get("StopTimeout")
        timeout = 10 if timeout is None else int(timeout)
        self._monitor(c)
        if timeout != 0:
            await self._signal(c, parse_signal(c.config.get("StopSignal"), signals.SIGTERM))
            if await self._await_exit(c, None if timeout < 0 else float(timeout)):
                return
        await self._signal(c, signals.SIGKILL, all_processes=True)
        await self._await_exit(c, 30.0)

    async def restart(self, ref: str, timeout: int | None = None) -> None:
        """`docker restart`: stop when running, start afresh (RestartCount back to 0), a `restart` event."""
        try:
            await self.stop(ref, timeout)
        except NotModified:
            pass
        await self.start(ref)
        c = self.get(ref)
        self.events.emit("container", "restart", c.id, image=c.image, name=c.name)

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

    def _record_exit(self, c: Container, record: dict[str, Any], restarting: bool = False) -> None:
        # as dockerd's SetRestarting: a container about to restart counts as running (ps lists it, rm
        # refuses it without force) and RestartCount counts the restarts
        c.state.status = "restarting" if restarting else "exited"
        if restarting:
            c.restart_count += 1
        c.state.pid = 0
        c.state.exit_code = int(record.get("ExitCode", 255))
        c.state.finished_at = record.get("FinishedAt") or now_rfc3339()
        c.state.oom_killed = bool(record.get("OOMKilled"))
        c.state.error = record.get("Error") or ""
        if c.id in self.store:
            self.store.save(c)
        try:
            self.net.release(c)
        except Exception as e:  # the record must stand even when a network is stuck
            log.warning("container %s: network release after exit: %s", c.id, e)
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
        await self._thaw_after_signal(c, sig)

    async def stop(self, ref: str, timeout: int | None = None) -> None:
        c = self.get(ref)
        if not c.running:
            raise NotModified("container already stopped", 304)
        c.manually_stopped = True
        await self._cancel_restart(c)
        if c.state.status not in ("running", "paused"):  # it was waiting to restart: nothing to signal
            self.events.emit("container", "stop", c.id, image=c.image, name=c.name)
            return
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
        c.manually_stopped = True
        stop_signal = c.config.get("StopSignal")
        if kill_cancels_restart(sig, parse_signal(stop_signal) if stop_signal else None):
            await self._cancel_restart(c)
        if c.state.status not in ("running", "paused"):  # restarting: telling the restart loop is enough
            self.events.emit("container", "kill", c.id, image=c.image, name=c.name, signal=str(sig))
            return
        self._monitor(c)
        await self._signal(c, sig, all_processes=sig == signals.SIGKILL)
        self.events.emit("container", "kill", c.id, image=c.image, name=c.name, signal=str(sig))
        if sig == signals.SIGKILL:
            await self._await_exit(c, 10.0)

    # --- remove ------------------------------------------------------------------------------------

    def remove_link(self, name: str) -> None:
        """`DELETE /containers/parent/alias?link=1`: the link goes, both containers stay (rmLink)."""
        found = self.links.find(name)
        if found is None:
            if "/" in name.strip("/"):
                raise ContainerError(f"No such container: {name}", 404)
            self.get(name)  # dockerd looks the name up first: 404 for what names no container
            raise ContainerError(NOT_DEFAULT_NAME, 500)
        self.links.remove(*found)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.running and not force:
            raise ContainerError(
                f"You cannot remove a {c.state.status} container {c.id}. Stop the container before "
                "attempting removal or force remove",
                409,
            )
        if not self.removals.claim(c.id):  # the --rm auto-removal (or another rm) owns it: its outcome
            await self.removals.wait(c.id)
            return
        try:
            if c.running:
                await self._cancel_restart(c)
            if c.running:
                self._monitor(c)
                await self._signal(c, signals.SIGKILL, all_processes=True)
                if not await self._await_exit(c, 30.0):
                    raise ContainerError(f"Could not kill running container {c.id}, cannot remove", 500)
            task = self._monitors.pop(c.id, None)
            if task is not None and not task.done():
                await asyncio.wait([task], timeout=5)
        except BaseException as e:
            self.removals.release(c.id, e)
            raise
        await self.removals.run(
            c.id,
            lambda: self._remove_blocking(c, volumes),
            lambda: self.events.emit("container", "destroy", c.id, image=c.image, name=c.name),
        )

    def _remove_blocking(self, c: Container, volumes: bool | None = None) -> None:
        self.net.release(c)
        try:
            self.rootfs.remove(c.id)
        except Exception as e:
            raise ContainerError(f"unable to remove filesystem for {c.id}: {e}", 500) from None
        self.store.remove(c.id)
        self._remove_volumes(c, volumes)  # None: as AutoRemove says (the --rm paths)
        self._locks.pop(c.id, None)
        self._restart_managers.pop(c.id, None)
        for fut in self._removal_waiters.pop(c.id, []):  # this runs in a thread: resolve in the loop
            fut.get_loop().call_soon_threadsafe(_resolve, fut, c.state.exit_code)

    # --- logs --------------------------------------------------------------------------------------

    async def logs(
        self,
        ref: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        since: float | Fraction | None = None,
        until: float | Fraction | None = None,
        stdout: bool = True,
        stderr: bool = True,
    ) -> AsyncIterator[list[tuple[str, int, bytes]]]:
        """The container's log records, (stream, time in ns, bytes), in batches: a 200 MB log has two
        million records, and handing each one from the reading thread to the event loop on its own would
        cost more than reading them. A batch is handed over when it is full, and whenever the reader
        reaches the end of what was written so far (it asks `done()` then), so a follower sees each line
        as soon as it is logged."""
        c = self.get(ref)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[list[tuple[str, int, bytes]] | None | BaseException] = asyncio.Queue(maxsize=16)
        cancelled = threading.Event()
        exit_path = self._state_dir(c) / "exit.json"
        batch: list[tuple[str, int, bytes]] = []

        def put(item: Any) -> None:
            fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while not cancelled.is_set():
                try:
                    fut.result(timeout=0.5)
                    return
                except TimeoutError:
                    continue
            fut.cancel()

        def flush() -> None:
            nonlocal batch
            if batch:
                full, batch = batch, []
                put(full)

        def done() -> bool:
            flush()
            return cancelled.is_set() or not c.running or exit_path.exists()

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
                        batch.append(item)
                        if len(batch) >= LOG_BATCH:
                            flush()
                flush()
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
                "Running": c.running,  # dockerd: true while restarting (and paused) too
                "Paused": s.status == "paused",
                "Restarting": s.status == "restarting",
                "OOMKilled": s.oom_killed,
                "Dead": s.status == "dead",
                "Pid": s.pid,
                "ExitCode": s.exit_code,
                "Error": s.error,
                "StartedAt": s.started_at,
                "FinishedAt": s.finished_at,
                **health_checks.shown_state(s.health),
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
            "ExecIDs": self.exec_ids(c.id),
            "HostConfig": {**_shown_host_config(c.host_config), "Links": self.links.shown(c)},
            "GraphDriver": graph,
            "Mounts": volume_mounts.shown_mounts(c.mount_points),
            "Config": c.config,
            "NetworkSettings": self.net.settings(c),
        }

    def _status_text(self, c: Container) -> str:
        """Docker's State.String(), which `docker ps` shows as STATUS."""
        s = c.state
        now = time.time()
        if s.status == "running":
            return (
                "Up "
                + human_duration(now - _rfc3339_to_unix(s.started_at))
                + health_checks.status_suffix(s.health)
            )
        if s.status == "paused":
            return "Up " + human_duration(now - _rfc3339_to_unix(s.started_at)) + " (Paused)"
        if s.status == "restarting":
            ago = human_duration(now - _rfc3339_to_unix(s.finished_at))
            return f"Restarting ({s.exit_code}) {ago} ago"
        if s.status == "removing":
            return "Removal In Progress"
        if s.status == "dead":
            return "Dead"
        if s.started_at == ZERO_TIME:
            return "Created"
        if s.finished_at == ZERO_TIME:
            return ""
        ago = human_duration(now - _rfc3339_to_unix(s.finished_at))
        return f"Exited ({s.exit_code}) {ago} ago"

    def _list_filters(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        """Validate `ps` filters as dockerd does, resolving what refers to other objects."""
        for key in filters:
            if key not in LIST_FILTERS:
                raise ContainerError(f"invalid filter '{key}'", 400)
        try:
            health_checks.check_filter(filters.get("health", []))
        except HealthConfigError as e:
            raise ContainerError(str(e), 400) from None
        for value in filters.get("status", []):
            if value not in STATUSES:
                raise ContainerError(f"Invalid filter 'status={value}'", 400)
        try:
            check_port_filters(filters)
        except ContainerNetworkError as e:
            raise ContainerError(str(e), e.status) from None
        resolved: dict[str, Any] = {}
        try:
            resolved["exited"] = {int(v) for v in filters.get("exited", [])}
        except ValueError as e:
            raise ContainerError(str(e), 400) from None
        for key in ("before", "since"):
            for value in filters.get(key, []):
                resolved[key] = self.get(value)
        if filters.get("ancestor"):
            ancestors: set[str] = set()
            for value in filters["ancestor"]:
                with contextlib.suppress(ImageError):
                    ancestors.add(self.images.get(value).id)
            resolved["ancestor"] = ancestors
        return resolved

    def _descends_from(self, image_id: str, ancestors: set[str]) -> bool:
        seen: set[str] = set()
        while image_id and image_id not in seen:
            if image_id in ancestors:
                return True
            seen.add(image_id)
            try:
                image_id = self.images.get(image_id).extra.get("parent", "")
            except (ImageError, AttributeError):
                return False
        return False

    def _matches(self, c: Container, filters: dict[str, list[str]], resolved: dict[str, Any]) -> bool:
        """dockerd's includeContainerInList: id, name and status are regular expressions (unanchored),
        labels must all match, ancestor is the image or any image built on it."""

        def search(patterns: list[str], text: str) -> bool:
            for pattern in patterns:
                if pattern == text:
                    return True
                with contextlib.suppress(re.error):
                    if re.search(pattern, text):
                        return True
            return False

        if filters.get("id") and not search(filters["id"], c.id):
            return False
        if filters.get("name") and not search(filters["name"], "/" + c.name):
            return False
        labels = c.config.get("Labels") or {}
        for wanted in filters.get("label", []):
            k, sep, v = wanted.partition("=")
            if k not in labels or (sep and labels[k] != v):
                return False
        if resolved.get("exited"):
            if c.running or c.state.started_at == ZERO_TIME or c.state.exit_code not in resolved["exited"]:
                return False
        if filters.get("status") and not search(filters["status"], c.state.status):
            return False
        if "ancestor" in resolved and not self._descends_from(c.image_id, resolved["ancestor"]):
            return False
        if filters.get("health") and health_checks.filter_value(c.state.health) not in filters["health"]:
            return False
        wanted_volumes = filters.get("volume") or []
        if wanted_volumes and not any(volume_mounts.uses(c.mount_points, v) for v in wanted_volumes):
            return False
        if not self.net.matches(c, filters):
            return False
        if filters.get("is-task") and filters["is-task"][-1].lower() in ("true", "1"):
            return False
        return True

    def list(
        self,
        all: bool = False,
        filters: dict[str, list[str]] | None = None,
        size: bool = False,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        filters = filters or {}
        resolved = self._list_filters(filters)
        if filters.get("status"):
            all = True
        out = []
        containers = sorted(self.store.all(), key=lambda c: c.created, reverse=True)
        before, since = resolved.get("before"), resolved.get("since")
        for c in containers:
            if before is not None:  # newest first: skip everything down to `before` itself
                if c.id == before.id:
                    before = None
                continue
            if since is not None and c.id == since.id:
                break
            if not c.running and not all and limit <= 0:
                continue
            if not self._matches(c, filters, resolved):
                continue
            if limit > 0 and len(out) >= limit:
                break
            command = " ".join([c.path, *c.args]).strip()
            ports, network_settings = self.net.list_fields(c)
            entry: dict[str, Any] = {
                "Id": c.id,
                "Names": self.links.names(c),
                "Image": c.image,
                "ImageID": c.image_id,
                "Command": command,
                "Created": int(_rfc3339_to_unix(c.created)),
                "Ports": ports,
                "Labels": c.config.get("Labels") or {},
                "State": c.state.status,
                "Status": self._status_text(c),
                "HostConfig": {"NetworkMode": c.host_config.get("NetworkMode") or "default"},
                "NetworkSettings": network_settings,
                "Mounts": volume_mounts.shown_mounts(c.mount_points),
            }
            if size:
                entry["SizeRw"], entry["SizeRootFs"] = self.size(c)
            out.append(entry)
        return out

    def counts(self) -> tuple[int, int, int, int]:
        all_ = self.store.all()
        running = sum(1 for c in all_ if c.state.status == "running")
        paused = sum(1 for c in all_ if c.state.status == "paused")
        return len(all_), running, paused, len(all_) - running - paused

    # --- top, stats, size --------------------------------------------------------------------------

    def _cgroup(self, c: Container) -> Cgroup | None:
        """The running container's cgroup, as its shim recorded it in state.json."""
        from ..linux.cgroups import Cgroup

        state = read_json(str(self._state_dir(c) / "state.json"))
        if not state or not state.get("cgroup"):
            return None
        try:
            return Cgroup.from_dict(state["cgroup"])
        except (KeyError, TypeError, ValueError):
            return None

    def _pids(self, c: Container) -> set[int]:
        cgroup = self._cgroup(c)
        pids = cgroup.pids() if cgroup is not None else set()
        if not pids and c.state.pid:
            pids = {c.state.pid}
        return pids

    async def top(self, ref: str, ps_args: str = "") -> dict[str, Any]:
        from .top import TopError, top

        c = self.get(ref)
        if not c.running:
            raise ContainerError(f"Container {c.id} is not running", 409)
        if c.state.status == "restarting":
            raise ContainerError(f"Container {c.id} is restarting, wait until the container is running", 409)
        try:
            return await asyncio.to_thread(lambda: top(self._pids(c), ps_args))
        except TopError as e:
            status = 400 if str(e).startswith("specifying") else 500
            raise ContainerError(str(e), status) from None

    def _stats_sample(self, c: Container) -> dict[str, Any]:
        from . import stats as cstats

        if not c.running:
            return cstats.empty_stats("/" + c.name, c.id)
        cgroup = self._cgroup(c)
        sample = cstats.empty_stats("/" + c.name, c.id)
        sample["read"] = now_rfc3339()
        if cgroup is not None:
            sample.update(cstats.cgroup_stats(cgroup, cstats.machine_memory()))
        sample["cpu_stats"]["system_cpu_usage"] = cstats.system_cpu_usage()
        sample["cpu_stats"]["online_cpus"] = cstats.online_cpus()
        if self.net.sandbox(c) is not None and c.state.pid:
            sample["networks"] = cstats.interface_stats(c.state.pid)
        return sample

    async def stats(
        self, ref: str, stream: bool = True, one_shot: bool = False
    ) -> AsyncIterator[dict[str, Any]]:
        """dockerd's stats: one sample a second, each carrying the previous one's CPU figures as
        `precpu_stats`; without `stream` the first sample only primes them (so one answer takes about a
        second) unless `one_shot`; a container that does not run gives zeroed stats."""
        from . import stats as cstats

        c = self.get(ref)
        if not c.running and not stream:
            yield cstats.empty_stats("/" + c.name, c.id)
            return
        previous_cpu, previous_read = cstats.empty_cpu(), cstats.ZERO_TIME
        primed = stream or one_shot
        while c.id in self.store:
            sample = await asyncio.to_thread(self._stats_sample, c)
            sample["name"] = "/" + c.name  # a rename shows at the next sample
            sample["precpu_stats"], sample["preread"] = previous_cpu, previous_read
            previous_cpu, previous_read = sample["cpu_stats"], sample["read"]
            if primed:
                yield sample
                if not stream:
                    return
            primed = True
            await asyncio.sleep(1.0)

    def size(self, c: Container) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): the container's own writes (its overlay upper dir), and those plus its
        image's layers. Hard links are counted once, directories not at all, as dockerd's directory.Size."""
        from ..linux.disk import directory_size

        upper = self.rootfs.dir(c.id) / "upper"
        total = directory_size(upper) - _init_link_size(upper)
        image_size = 0
        with contextlib.suppress(ImageError, OSError, AttributeError):
            image_size = int(self.images.get(c.image_id).size)
        return total, total + image_size

    # --- rename, pause, prune ----------------------------------------------------------------------

    def rename(self, ref: str, new_name: str) -> None:
        if not ref or not new_name:
            raise ContainerError("Neither old nor new names may be empty", 400)
        c = self.get(ref)
        shown = new_name if new_name.startswith("/") else "/" + new_name
        if shown == "/" + c.name:
            raise ContainerError("Renaming a container with the same name as its current name", 400)
        try:
            bare = validate_name(shown)
        except InvalidName as e:
            raise ContainerError(f"Error when allocating new name: {e}", 400) from None
        old = c.name
        try:
            self.store.rename(c, bare)
        except NameConflict as e:
            raise ContainerError(f"Error when allocating new name: {e}", 409) from None
        self.events.emit("container", "rename", c.id, image=c.image, name=c.name, oldName="/" + old)

    def _freeze(self, c: Container, frozen: bool, timeout: float = 10.0) -> None:
        """The cgroup freezer: v1 `freezer.state` (FROZEN passes through FREEZING), v2 `cgroup.freeze`
        (done once `cgroup.events` says so)."""
        cgroup = self._cgroup(c)
        if cgroup is None:
            raise OSError("the container's cgroup is not known")
        deadline = time.monotonic() + timeout
        if cgroup.version == "2":
            cgroup.write("freezer", "cgroup.freeze", "1" if frozen else "0")
            want = f"frozen {1 if frozen else 0}"
            while want not in cgroup.read("freezer", "cgroup.events").splitlines():
                if time.monotonic() > deadline:
                    raise OSError("timed out waiting for the cgroup to " + ("freeze" if frozen else "thaw"))
                time.sleep(0.005)
            return
        want = "FROZEN" if frozen else "THAWED"
        while True:
            cgroup.write("freezer", "freezer.state", want)  # written again: new tasks may have joined
            if cgroup.read("freezer", "freezer.state").strip() == want:
                return
            if time.monotonic() > deadline:
                raise OSError(f"timed out waiting for freezer.state {want}")
            time.sleep(0.005)

    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            if not c.running:
                raise ContainerError(f"Container {c.id} is not running", 409)
            if c.state.status == "paused":
                raise ContainerError(f"Container {c.id} is already paused", 409)
            if c.state.status == "restarting":
                raise ContainerError(
                    f"Container {c.id} is restarting, wait until the container is running", 409
                )
            try:
                await asyncio.to_thread(self._freeze, c, True)
            except OSError as e:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(self._freeze, c, False)
                raise ContainerError(f"Cannot pause container {c.id}: {e}", 500) from None
            if c.state.status == "running":  # not exited meanwhile
                c.state.status = "paused"
                self.store.save(c)
                await self.health.update(c)  # no probes while paused
        self.events.emit("container", "pause", c.id, image=c.image, name=c.name)

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        async with self._lock(c.id):
            if c.state.status != "paused":
                raise ContainerError(f"Container {c.id} is not paused", 409)
            await self._thaw(c)

    async def _thaw(self, c: Container) -> None:
        try:
            await asyncio.to_thread(self._freeze, c, False)
        except OSError as e:
            raise ContainerError(f"Cannot unpause container {c.id}: {e}", 500) from None
        if c.state.status == "paused":
            c.state.status = "running"
            self.store.save(c)
            await self.health.update(c)
        self.events.emit("container", "unpause", c.id, image=c.image, name=c.name)

    async def _thaw_after_signal(self, c: Container, sig: int) -> None:
        """dockerd resumes a paused container after sending it SIGKILL or its stop signal (or any
        signal when it has no StopSignal), so that the signal is acted upon."""
        if c.state.status != "paused":
            return
        stop_signal = c.config.get("StopSignal")
        if sig != signals.SIGKILL and stop_signal and parse_signal(stop_signal, signals.SIGTERM) != sig:
            return
        try:
            await self._thaw(c)
        except ContainerError as e:
            log.warning("container %s: %s", c.id, e)

    async def prune(self, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        from ..images.service import _label_matches
        from ..units import parse_time

        filters = filters or {}
        for key in filters:
            if key not in ("until", "label", "label!"):
                raise ContainerError(f"invalid filter '{key}'", 400)
        cutoff = None
        if filters.get("until"):
            try:
                cutoff = parse_time(filters["until"][-1], time.time())
            except ValueError as e:
                raise ContainerError(str(e), 400) from None
        deleted: list[str] = []
        reclaimed = 0
        for c in sorted(self.store.all(), key=lambda c: c.created):
            if c.running or c.state.status == "removing":
                continue
            if cutoff is not None and _rfc3339_to_unix(c.created) > cutoff:
                continue
            labels = c.config.get("Labels") or {}
            if not all(_label_matches(labels, w) for w in filters.get("label", [])):
                continue
            negated = filters.get("label!", [])
            if negated and all(_label_matches(labels, w) for w in negated):
                continue
            size_rw = (await asyncio.to_thread(self.size, c))[0]
            try:
                await self.remove(c.id)
            except ContainerError as e:
                log.warning("prune: container %s: %s", c.id, e)
                continue
            deleted.append(c.id)
            reclaimed += size_rw
        self.events.emit("container", "prune", "", reclaimed=str(reclaimed))
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # --- networks ----------------------------------------------------------------------------------

    def networks_in_use(self) -> set[str]:
        """IDs of the networks some container (running or not) is on: prune keeps them."""
        return {net_id for c in self.store.all() for net_id in (c.extra.get("networks") or {})}

    def _network_events(self, c: Container, action: str) -> None:
        """dockerd's `network connect`/`disconnect` events as a container's endpoints come and go."""
        for net in self.net.joined(c):
            self.events.emit("network", action, net.id, container=c.id, name=net.name, type=net.driver)

    async def connect_network(self, ref: str, network_ref: str, settings: dict[str, Any]) -> None:
        """`docker network connect`: the container is on the network from now on, and at once if running."""
        c = self.get(ref)
        net = self.net.lookup(network_ref)
        async with self._lock(c.id):
            await asyncio.to_thread(self.net.connect, c, net, settings, self._dir(c) / "resolv.conf")
            self.store.save(c)
            running = c.running
        if running:  # dockerd tells of an endpoint made, not of a stopped container's setting
            self.events.emit("network", "connect", net.id, container=c.id, name=net.name, type=net.driver)

    async def disconnect_network(self, ref: str, network_ref: str, force: bool = False) -> None:
        c = self.get(ref)
        net = self.net.lookup(network_ref)
        async with self._lock(c.id):
            await asyncio.to_thread(self.net.disconnect, c, net, force)
            self.store.save(c)
        self.events.emit("network", "disconnect", net.id, container=c.id, name=net.name, type=net.driver)

    # --- exec --------------------------------------------------------------------------------------

    def _exec_record(self, exec_id: str) -> ExecRecord:
        record = self._execs.get(exec_id)
        if record is None:
            raise ContainerError(f"No such exec instance: {exec_id}", 404)
        return record

    def _running_for_exec(self, container_id: str) -> Container:
        c = self.get(container_id)
        if c.state.status == "paused":
            raise ContainerError(f"Container {c.id} is paused, unpause the container before exec", 409)
        if not c.running:
            raise ContainerError(f"Container {c.id} is not running", 409)
        return c

    def exec_ids(self, container_id: str) -> list[str] | None:
        """The container's ExecIDs (created or running execs); None when there are none, as dockerd."""
        return [r.id for r in self._execs.values() if r.container_id == container_id and r.live] or None

    def exec_create(self, ref: str, body: dict[str, Any]) -> str:
        c = self._running_for_exec(ref)
        try:
            record = new_exec(c.id, body)
        except ExecConfigError as e:
            raise ContainerError(str(e), e.status) from None
        try:  # dockerd gives an exec the links' variables too (the container's own env wins over them)
            own = {e.partition("=")[0] for e in c.config.get("Env") or []}
            record.env = [e for e in self.links.env(c) if e.partition("=")[0] not in own] + record.env
        except LinkError as e:
            raise ContainerError(str(e), e.status) from None
        now = time.monotonic()
        for old in [r for r in self._execs.values() if r.expired(now) or r.container_id not in self.store]:
            self._execs.pop(old.id, None)
            self._exec_flags.pop(old.id, None)
        self._execs[record.id] = record
        self._exec_flags[record.id] = (asyncio.Event(), asyncio.Event())
        self.events.emit(
            "container", f"exec_create: {record.command}", c.id, execID=record.id, image=c.image, name=c.name
        )
        return record.id

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return self._exec_record(exec_id).inspect()

    def exec_check_start(self, exec_id: str) -> ExecRecord:
        """The exec, if it can be started now (before the API hijacks the connection for it)."""
        record = self._exec_record(exec_id)
        if record.running:
            raise ContainerError(f"Error: Exec command {exec_id} is already running", 409)
        if record.started:
            raise ContainerError(f"Error: Exec command {exec_id} has already run", 409)
        self._running_for_exec(record.container_id)
        return record

    def _exec_process(self, record: ExecRecord, c: Container) -> tuple[dict[str, Any], Any]:
        """(the exec's OCI process, the container's linux.seccomp, which filters it too)."""
        spec = json.loads((self._dir(c) / "bundle" / "config.json").read_text())
        rootfs = self.rootfs.path(c.id)

        def read_file(path: str) -> str | None:  # resolved inside the running container's root
            return read_in_root(str(rootfs), path)

        seccomp = (spec.get("linux") or {}).get("seccomp")
        process = exec_process(
            record,
            spec,
            c.config,
            c.host_config,
            read_file,
            capabilities_available=self.capabilities_available,
        )
        return process, seccomp

    async def exec_start(
        self, exec_id: str, *, detach: bool, mux: bool | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Start the exec's process through the container's shim. Attached: the shim connection that carries
        its stream (see shim_protocol; framed when `mux`, by default without a TTY), closed by the shim once
        the process has exited and its output is sent. Raises ExecStartFailed when the process could not be
        started (its record then says 126)."""
        record = self.exec_check_start(exec_id)
        c = self._running_for_exec(record.container_id)
        record.started = record.running = True
        self.events.emit(
            "container", f"exec_start: {record.command}", c.id, execID=record.id, image=c.image, name=c.name
        )
        started, _ = self._exec_flags[record.id]
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            try:
                process, seccomp = await asyncio.to_thread(self._exec_process, record, c)
            except (ExecConfigError, OSError, ValueError) as e:
                raise ExecStartFailed(str(e)) from None
            request = {
                "op": "exec",
                "id": record.id,
                "process": process,
                "seccomp": seccomp,
                "tty": record.tty,
                "stdin": record.open_stdin,
                "stdout": record.open_stdout,
                "stderr": record.open_stderr,
                "detach": detach,
                "mux": not record.tty if mux is None else mux,
            }
            try:
                sock = await asyncio.to_thread(shim_connect, str(self._state_dir(c)), 10.0)
                sock.setblocking(False)
                reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
                writer.write(json.dumps(request).encode() + b"\n")
                reply = json.loads(await reader.readline() or b"{}")
            except (OSError, ValueError) as e:
                raise ExecStartFailed(f"container {c.id} is not running: {e}") from None
            if not reply.get("ok"):
                error = str(reply.get("error") or "the shim refused the exec")
                raise ExecStartFailed(start_error_message(error))
        except ExecStartFailed:
            if writer is not None:
                writer.close()
            record.end(126)  # dockerd's code for an exec that never ran, whatever the cause
            started.set()
            self._exec_flags[record.id][1].set()
            raise
        record.pid = int(reply.get("pid") or 0)
        started.set()
        task = asyncio.get_running_loop().create_task(self._watch_exec(record, c))
        self._exec_tasks.add(task)
        task.add_done_callback(self._exec_tasks.discard)
        if detach:
            writer.close()
            return None
        return reader, writer

    async def _watch_exec(self, record: ExecRecord, c: Container) -> None:
        """Until the exec has ended: then its exit code recorded, exec_die, and its waiters released."""
        code: int | None = None
        try:
            sock = await asyncio.to_thread(shim_connect, str(self._state_dir(c)), 10.0)
            sock.setblocking(False)
            reader, writer = await asyncio.open_unix_connection(sock=sock)
            try:
                writer.write(json.dumps({"op": "exec_wait", "id": record.id}).encode() + b"\n")
                reply = json.loads(await reader.readline() or b"{}")
                if reply.get("ok") and reply.get("ExitCode") is not None:
                    code = int(reply["ExitCode"])
            finally:
                writer.close()
        except (OSError, ValueError) as e:
            log.debug("exec %s: waiting for its end: %s", record.id, e)
        if code is None:  # the shim went away with the container, and the exec with it
            code = 137
        record.end(code)
        self.events.emit(
            "container", "exec_die", c.id, execID=record.id, exitCode=str(code), image=c.image, name=c.name
        )
        flags = self._exec_flags.get(record.id)
        if flags is not None:
            flags[1].set()

    async def exec_ended(self, exec_id: str, timeout: float) -> None:
        """Until the exec's end is recorded (the API closes its stream only then: the CLI's one exec inspect
        right after must see the exit code)."""
        flags = self._exec_flags.get(exec_id)
        if flags is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flags[1].wait(), timeout)

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        record = self._exec_record(exec_id)
        c = self._running_for_exec(record.container_id)
        started, _ = self._exec_flags[record.id]
        try:  # the CLI resizes right after the 101, possibly before the process runs (dockerd waits 10 s)
            await asyncio.wait_for(started.wait(), 10.0)
        except TimeoutError:
            raise ContainerError("timeout waiting for exec session ready", 500) from None
        if not record.running:
            raise ContainerError("cannot resize a stopped container: unknown", 500)
        client = ShimClient(str(self._state_dir(c)))
        try:
            await asyncio.to_thread(client.exec_resize, record.id, height, width)
        except (OSError, ShimError) as e:
            raise ContainerError(f"{e}: unknown", 500) from None

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
        """At daemon start (in the event loop): watch the containers that still run, start those whose
        restart policy wants them running (as dockerd's restore, before the API serves), and remove the
        `--rm` ones that exited while the daemon was away."""
        to_start, to_remove = [], []
        for c in self.store.all():
            if c.running:
                self._monitor(c)
                await self.health.update(c)  # probes go on (dockerd 23's restore)
                continue
            started_before = c.state.status == "exited" and c.state.started_at != ZERO_TIME
            policy = RestartPolicy.from_host_config(c.host_config)
            if start_at_daemon_start(
                policy, c.state.exit_code, c.manually_stopped, c.restart_count, started_before
            ):
                to_start.append(c)
            elif started_before and c.host_config.get("AutoRemove"):
                to_remove.append(c)
        results = await asyncio.gather(
            *(self.start(c.id) for c in to_start),
            *(self.remove(c.id) for c in to_remove),
            return_exceptions=True,
        )
        for c, result in zip([*to_start, *to_remove], results, strict=True):
            if isinstance(result, BaseException):
                log.error("container %s: at daemon start: %s", c.id, result)

    async def close(self, stop_containers: bool = False) -> None:
        """At daemon shut-down. With `stop_containers` (live-restore off) every running container is
        stopped first, in parallel, as dockerd does: its StopSignal, then SIGKILL after its StopTimeout.
        That is no manual stop (`unless-stopped` ones start again with the daemon), nor cause to restart."""
        if stop_containers:
            running = [c for c in self.store.all() if c.running]
            results = await asyncio.gather(*(self._shutdown_stop(c) for c in running), return_exceptions=True)
            for c, result in zip(running, results, strict=True):
                if isinstance(result, BaseException):
                    log.error("container %s: stop at shut-down: %s", c.id, result)
        await self.health.close()
        for task in self._monitors.values():
            task.cancel()
        self._monitors.clear()
        await asyncio.to_thread(self.launcher.close)


def _shown_host_config(host_config: dict[str, Any]) -> dict[str, Any]:
    """As dockerd shows it: every resource field, the log driver filled in (docker-py's run reads it)."""
    log_config = host_config.get("LogConfig") or {}
    shown = {**SHOWN_DEFAULTS, **host_config}
    if log_config.get("Type"):
        return shown
    return {**shown, "LogConfig": {"Type": "json-file", "Config": log_config.get("Config") or {}}}


def _resolve(fut: asyncio.Future[int], value: int) -> None:
    if not fut.done():
        fut.set_result(value)


def _init_link_size(upper: Path) -> int:
    """The size of the init layer's /etc/mtab link in the container's upper dir (containers/initlayer):
    dockerd's init layer lies beneath the container's and is not counted in its SizeRw. Looked up without
    following links: the container may have made its /etc one."""
    flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        etc = os.open(upper / "etc", flags)
    except OSError:
        return 0
    try:
        st = os.lstat("mtab", dir_fd=etc)
        if stat.S_ISLNK(st.st_mode) and os.readlink("mtab", dir_fd=etc) == MTAB_TARGET:
            return st.st_size
    except OSError:
        pass
    finally:
        os.close(etc)
    return 0
