"""Pure logic of networks: subnet choice, address allocation, port requests and reservations, the
nftables ruleset, DNS packets."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from dockyard.network import firewall
from dockyard.network.dns import RCODE_NXDOMAIN, TYPE_A, TYPE_AAAA, answer, parse_question
from dockyard.network.ipam import (
    DEFAULT_POOLS,
    AddressPool,
    IpamError,
    allocate,
    choose_subnet,
    mac_for,
    parse_bip,
    parse_pools,
)
from dockyard.network.ports import (
    PortError,
    PortHolder,
    PortMapping,
    PortRequest,
    ports_list,
    ports_view,
    requests_for,
    reserve,
    split_port,
)

Net = ipaddress.IPv4Network


# --- IPAM ---------------------------------------------------------------------------------------------


def test_the_first_pool_subnet_that_overlaps_no_route() -> None:
    assert choose_subnet(DEFAULT_POOLS, []) == Net("172.17.0.0/16")
    taken = [Net("172.17.0.0/16"), Net("172.18.5.0/24"), Net("0.0.0.0/0")]  # a default route is no conflict
    assert choose_subnet(DEFAULT_POOLS, taken) == Net("172.19.0.0/16")
    everything = [Net("172.16.0.0/12")]
    assert choose_subnet(DEFAULT_POOLS, everything) == Net("192.168.0.0/20")


def test_pools_from_daemon_json_and_exhaustion() -> None:
    pools = parse_pools([{"base": "10.10.0.0/16", "size": 24}])
    assert pools == [AddressPool(Net("10.10.0.0/16"), 24)]
    assert choose_subnet(pools, [Net("10.10.0.0/24")]) == Net("10.10.1.0/24")
    with pytest.raises(IpamError, match="non-overlapping"):
        choose_subnet(pools, [Net("10.10.0.0/16")])
    with pytest.raises(IpamError):
        parse_pools([{"base": "10.10.0.0/16", "size": 8}])
    with pytest.raises(IpamError):
        parse_pools([{"base": "nonsense", "size": 24}])


def test_bip_gives_the_subnet_and_the_bridge_address() -> None:
    assert parse_bip("172.30.0.1/16") == (Net("172.30.0.0/16"), "172.30.0.1")
    with pytest.raises(IpamError):
        parse_bip("172.30.0.0/16")
    with pytest.raises(IpamError):
        parse_bip("nonsense")


def test_allocation_takes_the_lowest_free_address() -> None:
    subnet = Net("10.0.0.0/29")
    assert allocate(subnet, set(), "10.0.0.1") == "10.0.0.2"
    assert allocate(subnet, {"10.0.0.2", "10.0.0.3"}, "10.0.0.1") == "10.0.0.4"
    assert allocate(subnet, set(), "10.0.0.1", ip_range=Net("10.0.0.4/30")) == "10.0.0.4"
    assert allocate(subnet, set(), "10.0.0.1", wanted="10.0.0.6") == "10.0.0.6"
    with pytest.raises(IpamError, match="Address already in use"):
        allocate(subnet, {"10.0.0.6"}, "10.0.0.1", wanted="10.0.0.6")
    with pytest.raises(IpamError):
        allocate(subnet, set(), "10.0.0.1", wanted="10.0.1.6")
    full = {f"10.0.0.{n}" for n in range(2, 7)}
    with pytest.raises(IpamError, match="no available"):
        allocate(subnet, full, "10.0.0.1")


def test_mac_follows_the_address_as_docker_does() -> None:
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"


# --- ports --------------------------------------------------------------------------------------------


def test_port_keys() -> None:
    assert split_port("80") == (80, "tcp")
    assert split_port("53/UDP") == (53, "udp")
    for bad in ("0", "70000", "http", "80/icmp"):
        with pytest.raises(PortError, match="invalid port specification"):
            split_port(bad)


def test_requests_from_bindings_and_publish_all() -> None:
    bindings = {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "127.0.0.1", "HostPort": ""}],
        "53/udp": [{"HostIp": "", "HostPort": "5300-5310"}],
        "443/tcp": [{"HostIp": "::", "HostPort": "8443"}],  # the IPv6 twin of an IPv4 mapping: skipped
    }
    got = requests_for(["80/tcp", "9000/tcp"], bindings, publish_all=True)
    assert got == [
        PortRequest("udp", 53, "0.0.0.0", (5300, 5310)),
        PortRequest("tcp", 80, "0.0.0.0", (8080, 8080)),
        PortRequest("tcp", 80, "127.0.0.1", (0, 0)),
        PortRequest("tcp", 9000, "0.0.0.0", (0, 0)),
    ]
    with pytest.raises(PortError):
        requests_for([], {"80/tcp": [{"HostIp": "::1", "HostPort": "80"}]}, False)
    with pytest.raises(PortError):
        requests_for([], {"80/tcp": [{"HostIp": "", "HostPort": "99999"}]}, False)


def test_reserving_ports_holds_them_and_reports_conflicts() -> None:
    holder = PortHolder()
    try:
        got = reserve([PortRequest("tcp", 80, "127.0.0.1", (0, 0))], set(), holder)
        port = got[0].host_port
        assert port > 0
        with socket.socket() as other, pytest.raises(OSError):
            other.bind(("127.0.0.1", port))  # held while the container runs
        # another container asking for it: Docker's "already allocated"
        with pytest.raises(PortError, match=f"Bind for 127.0.0.1:{port} failed: port is already allocated"):
            reserve(
                [PortRequest("tcp", 80, "127.0.0.1", (port, port))],
                {("tcp", "127.0.0.1", port)},
                PortHolder(),
            )
    finally:
        holder.close()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        with pytest.raises(PortError, match=f"listen tcp4 127.0.0.1:{taken}: bind: address already in use"):
            reserve([PortRequest("tcp", 80, "127.0.0.1", (taken, taken))], set(), PortHolder())
        # a range moves past the port in use
        second = PortHolder()
        try:
            got = reserve([PortRequest("tcp", 80, "127.0.0.1", (taken, taken + 20))], set(), second)
            assert taken < got[0].host_port <= taken + 20
        finally:
            second.close()


def test_how_ports_are_shown() -> None:
    mappings = [PortMapping("tcp", 80, "0.0.0.0", 8080)]
    assert ports_view(["80/tcp", "443/tcp"], mappings) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
        "443/tcp": None,
    }
    assert ports_list(["80/tcp", "443/tcp"], mappings) == [
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"PrivatePort": 443, "Type": "tcp"},
    ]


# --- nftables -----------------------------------------------------------------------------------------


def test_the_ruleset() -> None:
    bridges = [
        firewall.BridgeRules("dy0", "172.17.0.0/16", internal=False),
        firewall.BridgeRules("br-1", "172.18.0.0/16", internal=True),
    ]
    forwards = [
        firewall.Forward(PortMapping("tcp", 80, "0.0.0.0", 8080), "172.17.0.2"),
        firewall.Forward(PortMapping("udp", 53, "127.0.0.1", 5353), "172.17.0.3"),
    ]
    text = firewall.render("dockyard_dy0", bridges, forwards)
    lines = [line.strip() for line in text.splitlines()]
    # replaced whole in one transaction: made (if missing), deleted, written
    assert lines[:3] == [
        "table ip dockyard_dy0 {}",
        "delete table ip dockyard_dy0",
        "table ip dockyard_dy0 {",
    ]
    assert "tcp dport 8080 dnat to 172.17.0.2:80" in lines
    assert "ip daddr 127.0.0.1 udp dport 5353 dnat to 172.17.0.3:53" in lines
    assert 'ip saddr 172.17.0.0/16 oifname != "dy0" masquerade' in lines
    assert not any("172.18.0.0/16 oifname !=" in line for line in lines)  # internal: no way out
    assert 'iifname "br-1" oifname != "br-1" drop' in lines
    assert 'iifname "dy0" oifname { "br-1" } drop' in lines
    assert firewall.table_name("dockyard0") == "dockyard_dockyard0"
    assert firewall.table_name("dy-t.1") == "dockyard_dy_t_1"


def _chain(text: str, name: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index(f"chain {name} {{")
    return lines[start + 1 : lines.index("}", start)]


def test_the_ruleset_keeps_the_hosts_loopback_the_hosts() -> None:
    """CVE-2020-8558: with route_localnet=1 on the bridges, what a container sends to (or from) 127.0.0.0/8
    is dropped as it arrives on any bridge, before conntrack and DNAT (raw priority)."""
    bridges = [
        firewall.BridgeRules("dy0", "172.17.0.0/16", internal=False),
        firewall.BridgeRules("br-1", "172.18.0.0/16", internal=True),
    ]
    forwards = [firewall.Forward(PortMapping("tcp", 80, "127.0.0.1", 8080), "172.17.0.2")]
    text = firewall.render("dockyard_dy0", bridges, forwards)
    assert _chain(text, "loopback") == [
        "type filter hook prerouting priority raw; policy accept;",
        'iifname { "dy0", "br-1" } ip daddr 127.0.0.0/8 drop',
        'iifname { "dy0", "br-1" } ip saddr 127.0.0.0/8 drop',
    ]
    # publishing on 127.0.0.1 stays: the DNAT from the host's loopback, its source made the bridge's
    assert "ip daddr 127.0.0.1 tcp dport 8080 dnat to 172.17.0.2:80" in _chain(text, "ports")
    assert 'oifname "dy0" ip saddr 127.0.0.0/8 masquerade' in _chain(text, "postrouting")


def test_the_ruleset_lets_into_a_bridge_only_replies_published_ports_and_its_own() -> None:
    bridges = [
        firewall.BridgeRules("dy0", "172.17.0.0/16", internal=False),
        firewall.BridgeRules("br-1", "172.18.0.0/16", internal=False),
        firewall.BridgeRules("br-2", "172.19.0.0/16", internal=True),
    ]
    forward = _chain(firewall.render("dockyard_dy0", bridges, []), "forward")
    every = '{ "dy0", "br-1", "br-2" }'
    assert forward == [
        "type filter hook forward priority filter; policy accept;",
        # in/out of internal ones: dropped first, DNAT-ed or not
        'iifname "br-2" oifname != "br-2" drop',
        'oifname "br-2" iifname != "br-2" drop',
        # into a bridge: replies, published (DNAT-ed) ports, even from another network (through the host's
        # address, as dockerd); otherwise networks are apart; its own traffic; nothing else
        f"oifname {every} ct state established,related accept",
        f"oifname {every} ct status dnat accept",
        'iifname "dy0" oifname { "br-1", "br-2" } drop',
        'iifname "br-1" oifname { "dy0", "br-2" } drop',
        'iifname "br-2" oifname { "dy0", "br-1" } drop',
        'iifname "dy0" oifname "dy0" accept',
        'iifname "br-1" oifname "br-1" accept',
        'iifname "br-2" oifname "br-2" accept',
        f"oifname {every} drop",
    ]
    # out of a bridge (containers' own connections) nothing matches: the chain's policy accepts them
    assert not any(rule.startswith('iifname "dy0" oifname != ') for rule in forward)


def test_iptables_accepts_for_our_bridges() -> None:
    from dockyard.network import coexist

    assert coexist.chain_name("dyt0123456789abcdef") == "DOCKYARD-dyt0123456789abcdef"[:28]
    assert len(coexist.chain_name("x" * 40)) == 28
    assert coexist.restore_input("DOCKYARD-dy0", ["dy0", "br-1"]).splitlines() == [
        "*filter",
        ":DOCKYARD-dy0 - [0:0]",  # declared again: emptied, then filled
        "-A DOCKYARD-dy0 -i dy0 -j ACCEPT",
        "-A DOCKYARD-dy0 -o dy0 -j ACCEPT",
        "-A DOCKYARD-dy0 -i br-1 -j ACCEPT",
        "-A DOCKYARD-dy0 -o br-1 -j ACCEPT",
        "COMMIT",
    ]


def test_the_ruleset_without_bridges() -> None:
    """`--bridge none` and no user network: empty chains (an empty `{ }` set would not parse)."""
    text = firewall.render("dockyard_none", [], [])
    assert _chain(text, "loopback") == ["type filter hook prerouting priority raw; policy accept;"]
    assert _chain(text, "forward") == ["type filter hook forward priority filter; policy accept;"]
    assert "{ }" not in text


# --- DNS ----------------------------------------------------------------------------------------------


def _query(name: str, qtype: int) -> bytes:
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", qtype, 1)


def test_dns_answers() -> None:
    query = _query("web.local", TYPE_A)
    assert parse_question(query)[2:4] == ("web.local", TYPE_A)
    reply = answer(query, "172.18.0.5")
    ident, flags, qd, an = struct.unpack_from("!HHHH", reply)
    assert (ident, flags & 0x800F, qd, an) == (0x1234, 0x8000, 1, 1)
    assert reply.endswith(socket.inet_aton("172.18.0.5"))
    nodata = answer(_query("web", TYPE_AAAA), "172.18.0.5")
    assert struct.unpack_from("!HHHH", nodata)[3] == 0 and struct.unpack_from("!H", nodata, 2)[0] & 0xF == 0
    missing = answer(_query("nope", TYPE_A), None, RCODE_NXDOMAIN)
    assert struct.unpack_from("!H", missing, 2)[0] & 0xF == RCODE_NXDOMAIN
    for bad in (b"", b"\0" * 11, struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0)):
        with pytest.raises(ValueError):
            parse_question(bad)
