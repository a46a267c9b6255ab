"""Human-readable sizes as the docker CLI and daemon print them (go-units); pure, light to import."""

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
