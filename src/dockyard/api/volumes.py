"""Volume routes: list, create, inspect, remove, prune."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import API_VERSION
from ..volumes import VolumeError
from .errors import ApiError, BadRequest
from .http import json_body, json_response, query_bool, query_filters
from .routing import Route, daemon_of


def _version(request: web.Request) -> tuple[int, ...]:
    requested = request.match_info.get("api_version")
    text = requested[1:] if requested else API_VERSION  # unprefixed: the newest we speak
    return tuple(int(p) for p in text.split("."))


def _error(e: VolumeError) -> ApiError:
    return ApiError(str(e), e.status)


def _str_map(body: dict[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(f"invalid {key}: expected an object of strings")
    return dict(value)


async def list_volumes(request: web.Request) -> web.Response:
    service = daemon_of(request).volumes
    try:
        volumes = service.list(query_filters(request))
    except VolumeError as e:
        raise _error(e) from None
    return json_response({"Volumes": [v.to_api() for v in volumes], "Warnings": None})


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = body.get("Name") or ""
    if not isinstance(name, str):
        raise BadRequest("invalid Name: expected a string")
    service = daemon_of(request).volumes
    try:
        volume, _ = service.create(
            name, body.get("Driver") or "", _str_map(body, "Labels"), _str_map(body, "DriverOpts")
        )
    except VolumeError as e:
        raise _error(e) from None
    return json_response(volume.to_api(), 201)


async def inspect(request: web.Request) -> web.Response:
    try:
        return json_response(daemon_of(request).volumes.inspect(request.match_info["name"]))
    except VolumeError as e:
        raise _error(e) from None


async def remove(request: web.Request) -> web.Response:
    service = daemon_of(request).volumes
    try:
        service.remove(request.match_info["name"], force=query_bool(request, "force"))
    except VolumeError as e:
        raise _error(e) from None
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    filters = query_filters(request)
    # as dockerd: API 1.42 made prune take anonymous volumes only; older clients prune every unused one
    if _version(request) < (1, 42) and "all" not in filters:
        filters["all"] = ["true"]
    service = daemon_of(request).volumes
    try:
        return json_response(service.prune(filters))
    except VolumeError as e:
        raise _error(e) from None


ROUTES = [
    Route("GET", "/volumes", list_volumes),
    Route("POST", "/volumes/create", create),
    Route("POST", "/volumes/prune", prune),
    Route("GET", "/volumes/{name}", inspect),
    Route("DELETE", "/volumes/{name}", remove),
]
