"""A small HTTP/1.1 client over the daemon's unix socket.

Hand-written on purpose: http.client alone costs ~35 ms to import (it pulls in the email package),
which would double the CLI's start-up. This handles what the Engine API needs: Content-Length and
chunked bodies, keep-alive, streams read as they arrive, and the raw socket for hijacked streams.
"""

from __future__ import annotations

import json
import os
import socket

# typing costs ~4 ms to import at CLI start-up; annotations here are never evaluated.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

API_PREFIX = "/v1.41"
DEFAULT_HOST = "unix:///var/run/dockyard.sock"


class DaemonUnavailable(Exception):
    def __init__(self, host: str) -> None:
        super().__init__(f"Cannot connect to the Dockyard daemon at {host}. Is the dockyard daemon running?")


class ApiError(Exception):
    """The daemon answered with an error status; message is Docker's text for it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Response:
    def __init__(self, conn: Connection, status: int, reason: str, headers: dict[str, str]) -> None:
        self._conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        length = headers.get("content-length")
        self._remaining = int(length) if length is not None else None
        self._done = status in (204, 304) or (self._remaining == 0 and not self._chunked)

    def iter_chunks(self) -> Iterator[bytes]:
        """The body as it arrives (one HTTP chunk at a time when chunked)."""
        reader = self._conn.reader
        if self._done:
            return
        if self._chunked:
            while True:
                size_line = reader.readline()
                if not size_line:
                    break
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    reader.readline()  # the blank line after the last chunk (no trailers expected)
                    break
                data = reader.read(size)
                reader.readline()
                yield data
        elif self._remaining is not None:
            while self._remaining > 0:
                data = reader.read1(min(self._remaining, 65536))
                if not data:
                    break
                self._remaining -= len(data)
                yield data
        else:
            while data := reader.read1(65536):
                yield data
            self._conn.close()
        self._done = True

    def iter_lines(self) -> Iterator[bytes]:
        pending = b""
        for chunk in self.iter_chunks():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from (line for line in lines if line.strip())
        if pending.strip():
            yield pending

    def read(self) -> bytes:
        return b"".join(self.iter_chunks())

    def json(self) -> Any:
        return json.loads(self.read() or b"null")

    @property
    def socket(self) -> socket.socket:
        """The raw connection, for hijacked streams (attach, exec)."""
        return self._conn.sock


class Connection:
    def __init__(self, path: str, host: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError, PermissionError):
            self.sock.close()
            raise DaemonUnavailable(host) from None
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class ApiClient:
    def __init__(self, host: str | None = None) -> None:
        self.host = host or os.environ.get("DOCKYARD_HOST") or DEFAULT_HOST
        if not self.host.startswith("unix://"):
            raise ValueError(f"unsupported host {self.host!r}: only unix:// sockets are supported")
        self.path = self.host[len("unix://") :]
        self._conn: Connection | None = None
        self._last: Response | None = None

    def _connection(self) -> Connection:
        # Reuse the connection when the previous response was read to its end (keep-alive).
        if self._conn is not None and (self._last is None or not self._last._done):
            self._conn.close()
            self._conn = None
        if self._conn is None:
            self._conn = Connection(self.path, self.host)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        check: bool = True,
    ) -> Response:
        """Send one request; raise ApiError for an error status unless check is False."""
        target = API_PREFIX + quote(path, safe="/:@")
        if query:
            pairs = {k: _query_value(v) for k, v in query.items() if v is not None and v is not False}
            if pairs:
                target += "?" + urlencode(pairs)
        data = b""
        head = {"Host": "dockyard", "User-Agent": "Dockyard-Client"}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            head["Content-Type"] = "application/json" if not isinstance(body, bytes) else "application/x-tar"
        head["Content-Length"] = str(len(data))
        head.update(headers or {})
        lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items()]
        wire = ("\r\n".join(lines) + "\r\n\r\n").encode() + data
        for attempt in (0, 1):
            conn = self._connection()
            try:
                conn.sock.sendall(wire)
                response = self._read_head(conn)
                break
            except (BrokenPipeError, ConnectionResetError, EOFError):
                # A kept-alive connection the daemon closed meanwhile: retry once on a fresh one.
                conn.close()
                self._conn = None
                if attempt:
                    raise DaemonUnavailable(self.host) from None
        self._last = response
        if check and response.status >= 400:
            raise ApiError(response.status, _error_message(response))
        return response

    def _read_head(self, conn: Connection) -> Response:
        status_line = conn.reader.readline()
        if not status_line:
            raise EOFError
        _, status, *reason = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            line = conn.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        return Response(conn, int(status), reason[0] if reason else "", headers)

    def get_json(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, query).json()

    def post_json(self, path: str, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, query, body).json()

    def send(
        self,
        method: str,
        path: str,
        query: list[tuple[str, Any]] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        check: bool = True,
    ) -> Response:
        """What request() cannot say: query keys that repeat (`names=a&names=b`, given as pairs) and a
        body streamed from a binary file object in chunked encoding, so an archive is never held whole
        in memory. Always on a fresh connection: a streamed body cannot be replayed on a retry."""
        target = API_PREFIX + quote(path, safe="/:@")
        pairs = [(k, _query_value(v)) for k, v in query or [] if v is not None and v is not False]
        if pairs:
            target += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs)
        head = {"Host": "dockyard", "User-Agent": "Dockyard-Client"}
        if body is None:
            head["Content-Length"] = "0"
        else:
            head["Content-Type"] = "application/x-tar"
            head["Transfer-Encoding"] = "chunked"
        head.update(headers or {})
        lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items()]
        self.close()
        conn = self._connection()
        try:
            conn.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            if body is not None:
                while chunk := body.read(65536):
                    conn.sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                conn.sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered before reading it all (an error): read what it said
        try:
            response = self._read_head(conn)
        except (EOFError, ConnectionResetError):
            raise DaemonUnavailable(self.host) from None
        self._last = response
        if check and response.status >= 400:
            raise ApiError(response.status, _error_message(response))
        return response


# Percent-encoding by hand: urllib.parse costs ~4 ms to import on every CLI start.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text: str, safe: str = "") -> str:
    keep = _UNRESERVED | frozenset(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in text.encode())


def urlencode(pairs: dict[str, str]) -> str:
    return "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs.items())


def _query_value(value: Any) -> str:
    if value is True:
        return "1"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _error_message(response: Response) -> str:
    body = response.read()
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    if body.strip() and data is None:
        return body.decode(errors="replace").strip()
    return f"API returned a {response.status} ({response.reason}) but provided no error-message"
