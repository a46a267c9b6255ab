"""The client side of an attach: the hijacked connection's output to our stdout/stderr (demultiplexed
without a TTY, raw with one), our stdin to the container (-i), the local terminal in raw mode with -t."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

from ...detachkeys import DEFAULT_DETACH_KEYS, EscapeScanner, to_bytes
from ..client import ApiClient, ApiError, Response, _error_message


def client_detach_keys(spec: str | None) -> bytes:
    """The keys this end watches for, as the docker CLI: the given spec, or the default when it has none
    or a bad one (the daemon, which watches too, refuses a bad one with its own error)."""
    try:
        return to_bytes(spec or DEFAULT_DETACH_KEYS)
    except ValueError:
        return to_bytes(DEFAULT_DETACH_KEYS)


class AttachedStreams:
    def __init__(
        self, host: str, container_id: str, *, stdin: bool, tty: bool, detach_keys: str | None = None
    ) -> None:
        self.client = ApiClient(host)
        self.container_id = container_id
        self.stdin = stdin
        self.tty = tty
        self.response: Response | None = None
        # with a terminal, as the docker CLI: this key sequence on stdin detaches (the container runs on);
        # the spec goes to the daemon too (attach's detachKeys, exec's DetachKeys), which watches as well
        self.detach_spec = detach_keys or ""
        self.detach_keys = client_detach_keys(detach_keys) if tty else b""
        self.detached = False

    def connect(self) -> None:
        """POST /containers/{id}/attach with the upgrade headers; the daemon answers 101."""
        query: dict[str, object] = {"stream": 1, "stdin": 1 if self.stdin else 0, "stdout": 1, "stderr": 1}
        if self.detach_spec:
            query["detachKeys"] = self.detach_spec
        response = self.client.request(
            "POST",
            f"/containers/{self.container_id}/attach",
            query,
            headers={"Connection": "Upgrade", "Upgrade": "tcp"},
            check=False,
        )
        if response.status != 101:
            if response.status >= 400:
                raise ApiError(response.status, _error_message(response))
            raise ApiError(response.status, f"unexpected answer to attach: {response.status}")
        self.response = response

    def close(self) -> None:
        self.client.close()

    def run(self, resize: Callable[[int, int], None] | None = None) -> None:
        """Copy both ways until the container's output ends."""
        assert self.response is not None
        conn = self.response._conn
        sock = conn.sock
        terminal = self.tty and self.stdin and os.isatty(0)
        saved = None
        if self.tty and resize is not None and os.isatty(1):
            size = os.get_terminal_size(1)
            resize(size.lines, size.columns)
            previous = signal.getsignal(signal.SIGWINCH)

            def on_winch(*_: object) -> None:
                with contextlib.suppress(OSError):
                    s = os.get_terminal_size(1)
                    resize(s.lines, s.columns)

            signal.signal(signal.SIGWINCH, on_winch)
        else:
            previous = None
        if terminal:
            import termios
            import tty

            saved = termios.tcgetattr(0)
            tty.setraw(0)
        try:
            if self.stdin:
                threading.Thread(target=self._pump_stdin, args=(sock,), daemon=True).start()
            self._pump_output(conn.reader)
        finally:
            if saved is not None:
                import termios

                termios.tcsetattr(0, termios.TCSADRAIN, saved)
            if previous is not None:
                signal.signal(signal.SIGWINCH, previous)

    def _pump_stdin(self, sock: socket.socket) -> None:
        scanner = EscapeScanner(self.detach_keys)  # the same watch as the daemon's (no keys: none)
        try:
            while data := os.read(0, 65536):
                data, detached = scanner.feed(data)
                if data:
                    sock.sendall(data)
                if detached:
                    self.detached = True
                    sock.shutdown(socket.SHUT_RDWR)  # the output pump ends; nothing more sent
                    return
            if held := scanner.flush():
                sock.sendall(held)
            sock.shutdown(1)  # half-close: the container's stdin ends
        except OSError:
            pass

    def _pump_output(self, reader: io.BufferedReader) -> None:
        out, err = sys.stdout.buffer, sys.stderr.buffer
        if self.tty:
            with contextlib.suppress(OSError, ValueError):
                while data := reader.read1(65536):
                    out.write(data)
                    out.flush()
            return
        demux = StreamDemux(out, err)
        with contextlib.suppress(OSError, ValueError):
            while data := reader.read1(65536):
                demux.feed(data)


class StreamDemux:
    """Docker's multiplexed stream without a TTY: 8-byte headers (stream id, big-endian length), each
    frame's payload written to stdout or stderr. Used for attach and for logs."""

    def __init__(self, out: io.BufferedWriter, err: io.BufferedWriter) -> None:
        self._out, self._err = out, err
        self._pending = bytearray()  # deleting from its front is cheap, unlike slicing bytes

    def feed(self, data: bytes) -> None:
        pending = self._pending
        pending += data
        # every whole frame of what has arrived, then one cut of the buffer's front and one flush per
        # stream: a log of two million lines arrives as two million frames
        pos, end = 0, len(pending)
        written: set[io.BufferedWriter] = set()
        while end - pos >= 8:
            size = int.from_bytes(pending[pos + 4 : pos + 8], "big")
            if end - pos < 8 + size:
                break
            target = self._err if pending[pos] == 2 else self._out
            target.write(pending[pos + 8 : pos + 8 + size])
            written.add(target)
            pos += 8 + size
        del pending[:pos]
        for target in written:
            target.flush()
