"""The daemon's nftables table: published ports (kernel DNAT), outbound masquerading, isolation between
networks, the host's loopback kept the host's, and only published ports (and replies) let into a bridge. The
whole table is rewritten in one transaction at every change, so it never holds a rule for a container that is
gone, and each daemon owns its own table (named after its default bridge): several daemons on a host never
touch each other's rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .ports import PortMapping


@dataclass(frozen=True)
class BridgeRules:
    device: str
    subnet: str
    internal: bool


@dataclass(frozen=True)
class Forward:
    mapping: PortMapping
    container_ip: str


def table_name(default_bridge: str) -> str:
    return "dockyard_" + re.sub(r"[^A-Za-z0-9_]", "_", default_bridge)


def render(table: str, bridges: list[BridgeRules], forwards: list[Forward]) -> str:
    """The nft commands that replace `table` with the rules for these bridges and published ports."""
    nat_ports = []
    for f in forwards:
        m = f.mapping
        match = "" if m.host_ip == "0.0.0.0" else f"ip daddr {m.host_ip} "
        nat_ports.append(
            f"    {match}{m.proto} dport {m.host_port} dnat to {f.container_ip}:{m.container_port}"
        )
    postrouting = []
    forward = []
    isolation = []
    devices = [b.device for b in bridges]
    every = f"{{ {', '.join(_quote(d) for d in devices)} }}"
    for b in bridges:
        dev = _quote(b.device)
        # DNAT from the host's 127.0.0.1 leaves with a loopback source: make it the bridge's address
        postrouting.append(f"    oifname {dev} ip saddr 127.0.0.0/8 masquerade")
        # a container reaching a published port of its own bridge: replies must come back through the host
        postrouting.append(f"    oifname {dev} ip saddr {b.subnet} ct status dnat masquerade")
        if b.internal:
            forward.append(f"    iifname {dev} oifname != {dev} drop")
            forward.append(f"    oifname {dev} iifname != {dev} drop")
        else:
            postrouting.append(f"    ip saddr {b.subnet} oifname != {dev} masquerade")
        others = [_quote(d) for d in devices if d != b.device]
        if others:
            isolation.append(f"    iifname {dev} oifname {{ {', '.join(others)} }} drop")
    loopback = []
    if devices:
        # Every bridge has route_localnet=1 (for the DNAT from the host's 127.0.0.1), so the kernel no longer
        # takes 127.0.0.0/8 on a bridge for a martian: a container with CAP_NET_RAW could send packets to
        # 127.0.0.1 through the gateway's MAC and reach services that listen on the host's loopback only
        # (CVE-2020-8558). Dropped before conntrack and NAT; replies to connections DNAT-ed from the host's
        # loopback arrive with the bridge's address (masqueraded above), turned back to 127.0.0.1 only later.
        loopback.append(f"    iifname {every} ip daddr 127.0.0.0/8 drop")
        loopback.append(f"    iifname {every} ip saddr 127.0.0.0/8 drop")
        # Into a bridge from anywhere else, as dockerd: replies, connections DNAT-ed to a published port
        # (a container's own bridge reaching it through the host included), traffic within the bridge;
        # nothing else (a neighbour routed through this host reached every port of every container).
        # The bridges' own traffic out is not matched here: containers' connections out stay allowed.
        # Replies and published ports come before the isolation between networks: a container reaches a
        # port another network's container publishes through the host's address, as with dockerd
        # (compose projects rely on it), while nothing else crosses. Internal networks stay shut (above).
        forward.append(f"    oifname {every} ct state established,related accept")
        forward.append(f"    oifname {every} ct status dnat accept")
        forward += isolation
        forward += [f"    iifname {_quote(d)} oifname {_quote(d)} accept" for d in devices]
        forward.append(f"    oifname {every} drop")
    lines = [
        f"table ip {table} {{}}",
        f"delete table ip {table}",
        f"table ip {table} {{",
        "  chain ports {",
        *nat_ports,
        "  }",
        "  chain prerouting {",
        "    type nat hook prerouting priority dstnat; policy accept;",
        "    fib daddr type local jump ports",
        "  }",
        "  chain output {",
        "    type nat hook output priority -100; policy accept;",
        "    fib daddr type local jump ports",
        "  }",
        "  chain postrouting {",
        "    type nat hook postrouting priority srcnat; policy accept;",
        *postrouting,
        "  }",
        "  chain loopback {",
        "    type filter hook prerouting priority raw; policy accept;",
        *loopback,
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
        *forward,
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def remove(table: str) -> str:
    return f"table ip {table} {{}}\ndelete table ip {table}\n"


def _quote(device: str) -> str:
    return f'"{device}"'
