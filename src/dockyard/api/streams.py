"""Docker's JSON message streams (pull, push, load): one JSON object per chunk, each ending in CRLF."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web


class JsonStream:
    """A chunked application/json response fed with messages, in order, from synchronous callbacks."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response = web.StreamResponse(headers={"Content-Type": "application/json"})
        self.response.enable_chunked_encoding()
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self.client_gone = False

    async def prepare(self) -> JsonStream:
        await self.response.prepare(self.request)
        self._writer = asyncio.create_task(self._drain())
        return self

    def send(self, message: dict[str, Any]) -> None:
        self._queue.put_nowait(message)

    def error(self, text: str) -> None:
        self.send({"errorDetail": {"message": text}, "error": text})

    async def _drain(self) -> None:
        while (message := await self._queue.get()) is not None:
            if self.client_gone:
                continue
            try:
                await self.response.write((json.dumps(message, separators=(",", ":")) + "\r\n").encode())
            except (ConnectionResetError, RuntimeError):
                self.client_gone = True  # keep draining: the work goes on without a reader

    async def finish(self) -> web.StreamResponse:
        self._queue.put_nowait(None)
        if self._writer is not None:
            await self._writer
        if not self.client_gone:
            try:
                await self.response.write_eof()
            except (ConnectionResetError, RuntimeError):
                pass
        return self.response
