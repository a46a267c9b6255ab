"""Restart policies and live-restore against a real dockyardd, through the official docker CLI and docker-py:
on-failure's retries, always and a manual stop, stop and rm of a restarting container, what starts again
with the daemon, live-restore false stopping containers at SIGTERM, and a daemon killed under `docker run`.
Tests that restart a daemon start their own (own data root), so the session daemon is untouched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from docker.errors import APIError
from harness import DaemonProcess, Result, run_cli, unique, until

TIMEOUT = 30.0


def state(docker, name: str) -> dict:
    result = docker("inspect", name)
    assert result.returncode == 0, result.output
    data = json.loads(result.stdout)[0]
    return {**data["State"], "RestartCount": data["RestartCount"]}


def running(docker, name: str) -> bool:
    result = docker("inspect", "--format", "{{.State.Status}}", name)
    return result.returncode == 0 and result.stdout.strip() == "running"


def test_on_failure_retries_then_stops(docker, docker_client, names):
    name = unique("rp-onfail")
    names.append(name)
    since = int(time.time()) - 1
    r = docker("run", "-d", "--name", name, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 0, r.output
    until("two restarts and a final exit", lambda: (s := state(docker, name))["Status"] == "exited" and s)
    time.sleep(1.0)  # a third restart would have come within 0.4 s
    s = state(docker, name)
    assert (s["Status"], s["ExitCode"], s["RestartCount"], s["Restarting"]) == ("exited", 3, 2, False)
    info = docker_client.api.inspect_container(name)
    assert info["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    events = docker_client.events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"container": name}
    )
    actions = [e["Action"] for e in events]
    assert actions.count("die") == 3 and actions.count("start") == 3, actions


def test_always_restarts_until_stopped(docker, names):
    name = unique("rp-always")
    names.append(name)
    r = docker("run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "sleep 0.3")
    assert r.returncode == 0, r.output
    until("two restarts", lambda: state(docker, name)["RestartCount"] >= 2)
    until("it runs", lambda: state(docker, name)["Status"] == "running")
    r = docker("stop", "-t", "1", name)
    assert r.returncode == 0, r.output
    count = state(docker, name)["RestartCount"]
    time.sleep(1.5)
    s = state(docker, name)
    assert s["Status"] == "exited" and s["RestartCount"] == count, s
    # a manual start begins again: RestartCount back to 0, and the policy applies again
    r = docker("start", name)
    assert r.returncode == 0, r.output
    until("a restart after the manual start", lambda: state(docker, name)["RestartCount"] >= 1)


def _restarting_with_long_backoff(docker, name: str) -> None:
    r = docker("run", "-d", "--name", name, "--restart", "always", "busybox", "false")
    assert r.returncode == 0, r.output
    # 0.1, 0.2, 0.4, 0.8, 1.6 s: after five restarts the next wait is 3.2 s
    until(
        "a long back-off",
        lambda: (s := state(docker, name))["RestartCount"] >= 5 and s["Status"] == "restarting",
    )


def test_stop_and_rm_of_a_restarting_container_are_immediate(docker, names):
    name = unique("rp-backoff")
    names.append(name)
    _restarting_with_long_backoff(docker, name)
    s = state(docker, name)
    assert s["Running"] is True and s["Restarting"] is True and s["ExitCode"] == 1
    ps = docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
    assert ps.stdout.startswith("Restarting (1) "), ps.output
    rm = docker("rm", name)
    assert rm.returncode == 1 and "You cannot remove a restarting container" in rm.stderr, rm.output
    started = time.monotonic()
    r = docker("stop", name)
    assert r.returncode == 0, r.output
    assert time.monotonic() - started < 2.5
    count = state(docker, name)["RestartCount"]
    time.sleep(3.5)
    s = state(docker, name)
    assert s["Status"] == "exited" and s["RestartCount"] == count

    other = unique("rp-backoff-rm")
    names.append(other)
    _restarting_with_long_backoff(docker, other)
    started = time.monotonic()
    r = docker("rm", "-f", other)
    assert r.returncode == 0, r.output
    assert time.monotonic() - started < 2.5
    assert docker("inspect", other).returncode == 1


def test_restart_command_emits_restart(docker, docker_client, names):
    name = unique("rp-cmd")
    names.append(name)
    assert docker("run", "-d", "--name", name, "busybox", "sleep", "100").returncode == 0
    since = int(time.time()) - 1
    r = docker("restart", "-t", "0", name)
    assert r.returncode == 0, r.output
    events = docker_client.events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"container": name}
    )
    actions = [e["Action"] for e in events]
    assert actions[-1] == "restart" and "die" in actions and "start" in actions, actions
    assert state(docker, name)["Status"] == "running"


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            {"Name": "always", "MaximumRetryCount": 2},
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ),
        (
            {"Name": "on-failure", "MaximumRetryCount": -1},
            "invalid restart policy: maximum retry count cannot be negative",
        ),
        (
            {"Name": "sometimes"},
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', "
            "or 'unless-stopped'",
        ),
    ],
)
def test_bad_policies_over_the_api(docker_client, policy, message):
    with pytest.raises(APIError) as e:
        docker_client.api.create_container(
            "busybox", "true", host_config=docker_client.api.create_host_config(restart_policy=policy)
        )
    assert e.value.status_code == 400
    assert e.value.explanation == message


def test_bad_policies_through_the_cli(docker):
    r = docker("run", "--restart", "sometimes", "busybox", "true")
    assert r.returncode == 125
    assert "invalid restart policy: unknown policy 'sometimes'" in r.stderr, r.output
    r = docker("run", "--restart", "always", "--rm", "busybox", "true")
    assert r.returncode == 125 and "--restart and --rm" in r.stderr, r.output
    r = docker("run", "--restart", "on-failure:x", "busybox", "true")
    assert r.returncode == 125 and "maximum retry count must be an integer" in r.stderr, r.output


# --- the daemon's own restarts ------------------------------------------------------------------------


@pytest.fixture
def own_daemon(registry) -> Iterator[DaemonProcess]:
    """A second dockyardd on its own data root (and the test registry as its mirror)."""
    root = Path(tempfile.mkdtemp(prefix="dy-rp-"))
    proc = DaemonProcess(root, ["--registry-mirror", registry.url])
    yield proc
    if proc.proc is None or proc.proc.poll() is not None:
        proc.start()
    cli = client_of(proc)
    for cid in cli("ps", "-aq").stdout.split():
        cli("rm", "-f", cid)
    proc.stop()
    shutil.rmtree(root, ignore_errors=True)


def client_of(proc: DaemonProcess):
    def run(*args: str, **kwargs) -> Result:
        env = {"DOCKER_HOST": proc.host, "DOCKER_CONFIG": str(proc.root / "docker-config")}
        return run_cli(["docker", *args], env=env, **kwargs)

    return run


def test_live_restore_false_stops_containers_and_policies_start_them_again(own_daemon):
    (own_daemon.root).mkdir(parents=True, exist_ok=True)
    (own_daemon.root / "daemon.json").write_text('{"live-restore": false}\n')
    own_daemon.start()
    cli = client_of(own_daemon)
    trap = "trap 'exit 42' TERM; sleep 1000 & wait"
    stubborn = "trap '' TERM; while :; do sleep 1; done"
    runs = {
        "always": ["--restart", "always", "busybox", "sh", "-c", trap],
        "unless": ["--restart", "unless-stopped", "busybox", "sh", "-c", trap],
        "unless-stopped-by-hand": ["--restart", "unless-stopped", "busybox", "sleep", "1000"],
        "always-stopped-by-hand": ["--restart", "always", "busybox", "sleep", "1000"],
        "none": ["busybox", "sh", "-c", trap],
        "stubborn": ["--stop-timeout", "1", "busybox", "sh", "-c", stubborn],
    }
    for name, args in runs.items():
        r = cli("run", "-d", "--name", name, *args)
        assert r.returncode == 0, r.output
    for name in ("unless-stopped-by-hand", "always-stopped-by-hand"):
        assert cli("stop", "-t", "1", name).returncode == 0
    time.sleep(0.3)  # the traps are set
    started = time.monotonic()
    assert own_daemon.stop(timeout=20) == 0
    assert time.monotonic() - started < 8  # in parallel: the stubborn one's 1 s, not 10 s each

    own_daemon.start()
    cli = client_of(own_daemon)
    status = {name: state(cli, name) for name in runs}
    assert status["none"]["Status"] == "exited" and status["none"]["ExitCode"] == 42, status["none"]
    assert status["stubborn"]["Status"] == "exited" and status["stubborn"]["ExitCode"] == 137
    assert status["unless-stopped-by-hand"]["Status"] == "exited"
    for name in ("always", "unless", "always-stopped-by-hand"):  # always: even after a manual stop
        assert status[name]["Status"] == "running", (name, status[name])


def test_default_shutdown_leaves_containers_running(own_daemon):
    own_daemon.start()
    cli = client_of(own_daemon)
    assert cli("run", "-d", "--name", "survivor", "busybox", "sleep", "1000").returncode == 0
    pid = state(cli, "survivor")["Pid"]
    assert own_daemon.stop() == 0
    assert os.path.exists(f"/proc/{pid}")
    own_daemon.start()
    cli = client_of(own_daemon)
    s = state(cli, "survivor")
    assert s["Status"] == "running" and s["Pid"] == pid


def test_daemon_killed_under_an_attached_run(own_daemon):
    own_daemon.start()
    cli = client_of(own_daemon)
    env = {**os.environ, "DOCKER_HOST": own_daemon.host, "DOCKER_CONFIG": str(own_daemon.root / "dc")}
    short = subprocess.Popen(
        ["docker", "run", "--name", "short", "busybox", "sh", "-c", "sleep 2; exit 7"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    long = subprocess.Popen(
        ["docker", "run", "--name", "long", "busybox", "sleep", "1000"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until("both run", lambda: all(running(cli, n) for n in ("short", "long")))
        own_daemon.kill()
        short.wait(TIMEOUT)
        long.wait(TIMEOUT)
    finally:
        for p in (short, long):
            if p.poll() is None:
                p.kill()
                p.wait(10)
    own_daemon.start()
    cli = client_of(own_daemon)
    assert state(cli, "long")["Status"] == "running"
    until("the short one's exit", lambda: state(cli, "short")["Status"] == "exited")
    assert state(cli, "short")["ExitCode"] == 7
    ps = cli("ps", "-a", "--format", "{{.Names}} {{.State}}")
    assert sorted(ps.stdout.split("\n")[:2]) == ["long running", "short exited"], ps.output
    r = cli("stop", "-t", "1", "long")
    assert r.returncode == 0, r.output
    assert state(cli, "long")["Status"] == "exited"
    for name in ("short", "long"):
        r = cli("rm", name)
        assert r.returncode == 0, r.output
