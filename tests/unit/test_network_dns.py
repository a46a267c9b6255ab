"""The embedded DNS's pure parts: resolv.conf and forwarders as dockerd makes them, the names a container
sees on its networks, its own answers (A, AAAA/MX without data, PTR, truncation, ndots), the forwarders'
order and rules, and the bridges' MAC addresses."""

from __future__ import annotations

import socket
import struct
from types import SimpleNamespace

import pytest

from dockyard.linux.netlink import random_mac
from dockyard.network import dns
from dockyard.network.dns import (
    RCODE_NXDOMAIN,
    RCODE_SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_MX,
    TYPE_PTR,
    DnsServer,
    Forwarder,
    local_reply,
    ptr_address,
    reply,
)
from dockyard.network.names import ContainerNames, candidates
from dockyard.network.resolvconf import DnsSettings, host_resolvers, plan
from dockyard.network.service import Endpoint, Network, Sandbox

HOST = "# generated\nnameserver 10.0.0.2\nnameserver 127.0.0.53\nnameserver fd00::1\nsearch corp.example\n"


def _query(name: str, qtype: int = TYPE_A, ident: int = 0x1234) -> bytes:
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", qtype, 1)


def _header(packet: bytes) -> tuple[int, int, int, int]:
    ident, flags, qd, an = struct.unpack_from("!HHHH", packet)
    return ident, flags, qd, an


# --- resolv.conf ----------------------------------------------------------------------------------------


def test_resolv_conf_of_a_user_network_names_the_embedded_dns() -> None:
    p = plan(HOST, [], [], [], embedded=True)
    assert p.content == ("search corp.example\nnameserver 127.0.0.11\nnameserver fd00::1\noptions ndots:0\n")
    # the host's IPv4 resolvers are the forwarders; its loopback one is asked from the host's namespace
    assert p.forwarders == [("10.0.0.2", False), ("127.0.0.53", True)]
    assert p.ndots_set is False
    assert p.record() == {"forwarders": [["10.0.0.2", False], ["127.0.0.53", True]], "ndots": False}


def test_resolv_conf_with_the_containers_own_settings() -> None:
    p = plan(HOST, ["127.0.0.77", "1.1.1.1"], ["a.example", "b.example"], ["ndots:2", "timeout:1"], True)
    assert p.content == ("search a.example b.example\nnameserver 127.0.0.11\noptions ndots:2 timeout:1\n")
    assert p.forwarders == [("127.0.0.77", True), ("1.1.1.1", False)]
    assert p.ndots_set is True
    # dockerd: with 127.0.0.1 among them, every loopback resolver is the container's own
    assert plan(HOST, ["127.0.0.1", "127.0.0.2"], [], [], True).forwarders == [
        ("127.0.0.1", False),
        ("127.0.0.2", False),
    ]
    # three at most; `--dns-search .` means none
    assert len(plan(HOST, ["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"], [], [], True).forwarders) == 3
    assert "search" not in plan(HOST, [], ["."], [], True).content


def test_resolv_conf_without_the_embedded_dns() -> None:
    p = plan(HOST, [], [], [], embedded=False)
    assert p.content == "nameserver 10.0.0.2\nsearch corp.example\n" and p.forwarders == []
    own = plan(HOST, ["9.9.9.9"], ["x.example"], ["ndots:3"], embedded=False).content
    assert own == "nameserver 9.9.9.9\nsearch x.example\noptions ndots:3\n"
    assert host_resolvers(HOST) == ["10.0.0.2"]
    assert plan("", [], [], [], True).forwarders == []  # no resolver at all: NXDOMAIN for the rest


def test_daemon_dns_settings() -> None:
    s = DnsSettings.from_config({"dns": ["1.1.1.1 "], "dns-search": ["corp"], "dns-opts": ["ndots:1"]})
    assert (s.servers, s.search, s.options) == (["1.1.1.1"], ["corp"], ["ndots:1"])
    assert DnsSettings.from_config({}) == DnsSettings()
    with pytest.raises(ValueError):
        DnsSettings.from_config({"dns": [1]})


# --- names ----------------------------------------------------------------------------------------------


def _service() -> SimpleNamespace:
    import threading

    front = Network(id="f" * 64, name="front", driver="bridge", created="")
    back = Network(id="b" * 64, name="back", driver="bridge", created="")
    default = Network(id="d" * 64, name="bridge", driver="bridge", created="")

    def ep(net: Network, address: str, aliases: list[str] | None = None) -> Endpoint:
        return Endpoint(net.id, "e", address, 24, "", "", "eth0", "veth", aliases or [])

    boxes = {
        "app": Sandbox("a" * 64, "app", "/ns/app", [ep(front, "10.1.0.2"), ep(back, "10.2.0.2")]),
        "web": Sandbox("w" * 64, "web", "/ns/web", [ep(front, "10.1.0.3", ["www"])]),
        "db1": Sandbox("1" * 64, "db1", "/ns/db1", [ep(back, "10.2.0.3", ["db"])]),
        "db2": Sandbox("2" * 64, "db2", "/ns/db2", [ep(back, "10.2.0.4", ["db"])]),
        "lone": Sandbox("l" * 64, "lone", "/ns/lone", [ep(default, "172.17.0.2")]),
    }
    return SimpleNamespace(
        _lock=threading.RLock(),
        sandboxes={b.container_id: b for b in boxes.values()},
        networks={n.id: n for n in (front, back, default)},
    )


def test_a_container_sees_the_names_of_every_user_network_it_is_on() -> None:
    names = ContainerNames(_service())  # type: ignore[arg-type]
    app = "a" * 64
    assert names.addresses(app, "web") == ["10.1.0.3"]
    assert names.addresses(app, "WWW.") == ["10.1.0.3"]
    assert names.addresses(app, "db1") == ["10.2.0.3"]  # on its second network
    assert sorted(names.addresses(app, "db") or []) == ["10.2.0.3", "10.2.0.4"]
    assert names.addresses(app, "w" * 12) == ["10.1.0.3"]  # a short ID
    assert names.addresses(app, "db1.back") == ["10.2.0.3"]
    assert names.addresses(app, "db1.front") is None
    assert names.addresses(app, "lone") is None  # the default bridge has no names
    assert names.addresses("w" * 64, "db1") is None  # web is not on back
    assert names.addresses("l" * 64, "web") is None
    assert names.reverse(app, "10.2.0.4") == "db2.back"
    assert names.reverse(app, "172.17.0.2") is None
    assert candidates("a.b.c") == [("a.b.c", ""), ("a.b", "c"), ("a", "b.c")]


# --- answers --------------------------------------------------------------------------------------------


class FakeNames:
    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    def addresses(self, container_id: str, name: str, v6: bool = False) -> list[str] | None:
        found = self.table.get(name)
        if found is None or not v6:
            return found
        return self.table.get(name + "/6", [])

    def reverse(self, container_id: str, address: str) -> str | None:
        return "web.front" if address == "10.1.0.3" else None


def test_local_answers() -> None:
    names = FakeNames({"web": ["10.1.0.3"], "many": [f"10.9.{i // 250}.{i % 250}" for i in range(60)]})
    a = local_reply(names, "c", _query("web"), False, 512)
    assert (
        a is not None
        and _header(a)[:4] == (0x1234, 0x8180, 1, 1)
        and a.endswith(socket.inet_aton("10.1.0.3"))
    )
    for qtype in (TYPE_AAAA, TYPE_MX):  # a container's name: no data, not forwarded
        nodata = local_reply(names, "c", _query("web", qtype), False, 512)
        assert nodata is not None and _header(nodata)[3] == 0 and _header(nodata)[1] & 0xF == 0
    assert local_reply(names, "c", _query("example.org"), False, 512) is None  # forwarded
    names.table["web6"], names.table["web6/6"] = ["10.1.0.4"], ["fd00::4"]
    six = local_reply(names, "c", _query("web6", TYPE_AAAA), False, 512)
    assert six is not None and _header(six)[3] == 1
    assert six.endswith(socket.inet_pton(socket.AF_INET6, "fd00::4"))
    nibbles = ".".join(reversed("fd00" + "0" * 27 + "4"))
    assert ptr_address(f"{nibbles}.ip6.arpa") == "fd00::4"
    assert ptr_address("4.0.0.d.f.ip6.arpa") is None
    ptr = local_reply(names, "c", _query("3.0.1.10.in-addr.arpa", TYPE_PTR), False, 512)
    assert ptr is not None and _header(ptr)[3] == 1 and b"\x03web\x05front\x00" in ptr
    assert local_reply(names, "c", _query("4.0.1.10.in-addr.arpa", TYPE_PTR), False, 512) is None
    # too many for 512 bytes over UDP: as many as fit, and TC so the client asks over TCP
    big = local_reply(names, "c", _query("many"), False, 512)
    assert big is not None and len(big) <= 512 and _header(big)[1] & 0x0200 and _header(big)[3] < 60
    full = local_reply(names, "c", _query("many"), False, 65535)
    assert full is not None and _header(full)[3] == 60 and not _header(full)[1] & 0x0200
    # the user's own ndots: a bare unknown name gets an empty answer, a dotted one is forwarded
    assert _header(local_reply(names, "c", _query("nosuch"), True, 512) or b"")[3] == 0
    assert local_reply(names, "c", _query("nosuch.example"), True, 512) is None
    with pytest.raises(ValueError):
        local_reply(names, "c", b"\0" * 5, False, 512)
    assert ptr_address("5.0.18.172.in-addr.arpa.") == "172.18.0.5"
    assert ptr_address("x.in-addr.arpa") is None and ptr_address("example.org") is None


def _upstream(rcode: int, aa: bool = False) -> bytes:
    flags = 0x8180 | rcode | (0x0400 if aa else 0)
    return struct.pack("!HHHHHH", 0x1234, flags, 1, 0, 0, 0)


def test_forwarders_in_dockerds_order(monkeypatch: pytest.MonkeyPatch) -> None:
    server = DnsServer(FakeNames({}))
    try:
        client = SimpleNamespace(container_id="c" * 64, netns="/ns", forwarders=[], ndots_set=False)
        query = _query("example.org")
        assert _header(server.forward(client, query, tcp=False))[1] & 0xF == RCODE_NXDOMAIN  # none at all

        answers: dict[str, bytes | Exception] = {}
        asked: list[tuple[str, bool, bool]] = []

        def ask(netns: str, forwarder: Forwarder, packet: bytes, tcp: bool) -> bytes:
            asked.append((forwarder.address, forwarder.host, tcp))
            got = answers[forwarder.address]
            if isinstance(got, Exception):
                raise got
            return got

        monkeypatch.setattr(dns, "_ask", ask)
        client.forwarders = [
            Forwarder("10.0.0.1", False),
            Forwarder("127.0.0.53", True),
            Forwarder("10.0.0.3", False),
        ]
        answers.update(
            {
                "10.0.0.1": OSError("unreachable"),
                "127.0.0.53": _upstream(RCODE_SERVFAIL),
                "10.0.0.3": _upstream(0),
            }
        )
        assert server.forward(client, query, tcp=True) == _upstream(0)
        assert asked == [("10.0.0.1", False, True), ("127.0.0.53", True, True), ("10.0.0.3", False, True)]
        # a non-authoritative NXDOMAIN: the next one; an authoritative one is the answer
        answers.update(
            {"10.0.0.1": _upstream(RCODE_NXDOMAIN), "127.0.0.53": _upstream(RCODE_NXDOMAIN, aa=True)}
        )
        assert server.forward(client, query, tcp=False) == _upstream(RCODE_NXDOMAIN, aa=True)
        # all failed: the last answer heard, or SERVFAIL when none answered
        answers.update(
            {"10.0.0.1": OSError(), "127.0.0.53": OSError(), "10.0.0.3": _upstream(RCODE_SERVFAIL)}
        )
        assert server.forward(client, query, tcp=False) == _upstream(RCODE_SERVFAIL)
        answers["10.0.0.3"] = OSError()
        assert _header(server.forward(client, query, tcp=False))[1] & 0xF == RCODE_SERVFAIL
    finally:
        server.close()


def test_reply_keeps_the_question_and_flags() -> None:
    query = _query("web", ident=0xBEEF)
    out = reply(query, rcode=RCODE_SERVFAIL)
    assert _header(out) == (0xBEEF, 0x8180 | RCODE_SERVFAIL, 1, 0) and out[12:] == query[12:]


def test_bridge_macs_are_random_unicast_and_locally_administered() -> None:
    macs = {random_mac() for _ in range(50)}
    assert len(macs) == 50
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01 and len(mac.split(":")) == 6
