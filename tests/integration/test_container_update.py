"""`update` against a real dockyardd through the official docker CLI, docker-py and our CLI: a running
container's limits written live (read back from its cgroup files, outside and inside the container), kept
in HostConfig for the next start (stopped ones too), the restart policy taking effect, and dockerd's
errors and warnings (a missing container, values under the minimum or negative, dockerd's merge conflicts,
memory below the current usage, an --rm container's restart policy)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from docker.errors import APIError, NotFound
from harness import unique, until

from dockyard.containers.resources import sysinfo

MB = 1024 * 1024
V2 = not os.path.exists("/sys/fs/cgroup/memory/dockyard") and os.path.exists(
    "/sys/fs/cgroup/cgroup.controllers"
)


@pytest.fixture(autouse=True)
def busybox(docker):
    if docker("image", "inspect", "busybox").returncode != 0:
        pulled = docker("pull", "busybox")
        assert pulled.returncode == 0, pulled.output


def inspect(docker, name: str) -> dict:
    r = docker("inspect", name)
    assert r.returncode == 0, r.output
    return json.loads(r.stdout)[0]


def outside(cid: str, v1: tuple[str, str], v2: str) -> str:
    """The container's cgroup file as the host sees it."""
    path = f"/sys/fs/cgroup/dockyard/{cid}/{v2}" if V2 else f"/sys/fs/cgroup/{v1[0]}/dockyard/{cid}/{v1[1]}"
    return Path(path).read_text().strip()


def inside(docker, name: str, v1: tuple[str, str], v2: str) -> str:
    """The same file as the container sees it (its cgroup is the root of what it has mounted)."""
    path = f"/sys/fs/cgroup/{v2}" if V2 else f"/sys/fs/cgroup/{v1[0]}/{v1[1]}"
    r = docker("exec", name, "cat", path)
    assert r.returncode == 0, r.output
    return r.stdout.strip()


MEMORY = (("memory", "memory.limit_in_bytes"), "memory.max")
RESERVATION = (("memory", "memory.soft_limit_in_bytes"), "memory.low")
PIDS = (("pids", "pids.max"), "pids.max")
CPUSET = (("cpuset", "cpuset.cpus"), "cpuset.cpus")


def cpu_quota(cid: str) -> tuple[str, str]:
    if V2:
        quota, period = outside(cid, ("", ""), "cpu.max").split()
        return quota, period
    return outside(cid, ("cpu", "cpu.cfs_quota_us"), ""), outside(cid, ("cpu", "cpu.cfs_period_us"), "")


def shares(cid: str) -> str:
    return outside(cid, ("", ""), "cpu.weight") if V2 else outside(cid, ("cpu", "cpu.shares"), "")


def test_update_running_container_live_and_kept(docker, names):
    name = unique("upd-live")
    names.append(name)
    r = docker("run", "-d", "--name", name, "-m", "64m", "--memory-swap", "256m", "busybox", "sleep", "300")
    assert r.returncode == 0, r.output
    cid = r.stdout.strip()
    r = docker(
        "update",
        "-m",
        "100m",
        "--memory-reservation",
        "32m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--pids-limit",
        "50",
        "--cpuset-cpus",
        "0",
        name,
    )
    assert r.returncode == 0 and r.stdout.splitlines()[0] == name, r.output  # the docker CLI prints the name
    for where in (lambda f: outside(cid, *f), lambda f: inside(docker, name, *f)):
        assert where(MEMORY) == str(100 * MB)
        assert where(RESERVATION) == str(32 * MB)
        assert where(PIDS) == "50"
        assert where(CPUSET) == "0"
    assert cpu_quota(cid) == ("50000", "100000")
    assert shares(cid) == (str(1 + (512 - 2) * 9999 // 262142) if V2 else "512")
    hc = inspect(docker, name)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["MemoryReservation"]) == (100 * MB, 256 * MB, 32 * MB)
    assert (hc["NanoCpus"], hc["CpuShares"], hc["PidsLimit"], hc["CpusetCpus"]) == (500_000_000, 512, 50, "0")

    # kept for the next start: the new run gets them from the start
    assert docker("restart", "-t", "0", name).returncode == 0
    cid_again = inspect(docker, name)["Id"]
    assert outside(cid_again, *MEMORY) == str(100 * MB) and outside(cid_again, *PIDS) == "50"
    assert cpu_quota(cid_again) == ("50000", "100000")
    until_ts = str(int(time.time()) + 2)  # a moment ahead: the stream ends by itself
    fmt = "{{.Actor.Attributes.name}}"
    events = docker(
        "events", "--since", "60s", "--until", until_ts, "--filter", "event=update", "--format", fmt
    )
    assert events.returncode == 0 and events.stdout.split().count(name) == 1, events.output


def test_update_stopped_container_takes_effect_at_start(docker_client, names):
    name = unique("upd-stopped")
    names.append(name)
    api = docker_client.api
    container = api.create_container("busybox", ["sleep", "300"], name=name)
    answer = api.update_container(
        container, mem_limit="48m", memswap_limit="96m", cpu_quota=20000, cpu_period=50000
    )
    assert answer == {"Warnings": None}
    res = api._post_json(api._url("/containers/{0}/update", container["Id"]), data={"PidsLimit": 20})
    assert res.status_code == 200, res.text
    hc = api.inspect_container(container)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"], hc["CpuQuota"], hc["CpuPeriod"], hc["PidsLimit"]) == (
        48 * MB,
        96 * MB,
        20000,
        50000,
        20,
    )
    api.start(container)
    cid = container["Id"]
    assert outside(cid, *MEMORY) == str(48 * MB) and outside(cid, *PIDS) == "20"
    assert cpu_quota(cid) == ("20000", "50000")
    # a quota alone keeps the period it ran with (runc's update)
    api.update_container(container, cpu_quota=10000)
    assert cpu_quota(cid) == ("10000", "50000")


def test_docker_py_update_models_and_restart_policy(docker_client, names):
    name = unique("upd-model")
    names.append(name)
    c = docker_client.containers.run("busybox", "sleep 60", detach=True, cpu_shares=2, name=name)
    c.update(cpu_shares=3)
    c.reload()
    assert c.attrs["HostConfig"]["CpuShares"] == 3
    if not V2:
        assert shares(c.id) == "3"
    policy = {"Name": "on-failure", "MaximumRetryCount": 42}
    c.update(restart_policy=policy)
    c.reload()
    assert c.attrs["HostConfig"]["RestartPolicy"] == policy


def test_restart_policy_update_takes_effect_on_a_running_container(docker, names):
    name = unique("upd-policy")
    names.append(name)
    r = docker("run", "-d", "--name", name, "busybox", "sh", "-c", "sleep 1; exit 3")
    assert r.returncode == 0, r.output
    r = docker("update", "--restart", "on-failure:2", name)
    assert r.returncode == 0 and r.stdout.strip() == name, r.output
    until("two restarts", lambda: inspect(docker, name)["RestartCount"] == 2, timeout=30)
    until("the last exit", lambda: inspect(docker, name)["State"]["Status"] == "exited", timeout=30)
    assert inspect(docker, name)["HostConfig"]["RestartPolicy"] == {
        "Name": "on-failure",
        "MaximumRetryCount": 2,
    }


def test_update_errors_as_dockerd(docker, docker_client, names):
    name = unique("upd-err")
    names.append(name)
    assert docker("run", "-d", "--name", name, "busybox", "sleep", "300").returncode == 0
    cid = inspect(docker, name)["Id"]

    missing = unique("upd-missing")
    r = docker("update", "-m", "64m", missing, name)
    assert r.returncode == 1, r.output
    assert f"Error response from daemon: No such container: {missing}" in r.stderr
    # the other one is refused with a swap limit to respect: none was given, so it is 0 (dockerd's merge)
    swap_text = (
        "Memory limit should be smaller than already set memoryswap limit, "
        "update the memoryswap at the same time"
    )
    if sysinfo().swap_limit:
        assert f"Error response from daemon: Cannot update container {cid}: {swap_text}" in r.stderr
    r = docker("update", "-m", "64m", "--memory-swap", "128m", name)
    assert r.returncode == 0 and r.stdout.strip() == name, r.output

    cases = [
        (["-m", "4m"], "Error response from daemon: Minimum memory limit allowed is 6MB"),
        (["--cpus", "-1"], f"Range of CPUs is from 0.01 to {len(os.sched_getaffinity(0))}.00"),
        (
            ["--cpu-period", "-5"],
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (["--cpu-quota", "500"], "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (["--cpuset-cpus", "0-4096"], "Requested CPUs are not available - requested 0-4096, available: "),
        (["--restart", "bogus"], "invalid restart policy"),
        (
            ["--cpus", "1", "--cpu-quota", "50000"],
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
    ]
    for flags, text in cases:
        r = docker("update", *flags, name)
        assert r.returncode == 1 and text in r.stderr, (flags, r.output)
    assert docker("update", "--cpus", "1", name).returncode == 0
    r = docker("update", "--cpu-period", "50000", name)
    assert r.returncode == 1, r.output
    assert (
        f"Cannot update container {cid}: Conflicting options: CPU Period cannot be updated as NanoCPUs has "
        "already been set" in r.stderr
    )
    # the CLI's own refusals (exit 125 for a flag's value, 1 without any flag)
    r = docker("update", "--blkio-weight", "-1", name)
    assert r.returncode == 125 and 'invalid argument "-1" for "--blkio-weight" flag' in r.stderr, r.output
    r = docker("update", name)
    assert r.returncode == 1 and "you must provide one or more flags when using this command" in r.stderr
    # the API's own: Go's types, a 409 for a conflict, 404
    api = docker_client.api
    for body, status, text in (
        (
            {"BlkioWeight": -5},
            500,
            "json: cannot unmarshal number -5 into Go struct field UpdateConfig.BlkioWeight of type uint16",
        ),
        (
            {"Memory": "1g"},
            500,
            "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64",
        ),
        (
            {"CpuPeriod": 50000},
            409,
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set",
        ),
    ):
        res = api._post_json(api._url("/containers/{0}/update", name), data=body)
        assert res.status_code == status and text in res.json()["message"], (body, res.text)
    with pytest.raises(NotFound):
        api.update_container(missing, mem_limit="64m")
    # the host has no block I/O weight here? dockerd's warning then, the value dropped
    if not sysinfo().blkio_weight:
        r = docker("update", "--blkio-weight", "300", name)
        assert r.returncode == 0, r.output
        assert r.stdout.splitlines() == [
            name,
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
        ]
        assert inspect(docker, name)["HostConfig"]["BlkioWeight"] == 0


def test_restart_policy_of_an_autoremove_container(docker, names):
    name = unique("upd-rm")
    r = docker("run", "-d", "--rm", "--name", name, "busybox", "sleep", "300")
    assert r.returncode == 0, r.output
    names.append(name)
    cid = r.stdout.strip()
    r = docker("update", "--restart", "always", name)
    assert r.returncode == 1, r.output
    assert (
        f"Error response from daemon: Cannot update container {cid}: Restart policy cannot be updated "
        "because AutoRemove is enabled for the container" in r.stderr
    )
    r = docker("update", "--restart", "no", name)
    assert r.returncode == 0 and r.stdout.strip() == name, r.output


@pytest.mark.skipif(
    V2, reason="cgroup v2 reclaims or OOM-kills; only v1 refuses a limit below the usage (EBUSY)"
)
def test_memory_below_usage_is_refused_and_rolled_back(docker, names):
    name = unique("upd-busy")
    names.append(name)
    script = "head -c 40000000 /dev/zero > /dev/shm/fill; touch /dev/shm/ready; sleep 300"
    r = docker(
        "run", "-d", "--name", name, "-m", "100m", "--memory-swap", "100m", "busybox", "sh", "-c", script
    )
    assert r.returncode == 0, r.output
    cid = r.stdout.strip()
    until("the fill", lambda: docker("exec", name, "test", "-e", "/dev/shm/ready").returncode == 0)
    r = docker("update", "-m", "10m", "--memory-swap", "10m", name)
    assert r.returncode == 1, r.output
    assert (
        f"Error response from daemon: Cannot update container {cid}: runc did not terminate successfully: "
        "exit status 1: unable to set memory limit to 10485760 (current usage: " in r.stderr
    )
    assert ", peak usage: " in r.stderr
    hc = inspect(docker, name)["HostConfig"]
    assert (hc["Memory"], hc["MemorySwap"]) == (100 * MB, 100 * MB)  # the old values back
    assert outside(cid, *MEMORY) == str(100 * MB)


def test_our_cli_update(dockyard, docker, names):
    name = unique("upd-ours")
    names.append(name)
    assert dockyard("run", "-d", "--name", name, "-m", "32m", "busybox", "sleep", "300").returncode == 0
    cid = inspect(docker, name)["Id"]
    r = dockyard("update", "-m", "48m", "--pids-limit", "9", name)
    assert r.returncode == 0 and r.stdout.splitlines()[0] == name, r.output
    assert outside(cid, *MEMORY) == str(48 * MB) and outside(cid, *PIDS) == "9"
    r = dockyard("container", "update", "--cpu-shares", "300", name)
    assert r.returncode == 0 and r.stdout.strip() == name, r.output
    assert inspect(docker, name)["HostConfig"]["CpuShares"] == 300
    missing = unique("upd-missing")
    r = dockyard("update", "-m", "4m", missing)
    assert r.returncode == 1 and f"Error response from daemon: No such container: {missing}" in r.stderr
    r = dockyard("update", name)
    assert r.returncode == 1 and "you must provide one or more flags when using this command" in r.stderr
    r = dockyard("update", "--blkio-weight", "x", name)
    assert r.returncode == 125 and 'invalid argument "x" for "--blkio-weight" flag' in r.stderr, r.output


def test_update_of_a_removed_container_races_nothing(docker_client):
    api = docker_client.api
    container = api.create_container("busybox", ["true"])
    api.remove_container(container)
    with pytest.raises(APIError) as e:
        api.update_container(container, mem_limit="64m")
    assert e.value.status_code == 404 and "No such container" in e.value.explanation
