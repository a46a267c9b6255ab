"""Snapshots: unpacked layers keyed by chain ID, shared read-only by every image and container using them.

With overlayfs (driver "overlay2") each snapshot directory holds one layer's changes (whiteouts as 0/0
character devices) and a rootfs is an overlay of the chain. Without it (driver "vfs", the copy-based
fallback) each snapshot is a full copy of its parent with the layer applied on top.

A snapshot is unpacked into `snapshots/.tmp-*` and renamed to `snapshots/<chain hex>` once whole, so a
crash never leaves a half-applied layer under its final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from ..linux.mount import MNT_DETACH, mount, umount
from .content import digest_hex
from .layers import AppliedLayer, apply_layer, inherit_implicit_dirs

OVERLAY = "overlay2"
VFS = "vfs"


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)) (OCI image spec)."""
    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append("sha256:" + hashlib.sha256(f"{chain[-1]} {diff_id}".encode()).hexdigest())
    return chain


@dataclass
class SnapshotInfo:
    chain_id: str
    parent: str  # the parent's chain ID, "" for a base layer
    diff_id: str
    size: int


def overlay_supported(scratch: Path) -> bool:
    """Try a real overlay mount: the filesystem list alone does not say whether this backing fs works."""
    try:
        with open("/proc/filesystems") as f:
            if "overlay" not in f.read():
                return False
    except OSError:
        return False
    scratch.mkdir(parents=True, exist_ok=True)
    probe = Path(tempfile.mkdtemp(prefix=".overlay-probe-", dir=scratch))
    try:
        for name in ("lower", "upper", "work", "merged"):
            (probe / name).mkdir()
        options = f"lowerdir={probe / 'lower'},upperdir={probe / 'upper'},workdir={probe / 'work'}"
        try:
            mount("overlay", str(probe / "merged"), "overlay", 0, options)
        except OSError:
            return False
        umount(str(probe / "merged"), MNT_DETACH)
        return True
    finally:
        shutil.rmtree(probe, ignore_errors=True)


class PendingSnapshot:
    """A snapshot being unpacked: apply the layer into `fs`, then commit (or abort on failure)."""

    def __init__(self, snapshotter: Snapshotter, chain_id: str, parent: str, diff_id: str) -> None:
        self._snapshotter = snapshotter
        self.info = SnapshotInfo(chain_id, parent, diff_id, 0)
        self._implicit_dirs: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix=".tmp-", dir=snapshotter.root))
        self.fs = self.dir / "fs"
        if snapshotter.driver == VFS and parent:
            # The copy-based fallback starts from a full copy of the parent.
            subprocess.run(
                ["cp", "-a", "--reflink=auto", str(snapshotter.fs(parent)), str(self.fs)], check=True
            )
        else:
            self.fs.mkdir()

    def apply(self, stream: BinaryIO) -> AppliedLayer:
        """Unpack the layer. With overlayfs this needs nothing from the parent yet (see commit)."""
        if self._snapshotter.driver == OVERLAY:
            result = apply_layer(stream, self.fs, whiteout_mode="overlay")
        else:
            result = apply_layer(stream, self.fs, whiteout_mode="delete")
        self.info.size = result.size
        self._implicit_dirs = result.implicit_dirs
        return result

    def commit(self) -> SnapshotInfo:
        """Publish the snapshot; its parent must be committed already."""
        if self._snapshotter.driver == OVERLAY and self.info.parent and self._implicit_dirs:
            inherit_implicit_dirs(
                self.fs, self._implicit_dirs, self._snapshotter.lower_dirs(self.info.parent)
            )
        (self.dir / "snapshot.json").write_text(json.dumps(asdict(self.info)))
        target = self._snapshotter.dir(self.info.chain_id)
        try:
            os.rename(self.dir, target)
        except OSError:
            # Another pull committed the same chain first: theirs is as good as ours.
            if not (target / "snapshot.json").exists():
                raise
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.info

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class Snapshotter:
    def __init__(self, root: Path, driver: str) -> None:
        self.root = root
        self.driver = driver
        root.mkdir(parents=True, exist_ok=True)

    def recover(self) -> int:
        """Remove half-unpacked snapshots left by a crash (at start-up, before any pull)."""
        removed = 0
        for entry in self.root.glob(".tmp-*"):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        for entry in self.root.iterdir():
            if not entry.name.startswith(".") and not (entry / "snapshot.json").exists():
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed

    def dir(self, chain_id: str) -> Path:
        return self.root / digest_hex(chain_id)

    def fs(self, chain_id: str) -> Path:
        return self.dir(chain_id) / "fs"

    def exists(self, chain_id: str) -> bool:
        return (self.dir(chain_id) / "snapshot.json").is_file()

    def info(self, chain_id: str) -> SnapshotInfo:
        return SnapshotInfo(**json.loads((self.dir(chain_id) / "snapshot.json").read_text()))

    def prepare(self, chain_id: str, parent: str, diff_id: str) -> PendingSnapshot:
        return PendingSnapshot(self, chain_id, parent, diff_id)

    def lower_dirs(self, chain_id: str) -> list[Path]:
        """The directories a rootfs on this chain stacks, uppermost first."""
        if self.driver == VFS:
            return [self.fs(chain_id)]
        dirs = []
        current = chain_id
        while current:
            dirs.append(self.fs(current))
            current = self.info(current).parent
        return dirs

    def remove(self, chain_id: str) -> None:
        target = self.dir(chain_id)
        if not target.exists():
            return
        # Rename first so a crash mid-delete never leaves a listed but partial snapshot.
        doomed = Path(tempfile.mkdtemp(prefix=".tmp-rm-", dir=self.root))
        os.rename(target, doomed / "s")
        shutil.rmtree(doomed, ignore_errors=True)

    def all(self) -> dict[str, SnapshotInfo]:
        found = {}
        for entry in self.root.iterdir():
            meta = entry / "snapshot.json"
            if not entry.name.startswith(".") and meta.is_file():
                info = SnapshotInfo(**json.loads(meta.read_text()))
                found[info.chain_id] = info
        return found
