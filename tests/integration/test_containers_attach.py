"""Attached containers against a real dockyardd: `docker run` without -d (create, attach by connection
hijack, wait, start), stdin through -i, exit codes, our CLI's `run` and docker-py's `containers.run`."""

from __future__ import annotations

import uuid

import pytest
from harness import unique

TIMEOUT = 60.0
pytestmark = pytest.mark.runtimes  # each test on the built-in runtime and on runc


@pytest.fixture(autouse=True)
def busybox(docker):
    """busybox present, whichever test runs first."""
    if docker("image", "inspect", "busybox", timeout=TIMEOUT).returncode != 0:
        pulled = docker("pull", "busybox", timeout=TIMEOUT)
        assert pulled.returncode == 0, pulled.output


def test_docker_run_rm_echo(docker):
    result = docker("run", "--rm", "busybox", "echo", "hi", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    assert result.stdout == "hi\n"


def test_docker_run_streams_and_exit_code(docker, names):
    name = unique("attach")
    names.append(name)
    result = docker(
        "run", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2; exit 5", timeout=TIMEOUT
    )
    assert result.returncode == 5, result.output
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_docker_run_interactive_stdin(docker):
    result = docker("run", "--rm", "-i", "busybox", "cat", input="abc", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    assert result.stdout == "abc"


def test_docker_run_many_lines_not_lost(docker):
    result = docker("run", "--rm", "busybox", "seq", "1", "2000", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    assert result.stdout.split() == [str(i) for i in range(1, 2001)]


def test_dockyard_run_attached(dockyard, docker):
    result = dockyard("run", "--rm", "busybox", "echo", "hi", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    assert result.stdout == "hi\n"


def test_dockyard_run_exit_code_and_stderr(dockyard, names):
    name = unique("attach")
    names.append(name)
    result = dockyard(
        "run", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2; exit 3", timeout=TIMEOUT
    )
    assert result.returncode == 3, result.output
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_dockyard_run_interactive(dockyard):
    result = dockyard("run", "--rm", "-i", "busybox", "cat", input="abc", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    assert result.stdout == "abc"


def test_docker_py_run(docker_client):
    name = unique("attach-py")
    try:
        out = docker_client.containers.run("busybox", "echo hi", name=name)
        assert out == b"hi\n"
    finally:
        docker_client.containers.get(name).remove(force=True)


def test_docker_run_tty(docker):
    result = docker("run", "--rm", "-t", "busybox", "echo", "hi", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    assert result.stdout.replace("\r\n", "\n") == "hi\n"


def test_dockyard_run_tty(dockyard):
    result = dockyard("run", "--rm", "-t", "busybox", "echo", "hi", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    assert result.stdout.replace("\r\n", "\n") == "hi\n"


def test_dockyard_run_missing_command(dockyard):
    result = dockyard("run", "--rm", "busybox", "no-such-command", timeout=TIMEOUT)
    assert result.returncode == 127, result.output


def test_resize_not_running(docker_client, names):
    name = unique("attach-resize")
    names.append(name)
    container = docker_client.containers.create("busybox", "true", name=name)
    import docker as docker_sdk

    with pytest.raises(docker_sdk.errors.APIError) as info:
        container.resize(24, 80)
    assert info.value.status_code == 409
    assert "is not running" in str(info.value)


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_run_interactive_tty(cli, daemon):
    from harness import DOCKYARD, run_in_pty

    env = {"DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.root / "docker-config")}
    argv = ["docker"] if cli == "docker" else [DOCKYARD, "-H", daemon.host]
    argv += [
        "run",
        "--rm",
        "-it",
        "busybox",
        "sh",
        "-c",
        "echo size $(stty size); read x; echo got-$x; exit 7",
    ]
    status, output = run_in_pty(argv, env, b"hello\r")
    assert status == 7, output
    assert b"size 30 100" in output
    assert b"got-hello" in output


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_run_interactive_tty_detaches_with_ctrl_p_ctrl_q(cli, daemon, docker, names):
    """-it as docker's: ctrl-p ctrl-q leaves the container running and the CLI exits 0."""
    from harness import DOCKYARD, run_in_pty

    name = unique("detach")
    names.append(name)
    env = {"DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.root / "docker-config")}
    argv = ["docker"] if cli == "docker" else [DOCKYARD, "-H", daemon.host]
    argv += [
        "run",
        "-it",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "echo size $(stty size); read x; echo got-$x",
    ]
    status, output = run_in_pty(argv, env, b"\x10\x11")
    assert status == 0, output
    assert b"got-" not in output
    assert docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    docker("rm", "-f", name)


def test_docker_start_attach(docker, names):
    name = unique("attach-start")
    names.append(name)
    created = docker("create", "--name", name, "busybox", "sh", "-c", "echo hi; exit 2", timeout=TIMEOUT)
    assert created.returncode == 0, created.output
    result = docker("start", "-a", name, timeout=TIMEOUT)
    assert result.returncode == 2, result.output
    assert result.stdout == "hi\n"
    again = docker("start", "-a", name, timeout=TIMEOUT)  # a second start: attached again
    assert again.returncode == 2, again.output
    assert again.stdout == "hi\n"


def test_docker_attach_running(docker, names):
    name = unique("attach-running")
    names.append(name)
    started = docker(
        "run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1; echo late; exit 4", timeout=TIMEOUT
    )
    assert started.returncode == 0, started.output
    result = docker("attach", name, timeout=TIMEOUT)
    assert result.returncode == 4, result.output
    assert result.stdout == "late\n"


def test_docker_py_attach_socket_then_start(docker_client, names):
    """The hijack through docker-py; a client gone before the start leaves nothing waiting."""
    import time

    from docker.utils.socket import frames_iter

    gone = docker_client.containers.create("busybox", ["sh", "-c", "echo first"], name=unique("attach-py"))
    names.append(gone.name)
    early = docker_client.api.attach_socket(gone.id, params={"stdout": 1, "stderr": 1, "stream": 1})
    early.close()
    time.sleep(0.2)
    gone.start()
    assert gone.wait(timeout=TIMEOUT)["StatusCode"] == 0
    assert gone.logs() == b"first\n"

    command = ["sh", "-c", "echo a; echo b >&2"]
    c = docker_client.containers.create("busybox", command, name=unique("attach-py"))
    names.append(c.name)
    sock = docker_client.api.attach_socket(c.id, params={"stdout": 1, "stderr": 1, "stream": 1})
    c.start()
    got: dict[int, bytes] = {1: b"", 2: b""}
    for stream, data in frames_iter(sock, tty=False):
        got[stream] += data
    sock.close()
    assert got == {1: b"a\n", 2: b"b\n"}
    assert c.wait(timeout=TIMEOUT)["StatusCode"] == 0


@pytest.mark.runtimes("dockyard")  # a daemon of its own: once is enough
def test_daemon_stops_with_an_attach_waiting(registry, workdir):
    """An attach waiting for a start that never comes does not hold the daemon's shutdown."""
    import time

    import docker as docker_sdk
    from harness import DaemonProcess

    own = DaemonProcess(workdir / f"daemon-{uuid.uuid4().hex[:6]}", ["--registry-mirror", registry.url])
    own.start()
    try:
        client = docker_sdk.DockerClient(base_url=own.host, timeout=60)
        client.images.pull("busybox", tag="latest")
        c = client.containers.create("busybox", ["true"])
        sock = client.api.attach_socket(c.id, params={"stdout": 1, "stderr": 1, "stream": 1})
        began = time.monotonic()
        assert own.stop(timeout=20) == 0
        assert time.monotonic() - began < 10
        sock.close()
        client.close()
    finally:
        own.kill()
