"""The build context: the tar the client sent, unpacked into a scratch directory, and what COPY/ADD read
from it (paths scoped to the context, wildcards, and the checksums the cache is keyed on).

A file's checksum covers its relative name, type, mode, owner, size, link target and content, never its
times: touching a file keeps the cache, changing a byte or a mode does not (as the classic builder's
tarsum). A directory's is "dir:" + the hash of its entries' checksums; several sources make "multi:".
"""

from __future__ import annotations

import bz2
import contextlib
import fnmatch
import gzip
import hashlib
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..images.untar import ExtractError, UntarOptions, untar
from ..linux.inroot import RootDir, fd_path
from .dockerignore import PatternMatcher, read_patterns

__all__ = ["BuildContext", "ContextError", "SourceFile"]

DEFAULT_DOCKERFILE = "Dockerfile"
_CHUNK = 1 << 20


class ContextError(Exception):
    """A bad context or source path; `status` is the HTTP status when it is answered before the stream."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SourceFile:
    """One resolved COPY/ADD source: its real path and the name it is known by."""

    path: str  # real path on this host, inside the source root
    rel: str  # relative to the source root, as the user named it (cleaned)
    hash: str  # "file:<hex>" or "dir:<hex>"


def _hash_entry(path: str, rel: str) -> str:
    st = os.lstat(path)
    h = hashlib.sha256()
    kind = stat.S_IFMT(st.st_mode)
    link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    h.update(
        f"{rel}\0{kind}\0{stat.S_IMODE(st.st_mode):o}\0{st.st_uid}\0{st.st_gid}\0{size}\0{link}\0".encode()
    )
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def hash_source(path: str, rel: str) -> str:
    """The cache checksum of a file ("file:") or a directory tree ("dir:")."""
    if not os.path.isdir(path) or os.path.islink(path):
        return "file:" + _hash_entry(path, rel)
    hashes = []
    for top, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(top, name)
            hashes.append(_hash_entry(full, os.path.relpath(full, path)))
    return hash_strings("dir", sorted(hashes))


def hash_strings(prefix: str, values: list[str]) -> str:
    return prefix + ":" + hashlib.sha256(",".join(values).encode()).hexdigest()


def has_wildcards(name: str) -> bool:
    i = 0
    while i < len(name):
        if name[i] == "\\":
            i += 2
            continue
        if name[i] in "*?[":
            return True
        i += 1
    return False


def _match(pattern: str, rel: str) -> bool:
    """filepath.Match: `*` and `?` never cross a `/`."""
    pattern_parts, parts = pattern.split("/"), rel.split("/")
    return len(pattern_parts) == len(parts) and all(
        fnmatch.fnmatchcase(p, q) for q, p in zip(pattern_parts, parts, strict=True)
    )


def resolve_sources(root: str, sources: list[str], in_context: bool) -> list[SourceFile]:
    """COPY/ADD sources under `root` (the context, or a stage's rootfs for --from), with their hashes.

    Raises ContextError with the builder's message (the caller prefixes "COPY failed: ")."""
    found: list[SourceFile] = []
    for orig in sources:
        name = orig.lstrip("/")
        name = name.removeprefix("./")
        cleaned = posixpath.normpath(name) if name else "."
        if in_context and (cleaned == ".." or cleaned.startswith("../")):
            raise ContextError(f"forbidden path outside the build context: {orig} ()")
        if has_wildcards(cleaned):
            for top, dirs, files in os.walk(root):
                dirs.sort()
                for entry in sorted(dirs + files):
                    full = os.path.join(top, entry)
                    rel = os.path.relpath(full, root)
                    if _match(cleaned, rel):
                        real = _follow(root, rel)
                        if real is None:
                            raise ContextError(f"stat {rel}: file does not exist")
                        found.append(SourceFile(real, rel, hash_source(real, rel)))
            continue
        # a named source that is a symlink is followed (within the root), as dockerd stats it
        path = _follow(root, cleaned) if cleaned != "." else root
        if path is None or not os.path.lexists(path):
            message = f"stat {cleaned}: file does not exist"
            if in_context:
                message = f"file not found in build context or excluded by .dockerignore: {message}"
            raise ContextError(message)
        found.append(SourceFile(path, cleaned, hash_source(path, cleaned)))
    if not found:
        raise ContextError("no source files were specified")
    return found


def _follow(root: str, rel: str) -> str | None:
    """The real path of `rel` with its links followed inside `root` (as dockerd's FollowSymlinkInScope):
    a link to /etc/shadow names the root's etc/shadow, never the host's. None when that is missing."""
    try:
        with RootDir(root) as scope:
            return scope.resolve(rel)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise ContextError(f"stat {rel}: {e.strerror or e}") from None


def source_hash(files: list[SourceFile]) -> str:
    if len(files) == 1:
        return files[0].hash
    return hash_strings("multi", [f.hash for f in files])


# --------------------------------------------------------------------------------------------- the tar

_XZ_MAGIC = b"\xfd7zXZ\x00"


def _open_decompressed(path: Path, head: bytes) -> BinaryIO:
    """The context as a plain tar stream, whatever compression the client chose (as DecompressStream)."""
    if head.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if head.startswith(_XZ_MAGIC):
        return lzma.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _reason(e: Exception) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e)


class BuildContext:
    """The unpacked context in a scratch directory; `close` removes it."""

    def __init__(self, scratch_parent: Path) -> None:
        scratch_parent.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="build-", dir=scratch_parent))
        self.root = str(self.scratch / "context")
        os.mkdir(self.root, 0o755)

    def extract(self, stream: BinaryIO) -> None:
        """Unpack the context tar (plain, gzip, bzip2 or xz); a zero-length body is an empty context."""
        head = stream.read(len(_XZ_MAGIC))
        if not head:
            return
        raw, spooled = self.scratch / "context.raw", self.scratch / "context.tar"
        try:
            with open(raw, "wb") as out:
                out.write(head)
                shutil.copyfileobj(stream, out, _CHUNK)
            with _open_decompressed(raw, head) as source, open(spooled, "wb") as out:
                try:
                    shutil.copyfileobj(source, out, _CHUNK)
                except (EOFError, zlib.error, lzma.LZMAError, OSError) as e:  # (bz2 and gzip: OSError)
                    raise ContextError(f"failed to read the build context: {e}", 400) from None
                # The docker CLI's tar for a Dockerfile from outside the context ends right after the
                # last file's data (no padding, no end-of-archive blocks): Go's reader takes that,
                # tarfile wants the blocks; zero blocks after a complete tar are harmless.
                out.write(b"\0" * (-out.tell() % tarfile.BLOCKSIZE + 2 * tarfile.BLOCKSIZE))
            raw.unlink()
            # unpacked as if the context were `/` (dockerd unpacks it chrooted there): its links, even
            # to the host's paths, and hard links through them stay inside; no device nodes
            with tarfile.open(spooled, "r:") as archive, RootDir(self.root) as scope:
                untar(archive, scope, "/", UntarOptions(same_owner=os.geteuid() == 0, devices=False))
        except tarfile.TarError as e:
            raise ContextError(f"failed to read the build context: {e}", 400) from None
        except (OSError, ExtractError) as e:
            raise ContextError(f"failed to read the build context: {_reason(e)}", 400) from None
        finally:
            raw.unlink(missing_ok=True)
            spooled.unlink(missing_ok=True)

    def read_dockerfile(self, name: str) -> tuple[str, str]:
        """(the Dockerfile's text, the name it was found under); Docker's fallback to `dockerfile`."""
        name = name or DEFAULT_DOCKERFILE
        data = self._read(name)
        if data is None:
            if name == DEFAULT_DOCKERFILE and self._read(name.lower()) is not None:
                return self.read_dockerfile(name.lower())
            raise ContextError(f"Cannot locate specified Dockerfile: {name}")
        if not data:
            raise ContextError(f"the Dockerfile ({name}) cannot be empty", 400)
        self._remove_ignored(name)
        return data.decode("utf-8", errors="replace"), name

    def _clean(self, rel: str) -> str:
        cleaned = posixpath.normpath(rel.lstrip("/"))
        if cleaned == ".." or cleaned.startswith("../"):
            raise ContextError(f"forbidden path outside the build context: {rel} ()")
        return cleaned

    def _read(self, rel: str) -> bytes | None:
        """A regular file of the context (its links followed inside the context), None if there is none."""
        cleaned = self._clean(rel)
        with RootDir(self.root) as scope:
            try:
                fd = scope.open(cleaned)
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as e:
                raise ContextError(f"reading {rel} from the build context: {e.strerror or e}", 400) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            with os.fdopen(os.open(fd_path(fd), os.O_RDONLY | os.O_CLOEXEC), "rb") as f:
                return f.read()
        finally:
            os.close(fd)

    def _remove_ignored(self, dockerfile: str) -> None:
        """As dockerd: the Dockerfile and .dockerignore leave the context when .dockerignore names them."""
        ignore = self._read(".dockerignore")
        if ignore is None:
            return
        matcher = PatternMatcher(read_patterns(ignore.decode("utf-8", errors="replace")))
        for name in (".dockerignore", dockerfile):
            if matcher.matches(name):
                with RootDir(self.root) as scope, scope.parent_of(self._clean(name)) as (dirfd, base):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(base, dir_fd=dirfd)

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
