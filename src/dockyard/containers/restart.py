"""Restart policies (`HostConfig.RestartPolicy`): dockerd's validation, its decision after each exit, its
back-off, and its choice of what to start again when the daemon starts.

Pure logic: the container service asks `RestartManager.decide` when a container exits and waits the delay
it returns (the container shows as `restarting` meanwhile); a user's stop or kill cancels the manager, so
even `always` stays down until the next manual start or daemon start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

POLICIES = ("no", "always", "unless-stopped", "on-failure")
BACKOFF_START = 0.1  # seconds: dockerd's first delay, doubled after each restart
BACKOFF_MAX = 60.0
BACKOFF_RESET_AFTER = 10.0  # a run at least this long starts the back-off over


class RestartPolicyError(ValueError):
    """A policy dockerd refuses at create (the API answers 400 with this text)."""


@dataclass(frozen=True)
class RestartPolicy:
    name: str = "no"
    maximum_retry_count: int = 0

    @classmethod
    def from_host_config(cls, host_config: dict[str, Any]) -> RestartPolicy:
        raw = host_config.get("RestartPolicy") or {}
        return cls(str(raw.get("Name") or "no"), int(raw.get("MaximumRetryCount") or 0))

    @property
    def is_none(self) -> bool:
        return self.name in ("", "no")


def validate(host_config: dict[str, Any]) -> None:
    """moby's RestartPolicy validation (api/types/container, Docker 25+ wording)."""
    raw = host_config.get("RestartPolicy") or {}
    name = str(raw.get("Name") or "")
    try:
        count = int(raw.get("MaximumRetryCount") or 0)
    except (TypeError, ValueError):
        raise RestartPolicyError("invalid restart policy: maximum retry count must be an integer") from None
    if host_config.get("AutoRemove") and name not in ("", "no"):
        raise RestartPolicyError("can't create 'AutoRemove' container with restart policy")
    if name in ("always", "unless-stopped", "no"):
        if count != 0:
            message = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
            raise RestartPolicyError(message + (" and cannot be negative" if count < 0 else ""))
    elif name == "on-failure":
        if count < 0:
            raise RestartPolicyError("invalid restart policy: maximum retry count cannot be negative")
    elif name != "":
        raise RestartPolicyError(
            f"invalid restart policy: unknown policy '{name}'; "
            "use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
        )


def policy_wants_restart(
    policy: RestartPolicy, exit_code: int, manually_stopped: bool, restart_count: int
) -> bool:
    """The heart of dockerd's ShouldRestart: `always` ignores a manual stop (a stop cancels the manager
    instead), `unless-stopped` honours it, `on-failure` restarts a non-zero exit while retries are left
    (0 = no limit)."""
    if policy.name == "always":
        return True
    if policy.name == "unless-stopped":
        return not manually_stopped
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


@dataclass
class RestartManager:
    """One per container and run of starts: made anew by a manual start (which also resets RestartCount)."""

    policy: RestartPolicy
    timeout: float = 0.0  # the last delay waited, 0 before the first
    canceled: bool = False

    def cancel(self) -> None:
        self.canceled = True

    def decide(
        self, exit_code: int, manually_stopped: bool, ran_for: float, restart_count: int
    ) -> float | None:
        """After an exit: the delay before the next start, or None to leave the container stopped."""
        if self.policy.is_none or self.canceled:
            return None
        if ran_for >= BACKOFF_RESET_AFTER:
            self.timeout = 0.0
        self.timeout = BACKOFF_START if self.timeout == 0 else min(self.timeout * 2, BACKOFF_MAX)
        if not policy_wants_restart(self.policy, exit_code, manually_stopped, restart_count):
            return None
        return self.timeout


def start_at_daemon_start(
    policy: RestartPolicy,
    exit_code: int,
    manually_stopped: bool,
    restart_count: int,
    started_before: bool,
) -> bool:
    """dockerd's restore: a stopped container that has run before starts again when its policy says so
    (`always` even after a manual stop; `unless-stopped` not; `on-failure` after a non-zero exit)."""
    return started_before and policy_wants_restart(policy, exit_code, manually_stopped, restart_count)


def kill_cancels_restart(signal: int, stop_signal: int | None, sigkill: int = 9) -> bool:
    """dockerd's killWithSignal: without a configured StopSignal every kill ends the restart loop; with one,
    only SIGKILL and that signal do (a SIGHUP to reload must not stop `always` from restarting)."""
    return stop_signal is None or signal in (sigkill, stop_signal)
