"""Issue 11, items 4 and 5, tried as an attacker would: a container's hand-made packets to the host's
127.0.0.1 (CVE-2020-8558: every bridge has `route_localnet=1` for loopback publishing) and a neighbour host
routed through this one (a network namespace of the test's own) reaching container ports nobody published.

Each test also shows that its probe works: the raw-socket helper gets a SYN-ACK from a listener on the
gateway's own address, the neighbour gets the published page, and with the daemon's rule taken out of its
table (on a daemon of the module's own) the same probe gets in."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import DaemonProcess, Result, run_cli, unique, until

from dockyard.linux.nftables import Nftables, NftablesError
from dockyard.network import firewall

pytestmark = pytest.mark.timeout(300)

TIMEOUT = 60.0
RAWSYN_SOURCE = Path(__file__).with_name("rawsyn.c")
IN_CONTAINER = "/usr/local/bin/rawsyn"
HELLO = b"hello-from-rawsyn\n"


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rawsyn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw-socket helper, compiled static so it runs in a busybox container."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (scripts/setup.sh --test installs gcc and libc6-dev)")
    out = tmp_path_factory.mktemp("rawsyn") / "rawsyn"
    built = subprocess.run(
        [gcc, "-static", "-O2", "-Wall", "-o", str(out), str(RAWSYN_SOURCE)], capture_output=True, text=True
    )
    if built.returncode != 0:
        if "cannot find -lc" in built.stderr or "No such file" in built.stderr:
            pytest.skip(f"no static libc to link the helper (install libc6-dev): {built.stderr.strip()}")
        pytest.fail(f"the helper did not compile:\n{built.stderr}")
    return out


@pytest.fixture(scope="module")
def own(workdir: Path, registry) -> Iterator[DaemonProcess]:
    """A daemon of this module's own: the tests take rules out of its table to show their probes work."""
    proc = DaemonProcess(workdir / unique("netsec"), ["--registry-mirror", registry.url]).start()
    try:
        yield proc
    finally:
        proc.stop()


def cli(proc: DaemonProcess, *args: str, timeout: float = TIMEOUT) -> Result:
    return run_cli(["docker", "-H", proc.host, *args], timeout=timeout)


@pytest.fixture
def containers(own: DaemonProcess) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made:
        cli(own, "rm", "-f", *made)


# --- helpers ----------------------------------------------------------------------------------------


def free_port(address: str = "0.0.0.0") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def fetch(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (loopback test server)
        return response.read().decode()


def inspect(proc: DaemonProcess, name: str) -> dict:
    return json.loads(cli(proc, "inspect", name).stdout)[0]


def table(proc: DaemonProcess) -> str:
    return firewall.table_name(proc.bridge)


def has_chain(proc: DaemonProcess, chain: str) -> bool:
    try:
        Nftables().run(f"list chain ip {table(proc)} {chain}\n")
    except NftablesError:
        return False
    return True


def without_chain(proc: DaemonProcess, chain: str) -> None:
    """Take one chain out of the daemon's table (as if the fix were not there)."""
    Nftables().run(f"delete chain ip {table(proc)} {chain}\n")
    assert not has_chain(proc, chain)


def rewrite_rules(proc: DaemonProcess, chain: str) -> None:
    """Make the daemon write its table again (it does at every network change) and check `chain` is back."""
    name = unique("rewrite")
    assert cli(proc, "network", "create", name).returncode == 0
    assert cli(proc, "network", "rm", name).returncode == 0
    assert has_chain(proc, chain)


class Listener:
    """A TCP server of the test process on one address: the connections it accepted, with what they sent."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[tuple[str, bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    data = conn.recv(1024)
                except OSError:
                    data = b""
                self.accepted.append((peer[0], data))

    def close(self) -> list[tuple[str, bytes]]:
        """Stop (after a moment for a late connection) and return what was accepted."""
        time.sleep(0.5)
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        return self.accepted


def probe(proc: DaemonProcess, container: str, gateway_mac: str, address: str, port: int) -> Result:
    return cli(proc, "exec", container, IN_CONTAINER, "eth0", gateway_mac, address, str(port))


def forward_dropped_elsewhere(own_table: str) -> str:
    """Why forwarded packets may be dropped by another table than ours (Docker's iptables FORWARD policy
    DROP, say), or ""."""
    try:
        ruleset = Nftables().run("list ruleset\n")
    except NftablesError:
        ruleset = ""
    current, reasons = "", []
    for line in ruleset.splitlines():
        words = line.split()
        if words[:1] == ["table"] and len(words) >= 3:
            current = words[2]
        if current != own_table and "hook forward" in line and "policy drop" in line:
            reasons.append(f"nftables table {current} drops forwarded packets by policy")
    iptables = shutil.which("iptables")
    if iptables:
        listed = subprocess.run([iptables, "-S", "FORWARD"], capture_output=True, text=True)
        if "-P FORWARD DROP" in listed.stdout:
            reasons.append("iptables FORWARD policy is DROP")
    return "; ".join(reasons)


# --- 4: the host's loopback -------------------------------------------------------------------------


def test_a_container_cannot_reach_the_hosts_loopback_with_raw_packets(own, rawsyn, containers) -> None:
    """A TCP handshake by hand (AF_PACKET, the default CAP_NET_RAW) to 127.0.0.1 through the gateway's MAC
    gets no SYN-ACK and the host's loopback-only listener sees no connection; the same helper does get a
    SYN-ACK from a listener on the gateway's own address, and does get into the loopback-only listener when
    the daemon's drop rule is taken out. Publishing on 127.0.0.1 keeps working."""
    port = free_port("127.0.0.1")
    name = unique("rawsyn")
    containers.append(name)
    started = cli(
        own, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:80", "-v", f"{rawsyn}:{IN_CONTAINER}:ro",
        "httpd",
    )  # fmt: skip
    assert started.returncode == 0, started.output
    page = until("the page on 127.0.0.1", lambda: _try_fetch(f"http://127.0.0.1:{port}/"), TIMEOUT)
    assert page.startswith("<html>")  # -p 127.0.0.1:P:80 from the host's 127.0.0.1

    gateway = inspect(own, name)["NetworkSettings"]["Gateway"]
    gateway_mac = Path(f"/sys/class/net/{own.bridge}/address").read_text().strip()

    loopback = Listener("127.0.0.1")
    blocked = probe(own, name, gateway_mac, "127.0.0.1", loopback.port)
    accepted = loopback.close()
    assert blocked.stdout.split()[:1] == ["NONE"] and blocked.returncode == 1, (blocked.output, accepted)
    assert accepted == []

    # the helper works: a listener on the gateway's own address answers it
    on_gateway = Listener(gateway)
    answered = probe(own, name, gateway_mac, gateway, on_gateway.port)
    on_gateway.close()
    assert answered.stdout.split()[:1] == ["SYNACK"] and answered.returncode == 0, answered.output

    # and without the drop rule, what it is there for: the loopback-only listener gets the connection
    without_chain(own, "loopback")
    try:
        loopback = Listener("127.0.0.1")
        got_in = probe(own, name, gateway_mac, "127.0.0.1", loopback.port)
        accepted = loopback.close()
    finally:
        rewrite_rules(own, "loopback")
    assert got_in.stdout.split()[:1] == ["SYNACK"], got_in.output
    ip = inspect(own, name)["NetworkSettings"]["IPAddress"]
    assert accepted == [(ip, HELLO)], accepted

    loopback = Listener("127.0.0.1")
    again = probe(own, name, gateway_mac, "127.0.0.1", loopback.port)
    assert loopback.close() == []
    assert again.stdout.split()[:1] == ["NONE"], again.output
    assert fetch(f"http://127.0.0.1:{port}/").startswith("<html>")


def _try_fetch(url: str) -> str:
    try:
        return fetch(url, timeout=2)
    except OSError:
        return ""


# --- 5: a neighbour routed through the host ---------------------------------------------------------

NEIGHBOUR_CLIENT = r"""
import socket, sys
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "connect":
    s = socket.socket()
    s.settimeout(float(sys.argv[4]))
    try:
        s.connect((host, port))
        if len(sys.argv) > 5:
            s.sendall(sys.argv[5].encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        print("DATA", data.decode(errors="replace").replace("\r", "").replace("\n", "\\n"))
    except socket.timeout:
        print("TIMEOUT")
    except OSError as e:
        print("ERROR", e)
else:  # listen: one connection, print its peer and what it sent
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(1)
    print("LISTENING", flush=True)
    s.settimeout(float(sys.argv[4]))
    try:
        conn, peer = s.accept()
        conn.settimeout(5)
        print("FROM", peer[0], conn.recv(1024).decode(errors="replace").strip(), flush=True)
    except socket.timeout:
        print("TIMEOUT", flush=True)
"""


class Neighbour:
    """A network namespace of the test's own, linked to the host by a veth pair on a /30 from 198.18.0.0/15
    (RFC 2544's benchmarking range: on no real network), with a route to the containers' subnet via the
    host's end."""

    def __init__(self, container_subnet: str) -> None:
        tag = secrets.token_hex(4)
        self.netns = f"dyt-nb-{tag}"
        self.host_dev, self.peer_dev = f"dyn{tag}h", f"dyn{tag}n"
        net = self._free_slash30()
        self.host_ip, self.peer_ip = str(net[1]), str(net[2])
        self.made = False
        try:
            self._ip("netns", "add", self.netns)
            self.made = True
            self._ip("link", "add", self.host_dev, "type", "veth", "peer", "name", self.peer_dev)
            self._ip("link", "set", self.peer_dev, "netns", self.netns)
            self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_dev)
            self._ip("link", "set", self.host_dev, "up")
            self._ip("-n", self.netns, "addr", "add", f"{self.peer_ip}/30", "dev", self.peer_dev)
            self._ip("-n", self.netns, "link", "set", self.peer_dev, "up")
            self._ip("-n", self.netns, "link", "set", "lo", "up")
            self._ip("-n", self.netns, "route", "add", container_subnet, "via", self.host_ip)
        except BaseException:
            self.remove()
            raise

    @staticmethod
    def _ip(*args: str) -> str:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def _free_slash30(self) -> ipaddress.IPv4Network:
        taken = [
            ipaddress.IPv4Network(line.split()[0], strict=False)
            for line in self._ip("-4", "route", "show", "table", "all").splitlines()
            if line and line.split()[0][0].isdigit()
        ]
        taken += [
            ipaddress.IPv4Interface(word).network
            for line in self._ip("-4", "-o", "addr").splitlines()
            for word in line.split()[3:4]
        ]
        for _ in range(100):
            net = ipaddress.IPv4Network(f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(64) * 4}/30")
            if not any(net.overlaps(t) for t in taken):
                return net
        raise RuntimeError("no free /30 in 198.18.0.0/15")

    def connect(self, host: str, port: int, timeout: float = 3.0, send: str = "") -> str:
        argv = ["ip", "netns", "exec", self.netns, sys.executable, "-c", NEIGHBOUR_CLIENT, "connect"]
        argv += [host, str(port), str(timeout), *([send] if send else [])]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30).stdout.strip()

    def listen(self, port: int, timeout: float = 15.0) -> subprocess.Popen[str]:
        argv = ["ip", "netns", "exec", self.netns, sys.executable, "-c", NEIGHBOUR_CLIENT, "listen"]
        proc = subprocess.Popen(
            [*argv, self.peer_ip, str(port), str(timeout)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "LISTENING"
        return proc

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._ip("link", "del", self.host_dev)  # takes its peer with it
        if self.made:
            with contextlib.suppress(RuntimeError):
                self._ip("netns", "del", self.netns)


def _connect_from_host(address: str, port: int) -> str:
    try:
        with socket.create_connection((address, port), timeout=2) as s:
            return s.recv(1024).decode()
    except OSError:
        return ""


def test_a_neighbour_reaches_published_ports_only(own, containers) -> None:
    """From a neighbour routed through the host: a container's unpublished port (and its published one at
    the container's own address) is unreachable, the published port on the host's address is reachable, the
    container's own connections out to the neighbour still go (masqueraded); without the daemon's forward
    chain the same neighbour reaches the unpublished port."""
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed")
    port = free_port()
    name = unique("nbtarget")
    containers.append(name)
    serve = "httpd -p 80 -h /usr/local/apache2/htdocs; while true; do echo unpublished | nc -l -p 8080; done"
    started = cli(own, "run", "-d", "--name", name, "-p", f"{port}:80", "httpd", "sh", "-c", serve)
    assert started.returncode == 0, started.output
    settings = inspect(own, name)["NetworkSettings"]
    ip, prefix = settings["IPAddress"], settings["IPPrefixLen"]
    subnet = str(ipaddress.IPv4Interface(f"{ip}/{prefix}").network)
    # both servers are up: the host itself reaches them (its own packets are not forwarded)
    until("the unpublished port", lambda: _connect_from_host(ip, 8080) == "unpublished\n", TIMEOUT)
    until("the published port", lambda: _try_fetch(f"http://127.0.0.1:{port}/").startswith("<html>"), TIMEOUT)

    neighbour = Neighbour(subnet)
    try:
        request = "GET / HTTP/1.0\r\n\r\n"
        published = neighbour.connect(neighbour.host_ip, port, send=request)
        if "It works!" not in published:
            reason = forward_dropped_elsewhere(table(own))
            if reason:
                pytest.skip(f"forwarding is blocked outside the daemon's table ({reason}): {published}")
        assert published.startswith("DATA HTTP/1.1 200 OK") and "It works!" in published, published
        assert neighbour.connect(ip, 8080) == "TIMEOUT"
        assert neighbour.connect(ip, 80, send=request) == "TIMEOUT"  # only through the host's address
        assert _connect_from_host(ip, 8080) == "unpublished\n"  # still listening: it was the rule

        # the container's own connections out stay allowed (masqueraded to the host's address)
        out_port = 40000 + secrets.randbelow(20000)
        listener = neighbour.listen(out_port)
        try:
            send = f"echo outbound | nc -w 3 {neighbour.peer_ip} {out_port}"
            sent = cli(own, "exec", name, "sh", "-c", send)
            heard = listener.communicate(timeout=30)[0].strip()
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait()
        assert heard == f"FROM {neighbour.host_ip} outbound", (heard, sent.output)

        # without the forward chain, the same neighbour gets in: the probe can fail
        without_chain(own, "forward")
        try:
            exposed = neighbour.connect(ip, 8080)
        finally:
            rewrite_rules(own, "forward")
        assert exposed == "DATA unpublished\\n", exposed
        assert neighbour.connect(ip, 8080) == "TIMEOUT"
    finally:
        neighbour.remove()
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert neighbour.netns not in left
    assert not Path(f"/sys/class/net/{neighbour.host_dev}").exists()
