"""Apply an OCI / Docker layer (an uncompressed tar stream) onto a directory, without ever writing outside it.

Two whiteout modes, for the two snapshotters:

* ``"overlay"``: `dest` is an empty directory that becomes one overlayfs lower dir. Whiteouts are stored
  the way overlayfs reads them: ``.wh.NAME`` becomes a 0/0 character device NAME, and ``.wh..wh..opq``
  becomes the xattr ``trusted.overlay.opaque=y`` on its directory.
* ``"delete"``: `dest` already holds the lower layers (the copy-based snapshotter or a flattened rootfs).
  ``.wh.NAME`` deletes NAME and an opaque marker empties its directory of everything that this layer did
  not itself add.

Containment follows Docker, which applies layers chrooted into the snapshot: entry names are taken
relative to `dest` (a leading '/' is dropped), symlinks met on the way to an entry are resolved as if
`dest` were '/' (absolute targets and '..' never get above `dest`), and the last component of a path is
never followed: whatever is there is replaced. Names and hard-link targets whose '..' climbs above the
root are rejected outright (moby's explicit breakout check) rather than clamped: no genuine layer has
them. Symlink targets themselves are stored verbatim; they only matter inside the container.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO, Literal

from .tarstream import TarFormatError, TarStream

__all__ = [
    "AppliedLayer",
    "LayerError",
    "WhiteoutMode",
    "apply_layer",
    "clean_entry_name",
    "resolve_dir_in_root",
]

WhiteoutMode = Literal["overlay", "delete"]

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
# AUFS kept hard-link sources here; old layers still carry it and link into it.
AUFS_LINK_DIR = ".wh..wh.plnk"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
# A layer must not forge overlayfs metadata (opaque, redirect, metacopy): only whiteouts may set it.
_OVERLAY_XATTR_PREFIX = "trusted.overlay."
_PAX_XATTR_PREFIX = "SCHILY.xattr."
_MAX_SYMLINKS = 40  # Linux's own limit before ELOOP
_CHUNK = 1 << 20
_UMASK = os.umask(0o022)  # read once (umask can only be read by setting it)
os.umask(_UMASK)
_NS_MIN, _NS_MAX = -(1 << 63), (1 << 63) - 1
_SECONDS_MAX = _NS_MAX // 1_000_000_000


class LayerError(Exception):
    """The layer is malformed, malicious, or cannot be applied; the message is one line."""


@dataclass
class AppliedLayer:
    """What applying a layer did.

    `size` is the sum of the entries' sizes, the figure Docker records as the layer's size. `skipped`
    names entries that could not be reproduced (device nodes when not running as root).
    """

    size: int = 0
    entries: int = 0
    skipped: list[str] = field(default_factory=list)
    # Parent directories the layer did not list (relative names): see inherit_implicit_dirs.
    implicit_dirs: list[str] = field(default_factory=list)


def apply_layer(
    stream: BinaryIO,
    dest: Path,
    *,
    whiteout_mode: WhiteoutMode = "overlay",
    same_owner: bool | None = None,
    lower_dirs: Sequence[Path] = (),
) -> AppliedLayer:
    """Apply the uncompressed layer tar read from `stream` onto `dest` (created if missing).

    `same_owner` sets numeric owners from the tar (default: when running as root). `lower_dirs`, the
    layers below in overlay mode (uppermost first), give directories the layer creates implicitly (a
    parent with no entry of its own) the attributes of the directory they will cover, as containerd
    does, so that e.g. a 1777 /tmp is not masked by a 0755 one.

    The stream is read to EOF, so a digest computed while reading covers the whole blob. Errors from
    `stream` itself (e.g. a digest mismatch) propagate unchanged; a bad or malicious layer raises
    LayerError. A failed apply leaves `dest` partly written: apply into a fresh directory and discard it.
    """
    if whiteout_mode not in ("overlay", "delete"):
        raise ValueError(f"unknown whiteout mode {whiteout_mode!r}")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if same_owner is None:
        same_owner = os.geteuid() == 0
    counted = _CountingReader(stream)
    applier = _Applier(
        os.path.realpath(dest), whiteout_mode, same_owner, [os.path.realpath(p) for p in lower_dirs]
    )
    try:
        archive = TarStream(counted)
        while True:
            try:
                member = archive.next()
            except TarFormatError as e:
                if archive.first:
                    if counted.count == 0:  # a zero-byte blob is an empty layer, as Go's tar reader sees it
                        return applier.result
                    raise LayerError(f"invalid layer: not a tar stream ({e})") from e
                raise LayerError(f"invalid layer tar stream: {e}") from e
            if member is None:
                break
            try:
                applier.apply(member, archive)
            except TarFormatError as e:  # e.g. the stream ends inside a file's data
                raise LayerError(f"invalid layer tar stream: {e}") from e
        applier.finish()
    except LayerError:
        # An OSError from the stream (a dropped connection) passes through the entry's error handling;
        # hand it back as it was raised.
        if counted.failure is not None:
            raise counted.failure from None
        raise
    finally:
        applier.cleanup()
    while counted.read(_CHUNK):  # the end-of-archive blocks and padding tarfile leaves unread
        pass
    return applier.result


class _CorruptTar(Exception):
    """Raised from header parsing so tarfile cannot mistake a corrupt header for the end of archive."""


class _StrictTarInfo(tarfile.TarInfo):
    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except (tarfile.EOFHeaderError, tarfile.EmptyHeaderError):
            raise  # a zero block or a clean EOF: the normal end of the archive
        except tarfile.HeaderError as e:
            # tarfile.next() treats a bad header after the first as a silent end of archive; Go's
            # reader (and so Docker) fails the layer instead.
            raise _CorruptTar(f"bad tar header: {e}") from e


class _CountingReader:
    """Counts what was read, and remembers what the source raised so it can be told from layer errors."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0
        self.failure: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._stream.read(size)
        except BaseException as e:
            self.failure = e
            raise
        self.count += len(data)
        return data


def _entry_error(name: str, reason: str) -> LayerError:
    return LayerError(f"invalid layer entry {_quote(name)}: {reason}")


def _quote(text: str) -> str:
    # JSON quoting escapes control characters and undecodable bytes, keeping messages on one line.
    return json.dumps(text)


def clean_entry_name(name: str) -> str:
    """The path of a tar entry relative to the layer root ("" for the root itself).

    Like Go's filepath.Clean as Docker uses it: a rooted name is resolved against '/', so '..' stops
    at the root and the leading '/' goes; a relative name whose '..' climbs above the root is refused.
    """
    if "\x00" in name:
        raise _entry_error(name, "path contains a NUL byte")
    if name.startswith("/"):
        cleaned = posixpath.normpath("/" + name.lstrip("/")).lstrip("/")
    else:
        cleaned = posixpath.normpath(name)
        if cleaned == ".." or cleaned.startswith("../"):
            raise _entry_error(name, "path escapes the layer root")
    return "" if cleaned in (".", "") else cleaned


def resolve_dir_in_root(root: str, rel: str, mkdir: Callable[[str, str], None] | None = None) -> str | None:
    """Resolve directory path `rel` inside `root` as a process chrooted into `root` would.

    Symlinks are followed but scoped: an absolute target restarts at `root`, '..' stops at `root`.
    Returns the real path, which is always under `root`. A missing component is created with
    ``mkdir(abs_path, rel_path)`` when given, otherwise None is returned. A component that exists but is
    not a directory raises NotADirectoryError.
    """
    resolved: list[str] = []
    pending = [part for part in reversed(rel.split("/")) if part]
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            if mkdir is None:
                return None
            mkdir(candidate, "/".join([*resolved, part]))
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, "too many levels of symbolic links", candidate)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending.extend(p for p in reversed(target.split("/")) if p)
        elif stat.S_ISDIR(st.st_mode):
            resolved.append(part)
        else:
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", candidate)
    return os.path.join(root, *resolved)


class _Applier:
    def __init__(self, root: str, mode: WhiteoutMode, same_owner: bool, lowers: list[str]) -> None:
        self.root = root
        self.mode = mode
        self.same_owner = same_owner
        self.lowers = lowers
        self.result = AppliedLayer()
        # Paths this layer created: whiteouts and opaque markers only hide what lies below them.
        self.unpacked: set[str] = set()
        # Overlay mode: whiteout devices made by this layer; a directory replacing one must be opaque.
        self.whiteouts: set[str] = set()
        # Directory times are set last, once nothing more is created inside them.
        self.dir_times: list[tuple[str, int, int]] = []
        # Resolved parent directories by relative name; dropped whenever anything is removed, which is
        # the only way a resolution can change (new entries never sit on an already-resolved path).
        self.dir_cache: dict[str, str] = {}
        self.aufs_dir: str | None = None
        self.aufs_links: dict[str, tarfile.TarInfo] = {}
        # An overlay layer unpacks into an empty directory: a path not in `unpacked` holds nothing.
        self.fresh = mode == "overlay" and not os.listdir(root)
        self.ids = (os.geteuid(), os.getegid())

    # -- entry dispatch -------------------------------------------------------------------------------

    def apply(self, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        # dockerd's overlay2 sizes a layer by its unpacked files' lstat sizes: a symlink counts its target
        self.result.size += len(member.linkname.encode()) if member.issym() else member.size
        self.result.entries += 1
        name = clean_entry_name(member.name)
        try:
            self._apply(name, member, archive)
        except NotADirectoryError as e:
            where = os.path.relpath(e.filename, self.root) if e.filename else "a parent"
            raise _entry_error(member.name, f"{_quote(where)} is not a directory") from e
        except OSError as e:
            raise LayerError(f"applying layer entry {_quote(member.name)}: {e.strerror or e}") from e
        except ValueError as e:  # e.g. a NUL byte in a link name or xattr name
            raise _entry_error(member.name, str(e)) from e

    def _apply(self, name: str, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        if name.startswith(WHITEOUT_META_PREFIX):
            # AUFS metadata at the top: keep link sources aside, skip the rest (except a root opaque).
            if name.startswith(AUFS_LINK_DIR + "/") and member.isreg():
                self._stash_aufs_link(name, member, archive)
            if name != WHITEOUT_OPAQUE:
                return
        parent_rel, _, base = name.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent_rel, base, member)
            return
        if name == "":
            if not member.isdir():
                raise _entry_error(member.name, "only a directory can replace the layer root")
            self._set_metadata(self.root, member)
            self._defer_dir_times(self.root, member)
            return
        path = os.path.join(self._parent(parent_rel, create=True), base)
        self._create(path, member, archive)
        self.unpacked.add(path)

    # -- creating entries -----------------------------------------------------------------------------

    def _create(self, path: str, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        if member.isreg() and self.fresh and path not in self.unpacked:
            self._create_new_file(path, member, archive)
            return
        merge = self._clear(path, keep_dir=member.isdir())
        if member.isdir():
            if not merge:
                os.mkdir(path, 0o700)
            if path in self.whiteouts:
                # Same layer deleted then re-created the directory: what lies below stays hidden.
                os.setxattr(path, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
            self._set_metadata(path, member)
            self._defer_dir_times(path, member)
            return
        if member.isreg():
            source = archive.extractfile(member)
            assert source is not None  # regular members always have data
            self._write_file(path, source)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.islnk():
            if self._aufs_linked(path, member):
                return
            os.link(self._hardlink_target(member), path, follow_symlinks=False)
            self._set_metadata(path, member, hardlink=True)
            self._set_times(path, member)
            return
        elif member.ischr() or member.isblk():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            try:
                os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
            except PermissionError:
                if os.geteuid() == 0:
                    raise
                # Unprivileged, as rootless Docker: the node cannot exist here; say so rather than fail.
                self.result.skipped.append(member.name)
                return
        elif member.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise _entry_error(member.name, f"unsupported tar entry type {member.type!r}")
        self._set_metadata(path, member)
        self._set_times(path, member)

    def _create_new_file(self, path: str, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        """The common case, made cheap: a regular file where nothing exists yet (an overlay layer starts
        empty and `unpacked` holds all it made), written and finished through its descriptor, with the
        calls that would change nothing left out."""
        mode = stat.S_IMODE(member.mode)
        chown = self.same_owner and (member.uid, member.gid) != self.ids
        exact = not chown and not mode & 0o7000 and not mode & _UMASK  # open() sets the mode as is
        source = archive.extractfile(member)
        assert source is not None  # regular members always have data
        fd = os.open(
            path,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            mode if exact else 0o600,
        )
        try:
            while chunk := source.read(_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if chown:  # before chmod: chown clears setuid/setgid bits and file capabilities
                os.fchown(fd, member.uid, member.gid)
            for key, value in member.pax_headers.items():
                if key.startswith(_PAX_XATTR_PREFIX):
                    xattr = key[len(_PAX_XATTR_PREFIX) :]
                    if not xattr.startswith(_OVERLAY_XATTR_PREFIX):
                        self._setxattr(fd, xattr, value.encode("utf-8", "surrogateescape"))
            if not exact:
                os.fchmod(fd, mode)
            os.utime(fd, ns=_times_ns(member))
        finally:
            os.close(fd)
        self.unpacked.add(path)

    def _write_file(self, path: str, source: BinaryIO) -> None:
        # O_EXCL|O_NOFOLLOW: the path was just cleared, so anything there now is not ours to write through.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            while chunk := source.read(_CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _clear(self, path: str, *, keep_dir: bool) -> bool:
        """Remove whatever is at `path`, except a directory that a directory entry merges into."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(path)
        else:
            os.unlink(path)
        self.dir_cache.clear()
        return False

    def _hardlink_target(self, member: tarfile.TarInfo) -> str:
        if "\x00" in member.linkname:
            raise _entry_error(member.name, "hard link target contains a NUL byte")
        try:
            rel = clean_entry_name(member.linkname)
        except LayerError:
            raise _entry_error(
                member.name, f"hard link target {_quote(member.linkname)} escapes the layer root"
            ) from None
        if rel == "":
            raise _entry_error(member.name, "hard link to the layer root")
        parent_rel, _, base = rel.rpartition("/")
        parent = self._parent(parent_rel, create=False)
        if parent is None:
            raise _entry_error(member.name, f"hard link target {_quote(member.linkname)} not found")
        # The last component is not followed: a hard link to a symlink links the symlink itself.
        return os.path.join(parent, base)

    # -- whiteouts ------------------------------------------------------------------------------------

    def _whiteout(self, parent_rel: str, base: str, member: tarfile.TarInfo) -> None:
        if base == WHITEOUT_OPAQUE:
            self._opaque(parent_rel)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # other AUFS metadata
        target = base[len(WHITEOUT_PREFIX) :]
        if target in ("", ".", ".."):
            raise _entry_error(member.name, "invalid whiteout name")
        parent = self._parent(parent_rel, create=self.mode == "overlay")
        if parent is None:
            return  # nothing below to delete
        path = os.path.join(parent, target)
        if path in self.unpacked:
            return  # whiteouts hide lower layers only, never this layer's own entries
        self._clear(path, keep_dir=False)
        if self.mode == "overlay":
            os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))
            if self.same_owner:
                os.lchown(path, member.uid, member.gid)
            self.whiteouts.add(path)
            self.unpacked.add(path)

    def _opaque(self, dir_rel: str) -> None:
        if self.mode == "overlay":
            directory = self._parent(dir_rel, create=True)
            assert directory is not None
            os.setxattr(directory, OVERLAY_OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        directory = self._parent(dir_rel, create=False)
        if directory is None:
            return
        # Remove everything below not added by this layer; descend only into this layer's own
        # directories (never through symlinks), since they may have merged into lower ones.
        stack = [directory]
        while stack:
            current = stack.pop()
            with os.scandir(current) as entries:
                children = [(entry.path, entry.is_dir(follow_symlinks=False)) for entry in entries]
            for path, is_dir in children:
                if path not in self.unpacked:
                    if is_dir:
                        shutil.rmtree(path)
                    else:
                        os.unlink(path)
                elif is_dir:
                    stack.append(path)
        self.dir_cache.clear()

    # -- AUFS hard-link directory ---------------------------------------------------------------------

    def _stash_aufs_link(self, name: str, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        if self.aufs_dir is None:
            self.aufs_dir = tempfile.mkdtemp(prefix="dockyard-plnk-")
        basename = name.rsplit("/", 1)[1]
        path = os.path.join(self.aufs_dir, basename)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        source = archive.extractfile(member)
        assert source is not None
        self._write_file(path, source)
        self.aufs_links[basename] = member

    def _aufs_linked(self, path: str, member: tarfile.TarInfo) -> bool:
        """Turn a hard link into AUFS's link directory into a copy of the stashed file, as Docker does."""
        link = posixpath.normpath(member.linkname.lstrip("/"))
        if not link.startswith(AUFS_LINK_DIR + "/"):
            return False
        source = self.aufs_links.get(link.rsplit("/", 1)[1])
        if source is None or self.aufs_dir is None:
            raise _entry_error(member.name, f"hard link into {AUFS_LINK_DIR} to a file it does not hold")
        with open(os.path.join(self.aufs_dir, link.rsplit("/", 1)[1]), "rb") as stashed:
            self._write_file(path, stashed)
        self._set_metadata(path, source)
        self._set_times(path, source)
        return True

    # -- paths ----------------------------------------------------------------------------------------

    def _parent(self, rel: str, *, create: bool) -> str | None:
        cached = self.dir_cache.get(rel)
        if cached is not None:
            return cached
        resolved = resolve_dir_in_root(self.root, rel, self._mkdir_implicit if create else None)
        if resolved is not None:
            self.dir_cache[rel] = resolved
        return resolved

    def _mkdir_implicit(self, path: str, rel: str) -> None:
        """Create a parent directory the layer did not list, copying a lower layer's if there is one."""
        os.mkdir(path, 0o755)
        os.chmod(path, 0o755)  # whatever the umask
        self.unpacked.add(path)
        self.result.implicit_dirs.append(rel)
        times = _copy_lower_dir_attributes(path, rel, self.lowers, self.same_owner)
        if times is not None:
            self.dir_times.append((path, *times))

    # -- metadata -------------------------------------------------------------------------------------

    def _set_metadata(self, path: str, member: tarfile.TarInfo, *, hardlink: bool = False) -> None:
        # Order matters: chown clears setuid/setgid bits and security.capability, so it goes first.
        if self.same_owner:
            st = os.lstat(path) if hardlink else None
            # A hard link shares its target's inode: re-chowning it would strip the target's privileges.
            if st is None or (st.st_uid, st.st_gid) != (member.uid, member.gid):
                os.lchown(path, member.uid, member.gid)
        for key, value in member.pax_headers.items():
            if key.startswith(_PAX_XATTR_PREFIX):
                xattr = key[len(_PAX_XATTR_PREFIX) :]
                if not xattr.startswith(_OVERLAY_XATTR_PREFIX):
                    self._setxattr(path, xattr, value.encode("utf-8", "surrogateescape"))
        if not member.issym() and not (hardlink and os.path.islink(path)):
            os.chmod(path, stat.S_IMODE(member.mode))

    @staticmethod
    def _setxattr(path: str | int, key: str, value: bytes) -> None:
        try:
            if isinstance(path, int):
                os.setxattr(path, key, value)
            else:
                os.setxattr(path, key, value, follow_symlinks=False)
        except OSError as e:
            # As Docker: a filesystem without xattrs, or a namespace we may not write (security.* when
            # unprivileged, user.* on a symlink), loses the attribute rather than the whole layer.
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise

    def _set_times(self, path: str, member: tarfile.TarInfo) -> None:
        os.utime(path, ns=_times_ns(member), follow_symlinks=False)

    def _defer_dir_times(self, path: str, member: tarfile.TarInfo) -> None:
        self.dir_times.append((path, *_times_ns(member)))

    def finish(self) -> None:
        for path, atime, mtime in self.dir_times:
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    continue  # replaced later in the layer
                os.utime(path, ns=(atime, mtime), follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted later in the layer
            except OSError as e:
                raise LayerError(f"setting times on {_quote(path)}: {e.strerror or e}") from e

    def cleanup(self) -> None:
        if self.aufs_dir is not None:
            shutil.rmtree(self.aufs_dir, ignore_errors=True)


def _copy_lower_dir_attributes(
    path: str, rel: str, lowers: Sequence[str], same_owner: bool
) -> tuple[int, int] | None:
    """Give `path` the owner, xattrs and mode of `rel` in the uppermost lower layer that has it, as
    containerd does (so a 1777 /tmp is not masked by a 0755 one); returns that directory's times."""
    for lower in lowers:
        try:
            lower_dir = resolve_dir_in_root(lower, rel)
        except OSError:
            return None  # replaced by a non-directory below: nothing to copy
        if lower_dir is None:
            continue
        st = os.lstat(lower_dir)
        if same_owner:
            os.lchown(path, st.st_uid, st.st_gid)
        for key in os.listxattr(lower_dir, follow_symlinks=False):
            if not key.startswith(_OVERLAY_XATTR_PREFIX):
                _Applier._setxattr(path, key, os.getxattr(lower_dir, key, follow_symlinks=False))
        os.chmod(path, stat.S_IMODE(st.st_mode))
        return st.st_atime_ns, st.st_mtime_ns
    return None


def inherit_implicit_dirs(
    dest: Path, implicit_dirs: Sequence[str], lower_dirs: Sequence[Path], same_owner: bool | None = None
) -> None:
    """Do afterwards what `apply_layer(lower_dirs=...)` does while unpacking: so a layer can be unpacked
    before the layers below it are, and fixed up once they are (lower_dirs uppermost first)."""
    if same_owner is None:
        same_owner = os.geteuid() == 0
    root = os.path.realpath(dest)
    lowers = [os.path.realpath(p) for p in lower_dirs]
    # Deepest first, so setting a directory's times is not undone by touching one inside it.
    for rel in sorted(implicit_dirs, key=lambda r: r.count("/"), reverse=True):
        try:
            path = resolve_dir_in_root(root, rel)
        except OSError:
            continue  # replaced later in the layer by a non-directory
        if path is None:
            continue
        st = os.lstat(path)
        times = _copy_lower_dir_attributes(path, rel, lowers, same_owner)
        # Keep the times the layer left (its own entries inside changed them), unless the lower had some.
        os.utime(path, ns=times or (st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _times_ns(member: tarfile.TarInfo) -> tuple[int, int]:
    """(atime, mtime) in ns; atime is never earlier than mtime, as both Docker unpackers do."""
    mtime = _pax_time_ns(member.pax_headers.get("mtime"), member.mtime)
    atime = _pax_time_ns(member.pax_headers.get("atime"), None)
    return (max(atime, mtime) if atime is not None else mtime), mtime


def _pax_time_ns(text: str | None, fallback: float | None) -> int | None:
    # PAX times are decimal strings with up to ns precision; a float would lose the low digits.
    value: Decimal | None = None
    if text is not None:
        with contextlib.suppress(InvalidOperation):
            value = Decimal(text)
    if value is None or value.is_nan():
        if fallback is None:
            return None
        value = Decimal(str(fallback))  # tarfile's own float: may be inf or nan as well
        if value.is_nan():
            return 0
    # Clamp first: "1e999999999" is a valid decimal that would overflow the context or take gigabytes.
    if value >= _SECONDS_MAX:
        return _NS_MAX
    if value <= -_SECONDS_MAX:
        return _NS_MIN
    return int(value * 1_000_000_000)
