"""200 `run --rm` cycles leave nothing behind: no mount, cgroup, namespace, process, file descriptor or file.

The containers are found afterwards by their `create` events; everything they could leave is looked for by
their IDs (so that containers of other daemons on the machine do not disturb the count), and what has no ID
in it (the daemon's and its fork-server's open files, namespace mounts) is counted before and after.
"""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path

from harness import DOCKYARD, DaemonProcess, run_cli

CYCLES = int(os.environ.get("DOCKYARD_LEAK_CYCLES", "200"))
TIMEOUT = 30.0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _daemon_fds(daemon: DaemonProcess) -> dict[int, list[str]]:
    """Open files of the daemon and of its children (the shim fork-server), by what they are; not the
    API's own connections (clients' keep-alive connections come and go with the clients)."""
    assert daemon.proc is not None
    transient = _unix_sockets_at(daemon.socket_path) | _tcp_connections(daemon.proc.pid)
    pids = [daemon.proc.pid, *_children(daemon.proc.pid)]
    return {pid: [f for f in _fds(pid) if f.split(":", 1)[1] not in transient] for pid in pids}


def _tcp_connections(pid: int) -> set[str]:
    """`socket:[inode]` of the daemon's connected TCP sockets: its registry client keeps connections alive
    for a while after a pull. Listeners are not among them (a published port left open would count)."""
    found = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) > 9 and fields[3] != "0A":  # 0A: LISTEN
                    found.add(f"socket:[{fields[9]}]")
    return found


def _unix_sockets_at(path: str) -> set[str]:
    """`socket:[inode]` of every unix socket bound to or accepted on `path`."""
    found = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path:
                found.add(f"socket:[{fields[6]}]")
    return found


def _fds(pid: int) -> list[str]:
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(f"{fd}:{os.readlink(f'/proc/{pid}/fd/{fd}')}")
        except OSError:
            pass
    return sorted(out)


def _nsfs_mounts(root: Path) -> int:
    """Namespace files bound under the daemon's directories (other daemons' containers do not count)."""
    with open("/proc/self/mountinfo") as f:
        return sum(1 for line in f if " - nsfs " in line and line.split()[4].startswith(str(root) + "/"))


def _processes_in(path: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/cwd").startswith(path + "/"):
                    found.append(int(pid))
            except OSError:
                pass
    return found


def _traces(ids: list[str], data_root: str) -> list[str]:
    """Whatever on the host still names one of the containers."""
    found = []
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    cgroup_dirs = set(glob.glob("/sys/fs/cgroup/*/dockyard/*")) | set(glob.glob("/sys/fs/cgroup/dockyard/*"))
    cgroup_names = {os.path.basename(d) for d in cgroup_dirs}
    process_cgroups = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cgroup") as f:
                    process_cgroups.append((pid, f.read()))
            except OSError:
                pass
    for cid in ids:
        if cid in mounts:
            found.append(f"a mount of {cid[:12]}")
        if cid in cgroup_names:
            found.append(f"the cgroup of {cid[:12]}")
        found += [f"process {pid} in {cid[:12]}'s cgroup" for pid, text in process_cgroups if cid in text]
        for sub in ("containers", "rootfs"):
            if os.path.exists(os.path.join(data_root, sub, cid)):
                found.append(f"{sub}/{cid[:12]}")
    found += [f"process {pid} working under the data root" for pid in _processes_in(data_root)]
    return found


def test_run_rm_cycles_leave_nothing(daemon: DaemonProcess, docker_client) -> None:
    def run_rm() -> None:
        done = run_cli([DOCKYARD, "-H", daemon.host, "run", "--rm", "busybox", "true"], timeout=TIMEOUT)
        assert done.returncode == 0, done.output

    for _ in range(3):  # warm-up: the fork-server starts, the daemon's caches fill
        run_rm()
    fds_before = _daemon_fds(daemon)
    nsfs_before = _nsfs_mounts(daemon.root)
    since = time.time()
    for _ in range(CYCLES):
        run_rm()
    until = time.time() + 1

    stream = docker_client.events(
        since=int(since), until=int(until) + 1, decode=True, filters={"type": "container", "event": "create"}
    )
    events = list(stream)
    stream.close()
    docker_client.close()  # its pooled keep-alive connection would count among the daemon's open files
    ids = sorted({e["id"] for e in events if e.get("time", 0) >= int(since)})
    # events have one-second resolution: a warm-up container may be among them, which is fine
    assert len(ids) >= CYCLES, len(ids)

    data_root = str(daemon.data_root)
    deadline = time.monotonic() + TIMEOUT
    while True:
        traces = _traces(ids, data_root)
        fds_after = _daemon_fds(daemon)
        nsfs_after = _nsfs_mounts(daemon.root)
        counts_before = {pid: len(fds) for pid, fds in fds_before.items()}
        counts_after = {pid: len(fds) for pid, fds in fds_after.items()}
        if not traces and counts_after == counts_before and nsfs_after == nsfs_before:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"left behind: {traces[:10]}; open files {counts_before} -> {counts_after} "
                f"(new: {[sorted(set(fds_after.get(p, [])) - set(f)) for p, f in fds_before.items()]}, "
                f"gone: {[sorted(set(f) - set(fds_after.get(p, []))) for p, f in fds_before.items()]}); "
                f"namespace mounts {nsfs_before} -> {nsfs_after}"
            )
        time.sleep(0.2)
