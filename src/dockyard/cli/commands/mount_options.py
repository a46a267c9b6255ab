"""The docker CLI's readings of `-v` and `--mount` (pure; the unit tests hold them to its error texts).

`-v` is read as the compose volume spec the docker CLI uses, only to tell an anonymous volume (`/data`)
from a source:target pair and a host path from a volume name; the daemon judges the rest of the spec.
`--mount` is CSV of key=value fields, turned into the API's Mount object.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_END = "\0"


def _windows_drive(buffer: list[str], char: str) -> bool:
    return char == ":" and len(buffer) == 1 and buffer[0].isascii() and buffer[0].isalpha()


def _file_path(source: str) -> bool:
    if source in (".", ".."):
        return True
    if source[0] in "./~" or source.startswith("\\\\"):
        return True
    return len(source) > 1 and _windows_drive([source[0]], source[1])


def parse_volume(spec: str) -> tuple[str, bool]:
    """(source, is a bind) of a `-v` spec; source "" for an anonymous volume. ValueError with the CLI's
    text for what it refuses itself (an empty spec, an empty section between colons)."""
    if not spec:
        raise ValueError("invalid empty volume spec")
    if len(spec) <= 2:
        return "", False
    source = target = ""
    buffer: list[str] = []
    for char in spec + _END:
        if _windows_drive(buffer, char):
            buffer.append(char)
        elif char in (":", _END):
            text = "".join(buffer)
            if not buffer:
                raise ValueError(f"invalid spec: {spec}: empty section between colons")
            if not source and char == _END:
                target = text
            elif not source:
                source = text
            elif not target:
                target = text
            buffer = []
        else:
            buffer.append(char)
    return source, bool(source) and _file_path(source)


def _csv_fields(value: str) -> list[str]:
    """One line of Go's encoding/csv: fields split on commas, "double quotes" around a field."""
    fields: list[str] = []
    i, n = 0, len(value)
    while True:
        if i < n and value[i] == '"':
            i += 1
            field = []
            while True:
                if i >= n:
                    raise ValueError(
                        f'parse error on line 1, column {n + 1}: extraneous or missing " in quoted-field'
                    )
                if value[i] == '"':
                    if i + 1 < n and value[i + 1] == '"':
                        field.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                field.append(value[i])
                i += 1
            if i < n and value[i] != ",":
                raise ValueError(
                    f'parse error on line 1, column {i + 1}: extraneous or missing " in quoted-field'
                )
            fields.append("".join(field))
        else:
            end = value.find(",", i)
            end = n if end < 0 else end
            field_text = value[i:end]
            if '"' in field_text:
                column = i + field_text.index('"') + 1
                raise ValueError(f'parse error on line 1, column {column}: bare " in non-quoted-field')
            fields.append(field_text)
            i = end
        if i >= n:
            return fields
        i += 1  # the comma
        if i == n:
            fields.append("")
            return fields


def _bool(key: str, value: str) -> bool:
    lowered = value
    if lowered in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if lowered in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f"invalid value for {key}: {value}")


def _ram_in_bytes(key: str, value: str) -> int:
    from ...units import ram_in_bytes

    try:
        return ram_in_bytes(value)
    except ValueError:
        raise ValueError(f"invalid value for {key}: {value}") from None


def _abs_source(value: str) -> str:
    if value == "." or value.startswith("./"):
        return os.path.abspath(value)
    return value


def parse_mount(value: str) -> dict[str, Any]:
    """A `--mount` value as the API's Mount; ValueError with the docker CLI's text."""
    mount: dict[str, Any] = {"Type": "volume"}
    volume: dict[str, Any] | None = None
    bind: dict[str, Any] | None = None
    tmpfs: dict[str, Any] | None = None

    def volume_options() -> dict[str, Any]:
        nonlocal volume
        if volume is None:
            volume = {"DriverConfig": {}}
        return volume

    def bind_options() -> dict[str, Any]:
        nonlocal bind
        if bind is None:
            bind = {}
        return bind

    def tmpfs_options() -> dict[str, Any]:
        nonlocal tmpfs
        if tmpfs is None:
            tmpfs = {}
        return tmpfs

    for field in _csv_fields(value):
        key, eq, val = field.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                mount["ReadOnly"] = True
            elif key == "volume-nocopy":
                volume_options()["NoCopy"] = True
            elif key == "bind-nonrecursive":
                bind_options()["NonRecursive"] = True
            else:
                raise ValueError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "type":
            mount["Type"] = val.lower()
        elif key in ("source", "src"):
            mount["Source"] = _abs_source(val)
        elif key in ("target", "dst", "destination"):
            mount["Target"] = val
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _bool(key, val)
        elif key == "consistency":
            mount["Consistency"] = val.lower()
        elif key == "bind-propagation":
            bind_options()["Propagation"] = val.lower()
        elif key == "bind-nonrecursive":
            bind_options()["NonRecursive"] = _bool(key, val)
        elif key == "volume-nocopy":
            volume_options()["NoCopy"] = _bool(key, val)
        elif key == "volume-label":
            k, _, v = val.partition("=")
            volume_options().setdefault("Labels", {})[k] = v
        elif key == "volume-driver":
            volume_options()["DriverConfig"]["Name"] = val
        elif key == "volume-opt":
            k, _, v = val.partition("=")
            volume_options()["DriverConfig"].setdefault("Options", {})[k] = v
        elif key == "tmpfs-size":
            tmpfs_options()["SizeBytes"] = _ram_in_bytes(key, val)
        elif key == "tmpfs-mode":
            try:
                tmpfs_options()["Mode"] = int(val, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {val}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if not mount.get("Type"):
        raise ValueError("type is required")
    if not mount.get("Target"):
        raise ValueError("target is required")
    for options, prefix, api_key in (
        (volume, "volume", "VolumeOptions"),
        (bind, "bind", "BindOptions"),
        (tmpfs, "tmpfs", "TmpfsOptions"),
    ):
        if options is None:
            continue
        if mount["Type"] != prefix:
            raise ValueError(f"cannot mix '{prefix}-*' options with mount type '{mount['Type']}'")
        mount[api_key] = options
    return mount
