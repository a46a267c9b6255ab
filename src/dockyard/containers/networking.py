"""A container's side of networking: which networks it is on (chosen at create, changed by connect and
disconnect), its sandbox at start and release at exit, its /etc/hosts and /etc/resolv.conf, and how inspect
and the container list show its networks and ports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..network.dns import host_resolvers
from ..network.ports import PortError, ports_list, ports_view, requests_for, split_port
from ..network.service import Attachment, Network, NetworkError, Sandbox
from .store import Container

if TYPE_CHECKING:
    from ..network.service import NetworkService

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)


class ContainerNetworkError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def network_mode(host_config: dict[str, Any]) -> str:
    mode = host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def sandboxed(host_config: dict[str, Any]) -> bool:
    """Whether the engine makes the container's namespace (bridge and user networks), rather than the host's
    (`host`), another container's (`container:`), or the runtime's own with only lo (`none`)."""
    mode = network_mode(host_config)
    return mode not in ("host", "none") and not mode.startswith("container:")


class ContainerNetworking:
    def __init__(self, networks: NetworkService | None) -> None:
        self.networks = networks

    # --- create ------------------------------------------------------------------------------------

    def at_create(
        self, host_config: dict[str, Any], config: dict[str, Any], networking_config: dict[str, Any] | None
    ) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """The container's networks (network ID -> the EndpointSettings asked for) and warnings."""
        mode = network_mode(host_config)
        warnings: list[str] = []
        bindings = host_config.get("PortBindings") or {}
        try:
            for key in [*bindings, *(config.get("ExposedPorts") or {})]:
                split_port(key)
        except PortError as e:
            raise ContainerNetworkError(str(e)) from None
        if mode.startswith("container:"):
            if bindings or host_config.get("PublishAllPorts"):
                raise ContainerNetworkError(
                    "conflicting options: port publishing and the container type network mode"
                )
            return {}, warnings
        if mode == "host" and bindings:
            warnings.append("Published ports are discarded when using host network mode")
        if self.networks is None:
            return {}, warnings
        try:
            net = self.networks.get(mode)
        except NetworkError as e:
            if (host_config.get("NetworkMode") or "default") == "default" and mode == "bridge":
                return {}, warnings  # a daemon without a default bridge (`--bridge=none`): only lo
            raise ContainerNetworkError(str(e), e.status) from None
        endpoints = (networking_config or {}).get("EndpointsConfig") or {}
        settings = dict(endpoints.get(mode) or endpoints.get(net.name) or endpoints.get(net.id) or {})
        if net.predefined and settings.get("Aliases"):
            raise ContainerNetworkError(
                "network-scoped alias is supported only for containers in user defined networks"
            )
        if net.predefined and (settings.get("IPAMConfig") or {}).get("IPv4Address"):
            raise ContainerNetworkError(
                "user specified IP address is supported on user defined networks only"
            )
        return {net.id: settings}, warnings

    # --- connect and disconnect --------------------------------------------------------------------

    def lookup(self, ref: str) -> Network:
        if self.networks is None:
            raise NetworkError(f"network {ref} not found", 404)
        return self.networks.get(ref)

    def connect(self, c: Container, net: Network, settings: dict[str, Any]) -> None:
        mode = network_mode(c.host_config)
        if net.name == "host" or mode == "host":
            raise NetworkError(
                "container cannot be disconnected from host network or connected to host network", 400
            )
        if net.name == "none" or mode == "none":
            raise NetworkError(
                "container cannot be connected to multiple networks with one of the networks in private "
                "(none) mode",
                400,
            )
        if mode.startswith("container:"):
            raise NetworkError(
                "container sharing network namespace with another container or host cannot be connected to "
                "any other network",
                400,
            )
        chosen: dict[str, Any] = c.extra.setdefault("networks", {})
        if net.id in chosen:
            raise NetworkError(f"endpoint with name {c.name} already exists in network {net.name}", 403)
        settings = dict(settings or {})
        if net.predefined and settings.get("Aliases"):
            raise NetworkError(
                "network-scoped alias is supported only for containers in user defined networks", 400
            )
        assert self.networks is not None
        if c.running:
            self.networks.connect(c.id, net.id, settings)
        chosen[net.id] = settings

    def disconnect(self, c: Container, net: Network, force: bool) -> None:
        chosen: dict[str, Any] = c.extra.get("networks") or {}
        if net.id not in chosen:
            if net.name == "host" and network_mode(c.host_config) == "host":
                raise NetworkError(
                    "container cannot be disconnected from host network or connected to host network", 400
                )
            raise NetworkError(f"container {c.id} is not connected to network {net.name}", 403)
        assert self.networks is not None
        if c.running:
            self.networks.disconnect(c.id, net.id)
        del chosen[net.id]

    # --- start and exit ----------------------------------------------------------------------------

    def attach(self, c: Container, hostname: str) -> Sandbox | None:
        if self.networks is None or not sandboxed(c.host_config):
            return None
        chosen = c.extra.get("networks") or {}
        networks = []
        for net_id, settings in chosen.items():
            try:
                net = self.networks.get(net_id)
            except NetworkError:
                name = settings.get("_name") or net_id
                raise ContainerNetworkError(f"network {name} not found", 404) from None
            if net.driver == "bridge":
                networks.append((net.id, settings))
        if not networks:
            return None
        requests = requests_for(
            list((c.config.get("ExposedPorts") or {}).keys()),
            c.host_config.get("PortBindings") or {},
            bool(c.host_config.get("PublishAllPorts")),
        )
        try:
            return self.networks.attach(Attachment(c.id, c.name, networks, requests, hostname))
        except NetworkError as e:
            raise ContainerNetworkError(str(e), e.status) from None

    def release(self, c: Container) -> None:
        if self.networks is not None:
            self.networks.release(c.id)

    def sandbox(self, c: Container) -> Sandbox | None:
        return self.networks.sandbox(c.id) if self.networks is not None else None

    # --- /etc files --------------------------------------------------------------------------------

    def hosts(self, c: Container, hostname: str, box: Sandbox | None) -> str:
        lines = [HOSTS_HEADER]
        for entry in c.host_config.get("ExtraHosts") or []:
            host, _, address = entry.partition(":")
            if address == "host-gateway":
                address = self._default_gateway()
            lines.append(f"{address}\t{host}\n")
        address = box.endpoints[0].address if box and box.endpoints else "127.0.0.1"
        lines.append(f"{address}\t{hostname}\n")
        return "".join(lines)

    def resolv_conf(self, c: Container, box: Sandbox | None) -> str:
        try:
            with open("/etc/resolv.conf") as f:
                host_lines = f.read().splitlines()
        except OSError:
            host_lines = []
        hc = c.host_config
        search = hc.get("DnsSearch") or []
        options = hc.get("DnsOptions") or []
        servers = list(hc.get("Dns") or [])
        embedded = bool(box and self.networks and box.endpoints and self._dns_network(box))
        if embedded and box is not None:
            servers = [box.endpoints[0].gateway] if not servers else servers
        elif not servers:
            servers = host_resolvers()
        lines = [f"nameserver {s}" for s in servers]
        for line in host_lines:
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

    def _dns_network(self, box: Sandbox) -> bool:
        assert self.networks is not None
        net = self.networks.networks.get(box.endpoints[0].network_id)
        return bool(net and net.dns)

    def _default_gateway(self) -> str:
        if self.networks is None:
            return "127.0.0.1"
        try:
            return self.networks.get("bridge").gateway
        except NetworkError:
            return "127.0.0.1"

    # --- what inspect and ps show ------------------------------------------------------------------

    def _exposed(self, c: Container) -> list[str]:
        return list((c.config.get("ExposedPorts") or {}).keys())

    def settings(self, c: Container) -> dict[str, Any]:
        """Inspect's NetworkSettings, as dockerd shows it (the default bridge's fields at the top level)."""
        box = self.sandbox(c) if c.running else None
        networks: dict[str, Any] = {}
        top: dict[str, Any] = {}
        for net_id, settings in (c.extra.get("networks") or {}).items():
            name = self._name(net_id, settings)
            ep = next((e for e in box.endpoints if e.network_id == net_id), None) if box else None
            aliases = list(settings.get("Aliases") or [])
            if ep is not None and name != "bridge":  # dockerd adds the short ID on user networks
                aliases.append(c.id[:12])
            shown = {
                "IPAMConfig": settings.get("IPAMConfig") or None,
                "Links": None,
                "Aliases": aliases or None,
                "NetworkID": net_id,
                "EndpointID": ep.endpoint_id if ep else "",
                "Gateway": ep.gateway if ep else "",
                "IPAddress": ep.address if ep else "",
                "IPPrefixLen": ep.prefix if ep else 0,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": ep.mac if ep else "",
                "DriverOpts": None,
            }
            networks[name] = shown
            if name == "bridge" and ep:
                top = {
                    k: shown[k] for k in ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress")
                }
        if not networks and network_mode(c.host_config) in ("host", "none") and self.networks is not None:
            mode = network_mode(c.host_config)
            try:
                net = self.networks.get(mode)
                networks[mode] = {
                    "IPAMConfig": None, "Links": None, "Aliases": None, "NetworkID": net.id,
                    "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                    "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "", "DriverOpts": None,
                }  # fmt: skip
            except NetworkError:
                pass
        ports = ports_view(self._exposed(c), box.ports) if box else {}
        if c.running and not box and sandboxed(c.host_config):
            ports = ports_view(self._exposed(c), [])
        return {
            "Bridge": "",
            "SandboxID": box.container_id if box else "",
            "HairpinMode": False,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SandboxKey": box.netns if box else "",
            "SecondaryIPAddresses": None,
            "SecondaryIPv6Addresses": None,
            "EndpointID": top.get("EndpointID", ""),
            "Gateway": top.get("Gateway", ""),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": top.get("IPAddress", ""),
            "IPPrefixLen": top.get("IPPrefixLen", 0),
            "IPv6Gateway": "",
            "MacAddress": top.get("MacAddress", ""),
            "Networks": networks,
        }

    def list_fields(self, c: Container) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The container list's Ports and NetworkSettings.Networks."""
        settings = self.settings(c)
        box = self.sandbox(c) if c.running else None
        ports = ports_list(self._exposed(c), box.ports if box else [])
        return ports, {"Networks": settings["Networks"]}

    def _name(self, net_id: str, settings: dict[str, Any]) -> str:
        if self.networks is not None:
            net = self.networks.networks.get(net_id)
            if net is not None:
                return net.name
        return settings.get("_name") or net_id

    def matches(self, c: Container, filters: dict[str, list[str]]) -> bool:
        """ps's network, publish and expose filters."""
        if filters.get("network"):
            ids = set((c.extra.get("networks") or {}).keys())
            names = {self._name(i, s) for i, s in (c.extra.get("networks") or {}).items()}
            if not any(
                v in ids or v in names or any(i.startswith(v) for i in ids) for v in filters["network"]
            ):
                return False
        box = self.sandbox(c) if c.running else None
        if filters.get("publish"):
            published = {(m.host_port, m.proto) for m in (box.ports if box else [])}
            if not any(_port_match(v, published) for v in filters["publish"]):
                return False
        if filters.get("expose"):
            exposed = {split_port(k) for k in self._exposed(c)}
            if not any(_port_match(v, exposed) for v in filters["expose"]):
                return False
        return True


def _port_match(value: str, ports: set[tuple[int, str]]) -> bool:
    number, _, proto = value.partition("/")
    proto = proto or "tcp"
    low, _, high = number.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        return False
    return any(first <= p <= last and pr == proto for p, pr in ports)
