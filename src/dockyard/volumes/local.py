"""The `local` volume driver: a directory per volume, `<root>/<name>/_data` (dockerd's layout), with its
record beside it in `<root>/<name>/volume.json`.

With the options `type`, `device` and `o` (`volume create -o type=tmpfs -o device=tmpfs -o o=size=10m`)
the directory is a mount point: the filesystem is mounted there when the first container using the volume
starts and unmounted when the last one stops, as dockerd's local driver does.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from ..images.store import write_json_atomic
from .model import LOCAL_DRIVER, Volume, VolumeError

log = logging.getLogger(__name__)

RECORD = "volume.json"
DATA = "_data"
VALID_OPTIONS = ("type", "device", "o", "size")


def _created_at() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_options(name: str, options: dict[str, str]) -> None:
    """dockerd's local driver: only its own keys; a device needs a type and a type a device."""
    for key in options:
        if key not in VALID_OPTIONS:
            raise VolumeError(f'create {name}: invalid option: "{key}"', 400)
    if "size" in options:
        raise VolumeError(f"create {name}: quota size requested but no quota support", 400)
    if options.get("device") and not options.get("type"):
        raise VolumeError(f'create {name}: missing required option: "type"', 400)
    if (options.get("type") or options.get("o")) and not options.get("device"):
        raise VolumeError(f'create {name}: missing required option: "device"', 400)


class LocalDriver:
    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o701)  # as dockerd: others may reach a volume's _data, not list the volumes
        self.root = root

    def path(self, name: str) -> Path:
        return self.root / name / DATA

    def load(self) -> list[Volume]:
        """Every volume on disk (at daemon start); a directory without a readable record is skipped."""
        found = []
        for entry in sorted(self.root.iterdir()):
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            try:
                volume = Volume.from_json(json.loads((entry / RECORD).read_text()))
            except (OSError, ValueError, TypeError) as e:
                log.warning("skipping volume %s: cannot read its %s: %s", entry.name, RECORD, e)
                continue
            volume.mountpoint = str(self.path(volume.name))  # the data root may have moved
            found.append(volume)
        return found

    def create(self, name: str, labels: dict[str, str], options: dict[str, str], anonymous: bool) -> Volume:
        check_options(name, options)
        data = self.path(name)
        data.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(data.parent, 0o701)
        volume = Volume(
            name=name,
            mountpoint=str(data),
            driver=LOCAL_DRIVER,
            created_at=_created_at(),
            labels=dict(labels),
            options=dict(options),
            anonymous=anonymous,
        )
        try:
            write_json_atomic(data.parent / RECORD, volume.to_json())
        except BaseException:
            shutil.rmtree(data.parent, ignore_errors=True)
            raise
        return volume

    def remove(self, volume: Volume) -> int:
        """Delete the volume's directory; the bytes it held (what prune reports as reclaimed)."""
        self.unmount(volume)
        size = disk_usage(Path(volume.mountpoint))
        directory = Path(volume.mountpoint).parent
        # the record goes first: a crash halfway leaves no record naming a half-deleted directory
        (directory / RECORD).unlink(missing_ok=True)
        shutil.rmtree(directory, ignore_errors=True)
        if directory.exists():
            raise VolumeError(f"remove {volume.name}: could not delete {directory}", 500)
        return size

    # --- mounts of volumes with options ---------------------------------------------------------------

    def mount(self, volume: Volume) -> None:
        """Mount the volume's filesystem on its _data, unless it has none (a plain directory) or it is
        mounted already (by another container, or before a daemon restart)."""
        if not volume.options.get("type") and not volume.options.get("device"):
            return
        from ..linux import mount as mounts
        from ..runtime.builtin import parse_mount_options

        if mounts.is_mountpoint(volume.mountpoint):
            return
        opts = [o for o in volume.options.get("o", "").split(",") if o]
        parsed = parse_mount_options(opts)
        fstype = volume.options.get("type") or None
        if fstype == "none":
            fstype = None
        device = volume.options.get("device", "")
        try:
            mounts.mount(device, volume.mountpoint, fstype, parsed.flags, parsed.data or None)
        except OSError as e:
            raise VolumeError(
                f"error while mounting volume '{volume.mountpoint}': failed to mount local volume: "
                f"mount {device}:{volume.mountpoint}, flags: {hex(parsed.flags)}, data: {parsed.data}: "
                f"{os.strerror(e.errno or 0).lower()}",
                500,
            ) from None

    def unmount(self, volume: Volume) -> None:
        if not volume.options.get("type") and not volume.options.get("device"):
            return
        from ..linux import mount as mounts

        with contextlib.suppress(OSError):
            if mounts.is_mountpoint(volume.mountpoint):
                mounts.umount(volume.mountpoint, mounts.MNT_DETACH)


def disk_usage(path: Path) -> int:
    """The bytes of the regular files under path (hard links counted once), as `du` would sum them."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(directory, name))
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total
