"""The pure parts of top and stats: ps output filtering, cgroup files read as dockerd reports them (v1
and v2), and the docker CLI's stats arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.containers import stats as cstats
from dockyard.containers.top import TopError, parse_ps_output, validate_ps_args
from dockyard.linux.cgroups import Cgroup

PS = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         200       1  0 10:01 ?        00:00:00 sleep 300  with  spaces
root         201     200  0 10:01 ?        00:00:00 sh
"""


def test_parse_ps_output_keeps_the_container_rows() -> None:
    result = parse_ps_output(PS, {200})
    assert result["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert result["Processes"] == [
        ["root", "200", "1", "0", "10:01", "?", "00:00:00", "sleep 300 with spaces"]
    ]


def test_parse_ps_output_threads_follow_their_process() -> None:
    output = "USER PID TID CMD\nroot 200 - sleep\n- - 200 -\nroot 300 - other\n- - 300 -\n"
    assert parse_ps_output(output, {200})["Processes"] == [
        ["root", "200", "-", "sleep"],
        ["-", "-", "200", "-"],
    ]


def test_ps_errors() -> None:
    with pytest.raises(TopError, match="Couldn't find PID field in ps output"):
        parse_ps_output("USER CMD\nroot x\n", {1})
    with pytest.raises(TopError, match=r'specifying "user=PID" is not allowed'):
        validate_ps_args("-o user=PID")
    validate_ps_args("-o pid=PID")


def _cgroup(tmp_path: Path, version: str, files: dict[str, str]) -> Cgroup:
    for name, text in files.items():
        controller = name.split(".")[0] if version == "1" else ""
        d = tmp_path / controller
        d.mkdir(exist_ok=True)
        (d / name).write_text(text)
    if version == "2":
        return Cgroup("2", {"": str(tmp_path / "")})
    keys = {n.split(".")[0] for n in files}
    return Cgroup("1", {k: str(tmp_path / k) for k in keys})


def test_cgroup_v2_stats(tmp_path: Path) -> None:
    cg = _cgroup(
        tmp_path,
        "2",
        {
            "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 2\nnr_throttled 1\n"
            "throttled_usec 7\n",
            "memory.current": "4096\n",
            "memory.max": "max\n",
            "memory.stat": "anon 100\nfile 200\ninactive_file 50\nsomething_else 9\n",
            "memory.events": "low 0\nhigh 0\nmax 0\noom 2\noom_kill 1\n",
            "pids.current": "3\n",
            "pids.max": "max\n",
            "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
        },
    )
    s = cstats.cgroup_stats(cg, machine_memory=8 << 30)
    assert s["cpu_stats"]["cpu_usage"] == {
        "total_usage": 1_500_000,
        "usage_in_kernelmode": 500_000,
        "usage_in_usermode": 1_000_000,
    }
    assert s["cpu_stats"]["throttling_data"] == {"periods": 2, "throttled_periods": 1, "throttled_time": 7000}
    assert s["memory_stats"]["usage"] == 4096 and s["memory_stats"]["limit"] == 8 << 30
    assert s["memory_stats"]["failcnt"] == 2
    assert (
        s["memory_stats"]["stats"]["inactive_file"] == 50
        and "something_else" not in s["memory_stats"]["stats"]
    )
    assert s["pids_stats"] == {"current": 3}
    assert s["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "read", "value": 10},
        {"major": 8, "minor": 0, "op": "write", "value": 20},
    ]


def test_cgroup_v1_stats(tmp_path: Path) -> None:
    cg = _cgroup(
        tmp_path,
        "1",
        {
            "cpuacct.usage": "3000\n",
            "cpuacct.usage_percpu": "1000 2000 \n",
            "cpuacct.stat": "user 2\nsystem 1\n",
            "memory.usage_in_bytes": "8192\n",
            "memory.max_usage_in_bytes": "9000\n",
            "memory.limit_in_bytes": "1048576\n",
            "memory.failcnt": "0\n",
            "memory.stat": "cache 10\ntotal_inactive_file 4096\n",
            "pids.current": "1\n",
            "pids.max": "100\n",
            "blkio.throttle.io_service_bytes_recursive": "8:0 Read 5\n8:0 Write 6\n8:0 Total 11\nTotal 11\n",
        },
    )
    s = cstats.cgroup_stats(cg, machine_memory=8 << 30)
    usage = s["cpu_stats"]["cpu_usage"]
    assert usage["total_usage"] == 3000 and usage["percpu_usage"] == [1000, 2000]
    tick = 1_000_000_000 // cstats._CLOCK_TICKS
    assert usage["usage_in_usermode"] == 2 * tick and usage["usage_in_kernelmode"] == tick
    memory = s["memory_stats"]
    assert memory == {
        "usage": 8192,
        "max_usage": 9000,
        "stats": {"cache": 10, "total_inactive_file": 4096},
        "limit": 1048576,
    }
    assert s["pids_stats"] == {"current": 1, "limit": 100}
    assert [e["op"] for e in s["blkio_stats"]["io_service_bytes_recursive"]] == ["Read", "Write", "Total"]


def test_system_cpu_usage_and_empty_stats() -> None:
    tick = 1_000_000_000 // cstats._CLOCK_TICKS
    assert cstats.system_cpu_usage("cpu  1 2 3 4 5 6 7 8 9 10\ncpu0 1 1 1 1 1 1 1\n") == 28 * tick
    empty = cstats.empty_stats("/x", "abc")
    assert empty["read"] == empty["preread"] == "0001-01-01T00:00:00Z"
    assert empty["memory_stats"] == {} and empty["pids_stats"] == {}
    assert empty["cpu_stats"]["cpu_usage"]["total_usage"] == 0


def test_stats_calculations() -> None:
    from dockyard.cli.commands.manage import cpu_percent, memory_usage, stats_row

    sample = {
        "id": "a" * 64,
        "name": "/web",
        "cpu_stats": {
            "cpu_usage": {"total_usage": 300_000_000},
            "system_cpu_usage": 4_000_000_000,
            "online_cpus": 4,
        },
        "precpu_stats": {"cpu_usage": {"total_usage": 100_000_000}, "system_cpu_usage": 2_000_000_000},
        "memory_stats": {"usage": 10 * 1024**2, "limit": 100 * 1024**2, "stats": {"inactive_file": 1024**2}},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 1500},
                {"major": 8, "minor": 0, "op": "write", "value": 2_000_000},
                {"major": 8, "minor": 0, "op": "Total", "value": 2_001_500},
            ]
        },
        "pids_stats": {"current": 3},
    }
    assert cpu_percent(sample) == pytest.approx(40.0)
    assert memory_usage(sample["memory_stats"]) == 9 * 1024**2
    # cgroup v1 has total_inactive_file, which wins over inactive_file
    assert memory_usage({"usage": 100, "stats": {"total_inactive_file": 30, "inactive_file": 10}}) == 70
    row = stats_row(sample, "web")
    assert row == {
        "Container": "web",
        "ID": "a" * 12,
        "Name": "web",
        "CPUPerc": "40.00%",
        "MemUsage": "9MiB / 100MiB",
        "MemPerc": "9.00%",
        "NetIO": "0B / 0B",
        "BlockIO": "1.5kB / 2MB",
        "PIDs": "3",
    }
    assert stats_row({"name": "", "id": ""}, "x")["Name"] == "--"


def test_interface_stats_from_proc_net_dev() -> None:
    from dockyard.containers.stats import interface_stats

    header = (
        "Inter-| Receive | Transmit\n face |bytes packets errs drop fifo frame compressed multicast|...\n"
    )
    text = (
        header
        + "    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0\n"
        + "  eth0: 1500 12 1 2 0 0 0 0 900 7 3 4 0 0 0 0\n"
    )
    assert interface_stats(1, text) == {
        "eth0": {
            "rx_bytes": 1500, "rx_packets": 12, "rx_errors": 1, "rx_dropped": 2,
            "tx_bytes": 900, "tx_packets": 7, "tx_errors": 3, "tx_dropped": 4,
        }
    }  # fmt: skip
