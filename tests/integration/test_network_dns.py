"""The embedded DNS as dockerd's, through the official docker CLI and docker-py: at 127.0.0.11 in the
container's namespace (resolv.conf names it), over UDP and TCP, with the names of every user network the
container is on; other names forwarded (to a fake resolver this module runs: on a loopback address of the
host's, asked from the host's namespace, or on a network's gateway, asked from the container's own); kept
across a daemon restart; and the bridges' MAC addresses, which containers coming and going no longer change.

No query leaves the machine: every container that could look up an unknown name has `--dns` pointing at the
fake resolver (or at 127.0.0.1 inside itself, where nothing answers)."""

from __future__ import annotations

import json
import secrets
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import DaemonProcess, Result, run_cli, unique, until

from dockyard.linux.namespaces import enter_netns
from dockyard.network.dns import TYPE_A, answer, parse_question

pytestmark = pytest.mark.timeout(300)

TIMEOUT = 60.0
OUTSIDE = "outside.dockyard.test"
OUTSIDE_IP = "192.0.2.77"


def inspect(docker, name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


class FakeResolver:
    """A resolver on `address`:53, UDP and TCP: OUTSIDE is OUTSIDE_IP, anything else NXDOMAIN (authoritative,
    so the embedded DNS takes it as final); it notes the names it was asked and by which protocol."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.asked: list[tuple[str, str]] = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.udp.bind((address, 53))
        self.tcp.bind((address, 53))
        self.tcp.listen(8)
        self._stop = False
        self._threads = [threading.Thread(target=f, daemon=True) for f in (self._serve_udp, self._serve_tcp)]
        for t in self._threads:
            t.start()

    def _answer(self, packet: bytes, proto: str) -> bytes:
        name = parse_question(packet)[2].lower()
        self.asked.append((name, proto))
        if name == OUTSIDE:
            return answer(packet, OUTSIDE_IP)
        out = bytearray(answer(packet, None, 3))
        out[2] |= 0x04  # AA
        return bytes(out)

    def _serve_udp(self) -> None:
        while not self._stop:
            try:
                packet, peer = self.udp.recvfrom(4096)
                self.udp.sendto(self._answer(packet, "udp"), peer)
            except (OSError, ValueError):
                if self._stop:
                    return

    def _serve_tcp(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                try:
                    size = struct.unpack("!H", _exactly(conn, 2))[0]
                    out = self._answer(_exactly(conn, size), "tcp")
                    conn.sendall(struct.pack("!H", len(out)) + out)
                except (OSError, ValueError, struct.error):
                    pass

    def close(self) -> None:
        self._stop = True
        for s in (self.udp, self.tcp):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def _exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError
        data += chunk
    return data


@pytest.fixture
def upstream() -> Iterator[FakeResolver]:
    """The fake resolver on a loopback address of the host's (127.0.0.0/8 is all local on lo)."""
    fake = FakeResolver(f"127.77.{secrets.randbelow(250) + 1}.53")
    yield fake
    fake.close()


def _query(name: str, qtype: int = TYPE_A) -> bytes:
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0x2A2A, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", qtype, 1)


def ask_in_netns(netns: str, name: str, tcp: bool) -> tuple[int, list[str]]:
    """A dig-like query to 127.0.0.11:53 from inside the container's namespace: (rcode, A addresses)."""

    def make() -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        s.settimeout(10)
        s.connect(("127.0.0.11", 53))
        return s

    query = _query(name)
    with enter_netns(netns, make) as s:
        if tcp:
            s.sendall(struct.pack("!H", len(query)) + query)
            response = _exactly(s, struct.unpack("!H", _exactly(s, 2))[0])
        else:
            s.send(query)
            response = s.recv(4096)
    ident, flags, _qd, count = struct.unpack_from("!HHHH", response)
    assert ident == 0x2A2A and flags & 0x8000
    _ident, _flags, _name, _qtype, offset = parse_question(response)
    addresses = []
    for _ in range(count):
        _ptr, rtype, _cls, _ttl, length = struct.unpack_from("!HHHIH", response, offset)
        offset += 12
        if rtype == TYPE_A:
            addresses.append(socket.inet_ntoa(response[offset : offset + length]))
        offset += length
    return flags & 0xF, addresses


def _lookup(docker, container: str, name: str) -> Result:
    return docker("exec", container, "nslookup", name, timeout=TIMEOUT)


def _resolved(result: Result) -> list[str]:
    """The addresses busybox's nslookup printed for the name asked (after the server's own lines)."""
    out = result.stdout.split("Name:", 1)[-1] if "Name:" in result.stdout else ""
    return [line.split()[-1] for line in out.splitlines() if line.startswith("Address")]


def test_a_container_on_two_networks_resolves_names_of_both(docker, docker_client, names, networks) -> None:
    """A compose-like service on a front and a back network finds both sides by name, alias and short ID,
    over UDP (busybox) and TCP; its resolv.conf names 127.0.0.11 with ndots:0 as dockerd's."""
    front, back = unique("front"), unique("back")
    networks += [front, back]
    assert docker("network", "create", front).returncode == 0
    assert docker_client.networks.create(back, driver="bridge").name == back
    web, db, app = unique("web"), unique("db"), unique("app")
    names += [web, db, app]
    quiet = ["--dns", "127.0.0.1"]  # an unknown name is asked of the container's own loopback: no answer
    assert (
        docker("run", "-d", "--name", web, *quiet, "--network", front, "busybox", "sleep", "300").returncode
        == 0
    )
    docker_client.containers.run(
        "busybox", ["sleep", "300"], detach=True, name=db, network=back, dns=["127.0.0.1"]
    )
    created = docker("create", "--name", app, *quiet, "--network", front, "busybox", "sleep", "300")
    assert created.returncode == 0, created.output
    assert docker("network", "connect", back, app).returncode == 0  # as compose does, before the start
    assert docker("start", app).returncode == 0

    resolv = docker("exec", app, "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.11" in resolv.splitlines() and "options ndots:0" in resolv.splitlines(), resolv
    assert not [
        line for line in resolv.splitlines() if line.startswith("nameserver") and "127.0.0.11" not in line
    ]

    web_ip = inspect(docker, web)["NetworkSettings"]["Networks"][front]["IPAddress"]
    db_info = inspect(docker, db)
    db_ip = db_info["NetworkSettings"]["Networks"][back]["IPAddress"]
    for target, address in ((web, web_ip), (db, db_ip), (db_info["Id"][:12], db_ip), (f"{db}.{back}", db_ip)):
        looked_up = _lookup(docker, app, target)
        assert looked_up.returncode == 0 and _resolved(looked_up) == [address], looked_up.output
    ping = docker("exec", app, "ping", "-c", "1", "-W", "5", db)
    assert ping.returncode == 0 and "1 packets received" in ping.stdout, ping.output
    ping = docker("exec", app, "ping", "-c", "1", "-W", "5", web)
    assert ping.returncode == 0, ping.output

    # TCP, as a resolver asks when a reply is truncated: from inside the container's namespace
    netns = inspect(docker, app)["NetworkSettings"]["SandboxKey"]
    assert ask_in_netns(netns, db, tcp=True) == (0, [db_ip])
    assert ask_in_netns(netns, web.upper(), tcp=True) == (0, [web_ip])
    assert ask_in_netns(netns, db, tcp=False) == (0, [db_ip])

    # web is on front alone: db is no name of its; after a disconnect, back's names are gone for app
    assert _lookup(docker, web, db).returncode != 0
    assert docker("network", "disconnect", back, app).returncode == 0
    assert ask_in_netns(netns, web, tcp=False) == (0, [web_ip])
    assert ask_in_netns(netns, db, tcp=False)[1] == []


def test_other_names_go_to_the_forwarders(docker, docker_client, names, networks, daemon, upstream) -> None:
    """`--dns` on a user network: resolv.conf still names 127.0.0.11, and the embedded DNS forwards what is
    no container's name, over the protocol the query came by: to a loopback resolver of the host's from
    the host's namespace, to any other from the container's (here: a resolver on the network's gateway)."""
    net = unique("fwd")
    networks.append(net)
    assert docker("network", "create", net).returncode == 0
    client = unique("client")
    names.append(client)
    assert (
        docker(
            "run",
            "-d",
            "--name",
            client,
            "--network",
            net,
            "--dns",
            upstream.address,
            "busybox",
            "sleep",
            "300",
        ).returncode
        == 0
    )
    resolv = docker("exec", client, "cat", "/etc/resolv.conf").stdout
    assert resolv.splitlines()[0] == "nameserver 127.0.0.11" and upstream.address not in resolv, resolv
    looked_up = _lookup(docker, client, OUTSIDE)
    assert looked_up.returncode == 0 and OUTSIDE_IP in _resolved(looked_up), looked_up.output
    missing = _lookup(docker, client, "nosuch.dockyard.test")
    assert missing.returncode != 0 and "NXDOMAIN" in missing.output, missing.output
    netns = inspect(docker, client)["NetworkSettings"]["SandboxKey"]
    assert ask_in_netns(netns, OUTSIDE, tcp=True) == (0, [OUTSIDE_IP])
    assert (OUTSIDE, "udp") in upstream.asked and (OUTSIDE, "tcp") in upstream.asked
    assert not any(name == client for name, _ in upstream.asked)  # a container's name is not forwarded

    # a resolver the container reaches by its own route: the gateway of its network, on the host
    gateway = docker_client.networks.get(net).attrs["IPAM"]["Config"][0]["Gateway"]
    on_gateway = FakeResolver(gateway)
    try:
        other = unique("viagw")
        names.append(other)
        container = docker_client.containers.run(
            "busybox", ["sleep", "300"], detach=True, name=other, network=net, dns=[gateway]
        )
        code, output = container.exec_run(["nslookup", OUTSIDE])
        assert code == 0 and OUTSIDE_IP.encode() in output, output
        assert (OUTSIDE, "udp") in on_gateway.asked
        sandbox = inspect(docker, other)["NetworkSettings"]["SandboxKey"]
        assert ask_in_netns(sandbox, OUTSIDE, tcp=True) == (0, [OUTSIDE_IP])
    finally:
        on_gateway.close()


def test_a_running_container_joining_a_user_network_gets_the_embedded_dns(docker, names, networks) -> None:
    """dockerd rewrites resolv.conf when a container on the default bridge joins a user network."""
    net = unique("late")
    networks.append(net)
    assert docker("network", "create", net).returncode == 0
    peer, joiner = unique("peer"), unique("joiner")
    names += [peer, joiner]
    assert (
        docker(
            "run", "-d", "--name", peer, "--dns", "127.0.0.1", "--network", net, "busybox", "sleep", "300"
        ).returncode
        == 0
    )
    assert (
        docker("run", "-d", "--name", joiner, "--dns", "127.0.0.1", "busybox", "sleep", "300").returncode == 0
    )
    before = docker("exec", joiner, "cat", "/etc/resolv.conf").stdout
    assert "nameserver 127.0.0.1" in before.splitlines() and "127.0.0.11" not in before, before
    assert docker("network", "connect", net, joiner).returncode == 0
    after = docker("exec", joiner, "cat", "/etc/resolv.conf").stdout
    assert after.splitlines()[0] == "nameserver 127.0.0.11" and "ndots:0" in after, after
    peer_ip = inspect(docker, peer)["NetworkSettings"]["Networks"][net]["IPAddress"]
    assert _resolved(_lookup(docker, joiner, peer)) == [peer_ip]


def test_the_embedded_dns_outlives_a_daemon_restart(workdir: Path, registry, upstream) -> None:
    """Kill the daemon: a running container's names and forwarders (daemon.json's `dns` here) answer again
    once it is back; a container started after the restart too."""
    proc = DaemonProcess(workdir / unique("dnsrestart"), ["--registry-mirror", registry.url])
    proc.root.mkdir(parents=True, exist_ok=True)
    (proc.root / "daemon.json").write_text(json.dumps({"dns": [upstream.address]}) + "\n")
    proc.start()
    try:

        def cli(*args: str) -> Result:
            return run_cli(["docker", "-H", proc.host, *args], timeout=TIMEOUT)

        assert cli("network", "create", "kept").returncode == 0
        assert (
            cli("run", "-d", "--name", "one", "--network", "kept", "busybox", "sleep", "300").returncode == 0
        )
        assert (
            cli("run", "-d", "--name", "two", "--network", "kept", "busybox", "sleep", "300").returncode == 0
        )
        two_ip = inspect(cli, "two")["NetworkSettings"]["Networks"]["kept"]["IPAddress"]
        netns = inspect(cli, "one")["NetworkSettings"]["SandboxKey"]
        assert ask_in_netns(netns, "two", tcp=False) == (0, [two_ip])
        assert ask_in_netns(netns, OUTSIDE, tcp=False) == (0, [OUTSIDE_IP])  # daemon.json's dns
        proc.kill()
        proc.start()
        assert ask_in_netns(netns, "two", tcp=False) == (0, [two_ip])
        assert ask_in_netns(netns, "two", tcp=True) == (0, [two_ip])
        assert ask_in_netns(netns, OUTSIDE, tcp=True) == (0, [OUTSIDE_IP])
        assert (
            cli("run", "-d", "--name", "three", "--network", "kept", "busybox", "sleep", "300").returncode
            == 0
        )
        three_ip = inspect(cli, "three")["NetworkSettings"]["Networks"]["kept"]["IPAddress"]
        until("the new container's name", lambda: ask_in_netns(netns, "three", tcp=False) == (0, [three_ip]))
        assert _resolved(cli("exec", "three", "nslookup", OUTSIDE)) == [OUTSIDE_IP]
        assert cli("rm", "-f", "one", "two", "three").returncode == 0
    finally:
        proc.stop()


def _mac(device: str) -> tuple[str, int]:
    with open(f"/sys/class/net/{device}/address") as f:
        mac = f.read().strip()
    with open(f"/sys/class/net/{device}/addr_assign_type") as f:
        return mac, int(f.read().strip())


def test_a_bridge_keeps_its_mac_address(docker, daemon, names, networks) -> None:
    """Linux gives a bridge without an address of its own the lowest of its ports' (so it changes as
    containers come and go, and the others lose their gateway for a while): every bridge gets one at its
    creation, random and locally administered, as dockerd's."""
    net = unique("mac")
    networks.append(net)
    assert docker("network", "create", net).returncode == 0
    device = "br-" + inspect(docker, net)["Id"][:12]
    for bridge in (device, daemon.bridge):
        mac, assigned = _mac(bridge)
        assert assigned == 3 and int(mac.split(":")[0], 16) & 0x03 == 0x02, (bridge, mac, assigned)
    first = _mac(device)
    default = _mac(daemon.bridge)
    keeper, leaver = unique("keeper"), unique("leaver")
    names += [keeper, leaver]
    for name in (keeper, leaver):
        run = docker(
            "run", "-d", "--name", name, "--dns", "127.0.0.1", "--network", net, "busybox", "sleep", "300"
        )
        assert run.returncode == 0, run.output
    assert _mac(device) == first
    assert docker("rm", "-f", leaver).returncode == 0
    assert docker("restart", "-t", "0", keeper).returncode == 0
    assert docker("run", "--rm", "busybox", "true").returncode == 0  # on the default bridge
    assert _mac(device) == first and _mac(daemon.bridge) == default
    # and the gateway the containers know is that address
    gateway = inspect(docker, net)["IPAM"]["Config"][0]["Gateway"]
    neigh = docker("exec", keeper, "sh", "-c", f"ping -c1 -W2 {gateway} >/dev/null; ip neigh show {gateway}")
    assert first[0] in neigh.stdout.lower(), neigh.output
