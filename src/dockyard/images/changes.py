"""Dockerfile instructions applied to an image config: what `docker import --change` (and later `commit`)
accept.

Docker parses the changes as Dockerfile lines and allows only the instructions that change the config:
CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR. Words are
split and unquoted as the builder's shell lexer does, and `$VAR` / `${VAR}` (with `:-`, `:+`, `-`, `+`)
expand from the ENV set so far, for the instructions the builder expands.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

__all__ = ["ChangeError", "apply_changes", "container_config", "empty_container_config"]

ALLOWED = frozenset(
    {
        "cmd",
        "entrypoint",
        "env",
        "expose",
        "healthcheck",
        "label",
        "onbuild",
        "stopsignal",
        "user",
        "volume",
        "workdir",
    }
)
# container.Config's JSON fields in Go's declaration order (inspect output and config blobs keep it),
# with whether each is `omitempty`.
_FIELDS: tuple[tuple[str, bool], ...] = (
    ("Hostname", False),
    ("Domainname", False),
    ("User", False),
    ("AttachStdin", False),
    ("AttachStdout", False),
    ("AttachStderr", False),
    ("ExposedPorts", True),
    ("Tty", False),
    ("OpenStdin", False),
    ("StdinOnce", False),
    ("Env", False),
    ("Cmd", False),
    ("Healthcheck", True),
    ("ArgsEscaped", True),
    ("Image", False),
    ("Volumes", False),
    ("WorkingDir", False),
    ("Entrypoint", False),
    ("NetworkDisabled", True),
    ("MacAddress", True),
    ("OnBuild", False),
    ("Labels", False),
    ("StopSignal", True),
    ("StopTimeout", True),
    ("Shell", True),
)
_ZERO: dict[str, Any] = {
    "Hostname": "",
    "Domainname": "",
    "User": "",
    "AttachStdin": False,
    "AttachStdout": False,
    "AttachStderr": False,
    "Tty": False,
    "OpenStdin": False,
    "StdinOnce": False,
    "Image": "",
    "WorkingDir": "",
}
_NAME = re.compile(r"[A-Za-z0-9_]+")
_PORT = re.compile(r"(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


class ChangeError(ValueError):
    """A change that Docker would refuse; the message is Docker's."""


def empty_container_config() -> dict[str, Any]:
    return container_config({})


def container_config(values: dict[str, Any]) -> dict[str, Any]:
    """`values` laid out as Go marshals container.Config: every field in order, omitempty ones only if set."""
    out: dict[str, Any] = {}
    for name, omitempty in _FIELDS:
        value = values.get(name, _ZERO.get(name))
        if omitempty and not value:
            continue
        out[name] = value
    for name, value in values.items():  # fields newer than this table keep their place at the end
        if name not in out and value not in (None, "", False, [], {}):
            out[name] = value
    return out


def apply_changes(changes: list[str], base: dict[str, Any] | None = None) -> dict[str, Any]:
    """Apply each change (one Dockerfile instruction) to `base` and return the new container config."""
    config = dict(base or {})
    cmd_set = False
    for line in _logical_lines(changes):
        instruction, _, rest = line.partition(" ")
        if "\t" in instruction:
            instruction, _, more = instruction.partition("\t")
            rest = more + " " + rest
        keyword = instruction.lower()
        rest = rest.strip()
        if keyword not in ALLOWED:
            raise ChangeError(f"{keyword} is not a valid change command")
        if keyword == "cmd":
            config["Cmd"] = _command(rest)
            cmd_set = True
        elif keyword == "entrypoint":
            config["Entrypoint"] = _command(rest)
            if not cmd_set:  # the builder's rule: a new entrypoint drops an inherited CMD
                config["Cmd"] = None
        elif keyword in ("env", "label"):
            pairs = _name_values(keyword.upper(), rest, _env(config))
            if keyword == "env":
                env = list(config.get("Env") or [])
                for key, value in pairs:
                    env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
                config["Env"] = env
            else:
                config["Labels"] = {**(config.get("Labels") or {}), **dict(pairs)}
        elif keyword == "expose":
            ports = dict(config.get("ExposedPorts") or {})
            for word in _expanded_words(rest, _env(config)):
                ports.update(dict.fromkeys(_ports(word), {}))
            config["ExposedPorts"] = ports
        elif keyword == "user":
            words = _expanded_words(rest, _env(config))
            if not words:
                raise ChangeError("USER requires exactly one argument")
            config["User"] = words[0]
        elif keyword == "volume":
            volumes = dict(config.get("Volumes") or {})
            exec_form = _json_list(rest)
            paths = exec_form if exec_form is not None else _expanded_words(rest, _env(config))
            if not paths:
                raise ChangeError("VOLUME requires at least one argument")
            for path in paths:
                if not path.strip():
                    raise ChangeError("VOLUME specified can not be an empty string")
                volumes[path.strip()] = {}
            config["Volumes"] = volumes
        elif keyword == "workdir":
            words = _expanded_words(rest, _env(config))
            if len(words) != 1:
                raise ChangeError("WORKDIR requires exactly one argument")
            path = words[0]
            if not path.startswith("/"):
                path = posixpath.join("/", config.get("WorkingDir") or "", path)
            path = posixpath.normpath(path)
            config["WorkingDir"] = "/" + path.lstrip(
                "/"
            )  # normpath keeps a leading "//"; Go's Clean does not
        elif keyword == "stopsignal":
            words = _expanded_words(rest, _env(config))
            if len(words) != 1:
                raise ChangeError("STOPSIGNAL requires exactly one argument")
            config["StopSignal"] = _signal(words[0])
        elif keyword == "onbuild":
            trigger = rest.split(None, 1)[0].upper() if rest else ""
            if not trigger:
                raise ChangeError("ONBUILD requires at least one argument")
            if trigger == "ONBUILD":
                raise ChangeError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
            if trigger in ("FROM", "MAINTAINER"):
                raise ChangeError(f"{trigger} isn't allowed as an ONBUILD trigger")
            config["OnBuild"] = [*(config.get("OnBuild") or []), rest]
        else:
            config["Healthcheck"] = _healthcheck(rest)
    return container_config(config)


def _logical_lines(changes: list[str]) -> list[str]:
    """Docker joins the changes with newlines and parses a Dockerfile: comments and blank lines go,
    and a trailing backslash continues a line."""
    lines: list[str] = []
    pending = ""
    for raw in "\n".join(changes).split("\n"):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1]
            continue
        lines.append((pending + stripped).strip())
        pending = ""
    if pending.strip():
        lines.append(pending.strip())
    return lines


def _json_list(text: str) -> list[str] | None:
    """The exec (JSON) form, or None when `text` is not a JSON array of strings (then it is shell form)."""
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _command(text: str) -> list[str] | None:
    exec_form = _json_list(text)
    if exec_form is not None:
        return exec_form
    if not text:
        return None
    return ["/bin/sh", "-c", text]


def _env(config: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _name_values(instruction: str, text: str, env: dict[str, str]) -> list[tuple[str, str]]:
    if not text:
        raise ChangeError(f"{instruction} requires at least one argument")
    words = _split_words(text)
    if "=" not in words[0]:
        # The old form: `ENV key value with spaces`, one variable, the rest of the line its value.
        parts = text.split(None, 1)
        if len(parts) < 2:
            raise ChangeError(f"{instruction} must have two arguments")
        return [(parts[0], _expand(parts[1], env))]
    pairs = []
    for word in words:
        if "=" not in word:
            raise ChangeError(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        key, _, value = word.partition("=")
        key = _expand(key, env)
        if not key:
            raise ChangeError(f"{instruction} names can not be blank")
        pairs.append((key, _expand(value, env)))
        if instruction == "ENV":
            env = {**env, key: pairs[-1][1]}
    return pairs


def _expanded_words(text: str, env: dict[str, str]) -> list[str]:
    return [w for w in (_expand(word, env) for word in _split_words(text)) if w != ""]


def _split_words(text: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes for `_expand` (the builder's parseWords)."""
    words: list[str] = []
    word = ""
    quote = ""
    escaped = False
    for ch in text:
        if escaped:
            word += ch
            escaped = False
        elif ch == "\\" and quote != "'":
            word += ch
            escaped = True
        elif quote:
            word += ch
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            word += ch
            quote = ch
        elif ch.isspace():
            if word:
                words.append(word)
            word = ""
        else:
            word += ch
    if word:
        words.append(word)
    return words


def _expand(word: str, env: dict[str, str]) -> str:
    """Remove quotes and escapes and substitute variables, as the builder's shell lexer does."""
    out: list[str] = []
    i = 0
    quote = ""
    while i < len(word):
        ch = word[i]
        if quote == "'":
            if ch == "'":
                quote = ""
            else:
                out.append(ch)
            i += 1
        elif ch == "\\":
            nxt = word[i + 1 : i + 2]
            if quote == '"' and nxt not in ('"', "\\", "$"):
                out.append(ch)  # inside double quotes only these are escapes
            elif nxt:
                out.append(nxt)
                i += 1
            i += 1
        elif ch == '"':
            quote = "" if quote == '"' else '"'
            i += 1
        elif ch == "'" and not quote:
            quote = "'"
            i += 1
        elif ch == "$":
            value, i = _variable(word, i + 1, env)
            out.append(value)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _variable(word: str, i: int, env: dict[str, str]) -> tuple[str, int]:
    """`$NAME` or `${NAME[:-+]word}` starting after the `$`; returns the value and the next index."""
    if word[i : i + 1] == "{":
        end = word.find("}", i)
        if end < 0:
            raise ChangeError(f"missing '}}' in {word!r}")
        body = word[i + 1 : end]
        match = _NAME.match(body)
        if not match:
            raise ChangeError(f"bad substitution in {word!r}")
        name, modifier = match.group(), body[match.end() :]
        value = env.get(name)
        if modifier.startswith(":-"):
            value = value if value else _expand(modifier[2:], env)
        elif modifier.startswith(":+"):
            value = _expand(modifier[2:], env) if value else ""
        elif modifier.startswith("-"):
            value = value if value is not None else _expand(modifier[1:], env)
        elif modifier.startswith("+"):
            value = _expand(modifier[1:], env) if value is not None else ""
        elif modifier:
            raise ChangeError(f"unsupported modifier ({modifier[:1]}) in substitution")
        return value or "", end + 1
    match = _NAME.match(word, i)
    if not match:
        return "$", i  # a lone `$` stays literal
    return env.get(match.group(), ""), match.end()


def _ports(spec: str) -> list[str]:
    match = _PORT.fullmatch(spec.lower())
    if not match:
        raise ChangeError(f"invalid containerPort: {spec.split('/')[0]}")
    start, end, proto = int(match[1]), int(match[2] or match[1]), match[3] or "tcp"
    if not (0 < start <= 65535 and 0 < end <= 65535 and start <= end):
        raise ChangeError(f"invalid containerPort: {spec.split('/')[0]}")
    return [f"{port}/{proto}" for port in range(start, end + 1)]


def _signal(name: str) -> str:
    upper = name.upper()
    if upper.isdigit() and 0 < int(upper) < 65:
        return name
    if re.fullmatch(r"(SIG)?[A-Z0-9+-]+", upper):
        return name
    raise ChangeError(f"Invalid signal: {name}")


def _duration(flag: str, text: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") in nanoseconds."""
    pos, total = 0, 0.0
    if text == "0":
        return 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            raise ChangeError(f'time: invalid duration "{text}" for flag --{flag}')
        total += float(match[1]) * _DURATION_NS[match[2]]
        pos = match.end()
    if not text:
        raise ChangeError(f'time: invalid duration "" for flag --{flag}')
    return int(total)


def _healthcheck(text: str) -> dict[str, Any]:
    flags: dict[str, str] = {}
    rest = text
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        name, sep, value = flag[2:].partition("=")
        if not sep or name not in ("interval", "timeout", "start-period", "start-interval", "retries"):
            raise ChangeError(f"Unknown flag: {name}")
        flags[name] = value
        rest = rest.lstrip()
    kind, _, args = rest.partition(" ")
    kind, args = kind.upper(), args.strip()
    if kind == "NONE":
        if args or flags:
            raise ChangeError("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise ChangeError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    exec_form = _json_list(args)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", args]
    check: dict[str, Any] = {"Test": test}
    for flag, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        if flag in flags:
            value = _duration(flag, flags[flag])
            if value:
                check[key] = value
    if "retries" in flags:
        try:
            retries = int(flags["retries"])
        except ValueError:
            raise ChangeError(f'strconv.ParseInt: parsing "{flags["retries"]}": invalid syntax') from None
        if retries < 0:
            raise ChangeError("--retries cannot be negative")
        if retries:
            check["Retries"] = retries
    return check
