"""Exec instances (docker exec): their records and the OCI process each one runs.

As in dockerd, exec records live in the daemon's memory only: they are found by their full ID, keep their
exit code after the process is gone (for exec inspect), and are forgotten some minutes after they ended,
when their container is removed, and at a daemon restart. The process itself belongs to the container's
shim, which outlives the daemon.
"""

from __future__ import annotations

import base64
import copy
import time
from dataclasses import dataclass, field
from typing import Any

from ..detachkeys import to_bytes
from ..runtime.spec import (
    DEFAULT_PATH_ENV,
    SpecError,
    _replace_or_append_env,
    _resolve,
    resolve_additional_groups,
    tweak_capabilities,
)
from .ids import generate_id

__all__ = ["ExecConfigError", "ExecRecord", "exec_process", "new_exec", "start_error_message"]

# an ended exec's record is kept this long for exec inspect (dockerd's clean-up runs every 5 minutes)
KEEP_ENDED = 300.0


class ExecConfigError(ValueError):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class ExecRecord:
    id: str
    container_id: str
    entrypoint: str
    arguments: list[str]
    tty: bool = False
    privileged: bool = False
    user: str = ""
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    open_stdin: bool = False
    open_stdout: bool = False
    open_stderr: bool = False
    detach_keys: str = ""  # as given (checked at create); "" for the daemon's default
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    can_remove: bool = False
    console_size: tuple[int, int] | None = None  # (height, width): API 1.42's ConsoleSize, taken early
    ended_at: float | None = None  # time.monotonic() of its end

    @property
    def command(self) -> str:
        """As dockerd words it in the exec_create and exec_start events: `Entrypoint + " " + Args`, so a
        command without arguments ends in a space (`exec_create: true `)."""
        return f"{self.entrypoint} {' '.join(self.arguments)}"

    @property
    def live(self) -> bool:
        """Listed in the container's ExecIDs: created or running, not ended."""
        return self.ended_at is None

    def end(self, exit_code: int) -> None:
        self.running = False
        self.exit_code = exit_code
        self.ended_at = time.monotonic()

    def expired(self, now: float) -> bool:
        return self.ended_at is not None and now - self.ended_at > KEEP_ENDED

    def inspect(self) -> dict[str, Any]:
        process: dict[str, Any] = {
            "tty": self.tty,
            "entrypoint": self.entrypoint,
            "arguments": list(self.arguments),
            "privileged": self.privileged,
        }
        if self.user:
            process["user"] = self.user
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": process,
            "OpenStdin": self.open_stdin,
            "OpenStderr": self.open_stderr,
            "OpenStdout": self.open_stdout,
            "CanRemove": self.can_remove,
            "ContainerID": self.container_id,
            # dockerd's []byte of the keys given, hence base64 in JSON
            "DetachKeys": base64.b64encode(to_bytes(self.detach_keys) if self.detach_keys else b"").decode(),
            "Pid": self.pid,
        }


def _strings(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ExecConfigError(f"invalid {what}: must be a list of strings")
    return list(value)


def new_exec(container_id: str, body: dict[str, Any]) -> ExecRecord:
    """An exec record from the create body (`POST /containers/{id}/exec`), checked as dockerd does."""
    cmd = _strings(body.get("Cmd"), "Cmd")
    if not cmd:
        raise ExecConfigError("No exec command specified")
    detach_keys = str(_go_field(body, "DetachKeys") or "")  # docker-py sends it as `detachKeys`
    if detach_keys:
        try:
            to_bytes(detach_keys)
        except ValueError:  # dockerd's wording and status (a plain error) for exec's keys
            raise ExecConfigError(f"Invalid escape keys ({detach_keys}) provided", 500) from None
    return ExecRecord(
        id=generate_id(),
        container_id=container_id,
        entrypoint=cmd[0],
        arguments=cmd[1:],
        tty=bool(body.get("Tty")),
        privileged=bool(body.get("Privileged")),
        user=str(body.get("User") or ""),
        env=_strings(body.get("Env"), "Env"),
        working_dir=str(body.get("WorkingDir") or ""),
        open_stdin=bool(body.get("AttachStdin")),
        open_stdout=bool(body.get("AttachStdout")),
        open_stderr=bool(body.get("AttachStderr")),
        detach_keys=detach_keys,
        console_size=_console_size(body.get("ConsoleSize")),
    )


def _go_field(body: dict[str, Any], name: str) -> Any:
    """A field as Go's encoding/json finds it: the exact key, else one that differs only in case."""
    if name in body:
        return body[name]
    folded = name.casefold()
    return next((v for k, v in body.items() if k.casefold() == folded), None)


def _console_size(value: Any) -> tuple[int, int] | None:
    try:
        height, width = (int(v) for v in value or ())
    except (TypeError, ValueError):
        return None
    return (height, width) if height > 0 and width > 0 else None


def exec_process(
    record: ExecRecord,
    container_spec: dict[str, Any],
    container_config: dict[str, Any],
    host_config: dict[str, Any],
    read_file: Any,
    last_cap: int | None = None,
    capabilities_available: frozenset[str] | None = None,
) -> dict[str, Any]:
    """The OCI process an exec runs, as dockerd builds it: the container's own process (capabilities,
    rlimits, no_new_privs, oom score) with the exec's args, env, working directory, user and terminal.

    Env: PATH, HOSTNAME and (with a TTY) TERM, then the container's Env, then the exec's, each replacing
    the same key; HOME from the user's passwd entry when none is set. The user (the exec's, else the
    container's) is resolved against the container's /etc/passwd and /etc/group now (`read_file(path)` gives
    a file's text or None), plus the container's GroupAdd. Privileged: every capability."""
    process = copy.deepcopy(container_spec.get("process") or {})
    # not the container's: the exec's own terminal starts at the size the client gave (API 1.42, which our
    # CLI sends too) or 0x0 until the resize that follows the start (the docker CLI at API 1.41)
    process.pop("consoleSize", None)
    if record.tty and record.console_size:
        process["consoleSize"] = {"height": record.console_size[0], "width": record.console_size[1]}
    env = [f"PATH={DEFAULT_PATH_ENV}", f"HOSTNAME={container_config.get('Hostname') or ''}"]
    if record.tty:
        env.append("TERM=xterm")
    env = _replace_or_append_env(env, list(container_config.get("Env") or []))
    env = _replace_or_append_env(env, record.env)
    user = record.user or str(container_config.get("User") or "")
    group_text = read_file("/etc/group")
    try:
        uid, gid, supplementary, home = _resolve(user, read_file("/etc/passwd"), group_text)
        extra = resolve_additional_groups(list(host_config.get("GroupAdd") or []), group_text)
    except SpecError as e:
        raise ExecConfigError(str(e)) from None
    if not any(e.split("=", 1)[0] == "HOME" for e in env):
        env.append(f"HOME={home}")
    process["args"] = [record.entrypoint, *record.arguments]
    process["env"] = env
    process["cwd"] = record.working_dir or str(container_config.get("WorkingDir") or "") or "/"
    process["terminal"] = record.tty
    umask = (process.get("user") or {}).get("umask")
    additional_gids = list(dict.fromkeys([gid, *supplementary, *extra]))
    process["user"] = {"uid": uid, "gid": gid, "additionalGids": additional_gids}
    if umask is not None:
        process["user"]["umask"] = umask
    if record.privileged:
        every = tweak_capabilities([], [], True, last_cap=last_cap, available=capabilities_available)
        process["capabilities"] = {
            "bounding": every,
            "effective": every,
            "permitted": every,
            "inheritable": [],
            "ambient": [],
        }
    return process


def start_error_message(error: str) -> str:
    """What dockerd writes into the exec's stream when its process could not be started."""
    return f"OCI runtime exec failed: exec failed: unable to start container process: {error}: unknown"
