"""VolumeService: create, get, list, remove and prune volumes, and mount them for containers.

A volume is in use while any container (running or not) names it in its mounts; the service asks the
container side through the `users` hook rather than keeping its own reference counts, so the container
records stay the one truth, across daemon restarts too.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .local import LocalDriver
from .model import ANONYMOUS_LABEL, LOCAL_DRIVER, Volume, VolumeError, validate_name

if TYPE_CHECKING:
    from ..engine.events import EventBus

log = logging.getLogger(__name__)

LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!", "all")
_TRUE, _FALSE = ("true", "1"), ("false", "0")


def _label_matches(labels: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


class VolumeService:
    def __init__(self, root: Path | str, events: EventBus) -> None:
        self.driver = LocalDriver(Path(root))
        self.events = events
        # the containers using a volume, (id, running) each; the container service sets it
        self.users: Callable[[str], list[tuple[str, bool]]] = lambda name: []
        # the daemon's loop: removals also happen in worker threads, and the event bus lives in the loop
        self.loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.RLock()
        self._volumes: dict[str, Volume] = {v.name: v for v in self.driver.load()}

    def _emit(self, action: str, name: str, **attributes: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self.loop is not None and not self.loop.is_closed():
                emit = functools.partial(self.events.emit, "volume", action, name, **attributes)
                self.loop.call_soon_threadsafe(emit)
                return
        self.events.emit("volume", action, name, **attributes)

    # --- create, get ----------------------------------------------------------------------------------

    def create(
        self,
        name: str = "",
        driver: str = "",
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        anonymous: bool = False,
    ) -> tuple[Volume, bool]:
        """The volume, made unless it exists (dockerd answers a second create of a name with the first
        volume, whatever its labels and options); (volume, created)."""
        driver = driver or LOCAL_DRIVER
        if not name:
            name = secrets.token_hex(32)
        if driver != LOCAL_DRIVER:
            raise VolumeError(
                f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found', 404
            )
        validate_name(name)
        labels = dict(labels or {})
        if anonymous:
            labels.setdefault(ANONYMOUS_LABEL, "")
        with self._lock:
            existing = self._volumes.get(name)
            if existing is not None:
                return existing, False
            volume = self.driver.create(name, labels, dict(options or {}), anonymous)
            self._volumes[name] = volume
        self._emit("create", name, driver=volume.driver)
        return volume, True

    def get(self, name: str) -> Volume:
        with self._lock:
            volume = self._volumes.get(name)
        if volume is None:
            raise VolumeError(f"get {name}: no such volume", 404)
        return volume

    def inspect(self, name: str) -> dict:
        return self.get(name).to_api()

    # --- list -----------------------------------------------------------------------------------------

    def list(self, filters: dict[str, list[str]] | None = None) -> list[Volume]:
        filters = filters or {}
        for key in filters:
            if key not in LIST_FILTERS:
                raise VolumeError(f"Invalid filter '{key}'", 400)
        dangling = None
        if filters.get("dangling"):
            values = {v.lower() for v in filters["dangling"]}
            if not values <= set(_TRUE + _FALSE) or (values & set(_TRUE) and values & set(_FALSE)):
                raise VolumeError(f"Invalid filter 'dangling=[{' '.join(filters['dangling'])}]'", 400)
            dangling = bool(values & set(_TRUE))
        with self._lock:
            volumes = sorted(self._volumes.values(), key=lambda v: v.name)
        out = []
        for v in volumes:
            if filters.get("name") and not any(pattern in v.name for pattern in filters["name"]):
                continue
            if filters.get("driver") and v.driver not in filters["driver"]:
                continue
            if not all(_label_matches(v.labels, w) for w in filters.get("label", [])):
                continue
            if dangling is not None and (not self.users(v.name)) != dangling:
                continue
            out.append(v)
        return out

    # --- remove, prune --------------------------------------------------------------------------------

    def remove(self, name: str, force: bool = False) -> int:
        """Delete an unused volume (force: a missing one is no error; one in use still is). Its size."""
        with self._lock:
            volume = self._volumes.get(name)
            if volume is None:
                if force:
                    return 0
                raise VolumeError(f"get {name}: no such volume", 404)
            users = self.users(name)
            if users:
                ids = " ".join(user for user, _ in users)
                raise VolumeError(f"remove {name}: volume is in use - [{ids}]", 409)
            size = self.driver.remove(volume)
            del self._volumes[name]
        self._emit("destroy", name, driver=volume.driver)
        return size

    def prune(self, filters: dict[str, list[str]] | None = None) -> dict:
        """Unused volumes: anonymous ones only, unless the `all` filter is true (API 1.42's rule)."""
        filters = filters or {}
        for key in filters:
            if key not in PRUNE_FILTERS:
                raise VolumeError(f"Invalid filter '{key}'", 400)
        all_volumes = False
        for value in filters.get("all", []):
            if value.lower() not in _TRUE + _FALSE:
                raise VolumeError(f"invalid filter 'all={value}'", 400)
            all_volumes = value.lower() in _TRUE
        deleted: list[str] = []
        reclaimed = 0
        for v in self.list():
            if not all_volumes and not v.anonymous:
                continue
            if not all(_label_matches(v.labels, w) for w in filters.get("label", [])):
                continue
            negated = filters.get("label!", [])
            if negated and any(_label_matches(v.labels, w) for w in negated):
                continue
            try:
                reclaimed += self.remove(v.name)
            except VolumeError as e:  # in use (or taken since the listing): not prunable
                log.debug("prune: volume %s: %s", v.name, e)
                continue
            deleted.append(v.name)
        self._emit("prune", "", reclaimed=str(reclaimed))
        return {"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}

    # --- mounts for containers ------------------------------------------------------------------------

    def mount(self, name: str) -> str:
        """The host directory to bind for the volume, its filesystem mounted first where it has one."""
        volume = self.get(name)
        with self._lock:
            self.driver.mount(volume)
        return volume.mountpoint

    def unmount(self, name: str, container_id: str) -> None:
        """A container stopped using the volume: unmount its filesystem when no other running one does."""
        with self._lock:
            volume = self._volumes.get(name)
            if volume is None:
                return
            if any(running and cid != container_id for cid, running in self.users(name)):
                return
            self.driver.unmount(volume)
