"""Request bodies and query values read as dockerd's Go code reads them, with the texts of its errors:
`encoding/json` (EOF, syntax and type errors), `strconv.ParseBool`/`ParseUint` and `filters.FromJSON`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .errors import ApiError, BadRequest

_JSON_KINDS = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}


def json_kind(value: Any) -> str:
    """encoding/json's name for a JSON value's type in its UnmarshalTypeError."""
    return "null" if value is None else _JSON_KINDS.get(type(value), "value")


def syntax_error(raw: str) -> str:
    """encoding/json's text for a body it cannot parse (the common cases of Go's wording)."""
    text = raw.strip()
    if not text:
        return "unexpected end of JSON input"
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        if e.pos >= len(text):
            return "unexpected EOF"
        char = text[e.pos]
        if e.pos == 0 or e.msg.startswith("Expecting value"):
            return f"invalid character {_quote(char)} looking for beginning of value"
        if e.msg.startswith("Extra data"):
            return f"invalid character {_quote(char)} after top-level value"
        if "delimiter" in e.msg:
            return f"invalid character {_quote(char)} after object key:value pair"
        return f"invalid character {_quote(char)} looking for beginning of object key string"
    return ""


def _quote(char: str) -> str:
    return "'\\''" if char == "'" else f"'{char}'"


async def decode_body(request: web.Request, go_type: str) -> dict[str, Any]:
    """`json.NewDecoder(r.Body).Decode(&v)` as dockerd's routers call it: an empty body is `got EOF while
    reading request body`, anything but an object (or null) a 400 with Go's words."""
    raw = (await request.read()).decode("utf-8", errors="replace") if request.can_read_body else ""
    if not raw.strip():
        raise BadRequest("got EOF while reading request body")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise BadRequest(syntax_error(raw)) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"json: cannot unmarshal {json_kind(value)} into Go value of type {go_type}")
    return value


def parse_bool(value: str) -> bool:
    """strconv.ParseBool."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def parse_uint(value: str) -> int:
    """strconv.ParseUint(value, 10, 64)."""
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f'strconv.ParseUint: parsing "{value}": invalid syntax')
    number = int(value)
    if number >= 1 << 64:
        raise ValueError(f'strconv.ParseUint: parsing "{value}": value out of range')
    return number


def filters_from_json(raw: str, status: int) -> dict[str, list[str]]:
    """filters.FromJSON: {"key": {"value": true}} or the legacy {"key": ["value"]}; its error (as the router
    passes it on: 400 where it is wrapped as invalid parameter, else 500)."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise ApiError(syntax_error(raw), status) from None
    if isinstance(data, dict):
        if all(isinstance(v, dict) and all(isinstance(b, bool) for b in v.values()) for v in data.values()):
            return {k: [x for x, on in v.items() if on] for k, v in data.items()}
        if all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values()):
            return {k: list(v) for k, v in data.items()}
        bad = next(
            v
            for v in data.values()
            if not isinstance(v, dict) or not all(isinstance(b, bool) for b in v.values())
        )
        if isinstance(bad, dict):
            wrong = next(b for b in bad.values() if not isinstance(b, bool))
            raise ApiError(f"json: cannot unmarshal {json_kind(wrong)} into Go value of type bool", status)
        raise ApiError(
            f"json: cannot unmarshal {json_kind(bad)} into Go value of type map[string]bool", status
        )
    raise ApiError(
        f"json: cannot unmarshal {json_kind(data)} into Go value of type map[string]map[string]bool", status
    )
