"""Legacy links through the official docker CLI and docker-py, as dockerd 20.10 makes them: on the default
bridge, the environment and /etc/hosts entries of `--link name:alias` and `--link name`, `HostConfig.Links`
in inspect, the link names in `ps`, the refusals (a missing child at create, a child that does not run or is
off the bridge at start, host and container modes), the parent's hosts file following its child's address,
`rm --link`; on a user network, a link is an alias only the linking container resolves, through the
embedded DNS, whenever its target is on the network."""

from __future__ import annotations

import json

import docker as docker_sdk
import pytest
from harness import unique, until

pytestmark = pytest.mark.timeout(300)


def inspect(docker, name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def run_d(docker, names: list[str], name: str, *args: str) -> None:
    names.append(name)
    result = docker("run", "-d", "--name", name, *args)
    assert result.returncode == 0, result.output


def test_links_on_the_default_bridge(docker, names) -> None:
    web, parent = unique("web"), unique("par")
    run_d(
        docker, names, web, "-e", "FOO=bar", "--expose", "80", "--expose", "81/udp", "busybox", "sleep", "300"
    )
    child = inspect(docker, web)
    ip, short = child["NetworkSettings"]["IPAddress"], child["Id"][:12]
    names.append(parent)
    ran = docker(
        "run",
        "--name",
        parent,
        "--link",
        f"{web}:db",
        "--link",
        web,
        "busybox",
        "sh",
        "-c",
        "env; cat /etc/hosts",
    )
    assert ran.returncode == 0, ran.output
    lines = ran.stdout.splitlines()
    for expected in [
        f"DB_PORT=tcp://{ip}:80",
        f"DB_PORT_80_TCP=tcp://{ip}:80",
        f"DB_PORT_80_TCP_ADDR={ip}",
        "DB_PORT_80_TCP_PORT=80",
        "DB_PORT_80_TCP_PROTO=tcp",
        f"DB_PORT_81_UDP=udp://{ip}:81",
        f"DB_NAME=/{parent}/db",
        "DB_ENV_FOO=bar",
        f"{web.upper().replace('-', '_')}_NAME=/{parent}/{web}",
        f"{ip}\tdb {short} {web}",  # the alias, the hostname, the name
        f"{ip}\t{web} {short}",  # alias == name: named once
    ]:
        assert expected in lines, (expected, ran.stdout)
    assert not any(line.startswith("DB_ENV_PATH=") or line.startswith("DB_ENV_HOME=") for line in lines)
    shown = inspect(docker, parent)
    assert sorted(shown["HostConfig"]["Links"]) == sorted([f"/{web}:/{parent}/db", f"/{web}:/{parent}/{web}"])
    listed = docker(
        "ps", "-a", "--no-trunc", "--filter", f"name={web}", "--format", "{{.Names}}"
    ).stdout.split()
    assert listed == [",".join(sorted([f"{parent}/db", f"{parent}/{web}", web]))], listed
    short_listed = docker("ps", "--filter", f"name={web}", "--format", "{{.Names}}").stdout.split()
    assert short_listed == [web]


def test_link_refusals(docker, names, networks) -> None:
    missing = docker("create", "--link", "nosuchchild:db", "busybox", "true")
    assert missing.returncode != 0
    assert (
        "Error response from daemon: could not get container for nosuchchild: No such container: nosuchchild"
        in (missing.stderr)
    ), missing.output
    assert "Unable to find image" not in missing.stderr
    hostc = unique("hostc")
    run_d(docker, names, hostc, "--network", "host", "busybox", "sleep", "300")
    to_host = docker("create", "--link", f"{hostc}:h", "busybox", "true")
    assert "conflicting options: host type networking can't be used with links" in to_host.stderr, (
        to_host.output
    )
    web = unique("web")
    run_d(docker, names, web, "busybox", "sleep", "300")
    in_host = docker("create", "--network", "host", "--link", f"{web}:w", "busybox", "true")
    assert "conflicting options: host type networking can't be used with links" in in_host.stderr
    in_container = docker("create", "--network", f"container:{web}", "--link", f"{web}:w", "busybox", "true")
    assert "conflicting options: container type network can't be used with links" in in_container.stderr

    # a child that stopped: the parent's start fails, the parent stays created
    stopped, parent = unique("stopped"), unique("par")
    names += [stopped, parent]
    assert docker("create", "--name", stopped, "busybox", "sleep", "300").returncode == 0
    assert (
        docker("create", "--name", parent, "--link", f"{stopped}:db", "busybox", "sleep", "300").returncode
        == 0
    )
    started = docker("start", parent)
    assert started.returncode != 0
    message = (
        f"Error response from daemon: Cannot link to a non running container: /{stopped} AS /{parent}/db"
    )
    assert message in started.stderr, started.output
    assert inspect(docker, parent)["State"]["Status"] == "created"
    # a child removed since: the link stays (inspect shows it) and the start still fails
    assert docker("rm", stopped).returncode == 0
    assert inspect(docker, parent)["HostConfig"]["Links"] == [f"/{stopped}:/{parent}/db"]
    assert message in docker("start", parent).stderr

    # a child on a user network only
    net, offbridge, parent2 = unique("net"), unique("off"), unique("par")
    networks.append(net)
    assert docker("network", "create", net).returncode == 0
    run_d(docker, names, offbridge, "--network", net, "busybox", "sleep", "300")
    names.append(parent2)
    off = docker("run", "--name", parent2, "--link", f"{offbridge}:o", "busybox", "true")
    assert f"Cannot link to /{offbridge}, as it does not belong to the default network" in off.stderr, (
        off.output
    )


def test_remove_link_and_parent_hosts_follow_the_child(docker, docker_client, names) -> None:
    web, parent, squatter = unique("web"), unique("par"), unique("squat")
    run_d(docker, names, web, "busybox", "sleep", "300")
    run_d(docker, names, parent, "--link", f"{web}:db", "--link", f"{web}:other", "busybox", "sleep", "300")

    def hosts() -> str:
        return docker("exec", parent, "cat", "/etc/hosts").stdout

    old_ip = inspect(docker, web)["NetworkSettings"]["IPAddress"]
    assert f"{old_ip}\tdb " in hosts()
    # the child comes back on another address: the running parent's entry follows it
    assert docker("stop", "-t", "0", web).returncode == 0
    for i in range(8):  # until one takes the child's old address (the lowest free one, unless others are)
        run_d(docker, names, f"{squatter}-{i}", "busybox", "sleep", "300")
        if inspect(docker, f"{squatter}-{i}")["NetworkSettings"]["IPAddress"] == old_ip:
            break
    assert docker("start", web).returncode == 0
    new_ip = inspect(docker, web)["NetworkSettings"]["IPAddress"]
    assert new_ip != old_ip
    until("the parent's hosts to follow", lambda: f"{new_ip}\tdb " in hosts())
    assert f"{new_ip}\tother " in hosts()
    # exec gets the link variables too
    env = docker("exec", parent, "env").stdout.splitlines()
    assert f"DB_NAME=/{parent}/db" in env and f"OTHER_NAME=/{parent}/other" in env

    removed = docker("rm", "--link", f"{parent}/db")
    assert removed.returncode == 0 and removed.stdout == f"{parent}/db\n", removed.output
    assert inspect(docker, parent)["HostConfig"]["Links"] == [f"/{web}:/{parent}/other"]
    assert "\tdb " not in hosts() and "\tother " in hosts()
    assert inspect(docker, web)["State"]["Running"]  # both containers stay
    docker_client.api.remove_container(f"{parent}/other", link=True)
    assert inspect(docker, parent)["HostConfig"]["Links"] is None

    default = docker("rm", "--link", web)
    assert "Error response from daemon: Conflict, cannot remove the default link name of the container" in (
        default.stderr
    ), default.output
    gone = docker("rm", "--link", f"{parent}/nosuchalias")
    assert f"Error response from daemon: No such container: {parent}/nosuchalias" in gone.stderr, gone.output
    with pytest.raises(docker_sdk.errors.NotFound):
        docker_client.api.remove_container("nosuchparent/x", link=True)


def test_a_renamed_parent_keeps_its_links(docker, names) -> None:
    web, parent, renamed = unique("web"), unique("par"), unique("ren")
    run_d(docker, names, web, "busybox", "sleep", "300")
    names += [parent, renamed]
    assert docker("create", "--name", parent, "--link", f"{web}:db", "busybox", "env").returncode == 0
    assert docker("rename", parent, renamed).returncode == 0
    assert inspect(docker, renamed)["HostConfig"]["Links"] == [f"/{web}:/{renamed}/db"]
    assert docker("start", renamed).returncode == 0
    until("the renamed parent to exit", lambda: not inspect(docker, renamed)["State"]["Running"])
    assert f"DB_NAME=/{renamed}/db" in docker("logs", renamed).stdout.splitlines()


def test_links_on_a_user_network_are_aliases(docker, docker_client, names, networks) -> None:
    net = unique("lnet")
    networks.append(net)
    assert docker("network", "create", net).returncode == 0
    upstream, linker, other = unique("up"), unique("lk"), unique("other")
    # the CLI puts the links in the endpoint; dockerd keeps none in HostConfig for a user network
    run_d(docker, names, linker, "--network", net, "--link", f"{upstream}:bar", "busybox", "sleep", "300")
    shown = inspect(docker, linker)
    assert shown["HostConfig"]["Links"] is None
    assert shown["NetworkSettings"]["Networks"][net]["Links"] == [f"{upstream}:bar"]
    # no error for a target that is not on the network: the alias does not resolve until it is
    assert docker("exec", linker, "nslookup", "bar").returncode != 0
    run_d(docker, names, upstream, "--network", net, "busybox", "sleep", "300")
    up_ip = inspect(docker, upstream)["NetworkSettings"]["Networks"][net]["IPAddress"]
    found = until("bar to resolve", lambda: docker("exec", linker, "nslookup", "bar"))
    assert found.returncode == 0 and up_ip in found.stdout, found.output
    # only the linking container has the alias
    run_d(docker, names, other, "--network", net, "busybox", "sleep", "300")
    assert docker("exec", other, "nslookup", "bar").returncode != 0

    # docker-py: links at create and at connect (the target may come later)
    api = docker_client.api
    made = api.create_container(
        "busybox",
        "sleep 300",
        name=unique("pylink"),
        host_config=api.create_host_config(network_mode=net),
        networking_config=api.create_networking_config(
            {net: api.create_endpoint_config(links=[(upstream, "baz")])}
        ),
    )
    names.append(made["Id"])
    api.start(made)
    assert api.inspect_container(made)["NetworkSettings"]["Networks"][net]["Links"] == [f"{upstream}:baz"]
    assert docker("exec", made["Id"], "nslookup", "baz").returncode == 0
    api.disconnect_container_from_network(made, net)
    api.connect_container_to_network(made, net, links=[(other, "qux")])
    assert api.inspect_container(made)["NetworkSettings"]["Networks"][net]["Links"] == [f"{other}:qux"]
    resolved = docker("exec", made["Id"], "nslookup", "qux")
    assert resolved.returncode == 0, resolved.output
    assert docker("exec", made["Id"], "nslookup", "baz").returncode != 0  # the connect's links replace them
