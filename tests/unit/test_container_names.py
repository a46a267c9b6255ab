"""Container names (Docker's rule, generated names) and IDs (generation; resolution by ID, name, prefix)."""

import random
import re

import pytest

from dockyard.containers import ids, names
from dockyard.containers.ids import AmbiguousPrefix, InvalidIdentifier, NoSuchContainer, generate_id, resolve
from dockyard.containers.names import (
    ADJECTIVES,
    SURNAMES,
    InvalidName,
    NameConflict,
    generate_name,
    random_name,
    validate_name,
)

RULE = "[a-zA-Z0-9][a-zA-Z0-9_.-]"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("web", "web"),
        ("/web", "web"),
        ("ab", "ab"),
        ("my_app.v2-blue", "my_app.v2-blue"),
        ("0abc", "0abc"),
        ("A-B", "A-B"),
        ("a", None),  # two characters at least
        ("/a", None),
        ("", None),
        ("/", None),
        ("_web", None),
        (".web", None),
        ("-web", None),
        ("web app", None),
        ("web/app", None),
        ("//web", None),
        ("wéb", None),
        ("web\n", None),
        ("web:1", None),
    ],
)
def test_validate_name(name, expected):
    if expected is None:
        with pytest.raises(InvalidName) as e:
            validate_name(name)
        assert str(e.value) == f"Invalid container name ({name}), only {RULE} are allowed"
    else:
        assert validate_name(name) == expected


def test_word_lists():
    assert len(ADJECTIVES) >= 100 and len(SURNAMES) >= 150
    assert len(set(ADJECTIVES)) == len(ADJECTIVES) and len(set(SURNAMES)) == len(SURNAMES)
    for word in (*ADJECTIVES, *SURNAMES):
        assert re.fullmatch("[a-z]+", word), word


def test_random_names_are_valid_docker_names():
    rng = random.Random(7)
    for attempt in range(50):
        name = random_name(attempt % 6, rng)
        assert validate_name(name) == name
        adjective, surname = name.split("_")
        assert adjective in ADJECTIVES
        if attempt % 6:
            assert surname[-1].isdigit() and surname[:-1] in SURNAMES
        else:
            assert surname in SURNAMES


def test_generate_name_retries_with_a_digit():
    seen = []

    def taken(name):
        seen.append(name)
        return len(seen) < 3

    name = generate_name(taken, rng=random.Random(1))
    assert name == seen[-1] and len(seen) == 3
    assert not seen[0][-1].isdigit()
    assert seen[1][-1].isdigit() and seen[2][-1].isdigit()


def test_generate_name_falls_back_like_docker():
    tried = []

    def taken(name):
        tried.append(name)
        return name != "4f1d2c3b5a69"

    assert generate_name(taken, fallback="4f1d2c3b5a69") == "4f1d2c3b5a69"
    assert len(tried) == names.ATTEMPTS + 1
    with pytest.raises(RuntimeError):
        generate_name(lambda n: True)
    assert generate_name(lambda n: False) in {f"{a}_{s}" for a in ADJECTIVES for s in SURNAMES}


def test_name_conflict_message():
    e = NameConflict("/web", "abc123")
    assert str(e) == (
        'Conflict. The container name "/web" is already in use by container "abc123". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert str(NameConflict("web", "abc123")) == str(e)


# --- IDs -------------------------------------------------------------------------------------------------


def test_generate_id():
    new = generate_id()
    assert re.fullmatch("[0-9a-f]{64}", new)
    assert new != generate_id()
    assert ids.short_id(new) == new[:12]


def test_generate_id_avoids_numeric_short_ids(monkeypatch):
    values = iter(["123456789012" + "a" * 52, "12345678901a" + "0" * 52])
    monkeypatch.setattr(ids.secrets, "token_hex", lambda n: next(values))
    assert generate_id() == "12345678901a" + "0" * 52


A = "abc1" + "0" * 60
B = "abc2" + "1" * 60
C = "def0" + "2" * 60
CONTAINERS = {A: "/web", B: "db", C: "abc1"}


@pytest.mark.parametrize(
    "ref, expected",
    [
        (A, A),  # exact ID
        ("web", A),  # name, stored with its '/'
        ("/web", A),
        ("db", B),  # name, stored without
        ("/db", B),
        ("abc1", C),  # an exact name wins over an ID prefix
        ("abc2", B),  # unique prefix
        ("d", C),
        ("abc", AmbiguousPrefix),
        ("zzz", NoSuchContainer),
        ("/abc2", NoSuchContainer),  # a '/' makes it a name, never a prefix
        ("", InvalidIdentifier),
    ],
)
def test_resolve(ref, expected):
    if isinstance(expected, type):
        with pytest.raises(expected):
            resolve(ref, CONTAINERS)
    else:
        assert resolve(ref, CONTAINERS) == expected


def test_resolve_messages():
    with pytest.raises(AmbiguousPrefix) as e:
        resolve("abc", CONTAINERS)
    assert str(e.value) == "multiple IDs found with provided prefix: abc"
    with pytest.raises(NoSuchContainer) as e:
        resolve("zzz", CONTAINERS)
    assert str(e.value) == "No such container: zzz"
    assert isinstance(e.value, LookupError)
    with pytest.raises(InvalidIdentifier) as e:
        resolve("", CONTAINERS)
    assert str(e.value) == 'invalid name or ID supplied: ""'
