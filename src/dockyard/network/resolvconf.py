"""A container's /etc/resolv.conf and the resolvers its embedded DNS forwards to, as dockerd 20.10 makes them.

The source is the host's resolv.conf (systemd-resolved's upstream file when the host's names only its stub at
127.0.0.53, as dockerd's `resolvconf.Path`), or what the container asks for (`--dns`, `--dns-search`,
`--dns-option`), or else what daemon.json's `dns`, `dns-search` and `dns-opts` say. On a user network the
file names the embedded DNS (`nameserver 127.0.0.11`, dockerd's `options ndots:0` unless an ndots is given)
and the IPv4 resolvers it would have named become the embedded DNS's forwarders (three at most): a loopback
one is the host's (asked from the host's namespace) unless `--dns 127.0.0.1` is among them, when they all
are the container's own (asked from the container's namespace, like every other forwarder).
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

EMBEDDED_DNS = "127.0.0.11"
HOST_RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
SYSTEMD_STUB = "127.0.0.53"
MAX_FORWARDERS = 3  # dockerd's maxExtDNS


@dataclass
class DnsSettings:
    """daemon.json's `dns`, `dns-search` and `dns-opts`: for containers that give none of their own."""

    servers: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, extra: dict[str, Any]) -> DnsSettings:
        def strings(key: str) -> list[str]:
            value = extra.get(key) or []
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key}: a list of strings expected")
            return [v.strip() for v in value if v.strip()]

        return cls(strings("dns"), strings("dns-search"), strings("dns-opts"))


@dataclass
class ResolvPlan:
    content: str  # the container's /etc/resolv.conf
    forwarders: list[tuple[str, bool]]  # (IPv4 address, reached from the host's namespace)
    ndots_set: bool  # the user gave an ndots option: names without a dot are not forwarded (dockerd)

    def record(self) -> dict[str, Any]:
        """What the sandbox record keeps for the embedded DNS (so a restarted daemon serves it again)."""
        return {"forwarders": [list(f) for f in self.forwarders], "ndots": self.ndots_set}


def host_resolv_conf_path(path: str = HOST_RESOLV_CONF) -> str:
    """The file dockerd reads: the host's, or systemd-resolved's upstream list behind its local stub."""
    servers = nameservers(_read(path))
    if servers == [SYSTEMD_STUB]:
        with contextlib.suppress(OSError):
            open(SYSTEMD_RESOLV_CONF).close()
            return SYSTEMD_RESOLV_CONF
    return path


def read_host() -> str:
    return _read(host_resolv_conf_path())


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def nameservers(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[0] == "nameserver":
            out.append(parts[1])
    return out


def _last(text: str, keyword: str) -> list[str] | None:
    found = None
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == keyword:
            found = parts[1:]
    return found


def _options(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "options":
            out += parts[1:]
    return out


def _is_ipv4(address: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(address), ipaddress.IPv4Address)
    except ValueError:
        return False


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def host_resolvers(text: str | None = None) -> list[str]:
    """The host's IPv4 resolvers a container can reach itself (loopback ones are the host's alone)."""
    text = read_host() if text is None else text
    return [s for s in nameservers(text) if _is_ipv4(s) and not _is_loopback(s)]


def plan(
    host_text: str,
    servers: list[str],
    search: list[str],
    options: list[str],
    embedded: bool,
) -> ResolvPlan:
    """The container's resolv.conf from the host's (`host_text`) and what was asked for (the container's own
    settings, or else the daemon's)."""
    if not embedded:
        return ResolvPlan(_plain(host_text, servers, search, options), [], False)
    given = bool(servers)
    chosen = servers if given else nameservers(host_text)
    host_loopback = "127.0.0.1" not in servers  # dockerd: `--dns 127.0.0.1` means the container's own
    forwarders = [(s, _is_loopback(s) and host_loopback) for s in chosen if _is_ipv4(s)][:MAX_FORWARDERS]
    # IPv6 resolvers stay in the file (dockerd's embedded DNS forwards IPv4 only); loopback ones of the host's
    # do not (they mean nothing in the container's namespace)
    ipv6 = [s for s in chosen if not _is_ipv4(s) and (given or not _is_loopback(s))]
    search = search or (_last(host_text, "search") or [])
    opts = options or _options(host_text)
    ndots_set = any(o.startswith("ndots:") for o in opts)
    if not ndots_set:
        opts = [*opts, "ndots:0"]
    lines = []
    if search and " ".join(search).strip() != ".":
        lines.append("search " + " ".join(search))
    lines += [f"nameserver {s}" for s in [EMBEDDED_DNS, *ipv6]]
    lines.append("options " + " ".join(opts))
    return ResolvPlan("\n".join(lines) + "\n", forwarders, ndots_set)


def _plain(host_text: str, servers: list[str], search: list[str], options: list[str]) -> str:
    """The default bridge's (no embedded DNS): the host's file with the nameservers a container can reach and
    the container's own settings in place of the host's."""
    servers = list(servers) or host_resolvers(host_text)
    lines = [f"nameserver {s}" for s in servers]
    for line in host_text.splitlines():
        parts = line.split()
        if not parts or parts[0] == "nameserver" or line.lstrip().startswith("#"):
            continue
        if parts[0] in ("search", "domain") and search:
            continue
        if parts[0] == "options" and options:
            continue
        lines.append(line)
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + ("\n" if lines else "")
