"""Route tables: each resource module declares ROUTES; handlers find the engine through the request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from ..engine import Daemon

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DAEMON_KEY = web.AppKey("daemon", Daemon)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler


def daemon_of(request: web.Request) -> Daemon:
    return request.app[DAEMON_KEY]
