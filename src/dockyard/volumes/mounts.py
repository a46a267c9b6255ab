"""A container's mounts as the engine keeps them: one record per destination in the container's record
(`mount_points`, as dockerd's MountPoints), made at create and used at each start, by inspect and ps,
and at removal (`rm -v` removes the anonymous volumes).

A record holds what inspect shows (Type, Name, Source, Destination, Driver, Mode, RW, Propagation) and
what the engine needs later: `CopyData` (fill the volume from the image on first mount), `Populated`
(done), `Anonymous` (the volume was made for this container's mount without a source), `Origin` (binds,
mounts, tmpfs, volumes, image: where the mount was asked for).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .model import LOCAL_DRIVER, VolumeError
from .populate import copy_image_content

if TYPE_CHECKING:
    from ..runtime.spec import MountPoint
    from .service import VolumeService

SHOWN = ("Type", "Name", "Source", "Destination", "Driver", "Mode", "RW", "Propagation")


def create_mounts(
    volumes: VolumeService, points: list[MountPoint], volume_driver: str = ""
) -> dict[str, dict[str, Any]]:
    """The records of a new container's mounts: named volumes created when missing, anonymous ones
    created under a random name, `--mount` bind sources checked. On an error, the volumes this call
    created are removed again and VolumeError is raised."""
    records: dict[str, dict[str, Any]] = {}
    created: list[str] = []
    try:
        for mp in points:
            if mp.type == "bind":
                if mp.origin == "mounts" and not os.path.exists(mp.source):
                    raise VolumeError(
                        f'invalid mount config for type "bind": bind source path does not exist: {mp.source}',
                        400,
                    )
                records[mp.destination] = _record(mp, Source=mp.source, Mode=mp.mode)
            elif mp.type == "tmpfs":
                if mp.origin == "mounts":  # dockerd shows --mount tmpfs, not HostConfig.Tmpfs
                    records[mp.destination] = _record(mp)
            else:
                anonymous = not mp.source
                volume, new = volumes.create(mp.source, mp.driver or volume_driver, anonymous=anonymous)
                if new:
                    created.append(volume.name)
                # dockerd's setBindModeIfNull: a local volume asked for by Binds or Mounts shows "z"
                mode = mp.mode
                if not mode and mp.origin in ("binds", "mounts") and volume.driver == LOCAL_DRIVER:
                    mode = "z"
                records[mp.destination] = _record(
                    mp,
                    Name=volume.name,
                    Source=volume.mountpoint,
                    Driver=volume.driver,
                    Mode=mode,
                    Propagation="",
                    CopyData=mp.copy_data,
                    Anonymous=anonymous,
                )
    except BaseException:
        for name in created:
            try:
                volumes.remove(name)
            except VolumeError:
                pass
        raise
    return records


def _record(mp: MountPoint, **values: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Type": mp.type,
        "Source": "",
        "Destination": mp.destination,
        "Mode": "",
        "RW": mp.rw,
        "Propagation": mp.propagation if mp.type == "bind" else "",
        "Origin": mp.origin,
    }
    record.update(values)
    return record


def prepare_mounts(volumes: VolumeService, records: dict[str, dict[str, Any]], rootfs: str) -> dict[str, str]:
    """At each start: the host directory of each volume (keyed by destination, the spec's
    `volume_paths`), its filesystem mounted where it has one, filled on its first mount from what the
    image has at the destination (in the container's mounted `rootfs`, resolved inside it); a missing
    `-v` bind source is created as dockerd creates it. Records it fills are marked `Populated`."""
    paths: dict[str, str] = {}
    for dest, record in sorted(records.items()):
        if record["Type"] == "bind":
            source = record["Source"]
            if not os.path.exists(source):
                if record.get("Origin") == "mounts":
                    raise VolumeError(
                        f'invalid mount config for type "bind": bind source path does not exist: {source}',
                        400,
                    )
                os.makedirs(source, mode=0o755, exist_ok=True)
            continue
        if record["Type"] != "volume":
            continue
        path = volumes.mount(record["Name"])
        if record.get("CopyData") and not record.get("Populated"):
            copy_image_content(rootfs, dest, path)
            record["Populated"] = True
        paths[dest] = path
    return paths


def volume_names(records: dict[str, dict[str, Any]]) -> list[str]:
    return [r["Name"] for _, r in sorted(records.items()) if r["Type"] == "volume"]


def anonymous_volumes(records: dict[str, dict[str, Any]]) -> list[str]:
    """What `rm -v` removes: volumes made for mounts without a source, never named ones."""
    return [r["Name"] for _, r in sorted(records.items()) if r["Type"] == "volume" and r.get("Anonymous")]


def shown_mounts(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """inspect's and ps's `Mounts`: Name and Driver for volumes only, as dockerd shows them."""
    out = []
    for _, record in sorted(records.items()):
        keys = SHOWN if record["Type"] == "volume" else tuple(k for k in SHOWN if k not in ("Name", "Driver"))
        out.append({k: record.get(k, "") for k in keys})
    return out


def uses(records: dict[str, dict[str, Any]], value: str) -> bool:
    """ps's `volume` filter: a volume's name (a bind's source) or a mount's destination."""
    for dest, record in records.items():
        if value == dest or value == (record.get("Name") or record.get("Source")):
            return True
    return False


def mount_event_attributes(record: dict[str, Any], container_id: str) -> dict[str, str]:
    return {
        "container": container_id,
        "destination": record["Destination"],
        "driver": record.get("Driver", ""),
        "propagation": record.get("Propagation", ""),
        "read/write": "true" if record.get("RW") else "false",
    }
