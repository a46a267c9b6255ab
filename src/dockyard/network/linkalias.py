"""Links on a user-defined network: aliases the linking container alone resolves, as libnetwork's
`CreateOptionAlias` (the endpoint's `aliases`: alias -> the name it stands for, from `EndpointSettings.Links`,
`name:alias`), kept in `Endpoint.links`.

dockerd's Sandbox.ResolveName looks a name up as such an alias first, on each of the asking container's
networks (then as the container name it stands for, on that network alone), and a name that is an alias of
the asking endpoint is not looked up as an ordinary name on that network. The link's target need not exist
when the link is made: it resolves once a container of that name (or alias) is on the network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .service import Sandbox


def link_target(box: Sandbox, network_id: str, name: str) -> str | None:
    """The name `name` stands for when the container of `box` asks for it on `network_id` (lower case, as
    the embedded DNS compares names), or None when it is no link alias of that endpoint."""
    wanted = name.rstrip(".").lower()
    for ep in box.endpoints:
        if ep.network_id == network_id:
            for alias, target in ep.links.items():
                if alias.lower() == wanted:
                    return target.lower()
    return None
