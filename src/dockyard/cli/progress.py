"""Drawing Docker's JSON message streams (pull, push, load) as the docker CLI does.

On a terminal each layer gets a line that is redrawn in place (a bar when the terminal is wider than
110 columns, then the byte counts). Otherwise every status line is printed once, and the lines that
only carry progress (Downloading, Extracting, Pushing) are skipped.
"""

from __future__ import annotations

import json
import sys

from ..units import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, TextIO


class StreamError(Exception):
    """An error message that arrived inside the stream (after the 200)."""


def progress_text(detail: dict[str, Any] | None, width: int) -> str:
    if not detail:
        return ""
    current, total = detail.get("current", 0) or 0, detail.get("total", 0) or 0
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    percentage = min(50, int(current / total * 100) // 2)
    bar = f"[{'=' * percentage}>{' ' * (50 - percentage)}] " if width > 110 else ""
    numbers = f"{human_size(current):>8}/{human_size(total)}" if current <= total else ""
    return bar + numbers


def display_stream(
    messages: Iterable[dict[str, Any]],
    out: TextIO = sys.stdout,
    terminal: bool | None = None,
    aux: list[dict[str, Any]] | None = None,
) -> None:
    """Render messages; raise StreamError on an error message. `aux` collects aux payloads (push)."""
    if terminal is None:
        terminal = out.isatty()
    width = 80
    if terminal:
        import shutil

        width = shutil.get_terminal_size().columns
    lines: dict[str, int] = {}
    for message in messages:
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise StreamError(detail.get("message") or message.get("error"))
        if "aux" in message:
            if aux is not None:
                aux.append(message["aux"])
            continue
        ident = message.get("id", "")
        has_progress = "progressDetail" in message
        diff = 0
        if ident and has_progress:
            if ident not in lines:
                lines[ident] = len(lines)
                if terminal:
                    out.write("\n")
            diff = len(lines) - lines[ident]
            if terminal:
                out.write(f"\x1b[{diff}A")
        else:
            lines = {}
        text = progress_text(message.get("progressDetail"), width)
        if terminal and has_progress:
            out.write("\x1b[2K\r")
            end = "\r"
        elif text:
            continue  # progress-only lines are not drawn without a terminal
        else:
            end = ""
        prefix = f"{ident}: " if ident else ""
        status = message.get("status", "") or message.get("stream", "")
        if terminal and has_progress:
            out.write(f"{prefix}{status} {text}{end}" if text else f"{prefix}{status}{end}")
        elif "stream" in message:
            out.write(message["stream"])
        else:
            out.write(f"{prefix}{status}{end}\n")
        if ident and terminal:
            out.write(f"\x1b[{diff}B")
        out.flush()


def json_lines(chunks: Iterable[bytes]) -> Iterable[dict[str, Any]]:
    for line in chunks:
        line = line.strip()
        if line:
            yield json.loads(line)
