"""ContainerStore: persistence, names and lookup, on a tmp dir."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from dockyard.containers.ids import AmbiguousPrefix, NoSuchContainer, generate_id
from dockyard.containers.names import NameConflict
from dockyard.containers.store import CONFIG_FILE, Container, ContainerStore


def make(cid: str, name: str, image_id: str = "sha256:" + "a" * 64, status: str = "created") -> Container:
    c = Container(
        id=cid,
        name=name,
        image="busybox",
        image_id=image_id,
        config={"Cmd": ["sh"], "Env": ["A=1"], "Labels": {"x": "y"}},
        host_config={"Memory": 1 << 20, "RestartPolicy": {"Name": "no"}},
    )
    c.state.status = status
    return c


def test_round_trip(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path)
    c = make(generate_id(), "web")
    store.add(c)
    c.state.status, c.state.pid, c.restart_count = "running", 1234, 2
    c.extra["shim"] = "/run/x.sock"
    store.save(c)
    assert (tmp_path / c.id / CONFIG_FILE).is_file()

    again = ContainerStore(tmp_path)
    assert again.load() == 1
    got = again.get(c.id)
    assert got == c
    assert got.created.endswith("Z") and got.state.running
    with pytest.raises(NameConflict):
        again.reserve_name("web", generate_id())


def test_unknown_and_missing_keys_tolerated(tmp_path: Path) -> None:
    cid = generate_id()
    (tmp_path / cid).mkdir()
    record = {
        "id": cid,
        "name": "old",
        "image": "x",
        "image_id": "sha256:b",
        "future": 1,
        "state": {"pid": 7, "new": 0},
    }
    (tmp_path / cid / CONFIG_FILE).write_text(json.dumps(record))
    store = ContainerStore(tmp_path)
    assert store.load() == 1
    assert store.get("old").state.pid == 7 and store.get("old").state.status == "created"


def test_name_conflicts(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path)
    first, second = generate_id(), generate_id()
    store.reserve_name("/db", first)
    store.reserve_name("db", first)  # the same container may claim it again
    with pytest.raises(NameConflict) as info:
        store.add(make(second, "db"))
    assert f'"/db" is already in use by container "{first}"' in str(info.value)
    assert second not in store and not (tmp_path / second).exists()
    store.release_name("/db")
    store.add(make(second, "db"))
    assert store.get("db").id == second

    store.rename(store.get("db"), "/db2")
    assert not store.name_taken("db") and store.get("/db2").id == second
    store.remove(second)
    assert not store.name_taken("db2") and not (tmp_path / second).exists()
    with pytest.raises(NoSuchContainer):
        store.get("db2")


def test_lookup_by_name_and_prefix(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path)
    a, b = "abc1" + "0" * 60, "abc2" + "0" * 60
    store.add(make(a, "alpha"))
    store.add(make(b, "beta"))
    assert store.get(a).name == "alpha"
    assert store.get("/beta").id == b and store.get("beta").id == b
    assert store.get("abc1").id == a
    with pytest.raises(AmbiguousPrefix):
        store.get("abc")
    with pytest.raises(NoSuchContainer):
        store.get("zzz")
    # An exact name wins over an ID prefix, as in Docker.
    c = generate_id()
    store.add(make(c, "abc2"))
    assert store.get("abc2").id == c


def test_corrupt_file_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good, bad, empty = generate_id(), generate_id(), generate_id()
    ContainerStore(tmp_path).add(make(good, "good"))
    (tmp_path / bad).mkdir()
    (tmp_path / bad / CONFIG_FILE).write_text('{"id": "trunc')
    (tmp_path / empty).mkdir()  # a crash between mkdir and the first write
    (tmp_path / good / f".{CONFIG_FILE}.tmp123").write_text("{")
    store = ContainerStore(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert store.load() == 1
    assert [c.id for c in store.all()] == [good]
    assert bad in caplog.text and empty in caplog.text
    assert not (tmp_path / good / f".{CONFIG_FILE}.tmp123").exists()


def test_users_of_image(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path)
    image, other = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    store.add(make(generate_id(), "r", image, "running"))
    store.add(make(generate_id(), "p", image, "paused"))
    store.add(make(generate_id(), "e", image, "exited"))
    store.add(make(generate_id(), "o", other, "running"))
    uses = {store.get(u.container_id).name: u.running for u in store.users_of_image(image)}
    assert uses == {"r": True, "p": True, "e": False}
