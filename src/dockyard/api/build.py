"""`POST /build` (the classic builder) and `POST /build/prune`.

As dockerd: the whole context is read before anything is answered, so a missing Dockerfile, a syntax
error, a bad tag or target is a plain HTTP error; once the 200 is out, a failure is the stream's last
line, `{"errorDetail": {"code": N, "message": ...}, "error": ...}` (code: a failing RUN's exit code).
With `q=1` the progress is held back and only the image ID is sent (the held lines too on failure).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from ..build import BuildContext, Builder, BuildError, BuildOptions, ContextError
from ..distribution.auth import AuthConfig
from .errors import ApiError, BadRequest
from .http import json_response, query_bool
from .routing import Route, daemon_of
from .streams import JsonStream

log = logging.getLogger("dockyard.api")

_CHUNK = 1 << 20


def _json_query(request: web.Request, name: str, what: str) -> Any:
    raw = request.query.get(name, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise BadRequest(f"error reading {what}: {e}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"error reading {what}: not a JSON object")
    return value


def _auth_configs(header: str) -> dict[str, Any]:
    """X-Registry-Config: base64url JSON of registry -> auth config; undecodable means none (dockerd)."""
    if not header:
        return {}
    try:
        raw = base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))
        doc = json.loads(raw)
    except (binascii.Error, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    out = {}
    for registry, value in doc.items():
        if isinstance(value, dict):
            auth = AuthConfig.from_dict(value)
            if not auth.is_empty:
                out[registry] = auth
    return out


def _options(request: web.Request) -> BuildOptions:
    q = request.query
    if q.get("remote"):
        if q["remote"] == "client-session":
            raise BadRequest(
                "experimental session with v1 builder is no longer supported, use builder version v2 "
                "(BuildKit) instead"
            )
        raise BadRequest("remote build contexts (URLs, git) are not supported by this daemon")
    if q.get("version") not in (None, "", "1"):
        raise BadRequest(
            "BuildKit (builder version 2) is not supported by this daemon; use DOCKER_BUILDKIT=0"
        )
    build_args = _json_query(request, "buildargs", "build args")
    labels = _json_query(request, "labels", "labels")
    return BuildOptions(
        tags=q.getall("t", []),
        dockerfile=q.get("dockerfile", ""),
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        no_cache=query_bool(request, "nocache"),
        pull=query_bool(request, "pull"),
        target=q.get("target", ""),
        labels={str(k): str(v) for k, v in labels.items()},
        remove=query_bool(request, "rm", True) or query_bool(request, "forcerm"),
        force_remove=query_bool(request, "forcerm"),
        platform=q.get("platform", ""),
        network_mode=q.get("networkmode", "") if q.get("networkmode") != "default" else "",
        auth=_auth_configs(request.headers.get("X-Registry-Config", "")),
    )


async def _receive(request: web.Request, path: Path) -> None:
    """The request body (the context tar) into a file, without holding it in memory."""
    with open(path, "wb") as out:
        async for chunk in request.content.iter_chunked(_CHUNK):
            out.write(chunk)


async def build(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    options = _options(request)
    quiet = query_bool(request, "q")
    builder = Builder(daemon.images, daemon.containers, daemon.puller, daemon.events)
    context = BuildContext(Path(daemon.images.content.ingest_dir))
    try:
        body = context.scratch / "body"
        await _receive(request, body)
        try:
            with open(body, "rb") as f:
                await asyncio.to_thread(context.extract, f)
        except ContextError as e:
            raise ApiError(str(e), e.status) from None
        finally:
            body.unlink(missing_ok=True)
        try:
            dockerfile, tags = await asyncio.to_thread(builder.prepare, context, options)
        except BuildError as e:
            raise ApiError(str(e), e.status) from None
        stream = await JsonStream(request).prepare()
        held: list[dict[str, Any]] = []
        send = held.append if quiet else stream.send
        try:
            image_id = await builder.build(context, dockerfile, tags, options, send)
        except BuildError as e:
            for message in held:
                stream.send(message)
            detail: dict[str, Any] = {"message": str(e)}
            if e.code is not None:
                detail = {"code": e.code, "message": str(e)}
            stream.send({"errorDetail": detail, "error": str(e)})
        except Exception as e:  # a bug must still end the stream as an error line
            log.exception("build failed")
            for message in held:
                stream.send(message)
            stream.error(str(e) or e.__class__.__name__)
        else:
            if quiet:
                stream.send({"stream": image_id + "\n"})
        return await stream.finish()
    finally:
        await asyncio.to_thread(context.close)


async def prune(request: web.Request) -> web.Response:
    """The classic builder keeps no cache of its own beyond images: nothing to reclaim here."""
    return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})


ROUTES = [
    Route("POST", "/build", build),
    Route("POST", "/build/prune", prune),
]
