"""Crafted images for the security tests, and the host state they must leave untouched.

A hostile image is busybox with some of its paths replaced by symlinks that point at a decoy directory on
the host (absolute), above the root (relative `..`), along chains, or at themselves (loops). Whatever the
engine does with such an image (run it, copy into or out of it, export it, fill a volume from it, build
on it), the decoy, the host's `/dev/null` and the host's `/etc` must stay as they were."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import testimages
from harness import unique

# where each kind of link points, `{decoy}` being the host's decoy directory
LINK_KINDS = {
    "absolute": "{decoy}",
    "relative": "../../../../../../../../..{decoy}",
    "dotdot": "/../../..{decoy}",
    "chain": "/chain-1",  # /chain-1 -> /chain-2 -> {decoy}
    "loop": "/loop-1",  # /loop-1 -> /loop-2 -> /loop-1
}
TOP_LEVEL = ("dev", "etc", "proc", "sys", "run", "tmp", "var")


@dataclass
class HostState:
    """What a hostile image must not change: a decoy directory, /dev/null and /etc."""

    decoy: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dockyard-decoy-")))
    _null: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    _etc: dict[str, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.decoy / "sentinel").write_text("host\n")
        self._null = self._null_now()
        self._etc = self._etc_now()

    @staticmethod
    def _null_now() -> tuple[int, int, int, int, int]:
        st = os.stat("/dev/null")
        return st.st_mode, st.st_uid, st.st_gid, st.st_ctime_ns, st.st_rdev

    @staticmethod
    def _etc_now() -> dict[str, tuple[int, int]]:
        out = {}
        for entry in os.scandir("/etc"):
            st = entry.stat(follow_symlinks=False)
            out[entry.name] = (st.st_mode, st.st_size if not entry.is_dir(follow_symlinks=False) else 0)
        return out

    def problems(self) -> list[str]:
        found = []
        content = sorted(p.name for p in self.decoy.iterdir())
        if content != ["sentinel"] or (self.decoy / "sentinel").read_text() != "host\n":
            found.append(f"the decoy {self.decoy} now holds {content}")
        if self._null_now() != self._null:
            found.append(f"/dev/null changed: {self._null} -> {self._null_now()}")
        etc = self._etc_now()
        if etc != self._etc:
            changed = sorted(set(etc.items()) ^ set(self._etc.items()))
            found.append(f"/etc changed: {changed[:5]}")
        return found

    def assert_untouched(self, what: str = "") -> None:
        found = self.problems()
        assert not found, f"{what}: " + "; ".join(found)

    def remove(self) -> None:
        for p in self.decoy.iterdir():
            p.unlink()
        self.decoy.rmdir()


def link_target(kind: str, decoy: Path) -> str:
    return LINK_KINDS[kind].format(decoy=decoy)


def hostile_tar(links: dict[str, str], files: dict[str, bytes] | None = None) -> bytes:
    """busybox's root with `links` (path in the image -> target) in place of whatever was there, plus the
    helper links of the chain and loop kinds, and `files`."""
    replaced = {p.strip("/") for p in links}
    entries = [
        e
        for e in testimages.base_layer_entries()
        if not any(e.path == r or e.path.startswith(r + "/") for r in replaced)
    ]
    entries += [testimages._symlink(path.strip("/"), target) for path, target in links.items()]
    entries += [testimages._symlink("loop-1", "/loop-2"), testimages._symlink("loop-2", "/loop-1")]
    for path, data in (files or {}).items():
        entries.append(
            testimages._file(path.strip("/"), data, 0o755 if data.startswith(b"\x7fELF") else 0o644)
        )
    return testimages.make_tar(entries)


def chain_links(decoy: Path) -> dict[str, str]:
    return {"chain-1": "/chain-2", "chain-2": str(decoy)}


def push_hostile(registry_address: str, links: dict[str, str], decoy: Path, **config: object) -> str:
    """Push an image with `links` (and the chain's links to `decoy`) to the test registry; its reference."""
    tar = hostile_tar({**chain_links(decoy), **links})
    image = testimages.build_from_tars([tar], config={"config": {"Env": [testimages.PATH_ENV], **config}})
    repo = unique("test/hostile")
    testimages.push_image(registry_address, repo, "latest", image)
    return f"{registry_address}/{repo}:latest"
