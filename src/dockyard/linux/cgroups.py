"""The cgroup filesystem: which hierarchies a host mounts (v1, hybrid or unified v2), and one cgroup as a
directory in each of them (create, join, read and write control files, remove).

What the files mean (limits, their units) is the runtime's business; this module knows only the layout."""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field

from .mount import MountEntry, mount_table

CGROUP_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = frozenset(
    "cpuset cpu cpuacct blkio memory devices freezer net_cls perf_event net_prio hugetlb pids rdma misc"
    " io".split()
)
# what a v2 cgroup enables for its children, when the parent offers it
V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")


@dataclass(frozen=True)
class Hierarchy:
    mountpoint: str
    root: str  # the cgroup mounted there ("/" unless the mount shows a subtree)
    version: int  # 1 or 2
    controllers: tuple[str, ...] = ()  # v1: ("cpu", "cpuacct") or ("name=systemd",); v2: ()

    @property
    def key(self) -> str:
        """How /proc/<pid>/cgroup names it: "cpu,cpuacct", "name=systemd", or "" for v2."""
        return ",".join(self.controllers)


@dataclass(frozen=True)
class CgroupLayout:
    version: str  # "2" only when the root itself is cgroup2; hybrid hosts are "1", as Docker reports them
    hierarchies: tuple[Hierarchy, ...]

    @property
    def unified(self) -> Hierarchy | None:
        return next((h for h in self.hierarchies if h.version == 2), None)

    @property
    def hybrid(self) -> bool:
        return self.version == "1" and self.unified is not None

    def find(self, controller: str) -> Hierarchy | None:
        return next((h for h in self.hierarchies if controller in h.controllers), None)


def _v1_controllers(entry: MountEntry) -> tuple[str, ...]:
    return tuple(
        opt for opt in entry.super_options.split(",") if opt in V1_CONTROLLERS or opt.startswith("name=")
    )


def detect_layout(root: str = CGROUP_ROOT, mounts: list[MountEntry] | None = None) -> CgroupLayout:
    """The cgroup hierarchies mounted at or under `root` (in the caller's mount namespace)."""
    mounts = mount_table() if mounts is None else mounts
    root = root.rstrip("/") or "/"
    found: list[Hierarchy] = []
    seen: set[tuple[str, ...]] = set()
    version = "1"
    for entry in mounts:
        inside = entry.mountpoint == root or entry.mountpoint.startswith(root + "/")
        if not inside:
            continue
        if entry.fstype == "cgroup2":
            if entry.mountpoint == root:
                version = "2"
                found = [Hierarchy(entry.mountpoint, entry.root, 2)]
                seen = {()}
            elif () not in seen:
                found.append(Hierarchy(entry.mountpoint, entry.root, 2))
                seen.add(())
        elif entry.fstype == "cgroup" and version == "1":
            controllers = _v1_controllers(entry)
            if controllers and controllers not in seen:  # one hierarchy may be mounted twice
                found.append(Hierarchy(entry.mountpoint, entry.root, 1, controllers))
                seen.add(controllers)
    if version == "2":
        found = [h for h in found if h.version == 2]
    return CgroupLayout(version, tuple(found))


def own_cgroups(pid: int | str = "self") -> dict[frozenset[str], str]:
    """/proc/<pid>/cgroup: controller set (empty for v2) -> the cgroup's path."""
    out: dict[frozenset[str], str] = {}
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            out[frozenset(c for c in controllers.split(",") if c)] = path
    return out


def _dir_for(h: Hierarchy, cgroup_path: str, own: dict[frozenset[str], str] | None) -> str:
    if not cgroup_path.startswith("/"):
        # relative: under the caller's own cgroup in that hierarchy
        own = own_cgroups() if own is None else own
        base = own.get(frozenset(h.controllers), "/")
        cgroup_path = os.path.join(base, cgroup_path)
    cgroup_path = os.path.normpath(cgroup_path)
    if h.root != "/" and (cgroup_path == h.root or cgroup_path.startswith(h.root + "/")):
        cgroup_path = cgroup_path[len(h.root) :] or "/"
    return os.path.normpath(h.mountpoint + "/" + cgroup_path.lstrip("/"))


def _write(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise OSError(e.errno, f"write {value!r} to {path}: {os.strerror(e.errno or 0)}") from None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


@dataclass
class Cgroup:
    """One container's cgroup: a directory in each hierarchy, keyed by `Hierarchy.key`."""

    version: str
    paths: dict[str, str] = field(default_factory=dict)
    mountpoints: dict[str, str] = field(default_factory=dict)  # key -> where its hierarchy is mounted

    @classmethod
    def at(cls, layout: CgroupLayout, cgroup_path: str) -> Cgroup:
        own = None if cgroup_path.startswith("/") else own_cgroups()
        return cls(
            layout.version,
            {h.key: _dir_for(h, cgroup_path, own) for h in layout.hierarchies},
            {h.key: h.mountpoint for h in layout.hierarchies},
        )

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "paths": dict(self.paths), "mountpoints": dict(self.mountpoints)}

    @classmethod
    def from_dict(cls, data: dict) -> Cgroup:
        return cls(str(data["version"]), dict(data["paths"]), dict(data.get("mountpoints") or {}))

    def path(self, controller: str) -> str | None:
        """The directory whose files control `controller` ("memory", "cpu"...)."""
        if self.version == "2":
            return self.paths.get("")
        for key, path in self.paths.items():
            if controller in key.split(","):
                return path
        return None

    def create(self) -> None:
        for key, path in self.paths.items():
            top = self.mountpoints.get(key) or os.path.dirname(path)
            d = top
            for part in os.path.relpath(path, top).split("/"):
                if part == ".":
                    break
                if self.version == "2":
                    _enable_v2_controllers(d)
                parent, d = d, os.path.join(d, part)
                try:
                    os.mkdir(d, 0o755)
                except FileExistsError:
                    continue
                if self.version == "1" and "cpuset" in key.split(","):
                    # a new v1 cpuset has no CPUs and refuses tasks (ENOSPC) until they are copied down
                    for name in ("cpuset.cpus", "cpuset.mems"):
                        if not _read(os.path.join(d, name)).strip():
                            _write(os.path.join(d, name), _read(os.path.join(parent, name)).strip())

    def write(self, controller: str, name: str, value: str) -> None:
        path = self.path(controller)
        if path is None:
            raise OSError(errno.ENOENT, f"the {controller} cgroup controller is not mounted")
        _write(os.path.join(path, name), value)

    def read(self, controller: str, name: str) -> str:
        path = self.path(controller)
        if path is None:
            raise OSError(errno.ENOENT, f"the {controller} cgroup controller is not mounted")
        return _read(os.path.join(path, name))

    def has(self, controller: str, name: str) -> bool:
        path = self.path(controller)
        return path is not None and os.path.exists(os.path.join(path, name))

    def add(self, pid: int) -> None:
        for path in self.paths.values():
            _write(os.path.join(path, "cgroup.procs"), str(pid))

    def pids(self) -> set[int]:
        found: set[int] = set()
        for path in self.paths.values():
            for sub, _, _ in os.walk(path):
                try:
                    found.update(int(p) for p in _read(os.path.join(sub, "cgroup.procs")).split())
                except OSError:
                    pass
        return found

    def remove(self, timeout: float = 2.0) -> None:
        """rmdir every directory (sub-cgroups the container made first); retried while the last tasks
        leave, which the kernel finishes a moment after they are reaped."""
        deadline = time.monotonic() + timeout
        for path in self.paths.values():
            while True:
                try:
                    for sub, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
                        os.rmdir(sub)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise OSError(e.errno, f"remove cgroup {path}: {os.strerror(e.errno or 0)}") from None
                    time.sleep(0.01)


def _enable_v2_controllers(path: str) -> None:
    """Hand the controllers `path` offers down to its children (cgroup.subtree_control). Best effort: a
    controller that cannot be enabled shows up later as a missing file when its limit is written."""
    try:
        offered = _read(path + "/cgroup.controllers").split()
        enabled = _read(path + "/cgroup.subtree_control").split()
    except OSError:
        return
    for c in V2_CONTROLLERS:
        if c in offered and c not in enabled:
            try:
                _write(path + "/cgroup.subtree_control", "+" + c)
            except OSError:
                pass
