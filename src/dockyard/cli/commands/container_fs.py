"""diff, commit, cp, export: a container's filesystem from outside, through the Engine API's
`/changes`, `/commit`, `/archive` and `/export`."""

from __future__ import annotations

import os
import sys

from ..client import ApiClient, ApiError
from ..parser import CommandParser
from . import CommandSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

_KINDS = {0: "C", 1: "A", 2: "D"}
_CHUNK = 1 << 16


def configure(spec: CommandSpec) -> CommandParser:
    name = spec.name
    short = name.removeprefix("container ")
    if short == "diff":
        p = CommandParser(
            name,
            f"dockyard {name} CONTAINER",
            "Inspect changes to files or directories on a container's filesystem",
        )
        p.add_argument("container", metavar="CONTAINER")
    elif short == "commit":
        from .run_options import RunParser  # cobra's `--pause=false`

        p = RunParser(
            name,
            f"dockyard {name} [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
            "Create a new image from a container's changes",
        )
        p.add_argument(
            "-a",
            "--author",
            metavar="string",
            help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")',
        )
        p.add_argument(
            "-c",
            "--change",
            metavar="list",
            action="append",
            default=[],
            help="Apply Dockerfile instruction to the created image",
        )
        p.add_argument("-m", "--message", metavar="string", help="Commit message")
        p.add_argument(
            "-p",
            "--pause",
            action="store_true",
            default=True,
            help="Pause container during commit (default true)",
        )
        p.add_argument("container", metavar="CONTAINER")
        p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    elif short == "cp":
        p = CommandParser(
            name,
            f"dockyard {name} [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
            f"\tdockyard {name} [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
            "Copy files/folders between a container and the local filesystem",
        )
        p.add_argument(
            "-a", "--archive", action="store_true", help="Archive mode (copy all uid/gid information)"
        )
        p.add_argument(
            "-L", "--follow-link", action="store_true", help="Always follow symbol link in SRC_PATH"
        )
        p.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output during copy")
        p.add_argument("source", metavar="SRC")
        p.add_argument("dest", metavar="DEST")
    else:  # export
        p = CommandParser(
            name, f"dockyard {name} [OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive"
        )
        p.add_argument("-o", "--output", metavar="string", help="Write to a file, instead of STDOUT")
        p.add_argument("container", metavar="CONTAINER")
    return p


def run(args: Any, client: ApiClient) -> int:
    short = args.command.removeprefix("container ")
    return {"diff": diff, "commit": commit, "cp": cp, "export": export}[short](args, client)


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def diff(args: Any, client: ApiClient) -> int:
    for change in client.get_json(f"/containers/{args.container}/changes") or []:
        print(f"{_KINDS.get(change.get('Kind'), '?')} {change.get('Path')}")
    return 0


def commit(args: Any, client: ApiClient) -> int:
    repo = tag = ""
    if args.reference:
        repo = args.reference
        name_part = repo.rsplit("/", 1)[-1]
        if ":" in name_part and "@" not in repo:
            repo, _, tag = repo.rpartition(":")
    query: list[tuple[str, Any]] = [
        ("container", args.container),
        ("repo", repo),
        ("tag", tag),
        ("comment", args.message or ""),
        ("author", args.author or ""),
        ("pause", "1" if args.pause else "0"),
    ]
    query += [("changes", c) for c in args.change]
    response = client.send("POST", "/commit", query, headers={"Content-Type": "application/json"})
    print(response.json()["Id"])
    return 0


def export(args: Any, client: ApiClient) -> int:
    if not args.output and os.isatty(sys.stdout.fileno()):
        return _fail("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    from .archive import write_stream

    write_stream(client.request("GET", f"/containers/{args.container}/export"), args.output)
    return 0


# --- cp ----------------------------------------------------------------------------------------------


def _split(arg: str) -> tuple[str, str]:
    """CONTAINER:PATH, or ("", PATH) for a local path (one that starts with / or . may hold a colon)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return "", arg
    container, _, path = arg.partition(":")
    return container, path


def cp(args: Any, client: ApiClient) -> int:
    src_container, src = _split(args.source)
    dst_container, dst = _split(args.dest)
    if src_container and dst_container:
        return _fail("copying between containers is not supported")
    if not src_container and not dst_container:
        return _fail("must specify at least one container source")
    if src_container:
        return _copy_from(client, src_container, src, dst, args.follow_link)
    return _copy_to(client, src, dst_container, dst, args.archive, args.follow_link)


def _path_stat(client: ApiClient, container: str, path: str) -> dict[str, Any] | None:
    import base64
    import json

    response = client.request("HEAD", f"/containers/{container}/archive", {"path": path}, check=False)
    # a HEAD answer has no body whatever its headers say: drop the connection rather than read one
    client.close()
    if response.status == 404:
        return None
    if response.status >= 400:
        raise ApiError(response.status, f"Could not stat {path} in container {container}")
    header = response.headers.get("x-docker-container-path-stat", "")
    return json.loads(base64.b64decode(header)) if header else {}


def _is_dir(mode: int) -> bool:
    return bool(mode & (1 << 31))


def _copy_from(client: ApiClient, container: str, src: str, dst: str, follow: bool) -> int:
    import base64
    import json

    if not src:
        return _fail(f"Error: No such container:path: {container}:")
    rebase = ""
    if follow:
        info = _path_stat(client, container, src)
        if info is None:
            return _fail(f"Error: No such container:path: {container}:{src}")
        if info.get("linkTarget"):
            rebase = os.path.basename(src.rstrip("/"))
            src = info["linkTarget"]
    response = client.request("GET", f"/containers/{container}/archive", {"path": src}, check=False)
    if response.status == 404:
        response.read()
        return _fail(f"Error: No such container:path: {container}:{src}")
    if response.status >= 400:
        raise ApiError(response.status, json.loads(response.read() or b"{}").get("message", ""))
    header = response.headers.get("x-docker-container-path-stat", "")
    info = json.loads(base64.b64decode(header)) if header else {}
    if dst == "-":
        out = sys.stdout.buffer
        for chunk in response.iter_chunks():
            out.write(chunk)
        out.flush()
        return 0
    src_is_dir = _is_dir(int(info.get("mode") or 0))
    contents = src_is_dir and (src.endswith("/.") or src == ".")
    root = "." if contents else (os.path.basename(src.rstrip("/")) or ".")
    if os.path.isdir(dst):
        target_dir, new_root = dst, ("." if contents else rebase or root)
    elif os.path.lexists(dst):
        if src_is_dir:
            return _fail(f'Error: cannot copy directory to a file "{dst}"')  # archive.ErrCannotCopyDir
        target_dir, new_root = os.path.dirname(os.path.abspath(dst)), os.path.basename(dst)
    else:
        if dst.endswith("/") and not src_is_dir:
            return _fail(f'Error: destination directory "{dst}" does not exist')
        target_dir = os.path.dirname(os.path.abspath(dst.rstrip("/")))
        if not os.path.isdir(target_dir):
            return _fail(f'Error: destination directory "{target_dir}" must exist')
        new_root = os.path.basename(dst.rstrip("/"))
    _extract(_ChunkReader(response.iter_chunks()), target_dir, root, new_root)
    return 0


class _ChunkReader:
    def __init__(self, chunks: Any) -> None:
        self.chunks = iter(chunks)
        self.buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, b"")
            if not chunk:
                break
            self.buffer += chunk
        if size < 0:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def _rename(name: str, root: str, new_root: str) -> str:
    """An entry's name with its first component `root` replaced by `new_root` ("." drops it)."""
    name = name.lstrip("/")
    if root == "." and (name == "." or name.startswith("./")):
        rest = name[1:].lstrip("/")
    elif name == root or name.startswith(root + "/"):
        rest = name[len(root) :].lstrip("/")
    else:
        rest = name
    if new_root == ".":
        return rest or "."
    return new_root + ("/" + rest if rest else "")


def _extract(stream: BinaryIO, target_dir: str, root: str, new_root: str) -> None:
    """The archive unpacked into `target_dir` (names rebased), owned by whoever runs the CLI, as the
    docker CLI does (it does not lchown), nothing written outside `target_dir`."""
    import tarfile

    base = os.path.realpath(target_dir)
    uid, gid = os.getuid(), os.getgid()

    def place(member: tarfile.TarInfo, _path: str) -> tarfile.TarInfo | None:
        name = _rename(member.name, root, new_root)
        if name == ".":
            return None
        target = os.path.realpath(os.path.join(base, name))
        if target != base and not target.startswith(base + os.sep):
            raise tarfile.OutsideDestinationError(member, target)
        path = os.path.join(base, name)
        if os.path.islink(path) or (os.path.lexists(path) and not member.isdir() and os.path.isdir(path)):
            if os.path.isdir(path) and not os.path.islink(path):
                import shutil

                shutil.rmtree(path)
            else:
                os.unlink(path)
        changes: dict[str, Any] = {"name": name, "uid": uid, "gid": gid, "uname": "", "gname": ""}
        if member.islnk():
            changes["linkname"] = _rename(member.linkname, root, new_root)
        return member.replace(**changes, deep=False)

    with tarfile.open(fileobj=stream, mode="r|*") as archive:
        archive.extractall(base, filter=place)


def _copy_to(client: ApiClient, src: str, container: str, dst: str, archive_mode: bool, follow: bool) -> int:
    query = {"path": "", "copyUIDGID": "1" if archive_mode else None, "noOverwriteDirNonDir": "true"}
    if not dst:
        return _fail(f"Error: No such container:path: {container}:")
    if src == "-":
        query["path"] = dst
        _put(client, container, query, sys.stdin.buffer)
        return 0
    if not os.path.lexists(src):
        return _fail(f"lstat {os.path.abspath(src)}: no such file or directory")
    local = os.path.realpath(src) if follow else src
    src_is_dir = os.path.isdir(local) and not (os.path.islink(local) and not follow)
    contents = src_is_dir and (src.endswith("/.") or src == ".")
    name = "." if contents else os.path.basename(os.path.normpath(src)) or "."
    info = _path_stat(client, container, dst)
    if info is not None and info.get("linkTarget"):
        dst = info["linkTarget"]
        info = _path_stat(client, container, dst)
    if info is not None and _is_dir(int(info.get("mode") or 0)):
        query["path"], entry = dst, name
    elif info is not None:
        if src_is_dir:
            return _fail(f'Error: cannot copy directory to a file "{dst}"')
        query["path"], entry = os.path.dirname(dst.rstrip("/")) or "/", os.path.basename(dst.rstrip("/"))
    else:
        if dst.endswith("/"):
            return _fail(f"Error: No such container:path: {container}:{dst}")
        query["path"], entry = os.path.dirname(dst) or "/", os.path.basename(dst)
        if contents:
            contents = False  # the directory's content lands in the new directory named by dst
    if contents:
        entry = "."
    query["path"] = query["path"] or "/"
    _put_tree(client, container, query, local, entry, follow)
    return 0


def _put(client: ApiClient, container: str, query: dict[str, Any], body: Any) -> None:
    pairs = [(k, v) for k, v in query.items() if v is not None]
    try:
        client.send("PUT", f"/containers/{container}/archive", pairs, body=body).read()
    except ApiError as e:
        if e.status == 404 and e.message.startswith("Could not find the file"):
            raise ApiError(404, e.message) from None
        raise


def _put_tree(
    client: ApiClient, container: str, query: dict[str, Any], local: str, entry: str, follow: bool
) -> None:
    """The local tree as a tar (its root named `entry`) streamed through a pipe from a thread."""
    import tarfile
    import threading

    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            with (
                os.fdopen(write_fd, "wb") as out,
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                tar.dereference = follow and entry != "."
                tar.add(local, arcname=entry)
        except BaseException as e:  # a broken pipe when the daemon refused early: its answer says why
            errors.append(e)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    with os.fdopen(read_fd, "rb") as body:
        _put(client, container, query, body)
    thread.join(timeout=60)
    if errors and not isinstance(errors[0], BrokenPipeError):
        raise errors[0]
