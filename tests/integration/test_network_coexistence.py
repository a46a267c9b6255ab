"""The network tests again, on a host whose iptables FORWARD policy is DROP with bridged frames going
through iptables (br_netfilter's bridge-nf-call-iptables), as Docker and ufw leave a host: once with the
iptables-nft backend's policy dropping, once with iptables-legacy's. The policy and the sysctl are put back
as they were after the module, whatever happens.

The session's daemon was started before the policy changed (as when Docker starts after Dockyard): its
next change of the network puts its accepts in place."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import unique, until
from test_networks import (  # noqa: F401  (collected again here, under the DROP policy)
    test_an_internal_network_has_no_way_out,
    test_network_connect_and_disconnect_a_running_container,
    test_random_ports_publish_all_and_udp,
    test_seed_scenario_serves_the_host_folder,
    test_the_python_sdk_runs_the_seed_scenario,
    test_user_networks_resolve_names_and_stay_apart,
)

pytestmark = pytest.mark.timeout(300)

BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done


def _policy(command: str) -> str:
    for line in _run(command, "-w", "-S", "FORWARD").stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    raise AssertionError(f"{command} printed no FORWARD policy")


@pytest.fixture(scope="module", autouse=True, params=["iptables-nft", "iptables-legacy"])
def forward_drop(request: pytest.FixtureRequest) -> Iterator[str]:
    command = request.param
    if shutil.which(command) is None:
        pytest.skip(f"{command} is not installed (Debian's iptables package)")
    had_nft_filter = _run("nft", "list", "table", "ip", "filter", check=False).returncode == 0
    old_policy = _policy(command)
    old_bridge_nf = BRIDGE_NF.read_text().strip() if BRIDGE_NF.exists() else None
    if old_bridge_nf is None:
        _run("modprobe", "br_netfilter", check=False)
    try:
        _run(command, "-w", "-P", "FORWARD", "DROP")
        if BRIDGE_NF.exists():
            BRIDGE_NF.write_text("1\n")
        yield command
    finally:
        _run(command, "-w", "-P", "FORWARD", old_policy, check=False)
        if old_bridge_nf is not None:
            BRIDGE_NF.write_text(old_bridge_nf + "\n")
        if command == "iptables-nft" and not had_nft_filter:
            _run("nft", "delete", "table", "ip", "filter", check=False)  # as we found the host: no table


def _ping(docker, source: str, target: str, timeout: float = 4) -> bool:
    done = docker("exec", source, "ping", "-c", "1", "-W", str(int(timeout)), target, timeout=30)
    return done.returncode == 0


def test_our_accepts_are_what_lets_containers_talk(docker, daemon, names, networks, forward_drop) -> None:
    """Without our chain's jump the host's DROP policy stops two containers on one network; the daemon's
    next change puts it back and they talk again."""
    net = unique("coexist-net")
    assert docker("network", "create", net).returncode == 0
    networks.append(net)
    first, second = unique("coexist-a"), unique("coexist-b")
    for name in (first, second):
        names.append(name)
        assert (
            docker("run", "-d", "--name", name, "--network", net, "busybox", "sleep", "300").returncode == 0
        )
    assert _ping(docker, first, second)
    chain = "DOCKYARD-" + daemon.bridge
    jumps = _run(forward_drop, "-w", "-S", "FORWARD").stdout
    assert f"-A FORWARD -j {chain}" in jumps, jumps
    assert _run(forward_drop, "-w", "-D", "FORWARD", "-j", chain, check=False).returncode == 0
    assert not _ping(docker, first, second, timeout=2)  # the host's policy drops it: the test can fail
    third = unique("coexist-c")
    names.append(third)
    assert docker("run", "-d", "--name", third, "--network", net, "busybox", "sleep", "300").returncode == 0
    until("the jump put back", lambda: _ping(docker, first, second), timeout=20)


def test_a_published_port_of_another_network_through_the_host(docker, names, networks) -> None:
    """As with dockerd: a container reaches a port published by another network's container through its
    own gateway (an address of the host); the two networks stay apart otherwise."""
    front, back = unique("coexist-front"), unique("coexist-back")
    for net in (front, back):
        assert docker("network", "create", net).returncode == 0
        networks.append(net)
    server, client = unique("coexist-srv"), unique("coexist-cli")
    names += [server, client]
    started = docker(
        "run", "-d", "--name", server, "--network", back, "-p", "80", "busybox",
        "sh", "-c", "while true; do echo served | nc -l -p 80; done",
    )  # fmt: skip
    assert started.returncode == 0, started.output
    port = docker("port", server, "80/tcp").stdout.split(":")[-1].strip()
    assert (
        docker("run", "-d", "--name", client, "--network", front, "busybox", "sleep", "300").returncode == 0
    )
    gateway = docker(
        "network", "inspect", front, "--format", "{{(index .IPAM.Config 0).Gateway}}"
    ).stdout.strip()
    server_ip = docker(
        "inspect", server, "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    ).stdout.strip()

    def fetched() -> bool:
        done = docker("exec", client, "sh", "-c", f"nc -w 3 {gateway} {port} </dev/null", timeout=30)
        return "served" in done.stdout

    until("the published port through the host", fetched, timeout=20)
    direct = docker("exec", client, "sh", "-c", f"nc -w 2 {server_ip} 80 </dev/null", timeout=30)
    assert "served" not in direct.stdout, (
        direct.output
    )  # the other network's container itself stays out of reach
