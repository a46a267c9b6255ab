"""The built-in OCI runtime against the real kernel: namespaces, mounts, cgroups, capabilities, a pty; each
container's spec comes from `build_spec`, as the engine's will, and runc runs the same spec for comparison.

Every test checks that nothing is left behind: no mount naming its temporary directory, no cgroup
directory, no process."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import testimages

from dockyard.images.layers import apply_layer
from dockyard.linux.cgroups import CGROUP_ROOT, Cgroup, detect_layout
from dockyard.runtime import builtin
from dockyard.runtime.spec import ALL_CAPABILITIES, DEFAULT_CAPABILITIES, ContainerOptions, build_spec

LAYOUT = detect_layout()
CGROUP_VERSION = LAYOUT.version
DEFAULT_CAP_MASK = sum(1 << ALL_CAPABILITIES.index(c) for c in DEFAULT_CAPABILITIES)


def _status_field(text: str, name: str) -> str:
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"{name} not in {text!r}")


@dataclass
class Result:
    output: str
    exit_code: int | None
    container: builtin.RunningContainer


@dataclass
class Bundle:
    """A bundle directory with a fresh busybox rootfs and the engine's /etc files, and a cgroup parent of
    its own so that the test can check it is left empty."""

    path: Path
    cgroup_parent: str
    containers: list[builtin.RunningContainer] = field(default_factory=list)

    @property
    def rootfs(self) -> Path:
        return self.path / "rootfs"

    def spec(self, cmd: list[str], cgroup_version: str = CGROUP_VERSION, **options: Any) -> dict[str, Any]:
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        (self.path / "hostname").write_text(cid[:12] + "\n")
        opts = ContainerOptions(
            container_id=cid,
            rootfs=str(self.rootfs),
            cmd=cmd,
            hostname_path=str(self.path / "hostname"),
            hosts_path=str(self.path / "hosts"),
            resolv_conf_path=str(self.path / "resolv.conf"),
            cgroup_path=f"{self.cgroup_parent}/{cid}",
            **options,
        )

        def lookup(path: str) -> str | None:
            f = self.rootfs / path.lstrip("/")
            return f.read_text() if f.exists() else None

        return build_spec(opts, cgroup_version=cgroup_version, user_lookup=lookup)

    def start(self, spec: dict[str, Any], **kwargs: Any) -> tuple[builtin.RunningContainer, int]:
        """Spawn with stdout and stderr on a pipe; the read end is returned."""
        r, w = os.pipe()
        null = os.open("/dev/null", os.O_RDONLY)
        try:
            c = builtin.spawn(self.path, _cid(spec), spec, stdio=(null, w, w), **kwargs)
        except BaseException:
            os.close(r)
            raise
        finally:
            os.close(w)
            os.close(null)
        self.containers.append(c)
        return c, r

    def run(self, cmd: list[str], cgroup_root: str = CGROUP_ROOT, **options: Any) -> Result:
        c, r = self.start(self.spec(cmd, **options), cgroup_root=cgroup_root)
        with os.fdopen(r, "rb") as f:
            output = f.read().decode()
        code = builtin.wait(c, timeout=30)
        builtin.delete(c)
        return Result(output, code, c)


def _cid(spec: dict[str, Any]) -> str:
    return spec["linux"]["cgroupsPath"].rsplit("/", 1)[1]


def _mounts_mentioning(path: Path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line for line in f if str(path) in line]


def _processes_in(path: Path) -> list[int]:
    """Processes whose root or working directory is inside `path`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for link in ("root", "cwd"):
            try:
                if os.readlink(f"/proc/{pid}/{link}").startswith(str(path)):
                    found.append(int(pid))
            except OSError:
                pass
    return found


@pytest.fixture
def bundle(tmp_path: Path) -> Iterator[Bundle]:
    path = tmp_path / "bundle"
    apply_layer(io.BytesIO(testimages.base_layer().tar), path / "rootfs", whiteout_mode="delete")
    (path / "hosts").write_text("127.0.0.1\tlocalhost\n")
    (path / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    b = Bundle(path, f"/dockyard-it-{uuid.uuid4().hex[:8]}")
    try:
        yield b
    finally:
        leftovers = [p for c in b.containers for p in c.cgroup.paths.values() if os.path.exists(p)]
        for c in b.containers:
            builtin.delete(c, force=True)  # tidy up even when the test failed
        parents = Cgroup.at(LAYOUT, b.cgroup_parent)
        with_pids = parents.pids()
        parents.remove()
        assert not leftovers, f"cgroups left behind: {leftovers}"
        assert not with_pids
        assert not _mounts_mentioning(tmp_path)
        assert not _processes_in(tmp_path)


def test_runs_the_command_as_pid_1_of_its_own_namespaces(bundle: Bundle) -> None:
    script = "echo hi; echo pid=$$; id; hostname; cat /proc/1/cmdline; echo; ls /dev; cat /proc/self/status"
    result = bundle.run(["sh", "-c", script])
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    assert lines[0] == "hi"
    assert lines[1] == "pid=1"
    assert lines[2] == "uid=0(root) gid=0(root) groups=0(root)"
    assert lines[3] == result.container.id[:12]
    assert lines[4] == "sh\0-c\0" + script + "\0"
    devices = set(lines[5:])
    assert {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue"} <= devices
    assert {"fd", "stdin", "stdout", "stderr"} <= devices
    assert int(_status_field(result.output, "CapEff"), 16) == DEFAULT_CAP_MASK
    assert int(_status_field(result.output, "CapBnd"), 16) == DEFAULT_CAP_MASK
    assert int(_status_field(result.output, "CapInh"), 16) == 0
    assert _status_field(result.output, "NoNewPrivs") == "0"


def test_environment_and_etc_files(bundle: Bundle) -> None:
    result = bundle.run(["sh", "-c", "env; cat /etc/hostname /etc/resolv.conf; pwd"], env=["FOO=bar"])
    assert result.exit_code == 0, result.output
    env = dict(line.split("=", 1) for line in result.output.splitlines() if "=" in line)
    assert env["FOO"] == "bar"
    assert env["HOSTNAME"] == result.container.id[:12]
    assert env["PATH"].startswith("/usr/local/sbin")
    assert "nameserver 127.0.0.1" in result.output
    assert result.output.splitlines()[-1] == "/"


def test_a_missing_binary_is_one_clear_line(bundle: Bundle) -> None:
    spec = bundle.spec(["nosuchbinary"])
    with pytest.raises(builtin.SpawnError) as err:
        bundle.start(spec)
    assert str(err.value) == 'exec: "nosuchbinary": executable file not found in $PATH'
    assert err.value.exit_code == 127
    assert not any(os.path.exists(p) for p in Cgroup.at(LAYOUT, spec["linux"]["cgroupsPath"]).paths.values())


def test_a_file_that_is_not_executable_is_126(bundle: Bundle) -> None:
    with pytest.raises(builtin.SpawnError) as err:
        bundle.start(bundle.spec(["/etc/passwd"]))
    assert str(err.value) == 'exec: "/etc/passwd": permission denied'
    assert err.value.exit_code == 126
    with pytest.raises(builtin.SpawnError) as err:
        bundle.start(bundle.spec(["/nothere"]))
    assert str(err.value) == 'exec: "/nothere": stat /nothere: no such file or directory'
    assert err.value.exit_code == 127


def test_a_failing_mount_is_reported_and_leaves_nothing(bundle: Bundle) -> None:
    spec = bundle.spec(["true"], binds=[f"{bundle.path}/missing:/data"])
    with pytest.raises(builtin.SpawnError) as err:
        bundle.start(spec)
    assert (
        str(err.value)
        == f'error mounting "{bundle.path}/missing" to rootfs at "/data": no such file or directory'
    )
    assert err.value.exit_code is None


DEVICE_SCRIPT = (
    "echo x > /dev/null && echo null-ok; head -c 4 /dev/urandom | wc -c;"
    " mknod /tmp/fuse c 10 229; echo fuse=$?; mknod /tmp/disk b {major} {minor}; echo disk=$?;"
    " head -c 1 /tmp/disk >/dev/null; echo disk-read=$?; (exec 3<>/tmp/fuse); echo fuse-open=$?"
)
# as Docker's (runc's) rules: any node can be made, only the standard ones opened
DEVICES_REFUSED = ("fuse=0", "disk=0", "disk-read=1", "fuse-open=1")


def _a_block_device() -> tuple[int, int]:
    st = os.stat(next(d for d in ("/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/loop0") if os.path.exists(d)))
    return os.major(st.st_rdev), os.minor(st.st_rdev)


def test_device_rules_refuse_other_devices(bundle: Bundle) -> None:
    """CAP_MKNOD is in Docker's default set: only the device cgroup keeps the host's disks out."""
    major, minor = _a_block_device()
    result = bundle.run(["sh", "-c", DEVICE_SCRIPT.format(major=major, minor=minor)])
    assert result.output.split("\n")[:2] == ["null-ok", "4"], result.output
    assert all(f"{line}\n" in result.output for line in DEVICES_REFUSED), result.output
    assert result.output.count("Operation not permitted") == 2


@pytest.mark.skipif(not LAYOUT.hybrid, reason="on a v2 host every test runs on v2 already")
def test_a_cgroup_v2_hierarchy(bundle: Bundle) -> None:
    """A hybrid host's cgroup2 mount (membership only, no controllers) as a v2 host: a cgroup namespace,
    cgroup2 at /sys/fs/cgroup, and the device rules as a BPF program."""
    assert LAYOUT.unified is not None
    root = LAYOUT.unified.mountpoint
    before = set(Path(root, "cgroup.subtree_control").read_text().split())
    major, minor = _a_block_device()
    script = "cat /proc/self/cgroup; grep ' /sys/fs/cgroup ' /proc/self/mounts; " + DEVICE_SCRIPT
    try:
        result = bundle.run(
            ["sh", "-c", script.format(major=major, minor=minor)], cgroup_version="2", cgroup_root=root
        )
        assert "0::/\n" in result.output
        assert "cgroup2 /sys/fs/cgroup cgroup2 ro," in result.output
        assert "null-ok" in result.output
        assert all(f"{line}\n" in result.output for line in DEVICES_REFUSED), result.output
    finally:
        Cgroup.at(detect_layout(root), bundle.cgroup_parent).remove()
        for controller in set(Path(root, "cgroup.subtree_control").read_text().split()) - before:
            Path(root, "cgroup.subtree_control").write_text("-" + controller)  # as we found it


def test_read_only_rootfs_refuses_writes(bundle: Bundle) -> None:
    result = bundle.run(
        ["sh", "-c", "touch /newfile; echo rc=$?; touch /dev/shm/ok && echo shm-ok"], readonly_rootfs=True
    )
    assert "Read-only file system" in result.output
    assert "rc=1" in result.output
    assert "shm-ok" in result.output
    assert not (bundle.rootfs / "newfile").exists()


def test_masked_and_read_only_paths(bundle: Bundle) -> None:
    script = (
        "for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug; do"
        " [ -e $f ] && echo $f=$(wc -c < $f); done; echo acpi=$(ls -A /proc/acpi | wc -l);"
        " echo y > /proc/sys/kernel/domainname; echo sys=$?; grep ' /proc/bus ' /proc/mounts"
    )
    result = bundle.run(["sh", "-c", script])
    masked = [line for line in result.output.splitlines() if line.startswith("/proc/")]
    assert masked, result.output  # this kernel has at least one of them
    assert all(line.endswith("=0") for line in masked), result.output
    assert "acpi=0" in result.output
    assert "sys=1" in result.output
    assert " ro," in result.output.splitlines()[-1]  # /proc/bus


def test_limits_are_in_the_cgroup_and_kill_stops_it(bundle: Bundle) -> None:
    spec = bundle.spec(["sleep", "100"], memory=64 * 1024 * 1024, pids_limit=50, nano_cpus=500_000_000)
    c, r = bundle.start(spec)
    os.close(r)
    assert builtin.state(c) == "running"
    if CGROUP_VERSION == "2":
        assert c.cgroup.read("memory", "memory.max").strip() == str(64 * 1024 * 1024)
        assert c.cgroup.read("cpu", "cpu.max").split() == ["50000", "100000"]
    else:
        assert c.cgroup.read("memory", "memory.limit_in_bytes").strip() == str(64 * 1024 * 1024)
        assert c.cgroup.read("cpu", "cpu.cfs_quota_us").strip() == "50000"
    assert c.cgroup.read("pids", "pids.max").strip() == "50"
    assert c.cgroup.pids() == {c.pid}
    with pytest.raises(builtin.SpawnError):
        builtin.delete(c)  # still running
    builtin.kill(c, signal.SIGKILL)
    assert builtin.wait(c, timeout=10) == 128 + signal.SIGKILL
    assert builtin.state(c) == "stopped"
    with pytest.raises(ProcessLookupError):
        builtin.kill(c, signal.SIGTERM)
    builtin.delete(c)
    assert not any(os.path.exists(p) for p in c.cgroup.paths.values())


def test_sigterm_reaches_an_init_with_a_handler(bundle: Bundle) -> None:
    c, r = bundle.start(
        bundle.spec(["sh", "-c", "trap 'echo got-term; exit 3' TERM; echo ready; sleep 100 & wait"])
    )
    with os.fdopen(r, "rb") as f:
        assert f.readline() == b"ready\n"
        builtin.kill(c, signal.SIGTERM)
        assert builtin.wait(c, timeout=10) == 3
        assert b"got-term" in f.read()
    builtin.delete(c, force=True)  # the orphaned sleep died with the PID namespace; nothing to kill


def test_delete_force_kills_a_running_container(bundle: Bundle) -> None:
    c, r = bundle.start(bundle.spec(["sh", "-c", "sleep 100 & sleep 100"]))
    os.close(r)
    builtin.delete(c, force=True)
    assert builtin.state(c) == "stopped"
    assert not any(os.path.exists(p) for p in c.cgroup.paths.values())


def test_a_non_root_user(bundle: Bundle) -> None:
    result = bundle.run(
        ["sh", "-c", "id; grep Cap /proc/self/status; touch /root/x; echo rc=$?"], user="65534"
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)"
    assert int(_status_field(result.output, "CapEff"), 16) == 0
    assert int(_status_field(result.output, "CapPrm"), 16) == 0
    assert int(_status_field(result.output, "CapBnd"), 16) == DEFAULT_CAP_MASK
    assert "rc=1" in result.output


def test_cap_drop_and_no_new_privileges(bundle: Bundle) -> None:
    result = bundle.run(
        ["sh", "-c", "grep -E 'CapEff|NoNewPrivs' /proc/self/status; ulimit -n"],
        cap_drop=["NET_RAW", "CHOWN"],
        security_opt=["no-new-privileges"],
        ulimits=[{"Name": "nofile", "Soft": 512, "Hard": 1024}],
    )
    expected = DEFAULT_CAP_MASK & ~(1 << ALL_CAPABILITIES.index("CAP_NET_RAW")) & ~1
    assert int(_status_field(result.output, "CapEff"), 16) == expected
    assert _status_field(result.output, "NoNewPrivs") == "1"
    assert result.output.split()[-1] == "512"


def test_a_terminal(bundle: Bundle) -> None:
    script = "tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys; ls -l /dev/console; stty size"
    spec = bundle.spec(["sh", "-c", script], tty=True)
    spec["process"]["consoleSize"] = {"height": 30, "width": 100}
    c, r = bundle.start(spec)
    os.close(r)  # a terminal takes the place of the given stdio
    assert c.pty_master is not None
    chunks = []
    while True:
        try:
            chunk = os.read(c.pty_master, 4096)
        except OSError as e:  # EIO once the last slave fd closes
            assert e.errno == errno.EIO
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(c.pty_master)
    output = b"".join(chunks).decode().replace("\r\n", "\n")
    assert builtin.wait(c, timeout=10) == 0
    builtin.delete(c)
    assert output.splitlines()[0] == "/dev/pts/0"
    assert "both-ttys" in output
    assert "136," in output  # /dev/console is the pty (major 136)
    assert output.splitlines()[-1] == "30 100"


def test_an_added_device(bundle: Bundle) -> None:
    device = {"PathOnHost": "/dev/zero", "PathInContainer": "/dev/myzero", "CgroupPermissions": "rwm"}
    result = bundle.run(["sh", "-c", "ls -l /dev/myzero; head -c 3 /dev/myzero | wc -c"], devices=[device])
    assert result.output.startswith("crw-rw-rw-"), result.output
    assert "1,   5" in result.output
    assert result.output.split()[-1] == "3"


def test_joins_a_network_namespace_by_path(bundle: Bundle) -> None:
    holder = subprocess.Popen(["unshare", "--net", "sleep", "100"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(path) == os.readlink("/proc/self/ns/net") and time.monotonic() < deadline:
            time.sleep(0.01)
        result = bundle.run(["readlink", "/proc/self/ns/net"], netns_path=path)
        assert result.output.strip() == os.readlink(path)
    finally:
        holder.kill()
        holder.wait()


def test_spawn_time(bundle: Bundle) -> None:
    """fork to exec of `true`, as the shim sees it (spawn returns once execve has happened)."""
    times = []
    for _ in range(5):
        spec = bundle.spec(["true"])
        start = time.monotonic()
        c, r = bundle.start(spec)
        times.append(time.monotonic() - start)
        os.close(r)
        assert builtin.wait(c, timeout=10) == 0
        builtin.delete(c)
    best = min(times)
    print(f"spawn of `true`: best {best * 1000:.1f} ms, all {[round(t * 1000, 1) for t in times]}")
    assert best < 1.0


def _key_outputs(output: str) -> dict[str, Any]:
    lines = output.splitlines()
    return {
        "pid": lines[0],
        "id": lines[1],
        "hostname": lines[2],
        "CapEff": _status_field(output, "CapEff"),
        "CapBnd": _status_field(output, "CapBnd"),
        "dev": sorted(line for line in lines if line.startswith("dev:")),
        # both runtimes mknod the default devices: none of them is a mount
        "mounts": sorted(
            fields[1]
            for fields in (line.split() for line in lines)
            if len(fields) == 6 and fields[1].startswith("/")
        ),
    }


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
def test_same_spec_under_runc(bundle: Bundle, tmp_path: Path) -> None:
    script = (
        "echo $$; id; hostname; cat /proc/self/status; for f in /dev/*; do echo dev:$f; done;"
        " cat /proc/self/mounts"
    )
    ours = bundle.run(["sh", "-c", script], user="0")

    spec = bundle.spec(["sh", "-c", script], user="0")
    (bundle.path / "config.json").write_text(json.dumps(spec))
    proc = subprocess.run(
        ["runc", "--root", str(tmp_path / "runc"), "run", "-b", str(bundle.path), _cid(spec)[:12]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    theirs = _key_outputs(proc.stdout)
    mine = _key_outputs(ours.output)
    assert mine["hostname"] != theirs["hostname"]  # each run has its own container ID
    mine.pop("hostname"), theirs.pop("hostname")
    if CGROUP_VERSION == "1":
        # we also bind the hybrid host's unified hierarchy (membership only) into /sys/fs/cgroup
        mine["mounts"] = [m for m in mine["mounts"] if m != "/sys/fs/cgroup/unified"]
    assert mine == theirs
    Cgroup.at(LAYOUT, spec["linux"]["cgroupsPath"]).remove()  # runc removes it too; this only makes sure


def test_runc_reports_a_missing_binary_like_us(bundle: Bundle, tmp_path: Path) -> None:
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    spec = bundle.spec(["nosuchbinary"])
    (bundle.path / "config.json").write_text(json.dumps(spec))
    proc = subprocess.run(
        ["runc", "--root", str(tmp_path / "runc"), "run", "-b", str(bundle.path), _cid(spec)[:12]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    message = proc.stderr.replace('\\"', '"')  # logrus quotes the message
    assert 'exec: "nosuchbinary": executable file not found in $PATH' in message
    with pytest.raises(builtin.SpawnError) as err:
        bundle.start(spec)
    assert str(err.value) in message
