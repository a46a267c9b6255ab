"""IPv6 on bridge networks, as dockerd 20.10's libnetwork: a network's IPv6 pool (`--ipv6 --subnet fd00::/64`,
`--gateway`, `--ip-range`), its endpoints' addresses (the lowest free, or `--ip6`), and inspect's view.

A network's IPAM `Config` holds at most one IPv4 and one IPv6 entry; the IPv6 one is split off here.
Without a user-given IPv6 subnet, `EnableIPv6` fails as dockerd 20.10's (its default pools are IPv4 only).
The gateway is the subnet's first address unless given; it sits on the bridge, the endpoints route through
it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

IPv6Net = ipaddress.IPv6Network

NO_POOL = (
    "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the "
    "network"
)


class Ipv6Error(ValueError):
    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


def is_v6(config: dict[str, Any]) -> bool:
    """Whether an IPAM Config entry is an IPv6 one (by its subnet, else its gateway or range)."""
    for key in ("Subnet", "Gateway", "IPRange"):
        text = config.get(key) or ""
        if text:
            return ":" in text
    return False


def split_configs(configs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    v4 = [c for c in configs if not is_v6(c)]
    v6 = [c for c in configs if is_v6(c)]
    if len(v4) > 1 or len(v6) > 1:
        raise Ipv6Error("bridge driver doesn't support multiple subnets", 403)
    return v4, v6


@dataclass
class Pool6:
    subnet: str
    gateway: str
    ip_range: str
    show_gateway: bool


def parse_pool(config: dict[str, Any], taken: list[str]) -> Pool6:
    """The IPv6 entry of a network create, checked with dockerd's words."""
    text = config.get("Subnet") or ""
    if not text:
        raise Ipv6Error(NO_POOL, 404)
    try:
        subnet = IPv6Net(text, strict=False)
    except ValueError:
        raise Ipv6Error(f"Invalid subnet {text} : invalid CIDR address: {text}", 500) from None
    if str(subnet) != text:
        raise Ipv6Error(f"invalid subnet {text} : it should be {subnet}", 400)
    for other in taken:
        if subnet.overlaps(IPv6Net(other)):
            raise Ipv6Error("Pool overlaps with other one on this address space", 403)
    given = config.get("Gateway") or ""
    gateway = given or str(subnet[1])
    try:
        address = ipaddress.IPv6Address(gateway)
    except ValueError:
        raise Ipv6Error(f"invalid gateway address {gateway} in Ipam configuration", 500) from None
    if address not in subnet:
        raise Ipv6Error(f"failed to allocate gateway ({gateway}): Requested address is out of range", 500)
    if address == subnet.network_address:
        raise Ipv6Error(f"failed to allocate gateway ({gateway}): Address already in use", 500)
    ip_range = config.get("IPRange") or ""
    if ip_range:
        try:
            if not IPv6Net(ip_range, strict=False).subnet_of(subnet):
                raise ValueError
        except ValueError:
            raise Ipv6Error(f"Invalid ip range {ip_range}: not in subnet {subnet}", 400) from None
    return Pool6(str(subnet), str(address), ip_range, bool(given))


def allocate(subnet: str, gateway: str, ip_range: str, used: set[str], wanted: str = "") -> str:
    """An address of the IPv6 pool not in `used`: `wanted` (--ip6) or the lowest free one."""
    net = IPv6Net(subnet)
    if wanted:
        try:
            address = ipaddress.IPv6Address(wanted)
        except ValueError:
            raise Ipv6Error(f"Invalid IPv6 address: {wanted})") from None
        if address not in net:
            raise Ipv6Error(f"Invalid address {wanted}: It does not belong to any of this network's subnets")
        if str(address) in used or str(address) == gateway or address == net.network_address:
            raise Ipv6Error("Address already in use", 403)
        return str(address)
    start = IPv6Net(ip_range, strict=False) if ip_range else net
    first = int(start.network_address) + (1 if start.network_address == net.network_address else 0)
    for n in range(first, first + min(start.num_addresses, 1 << 20)):
        text = str(ipaddress.IPv6Address(n))
        if text != gateway and text not in used:
            return text
    raise Ipv6Error(f"no available IPv6 addresses on this network's address pools: {subnet}")


def ipam_entry(pool: dict[str, Any]) -> dict[str, Any]:
    """The network's IPv6 IPAM Config entry as dockerd shows it (a stored Pool6)."""
    entry: dict[str, Any] = {"Subnet": pool["subnet"]}
    if pool["ip_range"]:
        entry["IPRange"] = pool["ip_range"]
    if pool["show_gateway"]:
        entry["Gateway"] = pool["gateway"]
    return entry


# --- the network service's side ------------------------------------------------------------------


def network_pool(
    service: Any, body: dict[str, Any], configs: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """A create's IPAM Config split: (the IPv4 entries, the IPv6 pool as stored, or None)."""
    v4, v6 = split_configs(configs)
    taken6 = [n.pool6["subnet"] for n in service.networks.values() if n.pool6]
    if not v6 and body.get("EnableIPv6"):  # daemon.json's IPv6 default-address-pools, else dockerd's error
        subnet = choose_subnet(getattr(service, "pools6", []), taken6)
        return v4, Pool6(subnet, str(IPv6Net(subnet)[1]), "", True).__dict__.copy()
    if not v6:
        return v4, None
    pool = parse_pool(v6[0], taken6)
    return v4, pool.__dict__.copy()


def endpoint_address(service: Any, net: Any, ipam_config: dict[str, Any] | None, mac: str = "") -> str:
    """The endpoint's IPv6 address ("" on a network without IPv6); dockerd's refusal of an --ip6 there."""
    wanted = (ipam_config or {}).get("IPv6Address") or ""
    from .service import NetworkError

    if not net.pool6:
        if wanted:
            raise NetworkError(
                "user specified IP address is supported only when connecting to networks with "
                "user configured subnets",
                400,
            )
        return ""
    if not net.enable_ipv6:
        return ""
    used = {ep.address6 for b in service.sandboxes.values() for ep in b.endpoints if ep.address6}
    pool = net.pool6
    if pool.get("from_mac") and not wanted and mac:  # the default bridge's fixed-cidr-v6 (below)
        prefix = int(IPv6Net(pool["subnet"]).network_address)
        return str(ipaddress.IPv6Address(prefix | int(mac.replace(":", ""), 16)))
    pool = {k: pool[k] for k in ("subnet", "gateway", "ip_range")}
    try:
        return allocate(pool["subnet"], pool["gateway"], pool["ip_range"], used, wanted)
    except Ipv6Error as e:
        raise NetworkError(str(e), e.status) from None


def bridge_address(nl: Any, index: int, device: str, pool: dict[str, Any]) -> None:
    """The gateway on the bridge, IPv6 enabled on it (a host may disable it by default)."""
    _sysctl(f"net/ipv6/conf/{device}/disable_ipv6", "0")
    prefix = IPv6Net(pool["subnet"]).prefixlen
    nl.add_address6(index, ipaddress.IPv6Interface(f"{pool['gateway']}/{prefix}"))


def _sysctl(key: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{key}", "w") as f:
            f.write(value)
    except OSError:
        pass


def firewall_text(service: Any) -> str:
    """The `table ip6` twin's commands ("" while no network has, nor had, IPv6)."""
    from . import firewall6

    bridges = [
        firewall6.Bridge6(n.device, n.pool6["subnet"], n.internal)
        for n in service.networks.values()
        if n.driver == "bridge" and n.enable_ipv6 and n.pool6
    ]
    forwards = []
    for box in service.sandboxes.values():
        if box.ports and box.endpoints and box.endpoints[0].address6:
            # [::1] is the proxy's alone (proxy6.py): the kernel would drop the DNAT-ed packets
            forwards += [
                firewall6.Forward6(m, box.endpoints[0].address6)
                for m in box.ports
                if ":" in m.host_ip and m.host_ip != "::1"
            ]
    if not bridges:
        if getattr(service, "_table6", False):
            service._table6 = False
            return firewall6.remove(service.table)
        return ""
    service._table6 = True
    return firewall6.render(service.table, bridges, forwards)


def start_proxies(holder: Any, box: Any) -> None:
    """The userland proxy of each TCP port held on an IPv6 host address (connections from ::1)."""
    if not holder.v6 or not box.endpoints or not box.endpoints[0].address6:
        return
    from . import proxy6

    for m in box.ports:
        sock = holder.v6.get((m.proto, m.host_ip, m.host_port))
        if sock is not None and m.proto == "tcp":
            proxy6.serve(sock, (box.endpoints[0].address6, m.container_port))


def default_bridge(service: Any, default: Any) -> None:
    """daemon.json's `ipv6` and `fixed-cidr-v6` on the default bridge, as dockerd 20.10: EnableIPv6, the pool
    (its gateway the subnet's first address) and, on a subnet of 80 bits or fewer, each container's address
    made of the prefix and its MAC (dockerd's deferred allocation: 02:42:ac:11:00:02 ->
    prefix::242:ac11:2)."""
    enabled, fixed = service.default_ipv6
    if not enabled:
        default.enable_ipv6, default.pool6 = False, None
        return
    default.enable_ipv6 = True
    if not fixed:
        default.pool6 = None
        return
    try:
        subnet = IPv6Net(fixed, strict=False)
    except ValueError:
        raise Ipv6Error(f"invalid fixed-cidr-v6: {fixed}") from None
    pool = Pool6(str(subnet), str(subnet[1]), "", True).__dict__.copy()
    pool["from_mac"] = subnet.prefixlen <= 80
    default.pool6 = pool


def parse_pools(entries: list[dict[str, Any]]) -> list[tuple[IPv6Net, int]]:
    """The IPv6 entries of daemon.json's `default-address-pools`: (base, size)."""
    pools = []
    for entry in entries:
        if ":" not in str(entry.get("base") or ""):
            continue
        try:
            base, size = IPv6Net(str(entry["base"]), strict=False), int(entry["size"])
        except (KeyError, ValueError, TypeError) as e:
            raise Ipv6Error(f"invalid default-address-pools entry {entry!r}: {e}") from None
        if not base.prefixlen <= size <= 128:
            raise Ipv6Error(
                f"invalid default-address-pools entry {entry!r}: size must be {base.prefixlen}-128"
            )
        pools.append((base, size))
    return pools


def choose_subnet(pools: list[tuple[IPv6Net, int]], taken: list[str]) -> str:
    """The first subnet of the IPv6 pools that overlaps no other network's (libnetwork's predefined pools)."""
    used = [IPv6Net(t) for t in taken]
    for base, size in pools:
        for n, subnet in enumerate(base.subnets(new_prefix=size)):
            if n > 65536:
                break
            if not any(subnet.overlaps(u) for u in used):
                return str(subnet)
    raise Ipv6Error(NO_POOL, 404)
