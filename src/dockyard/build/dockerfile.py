"""The Dockerfile parser: lines to instructions, and instructions to stages, with the builder's rules.

Parser directives (`# escape=`, `# syntax=`) are read only before the first other line; a comment is a
line whose first non-blank character is `#`; a line ending in the escape character continues on the
next (comment lines inside a continuation are skipped, blank ones too, with a warning). Each instruction
keeps its original text (`Step 2/5 : RUN ...` shows it) and its arguments as the classic builder splits
them: JSON arrays for the exec forms, whitespace-split words, `KEY=value` pairs (quotes kept until
expansion), or the rest of the line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Dockerfile",
    "DockerfileError",
    "Instruction",
    "Stage",
    "health_config",
    "parse",
    "parse_instruction",
]

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_\.]*$")
_KNOWN_DIRECTIVES = ("escape", "syntax")


class DockerfileError(ValueError):
    """A Dockerfile the builder refuses; the message is the builder's, with its line when it has one."""


class _SyntaxError(DockerfileError):
    """An error of dockerd's first, line-level parser (directives, JSON arrays, name=value pairs): it is
    reported as "failed to parse Dockerfile: ..." without a line, unlike the instruction checks."""


_SYNTAX_PREFIX = "failed to parse Dockerfile: "


@dataclass
class Instruction:
    keyword: str  # lower case: "run", "copy", ...
    args: list[str]
    original: str  # the instruction's text, continuations joined, trimmed
    line: int  # 1-based line where it starts
    flags: list[str] = field(default_factory=list)  # raw "--name=value" words
    json_form: bool = False
    # ONBUILD's inner instruction
    sub: Instruction | None = None

    def __str__(self) -> str:
        return self.original

    def parse_flags(self, allowed: tuple[str, ...]) -> dict[str, str]:
        """The --flags as the classic builder's BFlags reads them (every value a string)."""
        values: dict[str, str] = {}
        for arg in self.flags:
            if not arg.startswith("--"):
                raise DockerfileError(f"Arg should start with -- : {arg}")
            name, sep, value = arg[2:].partition("=")
            if name not in allowed:
                raise DockerfileError(f"Unknown flag: {name}")
            if name in values:
                raise DockerfileError(f"Duplicate flag specified: {name}")
            if not sep:
                raise DockerfileError(f"Missing a value on flag: {name}")
            values[name] = value
        return values


@dataclass
class Stage:
    base_name: str
    name: str  # lower-cased `AS name`, "" when unnamed
    platform: str
    source_code: str  # the FROM line as written
    line: int
    commands: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    stages: list[Stage]
    meta_args: list[Instruction]  # ARGs before the first FROM
    escape: str
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------- lines


class _Directives:
    def __init__(self) -> None:
        self.done = False
        self.seen: set[str] = set()
        self.set_escape("\\")

    def set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise DockerfileError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        e = re.escape(token)
        self.continuation = re.compile(rf"([^{e}]){e}[ \t]*$|^{e}[ \t]*$")

    def check(self, line: str) -> None:
        if self.done:
            return
        match = _DIRECTIVE.match(line)
        if not match or match[1].lower() not in _KNOWN_DIRECTIVES:
            self.done = True
            return
        key = match[1].lower()
        if key in self.seen:
            raise DockerfileError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        if key == "escape":
            self.set_escape(match[2])


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _strip_comment(line: str) -> str:
    return "" if line.startswith("#") else line


def _continued(line: str, d: _Directives) -> tuple[str, bool]:
    """(line without its continuation character, whether it ends the instruction)."""
    if d.continuation.search(line):
        return d.continuation.sub(r"\1", line), False
    return line, True


def _logical_lines(text: str) -> tuple[list[tuple[str, int]], str, list[str]]:
    """The instructions' lines with their first line numbers, the escape token, and warnings."""
    d = _Directives()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if lines:
        lines[0] = lines[0].removeprefix("\ufeff")
    out: list[tuple[str, int]] = []
    warnings: list[str] = []
    i = 0
    while i < len(lines):
        raw = lines[i].rstrip("\r") if lines[i].endswith("\r") else lines[i]
        i += 1
        stripped = raw.lstrip()
        try:
            d.check(stripped)
        except DockerfileError as e:
            raise DockerfileError(_SYNTAX_PREFIX + str(e)) from None
        start = i
        line, ended = _continued(_strip_comment(stripped), d)
        if ended and line == "":
            continue
        empty_continuation = False
        while not ended and i < len(lines):
            raw = lines[i].rstrip("\r") if lines[i].endswith("\r") else lines[i]
            i += 1
            try:
                d.check(raw)
            except DockerfileError as e:
                raise DockerfileError(_SYNTAX_PREFIX + str(e)) from None
            if _is_comment(raw):
                continue
            if not raw.strip():
                empty_continuation = True
                continue
            more, ended = _continued(_strip_comment(raw), d)
            line += more
        if empty_continuation:
            warnings.append("[WARNING]: Empty continuation line found in:\n    " + line)
        out.append((line, start))
    if warnings:
        warnings.append("[WARNING]: Empty continuation lines will become errors in a future release.")
    return out, d.escape, warnings


# --------------------------------------------------------------------------------------------- words


def _split_flags(rest: str) -> tuple[str, list[str]]:
    """Leading `--name=value` words (quotes and backslashes as the builder reads them) and the rest."""
    words: list[str] = []
    pos = 0
    while True:
        while pos < len(rest) and rest[pos].isspace():
            pos += 1
        if not rest.startswith("--", pos):
            return rest[pos:], words
        word = []
        quote = ""
        blank_ok = False
        while pos < len(rest):
            ch = rest[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == "\\" and pos + 1 < len(rest):
                    pos += 1
                    word.append(rest[pos])
                elif ch != "\\":
                    word.append(ch)
                pos += 1
                continue
            if ch.isspace():
                break
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
            elif ch == "\\":
                if pos + 1 < len(rest):
                    pos += 1
                    word.append(rest[pos])
            else:
                word.append(ch)
            pos += 1
        text = "".join(word)
        if text == "--":
            return rest[pos:], words
        if text or blank_ok:
            words.append(text)
        if pos >= len(rest):
            return "", words


def _parse_words(rest: str, escape: str) -> list[str]:
    """Words split on unquoted whitespace, quotes and escapes kept (expansion removes them later)."""
    words: list[str] = []
    word: list[str] = []
    quote = ""
    blank_ok = False
    in_word = False
    i = 0
    while i < len(rest):
        ch = rest[i]
        if not in_word and not quote:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            if ch == escape and quote != "'":
                if i + 1 == len(rest):
                    i += 1
                    continue
                word.append(ch)
                i += 1
                ch = rest[i]
            word.append(ch)
            i += 1
            continue
        if ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            i += 1
            continue
        if ch in ("'", '"'):
            quote = ch
            blank_ok = True
        if ch == escape:
            if i + 1 == len(rest):
                i += 1
                continue
            word.append(ch)
            i += 1
            ch = rest[i]
        word.append(ch)
        i += 1
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def _json_array(rest: str) -> list[str] | None:
    """The exec form, or None when `rest` is not a JSON array (strings only, else an error)."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value, end = json.JSONDecoder().raw_decode(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise _SyntaxError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _name_values(rest: str, keyword: str, escape: str) -> list[str]:
    words = _parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WHITESPACE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _SyntaxError(f"{keyword.upper()} must have two arguments")
        return [parts[0], parts[1]]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise _SyntaxError(
                f"Syntax error - can't find = in {json.dumps(word)}. Must be of the form: name=value"
            )
        key, _, value = word.partition("=")
        out += [key, value]
    return out


_KNOWN = (
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
)


def parse_instruction(line: str, number: int, escape: str = "\\") -> Instruction:
    """One logical line as an instruction; raises DockerfileError (without the line prefix)."""
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    keyword = parts[0].lower()
    rest, flags = _split_flags(parts[1]) if len(parts) == 2 else ("", [])
    rest = rest.strip()
    inst = Instruction(keyword, [], line.strip(), number, flags)
    if keyword in ("add", "copy", "volume"):
        array = _json_array(rest)
        inst.args, inst.json_form = (array, True) if array is not None else (_split_ws(rest), False)
    elif keyword in ("cmd", "entrypoint", "run", "shell"):
        array = _json_array(rest)
        if array is not None:
            inst.args, inst.json_form = array, True
        else:
            inst.args = [rest] if rest else []
    elif keyword in ("env", "label"):
        inst.args = _name_values(rest, keyword, escape)
    elif keyword == "arg":
        inst.args = _parse_words(rest, escape)
    elif keyword == "expose":
        inst.args = sorted(_split_ws(rest))  # as dockerd: the words as written, before any expansion
    elif keyword == "from":
        inst.args = _split_ws(rest)
    elif keyword == "healthcheck":
        match = re.match(r"(\S+)\s*(.*)", rest, re.S)
        if match:
            kind, command = match[1], match[2]
            array = _json_array(command) if command else None
            if array is not None:
                inst.args, inst.json_form = [kind, *array], True
            else:
                inst.args = [kind, command] if command else [kind]
    elif keyword in ("maintainer", "stopsignal", "user", "workdir"):
        inst.args = [rest] if rest else []
    elif keyword == "onbuild":
        if rest:
            inst.sub = parse_instruction(rest, number, escape)
            inst.args = [inst.sub.keyword, *inst.sub.args]
    else:
        inst.args = []
    return inst


def _split_ws(rest: str) -> list[str]:
    return [w for w in _WHITESPACE.split(rest) if w] if rest else []


# --------------------------------------------------------------------------------------------- stages


def _check(inst: Instruction) -> None:
    """The per-instruction argument rules of the builder's instruction parser."""
    k, n = inst.keyword, len(inst.args)
    up = k.upper()
    if k not in _KNOWN:
        raise DockerfileError(f"unknown instruction: {up}")
    if k in ("env", "label"):
        if n == 0:
            raise DockerfileError(f"{up} requires at least one argument")
        if n % 2:
            raise DockerfileError(f"Bad input to {up}, too many arguments")
        if any(not inst.args[i] for i in range(0, n, 2)):
            raise DockerfileError(f"{up} names can not be blank")
    elif k in ("add", "copy"):
        if n < 2:
            raise DockerfileError(
                f"{up} requires at least two arguments, but only one was provided. "
                "Destination could not be determined"
            )
    elif k in ("maintainer", "workdir", "user", "stopsignal"):
        if n != 1:
            raise DockerfileError(f"{up} requires exactly one argument")
    elif k in ("expose", "volume", "arg", "onbuild", "healthcheck"):
        if n == 0:
            raise DockerfileError(f"{up} requires at least one argument")
        if k == "volume" and any(not v.strip() for v in inst.args):
            raise DockerfileError("VOLUME specified can not be an empty string")
        if k == "arg" and any(a.startswith("=") for a in inst.args):
            raise DockerfileError("ARG names can not be blank")
        if k == "onbuild":
            trigger = inst.args[0].upper()
            if trigger == "ONBUILD":
                raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
            if trigger in ("MAINTAINER", "FROM"):
                raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
    elif k == "shell":
        if n == 0:
            raise DockerfileError("SHELL requires at least one argument")
        if not inst.json_form:
            raise DockerfileError("SHELL requires the arguments to be in JSON form")
    if k == "healthcheck":
        health_config(inst)  # flags, type, durations: all refused before the build starts, as dockerd
        return
    allowed = {"add": ("chown", "chmod"), "copy": ("chown", "from", "chmod"), "from": ("platform",)}
    allowed["run"] = ("mount", "network", "security")
    inst.parse_flags(allowed.get(k, ()))


def health_config(inst: Instruction) -> dict[str, Any]:
    """HEALTHCHECK's container.HealthConfig (durations in ns), with the builder's errors."""
    kind = inst.args[0].upper()
    rest = inst.args[1:]
    if kind == "NONE":
        if rest:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}  # (flags are not even read then)
    flags = inst.parse_flags(("interval", "timeout", "start-period", "retries"))
    if kind != "CMD":
        raise DockerfileError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    if not rest:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    check: dict[str, Any] = {"Test": ["CMD", *rest] if inst.json_form else ["CMD-SHELL", *rest]}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod")):
        text = flags.get(flag, "")
        if not text:
            continue
        value = parse_go_duration(text)
        if value < 1_000_000:
            raise DockerfileError(f'Interval "{flag}" cannot be less than 1ms')
        check[key] = value
    if flags.get("retries"):
        text = flags["retries"]
        if not re.fullmatch(r"[+-]?\d+", text):
            raise DockerfileError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
        retries = int(text)
        if not -(2**31) <= retries < 2**31:
            raise DockerfileError(f'strconv.ParseInt: parsing "{text}": value out of range')
        if retries < 1:
            raise DockerfileError(f"--retries must be at least 1 (not {retries})")
        check["Retries"] = retries
    return check


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration in ns, with its error texts ("1m30s", "1.5h", "-2s", "0")."""
    invalid = DockerfileError(f"time: invalid duration {json.dumps(text)}")
    rest, sign = text, 1
    if rest[:1] in ("+", "-"):
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise invalid
    total = 0
    while rest:
        if not (rest[0] == "." or rest[0].isdigit()):
            raise invalid
        match = _DURATION_PART.match(rest)
        assert match is not None  # every group may be empty
        whole, fraction, unit = match[1], match[2], match[3]
        if not whole and not fraction:
            raise invalid
        if not unit:
            raise DockerfileError(f"time: missing unit in duration {json.dumps(text)}")
        if unit not in _DURATION_UNITS:
            raise DockerfileError(f"time: unknown unit {json.dumps(unit)} in duration {json.dumps(text)}")
        size = _DURATION_UNITS[unit]
        total += int(whole or 0) * size
        if fraction:
            total += int(fraction) * size // 10 ** len(fraction)
        if total > 2**63 - 1:
            raise invalid
        rest = rest[match.end() :]
    return sign * total


def _stage(inst: Instruction) -> Stage:
    args = inst.args
    name = ""
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise DockerfileError(
                f'invalid name for build stage: "{args[2]}", '
                "name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise DockerfileError("FROM requires either one or three arguments")
    platform = inst.parse_flags(("platform",)).get("platform", "")
    return Stage(args[0], name, platform, inst.original, inst.line)


def parse(text: str) -> Dockerfile:
    """Parse a whole Dockerfile; errors carry the builder's `dockerfile parse error line N:` prefix."""
    lines, escape, warnings = _logical_lines(text)
    if not lines:
        raise DockerfileError(_SYNTAX_PREFIX + "file with no instructions")
    stages: list[Stage] = []
    meta_args: list[Instruction] = []
    # dockerd's line-level parser reads the whole file before any instruction is checked
    try:
        instructions = [parse_instruction(line, number, escape) for line, number in lines]
    except _SyntaxError as e:
        raise DockerfileError(_SYNTAX_PREFIX + str(e)) from None
    for inst in instructions:
        try:
            if inst.keyword == "from":
                _stage_check_args(inst)
                stages.append(_stage(inst))
                continue
            _check(inst)
        except DockerfileError as e:
            raise DockerfileError(f"dockerfile parse error line {inst.line}: {e}") from None
        if not stages:
            if inst.keyword == "arg":
                meta_args.append(inst)
                continue
            raise DockerfileError("no build stage in current context")
        stages[-1].commands.append(inst)
    return Dockerfile(stages, meta_args, escape, warnings)


def _stage_check_args(inst: Instruction) -> None:
    if not inst.args:
        raise DockerfileError("FROM requires either one or three arguments")
