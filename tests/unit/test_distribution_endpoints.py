"""Endpoint lists (mirrors, insecure registries, loopback) and the mapping of registry errors."""

from __future__ import annotations

import pytest

import dockyard.distribution as distribution
from dockyard.distribution import (
    AccessDenied,
    Endpoint,
    ManifestUnknown,
    NotFound,
    RegistryError,
    RegistryHosts,
    Unauthorized,
)
from dockyard.distribution.client import _login_domain, _with_digest, map_error
from dockyard.distribution.endpoints import split_host_port
from dockyard.engine.config import DaemonConfig
from dockyard.reference import parse_reference

HUB = "https://registry-1.docker.io"


def test_docker_hub_without_mirrors() -> None:
    assert RegistryHosts().endpoints("docker.io") == [Endpoint(HUB)]


def test_docker_hub_mirrors_first() -> None:
    hosts = RegistryHosts(mirrors=["https://mirror.example.com/", "http://127.0.0.1:5000"])
    assert hosts.endpoints("docker.io") == [
        Endpoint("https://mirror.example.com", mirror=True, insecure=False),
        Endpoint("http://127.0.0.1:5000", mirror=True, insecure=True),
        Endpoint(HUB),
    ]
    # Push and login go to Docker Hub itself.
    assert hosts.endpoints("docker.io", include_mirrors=False) == [Endpoint(HUB)]
    assert hosts.endpoints("index.docker.io") == hosts.endpoints("docker.io")


def test_mirrors_are_not_used_for_other_registries() -> None:
    hosts = RegistryHosts(mirrors=["https://mirror.example.com"])
    assert hosts.endpoints("quay.io") == [Endpoint("https://quay.io")]


def test_secure_registry_is_https_only() -> None:
    assert RegistryHosts().endpoints("registry.example.com:5000") == [
        Endpoint("https://registry.example.com:5000")
    ]


@pytest.mark.parametrize(
    "domain", ["localhost", "localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000", "LOCALHOST:5000"]
)
def test_loopback_is_always_insecure(domain: str) -> None:
    hosts = RegistryHosts()
    assert hosts.is_insecure(domain)
    assert hosts.endpoints(domain) == [
        Endpoint(f"https://{domain}", insecure=True),
        Endpoint(f"http://{domain}", insecure=True),
    ]


def test_insecure_by_name_and_cidr() -> None:
    hosts = RegistryHosts(insecure=["myreg:5000", "10.0.0.0/8", "http://other.example/", "fd00::/8"])
    assert hosts.is_insecure("myreg:5000")
    assert not hosts.is_insecure("myreg:6000")  # listed with a port: only that port
    assert hosts.is_insecure("other.example")
    assert hosts.is_insecure("10.1.2.3:5000")
    assert hosts.is_insecure("[fd00::1]:5000")
    assert not hosts.is_insecure("11.0.0.1")
    assert not hosts.is_insecure("registry.example.com")
    assert hosts.endpoints("10.1.2.3:5000")[-1] == Endpoint("http://10.1.2.3:5000", insecure=True)


def test_insecure_mirror() -> None:
    hosts = RegistryHosts(mirrors=["https://mirror.corp:5000"], insecure=["mirror.corp:5000"])
    assert hosts.endpoints("docker.io")[0] == Endpoint("https://mirror.corp:5000", mirror=True, insecure=True)


def test_from_config() -> None:
    config = DaemonConfig(registry_mirrors=["http://127.0.0.1:5000"], insecure_registries=["r:1"])
    hosts = RegistryHosts.from_config(config)
    assert hosts.mirrors == ["http://127.0.0.1:5000"]
    assert hosts.is_insecure("r:1")


def test_endpoint_properties_and_split() -> None:
    ep = Endpoint("https://h:5000")
    assert (ep.scheme, ep.host) == ("https", "h:5000")
    assert split_host_port("[::1]:5000") == ("::1", 5000)
    assert split_host_port("h") == ("h", None)
    assert split_host_port("::1") == ("::1", None)


def test_login_domain_and_upload_url() -> None:
    assert _login_domain("https://index.docker.io/v1/") == "docker.io"
    assert _login_domain("") == "docker.io"
    assert _login_domain("http://127.0.0.1:5000/") == "127.0.0.1:5000"
    assert _login_domain("localhost:5000") == "localhost:5000"
    digest = "sha256:" + "a" * 64
    assert _with_digest("http://h/v2/x/blobs/uploads/u?_state=abc", digest) == (
        f"http://h/v2/x/blobs/uploads/u?_state=abc&digest={digest}"
    )
    assert _with_digest("http://h/u", digest) == f"http://h/u?digest={digest}"


def test_public_surface_is_complete() -> None:
    for name in distribution.__all__:
        assert getattr(distribution, name) is not None
    assert set(distribution.__all__) == set(distribution._EXPORTS)


# -------------------------------------------------------------------------------------- error mapping

REF = parse_reference("127.0.0.1:5055/tr/nope:1")
HUB_REF = parse_reference("nope")


def _map(status: int, body: bytes = b"", www: tuple[str, ...] = (), **kw: object) -> RegistryError:
    args = {"ref": REF, "action": "pull", "what": "manifest", "anonymous": True, **kw}
    return map_error(status, "", body, list(www), **args)  # type: ignore[arg-type]


def test_manifest_unknown_message() -> None:
    body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"1"}}]}'
    err = _map(404, body)
    assert isinstance(err, ManifestUnknown)
    assert str(err) == "manifest for 127.0.0.1:5055/tr/nope:1 not found: manifest unknown: manifest unknown"
    # A 404 without a JSON body reads the same.
    assert str(_map(404)) == str(err)


def test_pull_access_denied() -> None:
    expected = (
        "pull access denied for nope, repository does not exist or may require 'docker login': "
        "denied: requested access to the resource is denied"
    )
    hub_challenge = 'Bearer realm="https://auth/token",service="s",scope="repository:library/nope:pull",error="insufficient_scope"'
    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[]}]}'
    err = _map(401, body, (hub_challenge,), ref=HUB_REF)
    assert isinstance(err, AccessDenied) and str(err) == expected
    assert err.http_status == 404
    denied = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
    assert str(_map(403, denied, ref=HUB_REF)) == expected
    # An anonymous 401 is the same answer; with credentials it is "unauthorized".
    assert str(_map(401, body, ref=HUB_REF)) == expected
    err = _map(401, body, ref=HUB_REF, anonymous=False)
    assert type(err) is Unauthorized and str(err) == "unauthorized: authentication required"


def test_name_unknown_and_blob_unknown() -> None:
    body = b'{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}'
    err = _map(404, body)
    assert isinstance(err, NotFound) and not isinstance(err, ManifestUnknown)
    assert (
        str(err)
        == "repository 127.0.0.1:5055/tr/nope not found: name unknown: repository name not known to registry"
    )
    err = _map(404, what="blob")
    assert isinstance(err, NotFound) and str(err) == "blob unknown: blob unknown to registry"


def test_push_errors_and_unexpected_statuses() -> None:
    body = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
    err = _map(403, body, action="push")
    assert type(err) is Unauthorized and str(err) == "denied: requested access to the resource is denied"
    err = map_error(
        500, "Internal Server Error", b"oops", [], ref=REF, action="pull", what="blob", anonymous=True
    )
    assert str(err) == "received unexpected HTTP status: 500 Internal Server Error" and err.status == 500
    err = _map(400, b'{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid"}]}', action="push")
    assert str(err) == "manifest invalid: manifest invalid" and err.code == "MANIFEST_INVALID"


def test_digests_are_checked_before_they_reach_a_url() -> None:
    from dockyard.distribution.client import _checked

    assert _checked("sha256:" + "a" * 64) == "sha256:" + "a" * 64
    for bad in ("sha256:../../etc/passwd", "sha256:" + "A" * 64, "latest", "md5:" + "a" * 32):
        with pytest.raises(RegistryError, match="invalid digest"):
            _checked(bad)
