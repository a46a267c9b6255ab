"""IPv6 on user bridge networks, through the official docker CLI and docker-py, as dockerd 20.10 answers:
`network create --ipv6 --subnet/--gateway/--ip-range` (its IPAM Config as shown, its errors), dual-stack
containers (a v6 address on eth0 and a v6 default route, the inspect fields, `--ip6` and
`IPAMConfig.IPv6Address`), ping and TCP over IPv6 between two containers by name (the embedded DNS's AAAA),
and a v4-only network left as it was."""

from __future__ import annotations

import json
import time

import docker as docker_sdk
import pytest
from harness import unique

pytestmark = pytest.mark.timeout(300)

_n = 0


def v6_subnet() -> str:
    global _n
    _n += 1
    return f"fd00:d0c:{int(time.time()) % 0xFFFF:x}:{_n:x}::/64"


def inspect(docker, name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def test_create_ipv6_network(docker, docker_client, networks) -> None:
    net, subnet = unique("v6net"), v6_subnet()
    networks.append(net)
    assert docker("network", "create", "--ipv6", "--subnet", subnet, net).returncode == 0
    shown = inspect(docker, net)
    assert shown["EnableIPv6"] is True
    config = shown["IPAM"]["Config"]
    assert len(config) == 2 and set(config[0]) == {"Subnet", "Gateway"} and "." in config[0]["Subnet"]
    assert config[1] == {"Subnet": subnet}

    api = docker_client.api
    full, prefix = unique("v6full"), subnet.replace("::/64", "")
    created = api.create_network(
        full,
        enable_ipv6=True,
        ipam=docker_sdk.types.IPAMConfig(
            pool_configs=[
                docker_sdk.types.IPAMPool(
                    subnet=f"{prefix}1::/64", iprange=f"{prefix}1::/96", gateway=f"{prefix}1::ffff"
                )
            ]
        ),
    )
    networks.append(full)
    data = api.inspect_network(created["Id"])
    assert data["EnableIPv6"] is True
    assert data["IPAM"]["Config"][1] == {
        "Subnet": f"{prefix}1::/64",
        "IPRange": f"{prefix}1::/96",
        "Gateway": f"{prefix}1::ffff",
    }


def test_create_errors(docker, docker_client, networks) -> None:
    net = unique("v6err")
    networks.append(net)
    bad = docker("network", "create", "--ipv6", net)
    assert bad.returncode != 0
    assert "could not find an available, non-overlapping IPv6 address pool" in bad.stderr
    subnet = v6_subnet()
    out = docker("network", "create", "--ipv6", "--subnet", subnet, "--gateway", "fd01::1", net)
    assert "no matching subnet for gateway fd01::1" in out.stderr  # the CLI's own check
    pool = docker_sdk.types.IPAMPool(subnet=subnet, gateway="fd01::1")
    with pytest.raises(docker_sdk.errors.APIError) as err:
        docker_client.api.create_network(
            net, enable_ipv6=True, ipam=docker_sdk.types.IPAMConfig(pool_configs=[pool])
        )
    assert "failed to allocate gateway (fd01::1): Requested address is out of range" in str(err.value)
    wrong = subnet.replace("::/64", "::5/64")
    out = docker("network", "create", "--ipv6", "--subnet", wrong, net)
    assert f"invalid subnet {wrong} : it should be {subnet}" in out.stderr
    two = docker("network", "create", "--ipv6", "--subnet", subnet, "--subnet", v6_subnet(), net)
    assert "bridge driver doesn't support multiple subnets" in two.stderr
    assert docker("network", "create", "--ipv6", "--subnet", subnet, net).returncode == 0
    other = unique("v6err")
    networks.append(other)
    out = docker("network", "create", "--ipv6", "--subnet", subnet, other)
    assert "Pool overlaps with other one on this address space" in out.stderr


def test_dual_stack_containers(docker, docker_client, names, networks) -> None:
    net, subnet = unique("v6dual"), v6_subnet()
    prefix = subnet.replace("::/64", "")
    networks.append(net)
    assert docker("network", "create", "--ipv6", "--subnet", subnet, net).returncode == 0
    server, client = unique("v6srv"), unique("v6cli")
    names += [server, client]
    assert (
        docker(
            "run", "-d", "--name", server, "--network", net, "busybox", "sh", "-c",
            "while true; do echo hello6 | nc -l -p 7000; done",
        ).returncode
        == 0
    )  # fmt: skip
    assert docker("run", "-d", "--name", client, "--network", net, "--ip6", f"{prefix}::77", "busybox",
                  "sleep", "300").returncode == 0  # fmt: skip
    ep = inspect(docker, server)["NetworkSettings"]["Networks"][net]
    assert ep["GlobalIPv6Address"] == f"{prefix}::2"
    assert ep["GlobalIPv6PrefixLen"] == 64
    assert ep["IPv6Gateway"] == f"{prefix}::1"
    top = inspect(docker, server)["NetworkSettings"]
    assert top["GlobalIPv6Address"] == ""  # the top level shows the default bridge's only
    cl = inspect(docker, client)["NetworkSettings"]["Networks"][net]
    assert cl["GlobalIPv6Address"] == f"{prefix}::77"
    assert cl["IPAMConfig"] == {"IPv6Address": f"{prefix}::77"}
    containers = inspect(docker, net)["Containers"]
    assert {c["IPv6Address"] for c in containers.values()} == {f"{prefix}::2/64", f"{prefix}::77/64"}

    addrs = docker("exec", client, "ip", "-6", "addr", "show", "dev", "eth0").stdout
    line = next(x for x in addrs.splitlines() if f"{prefix}::77/64" in x)
    assert "tentative" not in line  # no duplicate address detection to wait for
    routes = docker("exec", client, "ip", "-6", "route").stdout
    assert f"default via {prefix}::1" in routes
    ping = docker("exec", client, "ping", "-6", "-c", "1", "-W", "5", server)
    assert ping.returncode == 0, ping.stderr
    assert f"{prefix}::2" in ping.stdout
    lookup = docker("exec", client, "nslookup", "-type=AAAA", server, "127.0.0.11")
    assert f"{prefix}::2" in lookup.stdout
    reverse = docker("exec", client, "nslookup", f"{prefix}::2", "127.0.0.11")
    assert f"{server}.{net}" in reverse.stdout, reverse.output
    got = docker("exec", client, "sh", "-c", f"nc -w 5 {prefix}::2 7000 </dev/null")
    assert "hello6" in got.stdout, got.stderr
    hosts = docker("exec", client, "cat", "/etc/hosts").stdout
    assert f"{prefix}::77\t" in hosts

    # dockerd's refusals of an --ip6
    taken = docker("run", "--rm", "--network", net, "--ip6", f"{prefix}::77", "busybox", "true")
    assert taken.returncode != 0 and "Address already in use" in taken.stderr
    outside = docker("run", "--rm", "--network", net, "--ip6", "fd09::5", "busybox", "true")
    assert "It does not belong to any of this network's subnets" in outside.stderr


def test_ipv6_address_by_docker_py(docker_client, names, networks) -> None:
    api = docker_client.api
    net, subnet = unique("v6py"), v6_subnet()
    prefix = subnet.replace("::/64", "")
    api.create_network(
        net,
        enable_ipv6=True,
        ipam=docker_sdk.types.IPAMConfig(pool_configs=[docker_sdk.types.IPAMPool(subnet=subnet)]),
    )
    networks.append(net)
    container = api.create_container(
        "busybox",
        ["sleep", "300"],
        host_config=api.create_host_config(network_mode=net),
        networking_config=api.create_networking_config(
            {net: api.create_endpoint_config(ipv6_address=f"{prefix}::f00d")}
        ),
    )
    names.append(container["Id"])
    api.start(container)
    ep = api.inspect_container(container)["NetworkSettings"]["Networks"][net]
    assert ep["IPAMConfig"]["IPv6Address"] == f"{prefix}::f00d"
    assert ep["GlobalIPv6Address"] == f"{prefix}::f00d"
    api.disconnect_container_from_network(container, net)
    api.connect_container_to_network(container, net, ipv6_address=f"{prefix}::beef")
    ep = api.inspect_container(container)["NetworkSettings"]["Networks"][net]
    assert ep["GlobalIPv6Address"] == f"{prefix}::beef"


def test_v4_only_network_unchanged(docker, names, networks) -> None:
    net = unique("v4only")
    networks.append(net)
    assert docker("network", "create", net).returncode == 0
    shown = inspect(docker, net)
    assert shown["EnableIPv6"] is False and len(shown["IPAM"]["Config"]) == 1
    name = unique("v4c")
    names.append(name)
    assert docker("run", "-d", "--name", name, "--network", net, "busybox", "sleep", "300").returncode == 0
    ep = inspect(docker, name)["NetworkSettings"]["Networks"][net]
    assert (ep["GlobalIPv6Address"], ep["GlobalIPv6PrefixLen"], ep["IPv6Gateway"]) == ("", 0, "")
    out = docker("run", "--rm", "--network", net, "--ip6", "fd00::5", "busybox", "true")
    assert "user specified IP address is supported only when connecting to networks with user configured" in (
        out.stderr
    )


def _fetch6(address: str, port: int) -> bytes:
    import socket

    for _ in range(20):
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            try:
                sock.connect((address, port))
                data = sock.recv(100)
                if data:
                    return data
            except OSError:
                pass
        time.sleep(0.1)
    return b""


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


def test_published_ports_on_ipv6(docker, docker_client, names, networks) -> None:
    net, subnet = unique("v6pub"), v6_subnet()
    networks.append(net)
    assert docker("network", "create", "--ipv6", "--subnet", subnet, net).returncode == 0
    loop, every = unique("v6loop"), unique("v6every")
    names += [loop, every]
    serve = "while true; do echo hello6 | nc -l -p 80; done"
    p1 = _free_port()
    started = docker("run", "-d", "--name", loop, "--network", net, "-p", f"[::1]:{p1}:80", "busybox",
                     "sh", "-c", serve)  # fmt: skip
    assert started.returncode == 0
    assert b"hello6" in _fetch6("::1", p1)
    ports = inspect(docker, loop)["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "::1", "HostPort": str(p1)}]}
    taken = docker("run", "--rm", "--network", net, "-p", f"[::1]:{p1}:80", "busybox", "true")
    assert f"Bind for ::1:{p1} failed: port is already allocated" in taken.stderr

    p2 = _free_port()
    assert docker("run", "-d", "--name", every, "--network", net, "-p", f"{p2}:80", "busybox", "sh", "-c",
                  serve).returncode == 0  # fmt: skip
    ports = inspect(docker, every)["NetworkSettings"]["Ports"]
    assert ports == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(p2)}, {"HostIp": "::", "HostPort": str(p2)}]
    }
    assert b"hello6" in _fetch6("::1", p2)
    listed = docker_client.api.containers(filters={"name": every})[0]["Ports"]
    assert {(p["IP"], p["PublicPort"]) for p in listed} == {("0.0.0.0", p2), ("::", p2)}
    shown = docker("port", every).stdout
    assert f"0.0.0.0:{p2}" in shown and f"[::]:{p2}" in shown
    four = unique("v6four")
    names.append(four)
    p3 = _free_port()
    assert docker("run", "-d", "--name", four, "--network", net, "-p", f"0.0.0.0:{p3}:80", "busybox", "sh",
                  "-c", serve).returncode == 0  # fmt: skip
    ports = inspect(docker, four)["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(p3)}]}  # libnetwork: IPv4 only
    docker("rm", "-f", every, loop, four)
    rules = __import__("subprocess").run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    assert f"dport {p2} " not in rules and f"dport {p1} " not in rules


def test_ipv6_rules_go_with_the_network(docker, networks) -> None:
    import subprocess

    net, subnet = unique("v6gone"), v6_subnet()
    networks.append(net)
    assert docker("network", "create", "--ipv6", "--subnet", subnet, net).returncode == 0
    assert subnet in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    assert docker("network", "rm", net).returncode == 0
    assert subnet not in subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout


def test_default_bridge_fixed_cidr_v6(workdir, registry) -> None:
    """daemon.json's ipv6 and fixed-cidr-v6: the default bridge's EnableIPv6 and IPv6 pool, each container's
    address made of the prefix and its MAC (dockerd's on a /80 or larger)."""
    from harness import DaemonProcess, run_cli

    root = workdir / unique("v6default")
    root.mkdir(parents=True)
    prefix = v6_subnet().replace("::/64", "")
    pool = prefix.rsplit(":", 1)[0] + ":ff00::/56"  # an IPv6 default-address-pools entry
    config = {
        "ipv6": True,
        "fixed-cidr-v6": f"{prefix}::/64",
        "default-address-pools": [{"base": "10.197.0.0/16", "size": 24}, {"base": pool, "size": 64}],
    }
    (root / "daemon.json").write_text(json.dumps(config))
    proc = DaemonProcess(root, ["--registry-mirror", registry.url]).start()
    try:

        def cli(*args: str):
            return run_cli(["docker", "-H", proc.host, *args], timeout=120)

        net = json.loads(cli("network", "inspect", "bridge").stdout)[0]
        assert net["EnableIPv6"] is True
        assert net["IPAM"]["Config"][1] == {"Subnet": f"{prefix}::/64", "Gateway": f"{prefix}::1"}
        assert cli("run", "-d", "--name", "d6", "busybox", "sleep", "300").returncode == 0
        shown = json.loads(cli("inspect", "d6").stdout)[0]["NetworkSettings"]
        mac = shown["MacAddress"].split(":")
        expected = f"{prefix}::{mac[0]}{mac[1]}:{mac[2]}{mac[3]}:{mac[4]}{mac[5]}"
        import ipaddress

        assert shown["GlobalIPv6Address"] == str(ipaddress.IPv6Address(expected))
        assert shown["GlobalIPv6PrefixLen"] == 64 and shown["IPv6Gateway"] == f"{prefix}::1"
        assert shown["Networks"]["bridge"]["GlobalIPv6Address"] == shown["GlobalIPv6Address"]
        ping = cli("exec", "d6", "ping", "-6", "-c", "1", "-W", "5", f"{prefix}::1")
        assert ping.returncode == 0, ping.output
        assert cli("rm", "-f", "d6").returncode == 0
        # network create --ipv6 without a subnet: the IPv6 pools, then the next subnet
        made = [cli("network", "create", "--ipv6", f"pool{i}") for i in range(2)]
        assert all(m.returncode == 0 for m in made), [m.output for m in made]
        first, second = (json.loads(cli("network", "inspect", f"pool{i}").stdout)[0] for i in range(2))
        base = ipaddress.IPv6Network(pool)
        assert first["IPAM"]["Config"][0]["Subnet"].startswith("10.197.")
        assert first["IPAM"]["Config"][1] == {
            "Subnet": str(next(base.subnets(new_prefix=64))),
            "Gateway": str(next(base.subnets(new_prefix=64))[1]),
        }
        assert second["IPAM"]["Config"][1]["Subnet"] == str(list(base.subnets(new_prefix=64))[1])
        for i in range(2):
            cli("network", "rm", f"pool{i}")
    finally:
        proc.stop()
