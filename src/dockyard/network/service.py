"""Networks and container sandboxes.

A network is a record (`<data-root>/network/networks/<id>.json`) and, for the bridge driver, a bridge device
with the gateway address. A running container on bridge networks has a sandbox: a network namespace made here
and kept by a bind mount (`<exec-root>/netns/<id12>`, joined by the runtime through the spec's namespace
path), one veth pair per network, an address from each network's subnet, and its published ports (a bound
socket holding each host port, a DNAT rule forwarding it). The sandbox's record
(`<data-root>/network/sandboxes/<container id>.json`) is written before any of that is made and removed after
all of it is gone, so a daemon that restarts knows what a running container holds (its addresses stay) and
what a container that stopped meanwhile left behind (released).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..linux.namespaces import create_netns, enter_netns, remove_netns
from ..linux.netlink import NetlinkError, RtNetlink, keep_bridge_address
from ..linux.nftables import Nftables, NftablesError
from . import firewall, firewall6, ipv6
from .coexist import ForwardAccepts
from .dns import DnsServer
from .ipam import DEFAULT_POOLS, AddressPool, IpamError, allocate, choose_subnet, mac_for, parse_bip
from .names import ContainerNames
from .ports import DynamicPorts, PortError, PortHolder, PortMapping, PortRequest, reserve

log = logging.getLogger(__name__)

DEFAULT_BRIDGE = "dockyard0"
PREDEFINED = ("bridge", "host", "none")


class NetworkError(Exception):
    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Network:
    id: str
    name: str
    driver: str  # bridge, host, null
    created: str
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    device: str = ""  # the bridge device
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    ipam_options: dict[str, str] | None = field(default_factory=dict)  # None: not given (shown null)
    aux_addresses: dict[str, str] = field(default_factory=dict)  # IPAM's AuxiliaryAddresses, never handed out
    user_ipam: bool = False  # subnet given by the user (shown as given in IPAM.Config)
    show_gateway: bool = True  # false when the user gave a subnet but no gateway: dockerd shows none
    enable_ipv6: bool = False
    pool6: dict[str, Any] | None = None  # its IPv6 IPAM entry (ipv6.Pool6), given or not EnableIPv6

    @property
    def predefined(self) -> bool:
        return self.name in PREDEFINED

    @property
    def dns(self) -> bool:
        """Docker's embedded DNS serves user-defined networks, not the default bridge."""
        return self.driver == "bridge" and not self.predefined


@dataclass
class Endpoint:
    network_id: str
    endpoint_id: str
    address: str
    prefix: int
    gateway: str
    mac: str
    interface: str  # inside the container: eth0, eth1...
    host_veth: str
    aliases: list[str] = field(default_factory=list)
    ipam_config: dict[str, Any] | None = None
    links: dict[str, str] = field(default_factory=dict)  # link alias -> container name (network/linkalias.py)
    address6: str = ""  # on an EnableIPv6 network (network/ipv6.py)
    prefix6: int = 0
    gateway6: str = ""


@dataclass
class Sandbox:
    container_id: str
    container_name: str
    netns: str
    endpoints: list[Endpoint] = field(default_factory=list)
    ports: list[PortMapping] = field(default_factory=list)
    hostname: str = ""
    dns: dict[str, Any] = field(default_factory=dict)  # its embedded DNS (resolvconf.ResolvPlan.record)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ports"] = [p.to_json() for p in self.ports]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sandbox:
        return cls(
            container_id=data["container_id"],
            container_name=data.get("container_name", ""),
            netns=data["netns"],
            endpoints=[Endpoint(**e) for e in data.get("endpoints") or []],
            ports=[PortMapping.from_json(p) for p in data.get("ports") or []],
            hostname=data.get("hostname", ""),
            dns=data.get("dns") or {},
        )


@dataclass
class Attachment:
    """What a container asks of its networks at start."""

    container_id: str
    container_name: str
    networks: list[tuple[str, dict[str, Any]]]  # (network id, EndpointSettings), the primary first
    ports: list[PortRequest]
    hostname: str = ""
    dns: dict[str, Any] = field(default_factory=dict)  # the embedded DNS's forwarders, when on a user network


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class NetworkService:
    def __init__(
        self,
        data_root: Path | str,
        exec_root: str,
        *,
        bridge: str = "",
        bip: str = "",
        pools: list[AddressPool] | None = None,
        mtu: int = 0,
        firewall_rules: bool = True,
        ip_forward: bool = True,
        default_ipv6: tuple[bool, str] = (False, ""),
        pools6: list[tuple[ipaddress.IPv6Network, int]] | None = None,
    ) -> None:
        root = Path(data_root) / "network"
        self._networks_dir = root / "networks"
        self._sandboxes_dir = root / "sandboxes"
        self._netns_dir = Path(exec_root) / "netns"
        self.bridge = bridge or DEFAULT_BRIDGE
        self.bip = bip
        self.pools = pools or DEFAULT_POOLS
        self.mtu = mtu
        self.default_ipv6 = default_ipv6  # daemon.json's ipv6 and fixed-cidr-v6 (network/ipv6.py)
        self.pools6 = pools6 or []  # the IPv6 default-address-pools
        # daemon.json's `iptables` and `ip-forward`, as dockerd's: with both false (and `--bridge none`) the
        # daemon changes nothing of the host's network (no table, no sysctl), nor publishes ports
        self.firewall_rules = firewall_rules
        self.ip_forward = ip_forward
        self.table = firewall.table_name(self.bridge)
        self.networks: dict[str, Network] = {}
        self.sandboxes: dict[str, Sandbox] = {}
        self._holders: dict[str, PortHolder] = {}
        self._dynamic_ports = DynamicPorts()
        self._lock = threading.RLock()
        self._nft: Nftables | None = None
        self._accepts: ForwardAccepts | None = None  # our bridges accepted in iptables' FORWARD
        self.dns = DnsServer(ContainerNames(self))

    # --- start-up ----------------------------------------------------------------------------------

    def setup(self) -> None:
        """Load the networks, make sure the predefined ones and every bridge exist, load the sandboxes."""
        for d in (self._networks_dir, self._sandboxes_dir, self._netns_dir):
            d.mkdir(parents=True, exist_ok=True)
        for path in self._networks_dir.glob("*.json"):
            try:
                data = json.loads(path.read_text())
                net = Network(**data)
            except (OSError, ValueError, TypeError) as e:
                log.warning("network record %s unreadable: %s", path, e)
                continue
            self.networks[net.id] = net
        for path in self._sandboxes_dir.glob("*.json"):
            try:
                box = Sandbox.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError, KeyError) as e:
                log.warning("sandbox record %s unreadable: %s", path, e)
                continue
            self.sandboxes[box.container_id] = box
        if self.firewall_rules:
            self._nft = Nftables()
            self._accepts = ForwardAccepts(self.bridge, self._nft)
        if self.ip_forward:
            _sysctl("net/ipv4/ip_forward", "1")
        self._ensure_predefined()
        for net in self.networks.values():
            if net.driver == "bridge":
                self._ensure_bridge(net)
        self._apply_firewall()

    def recover(self, running: set[str]) -> None:
        """After a daemon restart: sandboxes of containers still running keep their addresses and get their
        host ports back; those of containers that stopped meanwhile are released."""
        for cid, box in list(self.sandboxes.items()):
            if cid not in running:
                self.release(cid)
                continue
            holder = PortHolder()
            for m in box.ports:
                try:
                    holder.bind(m.proto, m.host_ip, m.host_port)
                except OSError as e:
                    log.warning("container %s: host port %s:%s: %s", cid[:12], m.host_ip, m.host_port, e)
            self._holders[cid] = holder
            ipv6.start_proxies(holder, box)
            if box.dns:
                self.dns.attach(cid, box.netns, box.dns)

    def close(self) -> None:
        """At daemon exit the bridges, rules and sandboxes stay: the containers outlive the daemon."""
        self.dns.close()
        for holder in self._holders.values():
            holder.close()
        self._holders.clear()

    def _ensure_predefined(self) -> None:
        by_name = {n.name: n for n in self.networks.values()}
        for name, driver in (("host", "host"), ("none", "null")):
            if name not in by_name:
                self._save(Network(id=secrets.token_hex(32), name=name, driver=driver, created=_now()))
        default = by_name.get("bridge")
        if self.bridge == "none":  # dockerd's `--bridge=none`: no default bridge, containers get only lo
            if default is not None:
                self.networks.pop(default.id, None)
                with contextlib.suppress(FileNotFoundError):
                    (self._networks_dir / f"{default.id}.json").unlink()
            return
        if default is None or (self.bip and parse_bip(self.bip)[0] != ipaddress.IPv4Network(default.subnet)):
            if self.bip:
                subnet, gateway = parse_bip(self.bip)
            else:
                subnet = self._free_subnet(exclude_device=self.bridge)
                gateway = str(subnet[1])
            if default is None:
                default = Network(id=secrets.token_hex(32), name="bridge", driver="bridge", created=_now())
            default.subnet, default.gateway, default.device = str(subnet), gateway, self.bridge
            self._save(default)
        elif default.device != self.bridge:
            default.device = self.bridge
            self._save(default)
        ipv6.default_bridge(self, default)
        default.options = {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": self.bridge,
            "com.docker.network.driver.mtu": str(self.mtu or 1500),
        }

    def _free_subnet(self, exclude_device: str = "") -> ipaddress.IPv4Network:
        with RtNetlink() as nl:
            skip = nl.link_index(exclude_device) if exclude_device else None
            taken = [r.destination for r in nl.routes() if not (skip and r.oif == skip)]
        taken += [ipaddress.IPv4Network(n.subnet) for n in self.networks.values() if n.subnet]
        return choose_subnet(self.pools, taken)

    def _ensure_bridge(self, net: Network) -> None:
        with RtNetlink() as nl:
            index = nl.link_index(net.device)
            if index is None:
                index = nl.add_bridge(net.device, self.mtu)
            else:
                keep_bridge_address(nl, net.device, index)
                nl.set_up(index)
            subnet = ipaddress.IPv4Network(net.subnet)
            nl.add_address(index, ipaddress.IPv4Interface(f"{net.gateway}/{subnet.prefixlen}"))
            if net.enable_ipv6 and net.pool6:
                ipv6.bridge_address(nl, index, net.device, net.pool6)
        # connections DNAT-ed from the host's 127.0.0.1 leave through the bridge with a loopback source; the
        # table's `loopback` chain drops what containers send to (or from) 127.0.0.0/8 meanwhile. Without the
        # table (`iptables: false`, no published ports) the kernel's martian check stays as it is by default
        _sysctl(f"net/ipv4/conf/{net.device}/route_localnet", "1" if self.firewall_rules else "0")

    def _save(self, net: Network) -> None:
        self.networks[net.id] = net
        _write_json(self._networks_dir / f"{net.id}.json", asdict(net))

    # --- networks ----------------------------------------------------------------------------------

    def get(self, ref: str) -> Network:
        """By full ID, name, or ID prefix, as dockerd resolves a network."""
        with self._lock:
            if ref in self.networks:
                return self.networks[ref]
            by_name = [n for n in self.networks.values() if n.name == ref]
            matches = [n for n in self.networks.values() if ref and n.id.startswith(ref)]
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:  # names are unique unless made without CheckDuplicate
            found = f"{len(by_name)} matches found based on name"
            raise NetworkError(f"network {ref} is ambiguous ({found})", 400)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NetworkError(
                f"network {ref} is ambiguous ({len(matches)} matches found based on ID prefix)", 400
            )
        raise NetworkError(f"network {ref} not found", 404)

    def create(self, body: dict[str, Any]) -> tuple[str, str]:
        """(its ID, dockerd's warning); the request checked as dockerd does (create_checks)."""
        from . import create_checks as checks  # it raises this module's NetworkError

        checks.check_request(body)
        name = body.get("Name") or ""
        checks.check_name(name)
        with self._lock:
            existing = [(n.name, n.id) for n in self.networks.values()]
        warning = checks.duplicate_warning(existing, name, bool(body.get("CheckDuplicate")))
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise NetworkError(f'only one instance of "{driver}" network is allowed', 403)
        if driver != "bridge":
            raise NetworkError(f'plugin "{driver}" not found', 404)
        options = {k: v or "" for k, v in (body.get("Options") or {}).items()}
        ipam = body.get("IPAM") or {}
        if (ipam.get("Driver") or "default") != "default":
            raise NetworkError(f'plugin "{ipam.get("Driver")}" not found', 404)
        try:
            configs, pool6 = ipv6.network_pool(self, body, ipam.get("Config") or [])
        except ipv6.Ipv6Error as e:
            raise NetworkError(str(e), e.status) from None
        with self._lock:
            subnet, gateway, ip_range, user_ipam = self._network_addresses(configs[0] if configs else {})
            aux = checks.aux_addresses(configs[0] if configs else {}, subnet, gateway, name)
            checks.check_bridge_options(options)
            net_id = secrets.token_hex(32)
            device = options.get("com.docker.network.bridge.name") or f"br-{net_id[:12]}"
            if len(device) > 15:
                raise NetworkError(f"bridge name {device} is too long (15 characters at most)", 400)
            net = Network(
                id=net_id,
                name=name,
                driver="bridge",
                created=_now(),
                subnet=str(subnet),
                gateway=gateway,
                ip_range=ip_range,
                device=device,
                internal=bool(body.get("Internal")),
                attachable=bool(body.get("Attachable")),
                labels=dict(body.get("Labels") or {}),
                options=options,
                ipam_options=None if ipam.get("Options") is None else dict(ipam["Options"]),
                aux_addresses=aux,
                user_ipam=user_ipam,
                show_gateway=not user_ipam or bool(configs[0].get("Gateway")),
                enable_ipv6=bool(body.get("EnableIPv6")),
                pool6=pool6,
            )
            try:
                self._ensure_bridge(net)
            except OSError as e:
                with RtNetlink() as nl:
                    nl.delete_link(device)
                raise NetworkError(f"failed to create the bridge {device}: {e.strerror or e}") from None
            self._save(net)
            self._apply_firewall()
        return net.id, warning

    def _network_addresses(self, config: dict[str, Any]) -> tuple[ipaddress.IPv4Network, str, str, bool]:
        text = config.get("Subnet") or ""
        if not text:
            subnet = self._free_subnet()
            return subnet, str(subnet[1]), "", False
        try:
            subnet = ipaddress.IPv4Network(text, strict=False)
        except ValueError:
            raise NetworkError(f"Invalid subnet {text} : invalid CIDR address: {text}", 500) from None
        if str(subnet) != text:
            raise NetworkError(f"invalid subnet {text} : it should be {subnet}", 400)
        for net in self.networks.values():
            if net.subnet and subnet.overlaps(ipaddress.IPv4Network(net.subnet)):
                raise NetworkError("Pool overlaps with other one on this address space", 403)
        gateway = config.get("Gateway") or str(subnet[1])
        try:
            address = ipaddress.IPv4Address(gateway)
        except ValueError:
            raise NetworkError(f"invalid gateway address {gateway} in Ipam configuration", 500) from None
        # dockerd's words (and its 500s) for a gateway its IPAM cannot hand out
        if address not in subnet:
            raise NetworkError(
                f"failed to allocate gateway ({gateway}): Requested address is out of range", 500
            )
        if address in (subnet.network_address, subnet.broadcast_address):
            raise NetworkError(f"failed to allocate gateway ({gateway}): Address already in use", 500)
        ip_range = config.get("IPRange") or ""
        if ip_range:
            try:
                if not ipaddress.IPv4Network(ip_range, strict=False).subnet_of(subnet):
                    raise ValueError
            except ValueError:
                raise NetworkError(f"Invalid ip range {ip_range}: not in subnet {subnet}", 400) from None
        return subnet, gateway, ip_range, True

    def remove(self, ref: str) -> None:
        net = self.get(ref)
        if net.predefined:
            raise NetworkError(f"{net.name} is a pre-defined network and cannot be removed", 403)
        with self._lock:
            if self._endpoints_on(net.id):
                raise NetworkError(
                    f"error while removing network: network {net.name} id {net.id} has active endpoints", 403
                )
            with RtNetlink() as nl:
                nl.delete_link(net.device)
            self.networks.pop(net.id, None)
            with contextlib.suppress(FileNotFoundError):
                (self._networks_dir / f"{net.id}.json").unlink()
            self._apply_firewall()

    def prune(self, keep: set[str] | None = None) -> list[tuple[str, str]]:
        """Remove every user network without endpoints and not in `keep`; returns their (id, name)."""
        removed = []
        for net in list(self.networks.values()):
            if net.predefined or (keep and net.id in keep) or self._endpoints_on(net.id):
                continue
            with contextlib.suppress(NetworkError):
                self.remove(net.id)
                removed.append((net.id, net.name))
        return removed

    def _endpoints_on(self, network_id: str) -> list[tuple[Sandbox, Endpoint]]:
        return [
            (box, ep)
            for box in self.sandboxes.values()
            for ep in box.endpoints
            if ep.network_id == network_id
        ]

    def inspect(self, net: Network, names: dict[str, str] | None = None) -> dict[str, Any]:
        containers = {}
        for box, ep in self._endpoints_on(net.id):
            containers[box.container_id] = {
                "Name": box.container_name,
                "EndpointID": ep.endpoint_id,
                "MacAddress": ep.mac,
                "IPv4Address": f"{ep.address}/{ep.prefix}",
                "IPv6Address": f"{ep.address6}/{ep.prefix6}" if ep.address6 else "",
            }
        ipam_config = []
        if net.subnet:
            entry = {"Subnet": net.subnet}  # in dockerd's order
            if net.ip_range:
                entry["IPRange"] = net.ip_range
            if net.show_gateway:
                entry["Gateway"] = net.gateway
            if net.aux_addresses:
                entry["AuxiliaryAddresses"] = dict(net.aux_addresses)
            ipam_config.append(entry)
        if net.pool6:
            ipam_config.append(ipv6.ipam_entry(net.pool6))
        return {
            "Name": net.name,
            "Id": net.id,
            "Created": net.created,
            "Scope": "local",
            "Driver": net.driver,
            "EnableIPv6": net.enable_ipv6,
            # dockerd: null for the predefined networks, {} (or what was given) for the user's
            "IPAM": {
                "Driver": "default",
                "Options": None if net.predefined else net.ipam_options,
                "Config": ipam_config,
            },
            "Internal": net.internal,
            "Attachable": net.attachable,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": containers,
            "Options": net.options,
            "Labels": net.labels,
        }

    def list(self) -> list[Network]:
        with self._lock:
            return list(self.networks.values())

    # --- sandboxes ---------------------------------------------------------------------------------

    def sandbox(self, container_id: str) -> Sandbox | None:
        return self.sandboxes.get(container_id)

    def allocated_ports(self) -> set[tuple[str, str, int]]:
        return {(m.proto, m.host_ip, m.host_port) for box in self.sandboxes.values() for m in box.ports}

    def attach(self, request: Attachment) -> Sandbox:
        """Make the container's sandbox: namespace, veths, addresses, routes, host ports, DNAT rules."""
        cid = request.container_id
        with self._lock:
            if cid in self.sandboxes:  # left by a start that did not finish: start afresh
                self.release(cid)
            box = Sandbox(
                container_id=cid,
                container_name=request.container_name,
                netns=str(self._netns_dir / cid[:12]),
                hostname=request.hostname,
                dns=request.dns,
            )
            used = {ep.address for b in self.sandboxes.values() for ep in b.endpoints}
            for index, (network_id, settings) in enumerate(request.networks):
                net = self.networks.get(network_id)
                if net is None:
                    raise NetworkError(f"network {network_id} not found", 404)
                box.endpoints.append(self._new_endpoint(net, index, settings, used))
                used.add(box.endpoints[-1].address)
            if request.ports and not self.firewall_rules:
                raise NetworkError("published ports need the daemon's nftables rules (iptables: false)", 400)
            holder = PortHolder()
            try:
                box.ports = reserve(request.ports, self.allocated_ports(), holder, self._dynamic_ports)
            except PortError as e:
                holder.close()
                ep_id = box.endpoints[0].endpoint_id if box.endpoints else ""
                raise NetworkError(
                    f"driver failed programming external connectivity on endpoint {request.container_name} "
                    f"({ep_id}): {e}",
                    e.status,
                ) from None
            self.sandboxes[cid] = box
            self._holders[cid] = holder
            self._save_sandbox(box)
            ipv6.start_proxies(holder, box)
        try:
            self._plumb(box)
            with self._lock:
                self._apply_firewall()
        except BaseException:
            self.release(cid)
            raise
        return box

    def _new_endpoint(self, net: Network, index: int, settings: dict[str, Any], used: set[str]) -> Endpoint:
        if net.driver != "bridge":
            raise NetworkError(f"container cannot be connected to network {net.name}", 400)
        ipam_config = settings.get("IPAMConfig") or None
        wanted = (ipam_config or {}).get("IPv4Address") or ""
        if wanted and not net.user_ipam:
            raise NetworkError(
                "user specified IP address is supported only when connecting to networks with "
                "user configured subnets",
                400,
            )
        subnet = ipaddress.IPv4Network(net.subnet)
        try:
            address = allocate(
                subnet,
                used | set(net.aux_addresses.values()),
                net.gateway,
                ipaddress.IPv4Network(net.ip_range, strict=False) if net.ip_range else None,
                wanted,
            )
        except IpamError as e:
            raise NetworkError(str(e), e.status) from None
        mac = settings.get("MacAddress") or mac_for(address)
        address6 = ipv6.endpoint_address(self, net, ipam_config, mac)
        return Endpoint(
            address6=address6,
            prefix6=ipaddress.IPv6Network(net.pool6["subnet"]).prefixlen if address6 else 0,
            gateway6=net.pool6["gateway"] if address6 else "",
            network_id=net.id,
            endpoint_id=secrets.token_hex(32),
            address=address,
            prefix=subnet.prefixlen,
            gateway=net.gateway,
            mac=mac,
            interface=f"eth{index}",
            host_veth="veth" + secrets.token_hex(4)[:7],
            aliases=list(settings.get("Aliases") or []),
            ipam_config=ipam_config,
            links=dict(settings.get("_links") or {}),
        )

    def _plumb(self, box: Sandbox) -> None:
        inner: RtNetlink = create_netns(box.netns, RtNetlink)
        try:
            self._add_endpoints(box, box.endpoints, inner, default_route=True)
        finally:
            inner.close()
        if box.dns:
            self.dns.attach(box.container_id, box.netns, box.dns)

    def _add_endpoints(
        self, box: Sandbox, endpoints: list[Endpoint], inner: RtNetlink, default_route: bool
    ) -> None:
        ns_fd = os.open(box.netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with RtNetlink() as host:
                for i, ep in enumerate(endpoints):
                    net = self.networks[ep.network_id]
                    bridge = host.link_index(net.device)
                    if bridge is None:
                        self._ensure_bridge(net)
                        bridge = host.link_index(net.device)
                    host.add_veth(ep.host_veth, bridge or 0, ep.interface, ns_fd, ep.mac, self.mtu)
                    index = inner.link_index(ep.interface)
                    if index is None:
                        raise NetworkError(f"{ep.interface} did not arrive in the container's namespace")
                    inner.add_address(index, ipaddress.IPv4Interface(f"{ep.address}/{ep.prefix}"))
                    for local in (ep.ipam_config or {}).get("LinkLocalIPs") or []:  # libnetwork's /16
                        if ipaddress.ip_address(local).version == 4:
                            inner.add_address(index, ipaddress.IPv4Interface(f"{local}/16"))
                    if ep.address6:
                        inner.add_address6(index, ipaddress.IPv6Interface(f"{ep.address6}/{ep.prefix6}"))
                    inner.set_up(index)
                    if default_route and i == 0 and not net.internal:
                        inner.add_default_route(ep.gateway)
                    if default_route and i == 0 and not net.internal and ep.address6:
                        inner.add_default_route6(ep.gateway6)
        finally:
            os.close(ns_fd)

    def release(self, container_id: str) -> None:
        """Undo a sandbox: host ports, veths, namespace, rules, record. Safe to call more than once."""
        with self._lock:
            box = self.sandboxes.pop(container_id, None)
            self.dns.detach(container_id)  # its sockets hold the namespace
            holder = self._holders.pop(container_id, None)
            if holder:
                holder.close()
            if box is None:
                return
            # the namespace goes, and its veths with it, when the kernel frees it (its processes are gone):
            # deleting a veth ourselves waits for an RCU grace period (~30 ms), on every container's exit
            try:
                remove_netns(box.netns)
            except OSError as e:
                log.warning("container %s: remove namespace %s: %s", container_id[:12], box.netns, e)
                with RtNetlink() as nl:
                    for ep in box.endpoints:
                        try:
                            nl.delete_link(ep.host_veth)
                        except NetlinkError as e:
                            log.warning("container %s: delete %s: %s", container_id[:12], ep.host_veth, e)
            if box.ports:
                self._apply_firewall()
            with contextlib.suppress(FileNotFoundError):
                (self._sandboxes_dir / f"{container_id}.json").unlink()

    def connect(self, container_id: str, network_id: str, settings: dict[str, Any]) -> Endpoint | None:
        """Join a running container's sandbox to one more network (a new ethN); None when not running."""
        with self._lock:
            box = self.sandboxes.get(container_id)
            if box is None:
                return None
            net = self.networks[network_id]
            if any(ep.network_id == network_id for ep in box.endpoints):
                raise NetworkError(
                    f"endpoint with name {box.container_name} already exists in network {net.name}", 403
                )
            used = {ep.address for b in self.sandboxes.values() for ep in b.endpoints}
            taken = {ep.interface for ep in box.endpoints}
            index = next(i for i in range(len(taken) + 1) if f"eth{i}" not in taken)
            ep = self._new_endpoint(net, index, settings, used)
            inner: RtNetlink = enter_netns(box.netns, RtNetlink)
            try:
                self._add_endpoints(box, [ep], inner, default_route=False)
            except BaseException:
                with RtNetlink() as nl:
                    nl.delete_link(ep.host_veth)
                raise
            finally:
                inner.close()
            box.endpoints.append(ep)
            self._save_sandbox(box)
            return ep

    def disconnect(self, container_id: str, network_id: str) -> bool:
        with self._lock:
            box = self.sandboxes.get(container_id)
            if box is None:
                return False
            kept = [ep for ep in box.endpoints if ep.network_id != network_id]
            gone = [ep for ep in box.endpoints if ep.network_id == network_id]
            with RtNetlink() as nl:
                for ep in gone:
                    nl.delete_link(ep.host_veth)
            box.endpoints = kept
            self._save_sandbox(box)
            return bool(gone)

    def _save_sandbox(self, box: Sandbox) -> None:
        _write_json(self._sandboxes_dir / f"{box.container_id}.json", box.to_json())

    # --- rules -------------------------------------------------------------------------------------

    def _apply_firewall(self) -> None:
        bridges = [
            firewall.BridgeRules(n.device, n.subnet, n.internal)
            for n in self.networks.values()
            if n.driver == "bridge"
        ]
        forwards = []
        for box in self.sandboxes.values():
            if box.ports and box.endpoints:
                v4 = [m for m in box.ports if ":" not in m.host_ip]
                forwards += [firewall.Forward(m, box.endpoints[0].address) for m in v4]
        if self._nft is None:
            return
        text = firewall.render(self.table, bridges, forwards)
        six = ipv6.firewall_text(self)  # the `table ip6` twin, while a network has IPv6
        try:
            self._nft.run(text + six)
        except NftablesError as e:
            raise NetworkError(f"failed to program the firewall: {e}") from None
        if self._accepts is not None:
            self._accepts.ensure([b.device for b in bridges])


def _sysctl(key: str, value: str) -> None:
    path = f"/proc/sys/{key}"
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
        with open(path, "w") as f:
            f.write(value)
    except OSError as e:
        log.warning("sysctl %s=%s: %s", key.replace("/", "."), value, e)


def remove_host_networking(data_root: Path | str, bridge: str = "") -> None:
    """Delete what a stopped daemon left on the host for its containers: its bridges (the default one and
    its user networks') and its nftables table. For test runs, benchmarks and demos that start a daemon of
    their own; a user's daemon keeps them, as dockerd keeps docker0."""
    bridge = bridge or DEFAULT_BRIDGE
    devices = {bridge}
    for record in (Path(data_root) / "network" / "networks").glob("*.json"):
        with contextlib.suppress(OSError, ValueError):
            devices.add(json.loads(record.read_text()).get("device") or bridge)
    with RtNetlink() as nl:
        for device in devices:
            nl.delete_link(device)
    with contextlib.suppress(NftablesError):
        nft = Nftables()
        nft.run(firewall.remove(firewall.table_name(bridge)))
        nft.run(firewall6.remove(firewall.table_name(bridge)))
        ForwardAccepts(bridge, nft).remove()
