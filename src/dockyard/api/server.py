"""The HTTP server: routes under optional /vX.Y prefixes, version checks, common headers, errors."""

from __future__ import annotations

import logging

from aiohttp import web

from .. import API_VERSION, MIN_API_VERSION, __version__
from ..containers.service import ContainerError
from ..engine import Daemon
from ..network import NetworkError
from . import archive, container_fs, containers, images, networks, swarm, system, volumes
from . import build as build_api
from . import exec as exec_api
from .errors import ApiError
from .http import json_response
from .routing import DAEMON_KEY, Handler, Route

log = logging.getLogger("dockyard.api")

API_VERSION_PATTERN = r"{api_version:v[0-9]+\.[0-9]+}"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Version check, request logging and error mapping, in one place rather than in every handler."""
    log.debug("Calling %s %s", request.method, request.path)
    try:
        requested = request.match_info.get("api_version")
        if requested:
            version = requested[1:]
            if _version_tuple(version) > _version_tuple(API_VERSION):
                raise ApiError(
                    f"client version {version} is too new. Maximum supported API version is {API_VERSION}",
                    400,
                )
            if _version_tuple(version) < _version_tuple(MIN_API_VERSION):
                raise ApiError(
                    f"client version {version} is too old. Minimum supported API version is "
                    f"{MIN_API_VERSION}, please upgrade your client to a newer version",
                    400,
                )
        return await handler(request)
    except (ApiError, ContainerError, NetworkError) as e:  # the engine's errors carry their status
        if e.status == 304:
            return web.Response(status=304)
        message = e.message if isinstance(e, ApiError) else str(e)
        log.debug("%s %s: %d %s", request.method, request.path, e.status, message)
        return json_response({"message": message}, e.status)
    except web.HTTPNotFound:
        return json_response({"message": "page not found"}, 404)
    except web.HTTPMethodNotAllowed:
        return json_response({"message": "method not allowed"}, 405)
    except web.HTTPException:
        raise
    except Exception as e:  # an engine bug must still answer as Docker's 500, and be logged whole
        log.exception("%s %s failed", request.method, request.path)
        return json_response({"message": str(e) or e.__class__.__name__}, 500)


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Docker-Experimental"] = "false"
    response.headers["Ostype"] = "linux"
    response.headers["Server"] = f"Dockyard/{__version__} (linux)"


def add_routes(app: web.Application, routes: list[Route]) -> None:
    """Each route answers both unprefixed and under /vX.Y/, as dockerd does."""
    for route in routes:
        for path in (route.path, f"/{API_VERSION_PATTERN}{route.path}"):
            if route.method == "GET":
                app.router.add_get(path, route.handler)  # adds HEAD too
            else:
                app.router.add_route(route.method, path, route.handler)


def build_app(daemon: Daemon) -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=1024**3)
    app[DAEMON_KEY] = daemon
    app.on_response_prepare.append(_common_headers)
    add_routes(app, system.ROUTES)
    add_routes(app, archive.ROUTES)  # before images: its /images/{name:.+}/... routes are greedy
    add_routes(app, images.ROUTES)
    add_routes(app, containers.ROUTES)
    add_routes(app, container_fs.ROUTES)
    add_routes(app, exec_api.ROUTES)
    add_routes(app, volumes.ROUTES)
    add_routes(app, networks.ROUTES)
    add_routes(app, build_api.ROUTES)
    add_routes(app, swarm.ROUTES)

    async def _start_daemon(app: web.Application) -> None:
        await daemon.start()

    app.on_startup.append(_start_daemon)
    return app
