"""exec and a container's init are not a way in (the CVE-2019-5736 class), on the built-in runtime and runc.

A hostile PID 1 (exec_watch.c, compiled here with `gcc -static -O2` and baked into a busybox image) watches
its PID namespace in a tight loop while 30 processes are exec'd into its container (docker CLI, our CLI,
docker-py with a terminal), or while other containers start in its PID namespace (`--pid container:X`). For
every new pid it tries, again and again until it succeeds or the pid is gone, PTRACE_SEIZE then
PTRACE_INTERRUPT (stopped, a tracee whose /proc/PID/exe is not busybox is the runtime's process, seized
before its execve) and open("/proc/PID/exe") (an exe that is not busybox is the host's binary), and checks
the fds and working directory each process has once exec'd. It must never get in.

And the test could fail: the helper must have seen each process and seized it as soon as its execve let it
(ptrace itself is allowed: root in the container, default capabilities, the default seccomp profile) and
opened its exe. Without the runtime's PR_SET_DUMPABLE it seized 28 to 30 of the 30 exec'd processes (and 8
or 9 of 10 joining inits) while they were still the host's Python, whose binary it opened through
/proc/PID/exe."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import testimages
from harness import unique, until

TIMEOUT = 60.0
EXECS = 30
JOINERS = 10
HELPER = "exec-watch"
SOURCE = Path(__file__).with_name("exec_watch.c")

pytestmark = pytest.mark.runtimes


def _compile(out: Path) -> None:
    """gcc -static -O2, or a skip saying what is missing."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (scripts/setup.sh --test installs it)")
    libc = subprocess.run(["gcc", "-print-file-name=libc.a"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(libc) or not os.path.exists(libc):
        pytest.skip("no static libc for gcc -static (libc6-dev; scripts/setup.sh --test installs it)")
    done = subprocess.run(
        ["gcc", "-static", "-O2", "-Wall", "-o", str(out), str(SOURCE)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def watcher_image(registry, tmp_path_factory) -> str:
    """busybox with the helper as /exec-watch, its default command, pushed to the test registry."""
    binary = tmp_path_factory.mktemp("exec-watch") / HELPER
    _compile(binary)
    data = binary.read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(HELPER)
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    config = {"config": {"Env": [testimages.PATH_ENV], "Cmd": [f"/{HELPER}", "/bin/busybox"]}}
    image = testimages.build_from_tars([testimages.base_layer().tar, buf.getvalue()], config=config)
    repo = unique("test/exec-watch")
    testimages.push_image(registry.address, repo, "latest", image)
    return f"{registry.address}/{repo}:latest"


def _report(docker, name: str) -> tuple[dict[str, str], str]:
    """Stop the helper (SIGUSR1) and read its totals from the container's log."""
    killed = docker("kill", "-s", "USR1", name, timeout=TIMEOUT)
    assert killed.returncode == 0, killed.output
    assert docker("wait", name, timeout=TIMEOUT).stdout.strip() == "0"
    logs = docker("logs", name, timeout=TIMEOUT).stdout
    assert "done" in logs.splitlines(), logs
    totals = dict(
        line.split(" ", 1) for line in logs.splitlines() if " " in line and not line.startswith("pid ")
    )
    return totals, logs


def _start_watcher(docker, names: list[str], image: str, *options: str) -> str:
    pulled = docker("pull", image, timeout=TIMEOUT)
    assert pulled.returncode == 0, pulled.output
    name = unique("watch")
    names.append(name)
    started = docker("run", "-d", "--name", name, *options, image, timeout=TIMEOUT)
    assert started.returncode == 0, started.output
    until("the helper watching", lambda: "ready" in docker("logs", name).stdout.splitlines())
    return name


def _assert_never_got_in(totals: dict[str, str], logs: str, processes: int) -> None:
    number = {k: int(v) for k, v in totals.items() if v.lstrip("-").isdigit()}
    # it never got in: nothing seized while still the runtime's (the host's binary), no host binary through
    # /proc/PID/exe, nothing of the host's left open across the execve (in the processes, or in this init),
    # no working directory but the container's "/" (WorkingDir)
    assert number["seized_before_exec"] == 0, logs
    assert number["exe_foreign"] == 0, logs
    assert number["fd_leaks"] == 0, logs
    assert number["cwd_not_root"] == 0, logs
    assert totals["own_fds"] == "-", logs
    # and it could have: it saw every process, seized each the moment its execve made it dumpable again
    # ("in execve", or "after exec" when the seize came later: ptrace itself is allowed), and opened each
    # one's exe (busybox)
    assert number["pids_seen"] >= processes, logs
    assert number["seized"] >= processes, logs
    assert number["seized_in_execve"] + number["seized_after_exec"] >= processes, logs
    assert number["exe_own"] >= processes, logs
    assert number["fds_checked"] >= processes, logs


# no-new-privileges: the exec'd process loads its seccomp filter last, right before its execve
@pytest.mark.parametrize("options", [(), ("--security-opt", "no-new-privileges")], ids=["default", "nnp"])
def test_exec_is_not_a_way_in(docker, dockyard, docker_client, watcher_image, names, options):
    name = _start_watcher(docker, names, watcher_image, *options)
    container = docker_client.containers.get(name)
    for i in range(EXECS):
        # a command that lives a little, so the helper seizes it once exec'd; no second execve in it
        command = ["sleep", "0.2"]
        if i % 3 == 0:
            result = docker("exec", name, *command, timeout=TIMEOUT)
            assert result.returncode == 0, result.output
        elif i % 3 == 1:
            result = dockyard("exec", name, *command, timeout=TIMEOUT)
            assert result.returncode == 0, result.output
        else:
            code, output = container.exec_run(command, tty=True)
            assert code == 0, output
    totals, logs = _report(docker, name)
    _assert_never_got_in(totals, logs, EXECS)


def test_a_container_joining_the_pid_namespace_is_not_a_way_in(docker, watcher_image, names):
    """The init of a container started with --pid container:X is, until its execve, in X's PID namespace."""
    name = _start_watcher(docker, names, watcher_image)
    for _ in range(JOINERS):
        # the same image: the joiner's busybox is a copy of the helper's (the helper compares contents)
        result = docker(
            "run", "--rm", "--pid", f"container:{name}", watcher_image, "sleep", "0.2", timeout=TIMEOUT
        )
        assert result.returncode == 0, result.output
    totals, logs = _report(docker, name)
    _assert_never_got_in(totals, logs, JOINERS)
