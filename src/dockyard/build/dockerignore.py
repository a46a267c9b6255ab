"""`.dockerignore` patterns, read and matched as Docker does (the CLI filters the context with them; the
daemon only uses them to drop the Dockerfile and .dockerignore themselves).

Kept free of daemon imports: the CLI imports this module.

Rules: `#` starts a comment line; each pattern is trimmed and cleaned (`filepath.Clean`), a leading `/`
dropped; `!` makes an exception. `*` matches within one path segment, `?` one character, `**` any number
of segments, `[...]` a class, `\\` escapes. A pattern also matches every path below a matching
directory (the path's first N segments are tried against an N-segment pattern). The last matching
pattern decides.
"""

from __future__ import annotations

import posixpath
import re

__all__ = ["PatternMatcher", "read_patterns"]


def read_patterns(text: str) -> list[str]:
    out: list[str] = []
    for number, line in enumerate(text.splitlines()):
        if number == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = _clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        out.append("!" + pattern if invert else pattern)
    return out


def _clean(path: str) -> str:
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def _regex(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < len(pattern) and pattern[i] == "*":
                i += 1
                if i < len(pattern) and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= len(pattern) else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch in ".$":
            out.append("\\" + ch)
        elif ch == "\\":
            if i < len(pattern):
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append("\\\\")
        elif ch in "+(){}|^":
            out.append("\\" + ch)
        else:
            out.append(ch)
    out.append("$")
    return re.compile("".join(out), re.S)


class _Pattern:
    def __init__(self, text: str, exclusion: bool) -> None:
        self.text = text
        self.exclusion = exclusion
        self.segments = len(text.split("/"))
        try:
            self.regex = _regex(text)
        except re.error:
            raise ValueError(f"syntax error in pattern: {text}") from None


class PatternMatcher:
    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        self.exclusions = False
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            text = _clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise ValueError('illegal exclusion pattern: "!"')
                text = text[1:]
                self.exclusions = True
            self.patterns.append(_Pattern(text, exclusion))

    def matches(self, path: str) -> bool:
        """Whether `path` (relative, `/`-separated) is excluded."""
        path = _clean(path)
        if path == ".":
            return False
        parent = posixpath.dirname(path) or "."
        parent_parts = parent.split("/")
        matched = False
        for pattern in self.patterns:
            hit = bool(pattern.regex.match(path))
            if not hit and parent != "." and pattern.segments <= len(parent_parts):
                hit = bool(pattern.regex.match("/".join(parent_parts[: pattern.segments])))
            if hit:
                matched = not pattern.exclusion
        return matched
