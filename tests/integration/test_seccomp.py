"""Seccomp through the official docker CLI and docker-py: the default profile confines every container (and
`--cap-add` opens what the capability needs), `seccomp=unconfined` and `--privileged` run without a filter, a
custom profile is applied, and daemon.json's `seccomp-profile` sets the daemon's default. Each behaviour is
checked against its opposite, so a filter that is not loaded (or loaded everywhere) fails a test. Run on the
built-in runtime and on runc, which reads the same linux.seccomp."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker as docker_sdk
import pytest
from harness import DaemonProcess, run_cli

TIMEOUT = 30.0
pytestmark = pytest.mark.runtimes

DENY_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
}


def _seccomp_mode(docker, *run_args: str) -> tuple[str, str]:
    """(Seccomp, Seccomp_filters) of the container's PID 1, from /proc/1/status."""
    result = docker("run", "--rm", *run_args, "busybox", "cat", "/proc/1/status", timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    fields = dict(line.split(":\t", 1) for line in result.stdout.splitlines() if ":\t" in line)
    return fields["Seccomp"].strip(), fields.get("Seccomp_filters", "").strip()


def _all_capabilities_grantable() -> bool:
    """--privileged asks for every capability the kernel has; a host whose own bounding set lacks one
    (some sandboxes drop CAP_SYS_RESOURCE) cannot start such a container with any runtime."""
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    with open("/proc/self/status") as f:
        bounding = next(int(line.split()[1], 16) for line in f if line.startswith("CapBnd:"))
    return bounding == (1 << (last + 1)) - 1


needs_privileged = pytest.mark.skipif(
    not _all_capabilities_grantable(),
    reason="this host's bounding set lacks capabilities --privileged grants",
)


@pytest.fixture
def clean(docker) -> Iterator[None]:
    yield
    for cid in docker("ps", "-aq").stdout.split():
        docker("rm", "-f", cid)


def test_default_profile_is_loaded_and_unconfined_is_not(docker, clean) -> None:
    assert _seccomp_mode(docker) == ("2", "1")
    assert _seccomp_mode(docker, "--security-opt", "no-new-privileges") == ("2", "1")
    assert _seccomp_mode(docker, "--user", "1000:1000") == ("2", "1")
    assert _seccomp_mode(docker, "--security-opt", "seccomp=unconfined")[0] == "0"
    assert _seccomp_mode(docker, "--security-opt", "seccomp=builtin") == ("2", "1")


def test_default_profile_denies_new_namespaces(docker, clean) -> None:
    # a user namespace needs no capability, so only the filter can refuse it
    denied = docker("run", "--rm", "busybox", "unshare", "-U", "true", timeout=TIMEOUT)
    assert denied.returncode != 0
    assert "Operation not permitted" in denied.output
    allowed = docker(
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "unshare",
        "-U",
        "true",
        timeout=TIMEOUT,
    )
    assert allowed.returncode == 0, allowed.output
    # CAP_SYS_ADMIN brings unshare (and clone with namespace flags) back into the profile
    with_cap = docker(
        "run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "unshare", "-m", "true", timeout=TIMEOUT
    )
    assert with_cap.returncode == 0, with_cap.output
    assert _seccomp_mode(docker, "--cap-add", "SYS_ADMIN") == ("2", "1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ordinary_commands_work_under_the_default_profile(docker, clean) -> None:
    port = _free_port()
    script = (
        "set -e; ls / >/dev/null; cat /etc/passwd >/dev/null; id; ps >/dev/null; "
        "mkdir -p /tmp/d && touch /tmp/d/f && chown 1:1 /tmp/d/f && chmod 600 /tmp/d/f; "
        "mv /tmp/d/f /tmp/d/g; "
        "ln -s /tmp/d/g /tmp/l && readlink /tmp/l >/dev/null; rm -r /tmp/d /tmp/l; "
        f"echo hello > /tmp/index.html; httpd -p 127.0.0.1:{port} -h /tmp; "
        "for i in 1 2 3 4 5 6 7 8 9 10; do "
        f"wget -q -O - http://127.0.0.1:{port}/index.html && break; sleep 0.2; done; "
        "sh -c 'exit 0'; (sleep 0.1 & wait); date >/dev/null; sort /etc/group >/dev/null; "
        "su nobody -s /bin/sh -c 'id -u'; echo done"
    )
    # the host's network, on loopback: sockets, bind, listen, accept and connect under the filter
    result = docker("run", "--rm", "--network", "host", "busybox", "sh", "-c", script, timeout=TIMEOUT)
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("uid=0(root)")
    assert "hello" in lines
    assert lines[-2:] == ["65534", "done"]


def test_custom_profile_file(docker, clean, tmp_path: Path) -> None:
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(json.dumps(DENY_MKDIR, indent=2))
    denied = docker(
        "run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/newdir", timeout=TIMEOUT
    )
    assert denied.returncode != 0
    assert "Operation not permitted" in denied.output
    assert docker("run", "--rm", "busybox", "mkdir", "/newdir", timeout=TIMEOUT).returncode == 0
    # the custom profile replaces the default one: unshare -U, which the default denies, works
    allowed = docker(
        "run",
        "--rm",
        "--security-opt",
        f"seccomp={profile}",
        "busybox",
        "unshare",
        "-U",
        "true",
        timeout=TIMEOUT,
    )
    assert allowed.returncode == 0, allowed.output
    # errnoRet chooses the error
    enospc = {**DENY_MKDIR, "syscalls": [{**DENY_MKDIR["syscalls"][0], "errnoRet": 28}]}
    profile.write_text(json.dumps(enospc))
    full = docker(
        "run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/d", timeout=TIMEOUT
    )
    assert "No space left on device" in full.output


@needs_privileged
def test_privileged_is_unconfined(docker, clean, tmp_path: Path) -> None:
    assert _seccomp_mode(docker, "--privileged")[0] == "0"
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(json.dumps(DENY_MKDIR))
    # --privileged wins over a profile
    privileged = docker(
        "run",
        "--rm",
        "--privileged",
        "--security-opt",
        f"seccomp={profile}",
        "busybox",
        "mkdir",
        "/d",
        timeout=TIMEOUT,
    )
    assert privileged.returncode == 0, privileged.output


@pytest.mark.runtimes("dockyard")
def test_invalid_profile_is_docker_s_error(docker_client, clean) -> None:
    container = docker_client.containers.create("busybox", "true", security_opt=["seccomp={nope"])
    try:
        with pytest.raises(docker_sdk.errors.APIError) as raised:
            container.start()
        expected = "invalid character 'n' looking for beginning of object key string"
        assert f"Decoding seccomp profile failed: {expected}" in str(raised.value)
    finally:
        container.remove(force=True)


@pytest.mark.runtimes("dockyard")
def test_info_names_the_default_profile(docker) -> None:
    info = docker("info", "--format", "{{json .SecurityOptions}}")
    assert info.returncode == 0, info.output
    assert "name=seccomp,profile=default" in json.loads(info.stdout)


@pytest.mark.runtimes("dockyard")
def test_daemon_json_seccomp_profile(workdir: Path, registry) -> None:
    root = workdir / f"daemon-seccomp-{uuid.uuid4().hex[:6]}"
    root.mkdir()
    profile = root / "profile.json"
    profile.write_text(json.dumps(DENY_MKDIR))
    (root / "daemon.json").write_text(json.dumps({"seccomp-profile": str(profile)}))
    own = DaemonProcess(root, ["--registry-mirror", registry.url]).start()

    def docker(*args: str):
        env = {"DOCKER_HOST": own.host, "DOCKER_CONFIG": str(root / "docker-config")}
        return run_cli(["docker", *args], env=env, timeout=TIMEOUT)

    try:
        info = docker("info", "--format", "{{json .SecurityOptions}}")
        assert f"name=seccomp,profile={profile}" in json.loads(info.stdout)
        denied = docker("run", "--rm", "busybox", "mkdir", "/newdir")
        assert denied.returncode != 0
        assert "Operation not permitted" in denied.output
        # the container's own choice still wins
        builtin = docker("run", "--rm", "--security-opt", "seccomp=builtin", "busybox", "mkdir", "/newdir")
        assert builtin.returncode == 0, builtin.output
    finally:
        for cid in docker("ps", "-aq").stdout.split():
            docker("rm", "-f", cid)
        own.stop()


@pytest.mark.runtimes("dockyard")
def test_daemon_json_missing_profile_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "daemon.json").write_text(json.dumps({"seccomp-profile": str(tmp_path / "nope.json")}))
    proc = DaemonProcess(tmp_path)
    with pytest.raises(RuntimeError) as raised:
        proc.start(timeout=15)
    assert f"opening seccomp profile ({tmp_path / 'nope.json'}) failed: No such file or directory" in str(
        raised.value
    )
