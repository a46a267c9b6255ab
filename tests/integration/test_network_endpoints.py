"""Every endpoint option and `network create` check, through the official docker CLI and docker-py, as dockerd
20.10 answers: generated MACs (02:42 and the IPv4 address) and `Config.MacAddress`, `--link-local-ip`,
`NetworkingConfig.EndpointsConfig` at create (aliases, IPv4Address, DriverOpts, links, one network at most,
one that is not the NetworkMode), the checks of the default bridge at start; and network create's labels of
the wrong type, the host driver, predefined names, CheckDuplicate, names with spaces, --internal, -o options
and auxiliary addresses."""

from __future__ import annotations

import json

import docker as docker_sdk
import pytest
from harness import unique

pytestmark = pytest.mark.timeout(300)


def inspect(docker, name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def mac_of(address: str) -> str:
    return "02:42:" + ":".join(f"{int(b):02x}" for b in address.split("."))


def test_macs_generated_and_given(docker, docker_client, names, networks) -> None:
    net = unique("macnet")
    networks.append(net)
    assert docker("network", "create", net).returncode == 0
    plain = unique("plain")
    names.append(plain)
    assert docker("run", "-d", "--name", plain, "busybox", "sleep", "300").returncode == 0
    assert docker("network", "connect", net, plain).returncode == 0
    shown = inspect(docker, plain)["NetworkSettings"]
    for name, ep in shown["Networks"].items():
        assert ep["MacAddress"] == mac_of(ep["IPAddress"]), name
        inside = docker("exec", plain, "cat", f"/sys/class/net/eth{0 if name == 'bridge' else 1}/address")
        assert inside.stdout.strip() == ep["MacAddress"]
    assert shown["MacAddress"] == shown["Networks"]["bridge"]["MacAddress"]

    api = docker_client.api
    given = api.create_container("busybox", ["sleep", "300"], mac_address="02:42:ac:11:00:0a")
    names.append(given["Id"])
    api.start(given)
    data = api.inspect_container(given)
    assert data["Config"]["MacAddress"] == "02:42:ac:11:00:0a"
    assert data["NetworkSettings"]["MacAddress"] == "02:42:ac:11:00:0a"
    assert (
        docker("exec", given["Id"], "cat", "/sys/class/net/eth0/address").stdout.strip()
        == "02:42:ac:11:00:0a"
    )

    # an endpoint's own MacAddress shows until the first start, which gives it one of its own (20.10)
    later = api.create_container("busybox", ["sleep", "300"])
    names.append(later["Id"])
    api.connect_container_to_network(later, net, mac_address="02:42:ac:11:00:02")
    assert (
        api.inspect_container(later)["NetworkSettings"]["Networks"][net]["MacAddress"] == "02:42:ac:11:00:02"
    )
    api.start(later)
    ep = api.inspect_container(later)["NetworkSettings"]["Networks"][net]
    assert ep["MacAddress"] == mac_of(ep["IPAddress"])

    bad = api.create_container("busybox", "true", mac_address="zz")
    names.append(bad["Id"])
    with pytest.raises(docker_sdk.errors.APIError) as raised:
        api.start(bad)
    assert raised.value.status_code == 500 and "address zz: invalid MAC address" in str(raised.value)
    with pytest.raises(docker_sdk.errors.APIError) as raised:
        api.create_container(
            "busybox",
            "true",
            mac_address="02:42:ac:11:00:0a",
            host_config=api.create_host_config(network_mode="host"),
        )
    assert raised.value.status_code == 400
    assert "conflicting options: mac-address and the network mode" in str(raised.value)


def test_link_local_ips_and_driver_opts(docker, docker_client, names) -> None:
    api = docker_client.api
    made = api.create_container(
        "busybox",
        "sleep 300",
        host_config=api.create_host_config(network_mode="bridge"),
        networking_config=api.create_networking_config(
            {"bridge": api.create_endpoint_config(link_local_ips=["169.254.8.8"], driver_opt={"k": "v"})}
        ),
    )
    names.append(made["Id"])
    api.start(made)
    ep = api.inspect_container(made)["NetworkSettings"]["Networks"]["bridge"]
    assert ep["IPAMConfig"] == {"LinkLocalIPs": ["169.254.8.8"]} and ep["DriverOpts"] == {"k": "v"}
    assert "inet 169.254.8.8/16" in docker("exec", made["Id"], "ip", "addr", "show", "eth0").stdout
    name = unique("ll")
    names.append(name)
    cli = docker("run", "-d", "--name", name, "--link-local-ip", "169.254.9.9", "busybox", "sleep", "300")
    assert cli.returncode == 0, cli.output
    assert inspect(docker, name)["NetworkSettings"]["Networks"]["bridge"]["IPAMConfig"]["LinkLocalIPs"] == [
        "169.254.9.9"
    ]
    wrong = unique("ll")
    names.append(wrong)
    refused = docker("run", "--name", wrong, "--link-local-ip", "10.1.1.1", "busybox", "true")
    assert "invalid link local IP address: 10.1.1.1" in refused.stderr, refused.output


def test_endpoints_config_at_create(docker, docker_client, names, networks) -> None:
    api = docker_client.api
    net, other = unique("epnet"), unique("epother")
    networks += [net, other]
    api.create_network(
        net,
        ipam=docker_sdk.types.IPAMConfig(pool_configs=[docker_sdk.types.IPAMPool(subnet="10.231.71.0/24")]),
    )
    api.create_network(other)
    made = api.create_container(
        "busybox",
        "sleep 300",
        host_config=api.create_host_config(network_mode=net),
        networking_config=api.create_networking_config(
            {
                net: api.create_endpoint_config(
                    aliases=["a1"], ipv4_address="10.231.71.23", links=[("x", "y")], driver_opt={"o": "1"}
                )
            }
        ),
    )
    names.append(made["Id"])
    before = api.inspect_container(made)["NetworkSettings"]["Networks"][net]
    assert before["Aliases"] == ["a1"] and before["Links"] == ["x:y"] and before["DriverOpts"] == {"o": "1"}
    api.start(made)
    after = api.inspect_container(made)["NetworkSettings"]["Networks"][net]
    assert after["IPAddress"] == "10.231.71.23" and after["IPAMConfig"] == {"IPv4Address": "10.231.71.23"}
    assert after["Aliases"] == ["a1", made["Id"][:12]]

    # API 1.41: one endpoint at most
    with pytest.raises(docker_sdk.errors.APIError) as raised:
        api.create_container("busybox", "true", networking_config={"EndpointsConfig": {net: {}, other: {}}})
    assert raised.value.status_code == 400
    assert f"Container cannot be connected to network endpoints: {net}, {other}" in str(raised.value)
    with pytest.raises(docker_sdk.errors.APIError) as raised:
        api.create_container(
            "busybox",
            "true",
            networking_config={"EndpointsConfig": {net: {"IPAMConfig": {"IPv4Address": "x"}}}},
        )
    assert raised.value.status_code == 400 and "invalid IPv4 address: x" in str(raised.value)

    # one endpoint naming another network than NetworkMode: dockerd puts the container on that one
    undeclared = api.create_container(
        "busybox",
        "sleep 300",
        host_config=api.create_host_config(network_mode=net),
        networking_config={"EndpointsConfig": {other: {"Aliases": ["o1"]}}},
    )
    names.append(undeclared["Id"])
    api.start(undeclared)
    data = api.inspect_container(undeclared)
    assert list(data["NetworkSettings"]["Networks"]) == [other] and data["HostConfig"]["NetworkMode"] == net
    missing = api.create_container(
        "busybox",
        "true",
        host_config=api.create_host_config(network_mode=net),
        networking_config={"EndpointsConfig": {"nosuchnet": {}}},
    )
    names.append(missing["Id"])
    with pytest.raises(docker_sdk.errors.NotFound, match="network nosuchnet not found"):
        api.start(missing)


def test_default_bridge_refusals_come_at_start(docker, names) -> None:
    for flags, message in [
        (["--network-alias", "x"], None),  # the CLI refuses it itself
        (["--ip", "172.17.0.99"], "user specified IP address is supported on user defined networks only"),
    ]:
        name = unique("br")
        names.append(name)
        created = docker("create", "--name", name, *flags, "busybox", "true")
        if message is None:
            assert created.returncode != 0
            continue
        assert created.returncode == 0, created.output  # dockerd checks at start, as its updateNetworkConfig
        started = docker("start", name)
        assert started.returncode != 0 and message in started.stderr, started.output


def test_network_create_checks(docker, docker_client, networks) -> None:
    api = docker_client.api

    def create(body: dict) -> tuple[int, dict]:
        response = api._post_json(api._url("/networks/create"), data=body)
        return response.status_code, response.json()

    status, answer = create({"Name": unique("l"), "Labels": ["a=b"]})
    assert (status, answer["message"]) == (
        400,
        "json: cannot unmarshal array into Go struct field NetworkCreateRequest.Labels of type "
        "map[string]string",
    )
    with pytest.raises(TypeError):
        api.create_network(unique("l"), labels=["a=b"])  # docker-py refuses it itself
    status, answer = create({"Name": unique("h"), "Driver": "host"})
    assert (status, answer["message"]) == (403, 'only one instance of "host" network is allowed')
    for name in ("bridge", "host", "none", "default"):
        refused = docker("network", "create", name)
        assert f"operation is not permitted on predefined {name} network" in refused.stderr, refused.output

    dup = unique("dup")
    networks.append(dup)
    first = api.create_network(dup)["Id"]
    with pytest.raises(docker_sdk.errors.APIError) as raised:
        api.create_network(dup, check_duplicate=True)
    assert raised.value.status_code == 409 and f"network with name {dup} already exists" in str(raised.value)
    assert (
        f"network with name {dup} already exists" in docker("network", "create", dup).stderr
    )  # the CLI checks
    second = api.create_network(dup)  # without CheckDuplicate dockerd makes it anyway, with a warning
    assert second["Warning"] == f"Network with name {dup} (id : {first}) already exists"
    ambiguous = docker("network", "inspect", dup)
    assert f"network {dup} is ambiguous (2 matches found based on name)" in ambiguous.stderr, ambiguous.output
    api.remove_network(second["Id"])

    spaced = f"test {unique('sp')}"
    networks.append(spaced)
    assert docker("network", "create", spaced).returncode == 0
    assert inspect(docker, spaced)["Name"] == spaced
    assert docker("network", "rm", spaced).returncode == 0
    blank = create({"Name": "  "})
    assert blank == (400, {"message": "invalid name:   "})

    opts = unique("opts")
    networks.append(opts)
    made = docker(
        "network",
        "create",
        "--internal",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "-o",
        "my.opt=1",
        "--subnet",
        "10.231.72.0/24",
        "--aux-address",
        "a=10.231.72.2",
        opts,
    )
    assert made.returncode == 0, made.output
    shown = inspect(docker, opts)
    assert shown["Internal"] is True
    assert shown["Options"] == {"com.docker.network.bridge.enable_icc": "false", "my.opt": "1"}
    assert shown["IPAM"]["Config"] == [
        {"Subnet": "10.231.72.0/24", "AuxiliaryAddresses": {"a": "10.231.72.2"}}
    ]
    bad = docker(
        "network", "create", "-o", "com.docker.network.bridge.enable_ip_masquerade=maybe", unique("b")
    )
    assert (
        "failed to parse com.docker.network.bridge.enable_ip_masquerade value: maybe "
        '(strconv.ParseBool: parsing "maybe": invalid syntax)' in bad.stderr
    ), bad.output
    pool = {"Subnet": "10.231.73.0/24", "AuxiliaryAddresses": {"a": "10.231.76.9"}}
    status, answer = create({"Name": unique("b"), "IPAM": {"Config": [pool]}})
    assert (status, answer["message"]) == (
        403,
        "auxiliary address: (a:10.231.76.9) must belong to the master pool: 10.231.73.0/24",
    )
    # the IPAM options as given: null when docker-py sends none
    pool = docker_sdk.types.IPAMPool(subnet="10.231.74.0/24", aux_addresses={"x": "10.231.74.5"})
    ipam_net = api.create_network(unique("ipam"), ipam=docker_sdk.types.IPAMConfig(pool_configs=[pool]))["Id"]
    networks.append(ipam_net)
    ipam = api.inspect_network(ipam_net)["IPAM"]
    assert ipam["Options"] is None and ipam["Config"][0]["AuxiliaryAddresses"] == {"x": "10.231.74.5"}


def test_aux_addresses_are_not_handed_out(docker, names, networks) -> None:
    net = unique("aux")
    networks.append(net)
    flags = ["--subnet", "10.231.75.0/29", "--aux-address", "r=10.231.75.2", "--aux-address", "s=10.231.75.3"]
    assert docker("network", "create", *flags, net).returncode == 0
    name = unique("aux")
    names.append(name)
    assert docker("run", "-d", "--name", name, "--network", net, "busybox", "sleep", "300").returncode == 0
    assert inspect(docker, name)["NetworkSettings"]["Networks"][net]["IPAddress"] == "10.231.75.4"
