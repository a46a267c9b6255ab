"""The image service: the one public surface over the content store, the snapshots and the references.

It answers what `docker images`, `image inspect`, `history`, `tag`, `rmi` and `image prune` ask, and
registers images that pulls, loads and imports bring in. Every change to references and records goes
through `lock`, so a removal never races a pull that is about to use the same layers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..reference import InvalidReference, Reference, is_image_id_prefix, parse_reference
from ..units import parse_time
from .changes import empty_container_config
from .content import ContentStore, digest_hex
from .snapshots import OVERLAY, VFS, Snapshotter, chain_ids, overlay_supported
from .store import AmbiguousImage, ImageNotFound, ImageRecord, ImageStore, LayerRecord


class ImageError(Exception):
    """A user-facing image error; `status` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class NoSuchImage(ImageError):
    status = 404


class ImageConflict(ImageError):
    status = 409


@dataclass
class ContainerUse:
    container_id: str
    running: bool


# Who uses an image (set by the engine once containers exist): image ID -> containers.
ContainerUsers = Callable[[str], list[ContainerUse]]


def _rfc3339_to_unix(text: str) -> int:
    if not text:
        return 0
    try:
        return int(datetime.fromisoformat(_trim_fraction(text)).timestamp())
    except ValueError:
        return 0


def _trim_fraction(text: str) -> str:
    """Python's fromisoformat takes at most 6 fractional digits; Go writes up to 9."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    return text


class ImageService:
    def __init__(self, root: Path, driver: str = "") -> None:
        root.mkdir(parents=True, exist_ok=True)
        if not driver:
            driver = OVERLAY if overlay_supported(root / "tmp") else VFS
        self.driver = driver
        self.content = ContentStore(root / "content")
        self.snapshots = Snapshotter(root / "snapshots" / driver, driver)
        self.store = ImageStore(root / "images")
        self.lock = asyncio.Lock()
        self.container_users: ContainerUsers = lambda image_id: []
        # Snapshots and blobs a pull is putting together right now: never collected while in use.
        self._pins: Counter[str] = Counter()

    @contextlib.contextmanager
    def pinned(self, keys: list[str]) -> Iterator[None]:
        """Keep these chain IDs and blob digests from garbage collection while a pull works on them."""
        self._pins.update(keys)
        try:
            yield
        finally:
            self._pins.subtract(keys)
            self._pins += Counter()  # drop the zero counts

    def pinned_keys(self) -> set[str]:
        return set(self._pins)

    def recover(self) -> None:
        self.content.recover()
        self.snapshots.recover()

    # --- reading ----------------------------------------------------------------------------------

    def get(self, name: str) -> ImageRecord:
        try:
            return self.store.resolve(name)
        except ImageNotFound:
            raise NoSuchImage(f"No such image: {_display_name(name)}") from None
        except AmbiguousImage as e:
            raise ImageError(str(e), 400) from None

    def config(self, record: ImageRecord) -> dict[str, Any]:
        return json.loads(self.content.read(record.id))

    def _repo_tags(self, record: ImageRecord) -> list[str]:
        return [ref.familiar() for ref in self.store.tags_of(record.id)]

    def _repo_digests(self, record: ImageRecord) -> list[str]:
        return [ref.familiar() for ref in self.store.digests_of(record.id)]

    def list_images(
        self, all_images: bool = False, filters: dict[str, list[str]] | None = None
    ) -> list[dict]:
        filters = filters or {}
        dangling = filters.get("dangling")
        patterns = filters.get("reference", [])
        labels = filters.get("label", [])
        before = self.get(filters["before"][0]).id if filters.get("before") else None
        since = self.get(filters["since"][0]).id if filters.get("since") else None
        before_time = self._created(self.store.images[before]) if before else None
        since_time = self._created(self.store.images[since]) if since else None
        out = []
        parents = self._parents()
        for record in self.store.images.values():
            config = self.config(record)
            tags = self._repo_tags(record)
            digests = self._repo_digests(record)
            # as dockerd: an untagged image that is a parent (a build's intermediate step) shows only
            # with -a, and is not dangling
            intermediate = not tags and not digests and record.id in parents
            if intermediate and not all_images:
                continue
            if dangling and dangling[0].lower() in ("true", "1") and (tags or intermediate):
                continue
            if dangling and dangling[0].lower() in ("false", "0") and not tags:
                continue
            created = self._created(record, config)
            if before_time is not None and created >= before_time:
                continue
            if since_time is not None and created <= since_time:
                continue
            image_labels = (config.get("config") or {}).get("Labels") or {}
            if labels and not all(_label_matches(image_labels, label) for label in labels):
                continue
            if patterns:  # as dockerd: each reference kept when it matches, tags and digests alike
                tags = [t for t in tags if any(_reference_matches(p, t) for p in patterns)]
                digests = [d for d in digests if any(_reference_matches(p, d) for p in patterns)]
                if not tags and not digests:
                    continue
            if not tags and not digests:
                tags, digests = ["<none>:<none>"], ["<none>@<none>"]
            out.append(
                {
                    "Containers": -1,
                    "Created": created,
                    "Id": record.id,
                    "Labels": image_labels or None,
                    "ParentId": record.extra.get("parent", ""),
                    "RepoDigests": digests,
                    "RepoTags": tags,  # [] for an image pulled by digest only
                    "SharedSize": -1,
                    "Size": record.size,
                    "VirtualSize": record.size,
                }
            )
        out.sort(key=lambda image: image["Created"], reverse=True)
        return out

    def _created(self, record: ImageRecord, config: dict | None = None) -> int:
        config = config if config is not None else self.config(record)
        return _rfc3339_to_unix(config.get("created", ""))

    def inspect(self, name: str) -> dict[str, Any]:
        record = self.get(name)
        config = self.config(record)
        graph: dict[str, str] = {}
        if record.chain_id:
            lowers = self.snapshots.lower_dirs(record.chain_id)
            if self.driver == OVERLAY:
                graph = {
                    "LowerDir": ":".join(str(p) for p in lowers[1:]) or "",
                    "UpperDir": str(lowers[0]),
                    "MergedDir": "",
                    "WorkDir": "",
                }
                graph = {k: v for k, v in graph.items() if v}
            else:
                graph = {"Dir": str(lowers[0])}
        return {
            "Id": record.id,
            "RepoTags": self._repo_tags(record),
            "RepoDigests": self._repo_digests(record),
            "Parent": record.extra.get("parent", ""),
            "Comment": record.extra.get("comment", config.get("comment", "")),
            "Created": config.get("created", ""),
            "Container": config.get("container", ""),
            "ContainerConfig": config.get("container_config") or empty_container_config(),
            "DockerVersion": config.get("docker_version", ""),
            "Author": config.get("author", ""),
            "Config": config.get("config"),
            "Architecture": config.get("architecture", ""),
            **({"Variant": config["variant"]} if config.get("variant") else {}),
            "Os": config.get("os", ""),
            "Size": record.size,
            "VirtualSize": record.size,
            "GraphDriver": {"Data": graph or None, "Name": self.driver},
            "RootFS": {
                "Type": "layers",
                "Layers": [layer.diff_id for layer in record.layers]
                or (config.get("rootfs") or {}).get("diff_ids")
                or [],
            },
            "Metadata": {"LastTagTime": record.last_tag_time or "0001-01-01T00:00:00Z"},
        }

    def history(self, name: str) -> list[dict[str, Any]]:
        record = self.get(name)
        config = self.config(record)
        sizes = [
            self.snapshots.info(c).size
            for c in chain_ids([layer.diff_id for layer in record.layers])
            if self.snapshots.exists(c)
        ]
        entries = config.get("history") or [{"created": config.get("created", "")} for _ in record.layers]
        out = []
        layer_index = 0
        for entry in entries:
            size = 0
            if not entry.get("empty_layer"):
                size = sizes[layer_index] if layer_index < len(sizes) else 0
                layer_index += 1
            out.append(
                {
                    "Id": "<missing>",
                    "Created": _rfc3339_to_unix(entry.get("created", "")),
                    "CreatedBy": entry.get("created_by", ""),
                    "Tags": None,
                    "Size": size,
                    "Comment": entry.get("comment", ""),
                }
            )
        out.reverse()
        # As dockerd: the newest entries take the IDs (and tags) of the image and its local parents
        # (a built image's steps), the rest stay <missing>.
        current: ImageRecord | None = record
        for entry in out:
            if current is None:
                break
            entry["Id"] = current.id
            entry["Tags"] = self._repo_tags(current) or None
            parent = current.extra.get("parent", "")
            current = self.store.images.get(parent) if parent else None
        return out

    # --- changing references ----------------------------------------------------------------------

    async def tag(self, source: str, target: str) -> Reference:
        record = self.get(source)
        try:
            ref = parse_reference(target)
        except InvalidReference as e:
            raise ImageError(str(e), 400) from None
        if ref.digest:
            raise ImageError("refusing to create a tag with a digest reference", 400)
        async with self.lock:
            self.store.set_ref(ref, record.id)
            record.last_tag_time = _now_rfc3339()
            self.store.update(record)
        return ref

    async def remove(self, name: str, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
        """`docker rmi`: untag, and delete the image once nothing refers to it (Docker's rules)."""
        async with self.lock:
            record = self.get(name)
            records: list[dict[str, str]] = []
            refs = self.store.tags_of(record.id) + self.store.digests_of(record.id)
            by_id = _names_image_id(name, record.id)
            if not by_id:
                ref = parse_reference(name)
                if not force and _single_repository(refs):
                    self._check_conflict(record, soft=True, hard=False, ref_name=name)
                if str(ref) not in self.store.refs and ref.digest and ref.tag:
                    ref = Reference(ref.domain, ref.path, None, ref.digest)
                self.store.delete_ref(ref)
                records.append({"Untagged": ref.familiar()})
                remaining = [r for r in refs if str(r) != str(ref)]
                if not ref.digest and not any(
                    r.repository == ref.repository and not r.digest for r in remaining
                ):
                    for other in [r for r in remaining if r.digest and r.repository == ref.repository]:
                        self.store.delete_ref(other)
                        records.append({"Untagged": other.familiar()})
                        remaining.remove(other)
                if remaining:
                    return records
            else:
                if _single_repository(refs):
                    self._check_conflict(record, soft=not force, hard=True)
                    for ref in refs:
                        self.store.delete_ref(ref)
                        records.append({"Untagged": ref.familiar()})
                elif not force:
                    raise ImageConflict(
                        f"conflict: unable to delete {record.short_id} (must be forced) - "
                        "image is referenced in multiple repositories"
                    )
                else:
                    self._check_conflict(record, soft=False, hard=True)
                    for ref in refs:
                        self.store.delete_ref(ref)
                        records.append({"Untagged": ref.familiar()})
            self._check_conflict(record, soft=not force, hard=True)
            self.store.remove(record.id)
            records.append({"Deleted": record.id})
            if prune:
                records += [{"Deleted": image_id} for image_id in self._remove_unused_parents(record)]
                records += [{"Deleted": chain} for chain in self._collect_garbage()]
            return records

    def _parents(self) -> set[str]:
        """IDs of the images that are some local image's parent (the builder records `extra.parent`)."""
        return {p for r in self.store.images.values() if (p := r.extra.get("parent"))}

    def _remove_unused_parents(self, record: ImageRecord) -> list[str]:
        """dockerd's prune of parents after a delete: each untagged parent with no other child and no
        container goes too, up the chain (a built image takes its intermediate steps with it)."""
        removed = []
        parent_id = record.extra.get("parent", "")
        while parent_id and parent_id in self.store.images:
            parent = self.store.images[parent_id]
            if self.store.tags_of(parent_id) or self.store.digests_of(parent_id):
                break
            if parent_id in self._parents() or self.container_users(parent_id):
                break
            self.store.remove(parent_id)
            removed.append(parent_id)
            parent_id = parent.extra.get("parent", "")
        return removed

    def _check_conflict(self, record: ImageRecord, soft: bool, hard: bool, ref_name: str = "") -> None:
        for use in self.container_users(record.id):
            short = use.container_id[:12]
            if ref_name and not use.running:
                raise ImageConflict(
                    f'conflict: unable to remove repository reference "{ref_name}" (must force) - '
                    f"container {short} is using its referenced image {record.short_id}"
                )
            if hard and use.running:
                raise ImageConflict(
                    f"conflict: unable to delete {record.short_id} (cannot be forced) - "
                    f"image is being used by running container {short}"
                )
            if soft and not use.running:
                raise ImageConflict(
                    f"conflict: unable to delete {record.short_id} (must be forced) - "
                    f"image is being used by stopped container {short}"
                )

    def _collect_garbage(self) -> list[str]:
        """Delete snapshots and blobs no image needs (and no pull is using); return removed chain IDs."""
        wanted_chains: set[str] = set(self._pins)
        wanted_blobs: set[str] = set(self._pins)
        for record in self.store.images.values():
            wanted_chains.update(chain_ids([layer.diff_id for layer in record.layers]))
            wanted_blobs.add(record.id)
            wanted_blobs.update(layer.digest for layer in record.layers)
            wanted_blobs.update(record.extra.get("manifests", []))
        removed = []
        snapshots = self.snapshots.all()
        # Top of each chain first, so a parent is never removed before its child.
        depth = {c: _depth(c, snapshots) for c in snapshots}
        for chain in sorted(snapshots, key=lambda c: -depth[c]):
            if chain not in wanted_chains:
                self.snapshots.remove(chain)
                removed.append(chain)
        for digest in list(self.content.digests()):
            if digest not in wanted_blobs:
                self.content.delete(digest)
        return removed

    async def prune(self, all_images: bool, filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
        filters = filters or {}
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        until = filters.get("until")
        labels = filters.get("label", [])
        cutoff = None
        if until:
            try:
                cutoff = parse_time(until[0], time.time())
            except ValueError as e:
                raise ImageError(str(e), 400) from None
        async with self.lock:
            before = self._disk_usage()
            for record in list(self.store.images.values()):
                if record.id not in self.store.images:  # removed meanwhile as a pruned parent
                    continue
                tags = self.store.tags_of(record.id)
                if tags and not all_images:
                    continue
                if record.id in self._parents() and not all_images:
                    continue  # an intermediate image: it goes with its child
                if self.container_users(record.id):
                    continue
                config = self.config(record)
                if cutoff is not None and self._created(record, config) >= cutoff:
                    continue
                image_labels = (config.get("config") or {}).get("Labels") or {}
                if labels and not all(_label_matches(image_labels, label) for label in labels):
                    continue
                for ref in tags + self.store.digests_of(record.id):
                    deleted.append({"Untagged": ref.familiar()})
                self.store.remove(record.id)
                deleted.append({"Deleted": record.id})
                deleted += [{"Deleted": image_id} for image_id in self._remove_unused_parents(record)]
            deleted += [{"Deleted": chain} for chain in self._collect_garbage()]
            reclaimed = max(0, before - self._disk_usage())
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def layer_sharing(self) -> tuple[int, dict[str, int]]:
        """For `system df`: the size of every layer once (LayersSize), and each image's SharedSize (its
        layers that another image uses too)."""
        users: dict[str, int] = {}
        chains_of: dict[str, set[str]] = {}
        for record in self.store.images.values():
            chains = set(chain_ids([layer.diff_id for layer in record.layers]))
            chains_of[record.id] = chains
            for chain in chains:
                users[chain] = users.get(chain, 0) + 1
        sizes = {chain: info.size for chain, info in self.snapshots.all().items()}
        shared = {
            image_id: sum(sizes.get(c, 0) for c in chains if users[c] > 1)
            for image_id, chains in chains_of.items()
        }
        return sum(sizes.values()), shared

    def _disk_usage(self) -> int:
        return sum(info.size for info in self.snapshots.all().values())

    # --- registering new images -------------------------------------------------------------------

    def register(
        self,
        config_blob: bytes,
        layers: list[LayerRecord],
        manifest_media_type: str = "",
        extra: dict[str, Any] | None = None,
    ) -> ImageRecord:
        """Record an image whose config is stored and whose snapshots are all committed."""
        image_id = self.content.put(config_blob)
        diff_ids = [layer.diff_id for layer in layers]
        chains = chain_ids(diff_ids)
        size = sum(self.snapshots.info(c).size for c in chains)
        existing = self.store.images.get(image_id)
        record = ImageRecord(
            id=image_id,
            layers=layers,
            chain_id=chains[-1] if chains else "",
            size=size,
            manifest_media_type=manifest_media_type,
            last_tag_time=existing.last_tag_time if existing else "",
            extra={**(existing.extra if existing else {}), **(extra or {})},
        )
        if existing and "manifests" in existing.extra and extra and "manifests" in extra:
            record.extra["manifests"] = sorted(set(existing.extra["manifests"]) | set(extra["manifests"]))
        self.store.add(record)
        return record

    def stored_layer(self, diff_id: str) -> LayerRecord | None:
        """A layer record of any image whose blob for this diff ID is in the content store."""
        for record in self.store.images.values():
            for layer in record.layers:
                if layer.diff_id == diff_id and self.content.has(layer.digest):
                    return layer
        return None

    def add_layer(self, tar_path: Path, diff_id: str, size: int, parent_chain: str) -> LayerRecord:
        """Make an uncompressed layer tar (a build step's or a commit's) a snapshot on `parent_chain`
        and a blob (worker thread; call `register` afterwards, under `lock`). The tar file is consumed."""
        from .archive import LAYER_TAR  # archive imports this module

        chain = chain_ids([parent_chain, diff_id])[-1] if parent_chain else diff_id
        with self.pinned([chain, diff_id]):
            if not self.snapshots.exists(chain):
                pending = self.snapshots.prepare(chain, parent_chain, diff_id)
                try:
                    with open(tar_path, "rb") as f:
                        pending.apply(f)
                    pending.commit()
                except BaseException:
                    pending.abort()
                    raise
            if not self.content.has(diff_id):
                os.replace(tar_path, self.content.path(diff_id))
            else:
                tar_path.unlink(missing_ok=True)  # the same layer was built before
        return LayerRecord(diff_id, LAYER_TAR, size, diff_id)

    def counts(self) -> int:
        return len(self.store.images)


def _depth(chain: str, snapshots: dict) -> int:
    depth = 0
    while chain in snapshots and snapshots[chain].parent:
        chain = snapshots[chain].parent
        depth += 1
    return depth


def _now_rfc3339() -> str:
    return datetime.now().astimezone().isoformat()


def _names_image_id(name: str, image_id: str) -> bool:
    """Whether the user named the image by (a prefix of) its ID rather than by a reference."""
    return is_image_id_prefix(name) and digest_hex(image_id).startswith(name.removeprefix("sha256:"))


def _single_repository(refs: list[Reference]) -> bool:
    """At most one tag, and every reference in one repository (Docker's isSingleReference)."""
    tags = [r for r in refs if not r.digest]
    return len(tags) <= 1 and len({r.repository for r in refs}) <= 1


def _display_name(name: str) -> str:
    try:
        ref = parse_reference(name)
    except InvalidReference:
        return name
    if is_image_id_prefix(name):
        return name
    return ref.familiar()


def _reference_matches(pattern: str, familiar: str) -> bool:
    """Docker's reference filter (FamiliarMatch): the pattern matches "name:tag" (or "name@digest") or the
    name alone."""
    name = familiar.partition("@")[0]
    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    return fnmatch.fnmatchcase(familiar, pattern) or fnmatch.fnmatchcase(name, pattern)


def _label_matches(labels: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)
