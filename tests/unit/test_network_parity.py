"""Pure logic behind answers that now match dockerd 20.10: a requested address's errors, ps's port filter
values, and the host ports left to the daemon (counted up from the ephemeral range)."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from dockyard.containers.networking import ContainerNetworkError, check_port_filters
from dockyard.network.ipam import IpamError, allocate
from dockyard.network.ports import DynamicPorts, PortHolder, PortRequest, reserve

Net = ipaddress.IPv4Network


@pytest.mark.parametrize(
    ("wanted", "message", "status"),
    [
        ("10.0.0.0", "Address already in use", 403),  # the subnet's own address
        ("10.0.0.255", "Address already in use", 403),  # its broadcast address
        ("10.0.0.1", "Address already in use", 403),  # the gateway
        ("10.0.0.5", "Address already in use", 403),  # another container's
        ("10.9.9.9", "Invalid address 10.9.9.9: It does not belong to any of this network's subnets", 500),
        ("foo", "Invalid IPv4 address: foo)", 500),
    ],
)
def test_a_requested_address_is_refused_in_dockerds_words(wanted: str, message: str, status: int) -> None:
    with pytest.raises(IpamError) as raised:
        allocate(Net("10.0.0.0/24"), {"10.0.0.5"}, "10.0.0.1", wanted=wanted)
    assert str(raised.value) == message and raised.value.status == status
    assert allocate(Net("10.0.0.0/24"), {"10.0.0.5"}, "10.0.0.1", wanted="10.0.0.254") == "10.0.0.254"


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("expose", "", "Empty string specified for ports."),
        ("expose", "x/tcp", 'strconv.ParseUint: parsing "x": invalid syntax'),
        ("expose", "1-y", 'strconv.ParseUint: parsing "y": invalid syntax'),
        ("publish", "9-8", "Invalid range specified for the Port: 9-8"),
        ("publish", "65536", 'strconv.ParseUint: parsing "65536": value out of range'),
    ],
)
def test_ps_port_filter_values_are_checked(key: str, value: str, problem: str) -> None:
    with pytest.raises(ContainerNetworkError) as raised:
        check_port_filters({key: [value]})
    assert str(raised.value) == f"error while looking up for {key} {value}: {problem}"
    assert raised.value.status == 500
    with pytest.raises(ContainerNetworkError, match="filter for 'publish' should not contain ':': 80:80"):
        check_port_filters({"publish": ["80:80"]})
    check_port_filters({"publish": ["80", "8000-8080/udp"], "expose": ["53/udp", "65535"]})


def test_dynamic_ports_count_up_from_the_range_and_wrap(tmp_path: Path) -> None:
    path = tmp_path / "ip_local_port_range"
    path.write_text("100\t104\n")
    ports = DynamicPorts(str(path))
    assert ports.candidates("tcp", "0.0.0.0") == [100, 101, 102, 103, 104]
    ports.taken("tcp", "0.0.0.0", 102)
    assert ports.candidates("tcp", "0.0.0.0") == [103, 104, 100, 101, 102]
    assert ports.candidates("udp", "0.0.0.0")[0] == 100  # each protocol and address counts apart
    assert (
        DynamicPorts(str(tmp_path / "missing")).candidates("tcp", "0.0.0.0")[0] == 49153
    )  # dockerd's fallback


def test_reserve_takes_the_next_free_port_of_the_range(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a stretch of free ports: the kernel's pick and the ones after it
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    path = tmp_path / "range"
    path.write_text(f"{base} {base + 40}\n")
    dynamic = DynamicPorts(str(path))
    holder = PortHolder()
    try:
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", base))
            squatter.listen()
            got = []
            for _ in range(2):
                mapping = reserve([PortRequest("tcp", 80, "127.0.0.1", (0, 0))], set(), holder, dynamic)
                got.append(mapping[0].host_port)
        # the first is skipped (someone else's), then one after the other
        assert base < got[0] < got[1] <= base + 40, (base, got)
    finally:
        holder.close()
