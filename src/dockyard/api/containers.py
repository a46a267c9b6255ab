"""Container routes: create, start, wait, stop, kill, remove, inspect, list, logs."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from ..containers.service import ContainerError
from ..logs.jsonfile import format_time
from ..units import parse_time
from .errors import ApiError, BadRequest, NotModified
from .http import json_response, query_bool, query_filters, query_int
from .routing import Route, daemon_of

log = logging.getLogger("dockyard.api")


def _api_error(error: ContainerError) -> ApiError:
    if error.status == 304:
        return NotModified(str(error))
    return ApiError(str(error), error.status)


async def create(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("invalid JSON body") from None
    if not isinstance(body, dict):
        raise BadRequest("invalid JSON body")
    daemon = daemon_of(request)
    try:
        container_id, warnings = daemon.containers.create(request.query.get("name", ""), body)
    except ContainerError as e:
        raise _api_error(e) from None
    return json_response({"Id": container_id, "Warnings": warnings or []}, 201)


async def start(request: web.Request) -> web.Response:
    try:
        await daemon_of(request).containers.start(request.match_info["id"])
    except ContainerError as e:
        raise _api_error(e) from None
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    service = daemon_of(request).containers
    try:
        service.get(request.match_info["id"])
    except ContainerError as e:
        raise _api_error(e) from None
    # Headers first, as dockerd does: the CLI waits for them before it starts the container.
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        code = await service.wait(request.match_info["id"], request.query.get("condition", ""))
        body: dict = {"StatusCode": code, "Error": None}
    except ContainerError as e:
        body = {"StatusCode": -1, "Error": {"Message": str(e)}}
    await response.write((json.dumps(body) + "\n").encode())
    await response.write_eof()
    return response


async def stop(request: web.Request) -> web.Response:
    try:
        await daemon_of(request).containers.stop(request.match_info["id"], query_int(request, "t"))
    except ContainerError as e:
        raise _api_error(e) from None
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    service = daemon_of(request).containers
    try:
        try:
            await service.stop(request.match_info["id"], query_int(request, "t"))
        except ContainerError as e:
            if e.status != 304:
                raise
        await service.start(request.match_info["id"])
    except ContainerError as e:
        raise _api_error(e) from None
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    try:
        await daemon_of(request).containers.kill(request.match_info["id"], request.query.get("signal"))
    except ContainerError as e:
        raise _api_error(e) from None
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    try:
        await daemon_of(request).containers.remove(request.match_info["id"], query_bool(request, "force"))
    except ContainerError as e:
        raise _api_error(e) from None
    return web.Response(status=204)


async def inspect(request: web.Request) -> web.Response:
    try:
        return json_response(daemon_of(request).containers.inspect(request.match_info["id"]))
    except ContainerError as e:
        raise _api_error(e) from None


async def list_containers(request: web.Request) -> web.Response:
    service = daemon_of(request).containers
    result = service.list(query_bool(request, "all"), query_filters(request))
    limit = query_int(request, "limit")
    if limit is not None and limit > 0:
        result = result[:limit]
    return json_response(result)


def _time_param(request: web.Request, name: str) -> float | None:
    value = request.query.get(name, "")
    if value in ("", "0"):
        return None
    try:
        return parse_time(value, __import__("time").time())
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {value}") from None


async def logs(request: web.Request) -> web.StreamResponse:
    service = daemon_of(request).containers
    try:
        c = service.get(request.match_info["id"])
    except ContainerError as e:
        raise _api_error(e) from None
    stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
    if not stdout and not stderr:
        raise BadRequest("Bad parameters: you must choose at least one stream")
    tail_text = request.query.get("tail", "all")
    tail: int | None = None
    if tail_text not in ("", "all"):
        try:
            tail = max(0, int(tail_text))
        except ValueError:
            tail = None
    timestamps = query_bool(request, "timestamps")
    tty = bool(c.config.get("Tty"))
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "application/vnd.docker.raw-stream"
            if tty
            else "application/vnd.docker.multiplexed-stream"
        },
    )
    await response.prepare(request)
    try:
        async for stream, ns, data in service.logs(
            c.id,
            follow=query_bool(request, "follow"),
            tail=tail,
            since=_time_param(request, "since"),
            until=_time_param(request, "until"),
            stdout=stdout,
            stderr=stderr,
        ):
            if timestamps:
                data = format_time(ns).encode() + b" " + data
            if tty:
                await response.write(data)
            else:
                header = bytes([1 if stream == "stdout" else 2, 0, 0, 0]) + len(data).to_bytes(4, "big")
                await response.write(header + data)
    except (ConnectionResetError, ConnectionError):
        return response
    await response.write_eof()
    return response


ROUTES = [
    Route("POST", "/containers/create", create),
    Route("GET", "/containers/json", list_containers),
    Route("POST", "/containers/{id}/start", start),
    Route("POST", "/containers/{id}/wait", wait),
    Route("POST", "/containers/{id}/stop", stop),
    Route("POST", "/containers/{id}/restart", restart),
    Route("POST", "/containers/{id}/kill", kill),
    Route("DELETE", "/containers/{id}", remove),
    Route("GET", "/containers/{id}/json", inspect),
    Route("GET", "/containers/{id}/logs", logs),
]
