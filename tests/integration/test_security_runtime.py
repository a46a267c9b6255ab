"""Hostile images and hostile container processes against the runtime, on the built-in runtime and runc.

A crafted image may make any top-level directory a link out of its root; the container either runs (with
its /dev, /etc files, mounts and working directory inside its own root) or is refused with one line, and
the host's decoy directory, /dev/null and /etc are as they were. A container's root owns its own device
nodes, so changing them changes nothing on the host; the device cgroup lets it make nodes, as Docker's
does, but open only the standard ones."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import hostile
import pytest
from harness import unique

pytestmark = pytest.mark.runtimes()


@pytest.fixture
def host() -> Iterator[hostile.HostState]:
    state = hostile.HostState()
    yield state
    state.remove()


@pytest.fixture
def volumes(dockyard) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    if made:
        dockyard("volume", "rm", "-f", *made)


@pytest.fixture
def busybox(dockyard) -> str:
    pull = dockyard("pull", "busybox", timeout=60)
    assert pull.returncode == 0, pull.output
    return "busybox"


def _pushed(dockyard, registry, links: dict[str, str], decoy) -> str:
    ref = hostile.push_hostile(registry.address, links, decoy)
    pull = dockyard("pull", ref, timeout=60)
    assert pull.returncode == 0, pull.output
    return ref


def _one_line_or_ok(result, what: str) -> None:
    if result.returncode == 0:
        return
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, f"{what}: {result.output}"


@pytest.mark.parametrize("kind", sorted(hostile.LINK_KINDS))
def test_top_level_links_stay_inside(dockyard, registry, host, volumes, kind) -> None:
    """Each top-level directory a link (one image per kind, every directory linked at once would leave no
    /bin to run): the runtime's /dev nodes and links, /etc files, volumes, tmpfs and working directory."""
    hostdir = host.decoy.parent / unique("dockyard-bind-")
    hostdir.mkdir()
    try:
        for top in hostile.TOP_LEVEL:
            ref = _pushed(dockyard, registry, {top: hostile.link_target(kind, host.decoy)}, host.decoy)
            volume = unique("hostile-vol")
            volumes.append(volume)
            result = dockyard(
                "run", "--rm", "--hostname", "h", "--add-host", "x:10.1.2.3", "-w", f"/{top}/work",
                "--tmpfs", f"/{top}/tmp", "-v", f"{hostdir}:/{top}/bind", "-v", f"{volume}:/{top}/vol",
                ref, "sh", "-c", "echo hi >/dev/null && ls /dev/null /dev/stdout && cat /etc/hostname && pwd",
                timeout=60,
            )  # fmt: skip
            _one_line_or_ok(result, f"{kind} link at /{top}")
            if result.returncode == 0:
                assert result.stdout.rstrip().endswith("/work"), result.output  # where the link led, inside
                assert "h\n" in result.stdout
            host.assert_untouched(f"{kind} link at /{top}")
            assert os.listdir(hostdir) == [], f"{kind} link at /{top}"
    finally:
        os.rmdir(hostdir)


def test_kernel_filesystems_refuse_a_link(dockyard, registry, host) -> None:
    """As runc: proc and sysfs are mounted on real directories only."""
    for top in ("proc", "sys"):
        ref = _pushed(dockyard, registry, {top: str(host.decoy)}, host.decoy)
        result = dockyard("run", "--rm", ref, "true", timeout=60)
        assert result.returncode != 0, result.output
        assert "must be mounted on ordinary directory" in result.stderr, result.output
        _one_line_or_ok(result, top)
        host.assert_untouched(top)


def test_nested_links_and_loops(dockyard, registry, host) -> None:
    links = {
        "etc": "/var/lib/etc-elsewhere",  # a dangling link: /etc's files are made where it points, inside
        "var": "tmp/../../..",
        "data": "/loop-1",
        "work": hostile.link_target("relative", host.decoy),
    }
    ref = _pushed(dockyard, registry, links, host.decoy)
    result = dockyard(
        "run", "--rm", "-w", "/work/sub", ref, "sh", "-c", "pwd; cat /etc/hosts | head -1", timeout=60
    )
    _one_line_or_ok(result, "nested links")
    host.assert_untouched("nested links")
    loop = dockyard("run", "--rm", "-v", "/data/x", ref, "true", timeout=60)
    assert loop.returncode != 0, loop.output
    _one_line_or_ok(loop, "a volume under a loop")
    host.assert_untouched("a volume under a loop")


def _host_null() -> tuple[int, int, int, int]:
    st = os.stat("/dev/null")
    return st.st_mode, st.st_uid, st.st_gid, st.st_ctime_ns


def test_own_device_nodes(dockyard, host, busybox) -> None:
    """The container's root changes only its own /dev/null, even with every capability dropped, and the
    masks over /proc are its own nodes too."""
    script = (
        "grep -c ' /dev/null ' /proc/self/mountinfo; stat -c '%t:%T %a' /dev/null /proc/keys;"
        "chmod 000 /dev/null /proc/keys /dev/zero /dev/tty; chown 1:1 /dev/null /dev/urandom;"
        "stat -c '%a %u' /dev/null"
    )
    for extra in ([], ["--cap-drop", "ALL"]):
        result = dockyard("run", "--rm", *extra, "busybox", "sh", "-c", script, timeout=60)
        assert result.returncode == 0, result.output
        lines = result.stdout.split("\n")
        assert lines[0] == "0", result.output  # /dev/null is not a mount of the host's node
        assert lines[1] == "1:3 666" and lines[2].startswith("1:3 "), result.output
        assert lines[3] == ("0 0" if extra else "0 1"), result.output  # chown needs CAP_CHOWN, chmod not
        host.assert_untouched(f"chmod/chown of /dev nodes with {extra}")


def test_systempaths_unconfined(dockyard, busybox) -> None:
    masked = "stat -c %t:%T /proc/timer_list; grep -c ' /proc/sys ro' /proc/self/mountinfo || true"
    confined = dockyard("run", "--rm", "busybox", "sh", "-c", masked, timeout=60)
    assert confined.stdout.split() == ["1:3", "1"], confined.output
    free = dockyard("run", "--rm", "--security-opt", "systempaths=unconfined", "busybox", "sh", "-c", masked)
    assert free.returncode == 0, free.output
    assert free.stdout.split() == ["0:0", "0"], free.output
    bad = dockyard("run", "--rm", "--security-opt", "systempaths=open", "busybox", "true")
    assert bad.returncode != 0 and 'invalid --security-opt 2: "systempaths=open"' in bad.stderr, bad.output


def test_device_cgroup_as_docker(dockyard, busybox) -> None:
    """mknod of any node and /dev/net/tun usable, as with Docker; the host's disk stays refused."""
    disk = os.stat("/").st_dev
    assert not stat.S_ISBLK(disk)  # st_dev is a number, not a mode: the disk holding the host's root
    major, minor = os.major(disk), os.minor(disk)
    script = (
        "mkdir -p /dev/net && mknod /dev/net/tun c 10 200 && (exec 3<>/dev/net/tun) && echo tun-opened;"
        f"mknod /tmp/disk b {major} {minor} && echo disk-made;"
        "head -c 1 /tmp/disk >/dev/null 2>&1 || echo disk-refused;"
        "mknod /tmp/null2 c 1 3 && echo x > /tmp/null2 && echo null-ok"
    )
    result = dockyard("run", "--rm", "busybox", "sh", "-c", script, timeout=60)
    assert result.stdout.split() == ["tun-opened", "disk-made", "disk-refused", "null-ok"], result.output
