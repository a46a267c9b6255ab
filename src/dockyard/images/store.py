"""Image records and references (tags and repo digests), persisted as small JSON files.

An image is listed once its record file exists, and the record is written last, after every blob and
snapshot it needs is committed: so an interrupted pull never shows an image that is not whole.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..reference import InvalidReference, Reference, is_image_id_prefix, parse_reference
from .content import digest_hex


class ImageNotFound(Exception):
    pass


class AmbiguousImage(Exception):
    pass


@dataclass
class LayerRecord:
    digest: str  # the blob as distributed (compressed), kept in the content store
    media_type: str
    size: int  # the blob's size
    diff_id: str  # the uncompressed tar's digest, from the config's rootfs


@dataclass
class ImageRecord:
    id: str  # sha256 of the config blob
    layers: list[LayerRecord]
    chain_id: str  # the top snapshot ("" for an image with no layers)
    size: int  # unpacked size of all layers
    manifest_media_type: str = ""
    last_tag_time: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return digest_hex(self.id)[:12]


def write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.records_dir = root / "records"
        self.refs_path = root / "references.json"
        self.records_dir.mkdir(parents=True, exist_ok=True)
        self.images: dict[str, ImageRecord] = {}
        # "docker.io/library/httpd:latest" and "docker.io/library/httpd@sha256:..." -> image ID
        self.refs: dict[str, str] = {}
        self._load()

    def _load(self) -> None:
        for path in self.records_dir.glob("*.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            data["layers"] = [LayerRecord(**layer) for layer in data["layers"]]
            record = ImageRecord(**data)
            self.images[record.id] = record
        try:
            refs = json.loads(self.refs_path.read_text())
        except (FileNotFoundError, ValueError):
            refs = {}
        self.refs = {ref: image_id for ref, image_id in refs.items() if image_id in self.images}

    def _save_refs(self) -> None:
        write_json_atomic(self.refs_path, self.refs)

    # --- records ---------------------------------------------------------------------------------------

    def add(self, record: ImageRecord) -> None:
        write_json_atomic(self.records_dir / f"{digest_hex(record.id)}.json", asdict(record))
        self.images[record.id] = record

    def update(self, record: ImageRecord) -> None:
        self.add(record)

    def remove(self, image_id: str) -> None:
        for ref in [r for r, i in self.refs.items() if i == image_id]:
            del self.refs[ref]
        self._save_refs()
        (self.records_dir / f"{digest_hex(image_id)}.json").unlink(missing_ok=True)
        self.images.pop(image_id, None)

    # --- references ------------------------------------------------------------------------------------

    def set_ref(self, ref: Reference, image_id: str) -> str | None:
        """Point a tag or digest reference at an image; returns the image it pointed at before."""
        key = str(ref)
        previous = self.refs.get(key)
        self.refs[key] = image_id
        self._save_refs()
        return previous

    def delete_ref(self, ref: Reference) -> str | None:
        image_id = self.refs.pop(str(ref), None)
        if image_id is not None:
            self._save_refs()
        return image_id

    def tags_of(self, image_id: str) -> list[Reference]:
        return sorted(
            (
                parse_reference(r, default_tag=None)
                for r, i in self.refs.items()
                if i == image_id and "@" not in r
            ),
            key=str,
        )

    def digests_of(self, image_id: str) -> list[Reference]:
        return sorted(
            (
                parse_reference(r, default_tag=None)
                for r, i in self.refs.items()
                if i == image_id and "@" in r
            ),
            key=str,
        )

    # --- lookup, as Docker resolves an image argument ------------------------------------------------

    def resolve(self, name: str) -> ImageRecord:
        """A reference (tag or digest), a full image ID, or an unambiguous ID prefix."""
        if name.startswith("sha256:") and len(name) == 71 and name in self.images:
            return self.images[name]
        try:
            ref = parse_reference(name)
        except InvalidReference:
            ref = None
        if ref is not None:
            image_id = self.refs.get(str(ref))
            if image_id is None and ref.digest and ref.tag:
                image_id = self.refs.get(str(Reference(ref.domain, ref.path, None, ref.digest)))
            if image_id is not None and image_id in self.images:
                return self.images[image_id]
        if is_image_id_prefix(name):
            prefix = name.removeprefix("sha256:")
            matches = [i for i in self.images if digest_hex(i).startswith(prefix)]
            if len(matches) == 1:
                return self.images[matches[0]]
            if len(matches) > 1:
                raise AmbiguousImage(f"multiple IDs found with provided prefix: {prefix}")
        raise ImageNotFound(name)
