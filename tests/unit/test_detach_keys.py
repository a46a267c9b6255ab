"""Detach keys: moby/term's key specs, its escape proxy's watch over a stream's input (shared by the
daemon and the CLI), daemon.json's `detach-keys`, and an exec's DetachKeys as dockerd checks and shows
them."""

from __future__ import annotations

import pytest

from dockyard.containers.execs import ExecConfigError, new_exec
from dockyard.detachkeys import DEFAULT_DETACH_KEYS, EscapeScanner, to_bytes
from dockyard.engine.config import ConfigError, build_config, read_config_file


@pytest.mark.parametrize(
    "spec, keys",
    [
        (DEFAULT_DETACH_KEYS, b"\x10\x11"),
        ("ctrl-@,ctrl-a,ctrl-z", b"\x00\x01\x1a"),
        ("ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x1b\x1c\x1d\x1e\x1f"),
        ("a,b,C", b"abC"),
        ("DEL", b"\x7f"),
        ("ctrl-x", b"\x18"),
        (" ", b" "),
    ],
)
def test_specs_as_moby_term(spec: str, keys: bytes) -> None:
    assert to_bytes(spec) == keys


@pytest.mark.parametrize(
    "spec, bad",
    [
        ("ctrl-", "ctrl-"),
        ("ctrl-P", "ctrl-P"),
        ("a,,b", ""),
        ("ab", "ab"),
        ("é", "é"),
        ("ctrl-p, ctrl-q", " ctrl-q"),
        ("del", "del"),
    ],
)
def test_bad_specs_name_the_key(spec: str, bad: str) -> None:
    with pytest.raises(ValueError) as info:
        to_bytes(spec)
    assert str(info.value) == f"Unknown character: '{bad}'"


def _run(keys: bytes, chunks: list[bytes]) -> tuple[bytes, int | None]:
    """(what is passed on, the index of the chunk that completed the sequence)."""
    scanner = EscapeScanner(keys)
    out = b""
    for i, chunk in enumerate(chunks):
        passed, detached = scanner.feed(chunk)
        out += passed
        if detached:
            return out, i
    return out + scanner.flush(), None


def test_keys_one_read_each_detach_and_are_never_passed_on() -> None:
    assert _run(b"\x10\x11", [b"hi\n", b"\x10", b"\x11", b"after"]) == (b"hi\n", 2)


def test_keys_in_one_read_detach_with_what_came_before_them() -> None:
    assert _run(b"\x10\x11", [b"ab\x10\x11cd"]) == (b"ab", 0)
    assert _run(b"\x10\x11", [b"ab\x10", b"\x11"]) == (b"ab", 1)


def test_a_broken_sequence_is_input_after_all() -> None:
    assert _run(b"\x10\x11", [b"\x10", b"x"]) == (b"\x10x", None)
    assert _run(b"\x10\x11", [b"\x10x\x11"]) == (b"\x10x\x11", None)
    # the byte that broke it does not start a sequence of its own (moby/term's proxy)
    assert _run(b"\x10\x11", [b"\x10\x10\x11"]) == (b"\x10\x10\x11", None)
    assert _run(b"\x01\x02\x03", [b"\x01\x02", b"z", b"\x01\x02\x03"]) == (b"\x01\x02z", 2)


def test_what_is_held_back_comes_out_at_the_end_of_the_input() -> None:
    assert _run(b"\x10\x11", [b"abc\x10"]) == (b"abc\x10", None)


def test_one_key_and_no_keys() -> None:
    assert _run(b"\x18", [b"a\x18b"]) == (b"a", 0)
    assert _run(b"", [b"\x10\x11"]) == (b"\x10\x11", None)


def test_large_input_without_keys_is_passed_through_whole() -> None:
    data = bytes(range(32, 127)) * 10_000
    assert _run(b"\x10\x11", [data, data]) == (data + data, None)


def test_daemon_json_detach_keys(tmp_path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"detach-keys": "ctrl-e,e"}')
    config = build_config(read_config_file(str(path), True), {}, str(path))
    assert config.detach_keys == "ctrl-e,e"
    assert build_config({}, {}, str(path)).detach_keys == ""  # the default: ctrl-p,ctrl-q
    path.write_text('{"detach-keys": "ctrl-pp"}')
    with pytest.raises(ConfigError) as info:
        build_config(read_config_file(str(path), True), {}, str(path))
    assert str(info.value) == (
        f"unable to configure the Dockyard daemon with file {path}: "
        "invalid \"detach-keys\" (ctrl-pp): Unknown character: 'ctrl-pp'"
    )


def test_exec_create_checks_the_keys_as_dockerd() -> None:
    with pytest.raises(ExecConfigError) as info:
        new_exec("c" * 64, {"Cmd": ["cat"], "DetachKeys": "ctrl-"})
    assert (str(info.value), info.value.status) == ("Invalid escape keys (ctrl-) provided", 500)
    # docker-py sends `detachKeys`: Go's encoding/json matches a field's name whatever its case
    record = new_exec("c" * 64, {"Cmd": ["cat"], "detachKeys": "ctrl-p"})
    assert record.detach_keys == "ctrl-p"
    assert record.inspect()["DetachKeys"] == "EA=="  # dockerd's []byte, base64 in JSON
    assert new_exec("c" * 64, {"Cmd": ["cat"]}).inspect()["DetachKeys"] == ""
