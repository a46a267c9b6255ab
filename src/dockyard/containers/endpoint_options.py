"""A container's endpoint options, as dockerd 20.10 takes them: `NetworkingConfig.EndpointsConfig` at create
(one network at most at API 1.41, and it may name another network than `NetworkMode`: the container is then on
that one, as dockerd's updateContainerNetworkSettings keeps it), aliases, `IPAMConfig` (IPv4Address,
LinkLocalIPs), `DriverOpts`, links, `MacAddress` (at API 1.41, `Config.MacAddress` sets the MAC of the
NetworkMode's network; an endpoint's own `MacAddress` shows until the first start and is then reset, as
dockerd's cleanOperationalData), and the network-mode conflicts dockerd's decoder refuses."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .links import parse_link

_EUI48 = re.compile(r"^[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")
_DOTTED = re.compile(r"^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$")
IPAM_FIELDS = ("IPv4Address", "IPv6Address", "LinkLocalIPs")


class EndpointError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --- create --------------------------------------------------------------------------------------------


def validate_net_mode(config: dict[str, Any], host_config: dict[str, Any]) -> None:
    """runconfig's validateNetMode, in its order (dockerd refuses these before it looks at the image)."""
    mode = str(host_config.get("NetworkMode") or "")
    kind, _, ref = mode.partition(":")
    container = kind == "container"
    if container and not ref:
        raise EndpointError("Invalid network mode: invalid container format container:<name|id>")
    checks = [
        (container and config.get("Hostname"), "conflicting options: hostname and the network mode"),
        (
            container and host_config.get("Links"),
            "conflicting options: container type network can't be used with links. This would result in "
            "undefined behavior",
        ),
        (container and host_config.get("Dns"), "conflicting options: dns and the network mode"),
        (
            container and host_config.get("ExtraHosts"),
            "conflicting options: custom host-to-IP mapping and the network mode",
        ),
        (
            (container or mode == "host") and config.get("MacAddress"),
            "conflicting options: mac-address and the network mode",
        ),
        (
            container and (host_config.get("PortBindings") or host_config.get("PublishAllPorts")),
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            container and config.get("ExposedPorts"),
            "conflicting options: port exposing and the container type network mode",
        ),
        (
            host_config.get("UTSMode") == "host" and config.get("Hostname"),
            "conflicting options: hostname and the UTS mode",
        ),
        (
            mode == "host" and host_config.get("Links"),
            "conflicting options: host type networking can't be used with links. This would result in "
            "undefined behavior",
        ),
    ]
    for failed, message in checks:
        if failed:
            raise EndpointError(message)


def endpoints_config(networking_config: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """dockerd's verifyNetworkingConfig at API 1.41: one endpoint at most, each with settings, valid IPs."""
    endpoints = (networking_config or {}).get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        raise EndpointError(
            "json: cannot unmarshal array into Go struct field NetworkingConfig.NetworkingConfig."
            "EndpointsConfig of type map[string]*network.EndpointSettings"
        )
    if len(endpoints) > 1:
        raise EndpointError(f"Container cannot be connected to network endpoints: {', '.join(endpoints)}")
    for name, settings in endpoints.items():
        if settings is None:
            raise EndpointError(f"no EndpointSettings for {name}")
        ipam = settings.get("IPAMConfig") or {}
        v4, v6 = ipam.get("IPv4Address") or "", ipam.get("IPv6Address") or ""
        if v4 and not _is_ip(v4, 4):
            raise EndpointError(f"invalid IPv4 address: {v4}")
        if v6 and not _is_ip(v6, 6):
            raise EndpointError(f"invalid IPv6 address: {v6}")
    return endpoints


def _is_ip(text: str, version: int) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    if version == 4:  # Go's To4: an IPv4-mapped IPv6 address counts as IPv4
        return address.version == 4 or getattr(address, "ipv4_mapped", None) is not None
    return address.version == 6 and getattr(address, "ipv4_mapped", None) is None


# --- start and connect ---------------------------------------------------------------------------------


def parse_mac(text: str) -> str:
    """net.ParseMAC for the 6-byte forms a bridge port takes, in Go's String() form; dockerd's error."""
    value = text.strip()
    if _EUI48.match(value):
        digits = re.sub(r"[:-]", "", value)
    elif _DOTTED.match(value):
        digits = value.replace(".", "")
    else:
        raise EndpointError(f"address {text}: invalid MAC address", 500)
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2)).lower()


def link_aliases(links: list[str] | None) -> dict[str, str]:
    """An endpoint's links as libnetwork's aliases: alias -> the container name it stands for (errors as
    dockerd's buildJoinOptions)."""
    out = {}
    for value in links or []:
        try:
            name, alias = parse_link(str(value))
        except ValueError as e:
            raise EndpointError(str(e), 500) from None
        out[alias] = name
    return out


def check_predefined(settings: dict[str, Any], predefined: bool) -> None:
    """dockerd's updateNetworkConfig on bridge/host/none: no user IP, no aliases."""
    if not predefined:
        return
    ipam = settings.get("IPAMConfig") or {}
    if ipam.get("IPv4Address") or ipam.get("IPv6Address"):
        raise EndpointError("user specified IP address is supported on user defined networks only")
    if settings.get("Aliases"):
        raise EndpointError("network-scoped alias is supported only for containers in user defined networks")


def at_start(
    config: dict[str, Any], settings: dict[str, Any], predefined: bool, primary: bool
) -> dict[str, Any]:
    """The settings an endpoint is made with: dockerd's checks, the MAC (Config.MacAddress on the
    NetworkMode's network, else generated from the address), the link-local addresses, the link aliases."""
    check_predefined(settings, predefined)
    out = dict(settings)
    mac = str(config.get("MacAddress") or "") if primary else ""
    out["MacAddress"] = parse_mac(mac) if mac else ""
    for ip in (settings.get("IPAMConfig") or {}).get("LinkLocalIPs") or []:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            listed = " ".join(str(i) for i in settings["IPAMConfig"]["LinkLocalIPs"])
            raise EndpointError(f"Invalid link-local IP address: [{listed}]", 500) from None
        if not address.is_link_local:
            raise EndpointError(f"invalid link local IP address: {ip}")
    out["_links"] = link_aliases(settings.get("Links"))
    return out


def started(settings: dict[str, Any]) -> None:
    """What dockerd clears of the stored settings once the container runs (cleanOperationalData)."""
    settings.pop("MacAddress", None)


# --- inspect -------------------------------------------------------------------------------------------


def shown_ipam(ipam: dict[str, Any] | None) -> dict[str, Any] | None:
    """EndpointIPAMConfig as dockerd marshals it (its fields omitempty)."""
    if ipam is None:
        return None
    return {k: ipam[k] for k in IPAM_FIELDS if ipam.get(k)}


def show(shown: dict[str, Any], settings: dict[str, Any], mac: str) -> None:
    """Inspect's endpoint fields that come from what was asked: IPAMConfig, Links, DriverOpts, and the
    MacAddress asked for until the endpoint has one of its own."""
    shown["IPAMConfig"] = shown_ipam(settings.get("IPAMConfig"))
    shown["Links"] = settings.get("Links") or None
    shown["DriverOpts"] = settings.get("DriverOpts")
    shown["MacAddress"] = mac or str(settings.get("MacAddress") or "")
