"""top, stats, rename, pause/unpause, prune, kill/restart/attach, ps flags, inspect and the `container`
management command, through the official docker CLI, docker-py and our CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import docker as docker_sdk
import pytest
from harness import DOCKYARD, DaemonProcess, unique, until

TIMEOUT = 30.0


@pytest.fixture
def clean(daemon: DaemonProcess, docker) -> Iterator[None]:
    yield
    for cid in docker("ps", "-aq").stdout.split():
        docker("rm", "-f", cid)


def _sleeper(docker, name: str, *extra: str) -> str:
    run = docker("run", "-d", "--name", name, *extra, "busybox", "sleep", "300")
    assert run.returncode == 0, run.output
    return run.stdout.strip()


def _proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2]


# --- top -----------------------------------------------------------------------------------------------


def test_top(docker, dockyard, docker_client, clean) -> None:
    name = unique("top")
    _sleeper(docker, name)
    top = docker("top", name)
    assert top.returncode == 0, top.output
    lines = top.stdout.splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"]
    assert len(lines) == 2 and lines[1].endswith("sleep 300"), top.stdout
    assert re.match(r"UID {17}PID {17}", lines[0])  # tabwriter, minimum width 20

    result = docker_client.containers.get(name).top()
    assert "PID" in result["Titles"] and result["Processes"][0][-1] == "sleep 300"
    pid = int(result["Processes"][0][result["Titles"].index("PID")])
    assert pid == docker_client.containers.get(name).attrs["State"]["Pid"]

    ours = dockyard("top", name, "-o", "pid,comm")
    assert ours.returncode == 0, ours.output
    assert ours.stdout.split() == ["PID", "COMMAND", str(pid), "sleep"]

    docker("stop", "-t", "0", name)
    stopped = docker("top", name)
    assert stopped.returncode == 1
    cid = docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
    assert f"Error response from daemon: Container {cid} is not running" in stopped.stderr


# --- stats ---------------------------------------------------------------------------------------------


def test_stats(daemon: DaemonProcess, docker, dockyard, docker_client, clean) -> None:
    name = unique("stats")
    cid = _sleeper(docker, name)
    container = docker_client.containers.get(name)
    started = time.monotonic()
    s = container.stats(stream=False)
    assert time.monotonic() - started >= 0.9  # without one-shot dockerd primes the CPU figures first
    assert s["id"] == cid and s["name"] == "/" + name
    assert s["pids_stats"]["current"] == 1
    assert s["memory_stats"]["usage"] > 0 and s["memory_stats"]["limit"] > 0
    assert s["memory_stats"]["stats"]
    assert s["cpu_stats"]["online_cpus"] == len(os.sched_getaffinity(0))
    assert s["cpu_stats"]["system_cpu_usage"] > s["precpu_stats"]["system_cpu_usage"] > 0
    assert s["read"] > s["preread"] != "0001-01-01T00:00:00Z"
    for key in ("total_usage", "usage_in_kernelmode", "usage_in_usermode"):
        assert key in s["cpu_stats"]["cpu_usage"]
    assert set(s["cpu_stats"]["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
    assert "io_service_bytes_recursive" in s["blkio_stats"]

    one = container.stats(stream=False, one_shot=True)
    assert one["preread"] == "0001-01-01T00:00:00Z" and one["precpu_stats"]["cpu_usage"]["total_usage"] == 0

    stream = container.stats(decode=True)
    first, second = next(stream), next(stream)
    stream.close()
    assert second["preread"] == first["read"]
    assert second["precpu_stats"] == first["cpu_stats"]

    table = docker("stats", "--no-stream", name)
    assert table.returncode == 0, table.output
    header, row = table.stdout.splitlines()
    assert re.match(
        r"CONTAINER ID   NAME +CPU % +MEM USAGE / LIMIT   MEM % +NET I/O +BLOCK I/O   PIDS$", header
    ), header
    assert row.startswith(cid[:12] + "   " + name)
    assert re.search(r"\d+\.\d\d% +[\d.]+[KMG]?i?B / [\d.]+[KMG]iB +\d+\.\d\d% .* 1$", row), row

    ours = dockyard("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}} {{.Container}}", name)
    assert ours.returncode == 0, ours.output
    assert ours.stdout.strip() == f"{name} 1 {name}"

    # streaming, not on a terminal: the table printed again every second
    stream_proc = subprocess.Popen(
        [DOCKYARD, "-H", daemon.host, "stats", "--format", "{{.Name}}", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3.5)
    stream_proc.send_signal(signal.SIGINT)
    out, err = stream_proc.communicate(timeout=10)
    assert out.splitlines().count(name) >= 2, (out, err)

    docker("stop", "-t", "0", name)
    zero = docker_client.containers.get(name).stats(stream=False)
    assert zero["read"] == "0001-01-01T00:00:00Z" and zero["memory_stats"] == {}
    assert zero["pids_stats"] == {} and zero["cpu_stats"]["cpu_usage"]["total_usage"] == 0
    stopped = docker("stats", "--no-stream", "--format", "{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}", name)
    assert stopped.stdout.strip() == "0.00%|0B / 0B|0", stopped.output


# --- rename --------------------------------------------------------------------------------------------


def test_rename(docker, dockyard, docker_client, clean) -> None:
    old, new, other = unique("old"), unique("new"), unique("other")
    created = docker("create", "--name", old, "busybox", "true")
    assert created.returncode == 0, created.output
    cid = created.stdout.strip()
    other_id = docker("create", "--name", other, "busybox", "true").stdout.strip()
    since = str(time.time() - 1)
    rename = docker("rename", old, new)
    assert rename.returncode == 0 and rename.stdout == "", rename.output
    assert docker("inspect", "-f", "{{.Name}}", cid).stdout.strip() == "/" + new
    assert docker("inspect", old).returncode == 1

    same = docker("rename", new, new)
    assert same.returncode == 1
    assert (
        "Error response from daemon: Renaming a container with the same name as its current name"
        in same.stderr
    )
    conflict = docker("rename", new, other)
    assert conflict.returncode == 1
    assert (
        "Error response from daemon: Error when allocating new name: Conflict. "
        f'The container name "/{other}" is already in use by container "{other_id}". '
        "You have to remove (or rename) that container to be able to reuse that name." in conflict.stderr
    )
    bad = dockyard("rename", new, "a b")
    assert bad.returncode == 1
    assert "Invalid container name (/a b), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed" in bad.stderr

    # the old name is free again; docker-py renames too
    assert docker("create", "--name", old, "busybox", "true").returncode == 0
    container = docker_client.containers.get(new)
    third = unique("third")
    container.rename(third)
    container.reload()
    assert container.name == third
    events = docker("events", "--since", since, "--until", str(time.time()), "--filter", "event=rename")
    assert f"container rename {cid} (" in events.stdout and f"oldName=/{old}" in events.stdout, events.output


# --- pause / unpause -----------------------------------------------------------------------------------


def test_pause_unpause(docker, dockyard, docker_client, clean) -> None:
    name = unique("pause")
    cid = _sleeper(docker, name)
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", name).stdout)
    pause = docker("pause", name)
    assert pause.returncode == 0 and pause.stdout.strip() == name, pause.output
    state = docker("inspect", "-f", "{{.State.Status}} {{.State.Paused}} {{.State.Running}}", name)
    assert state.stdout.strip() == "paused true true"
    assert until("the process to freeze", lambda: _proc_state(pid) == "D" or _frozen(pid))
    ps = docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}|{{.State}}")
    assert re.fullmatch(r"Up .* \(Paused\)\|paused", ps.stdout.strip()), ps.output
    assert (
        name in docker("ps", "-q", "--filter", "status=paused", "--no-trunc").stdout
        or cid in docker("ps", "-q", "--filter", "status=paused", "--no-trunc").stdout
    )

    again = docker("pause", name)
    assert again.returncode == 1
    assert f"Container {cid} is already paused" in again.stderr
    start = docker("start", name)
    assert start.returncode == 1 and "cannot start a paused container, try unpause instead" in start.stderr

    unpause = dockyard("unpause", name)
    assert unpause.returncode == 0 and unpause.stdout.strip() == name, unpause.output
    assert docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "running"
    assert not _frozen(pid)
    not_paused = docker("unpause", name)
    assert not_paused.returncode == 1 and f"Container {cid} is not paused" in not_paused.stderr

    container = docker_client.containers.get(name)
    container.pause()
    container.reload()
    assert container.status == "paused"
    container.unpause()
    container.reload()
    assert container.status == "running"

    # a paused container can be stopped and killed: it is thawed after the signal
    container.pause()
    stop = docker("stop", "-t", "1", name)
    assert stop.returncode == 0, stop.output
    assert docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split() == [
        "exited",
        "137",
    ]
    stopped = docker("pause", name)
    assert stopped.returncode == 1 and f"Container {cid} is not running" in stopped.stderr

    killed = unique("pkill")
    _sleeper(docker, killed)
    assert dockyard("pause", killed).returncode == 0
    kill = dockyard("kill", killed)
    assert kill.returncode == 0 and kill.stdout.strip() == killed, kill.output
    assert docker("wait", killed).stdout.strip() == "137"


def _frozen(pid: int) -> bool:
    """The freezer's view: the process's cgroup says FROZEN (v1) or frozen 1 (v2)."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "freezer" in controllers.split(","):
            with open(f"/sys/fs/cgroup/freezer{path}/freezer.state") as f:
                return f.read().strip() == "FROZEN"
        if controllers == "" and os.path.exists(f"/sys/fs/cgroup{path}/cgroup.freeze"):
            with open(f"/sys/fs/cgroup{path}/cgroup.events") as f:
                if "frozen 1" in f.read().splitlines():
                    return True
    return False


# --- prune ---------------------------------------------------------------------------------------------


def test_container_prune(docker, dockyard, docker_client, clean) -> None:
    label = f"prune={uuid.uuid4().hex[:8]}"
    keep = docker("create", "--label", label, "--label", "keep=1", "busybox", "true").stdout.strip()
    gone = docker("run", "--label", label, "busybox", "sh", "-c", "echo x > /file").returncode
    assert gone == 0
    gone_id = docker("ps", "-lq", "--no-trunc").stdout.strip()
    running = _sleeper(docker, unique("running"), "--label", label)

    bad = docker("container", "prune", "-f", "--filter", "foo=bar")
    assert bad.returncode == 1 and "invalid filter 'foo'" in bad.stderr

    prune = docker("container", "prune", "-f", "--filter", f"label={label}", "--filter", "label!=keep=1")
    assert prune.returncode == 0, prune.output
    lines = prune.stdout.splitlines()
    assert lines[0] == "Deleted Containers:" and lines[1] == gone_id and lines[2] == ""
    assert re.fullmatch(r"Total reclaimed space: \d+(\.\d+)?[kM]?B", lines[3]), prune.stdout
    assert lines[3] != "Total reclaimed space: 0B"  # /file was written
    remaining = docker("ps", "-aq", "--no-trunc").stdout.split()
    assert keep in remaining and running in remaining and gone_id not in remaining

    nothing = dockyard("container", "prune", "-f", "--filter", "label=nosuch=label")
    assert nothing.stdout == "Total reclaimed space: 0B\n", nothing.output
    declined = dockyard("container", "prune", input="n\n")
    assert declined.stdout.startswith(
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
    )
    assert keep in docker("ps", "-aq", "--no-trunc").stdout

    result = docker_client.containers.prune(filters={"label": label})
    assert result == {"ContainersDeleted": [keep], "SpaceReclaimed": 0}
    assert running in docker("ps", "-q", "--no-trunc").stdout
    assert docker_client.containers.prune(filters={"label": label}) == {
        "ContainersDeleted": None,
        "SpaceReclaimed": 0,
    }


# --- kill, restart, attach -----------------------------------------------------------------------------


def test_kill_restart_attach_cli(docker, dockyard, clean) -> None:
    name = unique("krestart")
    _sleeper(docker, name)
    started = docker("inspect", "-f", "{{.State.StartedAt}}", name).stdout.strip()
    restart = dockyard("restart", "-t", "0", name)
    assert restart.returncode == 0 and restart.stdout.strip() == name, restart.output
    assert docker("inspect", "-f", "{{.State.StartedAt}}", name).stdout.strip() != started
    kill = dockyard("kill", name)
    assert kill.returncode == 0 and kill.stdout.strip() == name, kill.output
    assert docker("wait", name).stdout.strip() == "137"
    trapper = unique("trap")
    docker(
        "run",
        "-d",
        "--name",
        trapper,
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' USR1; while :; do sleep 0.1; done",
    )
    assert dockyard("kill", "-s", "USR1", trapper).returncode == 0
    assert docker("wait", trapper).stdout.strip() == "7"
    again = dockyard("kill", name, "nosuch-container")
    assert again.returncode == 1
    assert "is not running" in again.stderr and "No such container: nosuch-container" in again.stderr
    stopped = dockyard("attach", name)
    assert stopped.returncode == 1
    assert "You cannot attach to a stopped container, start it first" in stopped.stderr

    talker = unique("attach")
    run = docker(
        "run", "-d", "--name", talker, "busybox", "sh", "-c", "sleep 1; echo out; echo err >&2; exit 3"
    )
    assert run.returncode == 0, run.output
    attach = dockyard("attach", talker)
    assert attach.returncode == 3, attach.output
    assert attach.stdout == "out\n" and attach.stderr == "err\n"

    reader = unique("attach-in")
    docker("run", "-d", "-i", "--name", reader, "busybox", "sh", "-c", "read line; echo got $line")
    piped = dockyard("attach", reader, input="hello\n")
    # as dockerd: the end of the client's input ends an attach to a container that is not StdinOnce (its
    # stdin stays open for others), so the answer may come after; it reaches the log either way
    assert piped.returncode == 0 and piped.stdout in ("", "got hello\n"), piped.output
    until("the piped line read", lambda: docker("logs", reader).stdout == "got hello\n", timeout=10)


# --- ps ------------------------------------------------------------------------------------------------


def test_ps_flags_and_filters(docker, dockyard, clean) -> None:
    a, b, c = unique("psa"), unique("psb"), unique("psc")
    id_a = docker("create", "--name", a, "--label", "tier=db", "busybox", "true").stdout.strip()
    assert docker("run", "--name", b, "busybox", "sh", "-c", "exit 3").returncode == 3
    id_b = docker("inspect", "-f", "{{.Id}}", b).stdout.strip()
    id_c = _sleeper(docker, c, "--label", "tier=web")

    for cli in (docker, dockyard):
        assert cli("ps", "-q", "--no-trunc").stdout.split() == [id_c]
        assert cli("ps", "-lq", "--no-trunc").stdout.split() == [id_c]
        assert cli("ps", "-n", "2", "-q", "--no-trunc").stdout.split() == [id_c, id_b]
        assert cli("ps", "-aq", "--no-trunc", "-f", "exited=3").stdout.split() == [id_b]
        assert cli("ps", "-q", "--no-trunc", "-f", "status=created").stdout.split() == [id_a]
        assert cli("ps", "-aq", "--no-trunc", "-f", "label=tier").stdout.split() == [id_c, id_a]
        assert cli("ps", "-aq", "--no-trunc", "-f", "label=tier=db").stdout.split() == [id_a]
        assert cli("ps", "-aq", "--no-trunc", "-f", f"name=^/{b}$").stdout.split() == [id_b]
        assert cli("ps", "-aq", "--no-trunc", "-f", f"id={id_b[:10]}").stdout.split() == [id_b]
        assert cli("ps", "-aq", "--no-trunc", "-f", f"before={c}", "-f", f"since={a}").stdout.split() == [
            id_b
        ]
        assert id_a in cli("ps", "-aq", "--no-trunc", "-f", "ancestor=busybox").stdout.split()
        assert cli("ps", "-aq", "-f", "ancestor=nosuchimage").stdout == ""
        bogus = cli("ps", "-f", "status=bogus")
        assert bogus.returncode == 1 and "Invalid filter 'status=bogus'" in bogus.stderr, bogus.output
        foo = cli("ps", "-f", "foo=bar")
        assert foo.returncode == 1 and "invalid filter 'foo'" in foo.stderr, foo.output

    fmt = 'table {{.ID}}\t{{.Names}}\t{{.State}}\t{{.Label "tier"}}\t{{.Command}}'
    ours = dockyard("ps", "-a", "--filter", "label=tier", "--format", fmt).stdout
    theirs = docker("ps", "-a", "--filter", "label=tier", "--format", fmt).stdout
    assert ours == theirs, (ours, theirs)
    assert ours.splitlines()[0].split() == ["CONTAINER", "ID", "NAMES", "STATE", "tier", "COMMAND"]
    plain = "{{.Names}} {{.Status}} {{.Labels}} {{.Image}} {{.Ports}}|{{.Networks}}|{{.Mounts}}"
    until(
        "the same --format output",
        lambda: (
            dockyard("ps", "-a", "--format", plain).stdout == docker("ps", "-a", "--format", plain).stdout
        ),
        10,
    )
    times = "{{.CreatedAt}} {{.RunningFor}}"
    until(
        "the same times",
        lambda: (
            dockyard("ps", "-l", "--format", times).stdout == docker("ps", "-l", "--format", times).stdout
        ),
        10,
    )
    created_at = dockyard("ps", "-l", "--format", times).stdout
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+ ", created_at)

    # the same table (retried: a relative time may tick between the two commands)
    until("the same ps table", lambda: dockyard("ps", "-a").stdout == docker("ps", "-a").stdout, 10)
    size = dockyard("ps", "-s", "-l")
    assert re.search(r"   NAMES +SIZE$", size.stdout.splitlines()[0]), size.stdout
    assert re.search(r"\d+B \(virtual [\d.]+MB\)$", size.stdout.splitlines()[1]), size.stdout
    until(
        "the same ps -s table",
        lambda: dockyard("ps", "-s", "-l").stdout == docker("ps", "-s", "-l").stdout,
        10,
    )
    jsonl = json.loads(dockyard("ps", "-l", "--format", "json").stdout)
    assert jsonl["ID"] == id_c[:12] and jsonl["Names"] == c and jsonl["State"] == "running"


# --- inspect and `container` ---------------------------------------------------------------------------


def test_inspect_and_container_command(docker, dockyard, clean) -> None:
    name = unique("insp")
    cid = docker("create", "--name", name, "busybox", "true").stdout.strip()
    found = json.loads(dockyard("inspect", name).stdout)
    assert found[0]["Id"] == cid
    image = json.loads(dockyard("inspect", "busybox").stdout)
    assert image[0]["Id"].startswith("sha256:")
    assert dockyard("inspect", "-f", "{{.State.Status}}", name).stdout == "created\n"
    both = dockyard("inspect", "-f", "{{.Id}}", name, "nosuch-object")
    assert both.returncode == 1 and both.stdout == cid + "\n"
    assert "Error: No such object: nosuch-object" in both.stderr
    only = dockyard("container", "inspect", "busybox")
    # as docker 28: one kind asked for, the daemon's words
    assert only.returncode == 1 and "Error response from daemon: No such container: busybox" in only.stderr
    assert only.stdout == "[]\n"
    sized = json.loads(dockyard("container", "inspect", "-s", name).stdout)[0]
    theirs = json.loads(docker("container", "inspect", "-s", name).stdout)[0]
    assert sized["SizeRw"] == theirs["SizeRw"] == 0 and sized["SizeRootFs"] > 0
    assert "SizeRw" not in json.loads(dockyard("container", "inspect", name).stdout)[0]
    assert dockyard("inspect", "--type", "image", name).returncode == 1

    for alias in ("ls", "ps", "list"):
        listed = dockyard("container", alias, "-aq", "--no-trunc")
        assert listed.returncode == 0 and cid in listed.stdout.split(), listed.output
    run = dockyard("container", "run", "--rm", "busybox", "echo", "hi")
    assert run.returncode == 0 and run.stdout == "hi\n", run.output
    assert dockyard("container", "start", name).stdout.strip() == name
    assert dockyard("container", "wait", name).stdout.strip() == "0"
    assert dockyard("container", "logs", name).returncode == 0
    assert dockyard("container", "rm", name).stdout.strip() == name
    helped = dockyard("container", "--help").stdout
    for sub in ("attach", "inspect", "kill", "ls", "pause", "prune", "rename", "stats", "top", "unpause"):
        assert re.search(rf"^  {sub} +\S", helped, re.M), sub
    usage = dockyard("container", "run", "--help").stdout
    assert "Usage:  dockyard container run [OPTIONS] IMAGE [COMMAND] [ARG...]" in usage


def test_docker_py_errors(docker_client, docker, clean) -> None:
    name = unique("pyerr")
    docker("create", "--name", name, "busybox", "true")
    container = docker_client.containers.get(name)
    with pytest.raises(docker_sdk.errors.APIError) as info:
        container.top()
    assert info.value.status_code == 409 and "is not running" in str(info.value)
    with pytest.raises(docker_sdk.errors.APIError) as info:
        container.pause()
    assert info.value.status_code == 409
