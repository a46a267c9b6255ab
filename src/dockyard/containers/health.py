"""Healthchecks, as dockerd 20.10 runs them (its daemon/health.go).

A container's `Config.Healthcheck` is the create request's merged with its image's (a zero field takes the
image's), checked at create with dockerd's messages. While the container runs (not paused), one monitor
task per container probes it: one interval after the start (or after the end of the previous probe) the
probe runs as an exec in the container (the exec machinery of `ContainerService`: a record, the
`exec_create:`/`exec_start:`/`exec_die` events, the shim's exec), `CMD` as given, `CMD-SHELL` through the
container's `Shell` or `/bin/sh -c`, with the container's user and working directory; its stdout and stderr
are kept together, up to 4096 bytes (then `...`). Probes never overlap; one still running at its timeout
counts as failed at once (`Health check exceeded timeout (30s)`) and gets SIGTERM, SIGKILL 10 s later, and
the next one waits for its end. A probe that cannot run counts as a failure with exit code -1 and the
error as its output.

`State.Health` (Status starting/healthy/unhealthy, FailingStreak, the last 5 Log entries) is reset to
`starting` at each start (its Log kept), moved by each result as dockerd's handleProbeResult (a success
makes it healthy, `Retries` failures in a row unhealthy, failures within the start period of a container
never healthy yet do not count) and saved in the container's record; a change of status is a
`health_status: <status>` event. The monitor stops at the exit and at a pause (an unpause starts it again)
and, for the containers still running, starts again when the daemon does, keeping the recorded state
(dockerd 23's restore; 20.10 left them unprobed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from ..runtime.shim_protocol import ShimClient, ShimError, demux
from ..units import go_duration

if TYPE_CHECKING:
    from .service import ContainerService
    from .store import Container

log = logging.getLogger(__name__)

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
MINIMUM_DURATION = 1_000_000  # containertypes.MinimumDuration
TERM_TIMEOUT = 10.0  # dockerd's termProcessTimeout: a probe past its timeout gets SIGTERM, then SIGKILL
END_WAIT = 10.0  # how long the end of a probe's stream waits for its exit code to be recorded
STARTING, HEALTHY, UNHEALTHY, NO_HEALTHCHECK = "starting", "healthy", "unhealthy", "none"
STATUSES = (STARTING, HEALTHY, UNHEALTHY, NO_HEALTHCHECK)  # what the ps `health` filter takes
FIELDS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")  # HealthConfig's, in Go's order
DEFAULT_SHELL = ["/bin/sh", "-c"]


class HealthConfigError(ValueError):
    pass


# --- configuration ----------------------------------------------------------------------------------


def check_config(value: Any) -> dict[str, Any] | None:
    """The create body's Healthcheck as dockerd decodes it (every field, zero when absent), checked as
    its validateHealthCheck; None when there is none."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise HealthConfigError(
            f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
            "ContainerConfigWrapper.Healthcheck of type container.HealthConfig"
        )
    out: dict[str, Any] = {}
    test = value.get("Test")
    if test is not None and (not isinstance(test, list) or not all(isinstance(t, str) for t in test)):
        raise HealthConfigError(
            f"json: cannot unmarshal {_json_kind(test)} into Go struct field "
            "HealthConfig.Healthcheck.Test of type string"
        )
    out["Test"] = list(test or [])
    for key in FIELDS[1:]:
        number = value.get(key) or 0
        if isinstance(number, float) and number.is_integer():
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int):
            kind = "time.Duration" if key != "Retries" else "int"
            raise HealthConfigError(
                f"json: cannot unmarshal {_json_kind(number)} into Go struct field "
                f"HealthConfig.Healthcheck.{key} of type {kind}"
            )
        out[key] = number
    for key in ("Interval", "Timeout"):
        if out[key] != 0 and out[key] < MINIMUM_DURATION:
            raise HealthConfigError(f"{key} in Healthcheck cannot be less than 1ms")
    if out["Retries"] < 0:
        raise HealthConfigError("Retries in Healthcheck cannot be negative")
    if out["StartPeriod"] != 0 and out["StartPeriod"] < MINIMUM_DURATION:
        raise HealthConfigError("StartPeriod in Healthcheck cannot be less than 1ms")
    return out


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


def merge(requested: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """dockerd's merge at create: no Healthcheck takes the image's; each zero field of one takes the
    image's field."""
    if image is None:
        return requested
    if requested is None:
        return dict(image)
    out = dict(requested)
    for key in FIELDS:
        if not out.get(key):
            out[key] = image.get(key)
    return out


def config_entry(requested: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any]:
    """The created container's `Healthcheck` in its Config: the merged one as shown, or none."""
    check = merge(requested, image)
    return {} if check is None else {"Healthcheck": shown(check)}


def shown(check: dict[str, Any]) -> dict[str, Any]:
    """As inspect shows Config.Healthcheck: Go's omitempty drops the zero fields."""
    return {key: check[key] for key in FIELDS if check.get(key)}


def probe_command(check: dict[str, Any] | None, shell: list[str] | None = None) -> list[str] | None:
    """What a probe runs (dockerd's getProbe): `CMD` args as they are, `CMD-SHELL` through the shell; None
    for no healthcheck, `NONE`, or a type dockerd does not know."""
    test = list((check or {}).get("Test") or [])
    if not test:
        return None
    if test[0] == "CMD":
        return test[1:]
    if test[0] == "CMD-SHELL":
        return [*(shell or DEFAULT_SHELL), *test[1:]]
    if test[0] != "NONE":
        log.warning("Unknown healthcheck type '%s' (expected 'CMD')", test[0])
    return None


def _duration(check: dict[str, Any], key: str, default: int) -> int:
    return int(check.get(key) or 0) or default


# --- state ------------------------------------------------------------------------------------------


def status_suffix(health: dict[str, Any] | None) -> str:
    """What `docker ps` shows after `Up 3 seconds` (Health.String())."""
    if not health:
        return ""
    status = health.get("Status") or STARTING
    return " (health: starting)" if status == STARTING else f" ({status})"


def filter_value(health: dict[str, Any] | None) -> str:
    """The ps `health` filter's view of a container: its status, `none` without a healthcheck."""
    return str(health.get("Status") or STARTING) if health else NO_HEALTHCHECK


def check_filter(values: list[str]) -> None:
    for value in values:
        if value not in STATUSES:
            raise HealthConfigError(f"Unrecognised filter value for health: {value}")


def shown_state(health: dict[str, Any] | None) -> dict[str, Any]:
    """`State.Health` for inspect (omitted when the container never had a probe); Log a list, never null."""
    if health is None:
        return {}
    return {
        "Health": {
            "Status": health.get("Status") or STARTING,
            "FailingStreak": int(health.get("FailingStreak") or 0),
            "Log": list(health.get("Log") or []),
        }
    }


def starting(health: dict[str, Any] | None) -> dict[str, Any]:
    """At a start (dockerd's initHealthMonitor): starting, no failures, the Log kept."""
    return {"Status": STARTING, "FailingStreak": 0, "Log": list((health or {}).get("Log") or [])}


def record(
    health: dict[str, Any], result: dict[str, Any], check: dict[str, Any], since_start: float
) -> dict[str, Any]:
    """The health after one probe's result (dockerd's handleProbeResult), a new dict (the old one may be
    being saved meanwhile). `since_start`: seconds from the container's start to the probe's."""
    retries = int(check.get("Retries") or 0)
    if retries <= 0:
        retries = DEFAULT_RETRIES
    status = health.get("Status") or STARTING
    streak = int(health.get("FailingStreak") or 0)
    entries = [*(health.get("Log") or []), result][-MAX_LOG_ENTRIES:]
    if result.get("ExitCode") == 0:
        streak, status = 0, HEALTHY
    else:
        start_period = _duration(check, "StartPeriod", DEFAULT_START_PERIOD) / SECOND
        if not (status == STARTING and since_start < start_period):
            streak += 1
            if streak >= retries:
                status = UNHEALTHY
    return {"Status": status, "FailingStreak": streak, "Log": entries}


class LimitedBuffer:
    """dockerd's limitedBuffer: the first MAX_OUTPUT bytes, `...` after them when more came."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.truncated = False

    def write(self, chunk: bytes) -> None:
        keep = min(MAX_OUTPUT - len(self.data), len(chunk))
        if keep > 0:
            self.data += chunk[:keep]
        if keep < len(chunk):
            self.truncated = True

    def text(self) -> str:
        # Go's JSON encoder makes invalid UTF-8 into U+FFFD, as this does
        out = self.data.decode("utf-8", errors="replace")
        return out + "..." if self.truncated else out


def timestamp(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds, in UTC (Go's time.Time in JSON)."""
    ns = time.time_ns() if ns is None else ns
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // SECOND))
    fraction = f"{ns % SECOND:09d}".rstrip("0")
    return f"{base}.{fraction}Z" if fraction else f"{base}Z"


def _unix(text: str) -> float:
    from datetime import datetime

    from ..images.service import _trim_fraction

    try:
        return datetime.fromisoformat(_trim_fraction(text)).timestamp()
    except ValueError:
        return 0.0


# --- monitors ---------------------------------------------------------------------------------------


class HealthChecks:
    """The daemon's health monitors: at most one running per container."""

    def __init__(self, service: ContainerService) -> None:
        self.service = service
        self._monitors: dict[str, _Monitor] = {}
        self._ending: dict[str, _Monitor] = {}  # stopped with a probe still ending, by container

    def command(self, c: Container) -> list[str] | None:
        create = c.extra.get("create_config") or {}
        return probe_command(c.config.get("Healthcheck"), create.get("Shell") or None)

    async def started(self, c: Container) -> None:
        """At each start of the container (dockerd's initHealthMonitor)."""
        if self.command(c) is None:
            return
        await self.stop(c)
        c.state.health = starting(c.state.health)
        await self._save(c)
        await self.update(c)

    async def update(self, c: Container) -> None:
        """A monitor while the container runs unpaused and has a probe, none otherwise (dockerd's
        updateHealthMonitor: after a pause, an unpause, a daemon restart)."""
        if c.state.health is None:
            return
        if c.state.status == "running" and self.command(c) is not None:
            current = self._monitors.get(c.id)
            if current is None:
                previous = self._ending.pop(c.id, None)
                if previous is not None and previous.task.done():
                    previous = None
                self._monitors[c.id] = _Monitor(self, c, previous)
            return
        await self.stop(c)

    async def stop(self, c: Container) -> None:
        """At the exit (and a pause): no more probes nor results; a probe under way is ended."""
        monitor = self._monitors.pop(c.id, None)
        if monitor is not None:
            await monitor.stop()
            if not monitor.task.done():
                self._ending[c.id] = monitor  # the next monitor waits for its probe to end
                monitor.task.add_done_callback(lambda _, c_id=c.id: self._forget(c_id, monitor))

    def _forget(self, container_id: str, monitor: _Monitor) -> None:
        if self._ending.get(container_id) is monitor:
            del self._ending[container_id]

    async def close(self) -> None:
        """At daemon shut-down: every monitor stopped, probes under way killed (the next daemon probes
        again)."""
        monitors = [*self._monitors.values(), *self._ending.values()]
        self._monitors.clear()
        self._ending.clear()
        for monitor in monitors:
            await monitor.stop()
            await monitor.kill_probe(signal.SIGKILL)
            monitor.task.cancel()
        if monitors:
            await asyncio.wait([m.task for m in monitors], timeout=5)

    async def _save(self, c: Container) -> None:
        if c.id not in self.service.store:
            return
        try:
            await asyncio.to_thread(self.service.store.save, c)
        except OSError as e:  # removed meanwhile
            log.debug("container %s: saving its health: %s", c.id, e)


class _Probe:
    def __init__(self) -> None:
        self.exec_id: str | None = None
        self.started = asyncio.Event()  # its exec started, or failed to


class _Monitor:
    """One container's probes, one after the other, until stopped."""

    def __init__(self, checks: HealthChecks, c: Container, previous: _Monitor | None) -> None:
        self.checks = checks
        self.c = c
        self.previous = previous
        self.check = dict(c.config.get("Healthcheck") or {})
        self.interval = _duration(self.check, "Interval", DEFAULT_INTERVAL) / SECOND
        self.timeout_ns = _duration(self.check, "Timeout", DEFAULT_TIMEOUT)
        self.stopped = asyncio.Event()
        self.saving: asyncio.Task[None] | None = None
        self.probe: _Probe | None = None
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self.stopped.set()
        if self.saving is not None:  # a result being saved lands before the caller goes on
            await asyncio.wait([self.saving], timeout=5)

    async def _run(self) -> None:
        try:
            while not await self._sleep(self.interval):
                if self.previous is not None:  # the last monitor's probe, ending (after a quick unpause)
                    await asyncio.wait([self.previous.task])
                    self.previous = None
                await self._probe_once()
        except Exception:
            log.exception("container %s: health monitor", self.c.id)

    async def _sleep(self, seconds: float) -> bool:
        """True when stopped meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopped.wait(), seconds)
        return self.stopped.is_set()

    async def _probe_once(self) -> None:
        start_ns = time.time_ns()
        probe = self.probe = _Probe()
        task = asyncio.get_running_loop().create_task(self._run_probe(probe))
        stop = asyncio.get_running_loop().create_task(self.stopped.wait())
        try:
            done, _ = await asyncio.wait(
                [task, stop], timeout=self.timeout_ns / SECOND, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
        if task in done:
            await self._handle({"Start": start_ns, **task.result()})
            self.probe = None
            return
        if not self.stopped.is_set():
            output = f"Health check exceeded timeout ({go_duration(self.timeout_ns)})"
            await self._handle({"Start": start_ns, "End": time.time_ns(), "ExitCode": -1, "Output": output})
        await self._end_probe(probe, task)
        self.probe = None

    async def _run_probe(self, probe: _Probe) -> dict[str, Any]:
        """One run: {"End", "ExitCode", "Output"}; one that could not run is -1 with the error's text."""
        service, c = self.checks.service, self.c
        try:
            command = self.checks.command(c) or []
            body = {
                "Cmd": command,
                "User": c.config.get("User") or "",
                "WorkingDir": c.config.get("WorkingDir") or "",
                "AttachStdout": True,
                "AttachStderr": True,
            }
            probe.exec_id = service.exec_create(c.id, body)
            try:
                stream = await service.exec_start(probe.exec_id, detach=False)
            finally:
                probe.started.set()
            assert stream is not None
            reader, writer = stream
            output = LimitedBuffer()
            try:
                pending = b""
                while data := await reader.read(65536):
                    frames, pending = demux(pending + data)
                    for _, payload in frames:
                        output.write(payload)
            finally:
                writer.close()
            await service.exec_ended(probe.exec_id, END_WAIT)
            code = service.exec_inspect(probe.exec_id).get("ExitCode")
            if code is None:
                raise RuntimeError(f"healthcheck for container {c.id} has no exit code")
            return {"End": time.time_ns(), "ExitCode": int(code), "Output": output.text()}
        except Exception as e:  # dockerd: a warning, and the error as the probe's output
            if not self.stopped.is_set():
                log.warning("Health check for container %s error: %s", c.id, e)
            probe.started.set()
            return {"End": time.time_ns(), "ExitCode": -1, "Output": str(e)}

    async def _handle(self, result: dict[str, Any]) -> None:
        if self.stopped.is_set():  # stopped while probing: the result is not recorded
            return
        c = self.c
        entry = {
            "Start": timestamp(result["Start"]),
            "End": timestamp(result["End"]),
            "ExitCode": result["ExitCode"],
            "Output": result["Output"],
        }
        since_start = result["Start"] / SECOND - _unix(c.state.started_at)
        old = c.state.health or starting(None)
        c.state.health = record(old, entry, self.check, since_start)
        self.saving = asyncio.get_running_loop().create_task(self.checks._save(c))
        await self.saving
        self.saving = None
        status = c.state.health["Status"]
        if status != old.get("Status"):
            self.checks.service.events.emit(
                "container", f"health_status: {status}", c.id, image=c.image, name=c.name
            )

    async def _end_probe(self, probe: _Probe, task: asyncio.Task[dict[str, Any]]) -> None:
        """A probe past its timeout (or its monitor stopped): SIGTERM, SIGKILL after TERM_TIMEOUT, and
        its end waited for, so that dying probes do not pile up."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            await self._kill(probe, sig)
            done, _ = await asyncio.wait([task], timeout=TERM_TIMEOUT)
            if done:
                return
        task.cancel()

    async def kill_probe(self, sig: int) -> None:
        if self.probe is not None and self.probe.exec_id is not None and self.probe.started.is_set():
            await self._kill(self.probe, sig)

    async def _kill(self, probe: _Probe, sig: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(probe.started.wait(), TERM_TIMEOUT)
        if probe.exec_id is None:
            return
        service = self.checks.service
        client = ShimClient(service.shim_dir(self.c))
        try:
            await asyncio.to_thread(client.request, "exec_kill", 5.0, id=probe.exec_id, signal=int(sig))
        except ShimError as e:
            if "unknown request" not in str(e):
                return  # it has ended
            # a shim from before exec_kill: by pid, while the daemon's record says it runs
            with contextlib.suppress(Exception):
                state = service.exec_inspect(probe.exec_id)
                if state.get("Running") and state.get("Pid"):
                    os.kill(int(state["Pid"]), sig)
        except OSError as e:
            log.debug("container %s: killing probe %s: %s", self.c.id, probe.exec_id, e)
