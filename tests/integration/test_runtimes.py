"""External OCI runtimes behind the shim: choosing one (`--runtime`, `--default-runtime`, `--add-runtime`,
daemon.json `runtimes`), runc's own errors in Docker's words, limits runc applies from the spec, nothing of
runc's left after rm, a runc container across a daemon restart, and crun where it is installed.

The container behaviour itself on runc is covered by test_containers*.py, which run on every runtime."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import DaemonProcess, run_cli, unique

TIMEOUT = 60.0
RUNC = shutil.which("runc")
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


def _cgroup_dirs(container_id: str) -> list[str]:
    """Every cgroup directory named for the container, in any hierarchy (v1 controllers, v2)."""
    top = Path("/sys/fs/cgroup")
    candidates = [top / "dockyard" / container_id]
    candidates += [h / "dockyard" / container_id for h in top.iterdir() if h.is_dir()]
    return [str(path) for path in candidates if path.exists()]


@pytest.fixture
def names(docker):
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(unique(prefix))
        return made[-1]

    yield make
    for name in made:
        docker("rm", "-f", name)


def test_info_names_the_runtimes(docker_client) -> None:
    info = docker_client.info()
    assert info["DefaultRuntime"] == "dockyard"
    assert "dockyard" in info["Runtimes"]
    if RUNC is not None:
        assert info["Runtimes"]["runc"] == {"path": "runc"}
        assert info["RuncCommit"]["ID"]


def test_an_unknown_runtime_is_refused_at_create(docker, docker_client) -> None:
    import docker as docker_sdk

    run = docker("run", "--rm", "--runtime", "nosuchruntime", "busybox", "true")
    assert run.returncode == 125, run.output
    assert "Unknown runtime specified nosuchruntime" in run.stderr
    with pytest.raises(docker_sdk.errors.APIError) as e:
        docker_client.containers.create("busybox", ["true"], runtime="nosuchruntime")
    assert e.value.status_code == 400
    assert e.value.explanation == "Unknown runtime specified nosuchruntime"


def test_inspect_shows_the_runtime_chosen_at_create(docker, names) -> None:
    default = names("rt-default")
    assert docker("create", "--name", default, "busybox", "true").returncode == 0
    assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", default).stdout.strip() == "dockyard"
    if RUNC is None:
        return
    chosen = names("rt-runc")
    assert docker("create", "--runtime", "runc", "--name", chosen, "busybox", "true").returncode == 0
    assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", chosen).stdout.strip() == "runc"


@needs_runc
def test_runc_error_reaches_the_user_as_docker_words_it(docker, names) -> None:
    name = names("rt-nb")
    run = docker("run", "--runtime", "runc", "--name", name, "busybox", "nosuchbinary")
    assert run.returncode == 127, run.output
    assert run.stderr.splitlines()[0] == (
        "docker: Error response from daemon: failed to create shim task: OCI runtime create failed: "
        'runc create failed: unable to start container process: exec: "nosuchbinary": executable file not '
        "found in $PATH: unknown"
    )
    state = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()
    assert state == ["exited", "127"]


@needs_runc
def test_runc_applies_the_memory_limit_and_leaves_nothing_after_rm(docker, daemon, names) -> None:
    name = names("rt-mem")
    run = docker("run", "-d", "--runtime", "runc", "-m", "64m", "--name", name, "busybox", "sleep", "60")
    assert run.returncode == 0, run.output
    cid = run.stdout.strip()
    state_dir = daemon.exec_root / "runtime-runc" / cid
    assert state_dir.is_dir()  # runc's own state, under our --root
    dirs = _cgroup_dirs(cid)
    assert dirs, "runc made no cgroup for the container"
    memory = Path("/sys/fs/cgroup/memory/dockyard") / cid / "memory.limit_in_bytes"
    if not memory.exists():  # cgroup v2
        memory = Path("/sys/fs/cgroup/dockyard") / cid / "memory.max"
    assert memory.read_text().strip() == str(64 * 1024 * 1024)
    kill = docker("kill", name)
    assert kill.returncode == 0, kill.output
    assert docker("wait", name, timeout=TIMEOUT).stdout.strip() == "137"
    assert docker("rm", name).returncode == 0
    assert not state_dir.exists()
    assert _cgroup_dirs(cid) == []


@needs_runc
def test_rm_force_of_a_running_runc_container(docker, daemon) -> None:
    name = unique("rt-rmf")
    run = docker("run", "-d", "--runtime", "runc", "--name", name, "busybox", "sleep", "60")
    assert run.returncode == 0, run.output
    cid = run.stdout.strip()
    assert docker("rm", "-f", name).returncode == 0
    assert name not in docker("ps", "-a").stdout
    assert not (daemon.exec_root / "runtime-runc" / cid).exists()
    assert _cgroup_dirs(cid) == []


@needs_runc
def test_runc_container_outlives_a_daemon_restart_and_flags_choose_runtimes(tmp_path, registry) -> None:
    """--default-runtime, --add-runtime and daemon.json runtimeArgs; the shim keeps runc's container."""
    root = tmp_path / "d"
    root.mkdir()
    (root / "daemon.json").write_text(
        json.dumps({"runtimes": {"runc-debug": {"path": RUNC, "runtimeArgs": ["--debug"]}}})
    )
    proc = DaemonProcess(
        root,
        [
            "--registry-mirror",
            registry.url,
            "--default-runtime",
            "runc",
            "--add-runtime",
            f"other={RUNC}",
            "--live-restore",
        ],
    )
    proc.start()

    def docker(*args: str):
        env = {"DOCKER_HOST": proc.host, "DOCKER_CONFIG": str(proc.root / "docker-config")}
        return run_cli(["docker", *args], env=env, timeout=TIMEOUT)

    try:
        info = json.loads(docker("info", "--format", "{{json .}}").stdout)
        assert info["DefaultRuntime"] == "runc"
        assert info["Runtimes"]["other"] == {"path": RUNC}
        assert info["Runtimes"]["runc-debug"] == {"path": RUNC, "runtimeArgs": ["--debug"]}
        run = docker("run", "-d", "--name", "survivor", "busybox", "sh", "-c", "echo up; sleep 60")
        assert run.returncode == 0, run.output
        assert docker("inspect", "-f", "{{.HostConfig.Runtime}}", "survivor").stdout.strip() == "runc"
        for runtime in ("other", "runc-debug"):
            out = docker("run", "--name", runtime, "--runtime", runtime, "busybox", "echo", runtime)
            assert out.returncode == 0 and out.stdout == f"{runtime}\n", out.output
        # runtimeArgs reach runc: its --debug writes debug lines to the runtime's log
        debug_id = docker("inspect", "-f", "{{.Id}}", "runc-debug").stdout.strip()
        runtime_log = proc.data_root / "containers" / debug_id / "shim" / "runtime.log"
        assert '"level":"debug"' in runtime_log.read_text()
        assert docker("rm", "other", "runc-debug").returncode == 0
        proc.stop()
        proc.start()
        assert "Up " in docker("ps").stdout
        assert "up" in docker("logs", "survivor").stdout
        stop = docker("stop", "-t", "1", "survivor")
        assert stop.returncode == 0, stop.output
        assert docker("inspect", "-f", "{{.State.Status}}", "survivor").stdout.strip() == "exited"
        assert docker("rm", "survivor").returncode == 0
        runc_root = proc.exec_root / "runtime-runc"
        assert not runc_root.exists() or os.listdir(runc_root) == []
    finally:
        for cid in docker("ps", "-aq").stdout.split():
            docker("rm", "-f", cid)
        proc.stop()


@needs_runc
def test_runc_tty_lines_end_with_crlf_and_exec_works(docker, daemon, names) -> None:
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": str(daemon.root / "docker-config")}
    argv = ["docker", "run", "--runtime", "runc", "--rm", "-t", "busybox", "sh", "-c", "echo a; echo b"]
    run = subprocess.run(argv, env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"a\r\nb\r\n"  # as Docker's tty: runc's pty came with ONLCR cleared
    name = names("rt-exec")
    assert docker("run", "-d", "--runtime", "runc", "--name", name, "busybox", "sleep", "60").returncode == 0
    out = docker("exec", name, "sh", "-c", "echo in; exit 6")
    assert out.returncode == 6 and out.stdout == "in\n", out.output
    missing = docker("exec", name, "nosuchbinary")
    assert missing.returncode == 126, missing.output
    assert missing.stdout.startswith(
        'OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuchbinary": '
        "executable file not found in $PATH: unknown"
    )


@pytest.mark.skipif(shutil.which("crun") is None, reason="crun is not installed")
def test_crun(docker, names) -> None:
    """crun 1.8 refuses a host whose cgroups are hybrid (v1 controllers and a v2 mount): that refusal
    reaches the user as one line; on a v1-only or pure v2 host the container runs."""
    from dockyard.linux.cgroups import detect_layout

    name = names("rt-crun")
    run = docker("run", "--runtime", "crun", "--name", name, "busybox", "echo", "from crun")
    if detect_layout().hybrid:
        assert run.returncode == 125, run.output
        assert run.stderr.splitlines()[0] == (
            "docker: Error response from daemon: failed to create shim task: OCI runtime create failed: "
            "cgroups in hybrid mode not supported, drop all controllers from cgroupv2: unknown"
        )
    else:
        assert run.returncode == 0, run.output
        assert run.stdout == "from crun\n"
