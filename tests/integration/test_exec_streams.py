"""Hijacked streams as dockerd 20.10 sends them, through docker-py's raw sockets and the CLIs on a pty.

- An exec's stream is framed or raw as its *start* request asks (`Tty` of `POST /exec/{id}/start`), whatever
  the exec was created with: docker-py's exec_start(tty=False) of a `tty=True` exec reads frames.
- Every byte, in order, also when the process exits right after writing (repeated, so that a race shows):
  exec start and attach, raw and framed.
- Detach keys in the daemon: with a terminal and a stdin, the keys typed over the raw stream (attach's
  `detachKeys`, exec's `DetachKeys`, daemon.json's `detach-keys`, ctrl-p,ctrl-q) end the stream and the
  process runs on; dockerd's texts for bad keys; the end of the input of such a stream ends it too. The
  docker CLI and ours detach on their side: the same, seen from a pty.

Every read has a deadline; frames are parsed by docker-py's own frames_iter/consume_socket_output, fed
from a socket that holds what the daemon sent (docker-py's reader itself waits without one)."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from harness import DOCKYARD, DaemonProcess, run_in_pty, unique, until

from dockyard.runtime.shim_protocol import demux

TIMEOUT = 30.0
REPS = 30  # the quick-exit cases, so that a race between the exit and the last output shows
PAYLOAD = "x" * 3000
pytestmark = [pytest.mark.runtimes, pytest.mark.timeout(600)]  # each test on the built-in runtime and runc

OUT_ERR = "echo hello out; echo hello err >&2"


@pytest.fixture(autouse=True)
def busybox(docker):
    if docker("image", "inspect", "busybox", timeout=TIMEOUT).returncode != 0:
        pulled = docker("pull", "busybox", timeout=TIMEOUT)
        assert pulled.returncode == 0, pulled.output


@pytest.fixture
def api(docker_client):
    return docker_client.api


@pytest.fixture
def cat_box(api, names) -> Iterator[str]:
    """A running `cat` with a terminal and an open stdin (-it): what a detach leaves running."""
    c = api.create_container("busybox", "cat", stdin_open=True, tty=True, name=unique("streams-cat"))
    names.append(c["Id"])
    api.start(c)
    yield c["Id"]


@pytest.fixture
def box(api, names) -> Iterator[str]:
    c = api.create_container("busybox", ["sleep", "600"], name=unique("streams"))
    names.append(c["Id"])
    api.start(c)
    yield c["Id"]


def _raw(sock: Any) -> socket.socket:
    return getattr(sock, "_sock", sock)


def read_until_eof(sock: Any, timeout: float = TIMEOUT) -> bytes:
    """All the daemon sends until it closes the stream; socket.timeout if it does not within `timeout`."""
    raw = _raw(sock)
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        raw.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = raw.recv(65536)
        if not chunk:
            return data
        data += chunk


def read_until(sock: Any, marker: bytes, timeout: float = TIMEOUT) -> bytes:
    """What arrives until `marker` has (the stream stays open)."""
    raw = _raw(sock)
    deadline = time.monotonic() + timeout
    data = b""
    while marker not in data:
        raw.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = raw.recv(65536)
        assert chunk, f"the stream ended before {marker!r}: {data!r}"
        data += chunk
    return data


def read_stdout_until(sock: Any, marker: bytes, timeout: float = TIMEOUT) -> bytes:
    """A framed stream read until its stdout has `marker` (the stream stays open); the bytes as sent."""
    raw = _raw(sock)
    deadline = time.monotonic() + timeout
    data = b""
    while marker not in b"".join(p for s, p in demux(data)[0] if s == 1):
        raw.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = raw.recv(65536)
        assert chunk, f"the stream ended before {marker!r}: {data!r}"
        data += chunk
    return data


def docker_py_frames(data: bytes, tty: bool) -> list[tuple[int, bytes]]:
    """`data` read as docker-py reads a stream (frames_iter): a stream id and a payload each."""
    from docker.utils.socket import frames_iter

    ours, theirs = socket.socketpair()
    with ours, theirs:
        writer = threading.Thread(target=lambda: (ours.sendall(data), ours.shutdown(socket.SHUT_WR)))
        writer.start()
        theirs.settimeout(TIMEOUT)
        frames = list(frames_iter(theirs, tty))
        writer.join(TIMEOUT)
    return frames


def demuxed(data: bytes, tty: bool) -> tuple[bytes | None, bytes | None]:
    """docker-py's demux of a stream: ValueError ("104 is not a valid stream") for a malformed one."""
    from docker.utils.socket import consume_socket_output, demux_adaptor

    return consume_socket_output((demux_adaptor(*f) for f in docker_py_frames(data, tty)), demux=True)


def _expected(create_tty: bool, script_out: str, script_err: str) -> tuple[bytes, bytes | None]:
    if create_tty:  # one terminal: both streams in stdout, with its CRLFs
        return (script_out + script_err).replace("\n", "\r\n").encode(), None
    return script_out.encode(), script_err.encode() or None


# --- framing: as the start request asks ------------------------------------------------------------------


@pytest.mark.parametrize("create_tty", [False, True], ids=["exec-plain", "exec-tty"])
@pytest.mark.parametrize("start_tty", [False, True], ids=["start-framed", "start-raw"])
def test_exec_stream_is_framed_as_the_start_request_asks(api, box, create_tty, start_tty):
    out, err = _expected(create_tty, "hello out\n", "hello err\n")
    e = api.exec_create(box, ["sh", "-c", "echo hello out; sleep 0.1; echo hello err >&2"], tty=create_tty)
    data = read_until_eof(api.exec_start(e, tty=start_tty, socket=True))
    if start_tty:  # raw: no headers, whatever the exec's own terminal
        assert data == out + (err or b"")
    else:
        assert demuxed(data, tty=False) == (out, err)
        if create_tty:  # docker-py's own test_exec_start_socket: one stdout frame of the terminal's bytes
            assert docker_py_frames(data, tty=False)[0] == (1, b"hello out\r\n")
    assert api.exec_inspect(e)["ExitCode"] == 0
    # docker-py's non-socket modes read what the start asked for too
    e = api.exec_create(box, ["sh", "-c", "echo hello out; sleep 0.1; echo hello err >&2"], tty=create_tty)
    assert api.exec_start(e, tty=start_tty, demux=True) == (
        (out + (err or b""), None) if start_tty else (out, err)
    )


def test_a_start_that_fails_writes_its_error_as_the_start_asks(api, box):
    for start_tty in (False, True):
        e = api.exec_create(box, ["no-such-binary"], tty=True)
        data = read_until_eof(api.exec_start(e, tty=start_tty, socket=True))
        text = data if start_tty else b"".join(p for _, p in docker_py_frames(data, tty=False))
        assert text.startswith(b"OCI runtime exec failed: ") and text.endswith(b": unknown\r\n"), data
        assert api.exec_inspect(e)["ExitCode"] == 126


# --- nothing lost when the process exits right after writing -----------------------------------------


def test_quick_exit_exec_loses_nothing(api, box):
    script = f"printf 'hello out\\n'; printf '{PAYLOAD}' >&2"
    failures: list[str] = []
    for rep in range(REPS):
        for create_tty in (False, True):
            out, err = _expected(create_tty, "hello out\n", PAYLOAD)
            for start_tty in (False, True):
                e = api.exec_create(box, ["sh", "-c", script], tty=create_tty)
                data = read_until_eof(api.exec_start(e, tty=start_tty, socket=True))
                got = (data, None) if start_tty and create_tty else demuxed(data, tty=start_tty)
                if start_tty and not create_tty:  # raw, two pipes: each stream whole, in its own order
                    got = (
                        b"hello out\n" if b"hello out\n" in data else None,
                        data.replace(b"hello out\n", b""),
                    )
                if got != (out, err):
                    failures.append(f"rep {rep} exec tty={create_tty} start tty={start_tty}: {data[:80]!r}")
            e = api.exec_create(box, ["printf", "quick"], tty=create_tty)
            if api.exec_start(e, tty=create_tty) != b"quick":
                failures.append(f"rep {rep} exec_start(stream=False) tty={create_tty}")
    assert not failures, "\n".join(failures[:10])


def test_quick_exit_attach_loses_nothing(api, names):
    failures: list[str] = []
    for rep in range(REPS // 2):
        for tty in (False, True):
            c = api.create_container(
                "busybox", ["sh", "-c", f"printf 'first\\n'; printf '{PAYLOAD}' >&2"], tty=tty
            )
            names.append(c["Id"])
            sock = api.attach_socket(c, {"stdout": 1, "stderr": 1, "stream": 1})
            api.start(c)
            data = read_until_eof(sock)
            sock.close()
            expected = _expected(tty, "first\n", PAYLOAD)
            got = (data, None) if tty else demuxed(data, tty=False)
            if got != expected:
                failures.append(f"rep {rep} tty={tty}: {data[:80]!r}")
            api.remove_container(c, force=True)
            names.remove(c["Id"])
    assert not failures, "\n".join(failures[:10])


def test_quick_exit_through_the_docker_cli(docker, box):
    for _ in range(10):
        for flags in ((), ("-t",)):
            result = docker(
                "exec", *flags, box, "sh", "-c", f"printf '{PAYLOAD}'; printf 'e' >&2", timeout=TIMEOUT
            )
            assert result.returncode == 0, result.output
            if flags:  # one terminal: stderr comes on stdout
                assert result.stdout == PAYLOAD + "e" and result.stderr == "", result.output
            else:
                assert (result.stdout, result.stderr) == (PAYLOAD, "e")


# --- detach keys, watched by the daemon ----------------------------------------------------------------


def _type(sock: Any, *keys: bytes) -> None:
    for key in keys:  # one read each, as keys typed on a terminal arrive
        _raw(sock).sendall(key)
        time.sleep(0.3)


def _detach_events(api, container_id: str, since: int) -> list[dict[str, Any]]:
    filters = {"event": "detach", "container": container_id}
    return list(api.events(since=since, until=int(time.time()) + 1, filters=filters, decode=True))


def _still_reads_its_stdin(api, container_id: str) -> None:
    """Another attach finds the same `cat`, its stdin open: the detach left it running."""
    assert api.inspect_container(container_id)["State"]["Running"] is True
    sock = api.attach_socket(container_id, {"stdin": 1, "stdout": 1, "stream": 1})
    try:
        word = f"again-{uuid.uuid4().hex[:6]}".encode()
        _raw(sock).sendall(word + b"\n")
        data = read_until(sock, word + b"\r\n")  # the terminal's echo
        if data.count(word + b"\r\n") < 2:
            read_until(sock, word + b"\r\n")  # then cat's copy of the line
    finally:
        sock.close()


@pytest.mark.parametrize(
    "params, keys",
    [
        ({}, [b"\x10", b"\x11"]),  # ctrl-p,ctrl-q
        ({"detachKeys": "ctrl-x"}, [b"\x18"]),
        ({"detachKeys": "a,DEL"}, [b"a", b"\x7f"]),
        ({}, [b"typed\x10\x11"]),  # in one read, after other input
    ],
    ids=["default", "ctrl-x", "a-DEL", "one-read"],
)
def test_attach_detach_keys(api, cat_box, params, keys):
    since = int(time.time()) - 1
    sock = api.attach_socket(cat_box, {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1, **params})
    with sock:
        _raw(sock).sendall(b"hello\n")
        read_until(sock, b"hello\r\nhello\r\n")
        _type(sock, *keys)
        rest = read_until_eof(sock)  # the daemon ends the stream
    assert b"\x10" not in rest and b"^P" not in rest  # the keys never reached the terminal
    _still_reads_its_stdin(api, cat_box)
    until("the detach event", lambda: _detach_events(api, cat_box, since), timeout=TIMEOUT)


def test_a_broken_sequence_is_input_and_the_attach_goes_on(api, cat_box):
    sock = api.attach_socket(cat_box, {"stdin": 1, "stdout": 1, "stream": 1})
    with sock:
        _type(sock, b"\x10", b"x\n")
        data = read_until(sock, b"\x10x\r\n")  # cat got ctrl-p and the x (the terminal echoed ^Px)
        assert b"^Px" in data
        _raw(sock).sendall(b"on\n")
        read_until(sock, b"on\r\non\r\n")


def test_no_keys_without_a_terminal(api, names):
    c = api.create_container("busybox", "cat", stdin_open=True, name=unique("streams-plain"))
    names.append(c["Id"])
    api.start(c)
    sock = api.attach_socket(c, {"stdin": 1, "stdout": 1, "stream": 1})
    with sock:
        _type(sock, b"\x10", b"\x11", b"\n")
        data = read_stdout_until(sock, b"\x10\x11\n")  # passed on as any input
        assert demuxed(data, tty=False) == (b"\x10\x11\n", None)


def test_exec_detach_keys(api, cat_box):
    e = api.exec_create(cat_box, "cat", stdin=True, tty=True)
    sock = api.exec_start(e, tty=True, socket=True)
    with sock:
        _raw(sock).sendall(b"in-exec\n")
        read_until(sock, b"in-exec\r\nin-exec\r\n")
        _type(sock, b"\x10", b"\x11")
        rest = read_until_eof(sock)
    # dockerd 20.10's words after a detach from an exec, raw as the start asked
    assert rest.endswith(b"exec attach failed: error on attach stdin: read escape sequence\r\n"), rest
    info = api.exec_inspect(e)
    assert info["Running"] is True and info["ExitCode"] is None  # the process runs on
    assert any(p[-1] == "cat" and int(p[1]) == info["Pid"] for p in api.top(cat_box)["Processes"])

    # its own keys, framed as this start asks, and exec inspect's DetachKeys as dockerd shows them
    e = api.exec_create(cat_box, "cat", stdin=True, tty=True, detach_keys="ctrl-e")
    assert api.exec_inspect(e)["DetachKeys"] == "BQ=="
    sock = api.exec_start(e, tty=False, socket=True)
    with sock:
        _type(sock, b"\x10", b"\x11", b"\x05")
        rest = read_until_eof(sock)
    assert demuxed(rest, tty=False)[0].endswith(b"read escape sequence\r\n")
    assert api.exec_inspect(e)["Running"] is True


def test_the_end_of_a_terminal_input_ends_the_stream_and_the_process_runs_on(api, docker, cat_box, names):
    e = api.exec_create(cat_box, "cat", stdin=True, tty=True)
    sock = api.exec_start(e, tty=True, socket=True)
    with sock:
        _raw(sock).sendall(b"last\n")
        read_until(sock, b"last\r\nlast\r\n")
        _raw(sock).shutdown(socket.SHUT_WR)
        assert read_until_eof(sock) == b""  # no error text: the attach simply ended (dockerd)
    assert api.exec_inspect(e)["Running"] is True  # its stdin was not closed (no EOF typed at it)
    # a container's attach without StdinOnce (`run -d -i`) ends the same way, without a terminal too
    name = unique("streams-plain")
    names.append(name)
    assert docker("run", "-d", "-i", "--name", name, "busybox", "cat", timeout=TIMEOUT).returncode == 0
    sock = api.attach_socket(name, {"stdin": 1, "stdout": 1, "stream": 1})
    with sock:
        _raw(sock).sendall(b"one\n")
        read_stdout_until(sock, b"one\n")
        _raw(sock).shutdown(socket.SHUT_WR)
        assert read_until_eof(sock) == b""
    assert api.inspect_container(name)["State"]["Running"] is True
    # with StdinOnce (docker-py's stdin_open), the container's stdin ends instead and the output goes on
    c = api.create_container("busybox", ["sh", "-c", "cat; echo after"], stdin_open=True)
    names.append(c["Id"])
    api.start(c)
    sock = api.attach_socket(c, {"stdin": 1, "stdout": 1, "stream": 1})
    with sock:
        _raw(sock).sendall(b"two\n")
        read_stdout_until(sock, b"two\n")
        _raw(sock).shutdown(socket.SHUT_WR)
        assert demuxed(read_until_eof(sock), tty=False) == (b"after\n", None)
    assert api.wait(c, timeout=TIMEOUT)["StatusCode"] == 0


def test_bad_detach_keys_as_dockerd(api, cat_box):
    import docker as docker_sdk

    with pytest.raises(docker_sdk.errors.APIError) as info:
        api.attach_socket(cat_box, {"stdin": 1, "stream": 1, "detachKeys": "ctrl-"})
    assert info.value.status_code == 400
    assert "Invalid detach keys (ctrl-) provided" in str(info.value.explanation)
    with pytest.raises(docker_sdk.errors.APIError) as info:
        api.exec_create(cat_box, "cat", detach_keys="ctrl-P")
    assert info.value.status_code == 500
    assert info.value.explanation == "Invalid escape keys (ctrl-P) provided"


@pytest.mark.runtimes("dockyard")  # a daemon of its own: once is enough
def test_daemon_json_detach_keys(registry, workdir):
    import docker as docker_sdk

    root = workdir / f"daemon-keys-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    (root / "daemon.json").write_text(json.dumps({"detach-keys": "ctrl-pp"}))
    bad = DaemonProcess(root, ["--registry-mirror", registry.url])
    with pytest.raises(RuntimeError):
        bad.start(timeout=20)
    assert "invalid \"detach-keys\" (ctrl-pp): Unknown character: 'ctrl-pp'" in bad.log_tail()

    (root / "daemon.json").write_text(json.dumps({"detach-keys": "ctrl-e"}))
    own = DaemonProcess(root, ["--registry-mirror", registry.url]).start()
    try:
        client = docker_sdk.APIClient(base_url=own.host, timeout=60)
        client.pull("busybox", tag="latest")
        c = client.create_container("busybox", "cat", stdin_open=True, tty=True)
        client.start(c)
        sock = client.attach_socket(c, {"stdin": 1, "stdout": 1, "stream": 1})
        with sock:
            _type(sock, b"\x10", b"\x11", b"not-yet\n")  # ctrl-p,ctrl-q are input here
            read_until(sock, b"not-yet\r\n")
            _type(sock, b"\x05")
            read_until_eof(sock)
        assert client.inspect_container(c)["State"]["Running"] is True
        e = client.exec_create(c, "cat", stdin=True, tty=True)  # an exec without keys of its own too
        sock = client.exec_start(e, tty=True, socket=True)
        with sock:
            _type(sock, b"\x05")
            assert read_until_eof(sock).endswith(b"read escape sequence\r\n")
        client.remove_container(c, force=True)
        client.close()
    finally:
        own.stop()


# --- the CLIs on a pty: they detach on their side; the process runs on -----------------------------------


def _cli_env(daemon: DaemonProcess) -> dict[str, str]:
    return {"DOCKER_CONFIG": str(daemon.root / "docker-config")}  # no detachKeys of a user's config


def _processes(docker, container: str) -> str:
    return docker("exec", container, "ps", "-o", "args", timeout=TIMEOUT).stdout


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
@pytest.mark.parametrize("keys, flags", [(b"\x10\x11", ()), (b"\x18", ("--detach-keys", "ctrl-x"))])
def test_cli_exec_it_detaches_and_the_process_runs_on(cli, keys, flags, daemon, docker, names):
    name = unique("streams-cli")
    names.append(name)
    assert docker("run", "-d", "--name", name, "busybox", "sleep", "600", timeout=TIMEOUT).returncode == 0
    marker = f"detached-{uuid.uuid4().hex[:6]}"
    argv = ["docker", "-H", daemon.host] if cli == "docker" else [DOCKYARD, "-H", daemon.host]
    argv += ["exec", "-it", *flags, name, "sh", "-c", f"echo size; read x; echo got-$x {marker}"]
    status, output = run_in_pty(argv, _cli_env(daemon), keys, timeout=TIMEOUT)
    assert b"got-" not in output, output
    # the docker CLI (28) says "read escape sequence" and exits 1 after this detach; ours exits 0
    assert status == (1 if cli == "docker" else 0), output
    assert marker in _processes(docker, name)  # the shell still reads its terminal


@pytest.mark.parametrize("cli", ["docker", "dockyard"])
def test_cli_attach_detaches_and_the_container_runs_on(cli, daemon, docker, api, names):
    name = unique("streams-attach")
    names.append(name)
    started = docker(
        "run", "-dit", "--name", name, "busybox", "sh", "-c", "while :; do echo size; sleep 0.2; done"
    )
    assert started.returncode == 0, started.output
    argv = ["docker", "-H", daemon.host] if cli == "docker" else [DOCKYARD, "-H", daemon.host]
    status, output = run_in_pty([*argv, "attach", name], _cli_env(daemon), b"\x10\x11", timeout=TIMEOUT)
    assert status == (1 if cli == "docker" else 0), output  # as after an exec's detach
    assert docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    # attached again: the loop's output still comes
    sock = api.attach_socket(name, {"stdout": 1, "stream": 1})
    with sock:
        read_until(sock, b"size\r\n")
