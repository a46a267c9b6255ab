"""Restart policies: dockerd's validation texts, its decision after an exit, its back-off."""

from __future__ import annotations

import pytest

from dockyard.containers.restart import (
    BACKOFF_MAX,
    RestartManager,
    RestartPolicy,
    RestartPolicyError,
    kill_cancels_restart,
    policy_wants_restart,
    start_at_daemon_start,
    validate,
)


def hc(name: str, count: int = 0, **extra) -> dict:
    return {"RestartPolicy": {"Name": name, "MaximumRetryCount": count}, **extra}


@pytest.mark.parametrize(
    "host_config",
    [{}, hc(""), hc("no"), hc("always"), hc("unless-stopped"), hc("on-failure"), hc("on-failure", 3)],
)
def test_valid_policies(host_config):
    validate(host_config)


@pytest.mark.parametrize(
    ("host_config", "message"),
    [
        (hc("always", 2), "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
        (
            hc("unless-stopped", -1),
            "invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be "
            "negative",
        ),
        (hc("on-failure", -2), "invalid restart policy: maximum retry count cannot be negative"),
        (
            hc("sometimes"),
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', "
            "or 'unless-stopped'",
        ),
        (hc("always", AutoRemove=True), "can't create 'AutoRemove' container with restart policy"),
    ],
)
def test_invalid_policies(host_config, message):
    with pytest.raises(RestartPolicyError) as e:
        validate(host_config)
    assert str(e.value) == message


def test_auto_remove_with_no_policy_is_fine():
    validate(hc("no", AutoRemove=True))


def test_policy_decisions():
    always, unless, no = RestartPolicy("always"), RestartPolicy("unless-stopped"), RestartPolicy("no")
    assert policy_wants_restart(always, 0, manually_stopped=True, restart_count=100)
    assert policy_wants_restart(unless, 0, manually_stopped=False, restart_count=0)
    assert not policy_wants_restart(unless, 1, manually_stopped=True, restart_count=0)
    assert not policy_wants_restart(no, 1, manually_stopped=False, restart_count=0)
    on_failure = RestartPolicy("on-failure", 2)
    assert not policy_wants_restart(on_failure, 0, False, 0)
    assert policy_wants_restart(on_failure, 3, False, 1)
    assert not policy_wants_restart(on_failure, 3, False, 2)
    assert policy_wants_restart(RestartPolicy("on-failure"), 1, False, 10**6)  # 0: no limit


def test_on_failure_retries_then_stops():
    manager = RestartManager(RestartPolicy("on-failure", 2))
    count = 0
    delays = []
    while (delay := manager.decide(1, False, 0.01, count)) is not None:
        delays.append(delay)
        count += 1
    assert count == 2
    assert delays == [0.1, 0.2]


def test_backoff_doubles_caps_and_resets():
    manager = RestartManager(RestartPolicy("always"))
    delays = [manager.decide(0, False, 0.5, i) for i in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert max(d for d in delays if d is not None) == BACKOFF_MAX
    assert delays[-1] == BACKOFF_MAX
    assert manager.decide(0, False, 10.0, 12) == 0.1  # ran 10 s: the back-off starts over


def test_cancel_stops_even_always():
    manager = RestartManager(RestartPolicy("always"))
    manager.cancel()
    assert manager.decide(0, True, 1.0, 0) is None


def test_daemon_start():
    always = RestartPolicy("always")
    assert start_at_daemon_start(always, 0, True, 0, started_before=True)
    assert not start_at_daemon_start(always, 0, False, 0, started_before=False)  # never started: stays
    assert not start_at_daemon_start(RestartPolicy("unless-stopped"), 0, True, 0, True)
    assert start_at_daemon_start(RestartPolicy("unless-stopped"), 137, False, 0, True)
    assert start_at_daemon_start(RestartPolicy("on-failure", 3), 1, False, 2, True)
    assert not start_at_daemon_start(RestartPolicy("on-failure", 3), 1, False, 3, True)
    assert not start_at_daemon_start(RestartPolicy("on-failure"), 0, False, 0, True)


def test_kill_cancels_restart():
    assert kill_cancels_restart(1, None)  # no StopSignal configured: every kill
    assert kill_cancels_restart(9, 15)
    assert kill_cancels_restart(15, 15)
    assert not kill_cancels_restart(1, 15)  # a SIGHUP to reload keeps the policy
