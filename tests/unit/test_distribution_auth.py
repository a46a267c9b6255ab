"""Authentication logic: challenges, X-Registry-Auth, the token cache, docker's config.json."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from dockyard.distribution import (
    DOCKER_HUB_SERVER,
    AuthConfig,
    InvalidRegistryAuth,
    TokenCache,
    credential_key,
    decode_registry_auth,
    find_credentials,
    load_credentials,
    parse_challenges,
    remove_credentials,
    store_credentials,
)
from dockyard.distribution.auth import Challenge, token_key
from dockyard.distribution.errors import errcode_text, parse_error_body

# ------------------------------------------------------------------------------------------- challenges


def test_docker_hub_bearer_challenge() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"'
    )
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.docker.io/token"
    assert challenge.service == "registry.docker.io"
    assert challenge.scope == "repository:library/busybox:pull"


def test_basic_challenge_and_case_insensitivity() -> None:
    [challenge] = parse_challenges('BASIC Realm="Registry Realm"')
    assert challenge == Challenge("basic", {"realm": "Registry Realm"})


def test_multiple_challenges_in_one_header_and_across_headers() -> None:
    challenges = parse_challenges(
        [
            'Bearer realm="https://a/token", service="svc", scope="repository:x:pull,push", Basic realm="r"',
            'Negotiate, Basic realm="second"',
        ]
    )
    assert [c.scheme for c in challenges] == ["bearer", "basic", "negotiate", "basic"]
    assert challenges[0].scope == "repository:x:pull,push"  # the comma inside quotes is kept
    assert challenges[1].realm == "r"
    assert challenges[3].realm == "second"


def test_challenge_quoting_tokens_and_error_params() -> None:
    [challenge] = parse_challenges(
        'Bearer realm=https://h/token,service=reg ,error="insufficient_scope",'
        'error_description="say \\"no\\""'
    )
    assert challenge.realm == "https://h/token"
    assert challenge.service == "reg"
    assert challenge.error == "insufficient_scope"
    assert challenge.params["error_description"] == 'say "no"'


def test_challenge_token68_and_junk() -> None:
    assert [c.scheme for c in parse_challenges("Basic dXNlcjpwYXNz==, Bearer realm=x")] == ["basic", "bearer"]
    assert parse_challenges("") == []
    assert parse_challenges(" , ,") == []


# --------------------------------------------------------------------------------------- X-Registry-Auth


def _b64url(doc: object, pad: bool = True) -> str:
    text = base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()
    return text if pad else text.rstrip("=")


def test_decode_registry_auth_padded_and_unpadded() -> None:
    doc = {"username": "u", "password": "p?>>", "serveraddress": "localhost:5000"}
    for value in (_b64url(doc), _b64url(doc, pad=False)):
        auth = decode_registry_auth(value)
        assert auth == AuthConfig(username="u", password="p?>>", server_address="localhost:5000")
    # The standard alphabet works too.
    std = base64.b64encode(json.dumps(doc).encode()).decode()
    assert decode_registry_auth(std) == AuthConfig(
        username="u", password="p?>>", server_address="localhost:5000"
    )


def test_decode_registry_auth_empty_forms() -> None:
    assert decode_registry_auth(None) is None
    assert decode_registry_auth("") is None
    assert decode_registry_auth("e30=") is None  # {}
    assert decode_registry_auth("e30") is None
    assert decode_registry_auth(_b64url({"username": "", "password": "", "email": ""})) is None


def test_decode_registry_auth_tokens_auth_field_and_key_case() -> None:
    auth = decode_registry_auth(_b64url({"IdentityToken": "refresh", "ServerAddress": "h"}))
    assert auth is not None and auth.identity_token == "refresh" and auth.server_address == "h"
    auth = decode_registry_auth(_b64url({"registrytoken": "tok"}))
    assert auth is not None and auth.registry_token == "tok"
    auth = decode_registry_auth(_b64url({"auth": base64.b64encode(b"user:pa:ss").decode()}))
    assert auth is not None and (auth.username, auth.password) == ("user", "pa:ss")


@pytest.mark.parametrize("value", ["!!!notbase64", _b64url([1, 2]), base64.b64encode(b"not json").decode()])
def test_decode_registry_auth_invalid(value: str) -> None:
    with pytest.raises(InvalidRegistryAuth) as exc:
        decode_registry_auth(value)
    assert str(exc.value).startswith("invalid X-Registry-Auth header")


def test_auth_config_round_trip_and_no_secret_in_repr() -> None:
    auth = AuthConfig(username="u", password="secret", server_address="h:5000")
    assert decode_registry_auth(auth.encode_header()) == auth
    assert "secret" not in repr(auth)
    assert auth.basic_header() == "Basic " + base64.b64encode(b"u:secret").decode()
    assert AuthConfig().is_empty and AuthConfig().fingerprint() == ""
    assert auth.fingerprint() != AuthConfig(username="u", password="other").fingerprint()
    assert "secret" not in auth.fingerprint()


# ------------------------------------------------------------------------------------------ token cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_cache_expiry() -> None:
    clock = FakeClock()
    cache = TokenCache(clock)
    key = ("https://auth/token", "svc", "repository:a:pull", "")
    cache.put(key, "tok", 300)
    assert cache.get(key) == "tok"
    clock.now += 299
    assert cache.get(key) == "tok"
    clock.now += 1
    assert cache.get(key) is None
    assert len(cache) == 0


def test_token_cache_default_and_minimum_lifetime() -> None:
    clock = FakeClock()
    cache = TokenCache(clock)
    short, default = ("r", "s", "a", ""), ("r", "s", "b", "")
    cache.put(short, "t1", 5)  # servers saying less than 60 s get 60 s, as Docker does
    cache.put(default, "t2")
    clock.now += 59
    assert cache.get(short) == "t1" and cache.get(default) == "t2"
    clock.now += 1
    assert cache.get(short) is None and cache.get(default) is None


def test_token_cache_invalidate_and_keys() -> None:
    cache = TokenCache()
    challenge = Challenge("bearer", {"realm": "https://auth/token", "service": "svc"})
    alice = AuthConfig(username="alice", password="a")
    k1 = token_key(challenge, ["repository:x:pull", "repository:y:pull"], alice)
    k2 = token_key(challenge, ["repository:y:pull", "repository:x:pull"], alice)
    assert k1 == k2  # scope order does not matter
    assert token_key(challenge, ["repository:x:pull"], None) != token_key(
        challenge, ["repository:x:pull"], alice
    )
    cache.put(k1, "t")
    cache.invalidate(k1)
    assert cache.get(k1) is None


# ------------------------------------------------------------------------------------------- config.json


def test_credential_keys() -> None:
    for hub in ("docker.io", "index.docker.io", "https://index.docker.io/v1/", "registry-1.docker.io", ""):
        assert credential_key(hub) == DOCKER_HUB_SERVER
    assert credential_key("localhost:5000") == "localhost:5000"
    assert credential_key("https://localhost:5000/v2/") == "localhost:5000"
    assert credential_key("http://127.0.0.1:5000") == "127.0.0.1:5000"


def test_config_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "docker" / "config.json"
    assert load_credentials(path) == {}
    store_credentials(path, "docker.io", AuthConfig(username="hub", password="p1"))
    store_credentials(path, "127.0.0.1:5000", AuthConfig(username="me", password="p:2"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["auths"][DOCKER_HUB_SERVER] == {"auth": base64.b64encode(b"hub:p1").decode()}
    assert doc["auths"]["127.0.0.1:5000"] == {"auth": base64.b64encode(b"me:p:2").decode()}
    creds = load_credentials(path)
    assert creds[DOCKER_HUB_SERVER].username == "hub" and creds[DOCKER_HUB_SERVER].password == "p1"
    assert creds["127.0.0.1:5000"].password == "p:2"
    assert creds["127.0.0.1:5000"].server_address == "127.0.0.1:5000"
    assert find_credentials(creds, "docker.io") is creds[DOCKER_HUB_SERVER]
    assert find_credentials(creds, "127.0.0.1:5000") is creds["127.0.0.1:5000"]
    assert find_credentials(creds, "other:5000") is None
    # No temporary files are left behind.
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json"]


def test_config_keeps_other_keys_and_replaces_equivalent_entries(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "auths": {"https://localhost:5000/v2/": {"auth": base64.b64encode(b"old:x").decode()}},
                "psFormat": "table {{.ID}}",
                "credHelpers": {"gcr.io": "gcloud"},
            }
        )
    )
    store_credentials(path, "localhost:5000", AuthConfig(username="new", password="y", identity_token="rt"))
    doc = json.loads(path.read_text())
    assert doc["psFormat"] == "table {{.ID}}" and doc["credHelpers"] == {"gcr.io": "gcloud"}
    assert list(doc["auths"]) == ["localhost:5000"]
    assert doc["auths"]["localhost:5000"]["identitytoken"] == "rt"
    assert load_credentials(path)["localhost:5000"].identity_token == "rt"


def test_remove_credentials(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    assert remove_credentials(path, "docker.io") is False
    assert not path.exists()
    store_credentials(path, "https://index.docker.io/v1/", AuthConfig(username="a", password="b"))
    store_credentials(path, "h:1", AuthConfig(username="c", password="d"))
    assert remove_credentials(path, "index.docker.io") is True
    assert remove_credentials(path, "docker.io") is False
    assert list(load_credentials(path)) == ["h:1"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_store_through_symlink_keeps_link(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text("{}")
    link = tmp_path / "config.json"
    os.symlink(real, link)
    store_credentials(link, "h:1", AuthConfig(username="u", password="p"))
    assert link.is_symlink()
    assert "h:1" in json.loads(real.read_text())["auths"]


def test_load_credentials_plain_fields_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"h": {"username": "u", "password": "p"}, "x": "junk"}}))
    creds = load_credentials(path)
    assert list(creds) == ["h"] and creds["h"].username == "u"
    path.write_text("{not json")
    with pytest.raises(Exception, match="error loading config file"):
        load_credentials(path)
    path.write_text("")
    assert load_credentials(path) == {}


# ------------------------------------------------------------------------------------------ error bodies


def test_error_bodies() -> None:
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"1"}}]}'
    assert parse_error_body(body) == ("MANIFEST_UNKNOWN", "manifest unknown")
    assert parse_error_body(b'{"details":"incorrect username or password"}') == (
        "",
        "incorrect username or password",
    )
    assert parse_error_body(b"404 page not found") == ("", "")
    assert errcode_text("MANIFEST_UNKNOWN", "manifest unknown") == "manifest unknown: manifest unknown"
    assert errcode_text("UNAUTHORIZED", "") == "unauthorized: unauthorized"
