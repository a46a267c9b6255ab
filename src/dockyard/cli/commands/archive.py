"""save, load, import: images to and from tar archives, streamed through the socket in chunks."""

from __future__ import annotations

import os
import sys

from ...reference import InvalidReference, parse_reference
from ..client import ApiClient
from ..parser import CommandParser
from ..progress import StreamError, display_stream, json_lines
from . import CommandSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

SAVE_SUMMARY = "Save one or more images to a tar archive (streamed to STDOUT by default)"
LOAD_SUMMARY = "Load an image from a tar archive or STDIN"
IMPORT_SUMMARY = "Import the contents from a tarball to create a filesystem image"


def configure(spec: CommandSpec) -> CommandParser:
    name = spec.name
    if name in ("save", "image save"):
        p = CommandParser(name, f"dockyard {name} [OPTIONS] IMAGE [IMAGE...]", SAVE_SUMMARY)
        p.add_argument("-o", "--output", metavar="string", help="Write to a file, instead of STDOUT")
        p.add_argument("images", nargs="+", metavar="IMAGE")
    elif name in ("load", "image load"):
        p = CommandParser(name, f"dockyard {name} [OPTIONS]", LOAD_SUMMARY)
        p.add_argument("-i", "--input", metavar="string", help="Read from tar archive file, instead of STDIN")
        p.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")
    else:  # import, image import
        p = CommandParser(name, f"dockyard {name} [OPTIONS] file|URL|- [REPOSITORY[:TAG]]", IMPORT_SUMMARY)
        p.add_argument(
            "-c",
            "--change",
            metavar="list",
            action="append",
            default=[],
            help="Apply Dockerfile instruction to the created image",
        )
        p.add_argument("-m", "--message", metavar="string", help="Set commit message for imported image")
        p.add_argument(
            "--platform", metavar="string", help="Set platform if server is multi-platform capable"
        )
        p.add_argument("source", metavar="file|URL|-")
        p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    return p


def run(args: Any, client: ApiClient) -> int:
    if args.command.endswith("save"):
        return save(args, client)
    if args.command.endswith("load"):
        return load(args, client)
    return import_(args, client)


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def save(args: Any, client: ApiClient) -> int:
    if not args.output and os.isatty(sys.stdout.fileno()):
        return _fail("Cowardly refusing to save to a terminal. Use the -o flag or redirect")
    if args.output:
        directory = os.path.dirname(os.path.normpath(args.output))
        if directory and not os.path.isdir(directory):
            return _fail(f'failed to save image: invalid output path: directory "{directory}" does not exist')
    response = client.send("GET", "/images/get", [("names", name) for name in args.images])
    write_stream(response, args.output)
    return 0


def write_stream(response: Any, output: str | None) -> None:
    """A streamed body to stdout, or into a temporary file beside `output` renamed when whole (a failed
    transfer leaves no half archive)."""
    if not output:
        out = sys.stdout.buffer
        for chunk in response.iter_chunks():
            out.write(chunk)
        out.flush()
        return
    directory = os.path.dirname(os.path.abspath(output))
    temp = os.path.join(directory, f".dockyard_temp_{os.getpid()}")
    try:
        with open(temp, "wb") as f:
            for chunk in response.iter_chunks():
                f.write(chunk)
        os.replace(temp, output)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _show(response: Any, quiet: bool = False) -> int:
    """Draw the daemon's JSON message stream; an error inside it is a one-line failure."""
    if "json" not in response.headers.get("content-type", ""):
        sys.stdout.buffer.write(response.read())
        return 0
    try:
        display_stream(json_lines(response.iter_lines()))
    except StreamError as e:
        return _fail(str(e))
    return 0


def load(args: Any, client: ApiClient) -> int:
    source: BinaryIO
    if args.input:
        try:
            source = open(args.input, "rb")
        except OSError as e:
            return _fail(f"open {args.input}: {e.strerror.lower() if e.strerror else e}")
    else:
        if os.isatty(sys.stdin.fileno()):
            return _fail("requested load from stdin, but stdin is empty")
        source = sys.stdin.buffer
    # As docker: progress bars only on a terminal.
    quiet = args.quiet or not os.isatty(sys.stdout.fileno())
    try:
        response = client.send("POST", "/images/load", [("quiet", "1" if quiet else "0")], body=source)
    finally:
        if args.input:
            source.close()
    return _show(response)


def import_(args: Any, client: ApiClient) -> int:
    if args.reference:
        try:
            parse_reference(args.reference)
        except InvalidReference as e:
            return _fail(str(e))
    source: BinaryIO | None = None
    from_src = "-"
    if args.source == "-":
        source = sys.stdin.buffer
    elif "://" in args.source:
        from_src = args.source  # the daemon fetches it
    else:
        try:
            source = open(args.source, "rb")
        except OSError as e:
            return _fail(f"open {args.source}: {e.strerror.lower() if e.strerror else e}")
    query: list[tuple[str, Any]] = [
        ("fromSrc", from_src),
        ("repo", args.reference or ""),
        ("message", args.message or ""),
        ("platform", args.platform),
    ]
    query += [("changes", change) for change in args.change]
    try:
        response = client.send("POST", "/images/create", query, body=source)
    finally:
        if source is not None and source is not sys.stdin.buffer:
            source.close()
    return _show(response)
