"""The API layer over a real Daemon object, through aiohttp's in-process test server (no root needed)."""

import asyncio
import json
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dockyard.api import build_app
from dockyard.api.system import event_matches, parse_timestamp
from dockyard.engine import Daemon, Event, build_config
from dockyard.engine.config import NO_HOST_NETWORK


@pytest.fixture
def daemon(tmp_path):
    config = build_config(
        NO_HOST_NETWORK, {"data-root": str(tmp_path / "data"), "exec-root": str(tmp_path / "exec")}, "x"
    )
    (tmp_path / "data").mkdir()
    return Daemon(config)


def call(daemon, coro_fn):
    async def go():
        async with TestClient(TestServer(build_app(daemon))) as client:
            return await coro_fn(client)

    return asyncio.run(go())


def test_version_prefixes_and_headers(daemon):
    async def go(client):
        out = []
        for path in ("/version", "/v1.24/version", "/v1.41/version", "/v1.42/version", "/v1.23/version"):
            r = await client.get(path)
            out.append((r.status, r.headers.get("Api-Version"), await r.text()))
        return out

    results = call(daemon, go)
    assert [s for s, _, _ in results] == [200, 200, 200, 400, 400]
    assert all(h == "1.41" for _, h, _ in results)
    assert json.loads(results[0][2])["Version"]
    assert json.loads(results[3][2]) == {
        "message": "client version 1.42 is too new. Maximum supported API version is 1.41"
    }


def test_not_found_and_method_not_allowed(daemon):
    async def go(client):
        a = await client.get("/v1.41/nothing/here")
        b = await client.delete("/v1.41/version")
        return a.status, await a.json(), b.status

    status, body, method_status = call(daemon, go)
    assert (status, body) == (404, {"message": "page not found"})
    assert method_status == 405


def test_info_shape(daemon):
    async def go(client):
        return await (await client.get("/v1.41/info")).json()

    info = call(daemon, go)
    for key in (
        "ID",
        "Containers",
        "Images",
        "Driver",
        "NCPU",
        "MemTotal",
        "KernelVersion",
        "RegistryConfig",
        "Runtimes",
        "DefaultRuntime",
        "Swarm",
        "CgroupVersion",
        "DockerRootDir",
        "ServerVersion",
    ):
        assert key in info
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    assert "dockyard" in info["Runtimes"]


def test_engine_id_is_persistent(tmp_path, daemon):
    again = Daemon(daemon.config)
    assert again.id == daemon.id


def test_events_stream_delivers_published_events(daemon):
    async def go(client):
        until = time.time() + 1.5
        task = asyncio.create_task(
            client.get(f"/v1.41/events?until={until}&filters=" + '{"type":{"container":true}}')
        )
        await asyncio.sleep(0.3)
        daemon.events.emit("container", "start", "abc", name="web", image="busybox")
        daemon.events.emit("image", "pull", "busybox:latest")
        response = await task
        return [json.loads(line) for line in (await response.text()).splitlines()]

    events = call(daemon, go)
    assert len(events) == 1
    assert events[0]["Type"] == "container" and events[0]["Action"] == "start"
    assert events[0]["status"] == "start" and events[0]["from"] == "busybox"
    assert events[0]["Actor"]["Attributes"]["name"] == "web"


def test_parse_timestamp_forms():
    now = 1_000_000.0
    assert parse_timestamp("12345", now) == 12345
    assert parse_timestamp("12345.5", now) == 12345.5
    assert parse_timestamp("10m", now) == now - 600
    assert parse_timestamp("1h30m", now) == now - 5400
    assert parse_timestamp("2026-01-01T00:00:00Z", now) == 1767225600


def test_event_filters():
    event = Event("container", "die", "abc", {"name": "web", "image": "busybox", "com.x": "1"})
    assert event_matches(event, {})
    assert event_matches(event, {"type": ["container"], "event": ["die"]})
    assert not event_matches(event, {"type": ["image"]})
    assert event_matches(event, {"container": ["web"]})
    assert not event_matches(event, {"container": ["db"]})
    assert event_matches(event, {"label": ["com.x=1"]})
    assert not event_matches(event, {"label": ["com.x=2"]})
