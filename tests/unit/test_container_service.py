"""The container service's pure helpers: Docker's status durations and signal names."""

from __future__ import annotations

import signal

import pytest

from dockyard.containers.service import ContainerError, human_duration, parse_signal


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "Less than a second"),
        (1, "1 second"),
        (3, "3 seconds"),
        (61, "About a minute"),
        (600, "10 minutes"),
        (3600, "About an hour"),
        (7200, "2 hours"),
        (3 * 86400, "3 days"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_parse_signal() -> None:
    assert parse_signal("KILL") == signal.SIGKILL
    assert parse_signal("sigterm") == signal.SIGTERM
    assert parse_signal("15") == 15
    assert parse_signal(None, signal.SIGTERM) == signal.SIGTERM
    with pytest.raises(ContainerError):
        parse_signal("NOPE")
