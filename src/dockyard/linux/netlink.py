"""A small rtnetlink client: the handful of link, address and route requests the engine's networks need.

Why not pyroute2: its 0.9 series costs ~140 ms to import, opens its socket lazily (a socket "made" by a thread
inside a container's namespace ends up in the host's), and reaches other namespaces by forking a child. Here a
socket is bound to the namespace of the thread that opens it, so a thread that has `setns`-ed into a
container's namespace opens one, steps back, and goes on configuring the container from the host.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

NETLINK_ROUTE = 0

NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_GETADDR = 20, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
NLA_F_NESTED = 0x8000

IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4
IFA_FLAGS = 8
IFA_F_NODAD = 0x02

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_TABLE = 15
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

IFF_UP = 0x1

_NLMSGHDR = struct.Struct("=IHHII")
_IFINFOMSG = struct.Struct("=BxHiII")
_IFADDRMSG = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTATTR = struct.Struct("=HH")


class NetlinkError(OSError):
    pass


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def _nested(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | NLA_F_NESTED, b"".join(attrs))


def _str(kind: int, text: str) -> bytes:
    return _attr(kind, text.encode() + b"\0")


def _u32(kind: int, value: int) -> bytes:
    return _attr(kind, struct.pack("=I", value))


def _attrs(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    offset = 0
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            break
        out.setdefault(kind & ~NLA_F_NESTED, data[offset + _RTATTR.size : offset + length])
        offset += _align(length)
    return out


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def random_mac() -> str:
    """A random unicast, locally administered MAC address (as dockerd's netutils.GenerateRandomMAC)."""
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


NET_ADDR_SET = 3  # /sys/class/net/<link>/addr_assign_type of an address set from user space


def keep_bridge_address(nl: RtNetlink, name: str, index: int) -> None:
    """A bridge made before bridges got an address of their own (it follows its ports'): give it one now,
    while no port is plugged in (changing it under running containers would cost them their gateway for a
    while, the very thing the address is set to avoid)."""
    try:
        with open(f"/sys/class/net/{name}/addr_assign_type") as f:
            if int(f.read().strip() or 0) == NET_ADDR_SET:
                return
        if os.listdir(f"/sys/class/net/{name}/brif"):
            return
    except (OSError, ValueError):
        return
    nl.set_address(index, random_mac())


@dataclass
class Route:
    destination: ipaddress.IPv4Network
    gateway: str
    oif: int


class RtNetlink:
    """One rtnetlink socket, bound to the network namespace of the thread that made it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RtNetlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the wire ----------------------------------------------------------------------------------

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self.seq += 1
        self.sock.send(
            _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags | NLM_F_REQUEST, self.seq, 0) + body
        )
        return self.seq

    def _messages(self, seq: int):
        """The replies to request `seq`, until its ack or NLMSG_DONE; an error reply raises."""
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _flags, msg_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
                payload = data[offset + _NLMSGHDR.size : offset + length]
                offset += _align(length)
                if msg_seq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return
                yield kind, payload

    def request(self, kind: int, body: bytes, flags: int = 0) -> None:
        for _ in self._messages(self._send(kind, flags | NLM_F_ACK, body)):
            pass

    def dump(self, kind: int, body: bytes):
        yield from self._messages(self._send(kind, NLM_F_DUMP, body))

    # --- links -------------------------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        body = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _str(IFLA_IFNAME, name)
        try:
            for _kind, payload in self._messages(self._send(RTM_GETLINK, NLM_F_ACK, body)):
                return _IFINFOMSG.unpack_from(payload)[2]
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return None

    def links(self) -> dict[str, int]:
        """Every link of the namespace: name -> index."""
        out: dict[str, int] = {}
        for _kind, payload in self.dump(RTM_GETLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)):
            index = _IFINFOMSG.unpack_from(payload)[2]
            attrs = _attrs(payload[_IFINFOMSG.size :])
            if IFLA_IFNAME in attrs:
                out[attrs[IFLA_IFNAME].rstrip(b"\0").decode()] = index
        return out

    def add_bridge(self, name: str, mtu: int = 0, mac: str = "") -> int:
        """A bridge, up, with a MAC address of its own (`mac`, or a random one): a bridge given none takes
        the lowest of its ports' and changes it as containers come and go, and their neighbours lose the
        gateway until their ARP entries age out (dockerd sets a random one too)."""
        attrs = _str(IFLA_IFNAME, name) + _nested(IFLA_LINKINFO, _str(IFLA_INFO_KIND, "bridge"))
        attrs += _attr(IFLA_ADDRESS, mac_bytes(mac or random_mac()))
        if mtu:
            attrs += _u32(IFLA_MTU, mtu)
        self.request(
            RTM_NEWLINK,
            _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + attrs,
            NLM_F_CREATE | NLM_F_EXCL,
        )
        index = self.link_index(name)
        if index is None:
            raise NetlinkError(errno.ENODEV, f"bridge {name} vanished after its creation")
        return index

    def add_veth(
        self, name: str, master: int, peer_name: str, peer_netns_fd: int, peer_mac: str = "", mtu: int = 0
    ) -> None:
        """A veth pair: `name` on the host, up and enslaved to `master`; `peer_name` moved into the namespace
        behind `peer_netns_fd` (left down: the namespace's side brings it up with its address)."""
        peer_attrs = _str(IFLA_IFNAME, peer_name) + _u32(IFLA_NET_NS_FD, peer_netns_fd)
        if peer_mac:
            peer_attrs += _attr(IFLA_ADDRESS, mac_bytes(peer_mac))
        if mtu:
            peer_attrs += _u32(IFLA_MTU, mtu)
        peer = _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + peer_attrs
        info = _nested(
            IFLA_LINKINFO,
            _str(IFLA_INFO_KIND, "veth"),
            _nested(IFLA_INFO_DATA, _attr(VETH_INFO_PEER, peer)),
        )
        attrs = _str(IFLA_IFNAME, name) + _u32(IFLA_MASTER, master) + info
        if mtu:
            attrs += _u32(IFLA_MTU, mtu)
        self.request(
            RTM_NEWLINK,
            _IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, IFF_UP, IFF_UP) + attrs,
            NLM_F_CREATE | NLM_F_EXCL,
        )

    def set_address(self, index: int, mac: str) -> None:
        """Give a link the MAC address `mac` (the kernel then keeps it: addr_assign_type 3, "set")."""
        self.request(
            RTM_NEWLINK,
            _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0) + _attr(IFLA_ADDRESS, mac_bytes(mac)),
        )

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP))

    def delete_link(self, name: str) -> bool:
        """Delete a link by name; False when there was none."""
        index = self.link_index(name)
        if index is None:
            return False
        try:
            self.request(RTM_DELLINK, _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0))
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # --- addresses and routes ----------------------------------------------------------------------

    def add_address(self, index: int, interface: ipaddress.IPv4Interface) -> None:
        packed = interface.ip.packed
        body = (
            _IFADDRMSG.pack(socket.AF_INET, interface.network.prefixlen, 0, RT_SCOPE_UNIVERSE, index)
            + _attr(IFA_LOCAL, packed)
            + _attr(IFA_ADDRESS, packed)
            + _attr(IFA_BROADCAST, interface.network.broadcast_address.packed)
        )
        try:
            self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)
        except NetlinkError as e:
            if e.errno != errno.EEXIST:
                raise

    def add_address6(self, index: int, interface: ipaddress.IPv6Interface) -> None:
        """An IPv6 address without duplicate address detection (usable at once, as libnetwork's nodad)."""
        body = (
            _IFADDRMSG.pack(socket.AF_INET6, interface.network.prefixlen, IFA_F_NODAD, 0, index)
            + _attr(IFA_LOCAL, interface.ip.packed)
            + _attr(IFA_ADDRESS, interface.ip.packed)
            + _u32(IFA_FLAGS, IFA_F_NODAD)
        )
        try:
            self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)
        except NetlinkError as e:
            if e.errno != errno.EEXIST:
                raise

    def add_default_route6(self, gateway: str) -> None:
        body = _RTMSG.pack(
            socket.AF_INET6, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
        ) + _attr(RTA_GATEWAY, ipaddress.IPv6Address(gateway).packed)
        self.request(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL)

    def addresses(self, index: int) -> list[ipaddress.IPv4Interface]:
        out = []
        for _kind, payload in self.dump(RTM_GETADDR, _IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0)):
            _family, prefix, _flags, _scope, idx = _IFADDRMSG.unpack_from(payload)
            attrs = _attrs(payload[_IFADDRMSG.size :])
            if idx == index and IFA_LOCAL in attrs:
                out.append(ipaddress.IPv4Interface((socket.inet_ntoa(attrs[IFA_LOCAL]), prefix)))
        return out

    def add_default_route(self, gateway: str) -> None:
        body = _RTMSG.pack(
            socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0
        ) + _attr(RTA_GATEWAY, socket.inet_aton(gateway))
        self.request(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL)

    def routes(self) -> list[Route]:
        """The IPv4 routes of every table (what a new subnet must not overlap)."""
        out = []
        for _kind, payload in self.dump(RTM_GETROUTE, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            family, dst_len, *_rest = _RTMSG.unpack_from(payload)
            if family != socket.AF_INET:
                continue
            attrs = _attrs(payload[_RTMSG.size :])
            dst = socket.inet_ntoa(attrs[RTA_DST]) if RTA_DST in attrs else "0.0.0.0"
            gateway = socket.inet_ntoa(attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else ""
            oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0
            out.append(Route(ipaddress.IPv4Network((dst, dst_len), strict=False), gateway, oif))
        return out
