"""The connection hijack of attach and exec start: the 101, then raw bytes both ways between the client
and a shim's stream, with dockerd's rules for the end of the client's input and its detach keys.

As dockerd's `container/stream` copies them, with a stdin attached:
  - with a terminal, the input is watched for the detach keys (`detachkeys.EscapeScanner`); once they are
    typed the attach ends, the process runs on;
  - the end of the client's input (its half-close) closes the process's stdin when the stream is one
    that closes it (an exec's, a StdinOnce container's) and has no terminal; otherwise it ends the attach
    as a detach does (`eof_ends`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from ..detachkeys import DEFAULT_DETACH_KEYS, EscapeScanner, to_bytes

__all__ = ["END", "DETACHED", "INPUT_ENDED", "GONE", "Hijacked", "copy_streams", "hijack", "watched_keys"]

# why copy_streams ended
END = "end"  # the shim ended the stream: all the process's output was sent
DETACHED = "detached"  # the client typed the detach keys
INPUT_ENDED = "input-ended"  # the client's input ended, and with it the attach (eof_ends)
GONE = "gone"  # the client's connection is gone


def watched_keys(spec: str, daemon_default: str = "") -> bytes:
    """The detach keys an attach watches for: the request's, else daemon.json's `detach-keys`, else
    ctrl-p,ctrl-q (ValueError for a bad spec)."""
    return to_bytes(spec or daemon_default or DEFAULT_DETACH_KEYS)


class Hijacked(asyncio.Protocol):
    """The client's connection once attach took it over from aiohttp: bytes both ways, half-close kept."""

    def __init__(self, response: web.StreamResponse, transport: asyncio.Transport, previous: Any):
        self.response = response  # the prepared 101: what the handler returns
        self.transport = transport
        self.previous = previous  # aiohttp's protocol: told when the connection is gone
        self.reader = asyncio.StreamReader()
        self.closed = asyncio.get_running_loop().create_future()
        self._can_write = asyncio.Event()
        self._can_write.set()

    def data_received(self, data: bytes) -> None:
        self.reader.feed_data(data)

    def eof_received(self) -> bool:
        self.reader.feed_eof()
        return True  # keep our side open: the output still flows

    def connection_lost(self, exc: BaseException | None) -> None:
        self.reader.feed_eof()
        self._can_write.set()
        if not self.closed.done():
            self.closed.set_result(None)
        with contextlib.suppress(Exception):
            self.previous.connection_lost(exc)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def write(self, data: bytes) -> None:
        if self.closed.done():
            raise ConnectionResetError("the client is gone")
        self.transport.write(data)
        await self._can_write.wait()


async def hijack(request: web.Request, content_type: str) -> Hijacked:
    response = web.StreamResponse(
        status=101,
        reason="UPGRADED",
        headers={"Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"},
    )
    response.force_close()
    await response.prepare(request)
    await response.drain()
    transport = request.transport
    protocol = request.protocol
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client is gone")
    tail = bytes(getattr(protocol, "_message_tail", b"") or b"")  # what came after the request
    with contextlib.suppress(AttributeError):
        protocol._message_tail = b""
    hijacked = Hijacked(response, transport, protocol)
    transport.set_protocol(hijacked)
    if tail:
        hijacked.reader.feed_data(tail)
    with contextlib.suppress(Exception):
        transport.resume_reading()
    return hijacked


async def copy_streams(
    client: Hijacked,
    shim_reader: asyncio.StreamReader,
    shim_writer: asyncio.StreamWriter,
    stdin: bool,
    *,
    detach_keys: bytes = b"",
    eof_ends: bool = False,
) -> str:
    """A shim's stream (attach, exec) to the hijacked client and, when `stdin`, the client's input to it,
    until the shim ends the stream, the client detaches or goes; returns which (END, DETACHED,
    INPUT_ENDED, GONE). `detach_keys`: the sequence watched for (b"": none). `eof_ends`: the end of the
    client's input ends the attach; else it is passed on as a half-close (the process's stdin ends)."""
    scanner = EscapeScanner(detach_keys) if stdin and detach_keys else None

    async def output() -> None:
        while chunk := await shim_reader.read(65536):
            await client.write(chunk)

    async def send(chunk: bytes) -> None:
        if chunk:
            shim_writer.write(chunk)
            await shim_writer.drain()

    async def input_() -> str | None:
        while chunk := await client.reader.read(65536):
            if not stdin:
                continue
            if scanner is None:
                await send(chunk)
                continue
            chunk, detached = scanner.feed(chunk)
            await send(chunk)
            if detached:
                return DETACHED
        if not stdin or client.closed.done():
            return None
        if scanner is not None:
            await send(scanner.flush())
        if eof_ends:
            return INPUT_ENDED
        shim_writer.write_eof()  # the client half-closed: the process's stdin ends (StdinOnce)
        return None

    out_task = asyncio.ensure_future(output())
    in_task = asyncio.ensure_future(input_())
    pending: set[asyncio.Future[Any]] = {out_task, in_task, client.closed}
    try:
        while True:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if in_task in done and not in_task.cancelled() and in_task.exception() is None:
                verdict = in_task.result()
                if verdict is not None:
                    return verdict
            if out_task in done:
                return END if out_task.exception() is None else GONE
            if client.closed in done:
                return GONE
            # the input ended without ending the attach (or failed: the shim's side went): output goes on
    finally:
        for task in (out_task, in_task):
            task.cancel()
        for task in (out_task, in_task):
            with contextlib.suppress(BaseException):
                await task
