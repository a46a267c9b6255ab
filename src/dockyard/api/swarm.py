"""Swarm routes of a node that is not part of a swarm, answered as a non-swarm dockerd 20.10 answers them.

dockerd's swarm router reads the request first (the body, `version`, the boolean query values, filters) and
refuses a bad one with its own status; then the cluster, having no node, answers 503: `This node is not a
swarm manager...` for what needs a manager (inspect, update, the unlock key, unlock, and every node, service,
task, secret and config route), `This node is not part of a swarm` for leave (docker-py's
`leave_swarm(force=True)` takes that 503 as done, which its tests' clean-up relies on). `info` shows
`Swarm.LocalNodeState: inactive`.

Swarm mode itself is out of scope: where dockerd would make or join a swarm (a valid init or join), the answer
is a 503 saying so.
"""

from __future__ import annotations

from aiohttp import web

from .. import API_VERSION
from .errors import ApiError, BadRequest
from .gojson import decode_body, filters_from_json, parse_bool, parse_uint
from .http import query_bool
from .routing import Route

NOT_MANAGER = (
    'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node '
    "to swarm and try again."
)
NOT_IN_SWARM = "This node is not part of a swarm"
UNSUPPORTED = "This node cannot be part of a swarm: dockyardd does not implement swarm mode"


def _unavailable(message: str = NOT_MANAGER) -> ApiError:
    return ApiError(message, 503)


def _api_version(request: web.Request) -> tuple[int, ...]:
    requested = request.match_info.get("api_version")
    return tuple(int(p) for p in (requested[1:] if requested else API_VERSION).split("."))


def _version_query(request: web.Request, what: str) -> None:
    raw = request.query.get("version", "")
    try:
        parse_uint(raw)
    except ValueError as e:
        raise BadRequest(f"invalid {what} version '{raw}': {e}") from None


def _bool_query(request: web.Request, name: str, text: str) -> None:
    value = request.query.get(name, "")
    if value:
        try:
            parse_bool(value)
        except ValueError as e:
            raise BadRequest(text.format(value=value, error=e)) from None


def _validate_addr(addr: str, what: str) -> None:
    if not addr:
        raise BadRequest(f'invalid {what} "{addr}": invalid empty address')


def _spec_name(spec: object) -> None:
    name = spec.get("Name") if isinstance(spec, dict) else ""  # swarm.Spec embeds its Annotations
    if name and name != "default":
        raise BadRequest('swarm spec must be named "default"')


# --- /swarm ------------------------------------------------------------------------------------------


async def init(request: web.Request) -> web.Response:
    body = await decode_body(request, "swarm.InitRequest")
    _validate_addr(str(body.get("ListenAddr") or ""), "ListenAddr")
    _spec_name(body.get("Spec"))
    raise _unavailable(UNSUPPORTED)


async def join(request: web.Request) -> web.Response:
    body = await decode_body(request, "swarm.JoinRequest")
    _validate_addr(str(body.get("ListenAddr") or ""), "ListenAddr")
    remotes = body.get("RemoteAddrs") or []
    if not remotes:
        raise BadRequest("at least 1 RemoteAddr is required to join")
    for addr in remotes:
        _validate_addr(str(addr or ""), "remoteAddr")
    raise _unavailable(UNSUPPORTED)


async def leave(request: web.Request) -> web.Response:
    raise _unavailable(NOT_IN_SWARM)


async def inspect(request: web.Request) -> web.Response:
    raise _unavailable()


async def update(request: web.Request) -> web.Response:
    await decode_body(request, "swarm.Spec")
    _version_query(request, "swarm")
    for name in ("rotateWorkerToken", "rotateManagerToken", "rotateManagerUnlockKey"):
        _bool_query(request, name, f"invalid value for {name}: {{value}}")
    raise _unavailable()


async def unlock(request: web.Request) -> web.Response:
    await decode_body(request, "swarm.UnlockRequest")
    raise _unavailable()


async def unlock_key(request: web.Request) -> web.Response:
    raise _unavailable()


# --- nodes, services, tasks, secrets, configs --------------------------------------------------------


def _list(invalid_filters_status: int):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        filters_from_json(request.query.get("filters", ""), invalid_filters_status)
        raise _unavailable()

    return handler


async def list_services(request: web.Request) -> web.Response:
    filters_from_json(request.query.get("filters", ""), 400)
    if _api_version(request) >= (1, 41):
        _bool_query(request, "status", "invalid value for status: {value}: {error}")
    raise _unavailable()


async def get_service(request: web.Request) -> web.Response:
    _bool_query(request, "insertDefaults", "invalid value for insertDefaults: {value}: {error}")
    raise _unavailable()


def _create(go_type: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        body = await decode_body(request, go_type)
        kind = go_type.removeprefix("swarm.").removesuffix("Spec").lower()
        if (
            kind in ("secret", "config")
            and body.get("Templating") is not None
            and _api_version(request) < (1, 37)
        ):
            version = ".".join(map(str, _api_version(request)))
            raise BadRequest(f"{kind} templating is not supported on the specified API version: {version}")
        raise _unavailable()

    return handler


def _update(go_type: str, what: str, plain: bool = False):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        await decode_body(request, go_type)
        if plain:  # secrets and configs: dockerd's text without the value
            try:
                parse_uint(request.query.get("version", ""))
            except ValueError:
                raise BadRequest(f"invalid {what} version") from None
        else:
            _version_query(request, what)
        raise _unavailable()

    return handler


async def unavailable(request: web.Request) -> web.Response:
    raise _unavailable()


async def logs(request: web.Request) -> web.Response:
    if not (query_bool(request, "stdout") or query_bool(request, "stderr")):
        raise ApiError("Bad parameters: you must choose at least one stream", 500)
    raise _unavailable()


ROUTES = [
    Route("POST", "/swarm/init", init),
    Route("POST", "/swarm/join", join),
    Route("POST", "/swarm/leave", leave),
    Route("GET", "/swarm", inspect),
    Route("GET", "/swarm/unlockkey", unlock_key),
    Route("POST", "/swarm/update", update),
    Route("POST", "/swarm/unlock", unlock),
    Route("GET", "/services", list_services),
    Route("GET", "/services/{id}", get_service),
    Route("POST", "/services/create", _create("swarm.ServiceSpec")),
    Route("POST", "/services/{id}/update", _update("swarm.ServiceSpec", "service")),
    Route("DELETE", "/services/{id}", unavailable),
    Route("GET", "/services/{id}/logs", logs),
    Route("GET", "/nodes", _list(500)),
    Route("GET", "/nodes/{id}", unavailable),
    Route("DELETE", "/nodes/{id}", unavailable),
    Route("POST", "/nodes/{id}/update", _update("swarm.NodeSpec", "node")),
    Route("GET", "/tasks", _list(500)),
    Route("GET", "/tasks/{id}", unavailable),
    Route("GET", "/tasks/{id}/logs", logs),
    Route("GET", "/secrets", _list(500)),
    Route("POST", "/secrets/create", _create("swarm.SecretSpec")),
    Route("DELETE", "/secrets/{id}", unavailable),
    Route("GET", "/secrets/{id}", unavailable),
    Route("POST", "/secrets/{id}/update", _update("swarm.SecretSpec", "secret", plain=True)),
    Route("GET", "/configs", _list(500)),
    Route("POST", "/configs/create", _create("swarm.ConfigSpec")),
    Route("DELETE", "/configs/{id}", unavailable),
    Route("GET", "/configs/{id}", unavailable),
    Route("POST", "/configs/{id}/update", _update("swarm.ConfigSpec", "config", plain=True)),
]
