"""Sizes as the docker CLI and daemon print them (go-units), and Docker's time arguments; pure, light to
import (the CLI and the daemon share it)."""

from __future__ import annotations


def human_size(size: float, precision: int = 4) -> str:
    """Decimal units: 3.073MB in progress lines (4 significant digits), 1.98MB in tables (3)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def bytes_size(size: float) -> str:
    """Binary units with 4 significant digits: 23.54GiB (memory)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{units[i]}"


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 0s, 200ms, 1.5s, 1m30s, 1h0m0s."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)

    def trim(value: float) -> str:
        return f"{value:.9f}".rstrip("0").rstrip(".") or "0"

    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("\u00b5s", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + trim(ns / size) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = trim(rest / 10**9)
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{sign}{minutes}m{seconds}s"
    return f"{sign}{seconds}s"


def parse_time(value: str, now: float) -> float:
    """Docker's time arguments: unix seconds (with optional fraction), RFC 3339, or a Go duration ago."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    from datetime import datetime

    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        pass
    units = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    total, number = 0.0, ""
    i = 0
    while i < len(value):
        ch = value[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = value[i : i + 2] if value[i : i + 2] in units else ch
        if unit not in units or not number:
            raise ValueError(f'failed to parse value as time or duration: "{value}"')
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise ValueError(f'failed to parse value as time or duration: "{value}"')
    return now - total


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes, as the docker CLI parses `-m 512m`: binary multiples, an optional `b`/`ib`
    after the unit; raises ValueError with go-units' wording ("invalid size: 'abc'")."""
    sep = max(text.rfind(ch) for ch in "0123456789. ")
    if sep == -1:
        raise ValueError(f"invalid size: '{text}'")
    num, suffix = (text[: sep + 1], text[sep + 1 :]) if text[sep] != " " else (text[:sep], text[sep + 1 :])
    try:
        size = float(num)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{num}": invalid syntax') from None
    if size < 0:
        raise ValueError(f"invalid size: '{text}'")
    if not suffix:
        return int(size)
    lowered = suffix.lower()
    multipliers = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    if len(suffix) > 3:
        raise ValueError(f"invalid suffix: '{suffix}'")
    if lowered == "b":
        return int(size)
    if lowered[0] not in multipliers or (len(lowered) == 2 and lowered[1] != "b"):
        raise ValueError(f"invalid suffix: '{lowered}'")
    if len(lowered) == 3 and lowered[1:] != "ib":
        raise ValueError(f"invalid suffix: '{lowered}'")
    return int(size * multipliers[lowered[0]])
