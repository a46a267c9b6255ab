"""System routes: /_ping, /version, /info, /events."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from ..engine import Event
from ..units import parse_time
from .errors import BadRequest
from .http import json_response, query_filters
from .routing import Route, daemon_of


async def ping(request: web.Request) -> web.Response:
    headers = {
        "Cache-Control": "no-cache, no-store, must-revalidate",
        "Pragma": "no-cache",
        "Builder-Version": "1",
    }
    return web.Response(text="OK", content_type="text/plain", headers=headers)


async def version(request: web.Request) -> web.Response:
    return json_response(daemon_of(request).version())


async def disk_usage(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    return json_response(await asyncio.to_thread(daemon.disk_usage))


async def info(request: web.Request) -> web.Response:
    return json_response(daemon_of(request).info())


def parse_timestamp(value: str, now: float) -> float:
    try:
        return parse_time(value, now)
    except ValueError as e:
        raise BadRequest(str(e)) from None


def event_matches(event: Event, filters: dict[str, list[str]]) -> bool:
    def allowed(key: str, *candidates: str) -> bool:
        wanted = filters.get(key)
        return not wanted or any(c in wanted for c in candidates if c)

    attrs = event.attributes
    labels = filters.get("label", [])
    for label in labels:
        k, sep, v = label.partition("=")
        if k not in attrs or (sep and attrs[k] != v):
            return False
    return (
        allowed("type", event.type)
        and allowed("event", event.action, event.action.split(":")[0])
        and (event.type != "container" or allowed("container", event.actor_id, attrs.get("name", "")))
        and (event.type != "image" or allowed("image", event.actor_id, attrs.get("name", "")))
        and (event.type != "network" or allowed("network", event.actor_id, attrs.get("name", "")))
        and (event.type != "volume" or allowed("volume", event.actor_id))
    )


async def events(request: web.Request) -> web.StreamResponse:
    daemon = daemon_of(request)
    now = time.time()
    since = parse_timestamp(request.query["since"], now) if request.query.get("since") else None
    until = parse_timestamp(request.query["until"], now) if request.query.get("until") else None
    filters = query_filters(request)
    queue = daemon.events.subscribe()
    try:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)

        async def send(event: Event) -> None:
            if event_matches(event, filters):
                await response.write((json.dumps(event.to_json()) + "\n").encode())

        if since is not None:
            for event in daemon.events.history(int(since * 1e9)):
                if until is not None and event.time_nano > until * 1e9:
                    break
                await send(event)
        while True:
            timeout = None if until is None else until - time.time()
            if timeout is not None and timeout <= 0:
                break
            try:
                event = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                break
            await send(event)
        await response.write_eof()
        return response
    finally:
        daemon.events.unsubscribe(queue)


ROUTES = [
    Route("GET", "/_ping", ping),
    Route("GET", "/version", version),
    Route("GET", "/info", info),
    Route("GET", "/events", events),
    Route("GET", "/system/df", disk_usage),
]
