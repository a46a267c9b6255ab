"""Exec routes: create, start (the connection hijack, or detached), resize, inspect."""

from __future__ import annotations

import logging
import struct

from aiohttp import web

from ..containers.service import ContainerError, ExecStartFailed
from ..runtime import shim_protocol
from .errors import ApiError
from .hijack import DETACHED, END, copy_streams, hijack, watched_keys
from .http import json_body, json_response, query_size
from .routing import Route, daemon_of

log = logging.getLogger("dockyard.api")

# how long the end of an exec's stream waits for its exit code to be recorded (normally at once)
END_WAIT = 10.0
# what dockerd 20.10 writes into an exec's stream when its client typed the detach keys
DETACH_MESSAGE = b"exec attach failed: error on attach stdin: read escape sequence\r\n"


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    exec_id = daemon_of(request).containers.exec_create(request.match_info["id"], body)
    return json_response({"Id": exec_id}, 201)


def _start_error_status(message: str) -> int:
    # dockerd: a command that cannot be found or run is the request's fault (400), the rest unknown (500)
    lowered = message.lower()
    causes = ("executable file not found", "no such file or directory", "permission denied")
    return 400 if any(cause in lowered for cause in causes) else 500


def _frame(data: bytes, mux: bool) -> bytes:
    return struct.pack(">BxxxI", 1, len(data)) + data if mux else data


async def start(request: web.Request) -> web.StreamResponse:
    """Detached: 200 once the process runs. Otherwise the hijack (101, as attach), the exec's stream,
    closed once the process has exited and its exit code is recorded. As dockerd, the start request's
    `Tty` says how the stream is sent (raw, else framed), whatever the exec was created with; the exec's
    own Tty gives it a terminal, and with one and a stdin its input is watched for the detach keys (the
    exec's DetachKeys, else daemon.json's, else ctrl-p,ctrl-q): the stream ends, the process runs on. A
    process that cannot be started still gets the 101: dockerd writes its error into the stream."""
    daemon = daemon_of(request)
    service = daemon.containers
    exec_id = request.match_info["id"]
    body = await json_body(request)
    record = service.exec_check_start(exec_id)
    if body.get("Detach"):
        try:
            await service.exec_start(exec_id, detach=True)
        except ExecStartFailed as e:
            raise ApiError(str(e), _start_error_status(str(e))) from None
        return web.Response(status=200)
    mux = not body.get("Tty")
    try:
        # at API 1.41 dockerd says raw-stream here even when the stream is framed
        client = await hijack(request, "application/vnd.docker.raw-stream")
    except (ConnectionError, RuntimeError):
        return web.Response(status=499)
    try:
        try:
            stream = await service.exec_start(exec_id, detach=False, mux=mux)
        except ContainerError as e:
            await client.write(_frame((str(e) + "\r\n").encode(), mux))
            return client.response
        assert stream is not None
        reader, writer = stream
        try:
            watch = record.tty and record.open_stdin
            ended = await copy_streams(
                client,
                reader,
                writer,
                record.open_stdin,
                detach_keys=watched_keys(record.detach_keys, daemon.config.detach_keys) if watch else b"",
                eof_ends=watch,  # as dockerd: with a terminal, the end of the input is a detach
            )
        finally:
            writer.close()
        if ended == END:
            await service.exec_ended(exec_id, END_WAIT)
        elif ended == DETACHED:  # dockerd 20.10's answer (its exec_detach event is never sent)
            await client.write(_frame(DETACH_MESSAGE, mux))
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
