"""Exec routes: create, start (the connection hijack, or detached), resize, inspect."""

from __future__ import annotations

import logging
import struct

from aiohttp import web

from ..containers.service import ContainerError, ExecStartFailed
from ..runtime import shim_protocol
from .containers import _copy_streams, _hijack
from .errors import ApiError
from .http import json_body, json_response, query_size
from .routing import Route, daemon_of

log = logging.getLogger("dockyard.api")

# how long the end of an exec's stream waits for its exit code to be recorded (normally at once)
END_WAIT = 10.0


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    exec_id = daemon_of(request).containers.exec_create(request.match_info["id"], body)
    return json_response({"Id": exec_id}, 201)


def _start_error_status(message: str) -> int:
    # dockerd: a command that cannot be found or run is the request's fault (400), the rest unknown (500)
    lowered = message.lower()
    causes = ("executable file not found", "no such file or directory", "permission denied")
    return 400 if any(cause in lowered for cause in causes) else 500


async def start(request: web.Request) -> web.StreamResponse:
    """Detached: 200 once the process runs. Otherwise the hijack (101, as attach), the exec's stream (framed
    without a TTY, raw with one), closed once the process has exited and its exit code is recorded. A
    process that cannot be started still gets the 101: dockerd writes its error into the stream."""
    service = daemon_of(request).containers
    exec_id = request.match_info["id"]
    body = await json_body(request)
    record = service.exec_check_start(exec_id)
    if body.get("Detach"):
        try:
            await service.exec_start(exec_id, detach=True)
        except ExecStartFailed as e:
            raise ApiError(str(e), _start_error_status(str(e))) from None
        return web.Response(status=200)
    try:
        # at API 1.41 dockerd says raw-stream here even when the stream is framed (no TTY)
        client = await _hijack(request, "application/vnd.docker.raw-stream")
    except (ConnectionError, RuntimeError):
        return web.Response(status=499)
    try:
        try:
            stream = await service.exec_start(exec_id, detach=False)
        except ContainerError as e:
            text = (str(e) + "\r\n").encode()
            await client.write(text if record.tty else struct.pack(">BxxxI", 1, len(text)) + text)
            return client.response
        assert stream is not None
        reader, writer = stream
        try:
            await _copy_streams(client, reader, writer, record.open_stdin)
        finally:
            writer.close()
        await service.exec_ended(exec_id, END_WAIT)
    except (OSError, shim_protocol.ShimError, ValueError) as e:
        log.debug("exec %s: %s", exec_id, e)
    finally:
        client.transport.close()
    return client.response


async def resize(request: web.Request) -> web.Response:
    height, width = query_size(request)
    await daemon_of(request).containers.exec_resize(request.match_info["id"], height, width)
    return web.Response(status=200)


async def inspect(request: web.Request) -> web.Response:
    return json_response(daemon_of(request).containers.exec_inspect(request.match_info["id"]))


ROUTES = [
    Route("POST", "/containers/{id}/exec", create),
    Route("POST", "/exec/{id}/start", start),
    Route("POST", "/exec/{id}/resize", resize),
    Route("GET", "/exec/{id}/json", inspect),
]
