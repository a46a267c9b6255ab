"""The IPv6 twin of the daemon's nftables table (firewall.py): a `table ip6` of the same name, only while some
network has IPv6. Published ports on IPv6 host addresses DNAT-ed to the container's IPv6 address (from the
host's `::1` too: masqueraded to the bridge's address, the kernel never routing a loopback source out), the
outbound masquerade, and the same forward filtering: into a bridge only replies, DNAT-ed connections and the
bridge's own traffic, nothing between bridges, internal networks shut."""

from __future__ import annotations

from dataclasses import dataclass

from .ports import PortMapping


@dataclass(frozen=True)
class Bridge6:
    device: str
    subnet: str
    internal: bool


@dataclass(frozen=True)
class Forward6:
    mapping: PortMapping
    container_ip: str


def render(table: str, bridges: list[Bridge6], forwards: list[Forward6]) -> str:
    nat_ports = []
    for f in forwards:
        m = f.mapping
        # from the host's ::1 the proxy takes it (proxy6.py): no route carries a loopback source out
        match = "ip6 daddr != ::1 " if m.host_ip == "::" else f"ip6 daddr {m.host_ip} "
        nat_ports.append(
            f"    {match}{m.proto} dport {m.host_port} dnat to [{f.container_ip}]:{m.container_port}"
        )
    devices = [b.device for b in bridges]
    every = "{ " + ", ".join(f'"{d}"' for d in devices) + " }"
    postrouting, forward, isolation = [], [], []
    for b in bridges:
        dev = f'"{b.device}"'
        postrouting.append(f"    oifname {dev} ip6 saddr ::1 masquerade")
        postrouting.append(f"    oifname {dev} ip6 saddr {b.subnet} ct status dnat masquerade")
        if b.internal:
            forward.append(f"    iifname {dev} oifname != {dev} drop")
            forward.append(f"    oifname {dev} iifname != {dev} drop")
        else:
            postrouting.append(f"    ip6 saddr {b.subnet} oifname != {dev} masquerade")
        others = [f'"{d}"' for d in devices if d != b.device]
        if others:
            isolation.append(f"    iifname {dev} oifname {{ {', '.join(others)} }} drop")
    if devices:
        forward.append(f"    oifname {every} ct state established,related accept")
        forward.append(f"    oifname {every} ct status dnat accept")
        forward += isolation
        forward += [f'    iifname "{d}" oifname "{d}" accept' for d in devices]
        forward.append(f"    oifname {every} drop")
    lines = [
        *remove(table).splitlines(),
        f"table ip6 {table} {{",
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
        "  chain forward {",
        "    type filter hook forward priority filter; policy accept;",
        *forward,
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def remove(table: str) -> str:
    return f"table ip6 {table} {{}}\ndelete table ip6 {table}\n"
