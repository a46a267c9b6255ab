"""Networks and published ports through the official docker CLI and docker-py: the seed's httpd scenario on
127.0.0.1 and the host's other address, ports in use, random ports, user networks with DNS and isolation,
`--network none|host|container:`, and what a failed start leaves (nothing)."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from harness import DOCKYARD, DaemonProcess, Result, run_cli, unique, until

TIMEOUT = 60.0

pytestmark = pytest.mark.timeout(300)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def fetch(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback test server)
        return response.read().decode()


def fetch_when_up(url: str) -> str:
    """The page once the server in the container listens (it starts a moment after `run -d` returns)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return fetch(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def host_address() -> str | None:
    """One of the host's own non-loopback IPv4 addresses (the route to a public address says which)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))  # no packet is sent: connect only picks a route
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def host_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def bridge_ports(daemon: DaemonProcess) -> set[str]:
    """The veths plugged into the daemon's default bridge (other daemons' come and go on their own)."""
    return set(os.listdir(f"/sys/class/net/{daemon.bridge}/brif"))


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def nat_rules(daemon: DaemonProcess) -> str:
    from dockyard.linux.nftables import Nftables
    from dockyard.network import firewall

    return Nftables().run(f"list chain ip {firewall.table_name(daemon.bridge)} ports\n")


def sandboxes(daemon: DaemonProcess) -> list[str]:
    return sorted(os.listdir(daemon.data_root / "network" / "sandboxes"))


def netns_files(daemon: DaemonProcess) -> list[str]:
    path = daemon.exec_root / "netns"
    return sorted(os.listdir(path)) if path.exists() else []


def test_seed_scenario_serves_the_host_folder(docker, names, tmp_path: Path) -> None:
    """`run -d --name web -p PORT:80 -v site:/usr/local/apache2/htdocs httpd`: the host folder's page on
    127.0.0.1 and on the host's other address; an edit on the host is served at once; the container's
    writes land in the folder."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<h1>first</h1>\n")
    port = free_port()
    name = unique("web")
    names.append(name)
    run = docker(
        "run", "-d", "--name", name, "-p", f"{port}:80", "-v", f"{site}:/usr/local/apache2/htdocs", "httpd"
    )
    assert run.returncode == 0, run.output
    assert fetch_when_up(f"http://127.0.0.1:{port}/") == "<h1>first</h1>\n"
    other = host_address()
    if other:
        assert fetch(f"http://{other}:{port}/") == "<h1>first</h1>\n"
    (site / "index.html").write_text("<h1>edited</h1>\n")
    assert fetch(f"http://127.0.0.1:{port}/") == "<h1>edited</h1>\n"
    wrote = docker("exec", name, "sh", "-c", "echo from-container > /usr/local/apache2/htdocs/made.txt")
    assert wrote.returncode == 0, wrote.output
    assert (site / "made.txt").read_text() == "from-container\n"
    assert fetch(f"http://127.0.0.1:{port}/made.txt") == "from-container\n"

    assert docker("port", name).stdout.strip() == f"80/tcp -> 0.0.0.0:{port}"
    ps = docker("ps", "--filter", f"name={name}", "--format", "{{.Ports}}")
    assert ps.stdout.strip() == f"0.0.0.0:{port}->80/tcp"
    settings = json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert settings["IPAddress"] and settings["Networks"]["bridge"]["IPAddress"] == settings["IPAddress"]

    assert docker("stop", "-t", "1", name).returncode == 0
    until("the host port to be freed at stop", lambda: port_free(port), TIMEOUT)
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{port}/", timeout=2)
    assert json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]["Ports"] == {}


def test_a_host_port_in_use_fails_the_start_and_leaves_nothing(docker, daemon, names) -> None:
    links_before, boxes_before, netns_before = bridge_ports(daemon), sandboxes(daemon), netns_files(daemon)
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        name = unique("taken")
        names.append(name)
        run = docker("run", "-d", "--name", name, "-p", f"{port}:80", "httpd")
        assert run.returncode == 125, run.output
        errors = [line for line in run.stderr.splitlines() if line.startswith("docker: Error response")]
        assert len(errors) == 1, run.stderr
        assert (
            f"driver failed programming external connectivity on endpoint {name} (" in errors[0]
            and f"Error starting userland proxy: listen tcp4 0.0.0.0:{port}: bind: address already in use"
            in errors[0]
        ), errors[0]
    state = json.loads(docker("inspect", name).stdout)[0]["State"]
    assert state["Status"] == "created" and not state["Running"], state
    assert bridge_ports(daemon) <= links_before
    assert sandboxes(daemon) == boxes_before and netns_files(daemon) == netns_before
    assert f"dport {port}" not in nat_rules(daemon)


def test_a_port_another_container_holds_is_already_allocated(docker, names) -> None:
    port = free_port()
    first, second = unique("holder"), unique("second")
    names += [first, second]
    assert docker("run", "-d", "--name", first, "-p", f"{port}:80", "httpd").returncode == 0
    run = docker("run", "-d", "--name", second, "-p", f"127.0.0.1:{port}:80", "httpd")
    assert run.returncode == 125, run.output
    assert f"Bind for 127.0.0.1:{port} failed: port is already allocated" in run.stderr, run.stderr
    assert fetch_when_up(f"http://127.0.0.1:{port}/").startswith("<html>")


def test_random_ports_publish_all_and_udp(docker, names) -> None:
    name = unique("random")
    names.append(name)
    run = docker("run", "-d", "--name", name, "-P", "-p", "127.0.0.1::81/udp", "--expose", "82", "httpd")
    assert run.returncode == 0, run.output
    ports = json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]["Ports"]
    assert set(ports) == {"80/tcp", "81/udp", "82/tcp"}, ports
    web = int(ports["80/tcp"][0]["HostPort"])
    assert ports["80/tcp"][0]["HostIp"] == "0.0.0.0" and web > 0
    assert ports["81/udp"][0]["HostIp"] == "127.0.0.1"
    assert fetch_when_up(f"http://127.0.0.1:{web}/").startswith("<html>")
    shown = docker("port", name, "80").stdout.strip()
    assert shown == f"0.0.0.0:{web}", shown


def test_the_python_sdk_runs_the_seed_scenario(docker_client, names, tmp_path: Path) -> None:
    """docker-py: httpd serving a host folder on a published port; `ro` binds refuse writes."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("from the sdk\n")
    port = free_port()
    name = unique("sdk")
    names.append(name)
    container = docker_client.containers.run(
        "httpd",
        detach=True,
        name=name,
        ports={"80/tcp": port},
        volumes={str(site): {"bind": "/usr/local/apache2/htdocs", "mode": "ro"}},
    )
    assert fetch_when_up(f"http://127.0.0.1:{port}/") == "from the sdk\n"
    other = host_address()
    if other:
        assert fetch(f"http://{other}:{port}/") == "from the sdk\n"
    (site / "index.html").write_text("edited\n")
    assert fetch(f"http://127.0.0.1:{port}/") == "edited\n"
    code, output = container.exec_run(["sh", "-c", "echo x > /usr/local/apache2/htdocs/new"])
    assert code != 0 and b"Read-only file system" in output, output
    container.reload()
    assert container.ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}


def test_user_networks_resolve_names_and_stay_apart(docker, docker_client, names, networks) -> None:
    """Containers on one user network reach each other by name and alias through the embedded DNS; a
    container on another network reaches neither."""
    front, back = unique("front"), unique("back")
    networks += [front, back]
    assert docker("network", "create", front).returncode == 0
    assert docker_client.networks.create(back, driver="bridge").name == back
    server, client, outsider = unique("server"), unique("client"), unique("outsider")
    names += [server, client, outsider]
    serve = "while true; do echo hello-from-server | nc -l -p 7000; done"
    assert (
        docker(
            "run",
            "-d",
            "--name",
            server,
            "--network",
            front,
            "--network-alias",
            "db",
            "busybox",
            "sh",
            "-c",
            serve,
        ).returncode
        == 0
    )
    assert (
        docker("run", "-d", "--name", client, "--network", front, "busybox", "sleep", "300").returncode == 0
    )
    # its unknown names go to its own 127.0.0.1 (nothing answers there), not to the host's resolvers
    docker_client.containers.run(
        "busybox", ["sleep", "300"], detach=True, name=outsider, network=back, dns=["127.0.0.1"]
    )

    for target in (server, "db"):
        looked_up = docker("exec", client, "nslookup", target)
        assert looked_up.returncode == 0 and "Address:" in looked_up.stdout.split("Name:")[-1], (
            looked_up.output
        )
        until(f"{target} to answer", lambda t=target: _nc(docker, client, t) == "hello-from-server", TIMEOUT)
    server_ip = json.loads(docker("inspect", server).stdout)[0]["NetworkSettings"]["Networks"][front][
        "IPAddress"
    ]
    assert server_ip
    assert _nc(docker, outsider, server_ip) == ""  # no route across networks
    assert docker("exec", outsider, "nslookup", server).returncode != 0

    inspected = json.loads(docker("network", "inspect", front).stdout)[0]
    assert {c["Name"] for c in inspected["Containers"].values()} == {server, client}
    removal = docker("network", "rm", front)
    assert removal.returncode != 0 and "has active endpoints" in removal.stderr, removal.output


def _nc(docker, container: str, target: str) -> str:
    done = docker("exec", container, "sh", "-c", f"nc -w 2 {target} 7000 </dev/null", timeout=TIMEOUT)
    return done.stdout.strip()


def test_network_connect_and_disconnect_a_running_container(docker, names, networks) -> None:
    net = unique("extra")
    networks.append(net)
    assert docker("network", "create", "--subnet", "10.231.7.0/24", net).returncode == 0
    name = unique("joiner")
    names.append(name)
    assert docker("run", "-d", "--name", name, "busybox", "sleep", "300").returncode == 0
    connect = docker("network", "connect", "--ip", "10.231.7.9", net, name)
    assert connect.returncode == 0, connect.output
    addresses = docker("exec", name, "ip", "-4", "addr").stdout
    assert "inet 10.231.7.9/24" in addresses, addresses
    assert docker("network", "disconnect", net, name).returncode == 0
    assert "10.231.7.9" not in docker("exec", name, "ip", "-4", "addr").stdout


def test_network_none_host_and_container_modes(docker, daemon: DaemonProcess, names) -> None:
    none = docker("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")
    assert none.returncode == 0 and none.stdout.split() == ["lo"], none.output

    before = host_links()
    host = docker("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net")
    # the host's links, but those that came or went meanwhile (other containers' veths, say)
    steady = before & host_links()
    assert host.returncode == 0 and daemon.bridge in steady, host.output
    assert steady <= set(host.stdout.split()), host.output

    donor, joiner = unique("donor"), unique("joiner")
    names += [donor, joiner]
    assert docker("run", "-d", "--name", donor, "busybox", "sleep", "300").returncode == 0
    ip = json.loads(docker("inspect", donor).stdout)[0]["NetworkSettings"]["IPAddress"]
    shared = docker("run", "--rm", "--network", f"container:{donor}", "busybox", "ip", "-4", "addr")
    assert shared.returncode == 0 and f"inet {ip}/" in shared.stdout, shared.output


def test_bad_network_input(docker, names) -> None:
    run = docker("run", "--rm", "--network", "nosuchnet", "busybox", "true")
    assert run.returncode == 125
    assert "docker: Error response from daemon: network nosuchnet not found" in run.stderr, run.stderr
    assert docker("network", "rm", "nosuchnet").returncode == 1
    removal = docker("network", "rm", "bridge")
    assert "bridge is a pre-defined network and cannot be removed" in removal.stderr, removal.output
    created = docker("network", "create", "--subnet", "10.231.300.0/24", unique("bad"))
    assert created.returncode != 0 and "10.231.300.0/24" in created.stderr, created.output


def test_a_published_port_and_the_address_outlive_a_daemon_restart(workdir: Path, registry) -> None:
    """Kill the daemon: the container keeps serving its port; start it again: same address, port still
    served and held; stop: freed."""
    proc = DaemonProcess(workdir / unique("netrestart"), ["--registry-mirror", registry.url]).start()
    try:

        def cli(*args: str) -> Result:
            return run_cli(["docker", "-H", proc.host, *args], timeout=TIMEOUT)

        port = free_port()
        assert cli("run", "-d", "--name", "kept", "-p", f"{port}:80", "httpd").returncode == 0
        assert fetch_when_up(f"http://127.0.0.1:{port}/").startswith("<html>")
        ip = json.loads(cli("inspect", "kept").stdout)[0]["NetworkSettings"]["IPAddress"]
        proc.kill()
        assert fetch(f"http://127.0.0.1:{port}/").startswith("<html>")  # the kernel forwards it meanwhile
        proc.start()
        assert json.loads(cli("inspect", "kept").stdout)[0]["NetworkSettings"]["IPAddress"] == ip
        assert fetch(f"http://127.0.0.1:{port}/").startswith("<html>")
        assert not port_free(port)
        assert cli("rm", "-f", "kept").returncode == 0
        until("the host port to be freed", lambda: port_free(port), TIMEOUT)
        assert sandboxes(proc) == [] and netns_files(proc) == []
    finally:
        proc.stop()


CYCLES = int(os.environ.get("DOCKYARD_LEAK_CYCLES", "200"))


def test_run_rm_publish_cycles_leave_nothing(daemon: DaemonProcess) -> None:
    """200 `run --rm -p PORT:80` (the same host port each time, so each cycle also proves it was freed):
    no veth, namespace, sandbox record, DNAT rule, listener or namespace mount is left."""
    port = free_port()
    ports_before, boxes_before, netns_before = bridge_ports(daemon), sandboxes(daemon), netns_files(daemon)
    for _ in range(CYCLES):
        done = run_cli([DOCKYARD, "-H", daemon.host, "run", "--rm", "-p", f"{port}:80", "busybox", "true"])
        assert done.returncode == 0, done.output
    # a namespace, and the veth in it, is freed by the kernel a moment after its last process
    until("the last veths to be freed with their namespaces", lambda: bridge_ports(daemon) <= ports_before)
    assert sandboxes(daemon) == boxes_before and netns_files(daemon) == netns_before
    assert f"dport {port}" not in nat_rules(daemon)
    assert port_free(port)
    netns_dir = str(daemon.exec_root / "netns") + "/"
    with open("/proc/self/mountinfo") as f:
        left = [line for line in f if " - nsfs " in line and line.split()[4].startswith(netns_dir)]
    assert len(left) == len(netns_before), left


def test_a_daemon_without_a_default_bridge(workdir: Path, registry) -> None:
    """`--bridge none`, as dockerd's: no `bridge` network; containers get only lo; user networks work."""
    proc = DaemonProcess(workdir / unique("nobridge"), ["--registry-mirror", registry.url], bridge="none")
    proc.start()
    try:
        listed = run_cli(
            ["docker", "-H", proc.host, "network", "ls", "--format", "{{.Name}}"], timeout=TIMEOUT
        )
        assert sorted(listed.stdout.split()) == ["host", "none"], listed.output
        run = run_cli(
            ["docker", "-H", proc.host, "run", "--rm", "busybox", "ls", "/sys/class/net"], timeout=TIMEOUT
        )
        assert run.returncode == 0 and run.stdout.split() == ["lo"], run.output
    finally:
        proc.stop()


def test_an_internal_network_has_no_way_out(docker, docker_client, names, networks) -> None:
    """`--internal`: containers on it reach each other but get no default route (and no masquerade)."""
    net = unique("inner")
    networks.append(net)
    assert docker("network", "create", "--internal", net).returncode == 0
    inspected = docker_client.networks.get(net)
    assert inspected.attrs["Internal"] is True
    first, second = unique("in1"), unique("in2")
    names += [first, second]
    assert docker("run", "-d", "--name", first, "--network", net, "busybox", "sleep", "300").returncode == 0
    routes = docker(
        "run",
        "--rm",
        "--name",
        second,
        "--network",
        net,
        "busybox",
        "sh",
        "-c",
        f"ip route; ping -c1 -W2 {first}",
    )
    assert routes.returncode == 0, routes.output
    assert "default" not in routes.stdout and "1 packets received" in routes.stdout, routes.stdout
