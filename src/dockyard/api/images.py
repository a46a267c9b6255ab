"""Image routes: pull (create), list, inspect, history, tag, remove, prune."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from aiohttp import web

from ..distribution import Platform, RegistryError, decode_registry_auth
from ..images import ImageError
from ..reference import InvalidReference, parse_reference, validate_digest
from .errors import ApiError, BadRequest, NotFound
from .http import json_response, query_bool, query_filters
from .routing import Route, daemon_of
from .streams import JsonStream

log = logging.getLogger("dockyard.api")


def image_error(error: Exception) -> ApiError:
    """The engine's image and registry errors as API errors with Docker's status codes."""
    if isinstance(error, ImageError):
        return ApiError(str(error), error.status)
    if isinstance(error, RegistryError):
        return ApiError(str(error), getattr(error, "http_status", 500))
    if isinstance(error, InvalidReference):
        return BadRequest(str(error))
    raise error


async def create(request: web.Request) -> web.StreamResponse:
    """POST /images/create: pull (fromImage) or import (fromSrc)."""
    if request.query.get("fromSrc"):
        from .archive import import_image  # here, not at the top: archive imports this module

        return await import_image(request)
    from_image = request.query.get("fromImage", "")
    if not from_image:
        raise BadRequest("fromImage or fromSrc is required")
    tag = request.query.get("tag", "")
    try:
        ref = parse_reference(from_image, default_tag=None)
        if tag:
            if tag.startswith("sha256:") or ":" in tag:
                ref = ref.with_digest(validate_digest(tag))
            else:
                ref = ref.with_tag(tag)
        if not ref.tag and not ref.digest:
            ref = ref.with_tag("latest")
        platform = Platform.parse(request.query["platform"]) if request.query.get("platform") else None
    except (InvalidReference, ValueError) as e:
        raise BadRequest(str(e)) from None
    auth = decode_registry_auth(request.headers.get("X-Registry-Auth", ""))
    daemon = daemon_of(request)
    try:
        plan = await daemon.puller.resolve(ref, platform, auth)
    except (ImageError, RegistryError) as e:
        raise image_error(e) from None
    stream = await JsonStream(request).prepare()

    async def work() -> None:
        _, status = await daemon.puller.fetch(plan, auth, stream.send)
        stream.send({"status": status})
        daemon.events.emit("image", "pull", ref.familiar(), name=ref.familiar())

    await _streamed(stream, work(), f"pull {ref}")
    return await stream.finish()


async def _streamed(stream: JsonStream, work: Awaitable[None], what: str) -> None:
    """Run work whose progress goes to an open stream: once the 200 is sent, a failure can only be
    told as the stream's last line."""
    try:
        await work
    except (ImageError, RegistryError, OSError) as e:
        log.warning("%s failed: %s", what, e)
        stream.error(str(e))
    except Exception as e:  # a bug must still end the stream as an error line
        log.exception("%s failed", what)
        stream.error(str(e) or e.__class__.__name__)


async def push(request: web.Request) -> web.StreamResponse:
    """POST /images/{name}/push?tag=: the name is the repository, the tag comes separately."""
    daemon = daemon_of(request)
    try:
        ref = parse_reference(request.match_info["name"], default_tag=None)
        tag_name = request.query.get("tag", "") or ref.tag or "latest"
        ref = ref.name_only().with_tag(tag_name)
    except (InvalidReference, ValueError) as e:
        raise BadRequest(str(e)) from None
    auth = decode_registry_auth(request.headers.get("X-Registry-Auth", ""))
    try:
        daemon.pusher.resolve(ref)
    except ImageError as e:
        raise image_error(e) from None
    stream = await JsonStream(request).prepare()

    async def work() -> None:
        await daemon.pusher.push(ref, auth, stream.send)
        daemon.events.emit("image", "push", ref.familiar(), name=ref.familiar())

    await _streamed(stream, work(), f"push {ref}")
    return await stream.finish()


async def auth_login(request: web.Request) -> web.Response:
    """POST /auth: check credentials against a registry, as `docker login` asks the daemon to."""
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("invalid JSON body") from None
    from ..distribution import AuthConfig

    auth = AuthConfig.from_dict(body if isinstance(body, dict) else {})
    server = body.get("serveraddress") or "https://index.docker.io/v1/"
    try:
        status = await daemon_of(request).registry.check_login(server, auth)
    except RegistryError as e:
        raise ApiError(str(e), getattr(e, "http_status", 500)) from None
    return json_response({"IdentityToken": "", "Status": status})


async def list_images(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    filters = query_filters(request)
    if request.query.get("filter"):  # API < 1.25: a bare reference pattern
        filters.setdefault("reference", []).append(request.query["filter"])
    try:
        images = daemon.images.list_images(query_bool(request, "all"), filters)
    except ImageError as e:
        raise image_error(e) from None
    return json_response(images)


async def inspect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    try:
        return json_response(daemon_of(request).images.inspect(name))
    except ImageError as e:
        if e.status == 404:
            raise NotFound(f"no such image: {name}: {e}") from None
        raise image_error(e) from None


async def history(request: web.Request) -> web.Response:
    try:
        return json_response(daemon_of(request).images.history(request.match_info["name"]))
    except ImageError as e:
        raise image_error(e) from None


async def tag(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    repo = request.query.get("repo", "")
    tag_name = request.query.get("tag", "")
    if not repo:
        raise BadRequest("repository name is required")
    target = f"{repo}:{tag_name}" if tag_name else repo
    try:
        ref = await daemon.images.tag(request.match_info["name"], target)
    except (ImageError, InvalidReference) as e:
        raise image_error(e) from None
    record = daemon.images.get(str(ref))
    daemon.events.emit("image", "tag", record.id, name=ref.familiar())
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    name = request.match_info["name"]
    try:
        records = await daemon.images.remove(
            name, force=query_bool(request, "force"), prune=not query_bool(request, "noprune")
        )
    except (ImageError, InvalidReference) as e:
        raise image_error(e) from None
    for item in records:
        if "Untagged" in item:
            daemon.events.emit("image", "untag", item["Untagged"], name=item["Untagged"])
    deleted = [item["Deleted"] for item in records if "Deleted" in item]
    if deleted:  # the first Deleted line is the image; the rest are its layers
        daemon.events.emit("image", "delete", deleted[0], name=deleted[0])
    return json_response(records)


async def prune(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    filters = query_filters(request)
    dangling = filters.pop("dangling", ["true"])
    all_images = dangling[0].lower() in ("false", "0")
    try:
        result = await daemon.images.prune(all_images, filters)
    except ImageError as e:
        raise image_error(e) from None
    daemon.events.emit("image", "prune", "", reclaimed=str(result["SpaceReclaimed"]))
    return json_response(result)


ROUTES = [
    Route("POST", "/images/create", create),
    Route("GET", "/images/json", list_images),
    Route("POST", "/images/prune", prune),
    Route("GET", "/images/{name:.+}/json", inspect),
    Route("GET", "/images/{name:.+}/history", history),
    Route("POST", "/images/{name:.+}/tag", tag),
    Route("POST", "/images/{name:.+}/push", push),
    Route("DELETE", "/images/{name:.+}", remove),
    Route("POST", "/auth", auth_login),
]
