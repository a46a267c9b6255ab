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
import errno
import json
import os
import posixpath
import shutil
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
from ..images.tarwrite import add_entry, tar_info
from ..reference import InvalidReference, parse_reference
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
_MAX_LINKS = 255

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


# --- the container's view of its files ----------------------------------------------------------------


@dataclass
class ContainerView:
    """The container's `/` (its mounted rootfs) with its mounts laid over it, for path lookups."""

    rootfs: str
    name: str = ""  # the container as the request named it, for dockerd's messages
    # (destination, host source, read-write), longest destination first
    mounts: list[tuple[str, str, bool]] = field(default_factory=list)

    @classmethod
    def of(cls, rootfs: str, mount_points: dict[str, Any]) -> ContainerView:
        mounts = []
        for dest, record in (mount_points or {}).items():
            source = record.get("Source") or ""
            if not source or record.get("Type") == "tmpfs":
                continue  # a tmpfs lives only in the container's mount namespace
            mounts.append((_clean(dest), source, bool(record.get("RW", True))))
        mounts.sort(key=lambda m: len(m[0]), reverse=True)
        return cls(rootfs, mounts=mounts)

    def mount_of(self, cpath: str) -> tuple[str, str, bool] | None:
        for mount in self.mounts:
            dest = mount[0]
            if cpath == dest or cpath.startswith(dest.rstrip("/") + "/"):
                return mount
        return None

    def host(self, cpath: str) -> str:
        """The host path of a resolved container path (no symlinks in it but perhaps the last part)."""
        mount = self.mount_of(cpath)
        if mount is not None:
            rest = cpath[len(mount[0]) :].lstrip("/")
            return os.path.join(mount[1], rest) if rest else mount[1]
        rest = cpath.lstrip("/")
        return os.path.join(self.rootfs, rest) if rest else self.rootfs

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """`path` as a container path with every symlink followed inside the container (the last part
        only when `follow_last`); missing parts are kept as they are."""
        todo = [p for p in path.split("/") if p and p != "."]
        done: list[str] = []
        links = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            candidate = "/" + "/".join([*done, part])
            if not todo and not follow_last:
                done.append(part)
                break
            try:
                st = os.lstat(self.host(candidate))
            except (FileNotFoundError, NotADirectoryError):
                done.append(part)
                continue
            if not stat.S_ISLNK(st.st_mode):
                done.append(part)
                continue
            links += 1
            if links > _MAX_LINKS:
                raise OSError(errno.ELOOP, f"too many levels of symbolic links: {path}")
            target = os.readlink(self.host(candidate))
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p and p != "."] + todo
        return "/" + "/".join(done)


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
        elif any(os.path.lexists(lower / rel) for lower in lowers):
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
                view = ContainerView.of(str(root), c.mount_points)
                view.name = ref
                yield c, view
            finally:
                if mounted_here and not c.running:
                    await asyncio.to_thread(self.rootfs.unmount, c.id)

    # stat and archive (docker cp from a container)

    def stat_path(self, c: Container, view: ContainerView, path: str) -> tuple[dict[str, Any], str]:
        """dockerd's StatPath: the stat of `path` and its host path."""
        abs_path = _clean(path)
        # as dockerd's ResolvePath: a trailing "/" or "/." makes the last part count as a directory,
        # so a symlink there is followed
        trailing = path.endswith(("/", "/.")) and abs_path != "/"
        resolved = view.resolve(abs_path, follow_last=trailing)
        host = view.host(resolved)
        try:
            st = os.lstat(host)
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerError(
                f"Could not find the file {abs_path} in container {view.name}", 404
            ) from None
        link_target = ""
        if stat.S_ISLNK(st.st_mode):
            link_target = view.resolve(abs_path, follow_last=True)
        name = posixpath.basename(abs_path) or "/"
        return {
            "name": name,
            "size": st.st_size,
            "mode": go_file_mode(st.st_mode),
            "mtime": _rfc3339_nano(st.st_mtime_ns),
            "linkTarget": link_target,
        }, host

    def write_archive(self, view: ContainerView, path: str, host: str, out: BinaryIO) -> None:
        """The tar of `path` (a file, or a directory and everything under it, mounts included), its
        entries named after the path's last part as asked (`/x/.` gives `./...`)."""
        base = "." if path.endswith("/.") else (posixpath.basename(path.rstrip("/")) or "/")
        abs_path = _clean(path)
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
            self._add(archive, view, abs_path, host, base, {})

    def _add(
        self, archive: tarfile.TarFile, view: ContainerView, cpath: str, host: str, name: str, links: dict
    ) -> None:
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            return  # gone meanwhile
        add_entry(archive, tar_info(name, st), host, st, links)
        if not stat.S_ISDIR(st.st_mode):
            return
        try:
            names = sorted(os.listdir(host))
        except OSError:
            return
        # `/x/.` names the entries `./a`; `/` names them `/a`, as dockerd's rebase does
        prefix = "./" if name == "." else name.rstrip("/") + "/"
        for child in names:
            child_c = posixpath.join(cpath, child)
            # a mount below this directory shows its source's content, not the mount point's
            archive_host = view.host(child_c) if view.mount_of(child_c) else os.path.join(host, child)
            self._add(archive, view, child_c, archive_host, prefix + child, links)

    # extract (docker cp into a container)

    def check_extract(self, c: Container, view: ContainerView, path: str) -> str:
        """dockerd's checks before extracting into `path`: the resolved container directory."""
        abs_path = _clean(path)
        resolved = view.resolve(abs_path, follow_last=True)
        try:
            st = os.lstat(view.host(resolved))
        except (FileNotFoundError, NotADirectoryError):
            raise ContainerError(
                f"Could not find the file {abs_path} in container {view.name}", 404
            ) from None
        if not stat.S_ISDIR(st.st_mode):
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
        """Unpack a tar into the container directory `dest` (resolved), each entry's parent resolved in
        the container's view; `owner` (copyUIDGID) replaces the entries' own."""
        dirs: list[tuple[str, tarfile.TarInfo]] = []
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for member in archive:
                rel = posixpath.normpath("/" + member.name).lstrip("/")
                if not rel:
                    continue  # the archive's root ("./"): dest itself
                parent = view.resolve(posixpath.join(dest, posixpath.dirname(rel)), follow_last=True)
                cpath = posixpath.join(parent, posixpath.basename(rel))
                host = view.host(cpath)
                os.makedirs(os.path.dirname(host), exist_ok=True)
                existing = _lstat(host)
                if existing is not None:
                    is_dir = stat.S_ISDIR(existing.st_mode)
                    if no_overwrite_dir_non_dir and is_dir and not member.isdir():
                        raise ContainerError(
                            f'cannot overwrite directory "{cpath}" with non-directory "{member.name}"', 400
                        )
                    if no_overwrite_dir_non_dir and not is_dir and member.isdir():
                        raise ContainerError(
                            f'cannot overwrite non-directory "{cpath}" with directory "{member.name}"', 400
                        )
                    if not (is_dir and member.isdir()):
                        if is_dir:
                            shutil.rmtree(host)
                        else:
                            os.unlink(host)
                uid, gid = owner if owner is not None else (member.uid, member.gid)
                if member.isdir():
                    if existing is None or not stat.S_ISDIR(existing.st_mode):
                        os.mkdir(host, 0o700)
                    dirs.append((host, member))
                elif member.isreg():
                    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        source = archive.extractfile(member)
                        while source is not None and (chunk := source.read(1 << 20)):
                            f.write(chunk)
                elif member.issym():
                    os.symlink(member.linkname, host)
                elif member.islnk():
                    target = view.resolve(posixpath.join(dest, _clean(member.linkname).lstrip("/")))
                    os.link(view.host(target), host, follow_symlinks=False)
                    continue
                elif member.ischr() or member.isblk():
                    kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                    os.mknod(host, kind | 0o600, os.makedev(member.devmajor, member.devminor))
                elif member.isfifo():
                    os.mkfifo(host, 0o600)
                else:
                    continue
                os.chown(host, uid, gid, follow_symlinks=False)
                if not member.issym():
                    os.chmod(host, member.mode & 0o7777)
                    os.utime(host, (member.mtime, member.mtime))
        # directories last, as tar does: their times would change with every entry written into them
        for host, member in reversed(dirs):
            uid, gid = owner if owner is not None else (member.uid, member.gid)
            os.chown(host, uid, gid)
            os.chmod(host, member.mode & 0o7777)
            os.utime(host, (member.mtime, member.mtime))

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
            links: dict = {}
            for child in sorted(os.listdir(view.rootfs)):
                self._add(archive, root_only, "/" + child, os.path.join(view.rootfs, child), child, links)

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


def _clean(path: str) -> str:
    """An absolute, clean container path ("//x/../y" is "/y": normpath alone keeps a leading "//")."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _lookup(view: ContainerView, file: str, key: str, field_index: int, by_id: bool = False) -> str | None:
    host = view.host(view.resolve(file))
    try:
        lines = Path(host).read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":")
        if len(parts) <= field_index:
            continue
        if (parts[2] if by_id else parts[0]) == key:
            return parts[field_index]
    return None


def encode_path_stat(info: dict[str, Any]) -> str:
    """The X-Docker-Container-Path-Stat header: base64 of the stat's JSON."""
    return base64.b64encode(json.dumps(info, separators=(",", ":")).encode()).decode()
