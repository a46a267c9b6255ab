"""The json-file log driver: Docker's record format, partial lines, rotation, and the reader's options."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from dockyard.logs.jsonfile import (
    MAX_LINE,
    JsonFileWriter,
    format_time,
    log_files,
    parse_size,
    parse_time,
    read_logs,
)

T0 = 1_795_852_800_123_456_789  # 2026-11-28T08:00:00.123456789Z


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _texts(path: Path, **kwargs) -> list[bytes]:
    return [data for _, _, data in read_logs(path, **kwargs)]


def test_time_format_is_rfc3339_nano_utc() -> None:
    assert format_time(T0) == "2026-11-28T08:00:00.123456789Z"
    assert format_time(T0 - 456_789) == "2026-11-28T08:00:00.123Z"  # Go's RFC3339Nano drops trailing zeros
    assert format_time(1_795_852_800_000_000_000) == "2026-11-28T08:00:00Z"
    assert parse_time("2026-11-28T08:00:00.123456789Z") == T0
    assert parse_time("2026-11-28T08:00:00.123Z") == T0 - 456_789
    assert parse_time("2026-11-28T10:00:00.123456789+02:00") == T0


def test_parse_size_uses_dockers_binary_units() -> None:
    assert parse_size("10m") == 10 * 1024 * 1024
    assert parse_size("1k") == 1024
    assert parse_size("2g") == 2 << 30
    assert parse_size("100") == 100
    assert parse_size("1.5MB") == 1536 * 1024
    with pytest.raises(ValueError):
        parse_size("ten")


def test_records_in_dockers_format(tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    with JsonFileWriter(log) as w:
        w.write("stdout", b"hello\nwor", T0)
        w.write("stderr", b"oops\n", T0)
        w.write("stdout", b"ld\n\xff\n", T0 + 1)
    line = log.read_text().splitlines()[0]
    assert line == '{"log":"hello\\n","stream":"stdout","time":"2026-11-28T08:00:00.123456789Z"}'
    assert _records(log) == [
        {"log": "hello\n", "stream": "stdout", "time": "2026-11-28T08:00:00.123456789Z"},
        {"log": "oops\n", "stream": "stderr", "time": "2026-11-28T08:00:00.123456789Z"},
        {"log": "world\n", "stream": "stdout", "time": "2026-11-28T08:00:00.12345679Z"},
        {"log": "\ufffd\n", "stream": "stdout", "time": "2026-11-28T08:00:00.12345679Z"},
    ]


def test_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "log"
    w = JsonFileWriter(log)
    w.write("stdout", b"x" * (MAX_LINE + 10))  # longer than 16 KiB without a newline: flushed in pieces
    w.write("stdout", b"y\n")
    w.write("stdout", b"no newline at exit")
    w.close()
    logs = [r["log"] for r in _records(log)]
    assert logs == ["x" * MAX_LINE, "x" * 10 + "y\n", "no newline at exit"]
    assert _texts(log) == [b"x" * MAX_LINE, b"x" * 10 + b"y\n", b"no newline at exit"]


def test_rotation_keeps_max_file_minus_one_old_files(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with JsonFileWriter(log, max_size=200, max_file=3) as w:
        for i in range(30):
            w.write("stdout", f"line {i:02d}\n".encode())
    assert log_files(log) == [f"{log}.2", f"{log}.1", str(log)]
    assert not Path(f"{log}.3").exists()
    for name in log_files(log)[:-1]:
        assert os.path.getsize(name) >= 200
    lines = _texts(log)
    assert lines == [f"line {i:02d}\n".encode() for i in range(30 - len(lines), 30)]  # the newest, in order
    assert 6 <= len(lines) < 30


def test_max_file_1_truncates(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with JsonFileWriter(log, max_size=100, max_file=1) as w:
        for i in range(10):
            w.write("stdout", f"line {i}\n".encode())
    assert log_files(log) == [str(log)]
    assert os.path.getsize(log) < 200


def test_tail_since_until_and_streams(tmp_path: Path) -> None:
    log = tmp_path / "log"
    sec = 1_000_000_000
    with JsonFileWriter(log, max_size=300, max_file=10) as w:
        for i in range(20):
            w.write("stderr" if i % 2 else "stdout", f"{i}\n".encode(), T0 + i * sec)
    assert len(log_files(log)) > 2  # the reads below cross rotated files
    assert _texts(log, tail=3) == [b"17\n", b"18\n", b"19\n"]
    assert _texts(log, tail=0) == []
    assert len(_texts(log, tail=100)) == 20
    assert _texts(log, tail=4, stderr=False) == [b"16\n", b"18\n"]  # tail counts before the filters
    since = (T0 + 15 * sec) / 1e9
    assert _texts(log, since=since) == [f"{i}\n".encode() for i in range(15, 20)]
    until = (T0 + 2 * sec + 1000) / 1e9  # a float holds unix seconds to about 0.2 µs
    assert _texts(log, until=until) == [b"0\n", b"1\n", b"2\n"]
    assert _texts(log, stdout=False, until=until) == [b"1\n"]
    streams = {s for s, _, _ in read_logs(log)}
    assert streams == {"stdout", "stderr"}


def test_tail_of_a_single_file_and_of_a_missing_log(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with JsonFileWriter(log) as w:
        w.write("stdout", b"a\nb\nc\n")
    assert _texts(log, tail=2) == [b"b\n", b"c\n"]
    assert _texts(log, tail=5) == [b"a\n", b"b\n", b"c\n"]
    assert list(read_logs(tmp_path / "missing")) == []


def test_follow_sees_appended_lines_and_rotation(tmp_path: Path) -> None:
    log = tmp_path / "log"
    # enough files that no rotation deletes one the reader has not reached yet, however late it is scheduled
    # on a loaded machine (rotation that outruns a reader loses lines, by design, as Docker's does)
    w = JsonFileWriter(log, max_size=150, max_file=30)
    w.write("stdout", b"before\n")
    done = threading.Event()
    got: list[bytes] = []

    def reader() -> None:
        for _, _, data in read_logs(log, follow=True, stop=done.is_set, poll_interval=0.01):
            got.append(data)

    t = threading.Thread(target=reader)
    t.start()
    try:
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(20):  # several rotations, some between two looks of the reader
            w.write("stdout", f"after {i}\n".encode())
            if i % 3 == 0:
                time.sleep(0.03)
        w.close()
    finally:
        done.set()
        t.join(10)
    assert not t.is_alive()
    assert got == [b"before\n"] + [f"after {i}\n".encode() for i in range(20)]
    assert len(log_files(log)) >= 5  # it did rotate, several times


def test_follow_stops_when_told_and_everything_is_read(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with JsonFileWriter(log) as w:
        w.write("stdout", b"1\n2\n")
    assert _texts(log, follow=True, tail=1, stop=lambda: True) == [b"2\n"]


def test_follow_waits_for_the_file(tmp_path: Path) -> None:
    log = tmp_path / "log"
    done = threading.Event()
    got: list[bytes] = []
    t = threading.Thread(
        target=lambda: got.extend(_texts(log, follow=True, stop=done.is_set, poll_interval=0.01))
    )
    t.start()
    time.sleep(0.05)
    with JsonFileWriter(log) as w:
        w.write("stdout", b"late\n")
    time.sleep(0.05)
    done.set()
    t.join(5)
    assert got == [b"late\n"]


def test_escapes_and_records_written_by_dockerd_read_back(tmp_path: Path) -> None:
    log = tmp_path / "log"
    texts = [b"plain\n", b'quote " and \\ back\n', b"tab\there\n", "caf\u00e9 \u2603\n".encode(), b"", b"x"]
    with JsonFileWriter(log) as w:
        for text in texts:
            w.write("stdout", text, T0)
            w.flush_partial(T0)
    with open(log, "a") as f:  # dockerd's own escaping of <, > and &, and raw UTF-8
        f.write('{"log":"\\u003cb\\u003e caf\u00e9\\n","stream":"stderr","time":"2026-11-28T08:00:00.5Z"}\n')
    got = list(read_logs(log))
    assert [d for _, _, d in got] == [t for t in texts if t] + ["<b> caf\u00e9\n".encode()]
    assert got[-1][:2] == ("stderr", T0 - 123_456_789 + 500_000_000)
    assert {t for _, t, _ in got[:-1]} == {T0}
