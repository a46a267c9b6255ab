"""Our CLI's networking against a real dockyardd: `network` commands, `port`, ps's PORTS and the run flags,
each compared with what the official docker CLI prints for the same state. After each test its containers
are removed and no network is left but those that were there before."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from harness import unique


@pytest.fixture
def clean(docker) -> Iterator[None]:
    before = set(docker("network", "ls", "-q").stdout.split())
    yield
    for cid in docker("ps", "-aq").stdout.split():  # the tests' containers are removed here
        docker("rm", "-f", cid)
    for network in set(docker("network", "ls", "-q").stdout.split()) - before:
        docker("network", "rm", network)
    assert set(docker("network", "ls", "-q").stdout.split()) == before


def test_network_commands_print_as_docker(docker, dockyard, clean) -> None:
    name = unique("net")
    created = dockyard("network", "create", "--label", "purpose=test", name)
    assert created.returncode == 0, created.output
    assert re.fullmatch(r"[0-9a-f]{64}\n", created.stdout), created.stdout
    for flags in ([], ["-q"], ["--no-trunc"], ["--format", "json"], ["--filter", f"name={name}"]):
        ours, theirs = dockyard("network", "ls", *flags), docker("network", "ls", *flags)
        assert ours.returncode == theirs.returncode == 0, ours.output
        assert ours.stdout == theirs.stdout, flags
    listed = dockyard("network", "ls", "--format", "{{.Name}} {{.Labels}}").stdout.splitlines()
    assert f"{name} purpose=test" in listed
    ours = json.loads(dockyard("network", "inspect", name).stdout)
    assert ours == json.loads(docker("network", "inspect", name).stdout)
    assert ours[0]["Id"] == created.stdout.strip() and ours[0]["Labels"] == {"purpose": "test"}
    assert json.loads(dockyard("inspect", name).stdout) == ours  # generic inspect finds networks too
    fmt = dockyard("network", "inspect", "-f", "{{.Name}} {{.Driver}}", name)
    assert fmt.stdout == f"{name} bridge\n"
    missing = dockyard("network", "inspect", name, "nosuch-net")
    assert missing.returncode == 1 and json.loads(missing.stdout) == ours
    assert missing.stderr == docker("network", "inspect", "nosuch-net").stderr
    removed = dockyard("network", "rm", name, "nosuch-net")
    assert removed.returncode == 1 and removed.stdout == f"{name}\n"
    assert removed.stderr == "Error response from daemon: network nosuch-net not found\nexit status 1\n"
    assert name not in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert dockyard("network", "rm", "-f", "nosuch-net").returncode == 0


def test_published_ports_as_docker_shows_them(docker, dockyard, clean) -> None:
    name = unique("ports")
    flags = ["-p", "127.0.0.1::80", "-p", "81", "--expose", "100"]
    run = dockyard("run", "-d", "--name", name, *flags, "busybox", "sleep", "60")
    assert run.returncode == 0, run.output
    info = json.loads(docker("inspect", name).stdout)[0]
    assert info["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
        "81/tcp": [{"HostIp": "", "HostPort": ""}],
    }
    assert set(info["Config"]["ExposedPorts"]) == {"80/tcp", "81/tcp", "100/tcp"}
    ours, theirs = dockyard("port", name), docker("port", name)
    assert ours.returncode == theirs.returncode == 0 and ours.stdout == theirs.stdout, ours.output
    assert re.match(r"80/tcp -> 127\.0\.0\.1:\d+\n", ours.stdout), ours.stdout
    assert dockyard("container", "port", name, "80").stdout == docker("port", name, "80").stdout
    unpublished = dockyard("port", name, "100")
    assert unpublished.returncode == 1
    assert unpublished.stderr == f"Error: No public port '100' published for {name}\n"
    assert unpublished.stderr == docker("port", name, "100").stderr
    shown = dockyard("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout
    assert shown == docker("ps", "--filter", f"name={name}", "--format", "{{.Ports}}").stdout
    assert re.fullmatch(r"100/tcp, 127\.0\.0\.1:\d+->80/tcp, .*:\d+->81/tcp\n", shown), shown
    header, row = dockyard("ps", "--filter", f"name={name}").stdout.splitlines()
    assert header.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert f"   {shown.strip()}   {name}" in row, row


def test_bad_publish_fails_as_docker(docker, dockyard, clean) -> None:
    for spec, message in (("80/foo", "invalid proto: foo"), ("8888:", "no port specified: 8888:<empty>")):
        ours = dockyard("run", "--rm", "-p", spec, "busybox", "true")
        theirs = docker("run", "--rm", "-p", spec, "busybox", "true")
        assert ours.returncode == theirs.returncode == 125, ours.output
        assert message in ours.stderr and message in theirs.stderr
    assert docker("ps", "-aq").stdout == ""


def test_run_on_a_network_with_an_alias_then_connect_and_prune(docker, dockyard, clean) -> None:
    net, other, name = unique("net"), unique("net"), unique("c")
    assert dockyard("network", "create", net).returncode == 0
    assert dockyard("network", "create", other).returncode == 0
    run = dockyard(
        "run",
        "-d",
        "--name",
        name,
        "--network",
        net,
        "--network-alias",
        "web-alias",
        "busybox",
        "sleep",
        "60",
    )
    assert run.returncode == 0, run.output
    networks = json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]["Networks"]
    assert list(networks) == [net] and "web-alias" in (networks[net]["Aliases"] or [])
    connected = dockyard("network", "connect", "--alias", "second", other, name)
    assert connected.returncode == 0 and connected.output == "", connected.output
    networks = json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]["Networks"]
    assert set(networks) == {net, other} and "second" in (networks[other]["Aliases"] or [])
    in_use = dockyard("network", "rm", other)
    assert in_use.returncode == 1 and in_use.stderr.endswith("exit status 1\n"), in_use.output
    assert "has active endpoints" in in_use.stderr
    assert dockyard("network", "disconnect", other, name).returncode == 0
    networks = json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]["Networks"]
    assert list(networks) == [net]
    pruned = dockyard("network", "prune", "-f")
    assert pruned.returncode == 0 and pruned.stdout.startswith("Deleted Networks:\n"), pruned.output
    assert f"\n{other}\n" in pruned.stdout and net not in pruned.stdout.split()  # net is in use
    left = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert net in left and other not in left
