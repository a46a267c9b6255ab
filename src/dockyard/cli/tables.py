"""Tables and relative times, laid out as the docker CLI prints them."""

from __future__ import annotations

import time


def table(rows: list[list[str]]) -> str:
    """Columns as the docker CLI's tabwriter lays them out: 3 spaces of padding, at least 10 wide."""
    widths = [max(10, max(len(row[i]) for row in rows) + 3) for i in range(len(rows[0]))]
    return "\n".join("".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def ago(timestamp: int) -> str:
    """Docker's "3 minutes ago" (go-units HumanDuration)."""
    seconds = max(0, time.time() - timestamp)
    if seconds < 1:
        return "Less than a second ago"
    if seconds < 60:
        return f"{int(seconds)} seconds ago" if int(seconds) != 1 else "1 second ago"
    minutes = seconds / 60
    if minutes < 60:
        return "About a minute ago" if int(minutes) == 1 else f"{int(minutes)} minutes ago"
    hours = minutes / 60
    if round(hours) == 1:
        return "About an hour ago"
    if hours < 48:
        return f"{round(hours)} hours ago"
    days = hours / 24
    if days < 7 * 2:
        return f"{int(days)} days ago"
    if days < 30 * 2:
        return f"{int(days / 7)} weeks ago"
    if days < 365 * 2:
        return f"{int(days / 30)} months ago"
    return f"{int(days / 365)} years ago"
