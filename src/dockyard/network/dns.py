"""The embedded DNS server of user-defined networks: containers on a network find each other by name, alias
and short ID, as on a Docker user-defined network. One UDP socket per network on its gateway address, served
by one thread; names it does not know go to the host's resolvers (when the host has any beyond loopback)."""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
TTL = 600
RCODE_NXDOMAIN = 3
RCODE_SERVFAIL = 2
RCODE_FORMERR = 1

# network id -> name -> address (or None when the name is unknown on that network)
Lookup = Callable[[str, str], "str | None"]


def parse_question(packet: bytes) -> tuple[int, int, str, int, int]:
    """(id, flags, name, qtype, end of the question) of a query; ValueError when malformed."""
    if len(packet) < 12:
        raise ValueError("short packet")
    ident, flags, qdcount = struct.unpack_from("!HHH", packet)
    if qdcount != 1:
        raise ValueError("one question expected")
    labels = []
    offset = 12
    while True:
        if offset >= len(packet):
            raise ValueError("truncated name")
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0:
            raise ValueError("compressed question name")
        labels.append(packet[offset : offset + length].decode("ascii", errors="replace"))
        offset += length
    if offset + 4 > len(packet):
        raise ValueError("truncated question")
    qtype, _qclass = struct.unpack_from("!HH", packet, offset)
    return ident, flags, ".".join(labels), qtype, offset + 4


def answer(packet: bytes, address: str | None, rcode: int = 0) -> bytes:
    """The reply to `packet`: one A record for `address`, none (NOERROR/NODATA) or an error code."""
    ident, flags, _name, qtype, end = parse_question(packet)
    reply_flags = 0x8000 | (flags & 0x0100) | 0x0080 | rcode  # QR, RD copied, RA
    answers = b""
    count = 0
    if address and qtype == TYPE_A and not rcode:
        answers = struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(address)
        count = 1
    header = struct.pack("!HHHHHH", ident, reply_flags, 1, count, 0, 0)
    return header + packet[12:end] + answers


def host_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    servers = []
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) > 1 and parts[0] == "nameserver":
                if not (parts[1].startswith("127.") or parts[1] == "::1") and ":" not in parts[1]:
                    servers.append(parts[1])
    return servers


class DnsServer:
    """Serves every user network's DNS socket from one thread."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self._sockets: dict[str, socket.socket] = {}  # network id -> socket
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread: threading.Thread | None = None
        self._stopping = False

    def add(self, network_id: str, address: str) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, 53))
        except OSError as e:
            sock.close()
            log.warning("network %s: no embedded DNS on %s:53: %s", network_id[:12], address, e)
            return
        with self._lock:
            old = self._sockets.pop(network_id, None)
            self._sockets[network_id] = sock
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="dns", daemon=True)
                self._thread.start()
        if old:
            old.close()
        self._wake()

    def remove(self, network_id: str) -> None:
        with self._lock:
            sock = self._sockets.pop(network_id, None)
        self._wake()
        if sock:
            sock.close()

    def close(self) -> None:
        self._stopping = True
        self._wake()
        if self._thread:
            self._thread.join(timeout=5)
        with self._lock:
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _serve(self) -> None:
        while not self._stopping:
            with self._lock:
                by_fd = {s.fileno(): (nid, s) for nid, s in self._sockets.items()}
            try:
                ready, _, _ = select.select([self._wake_r, *by_fd], [], [])
            except (OSError, ValueError):
                continue  # a socket closed under us: take the new set
            for fd in ready:
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    continue
                network_id, sock = by_fd[fd]
                try:
                    packet, peer = sock.recvfrom(4096)
                except OSError:
                    continue
                self._handle(network_id, sock, packet, peer)

    def _handle(self, network_id: str, sock: socket.socket, packet: bytes, peer: tuple[str, int]) -> None:
        try:
            _ident, _flags, name, qtype, _end = parse_question(packet)
        except ValueError:
            return
        key = name.rstrip(".").lower()
        try:
            address = self.lookup(network_id, key)
        except Exception:  # a lookup bug must not end the server
            log.exception("dns lookup of %s", key)
            address = None
        if address is not None:
            with contextlib.suppress(OSError):
                sock.sendto(answer(packet, address), peer)
            return
        threading.Thread(target=self._forward, args=(sock, packet, peer), daemon=True).start()

    def _forward(self, sock: socket.socket, packet: bytes, peer: tuple[str, int]) -> None:
        """A name that is not a container's: ask the host's resolvers, or answer NXDOMAIN without any."""
        for server in host_resolvers():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
                upstream.settimeout(2)
                try:
                    upstream.sendto(packet, (server, 53))
                    reply = upstream.recv(4096)
                except OSError:
                    continue
            with contextlib.suppress(OSError):
                sock.sendto(reply, peer)
            return
        with contextlib.suppress(OSError, ValueError):
            sock.sendto(answer(packet, None, RCODE_NXDOMAIN), peer)
