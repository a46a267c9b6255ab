"""A container's side of networking: which networks it is on (chosen at create, changed by connect and
disconnect), its sandbox at start and release at exit, its /etc/hosts and /etc/resolv.conf, and how inspect
and the container list show its networks and ports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..network import resolvconf
from ..network.ports import PortError, ports_list, ports_view, requests_for, split_port
from ..network.service import PREDEFINED, Attachment, Network, NetworkError, Sandbox
from . import endpoint_options
from .store import ZERO_TIME, Container

if TYPE_CHECKING:
    from ..network.service import NetworkService

_V6_KEYS = ("IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen")

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
        try:
            endpoints = endpoint_options.endpoints_config(networking_config)
        except endpoint_options.EndpointError as e:
            raise ContainerNetworkError(str(e), e.status) from None
        bindings = host_config.get("PortBindings") or {}
        try:
            for key in [*bindings, *(config.get("ExposedPorts") or {})]:
                split_port(key)
        except PortError as e:
            raise ContainerNetworkError(str(e)) from None
        if mode.startswith("container:"):
            return {}, warnings
        if mode == "host" and bindings:
            warnings.append("Published ports are discarded when using host network mode")
        if self.networks is None:
            return {}, warnings
        # the CLI names the endpoint of a bare `run` "default", as the NetworkMode it sends
        raw = host_config.get("NetworkMode") or "default"
        key, asked = next(iter(endpoints.items()), ("", {}))
        settings = dict(asked or {})
        if key and key not in (mode, raw) and mode not in ("host", "none"):
            mode = key  # dockerd keeps the container on the network its one endpoint names instead
        try:
            net = self.networks.get(mode)
        except NetworkError as e:
            if raw == "default" and mode == "bridge":
                return {}, warnings  # a daemon without a default bridge (`--bridge=none`): only lo
            if e.status != 404:
                raise ContainerNetworkError(str(e), e.status) from None
            # dockerd creates the container anyway and fails its start ("network X not found"); a 404 at
            # create would make the docker CLI think the image is missing and pull it
            return {mode: {**settings, "_name": mode}}, warnings
        settings["_name"] = net.name  # to name it if the network is removed before the start
        return {net.id: settings}, warnings

    # --- connect and disconnect --------------------------------------------------------------------

    def lookup(self, ref: str) -> Network:
        if self.networks is None:
            raise NetworkError(f"network {ref} not found", 404)
        return self.networks.get(ref)

    def connect(
        self, c: Container, net: Network, settings: dict[str, Any], resolv_conf: Path | None = None
    ) -> None:
        """`resolv_conf`: the running container's file, rewritten when this network starts its embedded DNS
        (a container on the default bridge joining a user network, as dockerd's rebuildDNS)."""
        mode = network_mode(c.host_config)
        if mode == "host" and net.name != "host":
            raise NetworkError(
                "container sharing network namespace with another container or host cannot be connected to "
                "any other network",
                400,
            )
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
            if not c.running:
                return  # dockerd keeps the settings it has and says nothing
            raise NetworkError(f"endpoint with name {c.name} already exists in network {net.name}", 403)
        settings = dict(settings or {})
        if net.predefined and settings.get("Aliases"):
            raise NetworkError(
                "network-scoped alias is supported only for containers in user defined networks", 400
            )
        if net.predefined and (settings.get("IPAMConfig") or {}).get("IPv4Address"):
            raise NetworkError("user specified IP address is supported on user defined networks only", 400)
        if not net.predefined and c.id[:12] not in (settings.get("Aliases") or []):
            settings["Aliases"] = [*(settings.get("Aliases") or []), c.id[:12]]  # as dockerd records it
        settings["_name"] = net.name
        assert self.networks is not None
        box = self.networks.sandbox(c.id) if c.running else None
        starts_dns = box is not None and net.dns and not box.dns
        if box is not None and starts_dns:
            box.dns = self._dns_plan(c, True).record()  # kept in the sandbox's record by the connect
        try:
            if c.running:
                self.networks.connect(c.id, net.id, self._endpoint_settings(c, net, settings, NetworkError))
        except BaseException:
            if box is not None and starts_dns:
                box.dns = {}
            raise
        chosen[net.id] = settings
        if box is not None and starts_dns:
            self.networks.dns.attach(c.id, box.netns, box.dns)
            if resolv_conf is not None:  # written in place: the container's bind mount sees it
                resolv_conf.write_text(self.resolv_conf(c, box))

    def disconnect(self, c: Container, net: Network, force: bool) -> None:
        chosen: dict[str, Any] = c.extra.get("networks") or {}
        if net.id not in chosen:
            if net.name == "host" and network_mode(c.host_config) == "host":
                raise NetworkError(
                    "container cannot be disconnected from host network or connected to host network", 400
                )
            the = "" if c.running else "the "  # dockerd's two wordings
            raise NetworkError(f"container {c.id} is not connected to {the}network {net.name}", 403)
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
                networks.append((net.id, self._endpoint_settings(c, net, settings, ContainerNetworkError)))
        if not networks:
            return None
        for settings in chosen.values():
            endpoint_options.started(settings)
        embedded = any(self.networks.networks[net_id].dns for net_id, _settings in networks)
        dns = self._dns_plan(c, True).record() if embedded else {}
        requests = requests_for(
            list((c.config.get("ExposedPorts") or {}).keys()),
            c.host_config.get("PortBindings") or {},
            bool(c.host_config.get("PublishAllPorts")),
            ipv6=self.networks.networks[networks[0][0]].enable_ipv6,
        )
        try:
            return self.networks.attach(Attachment(c.id, c.name, networks, requests, hostname, dns=dns))
        except NetworkError as e:
            raise ContainerNetworkError(str(e), e.status) from None

    def _endpoint_settings(
        self, c: Container, net: Network, settings: dict[str, Any], error: type
    ) -> dict[str, Any]:
        """What the endpoint is made with (endpoint_options.at_start), dockerd's refusals as `error`."""
        primary = net.name == network_mode(c.host_config) or net.id == c.host_config.get("NetworkMode")
        try:
            return endpoint_options.at_start(c.config, settings, net.predefined, primary)
        except endpoint_options.EndpointError as e:
            raise error(str(e), e.status) from None

    def joined(self, c: Container) -> list[Network]:
        """The networks a container is on that still exist (for dockerd's network connect and disconnect
        events at its start and exit)."""
        out = []
        for net_id in c.extra.get("networks") or {}:
            if self.networks is not None and net_id in self.networks.networks:
                out.append(self.networks.networks[net_id])
        return out

    def release(self, c: Container) -> None:
        if self.networks is not None:
            self.networks.release(c.id)

    def sandbox(self, c: Container) -> Sandbox | None:
        return self.networks.sandbox(c.id) if self.networks is not None else None

    # --- /etc files --------------------------------------------------------------------------------

    def hosts(self, c: Container, hostname: str, box: Sandbox | None, links: list[str] | None = None) -> str:
        """`links`: the legacy links' lines (containers/links.py), after --add-host's, as dockerd's."""
        mode = network_mode(c.host_config)
        extra = c.host_config.get("ExtraHosts") or []
        if mode == "host" and not extra:  # dockerd: the host's own file, as it is
            try:
                with open("/etc/hosts") as f:
                    return f.read()
            except OSError:
                pass
        lines = [HOSTS_HEADER]
        for entry in extra:
            host, _, address = entry.partition(":")
            if address == "host-gateway":
                address = self._default_gateway()
            lines.append(f"{address}\t{host}\n")
        if mode in ("host", "none"):  # no address of its own to name the hostname with
            return "".join(lines)
        lines += links or []
        address = box.endpoints[0].address if box and box.endpoints else "127.0.0.1"
        lines.append(f"{address}\t{hostname}\n")
        if box and box.endpoints and box.endpoints[0].address6:  # libnetwork's record of the IPv6 one too
            lines.append(f"{box.endpoints[0].address6}\t{hostname}\n")
        return "".join(lines)

    def resolv_conf(self, c: Container, box: Sandbox | None) -> str:
        """dockerd's: the embedded DNS (127.0.0.11) for a container on a user network, else the host's
        resolvers; the container's `--dns*` settings, or else daemon.json's `dns*`, in place of the host's."""
        return self._dns_plan(c, bool(box and box.dns)).content

    def _dns_plan(self, c: Container, embedded: bool) -> resolvconf.ResolvPlan:
        hc = c.host_config
        daemon = self.networks.dns.settings if self.networks is not None else resolvconf.DnsSettings()
        return resolvconf.plan(
            resolvconf.read_host(),
            list(hc.get("Dns") or daemon.servers),
            list(hc.get("DnsSearch") or daemon.search),
            list(hc.get("DnsOptions") or daemon.options),
            embedded,
        )

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
            # dockerd adds the short ID on user networks at the first start (or a connect) and keeps it;
            # the network's ID shows once the container ran on it
            ran = ep is not None or c.state.started_at != ZERO_TIME
            known = self.networks is not None and net_id in self.networks.networks
            if ran and known and name not in PREDEFINED and c.id[:12] not in aliases:
                aliases.append(c.id[:12])
            shown = {
                "IPAMConfig": settings.get("IPAMConfig") or None,
                "Links": None,
                "Aliases": aliases or None,
                "NetworkID": net_id if ran and known else "",
                "EndpointID": ep.endpoint_id if ep else "",
                "Gateway": ep.gateway if ep else "",
                "IPAddress": ep.address if ep else "",
                "IPPrefixLen": ep.prefix if ep else 0,
                "IPv6Gateway": ep.gateway6 if ep else "",
                "GlobalIPv6Address": ep.address6 if ep else "",
                "GlobalIPv6PrefixLen": ep.prefix6 if ep else 0,
                "MacAddress": ep.mac if ep else "",
                "DriverOpts": None,
            }
            endpoint_options.show(shown, settings, ep.mac if ep else "")
            networks[name] = shown
            if name == "bridge" and ep:
                keys = ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "MacAddress", *_V6_KEYS)
                top = {k: shown[k] for k in keys}
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
            "GlobalIPv6Address": top.get("GlobalIPv6Address", ""),
            "GlobalIPv6PrefixLen": top.get("GlobalIPv6PrefixLen", 0),
            "IPAddress": top.get("IPAddress", ""),
            "IPPrefixLen": top.get("IPPrefixLen", 0),
            "IPv6Gateway": top.get("IPv6Gateway", ""),
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


def check_port_filters(filters: dict[str, list[str]]) -> None:
    """ps's publish and expose values, refused as dockerd refuses them (with its 500)."""
    for key in ("publish", "expose"):
        for value in filters.get(key, []):
            if ":" in value:
                raise ContainerNetworkError(f"filter for '{key}' should not contain ':': {value}", 500)
            problem = _port_range_problem(value.partition("/")[0])
            if problem:
                raise ContainerNetworkError(f"error while looking up for {key} {value}: {problem}", 500)


def _port_range_problem(text: str) -> str:
    """What Go's nat.ParsePortRange says of `text`, or ""."""
    if not text:
        return "Empty string specified for ports."
    numbers = []
    for part in text.split("-")[:2]:
        if not (part.isascii() and part.isdigit()):
            return f'strconv.ParseUint: parsing "{part}": invalid syntax'
        if int(part) > 65535:
            return f'strconv.ParseUint: parsing "{part}": value out of range'
        numbers.append(int(part))
    if len(numbers) == 2 and numbers[1] < numbers[0]:
        return f"Invalid range specified for the Port: {text}"
    return ""


def _port_match(value: str, ports: set[tuple[int, str]]) -> bool:
    number, _, proto = value.partition("/")
    proto = proto or "tcp"
    low, _, high = number.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        return False
    return any(first <= p <= last and pr == proto for p, pr in ports)
