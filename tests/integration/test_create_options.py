"""Create options dockerd 20.10 honours, against a real dockyardd through the official docker CLI,
docker-py and our CLI: the requested runtime runs and is shown, the CPU real-time fields (kept, applied on
cgroup v1 under a daemon budget, dockerd's errors where they cannot be), log drivers (unknown ones and
bad options refused as dockerd, `none` keeping no log), /.dockerenv and /etc/mtab in every root (and
never in a diff or a commit), images pulled by digest only listed with a `<none>` tag; and `rm -f` of a
running `--rm` container never racing its auto-removal."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import testimages
from docker.errors import APIError
from harness import DaemonProcess, run_cli, unique, until

from dockyard.containers.resources import sysinfo

REAL_TIME = sysinfo().cpu_realtime
RT_PARENT = Path("/sys/fs/cgroup/cpu/dockyard")


@pytest.fixture(autouse=True)
def busybox(docker):
    if docker("image", "inspect", "busybox").returncode != 0:
        pulled = docker("pull", "busybox")
        assert pulled.returncode == 0, pulled.output


def inspect(docker, name: str) -> dict:
    r = docker("inspect", name)
    assert r.returncode == 0, r.output
    return json.loads(r.stdout)[0]


# --- runtimes --------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_requested_runtime_runs_and_is_shown(docker, docker_client, daemon, names):
    api = docker_client.api
    # docker-py puts `runtime=` at the top of the body, where dockerd ignores it (its default is runc)
    container = api.create_container("busybox", ["sleep", "60"], runtime="runc")
    names.append(container["Id"])
    assert api.inspect_container(container)["HostConfig"]["Runtime"] == "runc"
    api.start(container)
    listed = subprocess.run(
        ["runc", "--root", str(daemon.exec_root / "runtime-runc"), "list", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert container["Id"] in listed.stdout.split()  # runc runs it, not the built-in runtime
    name = unique("rt-cli")
    names.append(name)
    r = docker("run", "-d", "--name", name, "--runtime", "runc", "busybox", "sleep", "60")
    assert r.returncode == 0, r.output
    assert inspect(docker, name)["HostConfig"]["Runtime"] == "runc"
    assert (
        r.stdout.strip()
        in subprocess.run(
            ["runc", "--root", str(daemon.exec_root / "runtime-runc"), "list", "-q"],
            capture_output=True,
            text=True,
        ).stdout.split()
    )
    r = docker("run", "--rm", "--runtime", "nosuch", "busybox", "true")
    assert r.returncode == 125 and "Unknown runtime specified nosuch" in r.stderr, r.output


# --- CPU real-time ---------------------------------------------------------------------------------------


def test_cpu_realtime_fields_kept_and_shown(docker_client, names):
    api = docker_client.api
    host_config = api.create_host_config(cpu_rt_period=1000, cpu_rt_runtime=500)  # sent as CPURealtime*
    if not REAL_TIME:
        with pytest.raises(APIError) as e:
            api.create_container("busybox", "true", host_config=host_config)
        assert e.value.status_code == 400
        assert e.value.explanation == "Your kernel does not support cgroup cpu real-time period"
        return
    container = api.create_container("busybox", "true", host_config=host_config)
    names.append(container["Id"])
    hc = api.inspect_container(container)["HostConfig"]
    assert (hc["CpuRealtimePeriod"], hc["CpuRealtimeRuntime"]) == (1000, 500)
    with pytest.raises(APIError) as e:
        api.create_container(
            "busybox", "true", host_config=api.create_host_config(cpu_rt_period=1000, cpu_rt_runtime=5000)
        )
    assert e.value.explanation == "cpu real-time runtime cannot be higher than cpu real-time period"


@pytest.fixture
def rt_daemon(workdir, registry):
    """A daemon of its own with daemon.json's real-time budget for the containers' parent cgroup."""
    root = workdir / unique("rt-daemon")
    root.mkdir()
    (root / "daemon.json").write_text(json.dumps({"cpu-rt-runtime": 500000}))
    proc = DaemonProcess(root, ["--registry-mirror", registry.url]).start()
    try:
        yield proc
    finally:
        proc.stop()
        try:  # the budget back to none, as before (the parent is shared by every test daemon)
            (RT_PARENT / "cpu.rt_runtime_us").write_text("0")
        except OSError:
            pass


@pytest.mark.skipif(
    not REAL_TIME, reason="no real-time group scheduling (cgroup v2, or the kernel's option off)"
)
def test_cpu_realtime_applied_under_a_daemon_budget(docker, rt_daemon):
    if (RT_PARENT / "cpu.rt_runtime_us").exists() and (
        RT_PARENT / "cpu.rt_runtime_us"
    ).read_text().strip() == "0":
        # without a budget the kernel refuses the container's share: runc's error, as dockerd's start
        r = docker("run", "--rm", "--cpu-rt-period", "1000", "--cpu-rt-runtime", "400", "busybox", "true")
        assert r.returncode == 125, r.output
        assert 'error setting cgroup config for procHooks process: failed to write "400": write ' in r.stderr
        assert "/cpu.rt_runtime_us: invalid argument" in r.stderr
    env = {"DOCKER_HOST": rt_daemon.host, "DOCKER_CONFIG": str(rt_daemon.root / "docker-config")}
    for runtime in ["dockyard", *(["runc"] if shutil.which("runc") else [])]:
        script = "cat /sys/fs/cgroup/cpu/cpu.rt_period_us /sys/fs/cgroup/cpu/cpu.rt_runtime_us"
        r = run_cli(
            [
                "docker",
                "run",
                "--rm",
                "--runtime",
                runtime,
                "--cpu-rt-period",
                "1000",
                "--cpu-rt-runtime",
                "400",
                "busybox",
                "sh",
                "-c",
                script,
            ],
            env=env,
        )
        assert r.returncode == 0 and r.stdout.split() == ["1000", "400"], (runtime, r.output)
    assert (RT_PARENT / "cpu.rt_runtime_us").read_text().strip() == "500000"


# --- log drivers -----------------------------------------------------------------------------------------


def test_log_drivers_as_dockerd(docker, docker_client, names):
    r = docker("run", "--rm", "--log-driver", "asdf", "busybox", "true")
    assert r.returncode == 125, r.output
    assert "Error response from daemon: logger: no log driver named 'asdf' is registered" in r.stderr
    r = docker("create", "--log-opt", "foo=bar", "busybox", "true")
    assert r.returncode == 1 and "unknown log opt 'foo' for json-file log driver" in r.stderr, r.output
    name = unique("log-badopt")
    names.append(name)
    r = docker("run", "--name", name, "--log-opt", "max-size=abc", "busybox", "true")
    assert r.returncode == 125, r.output
    assert "Error response from daemon: failed to initialize logging driver: invalid size: 'abc'" in r.stderr
    api = docker_client.api
    with pytest.raises(APIError) as e:
        api.create_container(
            "busybox", ["true"], host_config=api.create_host_config(log_config={"type": "asdf", "config": {}})
        )
    assert (
        e.value.status_code == 400
        and e.value.explanation == "logger: no log driver named 'asdf' is registered"
    )

    name = unique("log-none")
    names.append(name)
    r = docker("run", "--name", name, "--log-driver", "none", "busybox", "echo", "attached still")
    assert r.returncode == 0 and r.stdout.strip() == "attached still", r.output
    r = docker("logs", name)
    assert r.returncode == 1, r.output
    assert (
        r.stderr.strip() == "Error response from daemon: configured logging driver does not support reading"
    )
    info = inspect(docker, name)
    assert info["LogPath"] == "" and info["HostConfig"]["LogConfig"] == {"Type": "none", "Config": {}}
    container_dir = Path(info["ResolvConfPath"]).parent
    assert not any(p.name.endswith("-json.log") for p in container_dir.iterdir())
    with pytest.raises(APIError) as e:
        api.logs(name)
    assert e.value.status_code == 501


# --- what processes expect in their root -----------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["dockyard", "runc"])
def test_dockerenv_and_mtab(docker, names, runtime, tmp_path):
    if runtime == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    name = unique("initfiles")
    names.append(name)
    script = "stat -c '%a %s %u %F' /.dockerenv; readlink /etc/mtab; grep -c ' / ' /etc/mtab"
    r = docker("run", "--name", name, "--runtime", runtime, "busybox", "sh", "-c", script)
    assert r.returncode == 0, r.output
    assert r.stdout.splitlines() == ["755 0 0 regular empty file", "/proc/mounts", "1"]
    # the init layer's: not a change of the container's, not in its commit, in its export
    r = docker("diff", name)
    assert r.returncode == 0 and r.stdout == "", r.output
    image = unique("initfiles-commit").lower()
    r = docker("commit", name, image)
    assert r.returncode == 0, r.output
    try:
        layers = json.loads(docker("image", "inspect", image).stdout)[0]["RootFS"]["Layers"]
        base = json.loads(docker("image", "inspect", "busybox").stdout)[0]["RootFS"]["Layers"]
        assert layers == base  # nothing changed: no new layer
    finally:
        docker("rmi", image)
    out = tmp_path / "export.tar"
    assert docker("export", "-o", str(out), name).returncode == 0
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members[".dockerenv"].isfile() and members["etc/mtab"].issym()
    assert members["etc/mtab"].linkname == "/proc/mounts"


# --- images pulled by digest -----------------------------------------------------------------------------


def test_image_pulled_by_digest_only_is_listed(docker, dockyard, registry):
    repo = f"test/{unique('bydigest')}"
    image = testimages.build_image("busybox", extra_files={"/marker": repo.encode()})
    digest = testimages.push_image(registry.address, repo, "v1", image)
    ref = f"{registry.address}/{repo}"
    r = docker("pull", f"{ref}@{digest}")
    assert r.returncode == 0, r.output
    try:
        for cli in (docker, dockyard):
            r = cli("images", ref)
            assert r.returncode == 0, r.output
            rows = [line.split() for line in r.stdout.splitlines()[1:]]
            assert [row[:2] for row in rows] == [[ref, "<none>"]], r.output
            r = cli("images", "--digests", ref)
            rows = [line.split() for line in r.stdout.splitlines()[1:]]
            assert [row[:3] for row in rows] == [[ref, "<none>", digest]], r.output
            r = cli("images", "--digests")
            assert any(line.split()[:3] == [ref, "<none>", digest] for line in r.stdout.splitlines()), (
                r.output
            )
    finally:
        docker("rmi", f"{ref}@{digest}")


# --- rm -f and --rm ----------------------------------------------------------------------------------------


def test_rm_force_of_a_running_autoremove_container_never_races(docker, daemon):
    logged = daemon.log_path.stat().st_size
    for _ in range(20):
        r = docker("run", "-d", "--rm", "busybox", "sleep", "100")
        assert r.returncode == 0, r.output
        cid = r.stdout.strip()
        r = docker("rm", "-f", cid)
        assert r.returncode == 0 and r.stdout.strip() == cid and r.stderr == "", r.output
        until("its removal", lambda cid=cid: docker("inspect", cid).returncode == 1, timeout=10)
    with open(daemon.log_path, "rb") as f:
        f.seek(logged)
        log = f.read().decode(errors="replace")
    assert "unable to remove filesystem" not in log and "auto-remove" not in log


def test_rm_force_racing_docker_py_and_wait_removed(docker_client):
    api = docker_client.api
    for _ in range(5):
        container = api.create_container(
            "busybox", ["sleep", "100"], host_config=api.create_host_config(auto_remove=True)
        )
        api.start(container)
        api.remove_container(container, force=True)
        with pytest.raises(APIError) as e:
            api.inspect_container(container)
        assert e.value.status_code == 404
