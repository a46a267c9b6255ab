"""Pure parts of legacy links, endpoint options and network-create checks: dockerd's link environment, link
parsing, /etc/hosts updates, MAC derivation and parsing, the create-time endpoint and network-mode checks, the
NetworkCreateRequest's Go-style type errors and the bridge options."""

from __future__ import annotations

import ipaddress
import re

import pytest

from dockyard.containers.endpoint_options import (
    EndpointError,
    at_start,
    endpoints_config,
    parse_mac,
    shown_ipam,
    validate_net_mode,
)
from dockyard.containers.links import (
    drop_hosts_alias,
    hosts_entry,
    link_env,
    merge_env,
    parse_link,
    update_hosts,
)
from dockyard.containers.store import Container
from dockyard.network import NetworkError
from dockyard.network.create_checks import (
    aux_addresses,
    check_bridge_options,
    check_name,
    check_request,
    duplicate_warning,
)
from dockyard.network.ipam import mac_for

# --- links --------------------------------------------------------------------------------------------


def test_parse_link_as_dockerd() -> None:
    assert parse_link("web:db") == ("web", "db")
    assert parse_link("web") == ("web", "web")
    assert parse_link("/web:/parent/db") == ("web", "db")  # inspect's own form
    with pytest.raises(ValueError, match="^empty string specified for links$"):
        parse_link("")
    with pytest.raises(ValueError, match="^bad format for links: a:b:c$"):
        parse_link("a:b:c")


def test_link_env_ports_names_and_child_env() -> None:
    env = link_env(
        "/parent/my-db",
        "172.17.0.2",
        ["PATH=/bin", "HOME=/root", "FOO=bar", "NOVALUE", "X=a=b"],
        ["5432/tcp", "53/udp", "53/tcp"],
    )
    assert env == [
        "MY_DB_PORT=tcp://172.17.0.2:53",  # the lowest port, tcp before udp
        "MY_DB_PORT_53_TCP=tcp://172.17.0.2:53",
        "MY_DB_PORT_53_TCP_ADDR=172.17.0.2",
        "MY_DB_PORT_53_TCP_PORT=53",
        "MY_DB_PORT_53_TCP_PROTO=tcp",
        "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
        "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
        "MY_DB_PORT_53_UDP_PORT=53",
        "MY_DB_PORT_53_UDP_PROTO=udp",
        "MY_DB_PORT_5432_TCP=tcp://172.17.0.2:5432",
        "MY_DB_PORT_5432_TCP_ADDR=172.17.0.2",
        "MY_DB_PORT_5432_TCP_PORT=5432",
        "MY_DB_PORT_5432_TCP_PROTO=tcp",
        "MY_DB_NAME=/parent/my-db",
        "MY_DB_ENV_FOO=bar",  # PATH and HOME are left out, entries without = too
        "MY_DB_ENV_X=a=b",
    ]


def test_link_env_contiguous_ports_get_a_range() -> None:
    env = link_env("/p/web", "10.0.0.5", None, ["80/tcp", "81/tcp", "82/tcp"])
    assert env[:7] == [
        "WEB_PORT=tcp://10.0.0.5:80",
        "WEB_PORT_80_TCP_START=tcp://10.0.0.5:80",
        "WEB_PORT_80_TCP_ADDR=10.0.0.5",
        "WEB_PORT_80_TCP_PROTO=tcp",
        "WEB_PORT_80_TCP_PORT_START=80",
        "WEB_PORT_80_TCP_END=tcp://10.0.0.5:82",
        "WEB_PORT_80_TCP_PORT_END=82",
    ]
    assert "WEB_PORT_81_TCP=tcp://10.0.0.5:81" in env and env[-1] == "WEB_NAME=/p/web"
    assert link_env("/p/x", "10.0.0.5", [], []) == ["X_NAME=/p/x"]


def test_merge_env_puts_links_after_the_daemons_and_lets_the_container_win() -> None:
    process = ["PATH=/bin", "HOSTNAME=h", "TERM=xterm", "DB_NAME=mine", "A=1", "HOME=/root"]
    merged = merge_env(process, ["DB_NAME=/p/db", "DB_PORT=tcp://x:1"], ["DB_NAME=mine", "A=1"])
    assert merged == [
        "PATH=/bin",
        "HOSTNAME=h",
        "TERM=xterm",
        "DB_PORT=tcp://x:1",
        "DB_NAME=mine",
        "A=1",
        "HOME=/root",
    ]


def test_hosts_lines_and_updates() -> None:
    child = Container(
        id="a" * 64, name="web", image="busybox", image_id="x", config={"Hostname": "aaaaaaaaaaaa"}
    )
    assert hosts_entry("db", child, "172.17.0.2") == "172.17.0.2\tdb aaaaaaaaaaaa web\n"
    assert hosts_entry("web", child, "172.17.0.2") == "172.17.0.2\tweb aaaaaaaaaaaa\n"
    text = "127.0.0.1\tlocalhost\n172.17.0.2\tdb aaaaaaaaaaaa web\n172.17.0.3\tdbx\n172.17.0.4\tself\n"
    updated = update_hosts(text, "172.17.0.9", "db")
    assert "172.17.0.9\tdb aaaaaaaaaaaa web\n" in updated and "172.17.0.3\tdbx\n" in updated
    assert drop_hosts_alias(text, "db") == "127.0.0.1\tlocalhost\n172.17.0.3\tdbx\n172.17.0.4\tself\n"


# --- endpoint options ---------------------------------------------------------------------------------


def test_generated_mac_is_02_42_and_the_ipv4_address() -> None:
    assert mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    assert mac_for("10.1.255.254") == "02:42:0a:01:ff:fe"


def test_parse_mac_as_go() -> None:
    assert parse_mac("02:42:AC:11:00:0A") == "02:42:ac:11:00:0a"
    assert parse_mac("02-42-ac-11-00-0a") == "02:42:ac:11:00:0a"
    assert parse_mac("0242.ac11.000a") == "02:42:ac:11:00:0a"
    with pytest.raises(EndpointError, match="^address zz: invalid MAC address$"):
        parse_mac("zz")


def test_endpoints_config_at_api_141() -> None:
    assert endpoints_config(None) == {}
    assert endpoints_config({"EndpointsConfig": {"n": {"Aliases": ["a"]}}}) == {"n": {"Aliases": ["a"]}}
    with pytest.raises(EndpointError, match="^Container cannot be connected to network endpoints: a, b$"):
        endpoints_config({"EndpointsConfig": {"a": {}, "b": {}}})
    with pytest.raises(EndpointError, match="^no EndpointSettings for n$"):
        endpoints_config({"EndpointsConfig": {"n": None}})
    with pytest.raises(EndpointError, match="^invalid IPv4 address: 300.1.1.1$"):
        endpoints_config({"EndpointsConfig": {"n": {"IPAMConfig": {"IPv4Address": "300.1.1.1"}}}})
    with pytest.raises(EndpointError, match="^invalid IPv6 address: 10.0.0.1$"):
        endpoints_config({"EndpointsConfig": {"n": {"IPAMConfig": {"IPv6Address": "10.0.0.1"}}}})


@pytest.mark.parametrize(
    ("config", "host_config", "message"),
    [
        ({}, {"NetworkMode": "container:"}, "Invalid network mode: invalid container format"),
        (
            {},
            {"NetworkMode": "container:x", "Links": ["a:b"]},
            "container type network can't be used with links",
        ),
        (
            {},
            {"NetworkMode": "container:x", "Dns": ["1.1.1.1"]},
            "conflicting options: dns and the network mode",
        ),
        ({}, {"NetworkMode": "container:x", "ExtraHosts": ["a:1.1.1.1"]}, "custom host-to-IP mapping"),
        ({"MacAddress": "02:42:00:00:00:01"}, {"NetworkMode": "host"}, "mac-address and the network mode"),
        (
            {"ExposedPorts": {"80/tcp": {}}},
            {"NetworkMode": "container:x"},
            "port exposing and the container type",
        ),
        ({}, {"NetworkMode": "host", "Links": ["a:b"]}, "host type networking can't be used with links"),
    ],
)
def test_network_mode_conflicts(config, host_config, message) -> None:
    with pytest.raises(EndpointError, match=message):
        validate_net_mode(config, host_config)


def test_settings_an_endpoint_is_made_with() -> None:
    config = {"MacAddress": "02-42-00-00-00-01"}
    settings = {"IPAMConfig": {"LinkLocalIPs": ["169.254.1.1"]}, "Links": ["web:db"], "MacAddress": "x"}
    made = at_start(config, settings, predefined=False, primary=True)
    assert made["MacAddress"] == "02:42:00:00:00:01" and made["_links"] == {"db": "web"}
    assert at_start(config, settings, predefined=False, primary=False)["MacAddress"] == ""  # 20.10 ignores x
    with pytest.raises(EndpointError, match="^invalid link local IP address: 10.1.1.1$"):
        at_start({}, {"IPAMConfig": {"LinkLocalIPs": ["10.1.1.1"]}}, False, True)
    with pytest.raises(EndpointError, match="network-scoped alias is supported only"):
        at_start({}, {"Aliases": ["a"]}, True, True)
    with pytest.raises(
        EndpointError, match="user specified IP address is supported on user defined networks"
    ):
        at_start({}, {"IPAMConfig": {"IPv4Address": "172.17.0.9"}}, True, True)
    assert shown_ipam({"IPv4Address": "", "LinkLocalIPs": ["169.254.1.1"]}) == {
        "LinkLocalIPs": ["169.254.1.1"]
    }
    assert shown_ipam(None) is None


# --- network create -----------------------------------------------------------------------------------


def test_network_create_request_type_errors() -> None:
    check_request({"Name": "n", "Labels": {"a": "b"}, "IPAM": {"Config": [{"Subnet": "10.0.0.0/24"}]}})
    cases = [
        (
            {"Labels": ["a=b"]},
            "array into Go struct field NetworkCreateRequest.Labels of type map[string]string",
        ),
        ({"Labels": {"a": 1}}, "number into Go struct field NetworkCreateRequest.Labels of type string"),
        ({"Internal": "yes"}, "string into Go struct field NetworkCreateRequest.Internal of type bool"),
        ({"IPAM": {"Config": [{"Subnet": 5}]}}, "number into Go struct field IPAMConfig.IPAM.Config.Subnet"),
    ]
    for body, message in cases:
        with pytest.raises(
            NetworkError, match="^" + re.escape(f"json: cannot unmarshal {message}")
        ) as raised:
            check_request(body)
        assert raised.value.status == 400


def test_network_names_and_duplicates() -> None:
    check_name("test 01")
    with pytest.raises(NetworkError, match="^operation is not permitted on predefined host network $"):
        check_name("host")
    with pytest.raises(NetworkError, match="^invalid name:  $"):
        check_name(" ")
    existing = [("n", "abc")]
    assert duplicate_warning(existing, "m", True) == ""
    assert duplicate_warning(existing, "n", False) == "Network with name n (id : abc) already exists"
    with pytest.raises(NetworkError, match="^network with name n already exists$") as raised:
        duplicate_warning(existing, "n", True)
    assert raised.value.status == 409


def test_bridge_options_and_aux_addresses() -> None:
    check_bridge_options(
        {"com.docker.network.bridge.enable_icc": "false", "com.docker.network.driver.mtu": "1400"}
    )
    with pytest.raises(
        NetworkError, match=r"failed to parse com.docker.network.bridge.enable_icc value: x \("
    ):
        check_bridge_options({"com.docker.network.bridge.enable_icc": "x"})
    with pytest.raises(NetworkError, match="^invalid MTU number: -1$"):
        check_bridge_options({"com.docker.network.driver.mtu": "-1"})
    subnet = ipaddress.IPv4Network("10.0.0.0/24")
    assert aux_addresses({"AuxiliaryAddresses": {"a": "10.0.0.5"}}, subnet, "10.0.0.1", "n") == {
        "a": "10.0.0.5"
    }
    with pytest.raises(NetworkError, match=r"must belong to the master pool: 10.0.0.0/24"):
        aux_addresses({"AuxiliaryAddresses": {"a": "10.0.1.5"}}, subnet, "10.0.0.1", "n")
    with pytest.raises(NetworkError, match=r"non parsable secondary ip address \(a:x\) passed for network n"):
        aux_addresses({"AuxiliaryAddresses": {"a": "x"}}, subnet, "10.0.0.1", "n")
