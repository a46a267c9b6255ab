"""network create, ls, inspect, rm, connect, disconnect, prune and port, as the docker CLI prints them; and
the networking flags of `run`/`create` (-p, --expose, --network, --add-host, --dns...) parsed with the
docker CLI's rules (go-connections' nat.ParsePortSpec, opts.ValidateExtraHost...) and error wording.

The parsers raise ValueError with the docker CLI's message; run_options turns them into usage errors.
"""

from __future__ import annotations

import json
import re
import sys

from ..client import ApiClient, ApiError
from ..parser import CommandParser, confirm, parse_filters
from . import CommandSpec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# --- -p / --expose ---------------------------------------------------------------------------------------

PROTOCOLS = ("tcp", "udp", "sctp")


def _port_number(text: str) -> int:
    """strconv.ParseUint(text, 10, 16), with Go's error text."""
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 65535:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def parse_port_range(text: str) -> tuple[int, int]:
    """nat.ParsePortRange: `80` or `80-82` (anything after a second `-` is ignored, as there)."""
    if not text:
        raise ValueError("empty string specified for ports")
    if "-" not in text:
        port = _port_number(text)
        return port, port
    parts = text.split("-")
    start, end = _port_number(parts[0]), _port_number(parts[1])
    if end < start:
        raise ValueError(f"invalid range specified for port: {text}")
    return start, end


def split_proto_port(text: str) -> tuple[str, str]:
    """nat.SplitProtoPort: `80/udp` -> ("udp", "80"); no or an empty protocol means tcp."""
    parts = text.split("/")
    if not text or not parts[0]:
        return "", ""
    if len(parts) == 1 or not parts[1]:
        return "tcp", parts[0]
    return parts[1], parts[0]


def _is_ip(text: str) -> bool:
    """Go's net.ParseIP: dotted IPv4 (no leading zeros) or IPv6 without a zone (inet_pton agrees on both)."""
    import socket

    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
            return True
        except OSError:
            continue
    return False


def _unbracket(ip: str) -> str:
    """net.SplitHostPort(ip + ":") for an address given as `[v6]`, with Go's errors."""
    hostport = ip + ":"
    end = hostport.find("]")
    why = ""
    if end < 0:
        why = "missing ']' in address"
    elif end + 1 != len(hostport) - 1:
        why = "too many colons in address" if hostport[end + 1] == ":" else "missing port in address"
    elif "[" in hostport[1:]:
        why = "unexpected '[' in address"
    elif "]" in hostport[end + 1 :]:
        why = "unexpected ']' in address"
    if why:
        raise ValueError(f"invalid IP address {ip}: address {hostport}: {why}")
    return hostport[1:end]


def parse_port_spec(raw: str) -> list[tuple[str, dict[str, str]]]:
    """nat.ParsePortSpec: `[ip:][hostPort|range:]containerPort|range[/proto]` as (port key, binding) pairs."""
    parts = raw.split(":")
    if len(parts) == 1:
        ip, host, container = "", "", parts[0]
    elif len(parts) == 2:
        ip, host, container = "", parts[0], parts[1]
    else:  # an IPv6 address keeps its colons: everything before the last two parts
        ip, host, container = ":".join(parts[:-2]), parts[-2], parts[-1]
    proto, container = split_proto_port(container)
    if ip.startswith("["):
        ip = _unbracket(ip)
    if ip and not _is_ip(ip):
        raise ValueError(f"invalid IP address: {ip}")
    if not container:
        raise ValueError(f"no port specified: {raw}<empty>")
    try:
        start, end = parse_port_range(container)
    except ValueError:
        raise ValueError(f"invalid containerPort: {container}") from None
    host_start = host_end = 0
    if host:
        try:
            host_start, host_end = parse_port_range(host)
        except ValueError:
            raise ValueError(f"invalid hostPort: {host}") from None
        # a host range for one container port is the range to pick a free port from
        if end - start != host_end - host_start and end != start:
            raise ValueError(f"invalid ranges specified for container and host Ports: {container} and {host}")
    proto = proto.lower()
    if proto not in PROTOCOLS:
        raise ValueError(f"invalid proto: {proto}")
    mappings = []
    for i in range(end - start + 1):
        host_port = str(host_start + i) if host else ""
        if start == end and host_start != host_end:
            host_port = f"{host_port}-{host_end}"
        mappings.append((f"{start + i}/{proto}", {"HostIp": ip, "HostPort": host_port}))
    return mappings


def _standard_notation(value: str) -> str:
    """The docker CLI's long syntax `target=80,published=8080,protocol=udp` as `8080:80/udp`."""
    if "=" not in value:
        return value
    params = {"protocol": "tcp"}
    for param in value.split(","):
        key, eq, val = param.partition("=")
        if not eq or not key:
            raise ValueError(f"invalid publish opts format (should be name=value but got '{param}')")
        params[key] = val
    return f"{params.get('published', '')}:{params.get('target', '')}/{params['protocol']}"


def parse_publish(values: list[str]) -> tuple[dict[str, dict], dict[str, list[dict[str, str]]]]:
    """-p flags as the create body's ExposedPorts and HostConfig.PortBindings (nat.ParsePortSpecs)."""
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in [_standard_notation(v) for v in values]:
        for port, binding in parse_port_spec(spec):
            exposed.setdefault(port, {})
            bindings.setdefault(port, []).append(binding)
    return exposed, bindings


def parse_expose(values: list[str], exposed: dict[str, dict]) -> None:
    """--expose `80`, `80-82/udp` added to ExposedPorts (the protocol is not checked here, as in the CLI)."""
    for value in values:
        if ":" in value:
            raise ValueError(f"invalid port format for --expose: {value}")
        proto, port = split_proto_port(value)
        try:
            start, end = parse_port_range(port)
        except ValueError as e:
            raise ValueError(f"invalid range format for --expose: {value}, error: {e}") from None
        for number in range(start, end + 1):
            exposed.setdefault(f"{number}/{proto}", {})


# --- --add-host, --dns, --dns-search -------------------------------------------------------------------


def canonical_ip(value: str) -> str:
    """opts.ValidateIPAddress: the address in Go's canonical form (`::ffff:1.2.3.4` is `1.2.3.4`)."""
    import ipaddress

    text = value.strip()
    if not _is_ip(text):
        raise ValueError(f"IP address is not correctly formatted: {value}")
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def validate_extra_host(value: str) -> str:
    """opts.ValidateExtraHost: `name:ip` or `name=ip` (`[v6]` allowed, `host-gateway` kept as is), sent as
    `name:ip`."""
    name, sep, address = value.partition("=")
    if not sep:
        name, sep, address = value.partition(":")
    if not sep or not name or ":" in name:
        raise ValueError(f'bad format for add-host: "{value}"')
    if address != "host-gateway":
        if len(address) > 2 and address[0] == "[" and address[-1] == "]":
            address = address[1:-1]
        if not _is_ip(address.strip()):
            raise ValueError(f'invalid IP address in add-host: "{address}"')
    return f"{name}:{address}"


# patterns kept as text and compiled (and cached by re) on first use: compiled at import they cost the
# CLI's start-up ~6 ms
_DOMAIN = (
    r"^(:?(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9]))"
    r"(:?\.(:?[a-zA-Z0-9]|(:?[a-zA-Z0-9][a-zA-Z0-9\-]*[a-zA-Z0-9])))*)\.?\s*$"
)


def validate_dns_search(value: str) -> str:
    """opts.ValidateDNSSearch: a domain (a trailing dot dropped) or `.`."""
    value = value.strip(" ")
    if value == ".":
        return value
    match = re.match(_DOMAIN, value) if re.search("[a-zA-Z]", value) else None
    if match is None or len(match.group(1)) >= 255:
        raise ValueError(f"{value} is not a valid domain")
    return match.group(1)


_MAC = r"^[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$"


def validate_mac(value: str) -> str:
    """net.ParseMAC for the EUI-48 forms (`02:42:ac:11:00:02`, `02-42-...`, `0242.ac11.0002`)."""
    if not re.match(_MAC, value.strip()):
        raise ValueError(f"{value} is not a valid mac address")
    return value


# --- --network, --network-alias, --ip ---------------------------------------------------------------------

_LONG_SYNTAX = r"(?a)\w+=\w+"


def parse_network_opt(value: str) -> dict[str, Any]:
    """opts.NetworkOpt: a name, or `name=NET,alias=A,ip=...,ip6=...,mac-address=...,driver-opt=k=v,...`.

    As the docker CLI, every field of the long syntax is lower-cased."""
    option: dict[str, Any] = {
        "Target": value,
        "Aliases": [],
        "DriverOpts": {},
        "Links": [],
        "LinkLocalIPs": [],
    }
    if not re.search(_LONG_SYNTAX, value):
        return option
    import csv

    option["Target"] = ""
    for field in next(csv.reader([value])):
        key, eq, val = field.lower().partition("=")
        if not eq or not key:
            raise ValueError(f"invalid field {field}")
        key, val = key.strip(), val.strip()
        if key == "name":
            option["Target"] = val
        elif key == "alias":
            option["Aliases"].append(val)
        elif key == "ip":
            option["IPv4Address"] = val
        elif key == "ip6":
            option["IPv6Address"] = val
        elif key == "mac-address":
            option["MacAddress"] = val
        elif key == "link-local-ip":
            option["LinkLocalIPs"].append(val)
        elif key == "driver-opt":
            opt_key, opt_eq, opt_val = val.partition("=")
            if not opt_eq or not opt_key:
                raise ValueError("invalid key value pair format in driver options")
            option["DriverOpts"][opt_key] = opt_val
        else:
            raise ValueError(f"invalid field key {key}")
    if not option["Target"]:
        raise ValueError("network name/id is not specified")
    return option


def is_user_defined(mode: str) -> bool:
    """container.NetworkMode.IsUserDefined: not default, bridge, host, none nor container:<id>."""
    return mode not in ("default", "bridge", "host", "none") and not mode.startswith("container:")


def _endpoint(option: dict[str, Any]) -> dict[str, Any]:
    """parseNetworkAttachmentOpt: the EndpointSettings the create body carries (empty fields left out)."""
    target = option["Target"]
    if not target.strip():
        raise ValueError("no name set for network")
    if not is_user_defined(target):
        if option["Aliases"]:
            raise ValueError("network-scoped aliases are only supported for user-defined networks")
        if option["Links"]:
            raise ValueError("links are only supported for user-defined networks")
    endpoint: dict[str, Any] = {}
    if option["Aliases"]:
        endpoint["Aliases"] = list(option["Aliases"])
    if option["DriverOpts"]:
        endpoint["DriverOpts"] = dict(option["DriverOpts"])
    if option["Links"]:
        endpoint["Links"] = list(option["Links"])
    ipam = {key: option[key] for key in ("IPv4Address", "IPv6Address") if option.get(key)}
    if option["LinkLocalIPs"]:
        ipam["LinkLocalIPs"] = list(option["LinkLocalIPs"])
    if ipam:
        endpoint["IPAMConfig"] = ipam
    if option.get("MacAddress"):
        endpoint["MacAddress"] = validate_mac(option["MacAddress"])
    return endpoint


def network_endpoints(
    networks: list[dict[str, Any]],
    aliases: list[str],
    links: list[str],
    ipv4: str | None,
    ipv6: str | None,
    link_local: list[str],
) -> dict[str, dict[str, Any]]:
    """parseNetworkOpts: NetworkingConfig.EndpointsConfig. The flags `--network-alias`, `--ip`, `--ip6`,
    `--link` apply to the first network (or to "default" when none is named); a lone network with no
    settings is left out, as the docker CLI does (the daemon makes its endpoint anyway)."""
    options = networks or [parse_network_opt("default")]
    endpoints: dict[str, dict[str, Any]] = {}
    user_defined = other = False
    for i, option in enumerate(options):
        if is_user_defined(option["Target"]):
            user_defined = True
        else:
            other = True
        if i == 0:
            if option["Aliases"] and aliases:
                raise ValueError(
                    "conflicting options: cannot specify both --network-alias and per-network alias"
                )
            if option["Links"] and links:
                raise ValueError("conflicting options: cannot specify both --link and per-network links")
            if option.get("IPv4Address") and ipv4:
                raise ValueError("conflicting options: cannot specify both --ip and per-network IPv4 address")
            if option.get("IPv6Address") and ipv6:
                raise ValueError(
                    "conflicting options: cannot specify both --ip6 and per-network IPv6 address"
                )
            if option["LinkLocalIPs"] and link_local:
                raise ValueError(
                    "conflicting options: cannot specify both --link-local-ip and per-network link-local IP "
                    "addresses"
                )
            option = dict(option)
            if aliases:
                option["Aliases"] = list(aliases)
            if links and is_user_defined(option["Target"]):  # on the default bridge a link is a legacy link
                option["Links"] = list(links)
            if ipv4:
                option["IPv4Address"] = ipv4
            if ipv6:
                option["IPv6Address"] = ipv6
            if link_local:
                option["LinkLocalIPs"] = list(link_local)
        endpoint = _endpoint(option)
        if option["Target"] in endpoints:
            raise ValueError(f'network "{option["Target"]}" is specified multiple times')
        if (not networks or len(options) == 1) and not endpoint:
            continue
        endpoints[option["Target"]] = endpoint
    if user_defined and other:
        raise ValueError(
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
        )
    return endpoints


# --- ps's PORTS and `port` ------------------------------------------------------------------------------


def _join_host_port(host: str, port: Any) -> str:
    """net.JoinHostPort: an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def display_ports(ports: list[dict[str, Any]]) -> str:
    """The docker CLI's DisplayablePorts: exposed ports, and ports published on the same number, grouped
    into consecutive ranges per address and protocol; other mappings listed one by one at the end."""
    ordered = sorted(
        ports,
        key=lambda p: (
            p.get("PrivatePort", 0),
            p.get("IP") or "",
            p.get("PublicPort") or 0,
            p.get("Type", ""),
        ),
    )
    groups: dict[tuple[str, str], list[int]] = {}  # (ip, proto) -> [first, last], in the order first seen
    result: list[str] = []
    mappings: list[str] = []

    def group_text(ip: str, proto: str, first: int, last: int) -> str:
        text = str(first) if first == last else f"{first}-{last}"
        if ip:
            text = f"{_join_host_port(ip, text)}->{text}"
        return f"{text}/{proto}"

    for port in ordered:
        private, ip, proto = port.get("PrivatePort", 0), port.get("IP") or "", port.get("Type", "")
        if ip and (port.get("PublicPort") or 0) != private:
            mappings.append(f"{_join_host_port(ip, port.get('PublicPort') or 0)}->{private}/{proto}")
            continue
        key = (ip, proto)
        group = groups.get(key)
        if group is None:
            groups[key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(group_text(ip, proto, *group))
            groups[key] = [private, private]
    result += [group_text(ip, proto, *group) for (ip, proto), group in groups.items()]
    return ", ".join(result + mappings)


def natural_key(text: str) -> list[tuple[int, Any, int]]:
    """A sort key in the order of sortorder.NaturalLess (digits before other characters, numbers by value,
    fewer leading zeros first), as the docker CLI sorts `port` lines and network names."""
    key: list[tuple[int, Any, int]] = []
    for number, other in re.findall(r"(\d+)|(\D)", text):
        if number:
            digits = number.lstrip("0")
            key.append((0, (len(digits), digits), len(number) - len(digits)))
        else:
            key.append((1, other.encode(), 0))
    return key


def port_lines(ports: dict[str, Any], wanted: str | None, container: str) -> list[str]:
    """What `docker port CONTAINER [PORT[/PROTO]]` prints from inspect's NetworkSettings.Ports."""
    if wanted is not None:
        number, _, proto = wanted.partition("/")
        try:
            _port_number(number)
        except ValueError as e:
            raise ValueError(f"Error: invalid port ({number}): {e}") from None
        frontends = ports.get(f"{number}/{proto or 'tcp'}") or []
        if not frontends:
            raise ValueError(f"Error: No public port '{wanted}' published for {container}")
        lines = [_join_host_port(f.get("HostIp", ""), f.get("HostPort", "")) for f in frontends]
    else:
        lines = [
            f"{port} -> {_join_host_port(f.get('HostIp', ''), f.get('HostPort', ''))}"
            for port, frontends in ports.items()
            for f in frontends or []
        ]
    return sorted(lines, key=natural_key)


# --- network create -------------------------------------------------------------------------------------


def _pairs(items: list[str]) -> dict[str, str]:
    """opts.ConvertKVStringsToMap: `key=value`, a bare key meaning an empty value."""
    return dict((item.split("=", 1) + [""])[:2] for item in items)


def _subnet_contains(subnet: str, data: str) -> bool:
    """The docker CLI's subnetMatches: is `data` (an address, or the address of a CIDR) inside `subnet`?"""
    import ipaddress

    try:
        network = ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        raise ValueError(f"invalid subnet: invalid CIDR address: {subnet}") from None
    try:
        address = ipaddress.ip_interface(data).ip if "/" in data else ipaddress.ip_address(data)
    except ValueError:
        if "/" in data:
            raise ValueError(f"invalid CIDR address: {data}") from None
        return False
    return address.version == network.version and address in network


def ipam_config(
    subnets: list[str], ranges: list[str], gateways: list[str], aux: dict[str, str]
) -> list[dict[str, Any]]:
    """consolidateIpam: pair each --ip-range, --gateway and --aux-address with the --subnet it falls in."""
    if len(subnets) < len(ranges) or len(subnets) < len(gateways):
        raise ValueError("every ip-range or gateway must have a corresponding subnet")
    configs: dict[str, dict[str, Any]] = {}
    for subnet in subnets:
        for other in configs:
            if _subnet_contains(subnet, other) or _subnet_contains(other, subnet):
                raise ValueError("multiple overlapping subnet configuration is not supported")
        configs[subnet] = {"Subnet": subnet}

    def place(value: str, field: str, what: str, plural: str, preposition: str) -> None:
        matched = False
        for subnet in subnets:
            if not _subnet_contains(subnet, value):
                continue
            if configs[subnet].get(field):
                raise ValueError(
                    f"cannot configure multiple {plural} ({value}, {configs[subnet][field]}) "
                    f"{preposition} the same subnet ({subnet})"
                )
            configs[subnet][field] = value
            matched = True
        if not matched:
            raise ValueError(f"no matching subnet for {what} {value}")

    for value in ranges:
        place(value, "IPRange", "range", "ranges", "on")
    for value in gateways:
        place(value, "Gateway", "gateway", "gateways", "for")
    for name, address in aux.items():
        matched = False
        for subnet in subnets:
            if _subnet_contains(subnet, address):
                configs[subnet].setdefault("AuxiliaryAddresses", {})[name] = address
                matched = True
        if not matched:
            raise ValueError(f"no matching subnet for aux-address {address}")
    return list(configs.values())


def create_body(args: Any) -> dict[str, Any]:
    """POST /networks/create's body, as the docker CLI builds it."""
    body: dict[str, Any] = {
        "Driver": args.driver,
        "Scope": args.scope or "",
        "IPAM": {
            "Driver": args.ipam_driver,
            "Options": _pairs(args.ipam_opt),
            "Config": ipam_config(args.subnet, args.ip_range, args.gateway, _pairs(args.aux_address)),
        },
        "Internal": args.internal,
        "Attachable": args.attachable,
        "Ingress": args.ingress,
        "ConfigOnly": args.config_only,
        "ConfigFrom": {"Network": args.config_from} if args.config_from else None,
        "Options": _pairs(args.opt),
        "Labels": _pairs(args.label),
        "Name": args.network,
        "CheckDuplicate": True,
    }
    if args.ipv6:
        body["EnableIPv6"] = True
    return body


def connect_body(args: Any) -> dict[str, Any]:
    """POST /networks/{id}/connect's body, as the docker CLI builds it."""
    driver_opts: dict[str, str] = {}
    for opt in args.driver_opt:
        key, eq, value = opt.partition("=")
        if not eq or not key.strip():
            raise ValueError("invalid key/value pair format in driver options")
        driver_opts[key.strip()] = value.strip()
    ipam: dict[str, Any] = {}
    if args.ip:
        ipam["IPv4Address"] = args.ip
    if args.ip6:
        ipam["IPv6Address"] = args.ip6
    if args.link_local_ip:
        ipam["LinkLocalIPs"] = list(args.link_local_ip)
    return {
        "Container": args.container,
        "EndpointConfig": {
            "IPAMConfig": ipam,
            "Links": list(args.link) or None,
            "Aliases": list(args.alias),
            "DriverOpts": driver_opts,
        },
    }


# --- the commands ---------------------------------------------------------------------------------------

LS_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
LS_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv4": "IPV4",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}
PRUNE_WARNING = "WARNING! This will remove all custom networks not used by at least one container."


def _list_flag(p: CommandParser, *flags: str, help: str, metavar: str = "list") -> None:
    p.add_argument(*flags, action="append", default=[], metavar=metavar, help=help)


def configure(spec: CommandSpec) -> CommandParser:
    name = spec.name
    if name == "network create":
        p = CommandParser(name, "dockyard network create [OPTIONS] NETWORK", "Create a network")
        add = p.add_argument
        add("--attachable", action="store_true", help="Enable manual container attachment")
        _list_flag(
            p, "--aux-address", metavar="map", help="Auxiliary IPv4 or IPv6 addresses used by Network driver"
        )
        add("--config-from", metavar="string", help="The network from which to copy the configuration")
        add("--config-only", action="store_true", help="Create a configuration only network")
        add("-d", "--driver", metavar="string", default="bridge", help="Driver to manage the Network")
        _list_flag(p, "--gateway", metavar="strings", help="IPv4 or IPv6 Gateway for the master subnet")
        add("--ingress", action="store_true", help="Create swarm routing-mesh network")
        add("--internal", action="store_true", help="Restrict external access to the network")
        _list_flag(p, "--ip-range", metavar="strings", help="Allocate container ip from a sub-range")
        add("--ipam-driver", metavar="string", default="default", help="IP Address Management Driver")
        _list_flag(p, "--ipam-opt", metavar="map", help="Set IPAM driver specific options")
        add("--ipv6", action="store_true", help="Enable or disable IPv6 address assignment")
        _list_flag(p, "--label", help="Set metadata on a network")
        _list_flag(p, "-o", "--opt", metavar="map", help="Set driver specific options")
        add("--scope", metavar="string", help="Control the network's scope")
        _list_flag(
            p, "--subnet", metavar="strings", help="Subnet in CIDR format that represents a network segment"
        )
        add("network", metavar="NETWORK")
    elif name == "network ls":
        p = CommandParser(name, "dockyard network ls [OPTIONS]", "List networks")
        p.add_filter(help='Provide filter values (e.g. "driver=bridge")')
        p.add_format()
        p.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
        p.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    elif name == "network inspect":
        p = CommandParser(
            name,
            "dockyard network inspect [OPTIONS] NETWORK [NETWORK...]",
            "Display detailed information on one or more networks",
        )
        p.add_format(short=True)
        p.add_argument("-v", "--verbose", action="store_true", help="Verbose output for diagnostics")
        p.add_argument("networks", nargs="+", metavar="NETWORK")
    elif name == "network rm":
        p = CommandParser(name, "dockyard network rm NETWORK [NETWORK...]", "Remove one or more networks")
        p.add_argument(
            "-f", "--force", action="store_true", help="Do not error if the network does not exist"
        )
        p.add_argument("networks", nargs="+", metavar="NETWORK")
    elif name == "network connect":
        p = CommandParser(
            name, "dockyard network connect [OPTIONS] NETWORK CONTAINER", "Connect a container to a network"
        )
        _list_flag(p, "--alias", metavar="strings", help="Add network-scoped alias for the container")
        _list_flag(p, "--driver-opt", metavar="strings", help="driver options for the network")
        p.add_argument("--ip", metavar="string", help='IPv4 address (e.g., "172.30.100.104")')
        p.add_argument("--ip6", metavar="string", help='IPv6 address (e.g., "2001:db8::33")')
        _list_flag(p, "--link", help="Add link to another container")
        _list_flag(p, "--link-local-ip", metavar="strings", help="Add a link-local address for the container")
        p.add_argument("network", metavar="NETWORK")
        p.add_argument("container", metavar="CONTAINER")
    elif name == "network disconnect":
        p = CommandParser(
            name,
            "dockyard network disconnect [OPTIONS] NETWORK CONTAINER",
            "Disconnect a container from a network",
        )
        p.add_argument(
            "-f", "--force", action="store_true", help="Force the container to disconnect from a network"
        )
        p.add_argument("network", metavar="NETWORK")
        p.add_argument("container", metavar="CONTAINER")
    elif name == "network prune":
        p = CommandParser(name, "dockyard network prune [OPTIONS]", "Remove all unused networks")
        p.add_filter(short=False, help='Provide filter values (e.g. "until=<timestamp>")')
        p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    else:  # port, container port
        p = CommandParser(
            name,
            f"dockyard {name} CONTAINER [PRIVATE_PORT[/PROTO]]",
            "List port mappings or a specific mapping for the container",
        )
        p.add_argument("container", metavar="CONTAINER")
        p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")
    return p


def run(args: Any, client: ApiClient) -> int:
    handler = {
        "network create": create,
        "network ls": list_networks,
        "network inspect": inspect,
        "network rm": remove,
        "network connect": connect,
        "network disconnect": disconnect,
        "network prune": prune,
    }.get(args.command, port)
    return handler(args, client)


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def create(args: Any, client: ApiClient) -> int:
    try:
        body = create_body(args)
    except ValueError as e:  # the docker CLI's own checks fail with status 1, not as usage errors
        return _fail(str(e))
    created = client.post_json("/networks/create", body)
    if created.get("Warning"):
        print(f"WARNING: {created['Warning']}", file=sys.stderr)
    print(created["Id"])
    return 0


def go_time(created: str) -> str:
    """Go's time.Time.String() of an RFC 3339 timestamp: `2026-12-04 15:16:28.753094 +0000 UTC`."""
    match = re.match(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$", created or "")
    if match is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    day, clock, fraction, zone = match.groups()
    fraction = (fraction or "").rstrip("0")
    text = f"{day} {clock}" + (f".{fraction}" if fraction else "")
    if zone in (None, "Z"):
        return text + " +0000 UTC"
    offset = zone.replace(":", "")
    return f"{text} {offset} {offset}"


def ls_row(n: dict[str, Any], trunc: bool) -> dict[str, str]:
    """One network as the docker CLI's network formatter shows it (the --format placeholders)."""
    labels = n.get("Labels") or {}
    return {
        "ID": n["Id"][:12] if trunc else n["Id"],
        "Name": n.get("Name", ""),
        "Driver": n.get("Driver", ""),
        "Scope": n.get("Scope", ""),
        "IPv4": str(bool(n.get("EnableIPv4"))).lower(),
        "IPv6": str(bool(n.get("EnableIPv6"))).lower(),
        "Internal": str(bool(n.get("Internal"))).lower(),
        "Labels": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        "CreatedAt": go_time(n.get("Created", "")),
    }


def list_networks(args: Any, client: ApiClient) -> int:
    from .manage import format_rows

    filters = parse_filters(args.filter)
    networks = client.get_json("/networks", {"filters": filters or None}) or []
    networks.sort(key=lambda n: natural_key(n.get("Name", "")))
    trunc = not args.no_trunc
    if args.quiet:
        for n in networks:
            print(n["Id"][:12] if trunc else n["Id"])
        return 0
    fmt = args.format or LS_FORMAT
    rows = [ls_row(n, trunc) for n in networks]
    if fmt == "json":
        for row in rows:
            print(json.dumps(dict(sorted(row.items())), ensure_ascii=False, separators=(",", ":")))
        return 0
    text = format_rows(fmt, rows, LS_HEADERS)
    if rows or fmt.startswith("table"):
        print(text)
    return 0


def inspect(args: Any, client: ApiClient) -> int:
    found, status = [], 0
    for name in args.networks:
        try:
            found.append(client.get_json(f"/networks/{name}", {"verbose": "true" if args.verbose else None}))
        except ApiError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            status = 1
    if args.format == "json":
        print(json.dumps(found, ensure_ascii=False, separators=(",", ":")))
    elif args.format:
        from ..template import render

        for item in found:
            print(render(args.format, item))
    else:
        print(json.dumps(found, indent=4, ensure_ascii=False))
    return status


def remove(args: Any, client: ApiClient) -> int:
    failed = False
    for name in args.networks:
        try:
            # the docker CLI looks first (to ask before removing a swarm ingress network); so do we
            client.request("GET", f"/networks/{name}", check=False).read()
            client.request("DELETE", f"/networks/{name}").read()
        except ApiError as e:
            if args.force and e.status == 404:
                continue
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            failed = True
            continue
        print(name)
    if failed:
        print("exit status 1", file=sys.stderr)  # as the docker CLI reports its StatusError
        return 1
    return 0


def connect(args: Any, client: ApiClient) -> int:
    try:
        body = connect_body(args)
    except ValueError as e:
        return _fail(str(e))
    client.request("POST", f"/networks/{args.network}/connect", body=body).read()
    return 0


def disconnect(args: Any, client: ApiClient) -> int:
    body = {"Container": args.container, "Force": bool(args.force)}
    client.request("POST", f"/networks/{args.network}/disconnect", body=body).read()
    return 0


def prune(args: Any, client: ApiClient) -> int:
    filters = parse_filters(args.filter)
    if not args.force and not confirm(PRUNE_WARNING):
        return 0
    result = client.post_json("/networks/prune", query={"filters": filters or None})
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        print("Deleted Networks:\n" + "".join(f"{name}\n" for name in deleted))
    return 0


def port(args: Any, client: ApiClient) -> int:
    info = client.get_json(f"/containers/{args.container}/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    try:
        lines = port_lines(ports, args.port, args.container)
    except ValueError as e:
        return _fail(str(e))
    if lines:
        print("\n".join(lines))
    return 0
