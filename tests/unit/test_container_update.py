"""`update` and the create options beside it, pure logic: decoding as Go decodes, dockerd's resource checks
and merge, what reaches the cgroup (v1 and v2, in runc's order and words), log drivers, the init files,
the image list's digest-only rows, the removal's single owner."""

from __future__ import annotations

import asyncio
import errno
import os
import stat

import pytest

from dockyard.cli.commands.images import _image_rows
from dockyard.containers import update as upd
from dockyard.containers.create_options import CreateOptionError, decode_host_config
from dockyard.containers.initlayer import make_init_files
from dockyard.containers.removal import Removals
from dockyard.containers.resources import (
    ResourceError,
    SysInfo,
    canonical_keys,
    check_create,
    parse_uint_list,
    verify_resources,
)
from dockyard.linux.cgroups import Cgroup
from dockyard.logs.options import LogConfigError, merge_and_verify, open_options, readable
from dockyard.runtime.builtin import cgroup_settings

INFO = SysInfo(cgroup_version="1", cpus="0-3", mems="0", cpu_realtime=True)
MB = 1024 * 1024
SWAP_CONFLICT = (
    "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"
)


# --- decoding --------------------------------------------------------------------------------------------


def test_keys_match_in_any_case_as_encoding_json():
    hc = canonical_keys(
        {"CPURealtimePeriod": 1000, "cpurealtimeruntime": 500, "Other": 1},
        ("CpuRealtimePeriod", "CpuRealtimeRuntime"),
    )
    assert hc == {"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 500, "Other": 1}
    # two keys for one field: the later one, as Go sets the field twice
    assert canonical_keys({"memory": 1, "Memory": 2}, ("Memory",)) == {"Memory": 2}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"Memory": "1g"},
            "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64",
        ),
        (
            {"BlkioWeight": -5},
            "json: cannot unmarshal number -5 into Go struct field UpdateConfig.BlkioWeight of type uint16",
        ),
        (
            {"BlkioWeight": 70000},
            "json: cannot unmarshal number 70000 into Go struct field UpdateConfig.BlkioWeight "
            "of type uint16",
        ),
        (
            {"CpuShares": 1.5},
            "json: cannot unmarshal number 1.5 into Go struct field UpdateConfig.CpuShares of type int64",
        ),
        (
            {"CpusetCpus": 1},
            "json: cannot unmarshal number into Go struct field UpdateConfig.CpusetCpus of type string",
        ),
        (
            {"RestartPolicy": "always"},
            "json: cannot unmarshal string into Go struct field UpdateConfig.RestartPolicy "
            "of type container.RestartPolicy",
        ),
        ([1], "json: cannot unmarshal array into Go value of type container.UpdateConfig"),
    ],
)
def test_decode_refuses_what_go_refuses(body, message):
    with pytest.raises(ResourceError) as e:
        upd.decode(body)
    assert str(e.value) == message and e.value.status == 500


def test_decode_pids_limit_zero_or_below_is_unlimited():
    assert upd.decode({"pidslimit": -1})["PidsLimit"] == 0
    assert upd.decode({"PidsLimit": 5})["PidsLimit"] == 5
    assert upd.decode({"PidsLimit": None})["PidsLimit"] is None
    assert upd.decode({"restartpolicy": {"name": "always"}})["RestartPolicy"] == {"Name": "always"}


# --- verification ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("res", "message"),
    [
        ({"Memory": -1}, "Minimum memory limit allowed is 6MB"),
        ({"Memory": 4 * MB}, "Minimum memory limit allowed is 6MB"),
        (
            {"Memory": 64 * MB, "MemorySwap": 32 * MB},
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        ({"MemoryReservation": MB}, "Minimum memory reservation allowed is 6MB"),
        (
            {"Memory": 16 * MB, "MemoryReservation": 32 * MB},
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ),
        ({"NanoCpus": -1}, "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"),
        ({"NanoCpus": 5 * 10**9}, "Range of CPUs is from 0.01 to 4.00, as there are only 4 CPUs available"),
        (
            {"NanoCpus": 10**9, "CpuQuota": 50000},
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ),
        (
            {"CpuPeriod": 500},
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            {"CpuPeriod": -5},
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        ({"CpuQuota": 999}, "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        ({"CpusetCpus": "0-9"}, "Requested CPUs are not available - requested 0-9, available: 0-3"),
        ({"CpusetCpus": "a"}, "Invalid value a for cpuset cpus: invalid format: a"),
        ({"CpusetMems": "1"}, "Requested memory nodes are not available - requested 1, available: 0"),
        ({"BlkioWeight": 5}, "Range of blkio weight is from 10 to 1000"),
    ],
)
def test_verify_refuses_as_dockerd(res, message):
    with pytest.raises(ResourceError) as e:
        verify_resources(dict(res), INFO, 4, update=True)
    assert str(e.value) == message and e.value.status == 400


def test_verify_swap_without_memory_only_refused_at_create():
    verify_resources({"MemorySwap": 64 * MB}, INFO, 4, update=True)
    with pytest.raises(ResourceError, match="You should always set the Memory limit"):
        verify_resources({"MemorySwap": 64 * MB}, INFO, 4, update=False)


def test_verify_drops_what_the_host_lacks_with_dockerds_warnings():
    host = SysInfo(swap_limit=False, blkio_weight=False, cpus="0-3", mems="0")
    res = {"Memory": 64 * MB, "BlkioWeight": 300, "KernelMemory": 64 * MB}
    warnings = verify_resources(res, host, 4, update=True)
    assert warnings == [
        "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
        "Memory limited without swap.",
        "Your kernel does not support kernel memory limit capabilities or the cgroup is not mounted. "
        "Limitation discarded.",
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.",
    ]
    assert res["MemorySwap"] == -1 and res["BlkioWeight"] == 0 and res["KernelMemory"] == 0


def test_parse_uint_list():
    assert parse_uint_list("0-2,5") == {0, 1, 2, 5}
    assert parse_uint_list("") == set()
    for bad in ("3-1", "x", "1-", "1,,2"):
        with pytest.raises(ValueError, match=f"invalid format: {bad}"):
            parse_uint_list(bad)


def test_create_real_time_checks():
    check_create({"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 500}, INFO)
    with pytest.raises(
        ResourceError, match="^cpu real-time runtime cannot be higher than cpu real-time period$"
    ):
        check_create({"CpuRealtimePeriod": 1000, "CpuRealtimeRuntime": 5000}, INFO)
    v2 = SysInfo(cgroup_version="2")
    with pytest.raises(ResourceError, match="^Your kernel does not support cgroup cpu real-time period$"):
        check_create({"CpuRealtimePeriod": 1000}, v2)
    with pytest.raises(ResourceError, match="^Your kernel does not support cgroup cpu real-time runtime$"):
        check_create({"CpuRealtimeRuntime": 1000}, v2)


def test_create_host_config_decoding(monkeypatch):
    monkeypatch.setattr("dockyard.containers.create_options.sysinfo", lambda: INFO)
    hc, warnings = decode_host_config({"HostConfig": {"CPURealtimePeriod": 1000}, "Runtime": "runc"})
    assert hc == {"CpuRealtimePeriod": 1000, "Runtime": "runc"} and warnings == []
    hc, _ = decode_host_config({"HostConfig": {"Runtime": "crun"}, "Runtime": "runc"})
    assert hc["Runtime"] == "crun"  # the HostConfig's wins
    with pytest.raises(CreateOptionError) as e:
        decode_host_config({"HostConfig": {"BlkioWeight": -1}})
    assert e.value.status == 400 and "ContainerConfigWrapper.HostConfig.BlkioWeight of type uint16" in str(
        e.value
    )


# --- merge -----------------------------------------------------------------------------------------------


def test_merge_keeps_what_the_update_leaves_zero():
    hc = {"Memory": 400 * MB, "MemorySwap": 800 * MB, "CpuShares": 2, "PidsLimit": None}
    merged = upd.merge(hc, {"Memory": 300 * MB, "CpuShares": 0, "PidsLimit": 0, "CpusetCpus": ""})
    assert merged == {"Memory": 300 * MB, "MemorySwap": 800 * MB, "CpuShares": 2, "PidsLimit": 0}
    assert hc["Memory"] == 400 * MB  # a copy: the caller keeps the old one to restore


@pytest.mark.parametrize(
    ("hc", "update", "message"),
    [
        (
            {"MemorySwap": 100 * MB},
            {"Memory": 200 * MB},
            SWAP_CONFLICT,
        ),
        (
            {},
            {"Memory": 200 * MB},
            SWAP_CONFLICT,
        ),
        (
            {"CpuPeriod": 100000},
            {"NanoCpus": 10**9},
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
        ),
        (
            {"CpuQuota": 100000},
            {"NanoCpus": 10**9},
            "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set",
        ),
        (
            {"NanoCpus": 10**9},
            {"CpuPeriod": 50000},
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set",
        ),
        (
            {"NanoCpus": 10**9},
            {"CpuQuota": 50000},
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
        ),
        (
            {"AutoRemove": True},
            {"RestartPolicy": {"Name": "always"}},
            "Restart policy cannot be updated because AutoRemove is enabled for the container",
        ),
    ],
)
def test_merge_conflicts(hc, update, message):
    with pytest.raises(ResourceError) as e:
        upd.merge(hc, update)
    assert str(e.value) == message and e.value.status == 409


def test_merge_restart_policy():
    hc = {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}, "AutoRemove": False}
    assert upd.merge(hc, {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 42}})[
        "RestartPolicy"
    ] == {
        "Name": "on-failure",
        "MaximumRetryCount": 42,
    }
    assert upd.merge(hc, {"RestartPolicy": {"Name": ""}})["RestartPolicy"]["Name"] == "always"
    assert upd.merge({"AutoRemove": True}, {"RestartPolicy": {"Name": "no"}})["RestartPolicy"]["Name"] == "no"


# --- what reaches the cgroup -----------------------------------------------------------------------------


def test_live_resources_as_containerd_and_runc_read_them():
    r = upd.live_resources({"NanoCpus": 1_500_000_000, "MemorySwap": -1, "PidsLimit": 0, "CpuShares": -2}, {})
    assert (r.period, r.quota, r.swap, r.pids) == (100000, 150000, 0, -1)
    assert r.shares == (1 << 64) - 2  # Go's uint64 conversion
    # a quota alone keeps the period it ran with (runc update)
    r = upd.live_resources({"CpuQuota": 20000}, {"CpuPeriod": 50000})
    assert (r.period, r.quota) == (50000, 20000)
    r = upd.live_resources({"CpuPeriod": 20000}, {"NanoCpus": 10**9})
    assert (r.period, r.quota) == (20000, 100000)
    assert upd.live_resources({}, {}) == upd.LiveResources()


def _v1(tmp_path, **files):
    paths = {}
    for controller in ("memory", "cpu", "cpuset", "pids", "blkio"):
        d = tmp_path / controller
        d.mkdir()
        paths[controller] = str(d)
    for name, value in files.items():
        controller, _, file = name.partition("__")
        (tmp_path / controller / file.replace("_", ".", 1)).write_text(value)
    return Cgroup("1", paths)


def test_apply_live_v1_order_and_files(tmp_path):
    cg = _v1(
        tmp_path,
        memory__memory_limit_in_bytes="104857600",
        memory__memory_soft_limit_in_bytes="0",
        cpu__cpu_shares="1024",
        cpu__cpu_cfs_period_us="100000",
        cpu__cpu_cfs_quota_us="-1",
        pids__pids_max="max",
        blkio__blkio_weight="500",
        cpuset__cpuset_cpus="0-3",
    )
    upd.apply_live(
        cg,
        upd.LiveResources(
            memory=50 * MB,
            reservation=20 * MB,
            shares=512,
            period=50000,
            quota=25000,
            pids=-1,
            blkio_weight=300,
            cpus="1",
        ),
    )
    read = lambda c, f: (tmp_path / c / f).read_text()  # noqa: E731
    assert read("memory", "memory.limit_in_bytes") == str(50 * MB)
    assert read("memory", "memory.soft_limit_in_bytes") == str(20 * MB)
    assert read("cpu", "cpu.shares") == "512"
    assert (read("cpu", "cpu.cfs_period_us"), read("cpu", "cpu.cfs_quota_us")) == ("50000", "25000")
    assert read("pids", "pids.max") == "max" and read("blkio", "blkio.weight") == "300"
    assert read("cpuset", "cpuset.cpus") == "1"


def test_apply_live_v1_shares_read_back_as_runc(tmp_path, monkeypatch):
    cg = _v1(tmp_path, cpu__cpu_shares="1024")
    real_write = upd._Dir.write

    def clamping(self, name, value):  # the kernel clamps cpu.shares to 2..262144
        real_write(self, name, str(min(max(int(value), 2), 262144)) if name == "cpu.shares" else value)

    monkeypatch.setattr(upd._Dir, "write", clamping)
    with pytest.raises(upd.LiveError, match="^the minimum allowed cpu-shares is 2$"):
        upd.apply_live(cg, upd.LiveResources(shares=1))
    with pytest.raises(upd.LiveError, match="^the maximum allowed cpu-shares is 262144$"):
        upd.apply_live(cg, upd.LiveResources(shares=(1 << 64) - 5))


def test_apply_live_v1_memory_below_usage_is_runcs_message(tmp_path, monkeypatch):
    cg = _v1(tmp_path, memory__memory_limit_in_bytes="104857600")
    (tmp_path / "memory" / "memory.usage_in_bytes").write_text("31457280\n")
    (tmp_path / "memory" / "memory.max_usage_in_bytes").write_text("33554432\n")
    real_write = upd._Dir.write

    def busy(self, name, value):
        if name == "memory.limit_in_bytes":
            err = upd.LiveError("busy")
            err.errno = errno.EBUSY
            raise err
        real_write(self, name, value)

    monkeypatch.setattr(upd._Dir, "write", busy)
    with pytest.raises(upd.LiveError) as e:
        upd.apply_live(cg, upd.LiveResources(memory=10 * MB))
    assert (
        str(e.value)
        == "unable to set memory limit to 10485760 (current usage: 31457280, peak usage: 33554432)"
    )


def test_apply_live_v1_missing_file_is_runcs_openat2_error(tmp_path):
    cg = _v1(tmp_path, memory__memory_limit_in_bytes="104857600")
    with pytest.raises(upd.LiveError) as e:
        upd.apply_live(cg, upd.LiveResources(memory=64 * MB, swap=128 * MB))
    path = tmp_path / "memory" / "memory.memsw.limit_in_bytes"
    assert str(e.value) == f"openat2 {path}: no such file or directory"


def test_apply_live_v2(tmp_path):
    d = tmp_path / "cg"
    d.mkdir()
    for name in (
        "memory.max",
        "memory.swap.max",
        "memory.low",
        "cpu.weight",
        "cpu.max",
        "pids.max",
        "io.weight",
        "cpuset.cpus",
    ):
        (d / name).write_text("")
    cg = Cgroup("2", {"": str(d)})
    upd.apply_live(
        cg,
        upd.LiveResources(
            memory=64 * MB,
            swap=96 * MB,
            shares=512,
            quota=50000,
            period=100000,
            pids=10,
            blkio_weight=500,
            cpus="0",
        ),
    )
    read = lambda f: (d / f).read_text()  # noqa: E731
    assert read("memory.max") == str(64 * MB) and read("memory.swap.max") == str(32 * MB)
    assert read("cpu.weight") == str(1 + (512 - 2) * 9999 // 262142) and read("cpu.max") == "50000 100000"
    assert read("pids.max") == "10" and read("cpuset.cpus") == "0"
    assert read("io.weight") == str(1 + (500 - 10) * 9999 // 990)  # no io.bfq.weight: io.weight's scale
    upd.apply_live(cg, upd.LiveResources(memory=64 * MB, swap=64 * MB, quota=-1))
    assert read("memory.swap.max") == "0" and read("cpu.max") == "max"
    with pytest.raises(upd.LiveError, match="^unable to set swap limit without memory limit$"):
        upd.apply_live(cg, upd.LiveResources(swap=64 * MB))


def test_spec_resources_to_cgroup_files():
    v1 = {
        (s.file, s.value, s.fallback)
        for s in cgroup_settings(
            {"cpu": {"realtimePeriod": 1000, "realtimeRuntime": 500}, "blockIO": {"weight": 300}}, "1"
        )
    }
    assert ("cpu.rt_period_us", "1000", None) in v1 and ("cpu.rt_runtime_us", "500", None) in v1
    assert ("blkio.bfq.weight", "300", ("blkio.weight", "300")) in v1
    v2 = {(s.file, s.value, s.fallback) for s in cgroup_settings({"blockIO": {"weight": 10}}, "2")}
    assert v2 == {("io.bfq.weight", "10", ("io.weight", "1"))}


# --- log drivers -----------------------------------------------------------------------------------------


def test_log_config_at_create():
    assert merge_and_verify(None) == {"Type": "json-file", "Config": {}}
    assert merge_and_verify({"Type": "", "Config": {"max-file": "100"}}) == {
        "Type": "json-file",
        "Config": {"max-file": "100"},
    }
    assert merge_and_verify({}, "json-file", {"max-size": "1m"}) == {
        "Type": "json-file",
        "Config": {"max-size": "1m"},
    }
    assert merge_and_verify({"Type": "none", "Config": {"whatever": "x"}})["Type"] == "none"
    for config, message in (
        ({"Type": "asdf"}, "logger: no log driver named 'asdf' is registered"),
        ({"Config": {"foo": "bar"}}, "unknown log opt 'foo' for json-file log driver"),
        ({"Config": {"mode": "fast"}}, "logger: logging mode not supported: fast"),
        (
            {"Config": {"max-buffer-size": "1m"}},
            "logger: max-buffer-size option is only supported with 'mode=non-blocking'",
        ),
    ):
        with pytest.raises(LogConfigError) as e:
            merge_and_verify(config)
        assert str(e.value) == message and e.value.status == 400


def test_log_options_at_start():
    assert open_options({"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}) == (
        True,
        10_000_000,
        3,
    )
    assert open_options({"Type": "none"}) == (False, None, 1)
    for opts, why in (
        ({"max-size": "abc"}, "invalid size: 'abc'"),
        ({"max-size": "0"}, "max-size must be a positive number"),
        ({"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
        ({"max-file": "0"}, "max-file cannot be less than 1"),
        ({"compress": "true"}, "compress cannot be true when max-file is less than 2 or max-size is not set"),
    ):
        with pytest.raises(LogConfigError) as e:
            open_options({"Type": "json-file", "Config": opts})
        assert str(e.value) == f"failed to initialize logging driver: {why}" and e.value.status == 500
    readable({"Type": "json-file"})
    with pytest.raises(LogConfigError) as e:
        readable({"Type": "none"})
    assert str(e.value) == "configured logging driver does not support reading" and e.value.status == 501


# --- the init files --------------------------------------------------------------------------------------


def test_init_files(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("../proc/self/mounts", root / "etc" / "mtab")  # debian's: replaced, as dockerd's init layer
    make_init_files(str(root))
    st = os.lstat(root / ".dockerenv")
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o755 and st.st_size == 0
    assert os.readlink(root / "etc" / "mtab") == "/proc/mounts"
    make_init_files(str(root))  # again: nothing changes
    assert os.readlink(root / "etc" / "mtab") == "/proc/mounts"


def test_init_files_stay_inside_a_hostile_root(tmp_path):
    outside = tmp_path / "host-etc"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(str(outside), root / "etc")  # an absolute link out of the root
    os.symlink("/../../..", root / ".dockerenv")
    make_init_files(str(root))
    assert not (outside / "mtab").exists() and not os.path.lexists(outside / "mtab")
    assert os.readlink(root / ".dockerenv") == "/../../.."  # an image's own is left as it is
    assert (
        os.readlink(root / str(outside).lstrip("/") / "mtab") == "/proc/mounts"
    )  # the link, resolved inside


# --- images by digest ------------------------------------------------------------------------------------


def test_image_rows_as_the_docker_cli():
    digest = "sha256:" + "a" * 64
    only_digest = {"RepoTags": [], "RepoDigests": [f"busybox@{digest}"]}
    assert _image_rows(only_digest, False) == [("busybox", "<none>", "")]
    assert _image_rows(only_digest, True) == [("busybox", "<none>", digest)]
    tagged = {"RepoTags": ["busybox:latest", "busybox:1"], "RepoDigests": [f"busybox@{digest}"]}
    assert _image_rows(tagged, False) == [("busybox", "latest", "<none>"), ("busybox", "1", "<none>")]
    assert _image_rows(tagged, True) == [("busybox", "latest", digest), ("busybox", "1", digest)]
    dangling = {"RepoTags": ["<none>:<none>"], "RepoDigests": ["<none>@<none>"]}
    assert _image_rows(dangling, True) == [("<none>", "<none>", "<none>")]
    assert _image_rows({"RepoTags": ["localhost:5000/x:1"], "RepoDigests": []}, True) == [
        ("localhost:5000/x", "1", "<none>")
    ]


# --- one owner per removal -------------------------------------------------------------------------------


def test_removal_has_one_owner_and_waiters_share_its_outcome():
    async def scenario() -> list[str]:
        removals = Removals()
        done: list[str] = []
        assert removals.claim("c1") and not removals.claim("c1") and removals.in_progress("c1")
        waiter = asyncio.ensure_future(removals.wait("c1"))
        await asyncio.sleep(0)
        await removals.run("c1", lambda: done.append("removed"), lambda: done.append("destroy"))
        await waiter
        assert not removals.in_progress("c1")
        assert removals.claim("c2")
        waiter = asyncio.ensure_future(removals.wait("c2"))
        await asyncio.sleep(0)

        def fail() -> None:
            raise OSError("stuck")

        with pytest.raises(OSError):
            await removals.run("c2", fail, lambda: done.append("never"))
        with pytest.raises(OSError, match="stuck"):
            await waiter
        return done

    assert asyncio.run(scenario()) == ["removed", "destroy"]
