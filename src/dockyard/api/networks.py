"""Network routes: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from aiohttp import web

from ..network import Network
from .errors import BadRequest
from .gojson import decode_body
from .http import json_body, json_response, query_filters
from .routing import Route, daemon_of

_FILTERS = {"dangling", "driver", "id", "label", "name", "scope", "type"}


def _labels_match(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _matches(net: Network, filters: dict[str, list[str]], in_use: set[str]) -> bool:
    if filters.get("name") and not any(v in net.name for v in filters["name"]):
        return False
    if filters.get("id") and not any(net.id.startswith(v) for v in filters["id"]):
        return False
    if filters.get("driver") and net.driver not in filters["driver"]:
        return False
    if filters.get("scope") and "local" not in filters["scope"]:
        return False
    if filters.get("label") and not _labels_match(net.labels, filters["label"]):
        return False
    for kind in filters.get("type", []):
        if kind not in ("custom", "builtin"):
            raise BadRequest(f"invalid filter: 'type'='{kind}'")
        if (kind == "builtin") != net.predefined:
            return False
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise BadRequest(f"invalid filter 'dangling={value}'")
        dangling = value.lower() in ("true", "1")
        if dangling != (not net.predefined and net.id not in in_use):
            return False
    return True


def _check_filters(filters: dict[str, list[str]]) -> None:
    for key in filters:
        if key not in _FILTERS:
            raise BadRequest(f"invalid filter '{key}'")


async def list_networks(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    filters = query_filters(request)
    _check_filters(filters)
    # dangling as dockerd counts it: no endpoints (containers that run), as prune
    in_use = {ep.network_id for box in daemon.networks.sandboxes.values() for ep in box.endpoints}
    nets = [n for n in daemon.networks.list() if _matches(n, filters, in_use)]
    return json_response([daemon.networks.inspect(n) for n in nets])


async def inspect_network(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    net = daemon.networks.get(request.match_info["id"])
    return json_response(daemon.networks.inspect(net))


async def create_network(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    body = await decode_body(request, "types.NetworkCreateRequest")
    network_id, warning = await _in_thread(daemon.networks.create, body)
    driver = body.get("Driver") or "bridge"
    daemon.events.emit("network", "create", network_id, name=body["Name"], type=driver)
    return json_response({"Id": network_id, "Warning": warning}, 201)


async def remove_network(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    net = daemon.networks.get(request.match_info["id"])
    await _in_thread(daemon.networks.remove, net.id)
    daemon.events.emit("network", "destroy", net.id, name=net.name, type=net.driver)
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    body = await json_body(request)
    container = body.get("Container") or ""
    if not container:
        raise BadRequest("no container specified")
    await daemon.containers.connect_network(
        container, request.match_info["id"], body.get("EndpointConfig") or {}
    )
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    body = await json_body(request)
    container = body.get("Container") or ""
    if not container:
        raise BadRequest("no container specified")
    await daemon.containers.disconnect_network(container, request.match_info["id"], bool(body.get("Force")))
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    daemon = daemon_of(request)
    filters = query_filters(request)
    for key in filters:
        if key not in ("label", "label!", "until"):
            raise BadRequest(f"invalid filter '{key}'")
    keep = set()
    for net in daemon.networks.list():
        if filters.get("label") and not _labels_match(net.labels, filters["label"]):
            keep.add(net.id)
        if filters.get("label!") and _labels_match(net.labels, filters["label!"]):
            keep.add(net.id)
    # as dockerd: a network is in use while it has endpoints (running containers); `network rm` takes one
    # that only stopped containers are on, and so does prune
    removed = await _in_thread(daemon.networks.prune, keep)
    for net_id, name in removed:
        daemon.events.emit("network", "destroy", net_id, name=name, type="bridge")
    daemon.events.emit("network", "prune", "", reclaimed="0")
    return json_response({"NetworksDeleted": [name for _id, name in removed] or None})


async def _in_thread(fn, *args):  # type: ignore[no-untyped-def]
    import asyncio

    return await asyncio.to_thread(fn, *args)


ROUTES = [
    Route("GET", "/networks", list_networks),
    Route("GET", "/networks/{id}", inspect_network),
    Route("POST", "/networks/create", create_network),
    Route("DELETE", "/networks/{id}", remove_network),
    Route("POST", "/networks/{id}/connect", connect),
    Route("POST", "/networks/{id}/disconnect", disconnect),
    Route("POST", "/networks/prune", prune),
]
