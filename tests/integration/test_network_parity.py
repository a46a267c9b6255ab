"""Where dockyardd answered differently from dockerd 20.10 on networks and ports (found side by side with a
real dockerd), through the official docker CLI and docker-py: a missing network fails the start, not the
create; IPAM errors and inspect's IPAM; connect and disconnect of stopped and host-mode containers; network
events at a container's start and exit; prune; /etc/hosts and resolv.conf per network kind; ps's port
filters; `--ip` on the default bridge."""

from __future__ import annotations

import json
import time

import docker as docker_sdk
import pytest
from harness import unique

pytestmark = pytest.mark.timeout(300)


def inspect(docker, name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def test_a_missing_network_fails_the_start_not_the_create(docker, names) -> None:
    # a 404 at create made the docker CLI take the image for missing: "Unable to find image", a pull
    name = unique("nonet")
    names.append(name)
    created = docker("create", "--name", name, "--network", "nosuchnet", "busybox", "true")
    assert created.returncode == 0, created.output
    started = docker("start", name)
    assert started.returncode == 1
    assert "Error response from daemon: network nosuchnet not found" in started.stderr, started.output
    state = inspect(docker, name)
    assert state["State"]["Status"] == "created"
    shown = state["NetworkSettings"]["Networks"]["nosuchnet"]
    assert shown["NetworkID"] == "" and shown["IPAddress"] == ""
    run = docker("run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert run.returncode == 125 and "Unable to find image" not in run.stderr, run.output
    assert "network nosuchnet not found" in run.stderr


def test_network_create_ipam_errors_and_inspect(docker, docker_client, networks) -> None:
    sub, gw, in_use = ["--subnet", "10.231.61.0/24"], "failed to allocate gateway", "Address already in use"
    cases = [
        ([*sub, "--gateway", "10.231.61.255"], f"{gw} (10.231.61.255): {in_use}"),
        ([*sub, "--gateway", "10.231.61.0"], f"{gw} (10.231.61.0): {in_use}"),
        ([*sub, "--subnet", "10.231.62.0/24"], "bridge driver doesn't support multiple subnets"),
        (
            ["--subnet", "10.231.61.0/33"],
            "Invalid subnet 10.231.61.0/33 : invalid CIDR address: 10.231.61.0/33",
        ),
    ]
    for flags, message in cases:
        result = docker("network", "create", *flags, unique("bad"))
        assert result.returncode == 1 and f"Error response from daemon: {message}\n" in result.stderr, (
            flags,
            result.output,
        )
    ipam = {"Driver": "default", "Config": [{"Subnet": "10.231.61.0/24", "Gateway": "10.231.62.1"}]}
    with pytest.raises(docker_sdk.errors.APIError) as raised:
        docker_client.api.create_network(unique("bad"), ipam=ipam)
    assert raised.value.status_code == 500
    assert "failed to allocate gateway (10.231.62.1): Requested address is out of range" in str(raised.value)

    net = unique("ipam")
    networks.append(net)
    assert docker("network", "create", "--subnet", "10.231.61.0/24", net).returncode == 0
    shown = inspect(docker, net)["IPAM"]
    # dockerd shows what was given (no gateway) and {} options on a user network
    assert shown == {"Driver": "default", "Options": {}, "Config": [{"Subnet": "10.231.61.0/24"}]}, shown
    both = unique("ipam")
    networks.append(both)
    flags = ["--subnet", "10.231.63.0/24", "--ip-range", "10.231.63.128/25", "--gateway", "10.231.63.254"]
    assert docker("network", "create", *flags, both).returncode == 0
    config = inspect(docker, both)["IPAM"]["Config"]
    assert list(config[0].items()) == [
        ("Subnet", "10.231.63.0/24"),
        ("IPRange", "10.231.63.128/25"),
        ("Gateway", "10.231.63.254"),
    ]
    bridge = json.loads(docker("network", "inspect", "bridge").stdout)[0]["IPAM"]
    assert bridge["Options"] is None and bridge["Config"][0]["Gateway"]


def test_connect_and_disconnect_as_dockerd(docker, names, networks) -> None:
    net = unique("conn")
    networks.append(net)
    assert docker("network", "create", "--subnet", "10.231.64.0/24", net).returncode == 0
    stopped = unique("stopped")
    names.append(stopped)
    assert docker("create", "--name", stopped, "busybox", "sleep", "300").returncode == 0
    short = inspect(docker, stopped)["Id"][:12]
    # connecting a stopped container twice: dockerd keeps its settings and says nothing
    for _ in range(2):
        again = docker("network", "connect", "--alias", "al", net, stopped)
        assert again.returncode == 0 and again.output == "", again.output
    shown = inspect(docker, stopped)["NetworkSettings"]["Networks"]
    assert shown[net]["Aliases"] == ["al", short] and shown[net]["NetworkID"] == "", shown
    assert shown["bridge"]["NetworkID"] == ""  # never ran: no network ID yet
    other = unique("other")
    networks.append(other)
    assert docker("network", "create", other).returncode == 0
    missing = docker("network", "disconnect", other, stopped)
    assert f"is not connected to the network {other}\n" in missing.stderr, missing.output

    running = unique("running")
    names.append(running)
    assert docker("run", "-d", "--name", running, "busybox", "sleep", "300").returncode == 0
    taken = docker("network", "connect", "--ip", "10.231.64.0", net, running)
    assert taken.returncode == 1 and "Error response from daemon: Address already in use\n" in taken.stderr
    outside = docker("network", "connect", "--ip", "10.9.9.9", net, running)
    assert (
        "Invalid address 10.9.9.9: It does not belong to any of this network's subnets" in outside.stderr
    ), outside.output
    missing = docker("network", "disconnect", other, running)
    assert f"is not connected to network {other}\n" in missing.stderr, missing.output

    host = unique("host")
    names.append(host)
    assert docker("run", "-d", "--name", host, "--network", "host", "busybox", "sleep", "300").returncode == 0
    refused = docker("network", "connect", net, host)
    assert (
        "container sharing network namespace with another container or host cannot be connected to any "
        "other network" in refused.stderr
    ), refused.output

    bare_ip = docker("run", "--rm", "--ip", "10.231.64.9", "busybox", "true")
    assert bare_ip.returncode == 125
    assert "user specified IP address is supported on user defined networks only" in bare_ip.stderr


def test_network_events_at_start_and_exit_and_prune(docker, names, networks) -> None:
    net, spare = unique("ev"), unique("spare")
    networks += [net, spare]
    assert docker("network", "create", net).returncode == 0
    since = str(time.time() - 1)
    name = unique("ev")
    names.append(name)
    assert docker("run", "--name", name, "--network", net, "busybox", "true").returncode == 0
    assert docker("network", "create", spare).returncode == 0
    # a network only a stopped container is on has no endpoint: dockerd's prune takes it
    pruned = docker("network", "prune", "-f")
    assert pruned.returncode == 0 and net in pruned.stdout.split() and spare in pruned.stdout.split()
    fmt = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}"
    events = docker("events", "--since", since, "--until", str(time.time() + 1), "--format", fmt)
    assert events.returncode == 0, events.output
    cid = inspect(docker, name)["Id"]
    mine = [line for line in events.stdout.splitlines() if net in line or cid in line or "prune" in line]
    assert f"network connect {net} {cid}" in mine and f"network disconnect {net} {cid}" in mine, mine
    order = [line.split()[1] for line in events.stdout.splitlines() if cid in line or name in line]
    assert order.index("connect") < order.index("start") < order.index("die") < order.index("disconnect")
    assert any(line.startswith("network prune") for line in mine), mine


def test_etc_files_on_each_kind_of_network(docker, names, networks) -> None:
    with open("/etc/hosts") as f:
        host_hosts = f.read()
    host = docker("run", "--rm", "--network", "host", "busybox", "cat", "/etc/hosts")
    assert host.returncode == 0 and host.stdout == host_hosts, host.output
    none = docker("run", "--rm", "--network", "none", "-h", "lonely", "busybox", "cat", "/etc/hosts")
    assert none.returncode == 0 and "lonely" not in none.stdout and "localhost" in none.stdout, none.output

    net = unique("etc")
    networks.append(net)
    assert docker("network", "create", net).returncode == 0
    resolv = docker("run", "--rm", "--network", net, "busybox", "cat", "/etc/resolv.conf")
    assert resolv.returncode == 0 and "options ndots:0" in resolv.stdout.splitlines(), resolv.output
    default = docker("run", "--rm", "busybox", "cat", "/etc/resolv.conf")
    assert "ndots:0" not in default.stdout, default.output

    donor = unique("donor")
    names.append(donor)
    assert docker("run", "-d", "--name", donor, "busybox", "sleep", "300").returncode == 0
    settings = inspect(docker, donor)
    shared = docker("run", "--rm", "--network", f"container:{donor}", "busybox", "cat", "/etc/hosts")
    line = f"{settings['NetworkSettings']['IPAddress']}\t{settings['Config']['Hostname']}"
    assert shared.returncode == 0 and line in shared.stdout.splitlines(), shared.output


def test_ps_port_filters_refuse_what_dockerd_refuses(docker) -> None:
    lookup = "error while looking up for"
    cases = {
        "publish=8080:80": "filter for 'publish' should not contain ':': 8080:80",
        "expose=x": f'{lookup} expose x: strconv.ParseUint: parsing "x": invalid syntax',
        "expose=90-80": f"{lookup} expose 90-80: Invalid range specified for the Port: 90-80",
        "publish=70000/udp": f'{lookup} publish 70000/udp: strconv.ParseUint: parsing "70000": value out of '
        "range",
    }
    for flag, message in cases.items():
        result = docker("ps", "--filter", flag)
        assert result.returncode == 1 and f"Error response from daemon: {message}\n" in result.stderr, (
            flag,
            result.output,
        )
    assert docker("ps", "--filter", "expose=80-90/tcp").returncode == 0


def test_random_host_ports_count_up_from_the_ephemeral_range(docker, names) -> None:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low, high = (int(n) for n in f.read().split())
    ports = []
    for _ in range(2):
        name = unique("dyn")
        names.append(name)
        assert docker("run", "-d", "--name", name, "-p", "80", "busybox", "sleep", "300").returncode == 0
        ports.append(int(inspect(docker, name)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]))
    # as dockerd's allocator: the next after the last handed out, not the kernel's random pick
    assert all(low <= p <= high for p in ports) and ports[0] < ports[1] <= ports[0] + 50, ports
