"""What a container's embedded DNS knows: the containers on every user network it is on, as dockerd's
`Sandbox.ResolveName` and `ResolveIP` see them.

A name is a container's name, one of its network aliases (its short ID among them), or its hostname, on one of
the asking container's user networks (in the order it joined them); `name.network` names it on that network
alone (dockerd tries every split of a dotted name: `a.b.c` as `a.b` on network `c`, then `a` on `b.c`). Every
container answering to the name on the first network that has one is in the answer, shuffled as dockerd's
default. A reverse lookup of an address on those networks gives `name.network`.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from .linkalias import link_target

if TYPE_CHECKING:
    from .service import Network, NetworkService, Sandbox


def candidates(name: str) -> list[tuple[str, str]]:
    """(name, network name or "" for any) to try for a query, in dockerd's order."""
    name = name.rstrip(".").lower()
    out = [(name, "")]
    dup = name
    while "." in dup:
        i = dup.rindex(".")
        out.append((name[:i], name[i + 1 :]))
        dup = dup[:i]
    return out


def _names(box: Sandbox, aliases: list[str]) -> set[str]:
    names = {box.container_name.lower(), box.container_id[:12], *(a.lower() for a in aliases)}
    if box.hostname:
        names.add(box.hostname.lower())
    names.discard("")
    return names


class ContainerNames:
    """The embedded DNS's directory, read from the network service's sandboxes under its lock."""

    def __init__(self, service: NetworkService) -> None:
        self.service = service

    def _networks(self, container_id: str) -> list[Network]:
        box = self.service.sandboxes.get(container_id)
        if box is None:
            return []
        nets = (self.service.networks.get(ep.network_id) for ep in box.endpoints)
        return [n for n in nets if n is not None and n.dns]

    def addresses(self, container_id: str, name: str, v6: bool = False) -> list[str] | None:
        """The IPv4 addresses of `name` as the container sees it (or its IPv6 ones: `v6`, maybe none); None
        when it is no container's name."""
        with self.service._lock:
            networks = self._networks(container_id)
            asker = self.service.sandboxes.get(container_id)
            for wanted, network_name in candidates(name):
                if not wanted:
                    continue
                for net in networks:
                    if network_name and net.name.lower() != network_name:
                        continue
                    # a link alias of the asker's endpoint stands for another name there (linkalias.py)
                    lookup = (link_target(asker, net.id, wanted) if asker else None) or wanted
                    eps = [
                        ep
                        for box in self.service.sandboxes.values()
                        for ep in box.endpoints
                        if ep.network_id == net.id and lookup in _names(box, ep.aliases)
                    ]
                    if eps:
                        found = [e.address6 for e in eps if e.address6] if v6 else [e.address for e in eps]
                        random.shuffle(found)
                        return found
        return None

    def reverse(self, container_id: str, address: str) -> str | None:
        """`name.network` of the container with `address` on one of the asking container's networks."""
        with self.service._lock:
            for net in self._networks(container_id):
                for box in self.service.sandboxes.values():
                    for ep in box.endpoints:
                        if ep.network_id == net.id and address in (ep.address, ep.address6):
                            return f"{box.container_name}.{net.name}"
        return None
