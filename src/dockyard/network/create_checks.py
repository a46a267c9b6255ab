"""`POST /networks/create` read and checked as dockerd 20.10 does, with its texts: the body as Go decodes a
NetworkCreateRequest (a value of the wrong type is a 400 naming the field, as encoding/json words it), the
name (any but a blank one, spaces included; never a predefined one), a name taken (409 with CheckDuplicate,
else made anyway with dockerd's warning), the bridge driver's options (`-o`, parsed as its fromLabels does)
and the IPAM pool's auxiliary addresses."""

from __future__ import annotations

import ipaddress
from typing import Any

from .service import NetworkError

PREDEFINED_NAMES = ("bridge", "host", "none", "default")

_TOP = {
    "Name": "string",
    "CheckDuplicate": "bool",
    "Driver": "string",
    "Scope": "string",
    "EnableIPv6": "bool",
    "IPAM": "network.IPAM",
    "Internal": "bool",
    "Attachable": "bool",
    "Ingress": "bool",
    "ConfigOnly": "bool",
    "ConfigFrom": "network.ConfigReference",
    "Options": "map[string]string",
    "Labels": "map[string]string",
}
_IPAM = {"Driver": "string", "Options": "map[string]string", "Config": "[]network.IPAMConfig"}
_POOL = {
    "Subnet": "string",
    "IPRange": "string",
    "Gateway": "string",
    "AuxiliaryAddresses": "map[string]string",
}
_BOOL_OPTIONS = (
    "com.docker.network.enable_ipv6",
    "com.docker.network.bridge.enable_ip_masquerade",
    "com.docker.network.bridge.enable_icc",
    "com.docker.network.bridge.inhibit_ipv4",
    "com.docker.network.bridge.default_bridge",
)
_IP_OPTIONS = ("com.docker.network.bridge.host_binding_ipv4", "com.docker.network.host_ipv4")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), "value")


def _fits(value: Any, go_type: str) -> bool:
    if value is None:
        return True
    if go_type == "string":
        return isinstance(value, str)
    if go_type == "bool":
        return isinstance(value, bool)
    if go_type.startswith("[]"):
        return isinstance(value, list)
    return isinstance(value, dict)  # structs and maps


def _type_error(value: Any, struct: str, path: str, go_type: str) -> NetworkError:
    return NetworkError(
        f"json: cannot unmarshal {_kind(value)} into Go struct field {struct}.{path} of type {go_type}", 400
    )


def _check_fields(data: dict[str, Any], fields: dict[str, str], struct: str, prefix: str) -> None:
    for key, value in data.items():
        go_type = fields.get(key)
        if go_type is None:
            continue  # unknown fields are ignored, as encoding/json does
        if not _fits(value, go_type):
            raise _type_error(value, struct, prefix + key, go_type)
        if go_type == "map[string]string" and value:
            for item in value.values():
                if item is not None and not isinstance(item, str):
                    raise _type_error(item, struct, prefix + key, "string")


def check_request(body: dict[str, Any]) -> None:
    """encoding/json's type errors for a NetworkCreateRequest (the first one, as Decode reports)."""
    _check_fields(body, _TOP, "NetworkCreateRequest", "")
    ipam = body.get("IPAM")
    if isinstance(ipam, dict):
        _check_fields(ipam, _IPAM, "IPAM", "IPAM.")
        for pool in ipam.get("Config") or []:
            if not isinstance(pool, dict):
                raise _type_error(pool, "IPAM", "IPAM.Config", "network.IPAMConfig")
            _check_fields(pool, _POOL, "IPAMConfig", "IPAM.Config.")


def check_name(name: str) -> None:
    """dockerd's: a predefined name is forbidden; libnetwork's: only a blank name is invalid."""
    if name in PREDEFINED_NAMES:
        raise NetworkError(f"operation is not permitted on predefined {name} network ", 403)
    if not name.strip():
        raise NetworkError(f"invalid name: {name}", 400)


def duplicate_warning(existing: list[tuple[str, str]], name: str, check_duplicate: bool) -> str:
    """`existing`: (name, id) of the networks; the warning dockerd answers with when the name is taken and
    CheckDuplicate is not set (it makes the network anyway), or its 409."""
    taken = next((net_id for net_name, net_id in existing if net_name == name), None)
    if taken is None:
        return ""
    if check_duplicate:
        raise NetworkError(f"network with name {name} already exists", 409)
    return f"Network with name {name} (id : {taken}) already exists"


def _parse_error(label: str, value: str, problem: str) -> NetworkError:
    return NetworkError(f"failed to parse {label} value: {value} ({problem})", 400)


def check_bridge_options(options: dict[str, str]) -> None:
    """The bridge driver's parse of its options (networkConfiguration.fromLabels) and Validate."""
    for label, value in options.items():
        if label == "com.docker.network.driver.mtu":
            try:
                mtu = int(value, 10)
            except ValueError:
                raise _parse_error(label, value, f'strconv.Atoi: parsing "{value}": invalid syntax') from None
            if mtu < 0:
                raise NetworkError(f"invalid MTU number: {mtu}", 400)
        elif label in _BOOL_OPTIONS:
            if value not in ("1", "t", "T", "TRUE", "true", "True", "0", "f", "F", "FALSE", "false", "False"):
                raise _parse_error(label, value, f'strconv.ParseBool: parsing "{value}": invalid syntax')
        elif label in _IP_OPTIONS:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise _parse_error(label, value, "nil ip") from None


def aux_addresses(
    pool: dict[str, Any], subnet: ipaddress.IPv4Network, gateway: str, network_name: str
) -> dict[str, str]:
    """The pool's AuxiliaryAddresses, which no container is given: each inside the pool, none the gateway."""
    out: dict[str, str] = {}
    for key, value in (pool.get("AuxiliaryAddresses") or {}).items():
        value = value or ""
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise NetworkError(
                f"non parsable secondary ip address ({key}:{value}) passed for network {network_name}", 400
            ) from None
        if address not in subnet:
            raise NetworkError(
                f"auxiliary address: ({key}:{value}) must belong to the master pool: {subnet}", 403
            )
        if value == gateway or value in out.values():
            raise NetworkError(
                f"failed to allocate secondary ip address ({key}:{value}): Address already in use", 500
            )
        out[key] = value
    return out
