"""A container's filesystem seen from outside: `docker diff`, `commit`, `cp` and `export`.

Paths are container paths: resolved component by component as the container would see them, with its
bind and volume mounts (`mount_points`) in place, so `/data/x` under a `-v vol:/data` reads and writes the
volume's directory, as dockerd's mounted volumes do. Symlinks are followed inside that view only (an
absolute target restarts at the container's `/`, `..` stops at it), so nothing outside the rootfs or a
mount's source is ever touched through a link the container made.

The rootfs of a stopped container is mounted for the operation and unmounted afterwards; the container's
lock is held meanwhile, so it cannot start (or be removed) half-way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import posixpath
import stat
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .. import __version__
from ..build.layer import changed_entries, is_whiteout, write_layer
from ..goarch import go_arch
from ..images import ImageError
from ..images.archive import go_json
from ..images.changes import ChangeError, apply_changes, container_config
from ..images.tarwrite import lstat_beneath
from ..images.untar import ExtractError, UntarOptions, untar
from ..reference import InvalidReference, parse_reference
from .pathview import ContainerView, ReadOnlyMount, clean
from .service import ContainerError, ContainerService
from .store import Container

__all__ = [
    "CHANGE_ADDED",
    "CHANGE_DELETED",
    "CHANGE_MODIFIED",
    "ContainerFilesystem",
    "ContainerView",
    "go_file_mode",
    "merge_commit_config",
]

CHANGE_MODIFIED, CHANGE_ADDED, CHANGE_DELETED = 0, 1, 2

# Go's os.FileMode type bits, which X-Docker-Container-Path-Stat carries as "mode"
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHAR = 1 << 21
_GO_STICKY = 1 << 20


def go_file_mode(mode: int) -> int:
    """A unix st_mode as Go's os.FileMode (what dockerd puts in a path stat)."""
    out = stat.S_IMODE(mode) & 0o777
    kind = stat.S_IFMT(mode)
    out |= {
        stat.S_IFDIR: _GO_DIR,
        stat.S_IFLNK: _GO_SYMLINK,
        stat.S_IFBLK: _GO_DEVICE,
        stat.S_IFCHR: _GO_DEVICE | _GO_CHAR,
        stat.S_IFIFO: _GO_PIPE,
        stat.S_IFSOCK: _GO_SOCKET,
    }.get(kind, 0)
    if mode & stat.S_ISUID:
        out |= _GO_SETUID
    if mode & stat.S_ISGID:
        out |= _GO_SETGID
    if mode & stat.S_ISVTX:
        out |= _GO_STICKY
    return out


def _rfc3339_nano(ns: int) -> str:
    sec, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return (f"{base}.{frac:09d}".rstrip("0") if frac else base) + "Z"


# --- diff ---------------------------------------------------------------------------------------------


def overlay_changes(upper: Path, lowers: list[Path]) -> list[dict[str, Any]]:
    """The changes in an overlay upper dir as dockerd reports them (its diff of the container's tree
    against the image's): a whiteout is a deletion, what a lower layer has a modification, the rest an
    addition; a directory counts when its mode or owner changed or something in it did (never for its
    mtime or size). What the runtime put there (Docker's init layer: /dev, /proc, /sys, empty
    /etc/hosts...) is not a change. Sorted by path: dockerd's own order varies from call to call (it
    walks a Go map), but always puts a directory before what it holds, which the sort keeps."""
    changes = []
    for rel, st, _opaque in changed_entries(upper, lowers):
        if is_whiteout(st):
            kind = CHANGE_DELETED
        elif any(lstat_beneath(lower, rel) is not None for lower in lowers):  # (no lower link followed)
            kind = CHANGE_MODIFIED
        else:
            kind = CHANGE_ADDED
        changes.append({"Path": "/" + rel, "Kind": kind})
    changes.sort(key=lambda change: change["Path"])
    return changes


# --- commit -------------------------------------------------------------------------------------------


def merge_commit_config(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """dockerd's `merge` for a commit: what the request (body and changes) leaves unset comes from the
    container's config; Env, ExposedPorts, Labels and Volumes are unions with the request's winning."""
    out = dict(user)
    if not out.get("User"):
        out["User"] = container.get("User") or ""
    ports = dict(container.get("ExposedPorts") or {})
    ports.update(out.get("ExposedPorts") or {})
    out["ExposedPorts"] = ports or None
    env = list(out.get("Env") or [])
    keys = {e.partition("=")[0] for e in env}
    env += [e for e in container.get("Env") or [] if e.partition("=")[0] not in keys]
    out["Env"] = env or None
    out["Labels"] = {**(container.get("Labels") or {}), **(out.get("Labels") or {})}
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
            if container.get("ArgsEscaped"):
                out["ArgsEscaped"] = True
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    if container.get("Healthcheck"):
        health = dict(out.get("Healthcheck") or {})
        for key, value in container["Healthcheck"].items():
            if not health.get(key):
                health[key] = value
        out["Healthcheck"] = health
    if not out.get("WorkingDir"):
        out["WorkingDir"] = container.get("WorkingDir") or ""
    volumes = dict(out.get("Volumes") or {})
    volumes.update(container.get("Volumes") or {})
    out["Volumes"] = volumes or None
    if not out.get("StopSignal") and container.get("StopSignal"):
        out["StopSignal"] = container["StopSignal"]
    return container_config(out)


@dataclass
class CommitOptions:
    repo: str = ""
    tag: str = ""
    comment: str = ""
    author: str = ""
    pause: bool = True
    changes: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None


# --- the service --------------------------------------------------------------------------------------


class CopyError(ContainerError):
    pass


class ContainerFilesystem:
    """diff, commit, stat/archive/extract (cp) and export, over the container service's records."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self.images = containers.images
        self.rootfs = containers.rootfs

    def _lowers(self, c: Container) -> list[Path]:
        record = self.images.get(c.image_id)
        return self.images.snapshots.lower_dirs(record.chain_id) if record.chain_id else []

    def _need_overlay(self, what: str) -> None:
        if self.rootfs.driver != "overlay2":
            raise ContainerError(
                f"{what} needs the overlay2 storage driver (this daemon uses {self.rootfs.driver})"
            )

    # diff

    def changes(self, ref: str) -> list[dict[str, Any]] | None:
        c = self.containers.get(ref)
        self._need_overlay("diff")
        changes = overlay_changes(self.rootfs.dir(c.id) / "upper", self._lowers(c))
        return changes or None  # dockerd's nil slice: `null`

    # the rootfs, mounted for the length of an operation

    @contextlib.asynccontextmanager
    async def view(self, ref: str) -> AsyncIterator[tuple[Container, ContainerView]]:
        c = self.containers.get(ref)
        async with self.containers._lock(c.id):
            if c.state.status == "removing":
                raise ContainerError(f"container {c.id} is marked for removal", 409)
            chain = self.images.get(c.image_id).chain_id
            mounted_here = not self.rootfs.is_mounted(c.id)
            root = await asyncio.to_thread(self.rootfs.mount, c.id, chain)
            try:
                view = ContainerView.of(
                    str(root), c.mount_points, readonly_rootfs=bool(c.host_config.get("ReadonlyRootfs"))
                )
                view.name = ref
                yield c, view
            finally:
                if mounted_here and not c.running:
                    await asyncio.to_thread(self.rootfs.unmount, c.id)

    # stat and archive (docker cp from a container)

    def stat_path(self, c: Container, view: ContainerView, path: str) -> dict[str, Any]:
        """dockerd's StatPath: the stat of `path`, as the container sees it."""
        abs_path = clean(path)
        # as dockerd's ResolvePath: a trailing "/" or "/." makes the last part count as a directory,
        # so a symlink there is followed
        trailing = path.endswith(("/", "/.")) and abs_path != "/"
        try:
            fd, _ = view.open(abs_path, follow_last=trailing)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerError(
                f"Could not find the file {abs_path} in container {view.name}", 404
            ) from None
        except OSError as e:
            raise ContainerError(f"{abs_path}: {e.strerror or e}", 500) from None
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        link_target = ""
        if stat.S_ISLNK(st.st_mode):
            link_target = self._resolve(view, abs_path)
        name = posixpath.basename(abs_path) or "/"
        return {
            "name": name,
            "size": st.st_size,
            "mode": go_file_mode(st.st_mode),
            "mtime": _rfc3339_nano(st.st_mtime_ns),
            "linkTarget": link_target,
        }

    @staticmethod
    def _resolve(view: ContainerView, path: str) -> str:
        try:
            return view.resolve(path)
        except OSError as e:
            raise ContainerError(f"{path}: {e.strerror or e}", 500) from None

    def write_archive(self, view: ContainerView, path: str, out: BinaryIO) -> None:
        """The tar of `path` (a file, or a directory and everything under it, mounts included), its
        entries named after the path's last part as asked (`/x/.` gives `./...`). The path is walked
        again (a container may have changed it since its stat): whatever is found is read through
        descriptors, inside the container's view."""
        base = "." if path.endswith("/.") else (posixpath.basename(path.rstrip("/")) or "/")
        abs_path = clean(path)
        trailing = path.endswith(("/", "/.")) and abs_path != "/"
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
            view.add_tree(archive, abs_path, base, follow_last=trailing)

    # extract (docker cp into a container)

    def check_extract(self, c: Container, view: ContainerView, path: str) -> str:
        """dockerd's checks before extracting into `path`: the resolved container directory."""
        abs_path = clean(path)
        try:
            fd, resolved = view.open(abs_path, follow_last=True)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerError(
                f"Could not find the file {abs_path} in container {view.name}", 404
            ) from None
        except OSError as e:
            raise ContainerError(f"{abs_path}: {e.strerror or e}", 500) from None
        try:
            is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        if not is_dir:
            raise ContainerError("extraction point is not a directory", 500)
        mount = view.mount_of(resolved)
        if mount is not None and not mount[2]:
            raise ContainerError("mounted volume is marked read-only", 400)
        if mount is None and c.host_config.get("ReadonlyRootfs"):
            raise ContainerError("container rootfs is marked read-only", 400)
        return resolved

    def extract(
        self,
        c: Container,
        view: ContainerView,
        dest: str,
        stream: BinaryIO,
        no_overwrite_dir_non_dir: bool = False,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """Unpack a tar into the container directory `dest` (resolved), each entry's directory walked
        again in the container's view and the entry made relative to it (see images.untar): a link the
        archive or the container makes is followed inside the view only, a read-only mount is refused;
        `owner` (copyUIDGID) replaces the entries' own."""
        options = UntarOptions(owner=owner, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            try:
                untar(archive, view, dest, options)
            except ReadOnlyMount as e:
                raise ContainerError(str(e), 400) from None
            except ExtractError as e:
                raise ContainerError(str(e), 400) from None

    def user_ids(self, c: Container, view: ContainerView) -> tuple[int, int]:
        """The container's Config.User as numbers, looked up in its own /etc/passwd and /etc/group."""
        user = c.config.get("User") or ""
        name, _, group = user.partition(":")
        uid = gid = 0
        if name:
            if name.isdigit():
                uid = int(name)
                gid = int(_lookup(view, "/etc/passwd", name, by_id=True, field_index=3) or 0)
            else:
                found = _lookup(view, "/etc/passwd", name, field_index=2)
                if found is None:
                    raise ContainerError(
                        f"unable to find user {name}: no matching entries in passwd file", 400
                    )
                uid = int(found)
                gid = int(_lookup(view, "/etc/passwd", name, field_index=3) or 0)
        if group:
            if group.isdigit():
                gid = int(group)
            else:
                found = _lookup(view, "/etc/group", group, field_index=2)
                if found is None:
                    raise ContainerError(
                        f"unable to find group {group}: no matching entries in group file", 400
                    )
                gid = int(found)
        return uid, gid

    # export

    def write_export(self, view: ContainerView, out: BinaryIO) -> None:
        """The container's whole filesystem (its merged rootfs, without its mounts) as a tar."""
        root_only = ContainerView(view.rootfs)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
            root_only.add_children(archive)

    # commit

    async def commit(self, ref: str, options: CommitOptions) -> str:
        c = self.containers.get(ref)
        self._need_overlay("commit")
        if c.state.status == "removing":
            raise ContainerError(f"Cannot commit container {c.id}: container is marked for removal", 409)
        if c.state.status == "dead":
            raise ContainerError(f"You cannot commit container {c.id} which is Dead", 409)
        target = None  # (a tag without a repository is ignored, as by dockerd)
        if options.repo:
            try:
                target = parse_reference(options.repo + (f":{options.tag}" if options.tag else ""))
            except InvalidReference as e:
                raise ContainerError(str(e), 400) from None
            if target.digest:
                raise ContainerError("refusing to create a tag with a digest reference", 400)
        try:
            user_config = apply_changes(options.changes, options.config or {})
        except ChangeError as e:
            raise ContainerError(str(e), 400) from None
        config = merge_commit_config(user_config, c.config)
        paused_here = False
        if options.pause and c.state.status == "running":
            await self.containers.pause(c.id)
            paused_here = True
        try:
            image_id = await self._commit_layer(c, config, options)
        finally:
            if paused_here:
                with contextlib.suppress(ContainerError):
                    await self.containers.unpause(c.id)
        if target is not None:
            try:
                await self.images.tag(image_id, str(target))
            except ImageError as e:
                raise ContainerError(str(e), getattr(e, "status", 500)) from None
            self.containers.events.emit("image", "tag", image_id, name=target.familiar())
        attributes = {"comment": options.comment, "imageID": image_id, "image": c.image, "name": c.name}
        if target is not None:
            attributes["imageRef"] = target.familiar()
        self.containers.events.emit("container", "commit", c.id, **attributes)
        return image_id

    async def _commit_layer(self, c: Container, config: dict[str, Any], options: CommitOptions) -> str:
        record = self.images.get(c.image_id)
        parent = self.images.config(record)
        lowers = self._lowers(c)
        fd, name = tempfile.mkstemp(prefix="commit-layer-", dir=self.images.content.ingest_dir)
        tar_path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                diff = await asyncio.to_thread(write_layer, self.rootfs.dir(c.id) / "upper", out, lowers)
            layers = list(record.layers)
            diff_ids = list((parent.get("rootfs") or {}).get("diff_ids") or [])
            empty = diff.entries == 0
            if not empty:
                layer = await asyncio.to_thread(
                    self.images.add_layer, tar_path, diff.diff_id, diff.size, record.chain_id
                )
                layers.append(layer)
                diff_ids.append(diff.diff_id)
        finally:
            tar_path.unlink(missing_ok=True)  # (moved into the content store when new)
        created = _rfc3339_nano(time.time_ns())
        entry: dict[str, Any] = {"created": created}
        if options.author:
            entry["author"] = options.author
        entry["created_by"] = " ".join(c.config.get("Cmd") or [])
        if options.comment:
            entry["comment"] = options.comment
        if empty:
            entry["empty_layer"] = True
        image: dict[str, Any] = {
            "architecture": parent.get("architecture") or go_arch(),
            "config": config,
            "container": c.id,
            "container_config": container_config(c.config),
            "created": created,
            "docker_version": f"dockyard-{__version__}",
            "history": [*(parent.get("history") or []), entry],
            "os": parent.get("os") or "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        if options.author:
            image["author"] = options.author
        if parent.get("variant"):
            image["variant"] = parent["variant"]
        blob = go_json(dict(sorted(image.items())))
        async with self.images.lock:
            # inspect's Comment: dockerd shows the last history entry's, the config having none
            extra = (
                {"parent": c.image_id, "comment": options.comment}
                if options.comment
                else {"parent": c.image_id}
            )
            new = self.images.register(blob, layers, extra=extra)
        return new.id


def _lookup(view: ContainerView, file: str, key: str, field_index: int, by_id: bool = False) -> str | None:
    text = view.read_text(file)
    for line in (text or "").splitlines():
        parts = line.split(":")
        if len(parts) <= field_index:
            continue
        if (parts[2] if by_id else parts[0]) == key:
            return parts[field_index]
    return None


def encode_path_stat(info: dict[str, Any]) -> str:
    """The X-Docker-Container-Path-Stat header: base64 of the stat's JSON."""
    return base64.b64encode(json.dumps(info, separators=(",", ":")).encode()).decode()
