"""Response helpers shared by the routes: Docker's JSON bodies and query parsing rules."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .errors import BadRequest

FALSE_WORDS = frozenset({"", "0", "no", "false", "none"})


def json_response(data: Any, status: int = 200) -> web.Response:
    # dockerd ends every JSON body with a newline; clients and diff tools expect it.
    return web.Response(
        body=(json.dumps(data, separators=(",", ":")) + "\n").encode(),
        status=status,
        content_type="application/json",
    )


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """dockerd's rule: the parameter is false when absent or one of "", 0, no, false, none."""
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in FALSE_WORDS


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {value!r} is not an integer") from None


def query_filters(request: web.Request) -> dict[str, list[str]]:
    """Filters arrive as JSON, either {"key": {"value": true}} (the CLI) or {"key": ["value"]} (docker-py)."""
    raw = request.query.get("filters", "")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise BadRequest(f"invalid filter '{raw}'") from None
    if not isinstance(data, dict):
        raise BadRequest(f"invalid filter '{raw}'")
    filters: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            filters[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list):
            filters[key] = [str(v) for v in value]
        elif isinstance(value, str):
            filters[key] = [value]
        else:
            raise BadRequest(f"invalid filter '{raw}'")
    return filters


async def json_body(request: web.Request) -> dict[str, Any]:
    """A request's JSON object; none (or only blanks) reads as {}, anything else is a 400."""
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("invalid JSON body") from None
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON body")
    return body


def query_size(request: web.Request) -> tuple[int, int]:
    """A resize's terminal size, `h` and `w`."""
    try:
        return int(request.query.get("h") or 0), int(request.query.get("w") or 0)
    except ValueError:
        raise BadRequest("invalid resize size") from None
