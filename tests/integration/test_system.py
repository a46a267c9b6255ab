"""The foundation against a real daemon: the official CLI, docker-py, our CLI, and daemon start-up rules."""

from __future__ import annotations

import grp
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from harness import DOCKYARD, DOCKYARDD, DaemonProcess, run_cli, unique, until


def raw_request(socket_path: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(socket_path)
    sock.sendall(request)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def get(socket_path: str, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    return raw_request(
        socket_path, f"{method} {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n".encode()
    )


# --- the official docker CLI and docker-py ---------------------------------------------------------


def test_docker_version_shows_server_api_1_41(docker):
    result = docker("version")
    assert result.returncode == 0, result.output
    server = result.stdout.split("Server:", 1)[1]
    assert "Dockyard Engine" in server.splitlines()[0]
    assert "API version:      1.41 (minimum version 1.24)" in server
    # A newer CLI negotiates down to us ("1.41 (downgraded from 1.50)"); Debian's 20.10 speaks 1.41.
    assert "API version:       1.41" in result.stdout.split("Server:", 1)[0]


def test_docker_version_format_json(docker):
    result = docker("version", "--format", "{{json .Server}}")
    assert result.returncode == 0, result.output
    server = json.loads(result.stdout)
    assert server["ApiVersion"] == "1.41"
    assert server["Components"][0]["Name"] == "Engine"


def test_docker_info_succeeds(docker, daemon):
    result = docker("info")
    assert result.returncode == 0, result.output
    assert f"Docker Root Dir: {daemon.data_root}" in result.stdout
    assert "Default Runtime: dockyard" in result.stdout
    assert "Operating System:" in result.stdout


def test_docker_info_lists_the_registry_mirror(docker, registry):
    result = docker("info", "--format", "{{json .RegistryConfig.Mirrors}}")
    assert result.returncode == 0, result.output
    assert json.loads(result.stdout) == [registry.url + "/"]


def test_docker_api_version_too_new(docker):
    result = docker("version", env={"DOCKER_API_VERSION": "1.43"})
    assert result.returncode == 1
    assert "client version 1.43 is too new. Maximum supported API version is 1.41" in result.stderr


def test_docker_py_ping_and_version(docker_client):
    assert docker_client.ping() is True
    version = docker_client.version()
    assert version["ApiVersion"] == "1.41"
    assert docker_client.api.api_version == "1.41"
    assert docker_client.info()["OSType"] == "linux"


def test_docker_events_until_returns(docker):
    result = docker("events", "--since", "0", "--until", str(int(time.time())), timeout=30)
    assert result.returncode == 0, result.output


def test_docker_py_events_stream_is_open_until_deadline(docker_client):
    started = time.monotonic()
    until = int(time.time()) + 2
    events = list(docker_client.events(until=until, decode=True))
    assert events == []
    assert time.monotonic() - started >= 1.0  # the stream stayed open until `until`


# --- the wire: headers, errors, prefixes -------------------------------------------------------------


def test_ping_headers(daemon):
    for method in ("GET", "HEAD"):
        status, headers, body = get(daemon.socket_path, "/_ping", method)
        assert status == 200
        assert headers["api-version"] == "1.41"
        assert headers["ostype"] == "linux"
        assert headers["docker-experimental"] == "false"
        assert "builder-version" in headers
        assert headers["cache-control"].startswith("no-cache")
        assert body == (b"OK" if method == "GET" else b"")


@pytest.mark.parametrize("prefix", ["", "/v1.24", "/v1.41"])
def test_version_under_every_accepted_prefix(daemon, prefix):
    status, headers, body = get(daemon.socket_path, f"{prefix}/version")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert body.endswith(b"\n")
    assert json.loads(body)["ApiVersion"] == "1.41"


def test_unknown_route_is_page_not_found(daemon):
    status, _, body = get(daemon.socket_path, "/v1.41/no/such/route")
    assert status == 404
    assert json.loads(body) == {"message": "page not found"}


def test_too_old_api_version(daemon):
    status, _, body = get(daemon.socket_path, "/v1.12/version")
    assert status == 400
    assert "client version 1.12 is too old" in json.loads(body)["message"]


def test_requests_are_logged_at_debug(daemon):
    get(daemon.socket_path, "/v1.41/info")
    assert 'level=debug msg="Calling GET /v1.41/info"' in daemon.log_path.read_text()


# --- our CLI -------------------------------------------------------------------------------------------


def test_dockyard_version_and_info(dockyard, daemon):
    result = dockyard("version")
    assert result.returncode == 0, result.output
    assert "Server: Dockyard Engine" in result.stdout
    assert "API version:    1.41 (minimum version 1.24)" in result.stdout
    result = dockyard("info")
    assert result.returncode == 0, result.output
    assert f"Dockyard Root Dir: {daemon.data_root}" in result.stdout


def test_dockyard_host_from_environment(daemon):
    result = run_cli([DOCKYARD, "info", "--format", "{{.DockerRootDir}}"], env={"DOCKYARD_HOST": daemon.host})
    assert result.returncode == 0, result.output
    assert result.stdout.strip() == str(daemon.data_root)


def test_dockyard_cli_when_daemon_is_down(tmp_path):
    host = f"unix://{tmp_path}/none.sock"
    result = run_cli([DOCKYARD, "-H", host, "info"])
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Cannot connect to the Dockyard daemon at {host}. Is the dockyard daemon running?"
    )
    result = run_cli([DOCKYARD, "info"], env={"DOCKYARD_HOST": ""})
    if not os.path.exists("/var/run/dockyard.sock"):
        assert result.returncode == 1
        assert "Cannot connect to the Dockyard daemon at unix:///var/run/dockyard.sock." in result.stderr


def test_dockyard_events_since_until(dockyard):
    result = dockyard("events", "--since", "0", "--until", str(int(time.time())), timeout=30)
    assert result.returncode == 0, result.output


# --- daemon start-up and shut-down --------------------------------------------------------------------


def test_second_daemon_on_same_data_root_refuses(daemon, tmp_path):
    second = DaemonProcess(tmp_path / "second")
    command = second.command()
    command[command.index("--data-root") + 1] = str(daemon.data_root)
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "daemon.json").write_text("{}")
    result = run_cli(command, timeout=30)
    assert result.returncode == 1
    pid = daemon.proc.pid
    assert f"data root {daemon.data_root} is in use by another dockyardd (pid {pid})" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not os.path.exists(second.socket_path)
    assert daemon.pidfile.read_text().strip() == str(pid)  # the holder's pidfile is untouched


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"debug": true, "no-such-option": 1}',
            "the following directives don't match any configuration option: no-such-option",
        ),
        ('{"debug": true,', "invalid JSON"),
        ('{"max-concurrent-downloads": "three"}', '"max-concurrent-downloads" must be a positive integer'),
        ('{"registry-mirrors": ["mirror.local"]}', "must start with http:// or https://"),
    ],
)
def test_bad_config_file_is_one_line_error(tmp_path, content, expected):
    config = tmp_path / "daemon.json"
    config.write_text(content)
    proc = DaemonProcess(tmp_path)
    result = run_cli(proc.command(), timeout=30)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(config) in lines[0]
    assert expected in lines[0]
    assert not os.path.exists(proc.socket_path)


def test_missing_explicit_config_file(tmp_path):
    result = run_cli([DOCKYARDD, "--config-file", str(tmp_path / "nope.json")], timeout=30)
    assert result.returncode == 1
    assert "no such file or directory" in result.stderr


def test_config_file_values_and_flag_override(tmp_path, registry):
    (tmp_path / "daemon.json").write_text(
        json.dumps(
            {
                "registry-mirrors": ["http://127.0.0.1:1"],
                "labels": ["team=yard"],
                "max-concurrent-downloads": 5,
            }
        )
    )
    proc = DaemonProcess(tmp_path, ["--registry-mirror", registry.url]).start()
    try:
        import docker as docker_sdk

        info = docker_sdk.APIClient(base_url=proc.host, version="1.41").info()
        assert info["RegistryConfig"]["Mirrors"] == [registry.url + "/"]  # the flag won
        assert info["Labels"] == ["team=yard"]  # the file still applied
    finally:
        assert proc.stop() == 0


def test_socket_mode_and_group(tmp_path):
    group = grp.getgrnam("daemon")  # present on every Debian system
    proc = DaemonProcess(tmp_path, ["--group", group.gr_name]).start()
    try:
        st = os.stat(proc.socket_path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_gid == group.gr_gid
    finally:
        proc.stop()


def test_sigterm_removes_socket_and_pidfile(tmp_path):
    proc = DaemonProcess(tmp_path).start()
    assert proc.pidfile.read_text().strip() == str(proc.proc.pid)
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(20) == 0
    assert not os.path.exists(proc.socket_path)
    assert not proc.pidfile.exists()
    assert "Daemon shutdown complete" in proc.log_tail()
    # The lock is released: a new daemon takes the same data root at once.
    again = DaemonProcess(tmp_path).start()
    assert again.stop() == 0


def test_stale_socket_is_replaced(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "dockyard.sock"))
    stale.close()  # a socket file nobody listens on, as after a crash
    proc = DaemonProcess(tmp_path).start()
    assert proc.stop() == 0


def test_kill_9_then_restart_takes_the_data_root(tmp_path):
    proc = DaemonProcess(tmp_path).start()
    proc.kill()
    again = DaemonProcess(tmp_path).start()  # stale socket, pidfile and lock holder are all dead
    try:
        assert Path(again.pidfile).read_text().strip() == str(again.proc.pid)
    finally:
        again.stop()


def test_registry_fixture_serves_the_test_images(registry):
    import testimages

    content_type, body = testimages.get_manifest(registry.address, "library/httpd", "latest")
    manifest = json.loads(body)
    assert content_type == "application/vnd.docker.distribution.manifest.v2+json"
    assert len(manifest["layers"]) == 2


def test_dockyardd_refuses_non_root(tmp_path):
    command = DaemonProcess(tmp_path).command()
    command[command.index("--config-file") + 1] = "/dev/null"  # readable by the unprivileged user
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "dockyardd: dockyardd needs to be started with root privileges"


def test_live_restore_is_on_by_default(docker) -> None:
    """Containers outlive a daemon stop unless daemon.json says "live-restore": false; info says so."""
    result = docker("info", "--format", "{{.LiveRestoreEnabled}}")
    assert result.returncode == 0, result.output
    assert result.stdout.strip() == "true"


def test_system_df_as_docker_shows_it(tmp_path: Path, registry) -> None:
    """`system df` and `-v` print what the docker CLI prints from the same daemon's GET /system/df (a daemon
    of its own, whose images and containers no other test changes between the two calls)."""
    proc = DaemonProcess(tmp_path / "d", ["--registry-mirror", registry.url]).start()
    try:

        def cli(tool: str, *args: str) -> str:
            argv = ["docker", "-H", proc.host] if tool == "docker" else [DOCKYARD, "-H", proc.host]
            done = run_cli([*argv, *args], timeout=60)
            assert done.returncode == 0, done.output
            return done.stdout

        script = "head -c 300000 /dev/zero > /big; head -c 5000 /dev/zero > /data/f; sleep 300"
        cli("docker", "run", "-d", "--name", "dfa", "-v", "dfvol:/data", "busybox", "sh", "-c", script)
        cli("docker", "run", "--name", "dfb", "busybox", "sh", "-c", "head -c 1000 /dev/zero > /x")
        cli("docker", "tag", "busybox", "extra/tag:1")  # an image of two tags shows as one row
        until("the container's writes", lambda: "300kB" in cli("docker", "system", "df", "-v"))
        for args in (["system", "df"], ["system", "df", "-v"]):
            # the CREATED/STATUS columns may age between the two calls: compare all else
            theirs, ours = _steady(cli("docker", *args)), _steady(cli(DOCKYARD, *args))
            assert ours == theirs, "\n".join(ours) + "\n----\n" + "\n".join(theirs)
        summary = cli(DOCKYARD, "system", "df")
        assert "Containers      2         1         301kB     1kB (0%)" in summary, summary
        verbose = cli(DOCKYARD, "system", "df", "-v")
        assert "dfvol         1         5kB" in verbose and "dfa" in verbose, verbose
    finally:
        # removed even when an assertion failed: a container outlives its daemon's stop
        run_cli([DOCKYARD, "-H", proc.host, "rm", "-f", "dfa", "dfb"], timeout=60)
        proc.stop()


def _steady(text: str) -> list[str]:
    return [
        re.sub(r"\d+ seconds?|Less than a second|About a minute|\d+ minutes?", "T", line)
        for line in text.splitlines()
    ]


def test_system_prune_as_docker_prints_it(tmp_path: Path, registry) -> None:
    """On a daemon of its own (a prune takes everything unused): ours and the docker CLI prompt, and print
    what went, alike; `-a` takes the unused images too."""
    proc = DaemonProcess(tmp_path / "d", ["--registry-mirror", registry.url]).start()
    try:

        def cli(tool: str, *args: str, stdin: str = "") -> str:
            argv = ["docker", "-H", proc.host] if tool == "docker" else [DOCKYARD, "-H", proc.host]
            done = run_cli([*argv, *args], input=stdin, timeout=60)
            assert done.returncode == 0, done.output
            return re.sub(r"[0-9a-f]{64}", "ID", done.stdout)

        def leftovers() -> None:
            cli("docker", "run", "--name", unique("stopped"), "busybox", "true")
            cli("docker", "network", "create", "unused-net")  # pruned each round, so made again
            cli("docker", "volume", "create")

        for flags in (["system", "prune"], ["system", "prune", "-a", "--volumes"]):
            assert cli(DOCKYARD, *flags, stdin="n\n") == cli("docker", *flags, stdin="n\n")
        outputs = []
        for tool in ("docker", DOCKYARD):
            leftovers()
            outputs.append(cli(tool, "system", "prune", "-f", "--volumes"))
        assert outputs[0] == outputs[1], outputs
        assert (
            "Deleted Containers:\nID\n\nDeleted Networks:\n" in outputs[1]
            and "Deleted Volumes:\nID\n" in outputs[1]
        )
        pruned = cli(DOCKYARD, "system", "prune", "-af")
        assert "Deleted Images:\nuntagged: busybox:latest" in pruned, pruned
        assert cli("docker", "images", "-q") == ""
    finally:
        proc.stop()
