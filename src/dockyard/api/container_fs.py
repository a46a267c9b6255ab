"""A container's filesystem from outside: `/containers/{id}/changes`, `/archive` (HEAD, GET, PUT),
`/export` and `POST /commit`. Archives are streamed between the connection and a worker thread."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

from ..containers.filesystem import CommitOptions, ContainerFilesystem, encode_path_stat
from ..containers.service import ContainerError
from .archive import RequestBody
from .errors import BadRequest
from .http import json_response, query_bool
from .routing import Route, daemon_of

log = logging.getLogger("dockyard.api")

_CHUNK = 1 << 16


def _fs(request: web.Request) -> ContainerFilesystem:
    return ContainerFilesystem(daemon_of(request).containers)


class _ResponseWriter:
    """A blocking file object for a worker thread that writes a response on the event loop, one
    64 KiB chunk at a time (waiting for each: the client's pace holds the thread back)."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self.response = response
        self.loop = loop
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= _CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            chunk, self.buffer = bytes(self.buffer), bytearray()
            asyncio.run_coroutine_threadsafe(self.response.write(chunk), self.loop).result()


def _path_param(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise BadRequest("bad parameter: pathcannot be empty")  # sic: dockerd 20.10's text
    return path


async def changes(request: web.Request) -> web.Response:
    return json_response(_fs(request).changes(request.match_info["id"]))


async def archive_get(request: web.Request) -> web.StreamResponse:
    """HEAD: the path's stat in X-Docker-Container-Path-Stat; GET: that and the path's tar."""
    fs = _fs(request)
    path = _path_param(request)
    async with fs.view(request.match_info["id"]) as (c, view):
        info = await asyncio.to_thread(fs.stat_path, c, view, path)
        headers = {"X-Docker-Container-Path-Stat": encode_path_stat(info)}
        if request.method == "HEAD":
            return web.Response(status=200, headers=headers)
        headers["Content-Type"] = "application/x-tar"
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        writer = _ResponseWriter(response, asyncio.get_running_loop())

        def produce() -> None:
            fs.write_archive(view, path, writer)  # type: ignore[arg-type]
            writer.flush()

        try:
            await asyncio.to_thread(produce)
        except (ConnectionError, OSError) as e:
            log.debug("archive of %s:%s ended early: %s", c.name, path, e)
            return response
    daemon_of(request).events.emit("container", "archive-path", c.id, image=c.image, name=c.name)
    with contextlib.suppress(ConnectionError):  # the client may close once it has read the tar's end
        await response.write_eof()
    return response


async def archive_put(request: web.Request) -> web.Response:
    fs = _fs(request)
    path = _path_param(request)
    no_overwrite = query_bool(request, "noOverwriteDirNonDir")
    copy_ids = query_bool(request, "copyUIDGID")
    async with fs.view(request.match_info["id"]) as (c, view):
        dest = await asyncio.to_thread(fs.check_extract, c, view, path)
        owner = await asyncio.to_thread(fs.user_ids, c, view) if copy_ids else None
        async with RequestBody(request) as body:
            try:
                await asyncio.to_thread(fs.extract, c, view, dest, body, no_overwrite, owner)  # type: ignore[arg-type]
            except ContainerError:
                raise
            except Exception as e:  # a broken archive, a full disk: dockerd answers 500 with the error
                raise ContainerError(f"Error processing tar file: {e}", 500) from None
    daemon_of(request).events.emit("container", "extract-to-dir", c.id, image=c.image, name=c.name)
    return web.Response(status=200)


async def export(request: web.Request) -> web.StreamResponse:
    fs = _fs(request)
    async with fs.view(request.match_info["id"]) as (c, view):
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
        await response.prepare(request)
        writer = _ResponseWriter(response, asyncio.get_running_loop())

        def produce() -> None:
            fs.write_export(view, writer)  # type: ignore[arg-type]
            writer.flush()

        try:
            await asyncio.to_thread(produce)
        except (ConnectionError, OSError) as e:
            log.debug("export of %s ended early: %s", c.name, e)
            return response
    daemon_of(request).events.emit("container", "export", c.id, image=c.image, name=c.name)
    with contextlib.suppress(ConnectionError):  # the client may close once it has read the tar's end
        await response.write_eof()
    return response


async def commit(request: web.Request) -> web.Response:
    raw = await request.read() if request.can_read_body else b""
    config: Any = None
    if raw.strip():
        try:
            config = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadRequest("invalid JSON body") from None
        if config is not None and not isinstance(config, dict):
            raise BadRequest("invalid JSON body")
    ref = request.query.get("container", "")
    if not ref:
        raise BadRequest('invalid name or ID supplied: ""')
    options = CommitOptions(
        repo=request.query.get("repo", ""),
        tag=request.query.get("tag", ""),
        comment=request.query.get("comment", ""),
        author=request.query.get("author", ""),
        # dockerd: pause unless asked not to (API >= 1.13)
        pause=query_bool(request, "pause") if request.query.get("pause", "") != "" else True,
        changes=request.query.getall("changes", []),
        config=config,
    )
    image_id = await _fs(request).commit(ref, options)
    return json_response({"Id": image_id}, 201)


ROUTES = [
    Route("GET", "/containers/{id}/changes", changes),
    Route("GET", "/containers/{id}/archive", archive_get),
    Route("PUT", "/containers/{id}/archive", archive_put),
    Route("GET", "/containers/{id}/export", export),
    Route("POST", "/commit", commit),
]
