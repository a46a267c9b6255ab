"""The embedded DNS of containers on user networks, as dockerd's: at 127.0.0.11:53, UDP and TCP, inside each
container's network namespace, answering for every user network the container is on.

dockerd listens in the container's namespace on random ports and DNATs :53 to them with iptables. Here a
throwaway thread enters the namespace and binds a UDP socket and a listening TCP socket to 127.0.0.11:53
itself (lo is up there and 127.0.0.0/8 is local on it); a socket keeps its namespace after the thread has
gone, so one thread of the daemon's serves every container's sockets (epoll). They are made with the
sandbox and closed at its release (before its namespace is let go: a socket holds its namespace), and made
again for running containers when the daemon restarts (`attach` from the network service's `recover`).

Answers: A records for the names of `names.ContainerNames`, AAAA records for their IPv6 addresses (on
EnableIPv6 networks; NOERROR without records for AAAA of a name without one, and for MX), PTR for their
addresses (in-addr.arpa and ip6.arpa); anything else goes to the container's
forwarders (resolvconf.py), over the protocol it came by, three at most, the next one after a failure, a
SERVFAIL/REFUSED or a non-authoritative NXDOMAIN (dockerd's rules); a forwarder is asked from the container's
namespace (its own route out, as dockerd's) or, for the host's loopback resolvers, from the host's. NXDOMAIN
when there is no forwarder, SERVFAIL when none answered.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import select
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..linux.namespaces import enter_netns
from .resolvconf import EMBEDDED_DNS, DnsSettings

log = logging.getLogger(__name__)

TYPE_A = 1
TYPE_PTR = 12
TYPE_MX = 15
TYPE_AAAA = 28
CLASS_IN = 1
TTL = 600
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5
UDP_LIMIT = 512  # the reply size a client without EDNS takes
UPSTREAM_TIMEOUT = 4.0  # dockerd's extIOTimeout
TCP_IDLE = 5.0
MAX_CONCURRENT = 100  # forwarded queries (and TCP connections) at once, as dockerd's maxConcurrent
PTR_SUFFIX = ".in-addr.arpa"


class Names(Protocol):
    def addresses(self, container_id: str, name: str, v6: bool = False) -> list[str] | None: ...

    def reverse(self, container_id: str, address: str) -> str | None: ...


# --- the wire ------------------------------------------------------------------------------------------


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


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii", errors="replace")[:63]
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def _record(rtype: int, rdata: bytes) -> bytes:
    """A resource record for the question's name (a pointer to offset 12)."""
    return struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, TTL, len(rdata)) + rdata


def reply(packet: bytes, records: list[bytes] | None = None, rcode: int = 0, limit: int = 65535) -> bytes:
    """The reply to `packet` with `records` as its answers (as many as fit in `limit`, TC set when some do
    not), or an error code."""
    ident, flags, _name, _qtype, end = parse_question(packet)
    reply_flags = 0x8000 | (flags & 0x7900) | 0x0080 | rcode  # QR, opcode and RD copied, RA
    records = records or []
    body = packet[12:end]
    count = 0
    for record in records:
        if 12 + len(body) + len(record) > limit:
            reply_flags |= 0x0200  # TC: the client asks again over TCP
            break
        body += record
        count += 1
    return struct.pack("!HHHHHH", ident, reply_flags, 1, count, 0, 0) + body


def answer(packet: bytes, address: str | list[str] | None, rcode: int = 0, limit: int = 65535) -> bytes:
    """A records for `address` (one or a list) when the question asks for A; none (NOERROR/NODATA) for any
    other type; or an error code."""
    addresses = [address] if isinstance(address, str) else list(address or [])
    qtype = parse_question(packet)[3]
    records = [] if rcode or qtype != TYPE_A else [_record(TYPE_A, socket.inet_aton(a)) for a in addresses]
    return reply(packet, records, rcode, limit)


def ptr_address(name: str) -> str | None:
    """`5.0.18.172.in-addr.arpa` -> 172.18.0.5, 32 nibbles `.ip6.arpa` -> the IPv6 address; else None."""
    name = name.rstrip(".").lower()
    if name.endswith(".ip6.arpa"):
        nibbles = name[: -len(".ip6.arpa")].split(".")
        if len(nibbles) != 32 or not all(len(n) == 1 and n in "0123456789abcdef" for n in nibbles):
            return None
        return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16)))
    if not name.endswith(PTR_SUFFIX):
        return None
    parts = name[: -len(PTR_SUFFIX)].split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        return None
    return ".".join(reversed(parts))


def rcode_of(packet: bytes) -> int:
    return packet[3] & 0x0F if len(packet) >= 4 else RCODE_SERVFAIL


def authoritative(packet: bytes) -> bool:
    return len(packet) >= 3 and bool(packet[2] & 0x04)


def local_reply(names: Names, container_id: str, packet: bytes, ndots_set: bool, limit: int) -> bytes | None:
    """The embedded DNS's own answer to `packet` from `container_id`, or None to forward it."""
    _ident, _flags, name, qtype, _end = parse_question(packet)
    key = name.rstrip(".").lower()
    if qtype in (TYPE_A, TYPE_AAAA, TYPE_MX):
        found = names.addresses(container_id, key, v6=qtype == TYPE_AAAA)
        if found is not None:
            if qtype == TYPE_AAAA:
                records = [_record(TYPE_AAAA, socket.inet_pton(socket.AF_INET6, a)) for a in found]
                return reply(packet, records, 0, limit)
            return answer(packet, found if qtype == TYPE_A else None, limit=limit)
    elif qtype == TYPE_PTR:
        address = ptr_address(key)
        host = names.reverse(container_id, address) if address else None
        if host:
            return reply(packet, [_record(TYPE_PTR, encode_name(host))], limit=limit)
    if ndots_set and qtype in (TYPE_A, TYPE_AAAA) and "." not in key:
        # dockerd: with the user's own ndots, a bare name that is no container's is not sent out: the
        # client goes on with its search domains
        return reply(packet, limit=limit)
    return None


# --- the server ----------------------------------------------------------------------------------------


@dataclass
class Forwarder:
    address: str
    host: bool  # one of the host's loopback resolvers: asked from the host's namespace


@dataclass
class _Client:
    """One container's embedded DNS."""

    container_id: str
    netns: str
    udp: socket.socket
    tcp: socket.socket
    forwarders: list[Forwarder] = field(default_factory=list)
    ndots_set: bool = False


def _listen() -> tuple[socket.socket, socket.socket]:
    """In the container's namespace: the UDP and TCP sockets of 127.0.0.11:53."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        udp.bind((EMBEDDED_DNS, 53))
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((EMBEDDED_DNS, 53))
        tcp.listen(64)
    except BaseException:
        udp.close()
        tcp.close()
        raise
    udp.setblocking(False)
    tcp.setblocking(False)
    return udp, tcp


class DnsServer:
    """Every container's embedded DNS sockets, served by one thread."""

    def __init__(self, names: Names) -> None:
        self.names = names
        self.settings = DnsSettings()  # daemon.json's dns, dns-search, dns-opts (set by the daemon)
        self._clients: dict[str, _Client] = {}  # container id -> its sockets
        self._by_fd: dict[int, tuple[_Client, str]] = {}  # fd -> (client, "udp" | "tcp")
        self._lock = threading.Lock()
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self._thread: threading.Thread | None = None
        self._stopping = False

    # --- containers --------------------------------------------------------------------------------

    def attach(self, container_id: str, netns: str, record: dict[str, Any]) -> None:
        """Serve the container's embedded DNS (`record`: its forwarders, resolvconf.ResolvPlan.record)."""
        forwarders = [Forwarder(str(a), bool(h)) for a, h in record.get("forwarders") or []]
        ndots_set = bool(record.get("ndots"))
        with self._lock:
            existing = self._clients.get(container_id)
            if existing is not None:
                existing.forwarders, existing.ndots_set = forwarders, ndots_set
                return
        try:
            udp, tcp = enter_netns(netns, _listen)
        except OSError as e:
            log.warning("container %s: no embedded DNS at %s:53: %s", container_id[:12], EMBEDDED_DNS, e)
            return
        client = _Client(container_id, netns, udp, tcp, forwarders, ndots_set)
        with self._lock:
            self._clients[container_id] = client
            for sock, kind in ((udp, "udp"), (tcp, "tcp")):
                self._by_fd[sock.fileno()] = (client, kind)
                self._epoll.register(sock.fileno(), select.EPOLLIN)
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="dns", daemon=True)
                self._thread.start()

    def detach(self, container_id: str) -> None:
        with self._lock:
            client = self._clients.pop(container_id, None)
            if client is None:
                return
            for sock in (client.udp, client.tcp):
                self._by_fd.pop(sock.fileno(), None)
                with contextlib.suppress(OSError, ValueError):
                    self._epoll.unregister(sock.fileno())
                sock.close()

    def attached(self, container_id: str) -> bool:
        return container_id in self._clients

    def close(self) -> None:
        self._stopping = True
        self._wake()
        if self._thread:
            self._thread.join(timeout=5)
        for cid in list(self._clients):
            self.detach(cid)
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # --- serving -----------------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._stopping:
            try:
                events = self._epoll.poll()
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return  # closed under us
            for fd, _mask in events:
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    continue
                with self._lock:
                    entry = self._by_fd.get(fd)
                if entry is None:
                    continue  # detached meanwhile
                client, kind = entry
                try:
                    if kind == "udp":
                        self._read_udp(client)
                    else:
                        self._accept(client)
                except Exception:  # no thread to be had, a bug: a query is lost, not the server
                    log.exception("dns: serving %s", client.container_id[:12])

    def _read_udp(self, client: _Client) -> None:
        for _ in range(64):  # what has arrived, then back to the others
            try:
                packet, peer = client.udp.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                local = local_reply(self.names, client.container_id, packet, client.ndots_set, UDP_LIMIT)
            except ValueError:
                continue  # not a query we can read: dropped, as a server does
            except Exception:  # a lookup bug must not end the server
                log.exception("dns: lookup for %s", client.container_id[:12])
                local = _safe(packet, RCODE_SERVFAIL)
            if local is not None:
                with contextlib.suppress(OSError):
                    client.udp.sendto(local, peer)
                continue
            if not self._slots.acquire(blocking=False):
                busy = _safe(packet, RCODE_SERVFAIL)
                with contextlib.suppress(OSError):
                    if busy:
                        client.udp.sendto(busy, peer)
                continue
            self._spawn(self._forward_udp, client, packet, peer)

    def _spawn(self, target: Any, *args: Any) -> None:
        """A short thread for one query or connection, holding one of the slots (given back if it cannot
        start)."""
        try:
            threading.Thread(target=target, args=args, name="dns-query", daemon=True).start()
        except BaseException:
            self._slots.release()
            raise

    def _forward_udp(self, client: _Client, packet: bytes, peer: tuple[str, int]) -> None:
        try:
            response = self.forward(client, packet, tcp=False)
            with contextlib.suppress(OSError):
                if response:
                    client.udp.sendto(response, peer)
        finally:
            self._slots.release()

    def _accept(self, client: _Client) -> None:
        while True:
            try:
                conn, _peer = client.tcp.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                conn.close()
                continue
            try:
                self._spawn(self._serve_tcp, client, conn)
            except BaseException:
                conn.close()
                raise

    def _serve_tcp(self, client: _Client, conn: socket.socket) -> None:
        """Length-prefixed queries on one connection, answered in turn, until the client is done."""
        try:
            conn.settimeout(TCP_IDLE)
            while True:
                packet = _read_framed(conn)
                if packet is None:
                    return
                try:
                    response = local_reply(self.names, client.container_id, packet, client.ndots_set, 65535)
                except ValueError:
                    return
                if response is None:
                    response = self.forward(client, packet, tcp=True)
                if not response:
                    return
                conn.sendall(struct.pack("!H", len(response)) + response)
        except OSError:
            pass
        finally:
            conn.close()
            self._slots.release()

    # --- forwarding --------------------------------------------------------------------------------

    def forward(self, client: _Client, packet: bytes, tcp: bool) -> bytes:
        """The forwarders' answer (dockerd's order and rules), or our NXDOMAIN/SERVFAIL."""
        if not client.forwarders:
            return _safe(packet, RCODE_NXDOMAIN) or b""
        last = None
        for forwarder in client.forwarders:
            try:
                response = _ask(client.netns, forwarder, packet, tcp)
            except OSError as e:
                log.debug("dns: %s via %s: %s", client.container_id[:12], forwarder.address, e)
                continue
            last = response
            code = rcode_of(response)
            if code in (RCODE_SERVFAIL, RCODE_REFUSED):
                continue
            if code == RCODE_NXDOMAIN and not authoritative(response):
                continue  # dockerd tries the next one (RFC 8020: only an authoritative NXDOMAIN is final)
            if code not in (0, RCODE_NXDOMAIN):
                continue
            return response
        return last if last is not None else (_safe(packet, RCODE_SERVFAIL) or b"")


def _safe(packet: bytes, rcode: int) -> bytes | None:
    try:
        return reply(packet, rcode=rcode)
    except ValueError:
        return None


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _read_framed(conn: socket.socket) -> bytes | None:
    head = _read_exactly(conn, 2)
    if head is None:
        return None
    return _read_exactly(conn, struct.unpack("!H", head)[0])


def _upstream_socket(kind: int) -> socket.socket:
    return socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)


def _ask(netns: str, forwarder: Forwarder, packet: bytes, tcp: bool) -> bytes:
    """One query to one forwarder, from the host's namespace or the container's."""
    kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
    if forwarder.host:
        sock = _upstream_socket(kind)
    else:
        sock = enter_netns(netns, lambda: _upstream_socket(kind))
    with sock:
        sock.settimeout(UPSTREAM_TIMEOUT)
        sock.connect((forwarder.address, 53))
        if tcp:
            sock.sendall(struct.pack("!H", len(packet)) + packet)
            response = _read_framed(sock)
            if response is None:
                raise ConnectionResetError("the forwarder closed the connection")
            return response
        sock.send(packet)
        while True:
            response = sock.recv(65535)
            if response[:2] == packet[:2]:  # its answer to our query (a connected socket hears only it)
                return response
