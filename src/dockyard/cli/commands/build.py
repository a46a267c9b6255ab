"""build: the context directory tarred here (honouring .dockerignore), sent to POST /build, and the
classic builder's stream printed as the docker CLI prints it."""

from __future__ import annotations

import os
import sys

from ..client import ApiClient
from ..parser import CommandParser
from ..progress import display_stream, json_lines
from . import CommandSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

SUMMARY = "Build an image from a Dockerfile"


def configure(spec: CommandSpec) -> CommandParser:
    p = CommandParser(spec.name, f"dockyard {spec.name} [OPTIONS] PATH | -", SUMMARY)
    p.add_argument(
        "--build-arg", metavar="list", action="append", default=[], help="Set build-time variables"
    )
    p.add_argument(
        "-f", "--file", metavar="string", help="Name of the Dockerfile (Default is 'PATH/Dockerfile')"
    )
    p.add_argument("--force-rm", action="store_true", help="Always remove intermediate containers")
    p.add_argument("--label", metavar="list", action="append", default=[], help="Set metadata for an image")
    p.add_argument("--network", metavar="string", default="default", help="Set the networking mode for RUN")
    p.add_argument("--no-cache", action="store_true", help="Do not use cache when building the image")
    p.add_argument("--platform", metavar="string", help="Set platform if server is multi-platform capable")
    p.add_argument("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    p.add_argument("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID")
    p.add_argument(
        "--rm", metavar="bool", default="true", help="Remove intermediate containers after a successful build"
    )
    p.add_argument(
        "-t",
        "--tag",
        metavar="list",
        action="append",
        default=[],
        help="Name and optionally a tag (name:tag)",
    )
    p.add_argument("--target", metavar="string", help="Set the target build stage to build.")
    p.add_argument("context", metavar="PATH | -")
    return p


def _fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def _build_args(values: list[str]) -> dict[str, str | None]:
    """KEY=value, or KEY alone taking the value from the environment (unset: sent as null)."""
    out: dict[str, str | None] = {}
    for value in values:
        key, sep, val = value.partition("=")
        out[key] = val if sep else os.environ.get(key)
    return out


def _labels(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        key, _, val = value.partition("=")
        out[key] = val
    return out


def _context_tar(root: str, dockerfile: str, out: BinaryIO) -> str:
    """Tar the context into `out`; returns the Dockerfile's name inside it. As the docker CLI: files
    .dockerignore excludes stay out, except the Dockerfile and .dockerignore themselves (the daemon
    drops them when they are excluded); a Dockerfile outside the context is added under a random name."""
    import secrets
    import tarfile

    from ...build.dockerignore import PatternMatcher, read_patterns

    patterns: list[str] = []
    ignore = os.path.join(root, ".dockerignore")
    if os.path.isfile(ignore):
        with open(ignore, encoding="utf-8", errors="replace") as f:
            patterns = read_patterns(f.read())
    matcher = PatternMatcher(patterns)
    real_root = os.path.realpath(root)
    real_dockerfile = os.path.realpath(dockerfile)
    inside = real_dockerfile.startswith(real_root + os.sep)
    name = os.path.relpath(real_dockerfile, real_root) if inside else f".dockerfile.{secrets.token_hex(10)}"
    keep = {".dockerignore", name}

    def info(path: str, arcname: str) -> tarfile.TarInfo:
        entry = archive.gettarinfo(path, arcname)
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = ""
        return entry

    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for top, dirs, files in os.walk(real_root):
            dirs.sort()
            rel_top = os.path.relpath(top, real_root)
            kept_dirs = []
            for d in dirs:
                rel = d if rel_top == "." else f"{rel_top}/{d}"
                excluded = matcher.matches(rel)
                if excluded and not matcher.exclusions:
                    continue  # nothing below can come back
                kept_dirs.append(d)
                if not excluded:
                    archive.addfile(info(os.path.join(top, d), rel))
            dirs[:] = kept_dirs
            for f in sorted(files):
                rel = f if rel_top == "." else f"{rel_top}/{f}"
                if matcher.matches(rel) and rel not in keep:
                    continue
                path = os.path.join(top, f)
                entry = info(path, rel)
                if entry.isreg():
                    with open(path, "rb") as data:
                        archive.addfile(entry, data)
                elif entry.issym() or entry.isdir() or entry.isfifo():
                    archive.addfile(entry)
        if not inside:
            archive.addfile(info(real_dockerfile, name), open(real_dockerfile, "rb"))
    return name


def _is_tar(body: BinaryIO) -> bool:
    import tarfile

    body.seek(0)
    try:
        with tarfile.open(fileobj=body, mode="r:*"):
            return True
    except tarfile.TarError:
        return False
    finally:
        body.seek(0, os.SEEK_END)


def _wrap_dockerfile(body: BinaryIO) -> str:
    """A Dockerfile given on stdin becomes a one-file context, as the docker CLI wraps it."""
    import io
    import secrets
    import tarfile

    body.seek(0)
    data = body.read()
    body.seek(0)
    body.truncate()
    name = f".dockerfile.{secrets.token_hex(10)}"
    with tarfile.open(fileobj=body, mode="w") as archive:
        entry = tarfile.TarInfo(name)
        entry.size = len(data)
        entry.mode = 0o600
        archive.addfile(entry, io.BytesIO(data))
    return name


def run(args: Any, client: ApiClient) -> int:
    import tempfile

    from ...units import human_size

    stdin_context = args.context == "-"
    body: BinaryIO = tempfile.TemporaryFile()
    dockerfile_name = ""
    try:
        if stdin_context:
            # a tar (or a bare Dockerfile, which the daemon takes as the whole context) from stdin
            while chunk := sys.stdin.buffer.read(1 << 20):
                body.write(chunk)
            dockerfile_name = args.file or ""
            if not _is_tar(body):
                dockerfile_name = _wrap_dockerfile(body)
        else:
            root = args.context
            if not os.path.isdir(root):
                return _fail(f'unable to prepare context: path "{root}" not found')
            dockerfile = args.file or os.path.join(root, "Dockerfile")
            if args.file and not os.path.isabs(args.file) and not os.path.exists(args.file):
                dockerfile = os.path.join(root, args.file)
            if not os.path.lexists(dockerfile):
                return _fail(
                    "unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                    f"lstat {os.path.abspath(dockerfile)}: no such file or directory"
                )
            dockerfile_name = _context_tar(root, dockerfile, body)
        size = body.tell()
        body.seek(0)
        if not args.quiet:
            print(f"Sending build context to Docker daemon  {human_size(size)}")
            sys.stdout.flush()
        query: list[tuple[str, Any]] = [("t", tag) for tag in args.tag]
        query += [
            ("dockerfile", dockerfile_name or None),
            ("q", args.quiet),
            ("nocache", args.no_cache),
            ("pull", args.pull),
            ("target", args.target),
            ("platform", args.platform),
            ("rm", "0" if args.rm.lower() in ("false", "0") else "1"),
            ("forcerm", args.force_rm),
            ("networkmode", args.network),
            ("version", "1"),
        ]
        if args.build_arg:
            query.append(("buildargs", _build_args(args.build_arg)))
        if args.label:
            query.append(("labels", _labels(args.label)))
        response = client.send("POST", "/build", query, body=body)
    finally:
        body.close()
    failure: dict[str, Any] = {}
    quiet_lines: list[str] = []

    def messages() -> Any:
        for message in json_lines(response.iter_lines()):
            if message.get("errorDetail") or message.get("error"):
                failure.update(message)
                return
            if args.quiet:
                if "stream" in message:
                    quiet_lines.append(message["stream"])
                continue
            yield message

    display_stream(messages())
    if failure:
        if args.quiet:
            sys.stderr.write("".join(quiet_lines))
        detail = failure.get("errorDetail") or {}
        return _fail(detail.get("message") or failure.get("error") or "", detail.get("code") or 1)
    if args.quiet:
        sys.stdout.write("".join(quiet_lines))
    return 0
