"""Healthchecks' pure logic: dockerd's create-time checks and merge, the probe's command, the state after
each result (handleProbeResult), the output's truncation, ps' status text and filter; the CLI's flags."""

from __future__ import annotations

import pytest

from dockyard.cli.commands import containers
from dockyard.cli.parser import UsageError
from dockyard.containers import health
from dockyard.units import go_duration

MS = 1_000_000
S = 1_000_000_000


def test_check_config_fills_zeros_and_accepts_the_minimum():
    assert health.check_config(None) is None
    assert health.check_config({}) == {
        "Test": [],
        "Interval": 0,
        "Timeout": 0,
        "StartPeriod": 0,
        "Retries": 0,
    }
    got = health.check_config({"Test": ["CMD", "true"], "Interval": MS, "Timeout": S, "StartPeriod": MS})
    assert got == {"Test": ["CMD", "true"], "Interval": MS, "Timeout": S, "StartPeriod": MS, "Retries": 0}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"Interval": MS - 1}, "Interval in Healthcheck cannot be less than 1ms"),
        ({"Interval": -S}, "Interval in Healthcheck cannot be less than 1ms"),
        ({"Timeout": 500}, "Timeout in Healthcheck cannot be less than 1ms"),
        ({"Retries": -10}, "Retries in Healthcheck cannot be negative"),
        ({"StartPeriod": 100_000}, "StartPeriod in Healthcheck cannot be less than 1ms"),
        # dockerd's order: Interval, Timeout, Retries, StartPeriod
        ({"StartPeriod": 1, "Retries": -1, "Timeout": 1}, "Timeout in Healthcheck cannot be less than 1ms"),
        ({"StartPeriod": 1, "Retries": -1}, "Retries in Healthcheck cannot be negative"),
        (
            {"Interval": "1s"},
            "json: cannot unmarshal string into Go struct field HealthConfig.Healthcheck.Interval",
        ),
        (
            {"Test": "true"},
            "json: cannot unmarshal string into Go struct field HealthConfig.Healthcheck.Test",
        ),
    ],
)
def test_check_config_refuses_as_dockerd(config, message):
    with pytest.raises(health.HealthConfigError) as e:
        health.check_config(config)
    assert str(e.value).startswith(message)


def test_merge_takes_the_images_fields_for_zero_ones():
    image = {"Test": ["CMD-SHELL", "img"], "Interval": 5 * S, "Retries": 7}
    assert health.merge(None, None) is None
    assert health.merge(None, image) == image
    assert health.merge({"Test": ["NONE"]}, None) == {"Test": ["NONE"]}
    requested = health.check_config({"Interval": S})
    merged = health.merge(requested, image)
    assert merged is not None
    assert health.shown(merged) == {"Test": ["CMD-SHELL", "img"], "Interval": S, "Retries": 7}
    assert health.config_entry(health.check_config({"Test": ["NONE"]}), image) == {
        "Healthcheck": {"Test": ["NONE"], "Interval": 5 * S, "Retries": 7}
    }
    assert health.config_entry(health.check_config({}), None) == {"Healthcheck": {}}
    assert health.config_entry(None, None) == {}


def test_probe_command():
    assert health.probe_command(None) is None
    assert health.probe_command({"Test": []}) is None
    assert health.probe_command({"Test": ["NONE"]}) is None
    assert health.probe_command({"Test": ["HTTP", "x"]}) is None
    assert health.probe_command({"Test": ["CMD", "true"]}) == ["true"]
    assert health.probe_command({"Test": ["CMD-SHELL", "exit 1"]}) == ["/bin/sh", "-c", "exit 1"]
    assert health.probe_command({"Test": ["CMD-SHELL", "x"]}, ["/bin/ash", "-e", "-c"]) == [
        "/bin/ash",
        "-e",
        "-c",
        "x",
    ]


def result(code: int) -> dict:
    return {"Start": "s", "End": "e", "ExitCode": code, "Output": ""}


def test_record_transitions():
    check = {"Retries": 2}
    h = health.starting(None)
    assert h == {"Status": "starting", "FailingStreak": 0, "Log": []}
    h = health.record(h, result(1), check, 10.0)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 1)
    h = health.record(h, result(0), check, 10.0)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)
    h = health.record(h, result(1), check, 10.0)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 1)  # one failure is not enough
    h = health.record(h, result(-1), check, 10.0)
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 2)
    h = health.record(h, result(0), check, 10.0)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)


def test_record_defaults_to_three_retries_and_keeps_five_entries():
    h = health.starting(None)
    for n in range(1, 8):
        h = health.record(h, {**result(1), "Output": str(n)}, {}, 100.0)
        assert h["Status"] == ("unhealthy" if n >= 3 else "starting")
    assert h["FailingStreak"] == 7
    assert [e["Output"] for e in h["Log"]] == ["3", "4", "5", "6", "7"]
    again = health.starting(h)
    assert again["Status"] == "starting" and again["FailingStreak"] == 0 and len(again["Log"]) == 5


def test_record_start_period():
    check = {"Retries": 1, "StartPeriod": 3 * S}
    h = health.record(health.starting(None), result(1), check, 1.0)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)  # within the start period: not counted
    h = health.record(h, result(1), check, 3.5)
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 1)
    healthy = health.record(health.starting(None), result(0), check, 1.0)
    h = health.record(healthy, result(1), check, 1.5)  # once healthy, the start period is over
    assert (h["Status"], h["FailingStreak"]) == ("unhealthy", 1)


def test_record_does_not_touch_the_old_state():
    old = health.starting(None)
    new = health.record(old, result(1), {}, 1.0)
    assert old == {"Status": "starting", "FailingStreak": 0, "Log": []} and new["Log"] is not old["Log"]


def test_limited_buffer_truncates_as_dockerd():
    buf = health.LimitedBuffer()
    buf.write(b"a" * 4000)
    buf.write(b"b" * 96)
    assert buf.text() == "a" * 4000 + "b" * 96
    buf.write(b"c")
    assert buf.text() == "a" * 4000 + "b" * 96 + "..."
    utf = health.LimitedBuffer()
    utf.write("é".encode() * 3000)  # cut in the middle of a character: U+FFFD, as Go's JSON writes it
    assert utf.text() == "é" * 2048 + "..."
    odd = health.LimitedBuffer()
    odd.write(b"x" + "é".encode() * 3000)
    assert odd.text() == "x" + "é" * 2047 + "\ufffd..."


def test_status_text_and_filter():
    assert health.status_suffix(None) == ""
    assert health.status_suffix({"Status": "starting"}) == " (health: starting)"
    assert health.status_suffix({"Status": "healthy"}) == " (healthy)"
    assert health.status_suffix({"Status": "unhealthy"}) == " (unhealthy)"
    assert health.filter_value(None) == "none"
    assert health.filter_value({"Status": "healthy"}) == "healthy"
    health.check_filter(["starting", "healthy", "unhealthy", "none"])
    with pytest.raises(health.HealthConfigError, match="Unrecognised filter value for health: ok"):
        health.check_filter(["ok"])
    assert health.shown_state(None) == {}
    assert health.shown_state({"Status": "healthy", "FailingStreak": 0, "Log": None}) == {
        "Health": {"Status": "healthy", "FailingStreak": 0, "Log": []}
    }


@pytest.mark.parametrize(
    ("ns", "text"),
    [(0, "0s"), (200 * MS, "200ms"), (S, "1s"), (1500 * MS, "1.5s"), (30 * S, "30s"), (90 * S, "1m30s"),
     (3600 * S, "1h0m0s"), (1500, "1.5µs"), (7, "7ns")],
)  # fmt: skip
def test_go_duration(ns, text):
    assert go_duration(ns) == text


def body(*flags: str) -> dict:
    parser = containers.configure(type("Spec", (), {"name": "create"})())
    args = parser.parse_args([*flags, "busybox"])
    return containers._body(args)


def test_cli_flags_as_the_docker_cli_sends_them():
    assert "Healthcheck" not in body()
    assert body("--health-cmd", "curl -f x")["Healthcheck"] == {"Test": ["CMD-SHELL", "curl -f x"]}
    assert body("--no-healthcheck")["Healthcheck"] == {"Test": ["NONE"]}
    got = body(
        "--health-cmd=true", "--health-interval", "200ms", "--health-timeout", "1s",
        "--health-start-period", "1m30s", "--health-retries", "2",
    )["Healthcheck"]  # fmt: skip
    assert got == {"Test": ["CMD-SHELL", "true"], "Interval": 200 * MS, "Timeout": S,
                   "StartPeriod": 90 * S, "Retries": 2}  # fmt: skip
    assert body("--health-interval", "2s")["Healthcheck"] == {"Interval": 2 * S}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--health-interval", "abc"], 'invalid argument "abc" for "--health-interval" flag: '
         'time: invalid duration "abc"'),
        (["--health-timeout", "5"], 'invalid argument "5" for "--health-timeout" flag: '
         'time: missing unit in duration "5"'),
        (["--health-start-period", "1x"], 'invalid argument "1x" for "--health-start-period" flag: '
         'time: unknown unit "x" in duration "1x"'),
        (["--health-retries", "x"], 'invalid argument "x" for "--health-retries" flag: '
         'strconv.ParseInt: parsing "x": invalid syntax'),
        (["--health-interval", "-1s"], "--health-interval cannot be negative"),
        (["--health-timeout", "-1s"], "--health-timeout cannot be negative"),
        (["--health-retries", "-1"], "--health-retries cannot be negative"),
        (["--health-start-period", "-1s"], "--health-start-period cannot be negative"),
        (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck conflicts with --health-* options"),
        (["--no-healthcheck", "--health-retries", "1"], "--no-healthcheck conflicts with --health-* options"),
    ],
)  # fmt: skip
def test_cli_flag_errors(flags, message):
    with pytest.raises(UsageError) as e:
        body(*flags)
    assert str(e.value) == message
