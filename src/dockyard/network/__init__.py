"""Networks: bridges, IPAM, container sandboxes (netns + veth), published ports, embedded DNS."""

from .ipam import AddressPool, IpamError, parse_pools
from .service import Endpoint, Network, NetworkError, NetworkService, Sandbox, remove_host_networking

__all__ = [
    "AddressPool",
    "Endpoint",
    "IpamError",
    "Network",
    "NetworkError",
    "NetworkService",
    "Sandbox",
    "parse_pools",
    "remove_host_networking",
]
