"""Published ports: from a container's ExposedPorts/PortBindings/PublishAllPorts to host-port mappings, each
held on the host by a socket of the daemon's so no other program, and no other container, can take it while
the kernel's DNAT forwards it to the container."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


class PortError(Exception):
    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PortMapping:
    proto: str  # tcp, udp, sctp
    container_port: int
    host_ip: str  # "0.0.0.0" for every address
    host_port: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PortMapping:
        return cls(**data)


@dataclass(frozen=True)
class PortRequest:
    proto: str
    container_port: int
    host_ip: str
    host_ports: tuple[int, int]  # (0, 0): any free port; a range: the first free in it


def split_port(key: str) -> tuple[int, str]:
    """`80/tcp` -> (80, "tcp"); a bare `80` is tcp."""
    number, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    try:
        port = int(number)
    except ValueError:
        raise PortError(f"invalid port specification: {json_quote(key)}", 400) from None
    if not 0 < port < 65536 or proto not in ("tcp", "udp", "sctp"):
        raise PortError(f"invalid port specification: {json_quote(key)}", 400)
    return port, proto


def json_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _host_ports(text: str) -> tuple[int, int]:
    if not text:
        return (0, 0)
    low, _, high = text.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise PortError(f"invalid port specification: {json_quote(text)}", 400) from None
    if not (0 <= first <= last < 65536):
        raise PortError(f"invalid port specification: {json_quote(text)}", 400)
    return (first, last) if first else (0, 0)


def requests_for(
    exposed: list[str], bindings: dict[str, Any], publish_all: bool, ipv6: bool = False
) -> list[PortRequest]:
    """What a container asks to publish: its bindings, then (-P) every other exposed port. With an IPv6
    address (`ipv6`), as dockerd 20.10: IPv6 host addresses too, and a binding without a host address is
    made twice, 0.0.0.0 and ::."""
    out: list[PortRequest] = []
    for key in sorted(bindings or {}, key=lambda k: split_port(k)):
        port, proto = split_port(key)
        for binding in bindings[key] or [{}]:
            host_ip = (binding or {}).get("HostIp") or ""
            if host_ip:
                try:
                    address = ipaddress.ip_address(host_ip)
                except ValueError:
                    raise PortError(f"invalid host IP address: {host_ip}", 400) from None
                if address.version == 6 and ipv6:
                    out.append(PortRequest(proto, port, str(address), _host_ports(_port_text(binding))))
                    continue
                if address.version == 6 and not address.is_unspecified:
                    raise PortError(
                        f"IPv6 host addresses are not supported for published ports: {host_ip}", 400
                    )
                if address.version == 6:
                    continue  # "[::]": the IPv4 mapping of the same port serves it
            out.append(PortRequest(proto, port, host_ip or "0.0.0.0", _host_ports(_port_text(binding))))
            if ipv6 and not host_ip:  # libnetwork's: an explicit 0.0.0.0 stays IPv4 only
                out.append(PortRequest(proto, port, "::", _host_ports(_port_text(binding))))
    if publish_all:
        bound = {(r.container_port, r.proto) for r in out}
        for key in sorted(exposed, key=lambda k: split_port(k)):
            port, proto = split_port(key)
            if (port, proto) not in bound:
                out.append(PortRequest(proto, port, "0.0.0.0", (0, 0)))
                if ipv6:
                    out.append(PortRequest(proto, port, "::", (0, 0)))
    return out


def _port_text(binding: dict[str, Any] | None) -> str:
    return str((binding or {}).get("HostPort") or "")


_SOCK_TYPES = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM, "sctp": socket.SOCK_SEQPACKET}
_PROTOS = {"tcp": 0, "udp": 0, "sctp": socket.IPPROTO_SCTP}


class PortHolder:
    """The sockets that hold a container's host ports (closed to free them)."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []
        self.v6: dict[tuple[str, str, int], socket.socket] = {}  # IPv6 ones (their proxies, proxy6.py)

    def close(self) -> None:
        for sock in self.v6.values():  # wakes a proxy's accept
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.v6.clear()
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()

    def bind(self, proto: str, host_ip: str, port: int) -> int:
        family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
        sock = socket.socket(family, _SOCK_TYPES[proto] | socket.SOCK_CLOEXEC, _PROTOS[proto])
        try:
            if family == socket.AF_INET6:  # beside the 0.0.0.0 one of the same port
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host_ip, port))
            if proto == "tcp":
                # listening shows the port as the daemon's in `ss -ltnp` (as docker-proxy does); DNAT
                # rewrites every connection before it could reach this socket
                sock.listen(1)
        except OSError:
            sock.close()
            raise
        self.sockets.append(sock)
        if family == socket.AF_INET6:
            self.v6[(proto, host_ip, sock.getsockname()[1])] = sock
        return sock.getsockname()[1]


class DynamicPorts:
    """Where a host port left to the daemon (`-p 80`, `-P`) comes from: as dockerd's port allocator, the
    next one after the last handed out in the kernel's ephemeral range (32768, 32769, ...), per protocol and
    host address, wrapping at the end; rather than the kernel's random pick."""

    def __init__(self, path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> None:
        try:
            with open(path) as f:
                low, high = (int(n) for n in f.read().split())
        except (OSError, ValueError):
            low, high = 49153, 65535  # dockerd's fallback
        self.begin, self.end = low, high
        self._last: dict[tuple[str, str], int] = {}

    def candidates(self, proto: str, host_ip: str) -> list[int]:
        last = self._last.get((proto, host_ip), self.end)
        return [*range(last + 1, self.end + 1), *range(self.begin, last + 1)]

    def taken(self, proto: str, host_ip: str, port: int) -> None:
        if self.begin <= port <= self.end:
            self._last[(proto, host_ip)] = port


def reserve(
    requests: list[PortRequest],
    allocated: set[tuple[str, str, int]],
    holder: PortHolder,
    dynamic: DynamicPorts | None = None,
) -> list[PortMapping]:
    """Bind every requested host port (Docker's errors when one is taken); `allocated` holds (proto, ip, port)
    of the other containers' mappings, to tell "allocated" (ours) from "in use" (someone else's). A port left
    to us comes from `dynamic` when given, else from the kernel."""
    mappings: list[PortMapping] = []
    for req in requests:
        first, last = req.host_ports
        candidates: Iterable[int] = range(first, last + 1) if first else [0]
        if not first and dynamic is not None:
            candidates = dynamic.candidates(req.proto, req.host_ip)
        error: OSError | None = None
        taken_by_us = False
        for port in candidates:
            if port and _allocated(allocated, req.proto, req.host_ip, port):
                taken_by_us = True
                continue
            try:
                got = holder.bind(req.proto, req.host_ip, port)
            except OSError as e:
                error = e
                continue
            mappings.append(PortMapping(req.proto, req.container_port, req.host_ip, got))
            allocated.add((req.proto, req.host_ip, got))
            if not first and dynamic is not None:
                dynamic.taken(req.proto, req.host_ip, got)
            break
        else:
            shown = f"{first}-{last}" if first != last else str(first)
            if taken_by_us and error is None:
                raise PortError(f"Bind for {req.host_ip}:{shown} failed: port is already allocated")
            what = "address already in use"
            if error is not None and error.errno != errno.EADDRINUSE:
                what = error.strerror or str(error)
            if ":" in req.host_ip:
                where = f"[{req.host_ip}]:{shown}"
                raise PortError(f"Error starting userland proxy: listen {req.proto}6 {where}: bind: {what}")
            raise PortError(
                f"Error starting userland proxy: listen {req.proto}4 {req.host_ip}:{shown}: bind: {what}"
            )
    return mappings


def _allocated(allocated: set[tuple[str, str, int]], proto: str, host_ip: str, port: int) -> bool:
    v6 = ":" in host_ip
    if host_ip in ("0.0.0.0", "::"):
        return any(p == proto and n == port and (":" in ip) == v6 for p, ip, n in allocated)
    wildcard = "::" if v6 else "0.0.0.0"
    return (proto, host_ip, port) in allocated or (proto, wildcard, port) in allocated


def ports_view(exposed: list[str], mappings: list[PortMapping]) -> dict[str, Any]:
    """NetworkSettings.Ports: every exposed or published port, its bindings or null."""
    view: dict[str, Any] = {}
    for key in exposed:
        port, proto = split_port(key)
        view.setdefault(f"{port}/{proto}", None)
    for m in mappings:
        key = f"{m.container_port}/{m.proto}"
        if view.get(key) is None:
            view[key] = []
        view[key].append({"HostIp": m.host_ip, "HostPort": str(m.host_port)})
    return view


def ports_list(exposed: list[str], mappings: list[PortMapping]) -> list[dict[str, Any]]:
    """The container list's Ports: one entry per mapping, and one per exposed port without a mapping."""
    out: list[dict[str, Any]] = []
    mapped = set()
    for m in mappings:
        out.append(
            {"IP": m.host_ip, "PrivatePort": m.container_port, "PublicPort": m.host_port, "Type": m.proto}
        )
        mapped.add((m.container_port, m.proto))
    for key in exposed:
        port, proto = split_port(key)
        if (port, proto) not in mapped:
            out.append({"PrivatePort": port, "Type": proto})
    return out
