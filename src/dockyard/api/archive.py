"""Archive routes: save (GET /images/get, GET /images/{name}/get), load (POST /images/load) and import
(POST /images/create?fromSrc=-, reached through images.create).

Request and response bodies are archives of any size: they are streamed between the connection and a
worker thread, never read whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import web

from ..distribution import InvalidPlatform, Platform
from ..distribution.pull import progress_message
from ..goarch import go_arch
from ..images import ImageError, archive
from ..images.ingest import ChunkPipe
from ..reference import InvalidReference, parse_reference
from .errors import BadRequest
from .http import query_bool
from .images import image_error
from .routing import Route, daemon_of
from .streams import JsonStream

log = logging.getLogger("dockyard.api")


class RequestBody:
    """The request body as a blocking file object for a worker thread, fed from the event loop.

    Leaving the context stops the feeding even if the worker stopped reading early (a bad archive), so
    no thread stays blocked on a full pipe.
    """

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.pipe = ChunkPipe()
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ChunkPipe:
        self._task = asyncio.create_task(self._feed())
        return self.pipe

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for chunk in self._request.content.iter_any():
                if self._stopped:
                    return
                if not self.pipe.put_nowait(chunk):
                    await loop.run_in_executor(None, self.pipe.put_blocking, chunk)
            self.pipe.close()
        except Exception as e:  # the client went away mid-upload: the reader sees the error
            self.pipe.abort(e)

    async def __aexit__(self, *exc: object) -> None:
        self._stopped = True
        # Draining wakes a feeder blocked on the full pipe; nobody reads what is left.
        self.pipe.abort(ConnectionAbortedError("request body no longer read"))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


# --- save --------------------------------------------------------------------------------------------


async def save_one(request: web.Request) -> web.StreamResponse:
    """GET /images/{name}/get (docker-py's image.save())."""
    return await _save(request, [request.match_info["name"]])


async def save_many(request: web.Request) -> web.StreamResponse:
    """GET /images/get?names=a&names=b (the docker CLI's save, whatever the number of images)."""
    return await _save(request, request.query.getall("names", []))


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    daemon = daemon_of(request)
    try:
        stream = archive.save(daemon.images, names)
    except (ImageError, InvalidReference) as e:
        raise image_error(e) from None
    loop = asyncio.get_running_loop()
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    with stream:
        await response.prepare(request)
        chunks = iter(stream)
        try:
            while (chunk := await loop.run_in_executor(None, next, chunks, None)) is not None:
                await response.write(chunk)
        except (ConnectionResetError, ConnectionAbortedError):
            log.debug("save of %s: the client went away", names)
            return response
        except (ImageError, OSError) as e:
            # As dockerd: once bytes are out, the error can only follow them.
            log.warning("save of %s failed: %s", names, e)
            error = {"errorDetail": {"message": str(e)}, "error": str(e)}
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await response.write(json.dumps(error).encode())
            return response
        finally:
            with contextlib.suppress(Exception):
                chunks.close()  # type: ignore[attr-defined]
    for image_id in stream.image_ids:
        daemon.events.emit("image", "save", image_id, name=image_id)
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await response.write_eof()
    return response


# --- load --------------------------------------------------------------------------------------------


def _platform_filter(host: Platform):
    def matches(platform: dict[str, Any]) -> bool:
        try:
            return host.matches(Platform.from_dict(platform))
        except (InvalidPlatform, ValueError):
            return False

    return matches


async def load(request: web.Request) -> web.StreamResponse:
    """POST /images/load?quiet=0|1: a JSON stream of "Loaded image: ..." lines (dockerd answers 200 and
    reports a bad archive inside the stream)."""
    daemon = daemon_of(request)
    quiet = query_bool(request, "quiet")
    stream = await JsonStream(request).prepare()

    def progress(layer: str, current: int, total: int) -> None:
        stream.send(progress_message("Loading layer", layer, current, total))

    async with RequestBody(request) as body:
        try:
            result = await archive.load(
                daemon.images,
                body,  # type: ignore[arg-type]
                progress=None if quiet else progress,
                platform_ok=_platform_filter(Platform.host()),
            )
        except ImageError as e:
            log.warning("load failed: %s", e)
            stream.error(str(e))
        else:
            for line in result.lines:
                stream.send({"stream": line + "\n"})
            for record in result.images:
                daemon.events.emit("image", "load", record.id, name=record.id)
    return await stream.finish()


# --- import ------------------------------------------------------------------------------------------


async def import_image(request: web.Request) -> web.StreamResponse:
    """POST /images/create?fromSrc=-&repo=&tag=&message=&changes=: the body is a rootfs tarball.

    As dockerd, nothing is written before the image exists, so errors are plain HTTP errors; then one
    message, {"status": "sha256:<id>"}.
    """
    daemon = daemon_of(request)
    source = request.query.get("fromSrc", "")
    if source != "-":
        raise BadRequest(f"importing from {source} is not supported: send the tarball as the request body")
    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "")
    repo_tag: str | None = repo or None
    if repo and tag:
        try:
            repo_tag = str(parse_reference(repo, default_tag=None).with_tag(tag))
        except InvalidReference as e:
            raise BadRequest(str(e)) from None
    architecture, os_name, variant = go_arch(), "linux", ""
    if request.query.get("platform"):
        try:
            platform = Platform.parse(request.query["platform"])
        except (InvalidPlatform, ValueError) as e:
            raise BadRequest(str(e)) from None
        architecture, os_name, variant = platform.architecture, platform.os, platform.variant
    async with RequestBody(request) as body:
        try:
            record = await archive.import_rootfs(
                daemon.images,
                body,  # type: ignore[arg-type]
                repo_tag,
                request.query.getall("changes", []),
                request.query.get("message", ""),
                source=source,
                architecture=architecture,
                os_name=os_name,
                variant=variant,
            )
        except ImageError as e:
            raise image_error(e) from None
    if repo_tag:
        ref = parse_reference(repo_tag)
        daemon.events.emit("image", "tag", record.id, name=ref.familiar())
    daemon.events.emit("image", "import", record.id, name=record.id)
    stream = await JsonStream(request).prepare()
    stream.send({"status": record.id})
    return await stream.finish()


ROUTES = [
    Route("GET", "/images/get", save_many),
    Route("GET", "/images/{name:.+}/get", save_one),
    Route("POST", "/images/load", load),
]
