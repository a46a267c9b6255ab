"""Which URLs serve a registry domain, in the order Docker tries them.

* ``docker.io``: each configured mirror, then the upstream ``https://registry-1.docker.io``.
* any other domain: ``https://domain``; when the registry is insecure also ``http://domain`` after it.

A registry is insecure when it is listed in ``insecure-registries`` by ``host[:port]``, when its host is
an IP address inside a listed CIDR, or when it is on loopback (``localhost``, 127.0.0.0/8, ::1), which
Docker always treats as insecure. Insecure means: TLS without certificate verification, and plain HTTP
as the fallback. Host names are not resolved to match CIDRs (Docker does resolve them): a name needs
listing by name.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.engine.config import DaemonConfig

__all__ = ["DOCKER_HUB_DOMAIN", "DOCKER_HUB_REGISTRY", "Endpoint", "RegistryHosts", "split_host_port"]

DOCKER_HUB_DOMAIN = "docker.io"
DOCKER_HUB_REGISTRY = "https://registry-1.docker.io"
# Names that all mean Docker Hub, as a domain or as a login server address.
DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_LOOPBACK_NETS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)


@dataclass(frozen=True)
class Endpoint:
    """One base URL (scheme://host[:port], no trailing slash) that serves the registry API under /v2/.

    `insecure` turns TLS certificate verification off for an https URL (plain http has none to skip).
    """

    url: str
    mirror: bool = False
    insecure: bool = False

    @property
    def host(self) -> str:
        """The URL's host[:port]."""
        return self.url.split("://", 1)[1].split("/", 1)[0]

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]


@dataclass
class RegistryHosts:
    """The daemon's registry settings: mirrors for Docker Hub and the insecure registries."""

    mirrors: list[str] = field(default_factory=list)
    insecure: list[str] = field(default_factory=list)
    # Tests point this at loopback so that nothing ever leaves the machine.
    docker_hub_url: str = DOCKER_HUB_REGISTRY

    def __post_init__(self) -> None:
        self.mirrors = [m.rstrip("/") for m in self.mirrors]
        self._insecure_names: set[str] = set()
        self._insecure_nets: list[IPNetwork] = []
        for entry in self.insecure:
            entry = entry.strip()
            # Docker rejects a scheme here; we are lenient and drop it (and any trailing slash).
            if "://" in entry:
                entry = entry.split("://", 1)[1]
            entry = entry.rstrip("/")
            if "/" in entry:
                try:
                    self._insecure_nets.append(ipaddress.ip_network(entry, strict=False))
                    continue
                except ValueError:
                    pass
            self._insecure_names.add(entry.lower())

    @classmethod
    def from_config(cls, config: DaemonConfig) -> RegistryHosts:
        return cls(mirrors=list(config.registry_mirrors), insecure=list(config.insecure_registries))

    def is_insecure(self, domain: str) -> bool:
        """Whether `domain` (host[:port]) may be reached without verified TLS."""
        domain = domain.lower()
        host, _ = split_host_port(domain)
        if domain in self._insecure_names or host in self._insecure_names:
            return True
        if host == "localhost":
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in (*_LOOPBACK_NETS, *self._insecure_nets))

    def endpoints(self, domain: str, *, include_mirrors: bool = True) -> list[Endpoint]:
        """The endpoints to try for `domain`, in order. Push and login pass include_mirrors=False."""
        if domain.lower() in DOCKER_HUB_ALIASES:
            result = []
            if include_mirrors:
                for mirror in self.mirrors:
                    host = mirror.partition("://")[2].split("/", 1)[0]
                    result.append(Endpoint(mirror, mirror=True, insecure=self.is_insecure(host)))
            result.append(Endpoint(self.docker_hub_url, insecure=False))
            return result
        if self.is_insecure(domain):
            return [Endpoint(f"https://{domain}", insecure=True), Endpoint(f"http://{domain}", insecure=True)]
        return [Endpoint(f"https://{domain}")]


def split_host_port(domain: str) -> tuple[str, int | None]:
    """``"[::1]:5000"`` -> ``("::1", 5000)``, ``"host"`` -> ``("host", None)``."""
    if domain.startswith("["):
        host, _, rest = domain[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif domain.count(":") == 1:
        host, _, port = domain.partition(":")
    else:  # a bare IPv6 address or a plain name
        host, port = domain, ""
    return host, int(port) if port.isdigit() else None
