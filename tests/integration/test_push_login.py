"""push, login and logout against real registries (one open, one with Basic authentication)."""

from __future__ import annotations

import json
import os
import uuid

import pytest
import registry as registry_tool
import testimages


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    reg = registry_tool.start_registry(tmp_path_factory.mktemp("private"), htpasswd={"yard": "s3cret"})
    yield reg
    reg.stop()


def repo_name(prefix: str = "push") -> str:
    return f"test/{prefix}-{uuid.uuid4().hex[:8]}"


def unique_image() -> testimages.BuiltImage:
    """Layers no other test shares: a layer unpacked earlier from another blob would change the manifest."""
    tars = [testimages.files_layer({f"layer{i}": os.urandom(64)}).tar for i in range(2)]
    return testimages.build_from_tars(tars)


def test_docker_push_pulled_image_keeps_its_digest_and_mounts_across_repositories(docker, registry):
    source_repo = repo_name("src")
    digest = testimages.push_image(registry.address, source_repo, "1", unique_image())
    source = f"{registry.address}/{source_repo}:1"
    assert docker("pull", source).returncode == 0
    target = f"{registry.address}/{repo_name()}:v2"
    assert docker("tag", source, target).returncode == 0
    result = docker("push", target)
    assert result.returncode == 0, result.output
    assert f"The push refers to repository [{target.rsplit(':', 1)[0]}]" in result.stdout
    assert result.stdout.count(f"Mounted from {source_repo}") == 2
    assert f"v2: digest: {digest} size:" in result.stdout  # the manifest it was pulled with
    again = docker("push", target)
    assert again.stdout.count("Layer already exists") == 2
    content_type, _ = testimages.get_manifest(
        registry.address, target.split("/", 1)[1].rsplit(":", 1)[0], "v2"
    )
    assert content_type == "application/vnd.oci.image.manifest.v1+json"


def test_push_missing_tag(docker, registry):
    result = docker("push", f"{registry.address}/nothing/here:1")
    assert result.returncode == 1
    assert "An image does not exist locally with the tag" in result.stderr


def test_docker_py_push_then_pull_back(docker_client, registry):
    source = f"{registry.address}/test/busybox:latest"
    docker_client.images.pull(source)
    target_repo = f"{registry.address}/{repo_name('py')}"
    docker_client.images.get(source).tag(target_repo, "t1")
    lines = list(docker_client.images.push(target_repo, tag="t1", stream=True, decode=True))
    aux = [line["aux"] for line in lines if "aux" in line]
    assert aux and aux[0]["Tag"] == "t1" and aux[0]["Digest"].startswith("sha256:")
    docker_client.images.remove(f"{target_repo}:t1")
    pulled = docker_client.images.pull(target_repo, tag="t1")
    assert pulled.id == docker_client.images.get(source).id


def test_login_push_pull_logout_with_basic_auth(dockyard, daemon, private_registry, registry, tmp_path):
    env = {"DOCKYARD_CONFIG": str(tmp_path / "cfg")}
    server = private_registry.address
    source = f"{registry.address}/test/busybox:latest"
    assert dockyard("pull", source).returncode == 0
    target = f"{server}/{repo_name('private')}:1"
    assert dockyard("tag", source, target).returncode == 0

    denied = dockyard("push", target, env=env)
    assert denied.returncode == 1
    assert len(denied.stderr.strip().splitlines()) == 1

    wrong = dockyard("login", "-u", "yard", "--password-stdin", server, input="wrong\n", env=env)
    assert wrong.returncode == 1
    assert "401" in wrong.stderr or "unauthorized" in wrong.stderr.lower()

    ok = dockyard("login", "-u", "yard", "--password-stdin", server, input="s3cret\n", env=env)
    assert ok.returncode == 0, ok.output
    assert "Login Succeeded" in ok.stdout
    config = json.loads((tmp_path / "cfg" / "config.json").read_text())
    assert server in config["auths"]
    assert oct((tmp_path / "cfg" / "config.json").stat().st_mode & 0o777) == "0o600"

    pushed = dockyard("push", target, env=env)
    assert pushed.returncode == 0, pushed.output
    assert dockyard("rmi", target).returncode == 0
    pulled = dockyard("pull", target, env=env)
    assert pulled.returncode == 0, pulled.output

    out = dockyard("logout", server, env=env)
    assert out.stdout.strip() == f"Removing login credentials for {server}"
    assert dockyard("logout", server, env=env).stdout.strip() == f"Not logged in to {server}"
    assert dockyard("rmi", target).returncode == 0
    anonymous = dockyard("pull", target, env=env)
    assert anonymous.returncode == 1
    assert "pull access denied" in anonymous.stderr or "unauthorized" in anonymous.stderr
    assert len(anonymous.stderr.strip().splitlines()) == 1


def test_docker_login_through_the_official_cli(docker, private_registry, tmp_path):
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-cfg")}
    result = docker(
        "login", "-u", "yard", "--password-stdin", private_registry.address, input="s3cret\n", env=env
    )
    assert result.returncode == 0, result.output
    assert "Login Succeeded" in result.stdout
