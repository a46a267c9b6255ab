"""Address management: which subnet a new network gets, and which address a new endpoint gets."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPv4Net = ipaddress.IPv4Network


class IpamError(ValueError):
    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AddressPool:
    base: IPv4Net
    size: int  # the prefix length of the subnets cut from base

    def subnets(self) -> Iterable[IPv4Net]:
        if self.size < self.base.prefixlen:
            yield self.base
            return
        yield from self.base.subnets(new_prefix=self.size)


# dockerd's default-address-pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s
DEFAULT_POOLS = [AddressPool(IPv4Net(f"172.{n}.0.0/16"), 16) for n in range(17, 32)] + [
    AddressPool(IPv4Net("192.168.0.0/16"), 20)
]


def parse_pools(entries: list[dict]) -> list[AddressPool]:
    """daemon.json's `default-address-pools`: [{"base": "10.10.0.0/16", "size": 24}]."""
    pools = []
    for entry in entries:
        if ":" in str(entry.get("base") or ""):  # an IPv6 pool: network/ipv6.py's
            continue
        try:
            base = IPv4Net(str(entry["base"]), strict=False)
            size = int(entry["size"])
        except (KeyError, ValueError, TypeError) as e:
            raise IpamError(f"invalid default-address-pools entry {entry!r}: {e}") from None
        if not base.prefixlen <= size <= 30:
            raise IpamError(
                f"invalid default-address-pools entry {entry!r}: size must be {base.prefixlen}-30"
            )
        pools.append(AddressPool(base, size))
    return pools


def choose_subnet(pools: list[AddressPool], taken: Iterable[IPv4Net]) -> IPv4Net:
    """The first subnet of the pools that overlaps none of `taken` (the host's routes, our networks)."""
    taken = [t for t in taken if t.prefixlen > 0]  # a default route overlaps everything: not a conflict
    for pool in pools:
        for subnet in pool.subnets():
            if not any(subnet.overlaps(t) for t in taken):
                return subnet
    raise IpamError(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the "
        "network"
    )


def parse_bip(bip: str) -> tuple[IPv4Net, str]:
    """`--bip 172.20.0.1/16`: the bridge's subnet and its own (gateway) address."""
    try:
        interface = ipaddress.IPv4Interface(bip)
    except ValueError:
        raise IpamError(f"invalid bip: {bip!r}: want an address with a prefix, as 172.20.0.1/16") from None
    if interface.ip == interface.network.network_address:
        raise IpamError(f"invalid bip: {bip!r}: the address is the subnet's own (try {interface.network[1]})")
    return interface.network, str(interface.ip)


def allocate(
    subnet: IPv4Net, used: set[str], gateway: str, ip_range: IPv4Net | None = None, wanted: str = ""
) -> str:
    """An address of `subnet` (within `ip_range` when given) not in `used`: the lowest free, or `wanted`."""
    if wanted:  # dockerd's words and status codes, its ")" typo included
        try:
            address = ipaddress.IPv4Address(wanted)
        except ValueError:
            raise IpamError(f"Invalid IPv4 address: {wanted})") from None
        if address not in subnet:
            raise IpamError(f"Invalid address {wanted}: It does not belong to any of this network's subnets")
        # the subnet's own address and its broadcast one are never handed out, as the gateway's
        if (
            wanted in used
            or wanted == gateway
            or address in (subnet.network_address, subnet.broadcast_address)
        ):
            raise IpamError("Address already in use", 403)
        return wanted
    ends = (subnet.network_address, subnet.broadcast_address)  # a range's own ends are usable
    for address in ip_range or subnet:
        text = str(address)
        if address in subnet and address not in ends and text != gateway and text not in used:
            return text
    raise IpamError(f"no available IPv4 addresses on this network's address pools: {subnet}")


def mac_for(address: str) -> str:
    """Docker's MAC for an address: 02:42 followed by the address's four bytes."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)
