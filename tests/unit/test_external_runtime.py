"""The external-runtime driver's pure parts: the runtime's error taken from its JSON log, the command line,
its --root. Running runc itself is tests/integration/test_runtimes.py's job."""

from __future__ import annotations

import json
from pathlib import Path

from dockyard.runtime.builtin import exit_code_for
from dockyard.runtime.external import ExternalRuntime, OCIRuntime


def runtime(tmp_path: Path, args: tuple[str, ...] = ()) -> ExternalRuntime:
    return ExternalRuntime("runc", "/usr/sbin/runc", str(tmp_path / "root"), str(tmp_path), list(args))


def test_the_last_error_logged_since_the_command_began(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    old = {"level": "error", "msg": "an earlier command's error", "time": "t"}
    Path(rt.log_path).write_text(json.dumps(old) + "\n")
    offset = rt._log_offset()
    lines = [
        {"level": "debug", "msg": "nsexec started", "time": "t"},
        {"level": "error", "msg": "first", "time": "t"},
        {"level": "warning", "msg": "not an error", "time": "t"},
        {
            "level": "error",
            "msg": 'runc create failed: unable to start container process: exec: "nosuchbinary": '
            "executable file not found in $PATH",
            "time": "t",
        },
    ]
    with open(rt.log_path, "a") as f:
        f.write("\n".join(json.dumps(line) for line in lines) + "\nnot json\n")
    message = rt._last_error(offset, "fallback")
    assert message == (
        'runc create failed: unable to start container process: exec: "nosuchbinary": '
        "executable file not found in $PATH"
    )
    assert exit_code_for(message) == 127


def test_a_multi_line_error_becomes_one_line_and_no_log_gives_the_fallback(tmp_path: Path) -> None:
    rt = runtime(tmp_path)
    assert rt._last_error(0, "runc create failed: exit status 1") == "runc create failed: exit status 1"
    Path(rt.log_path).write_text(json.dumps({"level": "error", "msg": "cgroups:\n  no  way\n"}) + "\n")
    assert rt._last_error(0, "x") == "cgroups: no way"


def test_command_line_global_options_then_runtime_args(tmp_path: Path) -> None:
    rt = runtime(tmp_path, ("--systemd-cgroup",))
    argv = rt._argv("kill", "--all", "c1", "9")
    assert argv[1:] == [
        "--root",
        str(tmp_path / "root"),
        "--log",
        str(tmp_path / "runtime.log"),
        "--log-format",
        "json",
        "--systemd-cgroup",
        "kill",
        "--all",
        "c1",
        "9",
    ]


def test_each_runtime_has_its_own_root_under_the_exec_root() -> None:
    assert OCIRuntime("crun", "/usr/bin/crun").root("/run/dockyard") == "/run/dockyard/runtime-crun"
    assert OCIRuntime("dockyard").path is None
