"""A container's log driver as dockerd 20.10 takes it (`HostConfig.LogConfig`).

At create (`merge_and_verify`, dockerd's mergeAndVerifyLogConfig): an empty Type is the daemon's driver
(with the daemon's options beneath the container's), then logger.ValidateLogOpts: `mode`,
`max-buffer-size`, the driver registered (here json-file and none; anything else is
`logger: no log driver named 'x' is registered`, 400), and the driver's own option names (json-file:
`unknown log opt 'x' for json-file log driver`). At start (`open_options`), json-file's constructor reads
the values (`max-size` in go-units' decimal sizes, `max-file`, `compress`); its error is the start's:
`failed to initialize logging driver: ...`. `none` keeps no log, and `logs` refuses it (`readable`: 501
`configured logging driver does not support reading`).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["LogConfigError", "merge_and_verify", "open_options", "readable"]

REGISTERED = ("json-file", "none")
JSON_FILE_OPTS = frozenset(
    ("max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag")
)
BUILTIN_OPTS = frozenset(("mode", "max-buffer-size"))
_SIZE = re.compile(r"^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")  # go-units 0.4's sizeRegex
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}
_BINARY = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class LogConfigError(ValueError):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _parse_size(text: str, units: dict[str, int]) -> int:
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * units.get((m.group(3) or "").lower(), 1))


def merge_and_verify(
    log_config: dict[str, Any] | None,
    default_type: str = "json-file",
    default_opts: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The LogConfig dockerd stores at create; raises LogConfigError (400) with its text."""
    given = log_config or {}
    kind = str(given.get("Type") or "") or default_type
    opts = {str(k): str(v) for k, v in (given.get("Config") or {}).items()}
    if kind == default_type:
        for key, value in (default_opts or {}).items():
            opts.setdefault(key, value)
    if kind != "none":
        mode = opts.get("mode", "")
        if mode not in ("", "blocking", "non-blocking"):
            raise LogConfigError(f"logger: logging mode not supported: {mode}")
        if "max-buffer-size" in opts:
            if mode != "non-blocking":
                raise LogConfigError(
                    "logger: max-buffer-size option is only supported with 'mode=non-blocking'"
                )
            try:
                _parse_size(opts["max-buffer-size"], _BINARY)
            except ValueError as e:
                raise LogConfigError(f"error parsing option max-buffer-size: {e}") from None
        if kind not in REGISTERED:
            raise LogConfigError(f"logger: no log driver named '{kind}' is registered")
        for key in opts:
            if key not in BUILTIN_OPTS and key not in JSON_FILE_OPTS:
                raise LogConfigError(f"unknown log opt '{key}' for json-file log driver")
    return {"Type": kind, "Config": opts}


def _atoi(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError(f'strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def open_options(log_config: dict[str, Any] | None) -> tuple[bool, int | None, int]:
    """At start: (keeps a log, max size in bytes or None, max files), as json-file's New reads them;
    LogConfigError (500) `failed to initialize logging driver: ...` for a value it refuses."""
    config = log_config or {}
    if config.get("Type") == "none":
        return False, None, 1
    opts = config.get("Config") or {}
    try:
        size: int | None = None
        if "max-size" in opts:
            size = _parse_size(str(opts["max-size"]), _DECIMAL)
            if size <= 0:
                raise ValueError("max-size must be a positive number")
        files = 1
        if "max-file" in opts:
            files = _atoi(str(opts["max-file"]))
            if files < 1:
                raise ValueError("max-file cannot be less than 1")
        if "compress" in opts:
            value = str(opts["compress"])
            if value not in _TRUE + _FALSE:
                raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
            if value in _TRUE and (files == 1 or size is None):
                raise ValueError(
                    "compress cannot be true when max-file is less than 2 or max-size is not set"
                )
    except ValueError as e:
        raise LogConfigError(f"failed to initialize logging driver: {e}", 500) from None
    return True, size, files


def readable(log_config: dict[str, Any] | None) -> None:
    """dockerd's ContainerLogs refusal for a driver that keeps nothing to read (501)."""
    if (log_config or {}).get("Type") == "none":
        raise LogConfigError("configured logging driver does not support reading", 501)
