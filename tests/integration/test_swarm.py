"""A node outside any swarm, through the official docker CLI and docker-py, as a non-swarm dockerd 20.10
answers: `swarm leave` (and docker-py's clean-up `leave_swarm(force=True)`), node, service, task, secret and
config commands, `swarm init/join` refused, `info` inactive."""

from __future__ import annotations

import docker as docker_sdk
import pytest

pytestmark = pytest.mark.timeout(120)

NOT_MANAGER = (
    'Error response from daemon: This node is not a swarm manager. Use "docker swarm init" or "docker swarm '
    'join" to connect this node to swarm and try again.'
)


def test_the_docker_cli_outside_a_swarm(docker) -> None:
    for args in (["swarm", "leave"], ["swarm", "leave", "--force"]):
        left = docker(*args)
        assert (
            left.returncode == 1
            and left.stderr == "Error response from daemon: This node is not part of a swarm\n"
        )
    for args in (
        ["node", "ls"],
        ["node", "rm", "x"],
        ["service", "ls"],
        ["service", "rm", "x"],
        ["service", "logs", "x"],
        ["secret", "ls"],
        ["secret", "rm", "x"],
        ["config", "ls"],
        ["config", "inspect", "x"],
        ["swarm", "update", "--autolock"],
    ):
        refused = docker(*args)
        assert refused.returncode == 1 and NOT_MANAGER in refused.stderr, (args, refused.output)
    key = docker("swarm", "unlock-key")
    assert NOT_MANAGER.removeprefix("Error response from daemon: ") in key.stderr, key.output
    init = docker("swarm", "init")
    assert init.returncode == 1 and "dockyardd does not implement swarm mode" in init.stderr, init.output
    assert docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout == "inactive\n"


def test_docker_py_outside_a_swarm(docker_client) -> None:
    api = docker_client.api
    assert api.leave_swarm(force=True) is True  # what docker-py's own tests call in their tear-down
    with pytest.raises(docker_sdk.errors.APIError) as raised:
        api.leave_swarm()
    assert raised.value.status_code == 503 and raised.value.explanation == "This node is not part of a swarm"
    calls = [
        api.inspect_swarm,
        api.nodes,
        api.services,
        api.tasks,
        api.secrets,
        api.configs,
        api.get_unlock_key,
        lambda: api.inspect_node("x"),
        lambda: api.inspect_service("x"),
        lambda: api.inspect_task("x"),
        lambda: api.inspect_secret("x"),
        lambda: api.inspect_config("x"),
        lambda: api.remove_node("x"),
        lambda: api.remove_service("x"),
        lambda: api.remove_secret("x"),
        lambda: api.remove_config("x"),
        lambda: api.create_secret("s", b"data"),
        lambda: api.create_config("c", b"data"),
        lambda: api.update_node("x", 1, {}),
        lambda: api.unlock_swarm("SWMKEY-1-x"),
    ]
    for call in calls:
        with pytest.raises(docker_sdk.errors.APIError) as raised:
            call()
        assert raised.value.status_code == 503, call
        assert raised.value.explanation.startswith("This node is not a swarm manager. Use "), call
    with pytest.raises(docker_sdk.errors.APIError) as raised:
        api.init_swarm(listen_addr="")
    assert raised.value.status_code == 400 and 'invalid ListenAddr "": invalid empty address' in str(
        raised.value
    )
    response = api._post(api._url("/swarm/update"), params={"version": "x"}, data="{}")
    assert response.status_code == 400
    assert (
        response.json()["message"]
        == "invalid swarm version 'x': strconv.ParseUint: parsing \"x\": invalid syntax"
    )
    assert docker_client.info()["Swarm"]["LocalNodeState"] == "inactive"
