"""Docker's json-file log driver: the writer the shim feeds with a container's output, and the reader behind
`logs` (tail, since, until, follow).

One record a line, as dockerd writes them:

    {"log":"hello\\n","stream":"stdout","time":"2026-11-28T12:00:00.123456789Z"}

`time` is RFC 3339 in UTC with up to nine fraction digits (trailing zeros dropped, as Go's RFC3339Nano
does). A line longer than 16 KiB is cut into 16 KiB records without a newline, the last piece keeping it,
as dockerd's copier does, so that one endless line cannot hold the whole log in memory.

Rotation (`max-size`, `max-file`): when the file reaches max-size it is renamed `path.1` (older ones shift
to `path.2`...; at most max-file - 1 old files are kept) and a new `path` begins; with max-file 1 the file
is truncated instead, as dockerd does. Readers open every file before reading, so a rotation during a read
loses nothing already written, and a follower notices its file was renamed (by inode) and goes on with
the newer ones.
"""

from __future__ import annotations

import calendar
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]  # the C encoder, no dict

__all__ = [
    "MAX_LINE",
    "JsonFileWriter",
    "format_time",
    "log_files",
    "parse_size",
    "parse_time",
    "read_logs",
]

MAX_LINE = 16 * 1024
STREAMS = ("stdout", "stderr")
_READ_BLOCK = 64 * 1024

_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kmgtp])?i?b?$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(value: str) -> int:
    """`max-size` as Docker reads it (go-units RAMInBytes): 10m, 1.5g, 512k, 100, 10MB, 10MiB; binary."""
    m = _SIZE.match(value.strip())
    if not m:
        raise ValueError(f"invalid size: '{value}'")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


_second_cache: tuple[int, str] = (-1, "")


def format_time(ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds, trailing zeros dropped (Go's RFC3339Nano)."""
    global _second_cache
    sec, frac = divmod(ns, 1_000_000_000)
    if _second_cache[0] != sec:  # many records share a second: strftime once per second
        _second_cache = (sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)))
    base = _second_cache[1]
    if frac:
        return f"{base}.{frac:09d}".rstrip("0") + "Z"
    return base + "Z"


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time (as written above; an offset is honoured)."""
    secs = calendar.timegm(
        (
            int(text[0:4]),
            int(text[5:7]),
            int(text[8:10]),
            int(text[11:13]),
            int(text[14:16]),
            int(text[17:19]),
        )
    )
    rest = text[19:]
    frac = 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        frac = int(rest[1:end].ljust(9, "0")[:9])
        rest = rest[end:]
    if rest and rest not in ("Z", "z"):
        sign = -1 if rest[0] == "-" else 1
        secs -= sign * (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60)
    return secs * 1_000_000_000 + frac


class JsonFileWriter:
    """Turns a container's output into json-file records. Not thread-safe: the shim's one loop feeds it.

    `write` may be called with any slicing of the output; complete lines are written at once (one write(2)
    per call), an unfinished line waits for its end, up to 16 KiB. `close` writes what is left."""

    def __init__(self, path: str | os.PathLike[str], max_size: int | None = None, max_file: int = 1):
        if max_file < 1:
            raise ValueError("max-file cannot be less than 1")
        if max_size is not None and max_size <= 0:
            max_size = None
        self.path = os.fspath(path)
        self.max_size = max_size
        self.max_file = max_file
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size
        self._pending: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes, time_ns: int | None = None) -> None:
        if not data:
            return
        buf = self._pending.pop(stream, b"") + data if stream in self._pending else data
        t = format_time(time.time_ns() if time_ns is None else time_ns)
        records: list[str] = []
        start = 0
        end = len(buf)
        while start < end:
            nl = buf.find(b"\n", start, start + MAX_LINE)
            if nl >= 0:
                records.append(self._record(buf[start : nl + 1], stream, t))
                start = nl + 1
            elif end - start >= MAX_LINE:
                records.append(self._record(buf[start : start + MAX_LINE], stream, t))
                start += MAX_LINE
            else:
                self._pending[stream] = buf[start:]
                break
        self._emit(records)

    def flush_partial(self, time_ns: int | None = None) -> None:
        """Write unfinished lines as records without a newline (the container exited mid-line)."""
        t = format_time(time.time_ns() if time_ns is None else time_ns)
        records = [self._record(rest, stream, t) for stream, rest in self._pending.items() if rest]
        self._pending.clear()
        self._emit(records)

    def close(self) -> None:
        if self._fd < 0:
            return
        self.flush_partial()
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> JsonFileWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _record(line: bytes, stream: str, t: str) -> str:
        # built by hand: json.dumps of a dict per line costs several times more on a chatty container
        text = encode_basestring_ascii(line.decode("utf-8", "replace"))
        return f'{{"log":{text},"stream":"{stream}","time":"{t}"}}\n'

    def _emit(self, records: list[str]) -> None:
        if not records:
            return
        if self.max_size is None:
            self._write_all("".join(records).encode())
            return
        batch: list[str] = []
        size = self._size
        for r in records:  # rotate between records, as dockerd checks after each one
            batch.append(r)
            size += len(r)
            if size >= self.max_size:
                self._write_all("".join(batch).encode())
                batch = []
                self._rotate()
                size = 0
        if batch:
            self._write_all("".join(batch).encode())

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def _rotate(self) -> None:
        if self.max_file < 2:
            os.ftruncate(self._fd, 0)  # O_APPEND: the next write lands at the new end, 0
        else:
            for i in range(self.max_file - 1, 0, -1):
                src = f"{self.path}.{i - 1}" if i > 1 else self.path
                try:
                    os.rename(src, f"{self.path}.{i}")  # replaces the oldest
                except FileNotFoundError:
                    pass
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = 0


# --- reading ---------------------------------------------------------------------------------------------


def log_files(path: str | os.PathLike[str]) -> list[str]:
    """The log and its rotated files, oldest first."""
    path = os.fspath(path)
    rotated = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        rotated.append(f"{path}.{i}")
        i += 1
    return [*reversed(rotated), path]


def _tail_start(files: list[int], n: int) -> tuple[int, int]:
    """(index in files, offset) of the n-th line from the end, counting back across files."""
    for idx in range(len(files) - 1, -1, -1):
        fd = files[idx]
        pos = os.fstat(fd).st_size
        end = pos
        while pos > 0:
            step = min(_READ_BLOCK, pos)
            pos -= step
            block = os.pread(fd, step, pos)
            # the file's last byte is the newline ending its last line, not the start of a line
            hi = len(block) - 1 if pos + step == end else len(block)
            while True:
                nl = block.rfind(b"\n", 0, hi)
                if nl < 0:
                    break
                n -= 1  # a line starts after this newline
                if n == 0:
                    return idx, pos + nl + 1
                hi = nl
        if end > 0:
            n -= 1  # the file's first line
            if n == 0:
                return idx, 0
    return 0, 0


_STREAM_KEY = b'","stream":"'
_TIME_KEY = b'","time":"'
_last_second: tuple[bytes, int] = (b"", 0)


def _fast_time(t: bytes) -> int:
    """parse_time for the writer's own form (…Z), the second's part parsed once per second."""
    global _last_second
    head = t[:19]
    if _last_second[0] != head:
        _last_second = (head, parse_time(head.decode() + "Z") // 1_000_000_000)
    frac = t[20:-1] if len(t) > 20 and t[19:20] == b"." else b""
    return _last_second[1] * 1_000_000_000 + (int(frac.ljust(9, b"0")[:9]) if frac else 0)


def _decode(line: bytes) -> tuple[str, int, bytes] | None:
    # fast path for the common record: no escapes in the text but its final newline; json.loads per line
    # would cost several times more on a 200 MB log
    if line.startswith(b'{"log":"') and line.endswith(b'Z"}'):
        k = line.rfind(_STREAM_KEY)
        j = line.find(_TIME_KEY, k) if k > 0 else -1
        if j > 0:
            body = line[8:k]
            if b"\\" not in body:
                data = body
            elif body.endswith(b"\\n") and b"\\" not in body[:-2]:
                data = body[:-2] + b"\n"
            else:
                data = b""
            if data:
                try:
                    return line[k + 12 : j].decode(), _fast_time(line[j + 10 : -2]), data
                except ValueError:
                    pass
    try:
        rec = json.loads(line)
        return rec.get("stream", "stdout"), parse_time(rec["time"]), rec["log"].encode()
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a torn or foreign line: skipped, as dockerd does with a decode error mid-file


def _to_ns(seconds: float | Fraction, rounding: Callable[[float], int]) -> int:
    """Unix seconds in nanoseconds. A Fraction ("1796392783.161490815" as the docker CLI sends a line's
    own timestamp) is exact; a float holds microseconds but not nanoseconds, so it is rounded outwards to
    the microsecond (a `since` of a line's time keeps that line)."""
    if isinstance(seconds, Fraction):
        return math.floor(seconds * 1_000_000_000)
    return rounding(seconds * 1e6) * 1000


def read_logs(
    path: str | os.PathLike[str],
    *,
    follow: bool = False,
    tail: int | None = None,
    since: float | Fraction | None = None,
    until: float | Fraction | None = None,
    stdout: bool = True,
    stderr: bool = True,
    stop: Callable[[], bool] | None = None,
    poll_interval: float = 0.05,
) -> Iterator[tuple[str, int, bytes]]:
    """(stream, time in ns, bytes) of each record, oldest first, across the rotated files.

    `tail` counts records from the end before the other filters (as dockerd); `since`/`until` are unix
    seconds (records at or after since, at or before until; a Fraction is exact to the nanosecond). With
    `follow`, waits for new records until `stop()` says the writer is done (e.g. the container exited)
    and everything was read, or `until` passed.
    """
    path = os.fspath(path)
    wanted = {s for s, on in (("stdout", stdout), ("stderr", stderr)) if on}
    since_ns = None if since is None else _to_ns(since, math.floor)
    until_ns = None if until is None else _to_ns(until, math.ceil)
    names = log_files(path)
    fds: list[int] = []
    for name in names:
        try:
            fds.append(os.open(name, os.O_RDONLY | os.O_CLOEXEC))
        except FileNotFoundError:
            continue  # rotated away between listing and opening
    try:
        idx, offset = 0, 0
        if tail is not None and tail >= 0 and fds:
            if tail == 0:
                idx, offset = len(fds) - 1, os.fstat(fds[-1]).st_size
            else:
                idx, offset = _tail_start(fds, tail)

        def records(lines: Iterator[bytes]) -> Iterator[tuple[str, int, bytes]]:
            for line in lines:
                rec = _decode(line)
                if rec is None or rec[0] not in wanted:
                    continue
                if since_ns is not None and rec[1] < since_ns:
                    continue
                if until_ns is not None and rec[1] > until_ns:
                    raise _Until
                yield rec

        try:
            for i in range(idx, len(fds) - 1):
                yield from records(_lines_of(fds[i], offset if i == idx else 0))
            if not fds:
                if not follow:
                    return
                fds.append(_wait_open(path, stop, poll_interval))
                if fds[-1] < 0:
                    return
                idx, offset = 0, 0
            if not follow:
                yield from records(_lines_of(fds[-1], offset if idx == len(fds) - 1 else 0))
                return
            yield from records(
                _follow(path, fds, offset if idx == len(fds) - 1 else 0, stop, poll_interval, until)
            )
        except _Until:
            return
    finally:
        for fd in fds:
            if fd >= 0:
                os.close(fd)


class _Until(Exception):
    pass


def _lines_of(fd: int, offset: int) -> Iterator[bytes]:
    """Complete lines from offset to the end of the file as it is now."""
    rest = b""
    while True:
        block = os.pread(fd, _READ_BLOCK * 4, offset)
        if not block:
            return
        offset += len(block)
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        yield from lines


def _wait_open(path: str, stop: Callable[[], bool] | None, poll: float) -> int:
    while True:
        done = stop is not None and stop()
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if done:
                return -1
        time.sleep(poll)


def _follow(
    path: str,
    fds: list[int],
    offset: int,
    stop: Callable[[], bool] | None,
    poll: float,
    until: float | Fraction | None,
) -> Iterator[bytes]:
    """Lines of the current file and whatever is appended, across rotations, until stop() or until."""
    fd = fds[-1]
    rest = b""
    while True:
        done = stop is not None and stop()  # asked before reading: a record written meanwhile is still read
        block = os.pread(fd, _READ_BLOCK * 4, offset)
        if block:
            offset += len(block)
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            yield from lines
            continue
        st = os.fstat(fd)
        if st.st_size < offset:  # truncated in place (max-file 1)
            offset, rest = 0, b""
            continue
        if done or (until is not None and time.time() > until):
            return
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None  # between the rename and the new file
        if current is not None and current.st_ino != st.st_ino:
            # rotated: what was written to our file before the rename is read (above); newer rotated files
            # (several rotations since our last look) come before the new current file
            newer = []
            i = 1
            while True:
                try:
                    s = os.stat(f"{path}.{i}")
                except FileNotFoundError:
                    break
                if s.st_ino == st.st_ino:
                    break
                newer.append(f"{path}.{i}")
                i += 1
            # (when our file is gone, every rotated file is newer than it)
            for name in reversed(newer):
                try:
                    nfd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    continue
                fds.append(nfd)
                yield from _lines_of(nfd, 0)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            fds.append(fd)
            offset, rest = 0, b""
            continue
        time.sleep(poll)
