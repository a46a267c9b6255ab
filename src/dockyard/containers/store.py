"""Container records: one directory per container, `<root>/<id>/config.v2.json` (Docker's file name; the
keys are ours), written atomically so a crash leaves the old record or the new one, never half of one.

The directory also holds what the engine keeps per container (logs, hostname, hosts, resolv.conf) and
goes with it on remove. Names are kept without their leading '/'.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..images.service import ContainerUse
from ..images.store import write_json_atomic
from .ids import resolve
from .names import NameConflict

log = logging.getLogger(__name__)

CONFIG_FILE = "config.v2.json"
STATUSES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
# Docker's IsRunning(): what `rmi` refuses to untag from under and `stop -a` stops.
RUNNING_STATUSES = ("running", "paused", "restarting")
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time, which Docker shows for "never"


def now_rfc3339() -> str:
    """Now in UTC as Go's RFC3339Nano (what Docker writes): trailing zeros of the fraction trimmed."""
    ns = time.time_ns()
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


@dataclass
class ContainerState:
    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    oom_killed: bool = False
    error: str = ""
    health: dict[str, Any] | None = None  # State.Health (containers/health.py), None: never probed

    @property
    def running(self) -> bool:
        return self.status in RUNNING_STATUSES


@dataclass
class Container:
    id: str
    name: str  # without the leading '/'
    image: str  # as the user gave it
    image_id: str
    config: dict[str, Any] = field(default_factory=dict)  # the create body's Config part
    host_config: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=now_rfc3339)
    state: ContainerState = field(default_factory=ContainerState)
    path: str = ""  # the process's executable and arguments, as inspect shows them
    args: list[str] = field(default_factory=list)
    driver: str = ""  # the storage driver its rootfs lives on
    log_path: str = ""
    restart_count: int = 0
    # Docker's HasBeenManuallyStopped: `unless-stopped` containers stay down at daemon start.
    manually_stopped: bool = False
    network_settings: dict[str, Any] = field(default_factory=dict)
    mount_points: dict[str, Any] = field(default_factory=dict)
    # Anything the lifecycle needs to persist before it earns a field (the shim's socket, say).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state.running

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Container:
        # Unknown keys (from a newer dockyard) are dropped rather than refused; missing ones take defaults.
        state_data = data.get("state") or {}
        state_keys = {f.name for f in dataclasses.fields(ContainerState)}
        state = ContainerState(**{k: v for k, v in state_data.items() if k in state_keys})
        keys = {f.name for f in dataclasses.fields(cls)} - {"state"}
        return cls(**{k: v for k, v in data.items() if k in keys}, state=state)


class ContainerStore:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self._containers: dict[str, Container] = {}
        self._names: dict[str, str] = {}  # name -> ID, including names reserved by a create in progress
        # The API's handlers may run in threads: a name must never be handed out twice.
        self._lock = threading.RLock()

    def dir(self, container_id: str) -> Path:
        return self.root / container_id

    def load(self) -> int:
        """Read every record (at daemon start). A record that cannot be read is skipped with a warning:
        one bad file must not keep the daemon, and every other container, down. Returns the count loaded."""
        loaded = 0
        for entry in sorted(self.root.iterdir()):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            for tmp in entry.glob(f".{CONFIG_FILE}.*"):
                tmp.unlink(missing_ok=True)  # write_json_atomic's leftover from a crash
            try:
                container = Container.from_json(json.loads((entry / CONFIG_FILE).read_text()))
            except (OSError, ValueError, TypeError, AttributeError) as e:
                log.warning("skipping container %s: cannot read its %s: %s", entry.name, CONFIG_FILE, e)
                continue
            if container.id != entry.name:
                log.warning("skipping container %s: its record names %s", entry.name, container.id)
                continue
            with self._lock:
                owner = self._names.get(container.name)
                if owner is not None:
                    log.warning(
                        "container %s: name %s already used by %s", container.id, container.name, owner
                    )
                else:
                    self._names[container.name] = container.id
                self._containers[container.id] = container
            loaded += 1
        return loaded

    # --- names ----------------------------------------------------------------------------------------

    def reserve_name(self, name: str, container_id: str) -> None:
        """Claim a name before the container exists, so two creates cannot both take it."""
        name = name.lstrip("/")
        with self._lock:
            owner = self._names.get(name)
            if owner is not None and owner != container_id:
                raise NameConflict(name, owner)
            self._names[name] = container_id

    def release_name(self, name: str) -> None:
        with self._lock:
            self._names.pop(name.lstrip("/"), None)

    def name_taken(self, name: str) -> bool:
        return name.lstrip("/") in self._names

    def rename(self, container: Container, new_name: str) -> None:
        new_name = new_name.lstrip("/")
        with self._lock:
            self.reserve_name(new_name, container.id)
            old, container.name = container.name, new_name
            try:
                self.save(container)
            except BaseException:
                container.name = old
                self.release_name(new_name)
                raise
            if self._names.get(old) == container.id:
                del self._names[old]

    # --- records --------------------------------------------------------------------------------------

    def add(self, container: Container) -> None:
        """Persist a new container; its name is reserved for it (or raises NameConflict)."""
        with self._lock:
            self.reserve_name(container.name, container.id)
            try:
                self.dir(container.id).mkdir(mode=0o700, exist_ok=True)
                self.save(container)
            except BaseException:
                self.release_name(container.name)
                raise
            self._containers[container.id] = container

    def save(self, container: Container) -> None:
        write_json_atomic(self.dir(container.id) / CONFIG_FILE, container.to_json())

    def remove(self, container_id: str) -> None:
        """Forget the container and delete its directory (rmtree does not follow symlinks)."""
        with self._lock:
            container = self._containers.pop(container_id, None)
            if container is not None and self._names.get(container.name) == container_id:
                del self._names[container.name]
        shutil.rmtree(self.dir(container_id), ignore_errors=True)

    def get(self, ref: str) -> Container:
        """By full ID, name (with or without '/'), or unique ID prefix; raises ids.NoSuchContainer,
        ids.AmbiguousPrefix or ids.InvalidIdentifier."""
        with self._lock:
            return self._containers[resolve(ref, {c.id: c.name for c in self._containers.values()})]

    def all(self) -> list[Container]:
        with self._lock:
            return list(self._containers.values())

    def __contains__(self, container_id: str) -> bool:
        return container_id in self._containers

    def users_of_image(self, image_id: str) -> list[ContainerUse]:
        """ImageService's `container_users` hook: the containers made from this image."""
        return [ContainerUse(c.id, c.running) for c in self.all() if c.image_id == image_id]
