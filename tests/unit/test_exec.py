"""Exec's pure parts: the record and its inspect shape, the OCI process built from the container's, the
built-in runtime's plan, and the CLI's create body."""

from __future__ import annotations

import argparse
import resource

import pytest

from dockyard.cli.commands.exec import environment, exec_body
from dockyard.cli.parser import UsageError
from dockyard.containers.execs import ExecConfigError, exec_process, new_exec, start_error_message
from dockyard.linux.cgroups import Cgroup
from dockyard.runtime.builtin import RunningContainer, SpawnError, plan_exec

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\nstaff:x:50:nobody\n"
CONTAINER_SPEC = {
    "process": {
        "terminal": False,
        "consoleSize": {"height": 10, "width": 20},
        "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
        "args": ["sleep", "300"],
        "env": ["PATH=/bin"],
        "cwd": "/",
        "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]},
        "noNewPrivileges": True,
        "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}],
    }
}


def files(path: str) -> str | None:
    return {"/etc/passwd": PASSWD, "/etc/group": GROUP}.get(path)


def test_record_from_body_and_inspect():
    record = new_exec("c" * 64, {"Cmd": ["sh", "-c", "exit 7"], "AttachStdout": True, "AttachStderr": True})
    assert len(record.id) == 64 and record.live
    assert record.command == "sh -c exit 7"
    shown = record.inspect()
    assert list(shown) == [
        "ID",
        "Running",
        "ExitCode",
        "ProcessConfig",
        "OpenStdin",
        "OpenStderr",
        "OpenStdout",
        "CanRemove",
        "ContainerID",
        "DetachKeys",
        "Pid",
    ]
    assert shown["ExitCode"] is None
    assert shown["ProcessConfig"] == {
        "tty": False,
        "entrypoint": "sh",
        "arguments": ["-c", "exit 7"],
        "privileged": False,
    }
    record.end(7)
    assert not record.live and record.inspect()["ExitCode"] == 7
    assert not record.expired(record.ended_at or 0) and record.expired((record.ended_at or 0) + 301)


@pytest.mark.parametrize("body", [{}, {"Cmd": []}, {"Cmd": None}])
def test_no_command(body):
    with pytest.raises(ExecConfigError, match="No exec command specified"):
        new_exec("c", body)


def test_bad_env():
    with pytest.raises(ExecConfigError):
        new_exec("c", {"Cmd": ["true"], "Env": "A=b"})


def test_process_from_the_containers():
    record = new_exec("c", {"Cmd": ["env"], "Env": ["B=exec", "X=1"], "Tty": True, "ConsoleSize": [30, 90]})
    config = {"Hostname": "abc", "Env": ["PATH=/usr/bin", "B=container"], "User": "", "WorkingDir": "/srv"}
    process = exec_process(record, CONTAINER_SPEC, config, {"GroupAdd": ["staff"]}, files)
    assert process["args"] == ["env"]
    assert process["env"] == ["PATH=/usr/bin", "HOSTNAME=abc", "TERM=xterm", "B=exec", "X=1", "HOME=/root"]
    assert process["cwd"] == "/srv"
    assert process["terminal"] is True
    assert process["consoleSize"] == {"height": 30, "width": 90}
    assert process["user"] == {"uid": 0, "gid": 0, "additionalGids": [0, 50]}
    # the container's own settings stay: capabilities, no_new_privs, rlimits
    assert process["capabilities"]["bounding"] == ["CAP_CHOWN"]
    assert process["noNewPrivileges"] is True
    assert process["rlimits"] == CONTAINER_SPEC["process"]["rlimits"]
    assert CONTAINER_SPEC["process"]["args"] == ["sleep", "300"]  # not changed in place


def test_process_user_workdir_and_privileged():
    record = new_exec("c", {"Cmd": ["id"], "User": "nobody", "WorkingDir": "/tmp", "Privileged": True})
    process = exec_process(record, CONTAINER_SPEC, {"User": "root"}, {}, files, last_cap=40)
    assert process["user"] == {"uid": 65534, "gid": 65534, "additionalGids": [65534, 50]}
    assert "HOME=/home" in process["env"] and "TERM=xterm" not in process["env"]
    assert process["cwd"] == "/tmp"
    assert "consoleSize" not in process
    assert len(process["capabilities"]["bounding"]) == 41
    assert process["capabilities"]["effective"] == process["capabilities"]["bounding"]
    with pytest.raises(ExecConfigError, match="unable to find user nosuch"):
        exec_process(new_exec("c", {"Cmd": ["id"], "User": "nosuch"}), CONTAINER_SPEC, {}, {}, files)


def test_start_error_wording():
    assert start_error_message('exec: "x": executable file not found in $PATH') == (
        "OCI runtime exec failed: exec failed: unable to start container process: "
        'exec: "x": executable file not found in $PATH: unknown'
    )


def _container() -> RunningContainer:
    return RunningContainer("c1", 1234, "/bundle", Cgroup("2", {"": "/sys/fs/cgroup/x"}), 1)


def test_plan_exec():
    process = {
        **CONTAINER_SPEC["process"],
        "args": ["sh"],
        "user": {"uid": 5, "gid": 6, "additionalGids": [6, 7]},
    }
    plan = plan_exec(process, _container(), last_cap=40)
    assert plan.args == ["sh"] and (plan.uid, plan.gid, plan.additional_gids) == (5, 6, [6, 7])
    assert plan.bounding == frozenset({0})  # CAP_CHOWN
    assert plan.no_new_privileges
    assert plan.rlimits == [(resource.RLIMIT_NOFILE, 100, 200)]
    assert plan.console_size == (10, 20)
    assert plan.cgroup is not None and plan.cgroup.paths == {"": "/sys/fs/cgroup/x"}
    assert plan.new_namespaces == 0 and plan.mounts == []  # it joins; it makes nothing


@pytest.mark.parametrize(
    "process, message",
    [({"args": []}, "process.args must not be empty"), ({"args": ["x"], "cwd": "tmp"}, "absolute path")],
)
def test_plan_exec_errors(process, message):
    with pytest.raises(SpawnError, match=message):
        plan_exec(process, _container(), last_cap=40)


def _args(**kw) -> argparse.Namespace:
    base = dict(
        env=[],
        env_file=[],
        user=None,
        privileged=False,
        tty=False,
        interactive=False,
        detach=False,
        detach_keys=None,
        workdir=None,
        cmd=["sh", "-c", "exit 7"],
    )
    return argparse.Namespace(**{**base, **kw})


def test_cli_body_as_the_docker_cli():
    assert exec_body(_args()) == {
        "User": "",
        "Privileged": False,
        "Tty": False,
        "AttachStdin": False,
        "AttachStderr": True,
        "AttachStdout": True,
        "Detach": False,
        "DetachKeys": "",
        "Env": None,
        "WorkingDir": "",
        "Cmd": ["sh", "-c", "exit 7"],
        "ConsoleSize": None,
    }
    detached = exec_body(_args(detach=True, interactive=True, user="nobody", workdir="/tmp"))
    assert (detached["AttachStdin"], detached["AttachStdout"], detached["AttachStderr"]) == (
        False,
        False,
        False,
    )
    assert (detached["Detach"], detached["User"], detached["WorkingDir"]) == (True, "nobody", "/tmp")


def test_cli_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_HOST", "h")
    monkeypatch.delenv("UNSET_HERE", raising=False)
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\n\nA=1\n  FROM_HOST\n")
    assert environment(["B=2", "FROM_HOST", "UNSET_HERE"], [str(env_file)]) == [
        "A=1",
        "FROM_HOST=h",
        "B=2",
        "FROM_HOST=h",
        "UNSET_HERE",
    ]
    with pytest.raises(UsageError):
        environment(["=x"], [])
    with pytest.raises(UsageError):
        environment([], [str(tmp_path / "missing")])
