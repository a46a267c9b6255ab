"""docker exec against a real dockyardd: the official CLI (streams, exit codes, -i, -t, -it, -d, -e, -w, -u),
the container's namespaces, errors worded as dockerd's, exec inspect and events, docker-py's exec_run, our
own CLI, the shim's bookkeeping (no fd or process left behind), and execs across a daemon restart."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import DOCKYARD, DaemonProcess, run_cli, run_in_pty, unique, until

TIMEOUT = 60.0


@pytest.fixture(autouse=True)
def busybox(docker):
    if docker("image", "inspect", "busybox", timeout=TIMEOUT).returncode != 0:
        pulled = docker("pull", "busybox", timeout=TIMEOUT)
        assert pulled.returncode == 0, pulled.output


@pytest.fixture
def box(docker) -> Iterator[str]:
    """A running container that wrote a marker file before it went to sleep."""
    name = unique("exec")
    started = docker(
        "run", "-d", "--name", name, "busybox", "sh", "-c", "echo here > /tmp/marker; exec sleep 300"
    )
    assert started.returncode == 0, started.output
    until("the marker", lambda: docker("exec", name, "cat", "/tmp/marker").stdout == "here\n")
    yield name
    docker("rm", "-f", name, timeout=TIMEOUT)


def test_streams_separated_and_exit_code(docker, box):
    result = docker("exec", box, "sh", "-c", "echo out; echo err >&2; exit 7", timeout=TIMEOUT)
    assert result.returncode == 7, result.output
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_interactive_stdin_ends_with_the_input(docker, box):
    result = docker("exec", "-i", box, "sh", "-c", "cat; echo done", input="piped-input\n", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    assert result.stdout == "piped-input\ndone\n"


def test_env_workdir_and_user(docker, box):
    result = docker(
        "exec", "-e", "FOO=bar", "-w", "/tmp", box, "sh", "-c", "echo $FOO; pwd; echo $HOME", timeout=TIMEOUT
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "bar\n/tmp\n/root\n"
    nobody = docker("exec", "-u", "nobody", box, "id", timeout=TIMEOUT)
    assert nobody.returncode == 0, nobody.output
    assert nobody.stdout.startswith("uid=65534(nobody) gid=65534(nogroup)"), nobody.stdout
    numeric = docker("exec", "-u", "1234:5678", box, "id", "-u", timeout=TIMEOUT)
    assert numeric.stdout == "1234\n", numeric.output


def test_sees_the_containers_filesystem_hostname_and_pids(docker, box):
    hostname = docker("inspect", "-f", "{{.Config.Hostname}}", box).stdout.strip()
    assert docker("exec", box, "hostname").stdout.strip() == hostname
    assert docker("exec", box, "cat", "/tmp/marker").stdout == "here\n"
    ps = docker("exec", box, "ps", "-o", "pid,args", timeout=TIMEOUT)
    assert ps.returncode == 0, ps.output
    rows = [line.split(None, 1) for line in ps.stdout.splitlines()[1:]]
    assert ["1", "sleep 300"] in rows, ps.stdout  # the container's init is PID 1 here, too
    assert all(int(pid) < 100 for pid, _ in rows), ps.stdout  # no host process in sight
    # the exec is in the container's cgroup (the same line of /proc/self/cgroup as its init's)
    mine = docker("exec", box, "cat", "/proc/self/cgroup").stdout
    init = docker("exec", box, "cat", "/proc/1/cgroup").stdout
    assert mine == init


def test_detached_exec_runs_in_the_background(docker, box):
    result = docker("exec", "-d", box, "sh", "-c", "sleep 0.2; echo later > /tmp/detached", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    assert result.stdout == ""
    until("the detached exec", lambda: docker("exec", box, "cat", "/tmp/detached").stdout == "later\n")


def test_command_not_found(docker, box):
    result = docker("exec", box, "nosuchbinary", timeout=TIMEOUT)
    assert result.returncode == 126, result.output
    assert result.stdout == (
        "OCI runtime exec failed: exec failed: unable to start container process: exec: "
        '"nosuchbinary": executable file not found in $PATH: unknown\n'  # "\r\n", read as text
    )
    missing = docker("exec", box, "/no/such/path", timeout=TIMEOUT)
    assert missing.returncode == 126, missing.output
    assert "stat /no/such/path: no such file or directory: unknown" in missing.stdout
    shell = docker("exec", box, "sh", "-c", "nosuch", timeout=TIMEOUT)
    assert shell.returncode == 127, shell.output
    assert "nosuch: not found" in shell.stderr


def test_exec_in_a_stopped_container(docker):
    name = unique("exec-stopped")
    created = docker("create", "--name", name, "busybox", "true")
    assert created.returncode == 0, created.output
    try:
        result = docker("exec", name, "true", timeout=TIMEOUT)
        assert result.returncode == 1
        assert (
            result.stderr.strip()
            == f"Error response from daemon: Container {created.stdout.strip()} is not running"
        )
        missing = docker("exec", unique("missing"), "true", timeout=TIMEOUT)
        assert missing.returncode == 1
        assert "No such container" in missing.stderr
    finally:
        docker("rm", "-f", name)


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_interactive_tty(cli, daemon, box):
    argv = ["docker", "-H", daemon.host] if cli == "docker" else [DOCKYARD, "-H", daemon.host]
    # the docker CLI (API 1.41) sizes the exec's pty by a resize racing with the start, as with dockerd:
    # give it a moment; ours sends ConsoleSize with the create, so the pty has its size from the start
    wait = "sleep 0.5; " if cli == "docker" else ""
    script = wait + "echo size $(stty size); read x; echo got-$x $TERM; exit 3"
    argv += ["exec", "-it", box, "sh", "-c", script]
    status, output = run_in_pty(argv, {}, b"hello\r")
    assert status == 3, output
    assert b"size 30 100" in output  # the exec's own pty, with the client's terminal size
    assert b"got-hello xterm" in output


def test_tty_without_stdin(docker, box):
    result = docker("exec", "-t", box, "sh", "-c", "echo t-out; echo t-err >&2; tty", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:2] == ["t-out", "t-err"], result.output  # one raw stream: stderr merged
    assert result.stderr == ""
    assert lines[2].startswith("/dev/pts/"), result.output


def test_exec_inspect_ids_and_events(docker, docker_client, box):
    import docker as docker_sdk

    since = int(time.time()) - 1
    api = docker_client.api
    container_id = docker_client.containers.get(box).id
    exec_id = api.exec_create(box, ["sh", "-c", "exit 3"], user="nobody")["Id"]
    assert len(exec_id) == 64
    before = api.exec_inspect(exec_id)
    assert before["Running"] is False and before["ExitCode"] is None and before["Pid"] == 0
    assert before["ContainerID"] == container_id
    assert before["ProcessConfig"] == {
        "tty": False,
        "entrypoint": "sh",
        "arguments": ["-c", "exit 3"],
        "privileged": False,
        "user": "nobody",
    }
    assert api.inspect_container(box)["ExecIDs"] == [exec_id]
    api.exec_start(exec_id)
    after = api.exec_inspect(exec_id)
    assert after["Running"] is False and after["ExitCode"] == 3 and after["Pid"] > 0
    assert api.inspect_container(box)["ExecIDs"] is None
    with pytest.raises(docker_sdk.errors.APIError) as info:
        api.exec_start(exec_id)
    assert info.value.status_code == 409
    with pytest.raises(docker_sdk.errors.NotFound) as missing:
        api.exec_inspect("nosuchexec")
    assert "No such exec instance: nosuchexec" in str(missing.value)
    events = docker(
        "events",
        "--since",
        str(since),
        "--until",
        str(int(time.time()) + 1),
        "--filter",
        f"container={box}",
        "--format",
        "{{json .}}",
        timeout=TIMEOUT,
    )
    actions = [
        (e["Action"], e["Actor"]["Attributes"].get("execID"), e["Actor"]["Attributes"].get("exitCode"))
        for e in map(json.loads, events.stdout.splitlines())
    ]
    assert ("exec_create: sh -c exit 3", exec_id, None) in actions, actions
    assert ("exec_start: sh -c exit 3", exec_id, None) in actions, actions
    assert ("exec_die", exec_id, "3") in actions, actions


def test_docker_py_exec_run(docker_client, box):
    container = docker_client.containers.get(box)
    result = container.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert result.exit_code == 4
    assert result.output == b"out\nerr\n"
    demuxed = container.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert demuxed.exit_code == 0
    assert demuxed.output == (b"out\n", b"err\n")
    env = container.exec_run("sh -c 'echo $A-$B'", environment={"A": "1", "B": "2"}, workdir="/etc")
    assert env.output == b"1-2\n"


def test_exec_is_filtered_by_the_containers_seccomp_profile(docker, box):
    status = docker("exec", box, "grep", "Seccomp:", "/proc/self/status", timeout=TIMEOUT)
    assert status.stdout.split() == ["Seccomp:", "2"], status.output
    denied = docker("exec", box, "unshare", "-U", "true", timeout=TIMEOUT)  # the default profile's refusal
    assert denied.returncode != 0 and "Operation not permitted" in denied.output
    name = unique("exec-unconfined")
    run = docker(
        "run", "-d", "--name", name, "--security-opt", "seccomp=unconfined", "busybox", "sleep", "60"
    )
    assert run.returncode == 0, run.output
    try:
        status = docker("exec", name, "grep", "Seccomp:", "/proc/self/status", timeout=TIMEOUT)
        assert status.stdout.split() == ["Seccomp:", "0"], status.output
    finally:
        docker("rm", "-f", name, timeout=TIMEOUT)


def _host_has_every_capability() -> bool:
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    status = Path("/proc/self/status").read_text()
    bounding = int(next(line for line in status.splitlines() if line.startswith("CapBnd:")).split()[1], 16)
    return bounding == (1 << (last + 1)) - 1


@pytest.mark.skipif(
    not _host_has_every_capability(), reason="this host withholds capabilities: nothing runs privileged"
)
def test_privileged_exec(docker_client, box):
    container = docker_client.containers.get(box)
    privileged = container.exec_run(["sh", "-c", "grep CapEff /proc/self/status"], privileged=True)
    plain = container.exec_run(["sh", "-c", "grep CapEff /proc/self/status"])
    assert privileged.exit_code == 0, privileged.output
    assert int(privileged.output.split()[1], 16) > int(plain.output.split()[1], 16)


def test_dockyard_exec(dockyard, box):
    result = dockyard("exec", box, "sh", "-c", "echo out; echo err >&2; exit 5", timeout=TIMEOUT)
    assert result.returncode == 5, result.output
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    piped = dockyard(
        "exec", "-i", "-e", "X=y", box, "sh", "-c", "cat; echo $X", input="abc\n", timeout=TIMEOUT
    )
    assert piped.returncode == 0, piped.output
    assert piped.stdout == "abc\ny\n"
    detached = dockyard("container", "exec", "-d", box, "touch", "/tmp/by-dockyard", timeout=TIMEOUT)
    assert detached.returncode == 0, detached.output
    until("the detached exec", lambda: dockyard("exec", box, "ls", "/tmp/by-dockyard").returncode == 0)
    missing = dockyard("exec", box, "nosuchbinary", timeout=TIMEOUT)
    assert missing.returncode == 126, missing.output
    assert "executable file not found in $PATH" in missing.stdout


def _shim_pid(daemon: DaemonProcess, container_id: str) -> int:
    return int((daemon.data_root / "containers" / container_id / "shim" / "shim.pid").read_text())


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_no_fd_or_process_left_in_the_shim(docker, daemon, box):
    container_id = docker("inspect", "-f", "{{.Id}}", box).stdout.strip()
    shim = _shim_pid(daemon, container_id)
    docker("exec", box, "true", timeout=TIMEOUT)  # the first exec warms up whatever it imports
    fds = sorted(os.listdir(f"/proc/{shim}/fd"))
    children = _children(shim)
    assert len(children) == 1  # the container's init
    for args in (["true"], ["-i", box, "cat"], ["-t", box, "true"], ["-d", box, "true"], [box, "nosuch"]):
        argv = args if args[0].startswith("-") else [box, *args]
        docker("exec", *argv, input="x", timeout=TIMEOUT)
    until("the execs to be reaped", lambda: _children(shim) == children)
    assert sorted(os.listdir(f"/proc/{shim}/fd")) == fds


def test_execs_die_with_the_container(docker, box):
    docker("exec", "-d", box, "sleep", "4321", timeout=TIMEOUT)
    docker("exec", "-d", box, "sh", "-c", "trap '' TERM; sleep 4321", timeout=TIMEOUT)

    def sleepers() -> int:
        count = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x004321\x00":
                    count += 1
            except OSError:
                continue
        return count

    until("the exec'd sleeps", lambda: sleepers() == 2)
    assert docker("kill", box, timeout=TIMEOUT).returncode == 0
    assert docker("wait", box, timeout=TIMEOUT).stdout.strip() == "137"
    until("the exec'd processes to go", lambda: sleepers() == 0, timeout=10)


@pytest.mark.runtimes("dockyard")
def test_exec_after_a_daemon_restart(tmp_path, registry):
    proc = DaemonProcess(tmp_path / "d", ["--registry-mirror", registry.url])
    proc.start()

    def docker(*args: str, **kwargs):
        env = {"DOCKER_HOST": proc.host, "DOCKER_CONFIG": str(proc.root / "docker-config")}
        return run_cli(["docker", *args], env=env, timeout=TIMEOUT, **kwargs)

    try:
        run = docker("run", "-d", "--name", "kept", "busybox", "sleep", "60")
        assert run.returncode == 0, run.output
        assert docker("exec", "-d", "kept", "sh", "-c", "sleep 1; echo survived > /tmp/s").returncode == 0
        proc.stop()
        proc.start()
        until("the detached exec", lambda: docker("exec", "kept", "cat", "/tmp/s").stdout == "survived\n")
        result = docker("exec", "-i", "kept", "sh", "-c", "cat; exit 9", input="again\n")
        assert result.returncode == 9, result.output
        assert result.stdout == "again\n"
    finally:
        docker("rm", "-f", "kept")
        proc.stop()
