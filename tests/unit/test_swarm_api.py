"""The swarm routes of a node outside any swarm, through aiohttp's in-process test server (no root): the
503s of a non-swarm dockerd, and the request errors it answers first."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api import build_app
from dockyard.api.swarm import NOT_IN_SWARM, NOT_MANAGER
from dockyard.engine import Daemon, build_config
from dockyard.engine.config import NO_HOST_NETWORK


@pytest.fixture
def daemon(tmp_path):
    config = build_config(
        NO_HOST_NETWORK, {"data-root": str(tmp_path / "data"), "exec-root": str(tmp_path / "exec")}, "x"
    )
    (tmp_path / "data").mkdir()
    return Daemon(config)


def answers(daemon, requests):
    async def go():
        out = []
        async with TestClient(TestServer(build_app(daemon))) as client:
            for method, path, body in requests:
                r = await client.request(method, path, data=body)
                out.append((r.status, (await r.json())["message"]))
        return out

    return asyncio.run(go())


def test_every_route_says_not_a_manager(daemon) -> None:
    requests = [
        ("GET", "/v1.41/swarm", None),
        ("GET", "/swarm/unlockkey", None),
        ("POST", "/v1.41/swarm/unlock", '{"UnlockKey":"x"}'),
        ("POST", "/v1.41/swarm/update?version=1", "{}"),
    ]
    for kind in ("nodes", "services", "tasks", "secrets", "configs"):
        requests += [("GET", f"/v1.41/{kind}", None), ("GET", f"/v1.41/{kind}/abc", None)]
    for kind in ("nodes", "services", "secrets", "configs"):
        requests += [
            ("DELETE", f"/v1.41/{kind}/abc", None),
            ("POST", f"/v1.41/{kind}/abc/update?version=3", "{}"),
        ]
    for kind in ("services", "secrets", "configs"):
        requests.append(("POST", f"/v1.41/{kind}/create", "{}"))
    requests += [
        ("GET", "/v1.41/services/abc/logs?stdout=1", None),
        ("GET", "/v1.41/tasks/abc/logs?stderr=1", None),
    ]
    for (method, path, _body), answer in zip(requests, answers(daemon, requests), strict=True):
        assert answer == (503, NOT_MANAGER), (method, path, answer)


def test_leave_init_join_and_bad_requests(daemon) -> None:
    requests = [
        ("POST", "/v1.41/swarm/leave?force=1", None),
        ("POST", "/v1.41/swarm/leave", None),
        ("POST", "/v1.41/swarm/init", ""),
        ("POST", "/v1.41/swarm/init", '{"ListenAddr":""}'),
        ("POST", "/v1.41/swarm/init", '{"ListenAddr":"0.0.0.0:2377","Spec":{"Name":"x"}}'),
        ("POST", "/v1.41/swarm/init", "[]"),
        ("POST", "/v1.41/swarm/init", "{x"),
        ("POST", "/v1.41/swarm/join", '{"ListenAddr":"0.0.0.0:2377"}'),
        ("POST", "/v1.41/swarm/update", "{}"),
        ("POST", "/v1.41/swarm/update?version=1&rotateWorkerToken=maybe", "{}"),
        ("POST", "/v1.41/services/x/update?version=-1", "{}"),
        ("POST", "/v1.41/secrets/x/update", "{}"),
        ("GET", "/v1.41/services?status=maybe", None),
        ("GET", "/v1.41/services/x?insertDefaults=maybe", None),
        ("GET", "/v1.41/services/x/logs", None),
        ("GET", "/v1.41/nodes?filters=x", None),
        ("GET", "/v1.41/services?filters=x", None),
    ]
    assert answers(daemon, requests) == [
        (503, NOT_IN_SWARM),
        (503, NOT_IN_SWARM),
        (400, "got EOF while reading request body"),
        (400, 'invalid ListenAddr "": invalid empty address'),
        (400, 'swarm spec must be named "default"'),
        (400, "json: cannot unmarshal array into Go value of type swarm.InitRequest"),
        (400, "invalid character 'x' looking for beginning of object key string"),
        (400, "at least 1 RemoteAddr is required to join"),
        (400, "invalid swarm version '': strconv.ParseUint: parsing \"\": invalid syntax"),
        (400, "invalid value for rotateWorkerToken: maybe"),
        (400, "invalid service version '-1': strconv.ParseUint: parsing \"-1\": invalid syntax"),
        (400, "invalid secret version"),
        (400, 'invalid value for status: maybe: strconv.ParseBool: parsing "maybe": invalid syntax'),
        (400, 'invalid value for insertDefaults: maybe: strconv.ParseBool: parsing "maybe": invalid syntax'),
        (500, "Bad parameters: you must choose at least one stream"),
        (500, "invalid character 'x' looking for beginning of value"),
        (400, "invalid character 'x' looking for beginning of value"),
    ]


def test_info_says_inactive(daemon) -> None:
    assert daemon.info()["Swarm"]["LocalNodeState"] == "inactive"
