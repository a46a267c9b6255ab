"""Container routes: create, start, wait, stop, kill, remove, inspect, list, logs, attach, resize."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from fractions import Fraction
from typing import Any

from aiohttp import web

from ..containers import update as container_update
from ..containers.service import ContainerError
from ..logs.jsonfile import format_time
from ..logs.options import LogConfigError, readable
from ..runtime import shim_protocol
from ..units import parse_time
from .errors import BadRequest
from .hijack import DETACHED, Hijacked, copy_streams, hijack, watched_keys
from .http import json_body, json_response, query_bool, query_filters, query_int, query_size
from .routing import Route, daemon_of

log = logging.getLogger("dockyard.api")


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    daemon = daemon_of(request)
    container_id, warnings = daemon.containers.create(request.query.get("name", ""), body)
    return json_response({"Id": container_id, "Warnings": warnings or []}, 201)


async def start(request: web.Request) -> web.Response:
    await daemon_of(request).containers.start(request.match_info["id"])
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    service = daemon_of(request).containers
    service.get(request.match_info["id"])
    # Headers first, as dockerd does: the CLI waits for them before it starts the container.
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        code = await service.wait(request.match_info["id"], request.query.get("condition", ""))
        body: dict = {"StatusCode": code, "Error": None}
    except ContainerError as e:
        body = {"StatusCode": -1, "Error": {"Message": str(e)}}
    try:
        await response.write((json.dumps(body) + "\n").encode())
        await response.write_eof()
    except ConnectionError:  # the client went away meanwhile (aiohttp's reset error is one)
        pass
    return response


async def stop(request: web.Request) -> web.Response:
    await daemon_of(request).containers.stop(request.match_info["id"], query_int(request, "t"))
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    service = daemon_of(request).containers
    await service.restart(request.match_info["id"], query_int(request, "t"))
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    await daemon_of(request).containers.kill(request.match_info["id"], request.query.get("signal"))
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    if query_bool(request, "link"):  # the name is a link's, `parent/alias`
        daemon_of(request).containers.remove_link(request.match_info["id"])
        return web.Response(status=204)
    await daemon_of(request).containers.remove(
        request.match_info["id"], query_bool(request, "force"), volumes=query_bool(request, "v")
    )
    return web.Response(status=204)


async def inspect(request: web.Request) -> web.Response:
    service = daemon_of(request).containers
    data = service.inspect(request.match_info["id"])
    if query_bool(request, "size"):
        c = service.get(data["Id"])
        data["SizeRw"], data["SizeRootFs"] = await asyncio.to_thread(service.size, c)
    return json_response(data)


async def list_containers(request: web.Request) -> web.Response:
    service = daemon_of(request).containers
    limit = query_int(request, "limit") or 0
    result = service.list(
        query_bool(request, "all"), query_filters(request), size=query_bool(request, "size"), limit=limit
    )
    return json_response(result)


def _time_param(request: web.Request, name: str) -> float | Fraction | None:
    value = request.query.get(name, "")
    if value in ("", "0"):
        return None
    if re.fullmatch(r"\d+(\.\d{1,9})?", value):
        return Fraction(value)  # "seconds.nanoseconds", as the docker CLI sends: exact, unlike a float
    try:
        return parse_time(value, __import__("time").time())
    except ValueError:
        raise BadRequest(f"invalid value for {name}: {value}") from None


async def logs(request: web.Request) -> web.StreamResponse:
    service = daemon_of(request).containers
    c = service.get(request.match_info["id"])
    try:  # --log-driver none keeps nothing to read (dockerd: 501)
        readable(c.host_config.get("LogConfig"))
    except LogConfigError as e:
        raise ContainerError(str(e), e.status) from None
    stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
    if not stdout and not stderr:
        raise BadRequest("Bad parameters: you must choose at least one stream")
    tail_text = request.query.get("tail", "all")
    tail: int | None = None
    if tail_text not in ("", "all"):
        try:
            tail = max(0, int(tail_text))
        except ValueError:
            tail = None
    timestamps = query_bool(request, "timestamps")
    tty = bool(c.config.get("Tty"))
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "application/vnd.docker.raw-stream"
            if tty
            else "application/vnd.docker.multiplexed-stream"
        },
    )
    await response.prepare(request)
    try:
        async for batch in service.logs(
            c.id,
            follow=query_bool(request, "follow"),
            tail=tail,
            since=_time_param(request, "since"),
            until=_time_param(request, "until"),
            stdout=stdout,
            stderr=stderr,
        ):
            await response.write(_log_frames(batch, tty, timestamps))
    except (ConnectionResetError, ConnectionError):
        return response
    await response.write_eof()
    return response


def _log_frames(batch: list[tuple[str, int, bytes]], tty: bool, timestamps: bool) -> bytes:
    """Log records as the stream sends them: raw with a TTY, else one multiplexed frame per record (as
    dockerd frames them: clients such as docker-py's logs(stream=True) hand out one frame at a time)."""
    parts: list[bytes] = []
    for stream, ns, data in batch:
        if timestamps:
            data = format_time(ns).encode() + b" " + data
        if not tty:
            parts.append(
                (b"\x01\0\0\0" if stream == "stdout" else b"\x02\0\0\0") + len(data).to_bytes(4, "big")
            )
        parts.append(data)
    return b"".join(parts)


async def _bridge(
    client: Hijacked, c: Any, state_dir: str, stdin: bool, stdout: bool, stderr: bool, keys: bytes
) -> str:
    """The attach's stream from the shim, until it ends (hijack.copy_streams: why it ended)."""
    sock = await asyncio.to_thread(shim_protocol.connect, state_dir, 10.0)
    sock.setblocking(False)
    shim_reader, shim_writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
    try:
        shim_writer.write(
            json.dumps({"op": "attach", "stdin": stdin, "stdout": stdout, "stderr": stderr}).encode() + b"\n"
        )
        reply = json.loads(await shim_reader.readline() or b"{}")
        if not reply.get("ok"):
            raise ConnectionError(reply.get("error") or "the shim refused the attach")
        # as dockerd: no stdin without OpenStdin; with a terminal the input is watched for the detach keys,
        # and its end ends the attach unless it closes the container's stdin (StdinOnce, no terminal)
        tty = bool(c.config.get("Tty"))
        stdin = stdin and bool(c.config.get("OpenStdin"))
        stdin_once = bool(c.config.get("StdinOnce"))
        return await copy_streams(
            client,
            shim_reader,
            shim_writer,
            stdin,
            detach_keys=keys if tty else b"",
            eof_ends=tty or not stdin_once,
        )
    finally:
        shim_writer.close()
        with contextlib.suppress(Exception):
            await shim_writer.wait_closed()


async def attach(request: web.Request) -> web.StreamResponse:
    """The connection hijack: 101, then raw bytes both ways (dockerd's /containers/{id}/attach). Before
    the container starts (docker run attaches first) it waits for the start, and the start has the shim
    hold the output until this attach reaches it (ContainerService.attach_pending). The detach keys
    (`detachKeys`, else daemon.json's `detach-keys`, else ctrl-p,ctrl-q) end it, the container runs on."""
    daemon = daemon_of(request)
    spec = request.query.get("detachKeys", "")
    try:
        keys = watched_keys(spec, daemon.config.detach_keys)
    except ValueError:  # dockerd answers this one on the hijacked connection, as plain text
        return web.Response(
            status=400,
            body=f"Invalid detach keys ({spec}) provided\r\n".encode(),
            content_type="application/vnd.docker.raw-stream",
        )
    service = daemon.containers
    c = service.get(request.match_info["id"])
    stdin, stdout, stderr = (query_bool(request, k) for k in ("stdin", "stdout", "stderr"))
    tty = bool(c.config.get("Tty"))
    content_type = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    async with service.attach_pending(c.id):
        try:
            client = await hijack(request, content_type)
        except (ConnectionError, RuntimeError):
            return web.Response(status=499)
        try:
            if query_bool(request, "logs"):  # what was logged first, as dockerd (then the live stream)
                async for batch in service.logs(c.id, stdout=stdout, stderr=stderr):
                    await client.write(_log_frames(batch, tty, False))
            if request.query.get("stream", "1") in ("0", "false", "False"):
                return client.response
            if not c.running:
                started = asyncio.ensure_future(service.wait_started(c.id))
                await asyncio.wait({started, client.closed}, return_when=asyncio.FIRST_COMPLETED)
                if not started.done():
                    started.cancel()
                    return client.response
                started.result()
            ended = await _bridge(client, c, service.shim_dir(c), stdin, stdout, stderr, keys)
            if ended == DETACHED:
                service.events.emit("container", "detach", c.id, image=c.image, name=c.name)
        except (ContainerError, OSError, shim_protocol.ShimError, ValueError) as e:
            log.debug("attach %s: %s", c.id, e)
        finally:
            client.transport.close()
    return client.response


async def resize(request: web.Request) -> web.Response:
    height, width = query_size(request)
    await daemon_of(request).containers.resize(request.match_info["id"], height, width)
    return web.Response(status=200)


async def top(request: web.Request) -> web.Response:
    result = await daemon_of(request).containers.top(
        request.match_info["id"], request.query.get("ps_args", "")
    )
    return json_response(result)


async def stats(request: web.Request) -> web.StreamResponse:
    """One JSON document a second (dockerd's encoder: a newline after each) while `stream`, else one."""
    service = daemon_of(request).containers
    service.get(request.match_info["id"])
    stream = query_bool(request, "stream", default=True)
    samples = service.stats(request.match_info["id"], stream=stream, one_shot=query_bool(request, "one-shot"))
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        async for sample in samples:
            await response.write((json.dumps(sample) + "\n").encode())
    except (ConnectionResetError, ConnectionError):
        return response
    finally:
        await samples.aclose()
    await response.write_eof()
    return response


async def update(request: web.Request) -> web.Response:
    """`docker update` (containers/update.py): {"Warnings": [...]}."""
    raw = (await request.read()).decode("utf-8", errors="replace") if request.can_read_body else ""
    if not raw.strip():  # the 20.10 router's json.Decoder: EOF, a 500
        raise ContainerError("EOF", 500)
    try:
        body = json.loads(raw)
    except json.JSONDecodeError:
        from .gojson import syntax_error

        raise ContainerError(syntax_error(raw), 500) from None
    warnings = await container_update.update(daemon_of(request).containers, request.match_info["id"], body)
    return json_response({"Warnings": warnings or None})  # dockerd: null when none


async def rename(request: web.Request) -> web.Response:
    daemon_of(request).containers.rename(request.match_info["id"], request.query.get("name", ""))
    return web.Response(status=204)


async def pause(request: web.Request) -> web.Response:
    await daemon_of(request).containers.pause(request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await daemon_of(request).containers.unpause(request.match_info["id"])
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    return json_response(await daemon_of(request).containers.prune(query_filters(request)))


ROUTES = [
    Route("POST", "/containers/create", create),
    Route("GET", "/containers/json", list_containers),
    Route("POST", "/containers/{id}/start", start),
    Route("POST", "/containers/{id}/wait", wait),
    Route("POST", "/containers/{id}/stop", stop),
    Route("POST", "/containers/{id}/restart", restart),
    Route("POST", "/containers/{id}/kill", kill),
    Route("DELETE", "/containers/{id:.+}", remove),  # a link's name has a slash: parent/alias
    Route("GET", "/containers/{id}/json", inspect),
    Route("GET", "/containers/{id}/logs", logs),
    Route("POST", "/containers/{id}/attach", attach),
    Route("POST", "/containers/{id}/resize", resize),
    Route("GET", "/containers/{id}/top", top),
    Route("GET", "/containers/{id}/stats", stats),
    Route("POST", "/containers/{id}/rename", rename),
    Route("POST", "/containers/{id}/update", update),
    Route("POST", "/containers/{id}/pause", pause),
    Route("POST", "/containers/{id}/unpause", unpause),
    Route("POST", "/containers/prune", prune),
]
