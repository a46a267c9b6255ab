"""`run`/`create` resource and security flags against a real dockyardd, through the official docker CLI, our
CLI and docker-py: limits really applied (OOM kill, pids, CPU quota), read-only root, capabilities, stop
signal and timeout, env files, and Docker's errors for bad values (CLI side and API side)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from docker.errors import APIError
from harness import unique


def inspect(docker, name: str) -> dict:
    r = docker("inspect", name)
    assert r.returncode == 0, r.output
    return json.loads(r.stdout)[0]


def test_memory_limit_oom_kills(docker, names):
    name = unique("opt-oom")
    names.append(name)
    r = docker(
        "run", "--name", name, "-m", "16m", "--memory-swap", "16m", "busybox",
        "sh", "-c", 'x=$(head -c 64m /dev/zero | tr "\\0" a); echo survived',
    )  # fmt: skip
    assert r.returncode == 137, r.output
    assert "survived" not in r.stdout
    info = inspect(docker, name)
    assert info["State"]["OOMKilled"] is True
    assert info["State"]["ExitCode"] == 137
    assert info["HostConfig"]["Memory"] == 16 * 1024 * 1024


def test_memory_limit_lets_small_work_through(dockyard):
    script = 'x=$(head -c 1m /dev/zero | tr "\\0" a); echo ok'
    r = dockyard("run", "--rm", "-m", "64m", "busybox", "sh", "-c", script)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.output


def test_pids_limit(docker):
    script = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; wait"
    r = docker("run", "--rm", "--pids-limit", "4", "busybox", "sh", "-c", script)
    assert "fork" in r.stderr.lower() or "resource temporarily unavailable" in r.stderr.lower(), r.output
    r = docker("run", "--rm", "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.output


def _cgroup_file(container_id: str, v1: tuple[str, str], v2: str) -> str:
    v1_path = f"/sys/fs/cgroup/{v1[0]}/dockyard/{container_id}/{v1[1]}"
    for path in (v1_path, f"/sys/fs/cgroup/dockyard/{container_id}/{v2}"):
        if os.path.exists(path):
            return Path(path).read_text().strip()
    raise AssertionError(f"no cgroup file for {container_id}")


def test_cpus_and_shares_are_applied(docker, names):
    name = unique("opt-cpu")
    names.append(name)
    r = docker("run", "-d", "--name", name, "--cpus", "0.5", "-c", "512", "busybox", "sleep", "100")
    assert r.returncode == 0, r.output
    cid = r.stdout.strip()
    info = inspect(docker, name)
    assert info["HostConfig"]["NanoCpus"] == 500_000_000
    assert info["HostConfig"]["CpuShares"] == 512
    v1_quota = os.path.exists("/sys/fs/cgroup/cpu/dockyard")
    if v1_quota:
        assert _cgroup_file(cid, ("cpu", "cpu.cfs_quota_us"), "") == "50000"
        assert _cgroup_file(cid, ("cpu", "cpu.shares"), "") == "512"
    else:
        assert _cgroup_file(cid, ("", ""), "cpu.max") == "50000 100000"


def test_read_only_rootfs(docker):
    r = docker("run", "--rm", "--read-only", "busybox", "touch", "/x")
    assert r.returncode == 1 and "Read-only file system" in r.stderr, r.output
    r = docker("run", "--rm", "--read-only", "busybox", "touch", "/dev/shm/x")
    assert r.returncode == 0, r.output


def test_capabilities(docker):
    r = docker("run", "--rm", "--cap-drop", "CHOWN", "busybox", "chown", "1", "/tmp")
    assert r.returncode == 1 and "Operation not permitted" in r.stderr, r.output
    assert docker("run", "--rm", "busybox", "chown", "1", "/tmp").returncode == 0
    # lo is up in a new container: taking it down is a change, which needs CAP_NET_ADMIN
    r = docker("run", "--rm", "busybox", "ip", "link", "set", "lo", "down")
    assert r.returncode != 0 and "not permitted" in r.stderr, r.output
    r = docker("run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "ip", "link", "set", "lo", "down")
    assert r.returncode == 0, r.output


def test_stop_signal_and_timeout(docker, names):
    name = unique("opt-sig")
    names.append(name)
    r = docker(
        "run", "-d", "--name", name, "--stop-signal", "USR1", "busybox",
        "sh", "-c", "trap 'exit 5' USR1; sleep 100 & wait",
    )  # fmt: skip
    assert r.returncode == 0, r.output
    time.sleep(0.3)
    assert docker("stop", name).returncode == 0
    info = inspect(docker, name)
    assert info["Config"]["StopSignal"] == "USR1" and info["State"]["ExitCode"] == 5

    stubborn = unique("opt-timeout")
    names.append(stubborn)
    r = docker(
        "run", "-d", "--name", stubborn, "--stop-timeout", "1", "busybox",
        "sh", "-c", "trap '' TERM; while :; do sleep 1; done",
    )  # fmt: skip
    assert r.returncode == 0, r.output
    time.sleep(0.3)
    started = time.monotonic()
    assert docker("stop", stubborn).returncode == 0
    took = time.monotonic() - started
    assert 0.8 < took < 5, took
    info = inspect(docker, stubborn)
    assert info["Config"]["StopTimeout"] == 1 and info["State"]["ExitCode"] == 137


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_env_file_and_env_from_the_environment(cli, docker, dockyard, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\n\nA=1\nFROM_HOST\nSPACED= kept \n")
    run = docker if cli == "docker" else dockyard
    r = run(
        "run", "--rm", "--env-file", str(env_file), "-e", "C", "-e", "UNSET_HERE", "busybox", "env",
        env={**os.environ, "FROM_HOST": "2", "C": "3"},
    )  # fmt: skip
    assert r.returncode == 0, r.output
    lines = r.stdout.splitlines()
    assert {"A=1", "FROM_HOST=2", "SPACED= kept ", "C=3"} <= set(lines), lines
    assert not any(line.startswith("UNSET_HERE") for line in lines)


def test_entrypoint_reset(docker):
    r = docker("run", "--rm", "--entrypoint", "", "busybox", "echo", "hi")
    assert r.returncode == 0 and r.stdout == "hi\n", r.output


INVALID = 'invalid argument "{}" for "{}" flag: '
PARSE_INT = 'strconv.ParseInt: parsing "x": invalid syntax'
BAD_FLAGS = [
    (["-m", "abc"], INVALID.format("abc", "-m, --memory") + "invalid size: 'abc'"),
    (["--cpus", "x"], INVALID.format("x", "--cpus") + "failed to parse x as a rational number"),
    (["--memory-reservation", "1q"], INVALID.format("1q", "--memory-reservation") + "invalid suffix: 'q'"),
    (["--pids-limit", "x"], INVALID.format("x", "--pids-limit") + PARSE_INT),
    (["--ulimit", "bogus=1"], INVALID.format("bogus=1", "--ulimit") + "invalid ulimit type: bogus"),
    (["--restart", "on-failure:x"], "invalid restart policy format: maximum retry count must be an integer"),
    (["--restart", "always", "--rm"], "conflicting options: cannot specify both --restart and --rm"),
    (["--pull", "bogus"], "invalid pull option: 'bogus': " + 'must be one of "always", "missing" or "never"'),
    (
        ["--sig-proxy=x"],
        INVALID.format("x", "--sig-proxy") + 'strconv.ParseBool: parsing "x": invalid syntax',
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_FLAGS)
def test_bad_flag_values(docker, dockyard, args, message):
    for run in (docker, dockyard):
        r = run("run", *args, "busybox", "true")
        assert r.returncode == 125, r.output
        assert message in r.stderr, r.output


def test_bad_values_from_the_daemon(docker, docker_client):
    ncpu = os.cpu_count()
    r = docker("run", "--rm", "-m", "4m", "busybox", "true")
    assert r.returncode == 125 and "Minimum memory limit allowed is 6MB" in r.stderr, r.output
    r = docker("run", "--rm", "--cpus", str(ncpu + 1), "busybox", "true")
    expected = f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
    assert r.returncode == 125 and expected in r.stderr, r.output
    with pytest.raises(APIError) as e:
        docker_client.api.create_container(
            "busybox", "true", host_config=docker_client.api.create_host_config(mem_limit=1024)
        )
    assert e.value.status_code == 400 and e.value.explanation == "Minimum memory limit allowed is 6MB"
    with pytest.raises(APIError) as e:
        docker_client.containers.create("busybox", "true", nano_cpus=(ncpu + 1) * 10**9)
    assert e.value.status_code == 400 and e.value.explanation == expected


def test_flags_reach_the_config(dockyard, docker, names, tmp_path):
    name = unique("opt-cfg")
    names.append(name)
    cidfile = tmp_path / "cid"
    r = dockyard(
        "create", "--name", name, "--cidfile", str(cidfile), "--restart", "on-failure:3", "-m", "32m",
        "--memory-reservation", "16m", "--shm-size", "8m", "--cpuset-cpus", "0", "--ulimit", "nofile=100:200",
        "--group-add", "10", "--domainname", "example.org", "--stop-timeout", "3", "--oom-kill-disable",
        "--init=false", "--network", "none", "--log-opt", "max-size=1m", "busybox", "true",
    )  # fmt: skip
    assert r.returncode == 0, r.output
    assert cidfile.read_text() == r.stdout.strip()
    info = inspect(docker, name)
    hc = info["HostConfig"]
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert (hc["Memory"], hc["MemoryReservation"], hc["ShmSize"]) == (32 << 20, 16 << 20, 8 << 20)
    assert hc["CpusetCpus"] == "0" and hc["Ulimits"] == [{"Name": "nofile", "Hard": 200, "Soft": 100}]
    assert hc["GroupAdd"] == ["10"] and hc["OomKillDisable"] is True and hc["Init"] is False
    assert hc["NetworkMode"] == "none" and hc["LogConfig"]["Config"] == {"max-size": "1m"}
    assert info["Config"]["Domainname"] == "example.org" and info["Config"]["StopTimeout"] == 3
    r = dockyard("create", "--cidfile", str(cidfile), "busybox", "true")
    assert r.returncode == 125 and "container ID file found" in r.stderr, r.output


def test_init_runs_first(docker):
    r = docker(
        "run", "--rm", "--init", "busybox", "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$"
    )
    assert r.returncode == 0, r.output
    pid1, shell_pid = r.stdout.splitlines()
    assert pid1.startswith("/sbin/docker-init -- sh -c"), r.stdout
    assert shell_pid != "1"
