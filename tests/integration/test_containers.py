"""Containers against a real dockyardd: run, logs, ps, stop, wait, rm through the official docker CLI, our
CLI and docker-py. After each test: no shim, no mount under the data root, no container directory."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from harness import DOCKYARD, DaemonProcess, unique, until

TIMEOUT = 30.0
pytestmark = pytest.mark.runtimes  # each test on the built-in runtime and on runc


def _shims_under(path: str) -> list[int]:
    """Shims of the daemon whose data root is `path`: a shim works in its state dir there (its command line
    is the fork-server's, which names no path)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd.startswith(path.rstrip("/") + "/"):
            found.append(int(pid))
    return found


@pytest.fixture
def clean(daemon: DaemonProcess, docker) -> Iterator[None]:
    yield
    leftover = docker("ps", "-aq").stdout.split()
    for cid in leftover:
        docker("rm", "-f", cid)
    root = str(daemon.data_root)
    until("the shims to exit", lambda: not _shims_under(root))
    with open("/proc/mounts") as f:
        mounts = [line for line in f if f"{root}/rootfs" in line]
    assert not mounts, mounts
    for sub in ("containers", "rootfs"):
        path = daemon.data_root / sub
        assert not path.exists() or not [p for p in os.listdir(path) if not p.startswith(".")]
    assert not leftover, f"containers left behind: {leftover}"


def test_run_logs_ps_stop_rm_with_docker(docker, clean) -> None:
    name = unique("first")
    run = docker("run", "-d", "--name", name, "busybox", "sh", "-c", "echo hi; sleep 30")
    assert run.returncode == 0, run.output
    cid = run.stdout.strip()
    assert len(cid) == 64
    until("the log", lambda: "hi" in docker("logs", name).stdout)
    ps = docker("ps")
    assert name in ps.stdout and "Up " in ps.stdout
    assert docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    stop = docker("stop", "-t", "2", name)
    assert stop.returncode == 0, stop.output
    code = docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip()
    assert code in ("137", "143")
    assert name not in docker("ps").stdout
    assert "Exited (" in docker("ps", "-a").stdout
    rm = docker("rm", name)
    assert rm.returncode == 0, rm.output
    assert name not in docker("ps", "-a").stdout


def test_wait_prints_the_exit_code(docker, clean) -> None:
    run = docker("run", "-d", "busybox", "sh", "-c", "exit 3")
    assert run.returncode == 0, run.output
    cid = run.stdout.strip()
    wait = docker("wait", cid, timeout=TIMEOUT)
    assert wait.stdout.strip() == "3"
    assert docker("rm", cid).returncode == 0


def test_rm_of_a_running_container_needs_force(docker, clean) -> None:
    name = unique("busy")
    assert docker("run", "-d", "--name", name, "busybox", "sleep", "30").returncode == 0
    rm = docker("rm", name)
    assert rm.returncode != 0
    assert "You cannot remove a running container" in rm.stderr
    assert "Stop the container before attempting removal or force remove" in rm.stderr
    assert docker("rm", "-f", name).returncode == 0


def test_no_such_container_and_image(docker, clean) -> None:
    assert "No such container: nosuch" in docker("logs", "nosuch").stderr
    create = docker("create", "--name", unique("x"), "nosuchimage-xyz:latest")
    assert create.returncode != 0


def test_our_cli(dockyard, clean) -> None:
    name = unique("second")
    run = dockyard("run", "-d", "--name", name, "busybox", "sh", "-c", "echo one; sleep 1; echo two")
    assert run.returncode == 0, run.output
    logs = dockyard("logs", name, "-f", timeout=TIMEOUT)
    assert logs.stdout == "one\ntwo\n", logs.output
    assert dockyard("wait", name, timeout=TIMEOUT).stdout.strip() == "0"
    assert name in dockyard("ps", "-a").stdout
    assert dockyard("rm", name, "-f").returncode == 0
    assert name not in dockyard("ps", "-a").stdout


def test_our_cli_stop_all(dockyard, clean) -> None:
    name = unique("third")
    assert dockyard("run", "-d", "--name", name, "busybox", "sleep", "30").returncode == 0
    stop = dockyard("stop", "-t", "1", "-a", timeout=TIMEOUT)
    assert stop.returncode == 0, stop.output
    assert name not in dockyard("ps").stdout
    assert dockyard("rm", name).returncode == 0


def test_docker_py(docker_client, clean) -> None:
    container = docker_client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], detach=True)
    result = container.wait(timeout=TIMEOUT)
    assert result["StatusCode"] == 0
    assert container.logs(stdout=True, stderr=False) == b"out\n"
    assert container.logs(stdout=False, stderr=True) == b"err\n"
    container.remove()


def test_our_cli_pulls_a_missing_image(dockyard, clean, daemon) -> None:
    tag = f"{unique('retag')}"
    # an image the daemon has not pulled yet: the registry's test/busybox
    run = subprocess.run(
        [DOCKYARD, "-H", daemon.host, "run", "-d", "--name", tag, "test/busybox", "true"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 2,
    )
    if "Unable to find image" not in run.stderr:
        pytest.skip("test/busybox is already present")
    assert run.returncode == 0, run.stderr
    assert "Unable to find image 'test/busybox:latest' locally" in run.stderr  # the docker CLI's words
    assert dockyard("wait", tag, timeout=TIMEOUT).stdout.strip() == "0"
    assert dockyard("rm", tag).returncode == 0


def test_etc_files_and_a_private_network(docker, clean) -> None:
    """On the default bridge: its own hostname, its address in /etc/hosts, eth0 and lo of its own."""
    name = unique("etc")
    script = "hostname; cat /etc/hosts; cat /etc/resolv.conf; ls /sys/class/net"
    run = docker("run", "-d", "--name", name, "busybox", "sh", "-c", script)
    assert run.returncode == 0, run.output
    cid = run.stdout.strip()
    assert docker("wait", name, timeout=TIMEOUT).stdout.strip() == "0"
    out = docker("logs", name).stdout
    assert out.splitlines()[0] == cid[:12]
    ip = docker("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", name).stdout.strip()
    assert ip == "", "a stopped container keeps no address"
    assert "127.0.0.1\tlocalhost" in out
    assert any(line.endswith(f"\t{cid[:12]}") and not line.startswith("127.") for line in out.splitlines())
    assert "nameserver 127." not in out
    assert out.split()[-2:] == ["eth0", "lo"]  # a namespace of its own: the bridge's veth and lo
    assert docker("rm", name).returncode == 0


def test_a_command_that_cannot_run(docker, clean) -> None:
    name = unique("bad")
    run = docker("run", "-d", "--name", name, "busybox", "nosuchbinary")
    assert run.returncode == 127, run.output
    assert 'exec: "nosuchbinary": executable file not found in $PATH' in run.stderr
    assert docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split() == [
        "exited",
        "127",
    ]
    assert docker("rm", name).returncode == 0


def test_auto_remove(docker, clean) -> None:
    name = unique("gone")
    assert docker("run", "-d", "--rm", "--name", name, "busybox", "true").returncode == 0
    until("the container to go", lambda: name not in docker("ps", "-a").stdout)


def test_a_container_outlives_a_daemon_restart(tmp_path, registry) -> None:
    from harness import run_cli

    proc = DaemonProcess(tmp_path / "d", ["--registry-mirror", registry.url])
    proc.start()

    def docker(*args: str):
        env = {"DOCKER_HOST": proc.host, "DOCKER_CONFIG": str(proc.root / "docker-config")}
        return run_cli(["docker", *args], env=env)

    try:
        run = docker("run", "-d", "--name", "survivor", "busybox", "sh", "-c", "echo up; sleep 30")
        assert run.returncode == 0, run.output
        proc.stop()
        proc.start()
        assert "Up " in docker("ps").stdout
        assert "up" in docker("logs", "survivor").stdout
        assert docker("stop", "-t", "1", "survivor").returncode == 0
        assert docker("inspect", "-f", "{{.State.Status}}", "survivor").stdout.strip() == "exited"
        assert docker("rm", "survivor").returncode == 0
        until("the shims to exit", lambda: not _shims_under(str(proc.data_root)))
        with open("/proc/mounts") as f:
            assert not [line for line in f if str(proc.data_root) + "/rootfs" in line]
    finally:
        for cid in docker("ps", "-aq").stdout.split():
            docker("rm", "-f", cid)
        proc.stop()


def test_create_start_again_and_list_with_docker_py(docker, docker_client, clean) -> None:
    name = unique("again")
    create = docker("create", "--name", name, "busybox", "sh", "-c", "echo run")
    assert create.returncode == 0, create.output
    assert "Created" in docker("ps", "-a", "--filter", f"name={name}").stdout
    for _ in range(2):
        assert docker("start", name).returncode == 0
        assert docker("wait", name, timeout=TIMEOUT).stdout.strip() == "0"
    assert docker("logs", name).stdout == "run\nrun\n"
    listed = docker_client.containers.list(all=True, filters={"name": name})
    assert [c.name for c in listed] == [name]
    assert listed[0].status == "exited"
    assert docker("logs", "--tail", "1", "-t", name).stdout.endswith("Z run\n")
    listed[0].remove()


def test_wait_for_removal(docker_client, clean) -> None:
    container = docker_client.containers.run("busybox", ["sleep", "0.5"], detach=True, auto_remove=True)
    result = container.wait(timeout=TIMEOUT, condition="removed")
    assert result["StatusCode"] == 0
