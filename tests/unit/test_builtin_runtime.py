"""The built-in runtime's pure parts: mount options, paths inside the root, executable lookup (runc's and
Go's wording), the cgroup files for linux.resources (runc's v1 and v2 mappings), the spec checks made
before any fork, and the cgroup layouts of v1, hybrid and v2 hosts."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from dockyard.linux.bpf import DeviceRule, device_filter
from dockyard.linux.cgroups import Cgroup, detect_layout
from dockyard.linux.mount import (
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_SLAVE,
    MS_STRICTATIME,
    mount_table,
)
from dockyard.runtime.builtin import (
    CgroupSetting,
    RunningContainer,
    SpawnError,
    cgroup_settings,
    device_rules,
    exit_code_for,
    lookup_executable,
    parse_mount_options,
    plan_container,
)
from dockyard.runtime.spec import ContainerOptions, build_spec

# --- mount options ---------------------------------------------------------------------------------------


def test_mount_options_split_into_flags_propagation_and_data() -> None:
    opts = parse_mount_options(["nosuid", "strictatime", "mode=755", "size=65536k"])
    assert opts.flags == MS_NOSUID | MS_STRICTATIME
    assert opts.data == "mode=755,size=65536k"
    assert opts.propagation == ()
    opts = parse_mount_options(["rbind", "ro", "rprivate"])
    assert opts.flags == MS_BIND | MS_REC | MS_RDONLY
    assert opts.propagation == (MS_PRIVATE | MS_REC,)


def test_later_mount_options_win() -> None:
    assert parse_mount_options(["ro", "rw"]).flags == 0
    assert parse_mount_options(["nodev", "dev", "noexec"]).flags == MS_NOEXEC
    assert parse_mount_options(["defaults", "tmpcopyup", "z"]) == parse_mount_options([])


# --- paths (resolution inside a root: tests/unit/test_inroot.py) ------------------------------------------


def test_lookup_uses_the_containers_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tool").write_text("#!/bin/sh\n")
    (bin_dir / "tool").chmod(0o755)
    (bin_dir / "data").write_text("x")
    (bin_dir / "data").chmod(0o644)
    assert lookup_executable("tool", f"/nonexistent:{bin_dir}") == f"{bin_dir}/tool"
    assert lookup_executable(f"{bin_dir}/tool", None) == f"{bin_dir}/tool"

    with pytest.raises(SpawnError) as err:
        lookup_executable("tool", "/nonexistent")
    assert str(err.value) == 'exec: "tool": executable file not found in $PATH'
    assert err.value.exit_code == 127
    with pytest.raises(SpawnError) as err:
        lookup_executable("tool", None)  # no PATH in the spec: nothing is searched, as Go's LookPath
    assert err.value.exit_code == 127
    with pytest.raises(SpawnError) as err:
        lookup_executable("data", str(bin_dir))  # not executable: skipped in a PATH search
    assert err.value.exit_code == 127


@pytest.mark.skipif(os.geteuid() == 0, reason="root may execute any file with an x bit; checked as a user")
def test_lookup_of_a_path_that_is_not_executable(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("x")
    with pytest.raises(SpawnError) as err:
        lookup_executable(str(tmp_path / "data"), None)
    assert str(err.value) == f'exec: "{tmp_path}/data": permission denied'
    assert err.value.exit_code == 126


def test_lookup_of_a_directory_or_a_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SpawnError) as err:
        lookup_executable(str(tmp_path), None)
    assert str(err.value) == f'exec: "{tmp_path}": is a directory'
    assert err.value.exit_code == 126
    with pytest.raises(SpawnError) as err:
        lookup_executable(f"{tmp_path}/nope", None)
    assert str(err.value) == f'exec: "{tmp_path}/nope": stat {tmp_path}/nope: no such file or directory'
    assert err.value.exit_code == 127


def test_exit_codes_follow_dockers_rules() -> None:
    assert exit_code_for('exec: "x": executable file not found in $PATH') == 127
    assert exit_code_for("exec /bin/x: no such file or directory") == 127
    assert exit_code_for("exec /etc/passwd: permission denied") == 126
    assert exit_code_for("exec format error") is None


# --- cgroup settings -------------------------------------------------------------------------------------


def test_cgroup_v1_settings() -> None:
    resources = {
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20, "swappiness": 10},
        "cpu": {"shares": 512, "period": 100000, "quota": 50000, "cpus": "0-1"},
        "pids": {"limit": -1},
        "devices": [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 136, "access": "rwm"},
        ],
    }
    assert cgroup_settings(resources, "1") == [
        CgroupSetting("memory", "memory.limit_in_bytes", str(64 << 20)),
        CgroupSetting("memory", "memory.memsw.limit_in_bytes", str(128 << 20), optional=True),
        CgroupSetting("memory", "memory.soft_limit_in_bytes", str(32 << 20)),
        CgroupSetting("memory", "memory.swappiness", "10"),
        CgroupSetting("cpu", "cpu.shares", "512"),
        CgroupSetting("cpu", "cpu.cfs_period_us", "100000"),
        CgroupSetting("cpu", "cpu.cfs_quota_us", "50000"),
        CgroupSetting("devices", "devices.deny", "a *:* rwm"),
        CgroupSetting("devices", "devices.allow", "c 136:* rwm"),
        CgroupSetting("cpuset", "cpuset.cpus", "0-1"),
        CgroupSetting("pids", "pids.max", "max"),
    ]


def test_cgroup_v2_settings() -> None:
    resources = {
        "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20},
        "cpu": {"shares": 1024, "period": 100000, "quota": 150000},
        "pids": {"limit": 100},
        "devices": [{"allow": False, "access": "rwm"}],
    }
    assert cgroup_settings(resources, "2") == [
        CgroupSetting("memory", "memory.max", str(64 << 20)),
        CgroupSetting("memory", "memory.swap.max", str(64 << 20), optional=True),  # swap alone
        CgroupSetting("memory", "memory.low", str(32 << 20)),
        CgroupSetting("cpu", "cpu.weight", "39"),  # runc's conversion of 1024 shares
        CgroupSetting("cpu", "cpu.max", "150000 100000"),
        CgroupSetting("pids", "pids.max", "100"),
    ]
    assert cgroup_settings({"memory": {"limit": 10, "swap": -1}}, "2")[1].value == "max"
    with pytest.raises(SpawnError):
        cgroup_settings({"memory": {"limit": 10, "swap": 5}}, "2")


# --- the plan --------------------------------------------------------------------------------------------


def _spec(tmp_path: Path, **options) -> dict:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir(exist_ok=True)
    opts = ContainerOptions(container_id="c" * 64, rootfs=str(rootfs), cmd=["sh"], **options)
    return build_spec(opts, cgroup_version="1", user_lookup=lambda path: None, last_cap=40)


def test_the_plan_of_a_default_container(tmp_path: Path) -> None:
    plan = plan_container(_spec(tmp_path), tmp_path, "c" * 64, last_cap=40)
    assert plan.rootfs == str(tmp_path / "rootfs")
    assert plan.hostname == "c" * 12
    assert plan.cgroups_path == "/dockyard/" + "c" * 64
    assert plan.rootfs_propagation == MS_SLAVE | MS_REC  # runc's default
    assert [m.destination for m in plan.mounts][:3] == ["/proc", "/dev", "/dev/pts"]
    assert plan.mounts[0].options.flags == MS_NOSUID | MS_NOEXEC | MS_NODEV
    assert len(plan.bounding) == 14 and plan.bounding == plan.effective == plan.permitted
    assert plan.inheritable == frozenset()
    assert plan.setup_dev


def test_the_plan_refuses_what_the_runtime_cannot_do(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    spec["linux"]["namespaces"].append({"type": "user"})
    with pytest.raises(SpawnError, match="user namespaces"):
        plan_container(spec, tmp_path, "c", last_cap=40)

    spec = _spec(tmp_path)
    spec["linux"]["namespaces"] = [ns for ns in spec["linux"]["namespaces"] if ns["type"] != "uts"]
    with pytest.raises(SpawnError, match="without a private UTS namespace"):
        plan_container(spec, tmp_path, "c", last_cap=40)

    spec = _spec(tmp_path)
    spec["mounts"].append(
        {"destination": "/proc/sys", "type": "bind", "source": "/tmp", "options": ["rbind"]}
    )
    with pytest.raises(SpawnError, match="inside /proc"):
        plan_container(spec, tmp_path, "c", last_cap=40)

    spec = _spec(tmp_path)
    spec["process"]["capabilities"]["bounding"].append("CAP_NOPE")
    with pytest.raises(SpawnError, match="unknown capability"):
        plan_container(spec, tmp_path, "c", last_cap=40)

    spec = _spec(tmp_path)
    spec["process"]["args"] = []
    with pytest.raises(SpawnError, match="args"):
        plan_container(spec, tmp_path, "c", last_cap=40)


def test_the_plan_skips_capabilities_the_kernel_lacks(tmp_path: Path) -> None:
    plan = plan_container(_spec(tmp_path, privileged=True), tmp_path, "c", last_cap=37)
    assert max(plan.bounding) == 37


def test_rlimits_and_binds(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": -1}],
        binds=["/srv:/data:ro"],
    )
    plan = plan_container(spec, tmp_path, "c", last_cap=40)
    import resource

    assert plan.rlimits == [(resource.RLIMIT_NOFILE, 1024, resource.RLIM_INFINITY)]
    data = next(m for m in plan.mounts if m.destination == "/data")
    assert data.type == "bind" and data.source == "/srv"
    assert data.options.flags & MS_RDONLY


# --- cgroup layouts --------------------------------------------------------------------------------------

HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""
UNIFIED = (
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
)


def _mounts(tmp_path: Path, text: str):
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return mount_table(str(path))


def test_a_hybrid_host_is_v1_with_a_unified_hierarchy(tmp_path: Path) -> None:
    layout = detect_layout(mounts=_mounts(tmp_path, HYBRID))
    assert layout.version == "1" and layout.hybrid
    assert [h.key for h in layout.hierarchies] == ["cpu,cpuacct", "memory", "name=systemd", ""]
    cgroup = Cgroup.at(layout, "/dockyard/abc")
    assert cgroup.path("cpuacct") == "/sys/fs/cgroup/cpu,cpuacct/dockyard/abc"
    assert cgroup.path("memory") == "/sys/fs/cgroup/memory/dockyard/abc"
    assert cgroup.paths[""] == "/sys/fs/cgroup/unified/dockyard/abc"
    assert cgroup.path("pids") is None


def test_a_unified_host_is_v2(tmp_path: Path) -> None:
    mounts = _mounts(tmp_path, UNIFIED)
    assert mounts[0].shared
    layout = detect_layout(mounts=mounts)
    assert layout.version == "2" and not layout.hybrid
    cgroup = Cgroup.at(layout, "/dockyard/abc")
    assert cgroup.paths == {"": "/sys/fs/cgroup/dockyard/abc"}
    assert cgroup.path("memory") == cgroup.path("pids") == "/sys/fs/cgroup/dockyard/abc"


def test_mountinfo_escapes(tmp_path: Path) -> None:
    (entry,) = _mounts(tmp_path, r"50 27 254:0 /a\040b /mnt/with\040space rw - ext4 /dev/vda rw" + "\n")
    assert entry.mountpoint == "/mnt/with space" and entry.root == "/a b"


def test_running_container_state_round_trips() -> None:
    c = RunningContainer(
        "id", 42, "/b", Cgroup("1", {"memory": "/m"}, {"memory": "/sys/fs/cgroup/memory"}), 99
    )
    again = RunningContainer.from_state(c.to_state())
    assert again == c


# --- the v2 device filter --------------------------------------------------------------------------------


def _run_filter(program: bytes, kind: int, access: int, major: int, minor: int) -> int:
    """A tiny interpreter for the instructions device_filter emits, so that its decisions can be checked
    without loading it."""
    ctx = struct.pack("<III", access << 16 | kind, major, minor)
    regs = [0] * 11
    pc = 0
    while True:
        code, regs_byte, off, imm = struct.unpack_from("<BBhi", program, pc * 8)
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == 0x61:
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0x54:
            regs[dst] = regs[dst] & (imm & 0xFFFFFFFF)
        elif code == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0xB7:
            regs[dst] = imm
        elif code == 0x55:
            if regs[dst] != imm:
                pc += off
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")


BLOCK, CHAR = 1, 2
MKNOD, READ, WRITE = 1, 2, 4


def test_the_device_filter_decides_like_the_rules() -> None:
    spec_rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "access": "rwm"},
        {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rw"},
        {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
    ]
    program = device_filter(device_rules({"devices": spec_rules}))
    assert _run_filter(program, CHAR, READ | WRITE, 1, 3) == 1  # /dev/null
    assert _run_filter(program, CHAR, READ, 136, 7) == 1  # any pty
    assert _run_filter(program, CHAR, READ | WRITE, 5, 1) == 1  # /dev/console...
    assert _run_filter(program, CHAR, MKNOD, 5, 1) == 0  # ...but not mknod of it
    assert _run_filter(program, BLOCK, READ, 254, 0) == 0  # a disk
    assert _run_filter(program, CHAR, READ, 10, 229) == 0  # /dev/fuse
    assert _run_filter(program, BLOCK, READ, 1, 3) == 0  # the type matters


def test_the_device_filter_of_a_privileged_container_allows_all() -> None:
    program = device_filter([DeviceRule(allow=True)])
    assert len(program) == 8 * 8  # the loads, then one rule that always matches: nothing after it
    assert _run_filter(program, BLOCK, READ | WRITE | MKNOD, 8, 0) == 1
    assert _run_filter(device_filter([]), CHAR, READ, 1, 3) == 0  # no rules: nothing allowed
