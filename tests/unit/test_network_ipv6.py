"""IPv6 pools and addresses (network/ipv6.py), the IPv6 port requests (ports.requests_for) and the `table
ip6` twin (firewall6.py), as dockerd 20.10's libnetwork."""

from __future__ import annotations

import pytest

from dockyard.network import firewall6, ipv6
from dockyard.network.ports import PortMapping, PortRequest, requests_for


def test_split_and_parse() -> None:
    v4, v6 = ipv6.split_configs([{"Subnet": "fd00:1::/64"}, {"Subnet": "10.5.0.0/16"}])
    assert v4 == [{"Subnet": "10.5.0.0/16"}] and v6 == [{"Subnet": "fd00:1::/64"}]
    with pytest.raises(ipv6.Ipv6Error, match="multiple subnets"):
        ipv6.split_configs([{"Subnet": "fd00:1::/64"}, {"Subnet": "fd00:2::/64"}])
    pool = ipv6.parse_pool({"Subnet": "fd00:1::/64"}, [])
    assert (pool.gateway, pool.show_gateway) == ("fd00:1::1", False)
    assert ipv6.ipam_entry(pool.__dict__) == {"Subnet": "fd00:1::/64"}
    given = ipv6.parse_pool(
        {"Subnet": "fd00:1::/64", "IPRange": "fd00:1::/96", "Gateway": "fd00:1::ffff"}, []
    )
    assert ipv6.ipam_entry(given.__dict__) == {
        "Subnet": "fd00:1::/64",
        "IPRange": "fd00:1::/96",
        "Gateway": "fd00:1::ffff",
    }
    for config, words in (
        ({}, "non-overlapping IPv6 address pool"),
        ({"Subnet": "fd00:1::5/64"}, "it should be fd00:1::/64"),
        ({"Subnet": "fd00:1::/64", "Gateway": "fd01::1"}, "Requested address is out of range"),
        ({"Subnet": "fd00:1::/64", "IPRange": "fd01::/96"}, "not in subnet"),
    ):
        with pytest.raises(ipv6.Ipv6Error, match=words):
            ipv6.parse_pool(config, [])
    with pytest.raises(ipv6.Ipv6Error, match="Pool overlaps"):
        ipv6.parse_pool({"Subnet": "fd00:1::/64"}, ["fd00:1::/48"])


def test_allocate() -> None:
    assert ipv6.allocate("fd00:1::/64", "fd00:1::1", "", set()) == "fd00:1::2"
    assert ipv6.allocate("fd00:1::/64", "fd00:1::1", "", {"fd00:1::2"}) == "fd00:1::3"
    assert ipv6.allocate("fd00:1::/64", "fd00:1::ffff", "fd00:1::/96", set()) == "fd00:1::1"
    assert ipv6.allocate("fd00:1::/64", "fd00:1::1", "", set(), "fd00:1::f00d") == "fd00:1::f00d"
    with pytest.raises(ipv6.Ipv6Error, match="Address already in use"):
        ipv6.allocate("fd00:1::/64", "fd00:1::1", "", {"fd00:1::f00d"}, "fd00:1::f00d")
    with pytest.raises(ipv6.Ipv6Error, match="does not belong"):
        ipv6.allocate("fd00:1::/64", "fd00:1::1", "", set(), "fd09::1")


def test_port_requests() -> None:
    bindings = {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "81/tcp": [{"HostIp": "::1", "HostPort": "81"}],
    }
    assert requests_for([], {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}, False) == [
        PortRequest("tcp", 80, "0.0.0.0", (8080, 8080))
    ]  # a container without IPv6: as before
    assert requests_for([], bindings, False, ipv6=True) == [
        PortRequest("tcp", 80, "0.0.0.0", (8080, 8080)),
        PortRequest("tcp", 80, "::", (8080, 8080)),
        PortRequest("tcp", 81, "::1", (81, 81)),
    ]
    explicit = {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}
    assert requests_for([], explicit, False, ipv6=True) == [PortRequest("tcp", 80, "0.0.0.0", (8080, 8080))]


def test_table_ip6() -> None:
    text = firewall6.render(
        "dockyard_x",
        [firewall6.Bridge6("br-a", "fd00:1::/64", False), firewall6.Bridge6("br-b", "fd00:2::/64", True)],
        [
            firewall6.Forward6(PortMapping("tcp", 80, "::", 8080), "fd00:1::2"),
            firewall6.Forward6(PortMapping("tcp", 80, "fd00:9::1", 8081), "fd00:1::2"),
        ],
    )
    assert text.startswith("table ip6 dockyard_x {}\ndelete table ip6 dockyard_x\n")
    assert "ip6 daddr != ::1 tcp dport 8080 dnat to [fd00:1::2]:80" in text
    assert "ip6 daddr fd00:9::1 tcp dport 8081 dnat to [fd00:1::2]:80" in text
    assert 'iifname "br-a" oifname { "br-b" } drop' in text
    assert 'iifname "br-b" oifname != "br-b" drop' in text
    assert 'ip6 saddr fd00:1::/64 oifname != "br-a" masquerade' in text
    assert 'ip6 saddr fd00:2::/64 oifname != "br-b" masquerade' not in text  # internal
