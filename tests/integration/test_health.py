"""Healthchecks through the official docker CLI, ours and docker-py: healthy, unhealthy after its retries,
a hanging probe killed at its timeout, the start period, NONE and --no-healthcheck, a Dockerfile's
HEALTHCHECK inherited and merged, the events, ps' STATUS and `health` filter, probes stopped by a pause
and an exit, going on after a daemon restart, and the bad values with the docker CLI's and dockerd's
messages. Intervals of 200 ms keep it quick; every wait has its timeout."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest
from docker.errors import APIError
from harness import DaemonProcess, Result, run_cli, unique, until

pytestmark = pytest.mark.timeout(300)

MS = 1_000_000
S = 1_000_000_000
TIMEOUT = 30.0
QUICK = ["--health-interval", "200ms"]


def unix(text: str) -> float:
    """An RFC 3339 time (nanoseconds, Z or an offset) in unix seconds."""
    head, _, rest = text.partition(".")
    digits = "".join(ch for ch in rest if ch.isdigit())
    zone = rest[len(digits) :] if rest else text[19:]
    return datetime.fromisoformat(head + zone.replace("Z", "+00:00")).timestamp() + float(
        "0." + (digits or "0")
    )


def inspect(docker, name: str) -> dict:
    result = docker("inspect", name)
    assert result.returncode == 0, result.output
    return json.loads(result.stdout)[0]


def health(docker, name: str) -> dict:
    return inspect(docker, name)["State"].get("Health") or {}


def wait_status(docker, name: str, status: str, timeout: float = TIMEOUT) -> dict:
    return until(f"{name} to be {status}", lambda: (h := health(docker, name)).get("Status") == status and h)


def events(client, container_id: str, since: float) -> list[dict]:
    """The container's events since `since` (the daemon's history, up to now)."""
    return list(
        client.api.events(since=since, until=time.time(), filters={"container": container_id}, decode=True)
    )


def run(docker, names: list[str], *args: str) -> str:
    name = unique("health")
    names.append(name)
    result = docker("run", "-d", "--name", name, *args)
    assert result.returncode == 0, result.output
    return name


@pytest.mark.runtimes("dockyard", "runc")  # the probe is an exec of either runtime
def test_healthy_with_its_log_and_ps(docker, dockyard, docker_client, names):
    t0 = time.time()
    name = run(docker, names, "--health-cmd", "echo out; echo err >&2", *QUICK, "busybox", "sleep", "300")
    info = inspect(docker, name)
    assert info["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "echo out; echo err >&2"],
        "Interval": 200 * MS,
    }
    h = wait_status(docker, name, "healthy")
    assert h["FailingStreak"] == 0
    entry = h["Log"][-1]
    assert entry["ExitCode"] == 0 and entry["Output"] == "out\nerr\n"
    assert unix(info["State"]["StartedAt"]) < unix(entry["Start"]) <= unix(entry["End"])
    until("five log entries at most", lambda: len(health(docker, name)["Log"]) == 5, TIMEOUT)
    time.sleep(0.5)
    assert len(health(docker, name)["Log"]) == 5
    for cli in (docker, dockyard):
        listed = cli("ps", "--filter", f"name={name}", "--format", "{{.Status}}")
        assert listed.returncode == 0 and listed.stdout.strip().endswith("(healthy)"), listed.output
        assert listed.stdout.startswith("Up "), listed.output
        healthy = cli("ps", "--filter", "health=healthy", "--format", "{{.Names}}").stdout.split()
        assert name in healthy
        for other in ("starting", "unhealthy", "none"):
            assert (
                name not in cli("ps", "--filter", f"health={other}", "--format", "{{.Names}}").stdout.split()
            )
    container_id = info["Id"]
    actions = [(e["Action"], e["Actor"]["Attributes"]) for e in events(docker_client, container_id, t0)]
    assert [a for a, _ in actions if a.startswith("health_status")] == ["health_status: healthy"]
    created = [attrs for a, attrs in actions if a == "exec_create: /bin/sh -c echo out; echo err >&2"]
    started = [attrs for a, attrs in actions if a == "exec_start: /bin/sh -c echo out; echo err >&2"]
    died = [attrs for a, attrs in actions if a == "exec_die"]
    assert created and started and died
    assert created[0]["execID"] == started[0]["execID"] == died[0]["execID"]
    assert died[0]["exitCode"] == "0" and created[0]["name"] == name and created[0]["image"] == "busybox"
    assert len(created[0]["execID"]) == 64


def test_starting_and_none_in_ps(docker, names):
    slow = run(docker, names, "--health-cmd", "true", "--health-interval", "1h", "busybox", "sleep", "300")
    plain = run(docker, names, "busybox", "sleep", "300")
    assert health(docker, slow) == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert "Health" not in inspect(docker, plain)["State"]
    listed = docker("ps", "--filter", f"name={slow}", "--format", "{{.Status}}").stdout.strip()
    assert listed.startswith("Up ") and listed.endswith("(health: starting)"), listed
    starting = docker("ps", "--filter", "health=starting", "--format", "{{.Names}}").stdout.split()
    none = docker("ps", "--filter", "health=none", "--format", "{{.Names}}").stdout.split()
    assert slow in starting and plain not in starting
    assert plain in none and slow not in none
    bad = docker("ps", "--filter", "health=ok")
    assert bad.returncode != 0 and "Unrecognised filter value for health: ok" in bad.stderr, bad.output


def test_unhealthy_after_its_retries(docker, docker_client, names):
    t0 = time.time()
    name = run(docker, names, "--health-cmd", "echo no; exit 3", *QUICK, "--health-retries", "3", "busybox",
               "sleep", "300")  # fmt: skip
    h = wait_status(docker, name, "unhealthy")
    assert h["FailingStreak"] == 3, h  # the third failure made it unhealthy
    assert all(e["ExitCode"] == 3 and e["Output"] == "no\n" for e in h["Log"])
    until("more failures counted", lambda: health(docker, name)["FailingStreak"] >= 5)
    status = docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.strip()
    assert status.endswith("(unhealthy)"), status
    assert name in docker("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}").stdout.split()
    container_id = inspect(docker, name)["Id"]
    actions = [e["Action"] for e in events(docker_client, container_id, t0)]
    assert [a for a in actions if a.startswith("health_status")] == ["health_status: unhealthy"]
    assert "exec_die" in actions
    dies = [e for e in events(docker_client, container_id, t0) if e["Action"] == "exec_die"]
    assert {e["Actor"]["Attributes"]["exitCode"] for e in dies} == {"3"}


@pytest.mark.runtimes("dockyard", "runc")  # the probe is an exec of either runtime
def test_a_hanging_probe_is_killed_at_its_timeout(docker, docker_client, names):
    """CMD ["sleep", "30"] with a 300 ms timeout: a failure with dockerd's text at the timeout, the probe
    TERM-ed (exec_die 143), never two at once."""
    t0 = time.time()
    name = unique("health-timeout")
    names.append(name)
    check = {"test": ["CMD", "sleep", "30"], "interval": 200 * MS, "timeout": 300 * MS, "retries": 2}
    box = docker_client.containers.run("busybox", "sleep 300", name=name, detach=True, healthcheck=check)
    h = wait_status(docker, name, "unhealthy")
    assert h["Log"][0]["ExitCode"] == -1
    assert h["Log"][0]["Output"] == "Health check exceeded timeout (300ms)"
    took = unix(h["Log"][0]["End"]) - unix(h["Log"][0]["Start"])
    assert 0.25 < took < 5, took
    for _ in range(10):
        ps = docker("exec", name, "ps", "-o", "args").stdout.splitlines()
        assert sum(1 for line in ps if line.strip() == "sleep 30") <= 1, ps
        time.sleep(0.1)

    def probe_ends() -> list[str]:
        seen = events(docker_client, box.id, t0)
        probes = {e["Actor"]["Attributes"]["execID"] for e in seen if e["Action"] == "exec_create: sleep 30"}
        return [
            e["Actor"]["Attributes"]["exitCode"]
            for e in seen
            if e["Action"] == "exec_die" and e["Actor"]["Attributes"]["execID"] in probes
        ]

    assert set(
        until("two timed-out probes' ends", lambda: probe_ends()[:2] if len(probe_ends()) >= 2 else None)
    ) == {"143"}  # SIGTERM


def test_start_period(docker, docker_client, names):
    """Failures in the start period do not count (retries 1 would make it unhealthy at once); the fourth
    probe succeeds: healthy, never unhealthy. Without a start period: unhealthy first."""
    script = "echo x >> /counter; test $(wc -l < /counter) -ge 4"
    t0 = time.time()
    kept = run(docker, names, "--health-cmd", script, *QUICK, "--health-retries", "1",
               "--health-start-period", "30s", "busybox", "sleep", "300")  # fmt: skip
    plain = run(
        docker, names, "--health-cmd", script, *QUICK, "--health-retries", "1", "busybox", "sleep", "300"
    )
    h = wait_status(docker, kept, "healthy")
    assert [e["ExitCode"] for e in h["Log"]][:4] == [1, 1, 1, 0]
    wait_status(docker, plain, "healthy")
    expected = {
        kept: ["health_status: healthy"],
        plain: ["health_status: unhealthy", "health_status: healthy"],
    }
    for name in (kept, plain):
        container_id = inspect(docker, name)["Id"]
        actions = [e["Action"] for e in events(docker_client, container_id, t0)]
        assert [a for a in actions if a.startswith("health_status")] == expected[name]


def test_none_and_no_healthcheck_and_the_inherited_check(docker, dockyard, docker_client, names, tmp_path):
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\n"
        "HEALTHCHECK --interval=200ms --retries=2 CMD test -f /ready || (echo not yet; exit 1)\n"
    )
    tag = unique("health-img")
    built = docker("build", "-t", tag, str(tmp_path), env={"DOCKER_BUILDKIT": "0"}, timeout=300)
    assert built.returncode == 0, built.output
    image_check = {"Test": ["CMD-SHELL", "test -f /ready || (echo not yet; exit 1)"], "Interval": 200 * MS,
                   "Retries": 2}  # fmt: skip
    try:
        assert json.loads(docker("image", "inspect", tag).stdout)[0]["Config"]["Healthcheck"] == image_check
        inherited = run(docker, names, tag, "sleep", "300")
        assert inspect(docker, inherited)["Config"]["Healthcheck"] == image_check
        h = wait_status(docker, inherited, "unhealthy")
        assert h["FailingStreak"] >= 2 and h["Log"][-1]["Output"] == "not yet\n"
        assert docker("exec", inherited, "touch", "/ready").returncode == 0
        wait_status(docker, inherited, "healthy")
        # the request's fields win, its zero ones take the image's
        merged = run(
            dockyard, names, "--health-interval", "300ms", "--health-timeout", "2s", tag, "sleep", "300"
        )
        assert inspect(docker, merged)["Config"]["Healthcheck"] == {**image_check, "Interval": 300 * MS,
                                                                     "Timeout": 2 * S}  # fmt: skip
        t0 = time.time()
        for cli in (docker, dockyard):
            off = run(cli, names, "--no-healthcheck", tag, "sleep", "300")
            info = inspect(docker, off)
            assert info["Config"]["Healthcheck"]["Test"] == ["NONE"]
            assert "Health" not in info["State"]
            assert off in docker("ps", "--filter", "health=none", "--format", "{{.Names}}").stdout.split()
        nones = [inspect(docker, n)["Id"] for n in names[-2:]]
        box = docker_client.containers.run(tag, "sleep 300", detach=True, healthcheck={"test": ["NONE"]})
        names.append(box.name)
        time.sleep(1.0)  # five intervals of the image's check: no probe ran
        for container_id in [*nones, box.id]:
            actions = [e["Action"] for e in events(docker_client, container_id, t0)]
            assert not [a for a in actions if a.startswith(("exec_", "health_status"))], actions
        assert "Health" not in box.attrs["State"] and "Health" not in inspect(docker, box.id)["State"]
    finally:
        docker("rm", "-f", *names)
        names.clear()
        docker("rmi", tag)


def test_paused_containers_are_not_probed_and_stopped_ones_keep_their_state(docker, docker_client, names):
    name = run(docker, names, "--health-cmd", "true", *QUICK, "busybox", "sleep", "300")
    wait_status(docker, name, "healthy")
    assert docker("pause", name).returncode == 0
    time.sleep(0.3)  # a probe under way ends
    before = health(docker, name)["Log"][-1]
    t0 = time.time()
    time.sleep(1.0)
    assert health(docker, name)["Log"][-1] == before
    container_id = inspect(docker, name)["Id"]
    assert not [e for e in events(docker_client, container_id, t0) if e["Action"].startswith("exec_create")]
    status = docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.strip()
    assert status.endswith("(Paused)") and "health" not in status, status
    assert docker("unpause", name).returncode == 0
    until(
        "a probe after the unpause",
        lambda: unix(health(docker, name)["Log"][-1]["Start"]) > unix(before["Start"]),
    )
    assert docker("stop", "-t", "0", name).returncode == 0
    stopped = health(docker, name)
    assert stopped["Status"] == "healthy"  # kept, as dockerd keeps it
    time.sleep(0.6)
    assert health(docker, name) == stopped
    assert docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}").stdout.startswith(
        "Exited"
    )
    assert docker("start", name).returncode == 0
    again = health(docker, name)
    assert again["Status"] in ("starting", "healthy") and len(again["Log"]) >= len(stopped["Log"])
    wait_status(docker, name, "healthy")


def test_output_is_truncated_as_dockerd_does(docker, names):
    name = run(docker, names, "--health-cmd", "head -c 5000 /dev/zero | tr '\\0' a", *QUICK, "busybox",
               "sleep", "300")  # fmt: skip
    output = wait_status(docker, name, "healthy")["Log"][-1]["Output"]
    assert output == "a" * 4096 + "..."


BAD = 'invalid argument "{}" for "{}" flag: '
BAD_FLAGS = [
    (["--health-interval", "abc"], BAD.format("abc", "--health-interval") + 'time: invalid duration "abc"'),
    (["--health-timeout", "5"], BAD.format("5", "--health-timeout") + 'time: missing unit in duration "5"'),
    (["--health-retries", "x"], BAD.format("x", "--health-retries") + 'strconv.ParseInt: parsing "x"'),
    (["--health-retries", "-1"], "--health-retries cannot be negative"),
    (["--health-interval", "-1s"], "--health-interval cannot be negative"),
    (["--health-start-period", "-2s"], "--health-start-period cannot be negative"),
    (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck conflicts with --health-* options"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_bad_flags_in_the_docker_clis_words(docker, dockyard, flags, message):
    for cli in (docker, dockyard):
        result = cli("run", "--rm", *flags, "busybox", "true")
        assert result.returncode == 125 and message in result.stderr, result.output


DAEMON_ERRORS = [
    (["--health-interval", "100us"], "Interval in Healthcheck cannot be less than 1ms"),
    (["--health-timeout", "1ns"], "Timeout in Healthcheck cannot be less than 1ms"),
    (["--health-start-period", "999us"], "StartPeriod in Healthcheck cannot be less than 1ms"),
]


@pytest.mark.parametrize(("flags", "message"), DAEMON_ERRORS)
def test_bad_durations_refused_by_the_daemon(docker, dockyard, flags, message):
    for cli in (docker, dockyard):
        result = cli("create", *flags, "--health-cmd", "true", "busybox", "true")
        assert result.returncode != 0, result.output
        assert f"Error response from daemon: {message}" in result.stderr, result.output


def test_bad_values_through_docker_py(docker_client):
    for check, message in (
        ({"test": ["CMD", "true"], "retries": -1}, "Retries in Healthcheck cannot be negative"),
        ({"test": ["CMD", "true"], "interval": 999}, "Interval in Healthcheck cannot be less than 1ms"),
        ({"test": ["CMD", "true"], "timeout": -S}, "Timeout in Healthcheck cannot be less than 1ms"),
    ):
        with pytest.raises(APIError) as e:
            docker_client.api.create_container("busybox", "true", healthcheck=check)
        assert e.value.status_code == 400 and e.value.explanation == message
    # checked before the image is looked up, as dockerd
    with pytest.raises(APIError) as e:
        docker_client.api.create_container("no-such-image-here", "true", healthcheck={"retries": -1})
    assert e.value.status_code == 400


def test_probes_go_on_after_a_daemon_restart(workdir: Path, registry) -> None:
    """Kill the daemon: the healthy state is kept; started again, the probes go on (a file removed makes
    the container unhealthy, one put back healthy again)."""
    proc = DaemonProcess(workdir / unique("healthrestart"), ["--registry-mirror", registry.url]).start()
    try:

        def cli(*args: str) -> Result:
            return run_cli(["docker", "-H", proc.host, *args], timeout=TIMEOUT)

        def state() -> dict:
            return json.loads(cli("inspect", "kept").stdout)[0]["State"].get("Health") or {}

        started = cli("run", "-d", "--name", "kept", "--health-cmd", "test -f /ok", *QUICK,
                      "--health-retries", "1", "busybox", "sh", "-c", "touch /ok; sleep 300")  # fmt: skip
        assert started.returncode == 0, started.output
        until("healthy", lambda: state().get("Status") == "healthy")
        proc.kill()
        restarted_at = time.time()
        proc.start()
        assert state()["Status"] == "healthy"
        until("a probe by the new daemon", lambda: unix(state()["Log"][-1]["Start"]) > restarted_at)
        assert cli("exec", "kept", "rm", "/ok").returncode == 0
        until("unhealthy", lambda: state().get("Status") == "unhealthy")
        assert cli("exec", "kept", "touch", "/ok").returncode == 0
        until("healthy again", lambda: state().get("Status") == "healthy")
        assert cli("rm", "-f", "kept").returncode == 0
    finally:
        proc.stop()
