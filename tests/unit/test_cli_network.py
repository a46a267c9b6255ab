"""The CLI's networking: -p/--expose/--network/--add-host/--dns parsing, ps's PORTS, `port`, and the bodies of
the `network` commands. Expected values are what the official docker CLI (28.2) sent and printed for the
same input, recorded through a logging proxy."""

from __future__ import annotations

import argparse

import pytest

from dockyard.cli.commands import CommandSpec, containers
from dockyard.cli.commands import network as net
from dockyard.cli.parser import UsageError


def create_body(*flags: str) -> dict:
    parser = containers.configure(CommandSpec("create", "containers", ""))
    return containers._body(parser.parse_args([*flags, "busybox"]))


def tcp(host_ip: str = "", host_port: str = "") -> dict:
    return {"HostIp": host_ip, "HostPort": host_port}


# --- -p -----------------------------------------------------------------------------------------------

PUBLISH = [
    ("80", {"80/tcp": [tcp()]}),
    ("8888:80", {"80/tcp": [tcp("", "8888")]}),
    ("127.0.0.1:8888:80", {"80/tcp": [tcp("127.0.0.1", "8888")]}),
    ("127.0.0.1::80", {"80/tcp": [tcp("127.0.0.1")]}),
    ("[::1]:8888:80", {"80/tcp": [tcp("::1", "8888")]}),
    ("::1:8888:80", {"80/tcp": [tcp("::1", "8888")]}),
    ("fe80::1:80:80", {"80/tcp": [tcp("fe80::1", "80")]}),
    ("[::1]::80/udp", {"80/udp": [tcp("::1")]}),
    (
        "8000-8002:80-82",
        {"80/tcp": [tcp("", "8000")], "81/tcp": [tcp("", "8001")], "82/tcp": [tcp("", "8002")]},
    ),
    ("8000-8010:80", {"80/tcp": [tcp("", "8000-8010")]}),
    ("80-82", {"80/tcp": [tcp()], "81/tcp": [tcp()], "82/tcp": [tcp()]}),
    ("1-2-3", {"1/tcp": [tcp()], "2/tcp": [tcp()]}),
    ("1-2-3:80", {"80/tcp": [tcp("", "1-2")]}),
    ("80/UDP", {"80/udp": [tcp()]}),
    ("80/sctp", {"80/sctp": [tcp()]}),
    ("80/", {"80/tcp": [tcp()]}),
    ("80/tcp/udp", {"80/tcp": [tcp()]}),
    (":80", {"80/tcp": [tcp()]}),
    ("0:80", {"80/tcp": [tcp("", "0")]}),
    ("08888:080", {"80/tcp": [tcp("", "8888")]}),
    ("127.0.0.1:8000-8002:80-82/udp", {f"{p}/udp": [tcp("127.0.0.1", str(p + 7920))] for p in (80, 81, 82)}),
    ("target=80,published=8080", {"80/tcp": [tcp("", "8080")]}),
    ("target=80,published=8080,protocol=udp", {"80/udp": [tcp("", "8080")]}),
    ("target=80,published=8080-8090,mode=host", {"80/tcp": [tcp("", "8080-8090")]}),
    ("target=80", {"80/tcp": [tcp()]}),
]


@pytest.mark.parametrize("spec, bindings", PUBLISH)
def test_publish_as_the_docker_cli_sends_it(spec: str, bindings: dict) -> None:
    exposed, got = net.parse_publish([spec])
    assert got == bindings
    assert exposed == {port: {} for port in bindings}


def test_publish_twice_on_one_port_keeps_both_bindings() -> None:
    exposed, bindings = net.parse_publish(["8888:80", "127.0.0.1:8889:80"])
    assert exposed == {"80/tcp": {}}
    assert bindings == {"80/tcp": [tcp("", "8888"), tcp("127.0.0.1", "8889")]}


PUBLISH_ERRORS = [
    ("8000-8001:80-82", "invalid ranges specified for container and host Ports: 80-82 and 8000-8001"),
    ("80/foo", "invalid proto: foo"),
    ("abc", "invalid containerPort: abc"),
    ("70000", "invalid containerPort: 70000"),
    ("82-80", "invalid containerPort: 82-80"),
    ("80-", "invalid containerPort: 80-"),
    ("-1", "invalid containerPort: -1"),
    ("80,81", "invalid containerPort: 80,81"),
    ("1.2.3:80:80", "invalid IP address: 1.2.3"),
    ("localhost:80:80", "invalid IP address: localhost"),
    ("80:80:80:80", "invalid IP address: 80:80"),
    ("[fe80::1%eth0]:80:80", "invalid IP address: fe80::1%eth0"),
    ("[::1:80:80", "invalid IP address [::1: address [::1:: missing ']' in address"),
    ("[::1]:80", "invalid IP address [:: address [::: missing ']' in address"),
    ("[::1]::80:80", "invalid IP address [::1]:: address [::1]::: too many colons in address"),
    ("[::1]x:80:80", "invalid IP address [::1]x: address [::1]x:: missing port in address"),
    ("8888:", "no port specified: 8888:<empty>"),
    ("", "no port specified: <empty>"),
    ("/tcp", "no port specified: /tcp<empty>"),
    ("abc:80", "invalid hostPort: abc"),
    ("70000:80", "invalid hostPort: 70000"),
    ("8002-8000:80", "invalid hostPort: 8002-8000"),
    ("127.0.0.1:80", "invalid hostPort: 127.0.0.1"),
    ("published=8080", "no port specified: 8080:/tcp<empty>"),
    ("target=80,bad", "invalid publish opts format (should be name=value but got 'bad')"),
    ("=80", "invalid publish opts format (should be name=value but got '=80')"),
]


@pytest.mark.parametrize("spec, message", PUBLISH_ERRORS)
def test_publish_errors_in_the_docker_cli_words(spec: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        net.parse_publish([spec])
    assert str(e.value) == message


def test_expose() -> None:
    exposed: dict = {}
    net.parse_expose(["80", "80-82/udp", "90/foo", "91/"], exposed)
    assert exposed == {"80/tcp": {}, "80/udp": {}, "81/udp": {}, "82/udp": {}, "90/foo": {}, "91/tcp": {}}
    for value, message in [
        ("1:80", "invalid port format for --expose: 1:80"),
        (
            "abc",
            'invalid range format for --expose: abc, error: strconv.ParseUint: parsing "abc": invalid syntax',
        ),
        ("82-80", "invalid range format for --expose: 82-80, error: invalid range specified for port: 82-80"),
        ("", "invalid range format for --expose: , error: empty string specified for ports"),
        (
            "70000",
            "invalid range format for --expose: 70000, error: "
            'strconv.ParseUint: parsing "70000": value out of range',
        ),
    ]:
        with pytest.raises(ValueError) as e:
            net.parse_expose([value], {})
        assert str(e.value) == message


def test_ports_in_the_create_body() -> None:
    body = create_body("-P", "--expose", "90", "-p", "8888:80")
    assert body["ExposedPorts"] == {"80/tcp": {}, "90/tcp": {}}
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [tcp("", "8888")]}
    assert body["HostConfig"]["PublishAllPorts"] is True
    plain = create_body()
    assert "ExposedPorts" not in plain and "PortBindings" not in plain["HostConfig"]
    with pytest.raises(UsageError) as e:
        create_body("-p", "80/foo")
    assert str(e.value) == "invalid proto: foo"


def test_a_value_starting_with_a_dash_is_the_flags_value() -> None:
    # pflag takes the next argument whatever it looks like; `--dns-search -a.b` is then a bad domain
    with pytest.raises(UsageError) as e:
        create_body("--dns-search", "-a.b")
    assert str(e.value) == 'invalid argument "-a.b" for "--dns-search" flag: -a.b is not a valid domain'
    assert create_body("-e", "-X", "-p", "80")["Env"] == ["-X"]


# --- --network and friends ----------------------------------------------------------------------------


def test_network_flags_in_the_create_body() -> None:
    body = create_body(
        "--network", "mynet", "--network-alias", "a", "--network-alias", "b", "--ip", "10.1.0.5"
    )
    assert body["HostConfig"]["NetworkMode"] == "mynet"
    assert body["NetworkingConfig"] == {
        "EndpointsConfig": {"mynet": {"Aliases": ["a", "b"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}}}
    }
    # a lone network without settings: no endpoint (the daemon makes it), as the docker CLI sends it
    lone = create_body("--net", "mynet")
    assert lone["HostConfig"]["NetworkMode"] == "mynet" and "NetworkingConfig" not in lone
    # --ip without --network applies to the default network
    assert create_body("--ip", "10.1.0.5")["NetworkingConfig"] == {
        "EndpointsConfig": {"default": {"IPAMConfig": {"IPv4Address": "10.1.0.5"}}}
    }
    none = create_body("--network", "none")
    assert none["HostConfig"]["NetworkMode"] == "none" and "NetworkingConfig" not in none


def test_network_long_syntax_and_several_networks() -> None:
    body = create_body("--network", "name=MyNet,ALIAS=X,ip=10.0.0.2,driver-opt=k=v")
    assert body["HostConfig"]["NetworkMode"] == "mynet"  # the docker CLI lower-cases every field
    assert body["NetworkingConfig"]["EndpointsConfig"] == {
        "mynet": {"Aliases": ["x"], "DriverOpts": {"k": "v"}, "IPAMConfig": {"IPv4Address": "10.0.0.2"}}
    }
    two = create_body("--network", "name=mynet", "--network-alias", "y", "--network", "name=other,alias=z")
    assert two["NetworkingConfig"]["EndpointsConfig"] == {
        "mynet": {"Aliases": ["y"]},
        "other": {"Aliases": ["z"]},
    }
    both = create_body("--network", "mynet", "--network", "other")
    assert both["NetworkingConfig"]["EndpointsConfig"] == {"mynet": {}, "other": {}}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--network-alias", "a"], "network-scoped aliases are only supported for user-defined networks"),
        (
            ["--network", "bridge", "--network-alias", "x"],
            "network-scoped aliases are only supported for user-defined networks",
        ),
        (
            ["--network", "name=mynet,alias=x", "--network-alias", "y"],
            "conflicting options: cannot specify both --network-alias and per-network alias",
        ),
        (["--network", "mynet", "--network", "mynet"], 'network "mynet" is specified multiple times'),
        (
            ["--network", "mynet", "--network", "bridge"],
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes",
        ),
        (["--network", " "], "no name set for network"),
        (["--mac-address", "zz"], "zz is not a valid mac address"),
        (
            ["--network", "name=mynet,bogus=1"],
            'invalid argument "name=mynet,bogus=1" for "--network" flag: invalid field key bogus',
        ),
        (
            ["--network", "alias=x"],
            'invalid argument "alias=x" for "--network" flag: network name/id is not specified',
        ),
        (
            ["--network", "name=mynet,driver-opt=bad"],
            'invalid argument "name=mynet,driver-opt=bad" for "--network" flag: '
            "invalid key value pair format in driver options",
        ),
    ],
)
def test_network_errors(flags: list[str], message: str) -> None:
    with pytest.raises(UsageError) as e:
        create_body(*flags)
    assert str(e.value) == message


def test_hosts_and_dns() -> None:
    body = create_body(
        "--add-host", "a:1.2.3.4", "--add-host", "b=::1", "--add-host", "gw:host-gateway",
        "--add-host", "c=[::1]", "--add-host", "d: 1.2.3.4",
        "--dns", "0:0:0:0:0:0:0:1", "--dns", "::ffff:1.2.3.4", "--dns", " 8.8.8.8",
        "--dns-search", "example.com.", "--dns-search", ".", "--dns-search", " a.b ",
        "--dns-option", "ndots:2",
    )  # fmt: skip
    hc = body["HostConfig"]
    assert hc["ExtraHosts"] == ["a:1.2.3.4", "b:::1", "gw:host-gateway", "c:::1", "d: 1.2.3.4"]
    assert hc["Dns"] == ["::1", "1.2.3.4", "8.8.8.8"]
    assert hc["DnsSearch"] == ["example.com", ".", "a.b"]
    assert hc["DnsOptions"] == ["ndots:2"]


@pytest.mark.parametrize(
    "flag, value, why",
    [
        ("--add-host", "a", 'bad format for add-host: "a"'),
        ("--add-host", "=1.2.3.4", 'bad format for add-host: "=1.2.3.4"'),
        ("--add-host", "a:bad", 'invalid IP address in add-host: "bad"'),
        ("--add-host", "a:b:c", 'invalid IP address in add-host: "b:c"'),
        ("--dns", "bad", "IP address is not correctly formatted: bad"),
        ("--dns", "01.2.3.4", "IP address is not correctly formatted: 01.2.3.4"),
        ("--dns-search", "bad..x", "bad..x is not a valid domain"),
        ("--dns-search", "123", "123 is not a valid domain"),
        ("--dns-search", "a_b.c", "a_b.c is not a valid domain"),
    ],
)
def test_host_and_dns_errors(flag: str, value: str, why: str) -> None:
    with pytest.raises(UsageError) as e:
        create_body(flag, value)
    assert str(e.value) == f'invalid argument "{value}" for "{flag}" flag: {why}'


# --- ps's PORTS and `port` ----------------------------------------------------------------------------


def published(ip: str, private: int, public: int, proto: str = "tcp") -> dict:
    return {"IP": ip, "PrivatePort": private, "PublicPort": public, "Type": proto}


def exposed_only(private: int, proto: str = "tcp") -> dict:
    return {"PrivatePort": private, "Type": proto}


@pytest.mark.parametrize(
    "ports, shown",
    [
        ([], ""),
        (
            [published("0.0.0.0", 80, 8888), published("::", 80, 8888)],
            "0.0.0.0:8888->80/tcp, [::]:8888->80/tcp",
        ),
        ([published("0.0.0.0", p, p) for p in (8000, 8001, 8002)], "0.0.0.0:8000-8002->8000-8002/tcp"),
        ([published("::", p, p) for p in (8000, 8001)], "[::]:8000-8001->8000-8001/tcp"),
        (
            [exposed_only(80), exposed_only(81), exposed_only(83), exposed_only(81, "udp")],
            "80-81/tcp, 83/tcp, 81/udp",
        ),
        # published on other numbers: one by one, after the groups
        (
            [published("0.0.0.0", 80, 8000), published("0.0.0.0", 81, 8001)],
            "0.0.0.0:8000->80/tcp, 0.0.0.0:8001->81/tcp",
        ),
        (
            [
                exposed_only(90),
                published("0.0.0.0", 80, 8000),
                published("0.0.0.0", 22, 22),
                exposed_only(23),
            ],
            "23/tcp, 0.0.0.0:22->22/tcp, 90/tcp, 0.0.0.0:8000->80/tcp",
        ),
        (
            [published("127.0.0.1", 5, 5), published("0.0.0.0", 6, 6), published("127.0.0.1", 7, 7)],
            "127.0.0.1:5->5/tcp, 127.0.0.1:7->7/tcp, 0.0.0.0:6->6/tcp",
        ),
        (
            [exposed_only(53, "udp"), exposed_only(53), published("0.0.0.0", 53, 53, "udp")],
            "53/tcp, 53/udp, 0.0.0.0:53->53/udp",
        ),
        ([{"PrivatePort": 80, "Type": "tcp", "PublicPort": 0}], "80/tcp"),
    ],
)
def test_ps_ports_column(ports: list[dict], shown: str) -> None:
    assert net.display_ports(ports) == shown
    row = containers.ps_row({"Id": "a" * 64, "Ports": ports, "Created": 0}, trunc=True)
    assert row["Ports"] == shown


PORTS = {
    "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8888"}, {"HostIp": "::", "HostPort": "8888"}],
    "9/tcp": [{"HostIp": "0.0.0.0", "HostPort": "10000"}],
    "100/udp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}],
    "443/tcp": None,
    "22/tcp": [],
}


def test_port_command_lines() -> None:
    # natural order, as the docker CLI sorts them: 9 before 80 before 100
    assert net.port_lines(PORTS, None, "web") == [
        "9/tcp -> 0.0.0.0:10000",
        "80/tcp -> 0.0.0.0:8888",
        "80/tcp -> [::]:8888",
        "100/udp -> 127.0.0.1:9000",
    ]
    assert net.port_lines(PORTS, "80", "web") == ["0.0.0.0:8888", "[::]:8888"]
    assert net.port_lines(PORTS, "80/", "web") == ["0.0.0.0:8888", "[::]:8888"]
    assert net.port_lines(PORTS, "100/udp", "web") == ["127.0.0.1:9000"]
    for wanted, message in [
        ("443", "Error: No public port '443' published for web"),
        ("22", "Error: No public port '22' published for web"),
        ("80/xyz", "Error: No public port '80/xyz' published for web"),
        ("abc", 'Error: invalid port (abc): strconv.ParseUint: parsing "abc": invalid syntax'),
        ("70000", 'Error: invalid port (70000): strconv.ParseUint: parsing "70000": value out of range'),
        ("/tcp", 'Error: invalid port (): strconv.ParseUint: parsing "": invalid syntax'),
    ]:
        with pytest.raises(ValueError) as e:
            net.port_lines(PORTS, wanted, "web")
        assert str(e.value) == message


def test_natural_order() -> None:
    names = ["n10", "n9", "bridge", "n09", "host", "N1", "none", "a-b"]
    assert sorted(names, key=net.natural_key) == ["N1", "a-b", "bridge", "host", "n9", "n09", "n10", "none"]


# --- network create, connect, ls ------------------------------------------------------------------------


def create_args(*argv: str) -> argparse.Namespace:
    return net.configure(CommandSpec("network create", "network", "")).parse_args(list(argv))


def test_network_create_body() -> None:
    assert net.create_body(create_args("n1")) == {
        "Driver": "bridge",
        "Scope": "",
        "IPAM": {"Driver": "default", "Options": {}, "Config": []},
        "Internal": False,
        "Attachable": False,
        "Ingress": False,
        "ConfigOnly": False,
        "ConfigFrom": None,
        "Options": {},
        "Labels": {},
        "Name": "n1",
        "CheckDuplicate": True,
    }
    body = net.create_body(
        create_args(
            "--subnet",
            "10.99.0.0/24",
            "--gateway",
            "10.99.0.1",
            "--ip-range",
            "10.99.0.128/25",
            "--internal",
            "--attachable",
            "--label",
            "a=b",
            "--label",
            "c",
            "-o",
            "com.docker.network.bridge.name=foo",
            "-o",
            "x",
            "--ipv6",
            "n1",
        )  # fmt: skip
    )
    assert body["IPAM"]["Config"] == [
        {"Subnet": "10.99.0.0/24", "IPRange": "10.99.0.128/25", "Gateway": "10.99.0.1"}
    ]
    assert body["Options"] == {"com.docker.network.bridge.name": "foo", "x": ""}
    assert body["Labels"] == {"a": "b", "c": ""}
    assert body["Internal"] is body["Attachable"] is body["EnableIPv6"] is True
    aux = net.create_body(create_args("--subnet", "10.77.0.0/24", "--aux-address", "h1=10.77.0.5", "n"))
    assert aux["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24", "AuxiliaryAddresses": {"h1": "10.77.0.5"}}]
    # a bad lone subnet is the daemon's to refuse
    assert net.create_body(create_args("--subnet", "bad", "n"))["IPAM"]["Config"] == [{"Subnet": "bad"}]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--gateway", "10.77.0.1"], "every ip-range or gateway must have a corresponding subnet"),
        (
            ["--subnet", "10.77.0.0/24", "--gateway", "10.77.0.1", "--gateway", "10.77.0.2"],
            "every ip-range or gateway must have a corresponding subnet",
        ),
        (
            ["--subnet", "10.77.0.0/24", "--aux-address", "h1=10.79.0.5"],
            "no matching subnet for aux-address 10.79.0.5",
        ),
        (["--subnet", "10.77.0.0/24", "--gateway", "10.78.0.1"], "no matching subnet for gateway 10.78.0.1"),
        (
            ["--subnet", "10.77.0.0/24", "--ip-range", "10.79.0.0/25"],
            "no matching subnet for range 10.79.0.0/25",
        ),
        (
            ["--subnet", "10.77.0.0/24", "--subnet", "10.77.0.0/25"],
            "multiple overlapping subnet configuration is not supported",
        ),
        (
            ["--subnet", "10.77.0.0/24", "--subnet", "10.78.0.0/24", "--gateway", "10.77.0.1"]
            + ["--gateway", "10.77.0.2"],
            "cannot configure multiple gateways (10.77.0.2, 10.77.0.1) for the same subnet (10.77.0.0/24)",
        ),
        (["--subnet", "bad", "--gateway", "10.77.0.1"], "invalid subnet: invalid CIDR address: bad"),
    ],
)
def test_network_create_checks(flags: list[str], message: str) -> None:
    with pytest.raises(ValueError) as e:
        net.create_body(create_args(*flags, "n"))
    assert str(e.value) == message


def test_network_connect_body() -> None:
    parser = net.configure(CommandSpec("network connect", "network", ""))
    args = parser.parse_args(
        ["--alias", "a1", "--alias", "a2", "--ip", "1.2.3.4", "--ip6", "fd00::1", "--link", "web:w"]
        + ["--driver-opt", "k=v", "n2", "web"]
    )
    assert net.connect_body(args) == {
        "Container": "web",
        "EndpointConfig": {
            "IPAMConfig": {"IPv4Address": "1.2.3.4", "IPv6Address": "fd00::1"},
            "Links": ["web:w"],
            "Aliases": ["a1", "a2"],
            "DriverOpts": {"k": "v"},
        },
    }
    plain = net.connect_body(parser.parse_args(["n2", "web"]))
    assert plain["EndpointConfig"] == {"IPAMConfig": {}, "Links": None, "Aliases": [], "DriverOpts": {}}
    with pytest.raises(ValueError, match="invalid key/value pair format in driver options"):
        net.connect_body(parser.parse_args(["--driver-opt", "bad", "n2", "web"]))


def test_network_ls_row() -> None:
    network = {
        "Name": "n1",
        "Id": "fe15756a2e7acd1dd863d69daa2ff553895168710f2b327daadb43a8c3504d63",
        "Created": "2026-12-04T15:18:50.780800Z",
        "Scope": "local",
        "Driver": "bridge",
        "EnableIPv6": False,
        "Internal": True,
        "Labels": {"b": "2", "a": "1"},
    }
    assert net.ls_row(network, trunc=True) == {
        "ID": "fe15756a2e7a",
        "Name": "n1",
        "Driver": "bridge",
        "Scope": "local",
        "IPv4": "false",
        "IPv6": "false",
        "Internal": "true",
        "Labels": "a=1,b=2",
        "CreatedAt": "2026-12-04 15:18:50.7808 +0000 UTC",
    }
    assert net.go_time("2026-12-04T15:18:50Z") == "2026-12-04 15:18:50 +0000 UTC"
    assert net.go_time("2026-12-04T15:18:50.5+01:00") == "2026-12-04 15:18:50.5 +0100 +0100"
