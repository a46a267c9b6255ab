"""What a Docker user relies on, through the official docker CLI: isolation of a container, logs with every
option, stop of a PID 1 that ignores SIGTERM, a missing image when no registry can be reached."""

from __future__ import annotations

import time

import pytest
from harness import unique

TIMEOUT = 30.0


@pytest.fixture
def names(docker):
    made: list[str] = []

    def make(prefix: str) -> str:
        made.append(unique(prefix))
        return made[-1]

    yield make
    for name in made:
        docker("rm", "-f", name)


def test_pid_1_is_the_command_and_the_hostname_is_its_own(docker, names) -> None:
    name = names("iso")
    run = docker(
        "run",
        "--name",
        name,
        "busybox",
        "sh",
        "-c",
        "echo $$; cat /proc/1/cmdline; echo; hostname; ps -o pid,args",
    )
    assert run.returncode == 0, run.output
    lines = run.stdout.splitlines()
    assert lines[0] == "1"  # the shell is PID 1 of its own PID namespace
    assert lines[1].startswith("sh\0-c\0")
    full_id = docker("inspect", "-f", "{{.Id}}", name).stdout.strip()
    assert lines[2] == full_id[:12]  # hostname = short ID, not the host's
    pids = [line.split()[0] for line in lines[4:] if line.strip()]
    assert pids[0] == "1" and len(pids) <= 3, lines  # only its own processes: sh and ps


def test_two_containers_of_one_image_do_not_see_each_others_writes(docker, names) -> None:
    first = names("w1")
    script = "echo mine > /etc/marker; rm /bin/true; echo written; sleep 30"
    assert docker("run", "-d", "--name", first, "busybox", "sh", "-c", script).returncode == 0
    deadline = time.monotonic() + TIMEOUT
    while "written" not in docker("logs", first).stdout:
        assert time.monotonic() < deadline, docker("logs", first).output
        time.sleep(0.05)
    check = "cat /etc/marker 2>&1; test -e /bin/true && echo has-true"
    second = docker("run", "--rm", "busybox", "sh", "-c", check)
    assert "No such file" in second.stdout and "has-true" in second.stdout, second.output
    assert docker("inspect", "-f", "{{.State.Running}}", first).stdout.strip() == "true"


def test_logs_options_and_follow_ends_with_the_container(docker, names) -> None:
    name = names("logs")
    script = "echo one; echo err >&2; sleep 1.2; echo two; sleep 1.2; echo three"
    assert docker("run", "-d", "--name", name, "busybox", "sh", "-c", script).returncode == 0
    started = time.time()
    # -f returns by itself once the container has exited
    follow = docker("logs", "-f", name, timeout=TIMEOUT)
    assert follow.returncode == 0
    assert follow.stdout == "one\ntwo\nthree\n" and follow.stderr == "err\n"
    assert time.time() - started >= 2.0  # it did follow, not return at once
    assert docker("logs", "--tail", "2", name).stdout == "two\nthree\n"
    assert docker("logs", "--tail", "0", name).stdout == ""
    stamped = docker("logs", "-t", name).stdout.splitlines()
    assert stamped[0].endswith("Z one") and stamped[0][:4].isdigit()
    # --since / --until select by the timestamp of each line
    times = {line.split(" ", 1)[1]: line.split(" ", 1)[0] for line in stamped}
    since_two = docker("logs", "--since", times["two"], name)
    assert since_two.stdout == "two\nthree\n", since_two.output
    until_two = docker("logs", "--until", times["two"], name)
    assert "three" not in until_two.stdout and until_two.stdout.startswith("one\n")
    both = docker("logs", name)
    assert both.stdout == "one\ntwo\nthree\n" and both.stderr == "err\n"  # each on its own stream


def test_stop_honours_the_timeout_for_a_pid_1_that_ignores_sigterm(docker, names) -> None:
    name = names("stubborn")
    script = "trap '' TERM; echo ready; while true; do sleep 0.2; done"
    assert docker("run", "-d", "--name", name, "busybox", "sh", "-c", script).returncode == 0
    deadline = time.monotonic() + TIMEOUT
    while "ready" not in docker("logs", name).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    start = time.monotonic()
    assert docker("stop", "-t", "2", name, timeout=TIMEOUT).returncode == 0
    took = time.monotonic() - start
    assert 1.8 <= took < 8, took  # SIGTERM ignored, SIGKILL after 2 s
    state = docker("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()
    assert state == ["exited", "137"]


def test_a_missing_image_with_no_registry_reachable(docker) -> None:
    """The image is not here and its registry does not answer (nothing listens on 127.0.0.1:9): a clear
    one-line error, exit 125, and no container is created."""
    before = docker("ps", "-aq").stdout
    run = docker("run", "--rm", "127.0.0.1:9/nosuch/image", timeout=120)
    assert run.returncode == 125, run.output
    assert "Unable to find image '127.0.0.1:9/nosuch/image:latest' locally" in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("docker: Error response")]
    assert len(errors) == 1 and "127.0.0.1:9" in errors[0], run.stderr
    assert docker("ps", "-aq").stdout == before


def test_the_network_namespace_has_its_loopback_up(docker) -> None:
    """A container's own network namespace, with `lo` up as Docker's: a server on 127.0.0.1 answers."""
    script = (
        "cat /sys/class/net/lo/operstate; ls /sys/class/net; "
        "(echo hi | nc -l -p 7777 &); sleep 0.3; nc 127.0.0.1 7777 </dev/null"
    )
    run = docker("run", "--rm", "busybox", "sh", "-c", script, timeout=TIMEOUT)
    assert run.returncode == 0, run.output
    lines = run.stdout.split()
    assert lines[0] == "unknown" and "lo" in lines[1:-1], lines  # lo's operstate reads "unknown" when up
    assert lines[-1] == "hi", run.output


def test_run_rm_that_fails_to_start_reports_and_removes_the_container(docker) -> None:
    """`docker run --rm` waits for the removal after a failed start: the daemon removes the container, as
    dockerd does (else the CLI would wait forever)."""
    before = docker("ps", "-aq").stdout
    run = docker("run", "--rm", "--user", "nosuchuser", "busybox", "true", timeout=TIMEOUT)
    assert run.returncode == 125, run.output
    assert "unable to find user nosuchuser: no matching entries in passwd file" in run.stderr
    assert docker("ps", "-aq").stdout == before
